"""A built-in inspection scan: the screen print with defects planted by the synthesizer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ispad_core._shared.errors import InputValueError, InvisibleDefectError
from ispad_core._shared.screen_print import check_shape, screen_print
from ispad_core._shared.validation import RNGLike, as_generator, check_choice, check_float, check_int
from ispad_core.synth import PRESETS, DefectMixture, synthesize

__all__ = ["InspectionScan", "inspection_scan"]


@dataclass(frozen=True)
class InspectionScan:
    """A built-in inspection scan with planted defects: the result of :func:`inspection_scan`.

    Attributes
    ----------
    image : numpy.ndarray of uint8, shape (H, W) or (H, W, 3)
        The screen-printed scan with the defects drawn in.
    mask : numpy.ndarray of bool, shape (H, W)
        The union of the synthesizer's ground-truth masks (texture support above its level, changed
        pixels only; faint tails around a defect may differ from the fault-free print too).
    boxes : numpy.ndarray of int64, shape (n, 4)
        ``(row0, col0, row1, col1)`` of each defect's mask, end exclusive.
    presets : tuple of str
        The synthesizer preset of each defect.
    seeds : numpy.ndarray of uint32, shape (n,)
        The synthesizer's item seed of each defect.
    """

    image: np.ndarray
    mask: np.ndarray
    boxes: np.ndarray
    presets: tuple
    seeds: np.ndarray

    @property
    def centres(self) -> np.ndarray:
        """``(n, 2)`` float64 centres ``(row, col)`` of the defect boxes."""
        return (self.boxes[:, :2] + self.boxes[:, 2:] - 1) / 2.0


def inspection_scan(
    shape=(1536, 1536),
    *,
    rng: RNGLike = 0,
    n_defects: int = 1,
    presets=("fiber-dark", "scratch", "dot-dark", "inclusion"),
    strength: float = 1.0,
    kind: str = "mixed",
    channels: int = 1,
    region: int = 192,
) -> InspectionScan:
    """A screen-printed scan of about 1500 x 1500 px with defects planted by the synthesizer.

    The background is :func:`screen_print`; each defect is drawn by
    :func:`ispad_core.synth.synthesize` into a ``region x region`` area at a random position
    (areas do not touch each other and keep ``region // 2`` px from the border), using the
    presets in turn. Used by the tests, the documentation and ``ispad demo`` to check that an
    inspection finds what was planted.

    Parameters
    ----------
    shape : (int, int), default (1536, 1536)
        ``(height, width)``; each side at least ``3 * region``.
    rng : None, int or numpy.random.Generator, default 0
        The same seed gives the same scan, mask and boxes.
    n_defects : int, default 1
        Number of planted defects, >= 0 (0 gives a fault-free scan).
    presets : str or sequence of str
        Synthesizer presets, used in turn (``ispad_core.synth.PRESETS``).
    strength : float, default 1.0
        Factor on the presets' contrast ranges (capped at 255 grey levels, or 0.95 of the
        background for relative contrast); the presets are faint on purpose, and a demo with a
        briefly trained model may want stronger defects (e.g. 2).
    kind : str, default "mixed"
        The print design (:data:`KINDS`).
    channels : {1, 3}, default 1
        Grey or RGB.
    region : int, default 192
        Side of the area a defect is drawn in, in ``[32, 1024]``.

    Returns
    -------
    InspectionScan

    Raises
    ------
    ValueError
        If the scan is too small for ``region``, the defects do not fit, or a preset is unknown.
    RuntimeError
        If the synthesizer could not make a defect visible after several positions.

    Examples
    --------
    >>> from ispad_core.samples import inspection_scan
    >>> scan = inspection_scan((600, 700), rng=0, n_defects=2)
    >>> scan.image.shape, scan.image.dtype, scan.mask.dtype, scan.boxes.shape, scan.presets
    ((600, 700), dtype('uint8'), dtype('bool'), (2, 4), ('fiber-dark', 'scratch'))
    >>> r0, c0, r1, c1 = scan.boxes[0]
    >>> bool(scan.mask[r0:r1, c0:c1].any()), bool((scan.image == inspection_scan((600, 700), rng=0, n_defects=2).image).all())
    (True, True)
    """
    h, w = check_shape(shape)
    n_defects = check_int(n_defects, "n_defects", minimum=0)
    region = check_int(region, "region", minimum=32, maximum=1024)
    if isinstance(presets, str):
        presets = (presets,)
    presets = tuple(presets)
    if not presets:
        raise InputValueError("presets: expected at least one preset name, got none")
    for p in presets:
        check_choice(p, "presets", tuple(PRESETS))
    strength = check_float(strength, "strength", minimum=0.0, min_inclusive=False)

    def stronger(params):
        if isinstance(params, DefectMixture):
            return DefectMixture(tuple(stronger(c) for c in params.components), params.weights, params.names)
        cap = 0.95 if params.contrast_mode == "relative" else 255.0
        lo, hi = params.contrast
        return dataclasses.replace(params, contrast=(min(lo * strength, cap), min(hi * strength, cap)))

    table = {p: PRESETS[p] if strength == 1.0 else stronger(PRESETS[p]) for p in presets}
    if min(h, w) < 3 * region:
        raise InputValueError(f"shape: expected sides >= 3 * region ({3 * region}), got {(h, w)}")
    gen = as_generator(rng)
    image = screen_print((h, w), rng=gen, kind=kind, channels=channels)
    mask = np.zeros((h, w), dtype=bool)
    taken = np.zeros((h, w), dtype=bool)  # areas of earlier defects, grown by a gap of region // 4
    boxes, used, seeds = [], [], []
    margin, gap = region // 2, region // 4
    for i in range(n_defects):
        preset = presets[i % len(presets)]
        for _ in range(64):
            r = int(gen.integers(margin, h - margin - region + 1))
            c = int(gen.integers(margin, w - margin - region + 1))
            if not taken[r : r + region, c : c + region].any():
                break
        else:
            raise InputValueError(f"n_defects: {n_defects} areas of {region} x {region} px do not fit into a scan of {(h, w)}")
        for _ in range(8):
            seed = gen.integers(0, 2**32, size=1, dtype=np.uint64).astype(np.uint32)
            res = synthesize(image[r : r + region, c : c + region], table[preset], seed=int(seed[0]), warn=False)
            if res.accepted:
                break
        else:
            raise InvisibleDefectError(f"presets: {preset!r} stayed invisible at ({r}, {c}) after 8 seeds")
        image[r : r + region, c : c + region] = res.image
        m = res.mask.astype(bool)
        mask[r : r + region, c : c + region] |= m
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        boxes.append((r + rows[0], c + cols[0], r + rows[-1] + 1, c + cols[-1] + 1))
        taken[max(r - gap, 0) : r + region + gap, max(c - gap, 0) : c + region + gap] = True
        used.append(preset)
        seeds.append(int(seed[0]))
    boxes_arr = np.array(boxes, dtype=np.int64).reshape(-1, 4)
    return InspectionScan(image, mask, boxes_arr, tuple(used), np.array(seeds, dtype=np.uint32))
