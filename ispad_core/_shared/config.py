"""Numba compilation flags, in one place.

Every kernel in the package is decorated with ``@njit(**NJIT)`` (serial) or
``@njit(**NJIT_PARALLEL)`` (``prange`` over independent items). ``fastmath`` is never turned
on: its ``nnan``/``ninf`` flags let LLVM assume away the NaN and inf checks that our
validation relies on, and reassociation would make float sums depend on vectorisation width.

``cache=True`` writes the compiled machine code beside the module (``__pycache__``), so only
the first call on a machine pays the compile time.
"""

from __future__ import annotations

NJIT: dict = {"cache": True, "nogil": True, "error_model": "numpy"}
"""Flags for serial kernels."""

NJIT_PARALLEL: dict = {**NJIT, "parallel": True}
"""Flags for kernels that ``prange`` over independent items."""
