"""ispad_core: model-free defect synthesis, patch tooling and imbalance-aware metrics.

The toolkit of the ISP-AD paper as a library. The core is NumPy, Numba and SciPy and never
imports torch; the optional torch layer lives in :mod:`ispad_core.nn`
(``pip install "ispad-core[torch]"``).

Submodules are imported on first attribute access, so ``import ispad_core`` is cheap and
``ispad_core.metrics.mcc(...)`` works without a separate import.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

from ispad_core._shared.errors import InputError, InputTypeError, InputValueError, InvisibleDefectError, SetupError
from ispad_core._shared.version import __version__

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

__all__ = [
    "InputError",
    "InputTypeError",
    "InputValueError",
    "InvisibleDefectError",
    "SetupError",
    "__version__",
    *sorted(_SUBMODULES),
]

#: Modules that moved into a room keep their old import path: ``import ispad_core.proxy`` gives
#: the module ``ispad_core.samples.proxy`` itself (one module object, not a copy).
_MOVED = {
    "crops": "ispad_core.tiling.crops",
    "demo": "ispad_core.nn.demo",
    "proxy": "ispad_core.samples.proxy",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``ispad_core.<old name>`` of a moved module and hands out the module at its new place."""

    _ispad_moved = True

    def __init__(self) -> None:
        self._specs: dict = {}

    def find_spec(self, fullname, path=None, target=None):
        parent, _, name = fullname.rpartition(".")
        if parent != __name__ or name not in _MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(_MOVED[spec.name.rpartition(".")[2]])
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self._specs[module.__name__]  # the import system set it to the old name's


if not any(getattr(finder, "_ispad_moved", False) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())  # it answers for the three old names only


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
