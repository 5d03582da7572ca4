"""The visibility figures of a stream file's defects, summed up (``ispad info``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ispad_core._shared.validation import check_float
from ispad_core.stream.generation import VISIBILITY_FIELDS

__all__ = ["VisibilitySummary", "visibility_summary"]


@dataclass(frozen=True)
class VisibilitySummary:
    """The visibility figures of a stream file's defective items (:func:`visibility_summary`).

    Attributes
    ----------
    n_defective : int
        Defective items (label 1).
    n_accepted : int
        Of those, the ones whose defect passed the synthesizer's visibility test (all, in a file
        :func:`write_balanced_stream` wrote: an invisible defect is redrawn on another patch).
    quantiles : tuple of float
        The quantile levels of the three figures below, e.g. ``(0.0, 0.05, 0.5, 0.95, 1.0)``.
    contrast, cnr, ssr : tuple of float
        Those quantiles among the defective items of the mean absolute change of the mask's
        pixels (8-bit grey levels), the contrast-to-noise ratio and the sum of squared residuals.
    below : float
        The contrast (grey levels) counted in :attr:`n_below`.
    n_below : int
        Defective items with a contrast under :attr:`below`.
    min_contrast : float or None
        The floor the stream was written with (its attribute ``min_contrast``), if any.
    """

    n_defective: int
    n_accepted: int
    quantiles: tuple
    contrast: tuple
    cnr: tuple
    ssr: tuple
    below: float
    n_below: int
    min_contrast: float | None

    def __str__(self) -> str:
        levels = ", ".join(f"{100 * q:g}%" for q in self.quantiles)

        def row(values: tuple, fmt: str) -> str:
            return ", ".join(format(v, fmt) for v in values)

        share = self.n_below / self.n_defective if self.n_defective else 0.0
        floor = "none" if self.min_contrast is None else f"{self.min_contrast:g} grey levels"
        return "\n".join([
            f"visibility of the {self.n_defective} defects ({self.n_accepted} passed the synthesizer's test; "
            f"minimum contrast {floor}), quantiles {levels}:",
            f"  contrast (mean |change| in the mask, grey levels): {row(self.contrast, '.2f')}",
            f"  contrast-to-noise ratio: {row(self.cnr, '.2f')}",
            f"  sum of squared residuals: {row(self.ssr, '.0f')}",
            f"  under {self.below:g} grey levels of contrast: {self.n_below} ({100 * share:.1f} %)",
        ])


def visibility_summary(
    stream: Any, *, quantiles: Sequence[float] = (0.0, 0.05, 0.5, 0.95, 1.0), below: float = 3.0
) -> VisibilitySummary | None:
    """Sum up the per-item visibility figures of a stream file's defective items.

    Parameters
    ----------
    stream : str, os.PathLike or ispad_core.io.StreamReader
        A stream file (or an open reader of one).
    quantiles : sequence of float
        Quantile levels in [0, 1] to report (default min, 5 %, median, 95 %, max).
    below : float
        Count the defects whose contrast is under this many grey levels (default 3).

    Returns
    -------
    VisibilitySummary or None
        None for a file written before the figures were stored (it has no ``syn_stream/contrast``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ispad_core.samples import screen_print
    >>> from ispad_core.stream import write_balanced_stream
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "stream.h5"
    >>> _ = write_balanced_stream(out, screen_print((160, 160), rng=0), 8, size=64, seed=0)
    >>> v = visibility_summary(out)
    >>> v.n_defective, v.n_accepted, v.contrast[0] >= 1.0  # a changed pixel moves a whole grey level
    (4, 4, True)
    """
    from ispad_core.io import StreamReader, open_stream

    levels = tuple(check_float(q, "quantiles", minimum=0.0, maximum=1.0) for q in quantiles)
    below = check_float(below, "below", minimum=0.0)
    if isinstance(stream, StreamReader):
        return _visibility_of(stream, levels, below)
    with open_stream(stream) as reader:
        return _visibility_of(reader, levels, below)


def _visibility_of(reader, levels: tuple, below: float) -> VisibilitySummary | None:
    figures = {name: reader.field(name) for name in VISIBILITY_FIELDS}
    if any(v is None for v in figures.values()):
        return None
    defective = reader.labels == 1

    def q(values: np.ndarray) -> tuple:
        return tuple(float(x) for x in np.quantile(values, levels)) if values.size else tuple(float("nan") for _ in levels)

    contrast = figures["contrast"][defective]
    floor = reader.attrs.get("min_contrast")
    return VisibilitySummary(
        n_defective=int(defective.sum()),
        n_accepted=int(figures["accepted"][defective].sum()),
        quantiles=levels,
        contrast=q(contrast),
        cnr=q(figures["cnr"][defective]),
        ssr=q(figures["ssr"][defective]),
        below=below,
        n_below=int((contrast < below).sum()),
        min_contrast=None if floor is None else float(floor),
    )
