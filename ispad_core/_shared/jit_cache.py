"""Whether Numba will compile kernels on their first call (so a command can say so first)."""

from __future__ import annotations

from collections.abc import Iterable


def uncached(dispatchers: Iterable) -> list[str] | None:
    """Names of the ``@njit(cache=True)`` kernels that neither this process has compiled nor
    Numba's on-disk cache holds for the current source and Numba version.

    A kernel whose cache index is missing, written by another Numba version, or stamped with
    another modification time or size of its source file is compiled on its first call (tens of
    seconds for the synthesizer); one with a fresh index entry is loaded in milliseconds. This
    reads Numba's index the way Numba does (``Cache._cache_file._load_index``). Returns None
    when that cannot be told (a Numba without those internals, or ``NUMBA_DISABLE_JIT=1``).
    """
    names = []
    for d in dispatchers:
        try:
            if d.signatures:  # compiled in this process already
                continue
            if d._cache._cache_file._load_index():
                continue
        except Exception:  # noqa: BLE001 - internals of another Numba version, or no JIT at all
            return None
        names.append(d.__name__)
    return names
