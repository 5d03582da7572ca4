"""ispad_core: model-free defect synthesis, patch tooling and imbalance-aware metrics.

The toolkit of the ISP-AD paper as a library. The core is NumPy, Numba and SciPy and never
imports torch; the optional torch layer lives in :mod:`ispad_core.nn`
(``pip install "ispad-core[torch]"``).

Submodules are imported on first attribute access, so ``import ispad_core`` is cheap and
``ispad_core.metrics.mcc(...)`` works without a separate import.
"""

from __future__ import annotations

import importlib

from ispad_core._version import __version__

_SUBMODULES = frozenset(
    {
        "augment",
        "cli",
        "crops",
        "demo",
        "experiment",
        "fractions",
        "io",
        "metrics",
        "modality",
        "nn",
        "preprocess",
        "proxy",
        "samples",
        "stream",
        "synth",
        "tiling",
    }
)

__all__ = ["__version__", *sorted(_SUBMODULES)]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
