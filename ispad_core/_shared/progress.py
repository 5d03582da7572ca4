"""Progress bars for long work (a thin layer over tqdm, so every bar looks alike)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "it",
    disable: bool | None = None,
) -> tqdm:
    """A tqdm bar with rate and ETA on stderr.

    ``disable=None`` (the default) shows the bar only when stderr is a terminal, so library calls
    inside scripts, notebooks piped to files and tests stay quiet; pass ``disable=False`` to force
    it on (the ``ispad`` command does) or ``True`` to silence it.
    """
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=False,
        dynamic_ncols=True,
        disable=disable,
        leave=True,
    )
