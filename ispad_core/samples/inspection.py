"""Procedural fault-free samples: screen-printed decorative foils.

:func:`screen_print` renders a design of periodic dots, lines and meshes printed onto a light
carrier foil, with the variability an inspection system must tolerate: the period and angle of the
print jitter smoothly (a low-frequency displacement field), the ink density varies per screen cell
and across the sample, the illumination shades slowly, and the sensor adds noise. It is the
built-in background of :func:`ispad_core.synth.gallery`, the tests and the benchmarks, and the
default sample of the ``ispad`` command.

Everything random is drawn from ``rng`` on the host; the per-pixel sensor noise is drawn inside
the kernel after seeding each row with its own 32-bit seed, so an image is reproducible on any
number of threads.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

from ispad_core._shared.errors import InputTypeError, InputValueError, InvisibleDefectError
from ispad_core._shared import screen_kernels as k
from ispad_core._shared.screen_kernels import screen_print_kernel
from ispad_core._shared.validation import RNGLike, as_generator, check_choice, check_int

__all__ = ["KINDS", "screen_print"]

KINDS = ("dots", "lines", "mesh", "mixed")
"""Designs :func:`screen_print` can render."""

# Cell sizes (px) of the low-frequency fields: warp row/col, ink density, shading, design region.
_FIELD_CELLS = np.array([48.0, 48.0, 40.0, 224.0, 144.0])
_CELL_TABLE_SIZE = 4096
_MAX_SIDE = 16384
_NOISE_LEVELS = 4096
# Standard-normal quantiles at the centres of 4096 equal-probability bins.
_NOISE_TABLE = ndtri((np.arange(_NOISE_LEVELS) + 0.5) / _NOISE_LEVELS)


def _check_shape(shape) -> tuple[int, int]:
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__"):
        raise InputTypeError(f"shape: expected a (height, width) pair of ints, got {type(shape).__name__}")
    if len(shape) != 2:
        raise InputValueError(f"shape: expected a (height, width) pair, got {len(shape)} values")
    h = check_int(shape[0], "shape[0]", minimum=1, maximum=_MAX_SIDE)
    w = check_int(shape[1], "shape[1]", minimum=1, maximum=_MAX_SIDE)
    return h, w


def _draw_design(gen: np.random.Generator, kind: str, h: int, w: int):
    """Draw every random quantity of one sample on the host, in a fixed order."""
    p = np.zeros(k.N_PARAMS)
    p[k.P_KIND] = KINDS.index(kind)
    p[k.P_DOT_PERIOD] = gen.uniform(9.0, 15.0)
    p[k.P_DOT_ANGLE] = gen.uniform(0.0, 0.5 * math.pi)
    p[k.P_DOT_RADIUS] = gen.uniform(0.24, 0.38)
    p[k.P_DOT_JITTER] = gen.uniform(0.04, 0.10)
    p[k.P_LINE_PERIOD] = gen.uniform(5.0, 9.0)
    p[k.P_LINE_ANGLE] = gen.uniform(0.0, math.pi)
    p[k.P_LINE_DUTY] = gen.uniform(0.30, 0.55)
    p[k.P_MESH_PERIOD_1] = gen.uniform(7.0, 12.0)
    p[k.P_MESH_PERIOD_2] = p[k.P_MESH_PERIOD_1] * gen.uniform(0.8, 1.25)
    p[k.P_MESH_ANGLE_1] = gen.uniform(0.0, math.pi)
    p[k.P_MESH_ANGLE_2] = p[k.P_MESH_ANGLE_1] + gen.uniform(math.pi / 3.0, math.pi / 2.0)
    p[k.P_MESH_DUTY] = gen.uniform(0.14, 0.28)
    p[k.P_WARP_AMP] = gen.uniform(0.3, 1.0)
    p[k.P_DENSITY_AMP] = gen.uniform(0.03, 0.08)
    p[k.P_SHADE_AMP] = gen.uniform(0.03, 0.08)
    p[k.P_TILT_ROW] = gen.uniform(-0.06, 0.06)
    p[k.P_TILT_COL] = gen.uniform(-0.06, 0.06)
    p[k.P_NOISE] = gen.uniform(1.0, 2.5)
    p[k.P_EDGE] = gen.uniform(0.9, 1.6)
    p[k.P_REGION_SOFT] = gen.uniform(0.05, 0.15)

    # Foil (light, slightly tinted) and three inks given as transmittances per RGB channel.
    foil = gen.uniform(190.0, 232.0) * (1.0 + gen.uniform(-0.06, 0.06, size=3))
    dot_ink = gen.uniform(0.45, 0.72) * (1.0 + gen.uniform(-0.25, 0.25, size=3))
    line_ink = gen.uniform(0.62, 0.85) * (1.0 + gen.uniform(-0.15, 0.15, size=3))
    mesh_ink = gen.uniform(0.80, 0.92) * (1.0 + gen.uniform(-0.05, 0.05, size=3))
    inks = np.stack([foil, dot_ink, line_ink, mesh_ink])
    inks[1:] = np.clip(inks[1:], 0.05, 1.0)

    lh = int(math.ceil(h / _FIELD_CELLS.min())) + 2
    lw = int(math.ceil(w / _FIELD_CELLS.min())) + 2
    lattices = gen.standard_normal((len(_FIELD_CELLS), lh, lw))
    cell_table = gen.uniform(-1.0, 1.0, size=_CELL_TABLE_SIZE)
    row_seeds = gen.integers(0, 2**32, size=h, dtype=np.uint64).astype(np.uint32)
    return p, inks, lattices, cell_table, row_seeds


def screen_print(
    shape,
    *,
    rng: RNGLike = None,
    kind: str = "mixed",
    channels: int = 1,
) -> np.ndarray:
    """A fault-free screen-printed sample: periodic ink patterns on a foil, with permitted variability.

    Parameters
    ----------
    shape : tuple of two ints
        ``(height, width)`` in pixels, each in ``[1, 16384]``.
    rng : None, int or numpy.random.Generator, optional
        Source of randomness; the same seed gives the same bytes on any number of threads.
    kind : {"dots", "lines", "mesh", "mixed"}, optional
        The design: a halftone dot screen, parallel lines, a crossed mesh, or (default) design
        regions of dots and of lines on a faint mesh.
    channels : {1, 3}, optional
        1 for a grey image, 3 for RGB. The same seed draws the same design for both; the grey image
        is rendered with the luminance of the inks.

    Returns
    -------
    numpy.ndarray of uint8
        Shape ``(height, width)`` for ``channels=1``, ``(height, width, 3)`` for ``channels=3``.

    Raises
    ------
    TypeError
        If ``shape`` is not a pair of ints, or ``channels`` is not an int.
    ValueError
        If a side is outside ``[1, 16384]``, ``kind`` is unknown or ``channels`` is not 1 or 3.

    Examples
    --------
    >>> from ispad_core.samples import screen_print
    >>> img = screen_print((64, 96), rng=0, kind="dots")
    >>> img.shape, img.dtype
    ((64, 96), dtype('uint8'))
    >>> bool((img == screen_print((64, 96), rng=0, kind="dots")).all())
    True
    """
    h, w = _check_shape(shape)
    check_choice(kind, "kind", KINDS)
    channels = check_int(channels, "channels")
    check_choice(channels, "channels", (1, 3))
    gen = as_generator(rng)
    params, inks, lattices, cell_table, row_seeds = _draw_design(gen, kind, h, w)
    if channels == 1:
        luma = np.array([0.299, 0.587, 0.114])
        inks = (inks @ luma)[:, None]
    out = np.empty((h, w, channels), dtype=np.uint8)
    screen_print_kernel(
        out,
        params,
        np.ascontiguousarray(inks),
        lattices,
        _FIELD_CELLS.copy(),
        cell_table,
        _NOISE_TABLE,
        row_seeds,
    )
    return out[:, :, 0] if channels == 1 else out


# ----------------------------------------------------------------------------- inspection scans

from dataclasses import dataclass  # noqa: E402  (appended section)


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
    import dataclasses

    from ispad_core._shared.validation import check_float
    from ispad_core.synth import PRESETS, DefectMixture, synthesize

    h, w = _check_shape(shape)
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
            res = synthesize(image[r : r + region, c : c + region], table[preset], rng=seed, warn=False)
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


__all__ += ["InspectionScan", "inspection_scan"]
