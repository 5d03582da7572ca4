"""Procedural fault-free samples: screen-printed decorative foils (public as :mod:`ispad_core.samples`).

:func:`screen_print` renders a design of periodic dots, lines and meshes printed onto a light
carrier foil, with the variability an inspection system must tolerate: the period and angle of the
print jitter smoothly (a low-frequency displacement field), the ink density varies per screen cell
and across the sample, the illumination shades slowly, and the sensor adds noise. It is the
built-in background of :func:`ispad_core.synth.gallery`, the scans and benchmark of
:mod:`ispad_core.samples`, the tests and the benchmarks, and the default sample of the ``ispad``
command; it lives here, below all of them, and :mod:`ispad_core.samples` exports it.

Everything random is drawn from ``rng`` on the host; the per-pixel sensor noise is drawn inside
the kernel after seeding each row with its own 32-bit seed, so an image is reproducible on any
number of threads.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

from ispad_core._shared import screen_kernels as k
from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.screen_kernels import screen_print_kernel
from ispad_core._shared.validation import RNGLike, as_generator, check_choice, check_int

__all__ = ["KINDS", "check_shape", "screen_print"]

KINDS = ("dots", "lines", "mesh", "mixed")
"""Designs :func:`screen_print` can render."""

# Cell sizes (px) of the low-frequency fields: warp row/col, ink density, shading, design region.
_FIELD_CELLS = np.array([48.0, 48.0, 40.0, 224.0, 144.0])
_CELL_TABLE_SIZE = 4096
_MAX_SIDE = 16384
_NOISE_LEVELS = 4096
# Standard-normal quantiles at the centres of 4096 equal-probability bins.
_NOISE_TABLE = ndtri((np.arange(_NOISE_LEVELS) + 0.5) / _NOISE_LEVELS)


def check_shape(shape) -> tuple[int, int]:
    """``(height, width)`` of an image to render, each in ``[1, 16384]``."""
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
    h, w = check_shape(shape)
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
