"""Slow, obviously correct versions of :mod:`ispad_core.augment`, written from the definitions.

The warp is scipy.ndimage.affine_transform with ``mode="mirror"`` (reflection without repeating
the edge); the random draws use numpy's legacy MT19937 (``RandomState``), which is the generator
Numba's ``np.random`` implements, seeded the same way.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage as ndi


def affine_matrix_ref(h, w, angle, scale, shear, vflip, hflip) -> np.ndarray:
    """2 x 3 output-to-input matrix in (row, col) of the forward map
    ``x -> c + F R(angle) Sh(shear) scale (x - c)`` in (x, y) = (col, row) coordinates, c the
    patch centre. Built from 3 x 3 homogeneous matrices and inverted with numpy."""
    t = math.radians(angle)
    rot = np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])
    sh = np.array([[1, math.tan(math.radians(shear)), 0], [0, 1, 0], [0, 0, 1]])
    sc = np.diag([scale, scale, 1.0])
    flip = np.diag([-1.0 if hflip else 1.0, -1.0 if vflip else 1.0, 1.0])
    cx, cy = (w - 1) / 2, (h - 1) / 2
    to_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    back = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]])
    forward_xy = back @ flip @ rot @ sh @ sc @ to_centre
    inverse_xy = np.linalg.inv(forward_xy)
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])  # (x, y) <-> (row, col)
    inverse_rc = swap @ inverse_xy @ swap
    return inverse_rc[:2]


def draw_params_ref(seed: int, params) -> dict:
    """The per-item draws, in the documented order."""
    rs = np.random.RandomState(int(seed))
    u = rs.random_sample

    def uniform(lo_hi):
        lo, hi = lo_hi
        return lo + (hi - lo) * u()

    return {
        "apply": u() < params.p_affine,
        "angle": uniform(params.rotation),
        "scale": uniform(params.scale),
        "shear": uniform(params.shear),
        "vflip": u() < params.vflip,
        "hflip": u() < params.hflip,
        "brightness": uniform(params.brightness),
        "contrast": uniform(params.contrast),
    }


def warp_ref(image: np.ndarray, matrix, order: int) -> np.ndarray:
    """scipy's affine_transform per channel, in float64 (not rounded)."""
    m = np.asarray(matrix, dtype=np.float64)
    img = image.astype(np.float64)
    if img.ndim == 2:
        return ndi.affine_transform(img, m[:, :2], offset=m[:, 2], order=order, mode="mirror")
    return np.stack(
        [ndi.affine_transform(img[..., c], m[:, :2], offset=m[:, 2], order=order, mode="mirror") for c in range(img.shape[2])],
        axis=-1,
    )


def augment_ref(patch: np.ndarray, params, seed: int, mask: np.ndarray | None = None):
    """The whole augmentation of one item: draws, warp (rounded half up), then the illumination
    change ``contrast * (brightness * v - mu) + mu`` with mu the mean of ``brightness * patch``,
    rounded half up and clipped."""
    d = draw_params_ref(seed, params)
    maxval = np.iinfo(patch.dtype).max
    if d["apply"]:
        m = affine_matrix_ref(patch.shape[0], patch.shape[1], d["angle"], d["scale"], d["shear"], d["vflip"], d["hflip"])
        warped = np.floor(warp_ref(patch, m, 1) + 0.5)
        warped_mask = None if mask is None else warp_ref(mask, m, 0).astype(mask.dtype)
    else:
        warped = patch.astype(np.float64)
        warped_mask = None if mask is None else mask.copy()
    b, c = d["brightness"], d["contrast"]
    mu = b * patch.astype(np.float64).mean()
    out = np.clip(np.floor(c * (b * warped - mu) + mu + 0.5), 0, maxval).astype(patch.dtype)
    return out, warped_mask, d


def warp_fixed_ref(image: np.ndarray, matrix) -> np.ndarray:
    """The exact bytes of the bilinear warp (``order=1``) for images of height and width >= 2,
    from its fixed-point definition, every pixel alike (no fast path, no runs).

    Output row r starts at the input position ``round((m00 r + m02) 2**32)`` (rows) and
    ``round((m10 r + m12) 2**32)`` (columns), 32 fractional bits, and each column adds
    ``round(m01 2**32)`` and ``round(m11 2**32)``. A position is mirrored into ``[0, n - 1]``
    (period ``2 (n - 1)``, the edge pixel not repeated); its integer part is the top-left
    neighbour and bits 12-31 its 20-bit weight, except that a position on the last pixel uses
    neighbour ``n - 2`` with the full weight ``2**20``. The value is
    ``((top << 20) + fr (bottom - top) + 2**39) >> 40`` with ``top = (p00 << 20) + fc (p01 - p00)``
    and ``bottom`` alike (integers, rounded half up)."""
    h, w = image.shape[:2]
    assert h >= 2 and w >= 2
    img = image.reshape(h, w, -1).astype(np.int64)
    m = np.asarray(matrix, dtype=np.float64)
    one = 2.0**32
    rows = np.arange(h, dtype=np.float64)
    r0 = np.rint((m[0, 0] * rows + m[0, 2]) * one).astype(np.int64)
    c0 = np.rint((m[1, 0] * rows + m[1, 2]) * one).astype(np.int64)
    cols = np.arange(w, dtype=np.int64)
    pos_r = r0[:, None] + cols[None, :] * np.int64(np.rint(m[0, 1] * one))
    pos_c = c0[:, None] + cols[None, :] * np.int64(np.rint(m[1, 1] * one))

    def neighbour_and_weight(p, n):
        lim = np.int64(n - 1) << 32
        q = np.abs(p) % (2 * lim)
        q = np.where(q > lim, 2 * lim - q, q)
        i = q >> 32
        last = i >= n - 1
        return np.where(last, n - 2, i), np.where(last, 1 << 20, (q >> 12) & ((1 << 20) - 1))

    ir, fr = neighbour_and_weight(pos_r, h)
    ic, fc = neighbour_and_weight(pos_c, w)
    fr, fc = fr[..., None], fc[..., None]
    p00, p01, p10, p11 = img[ir, ic], img[ir, ic + 1], img[ir + 1, ic], img[ir + 1, ic + 1]
    top = (p00 << 20) + fc * (p01 - p00)
    bottom = (p10 << 20) + fc * (p11 - p10)
    out = ((top << 20) + fr * (bottom - top) + (1 << 39)) >> 40
    return out.astype(image.dtype).reshape(image.shape)
