"""DRAEM-style Perlin-noise anomalies, in NumPy (the peer of ``ispad_core.synth``).

The recipe of Zavrtanik et al. (DRAEM, ICCV 2021), as anomalib's Perlin anomaly generator uses it:

1. Perlin noise on a lattice of ``2**kx x 2**ky`` cells, ``kx, ky`` drawn from 0..5;
2. the noise map rotated by an angle in [-90, 90] degrees (bilinear, zero fill; imgaug's
   ``Affine(rotate=(-90, 90))``);
3. thresholded at 0.5 into the anomaly mask;
4. a texture image blended into the mask: ``image (1 - m) + (1 - beta) texture m + beta image m``
   with ``beta`` uniform in [0, 0.8].

Written from the published recipe (``rand_perlin_2d_np`` and ``augment_image`` of DRAEM's data
loader), with two deliberate differences: every draw comes from an explicit
``numpy.random.Generator`` (DRAEM mixes the global NumPy and torch generators), and the texture is
given by the caller (DRAEM reads a DTD image from disk and augments it; the benchmark passes another
fault-free patch so file I/O is not timed).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["perlin_anomaly", "perlin_noise", "perlin_noise_literal"]


def _fade(t: np.ndarray) -> np.ndarray:
    return 6 * t**5 - 15 * t**4 + 10 * t**3


def perlin_noise_literal(shape: tuple, res: tuple, rng: np.random.Generator) -> np.ndarray:
    """DRAEM's ``rand_perlin_2d_np``, transcribed line by line (kept to check :func:`perlin_noise`).

    Random unit gradients at the lattice nodes, dot products with the offsets to the four
    surrounding nodes, quintic-fade interpolation, scaled by sqrt(2). Slow: the dot products go
    through (H, W, 2) temporaries reduced over their last axis.
    """
    delta = (res[0] / shape[0], res[1] / shape[1])
    d = (shape[0] // res[0], shape[1] // res[1])
    grid = np.mgrid[0 : res[0] : delta[0], 0 : res[1] : delta[1]].transpose(1, 2, 0) % 1
    angles = 2 * math.pi * rng.random((res[0] + 1, res[1] + 1))
    gradients = np.stack((np.cos(angles), np.sin(angles)), axis=-1)

    def tile_grads(s1, s2):
        g = gradients[s1[0] : s1[1], s2[0] : s2[1]]
        return np.repeat(np.repeat(g, d[0], axis=0), d[1], axis=1)

    def dot(grad, shift):
        offs = np.stack(
            (grid[: shape[0], : shape[1], 0] + shift[0], grid[: shape[0], : shape[1], 1] + shift[1]), axis=-1
        )
        return (offs * grad[: shape[0], : shape[1]]).sum(axis=-1)

    n00 = dot(tile_grads([0, -1], [0, -1]), [0, 0])
    n10 = dot(tile_grads([1, None], [0, -1]), [-1, 0])
    n01 = dot(tile_grads([0, -1], [1, None]), [0, -1])
    n11 = dot(tile_grads([1, None], [1, None]), [-1, -1])
    t = _fade(grid[: shape[0], : shape[1]])
    n0 = n00 + t[..., 0] * (n10 - n00)
    n1 = n01 + t[..., 0] * (n11 - n01)
    return math.sqrt(2) * (n0 + t[..., 1] * (n1 - n0))


def perlin_noise(shape: tuple, res: tuple, rng: np.random.Generator) -> np.ndarray:
    """The same noise as :func:`perlin_noise_literal` (same draws), vectorised without temporaries.

    Per pixel: its cell ``(r // d0, c // d1)``, its offset ``(fy, fx)`` in the cell, the four node
    gradients ``(cos a, sin a)``; the dot products are written out per component. This is the
    fair peer: about five times faster than the literal transcription.
    """
    h, w = shape
    d0, d1 = h // res[0], w // res[1]
    angles = 2 * math.pi * rng.random((res[0] + 1, res[1] + 1))
    gc = np.cos(angles)
    gs = np.sin(angles)
    rows = np.arange(h)
    cols = np.arange(w)
    cy = rows // d0
    cx = cols // d1
    fy = ((rows * (res[0] / h)) % 1)[:, None]
    fx = ((cols * (res[1] / w)) % 1)[None, :]

    def node(dy, dx):
        return gc[cy + dy][:, cx + dx], gs[cy + dy][:, cx + dx]

    c00, s00 = node(0, 0)
    c10, s10 = node(1, 0)
    c01, s01 = node(0, 1)
    c11, s11 = node(1, 1)
    n00 = c00 * fy + s00 * fx
    n10 = c10 * (fy - 1) + s10 * fx
    n01 = c01 * fy + s01 * (fx - 1)
    n11 = c11 * (fy - 1) + s11 * (fx - 1)
    t0 = _fade(fy)
    t1 = _fade(fx)
    n0 = n00 + t0 * (n10 - n00)
    n1 = n01 + t0 * (n11 - n01)
    return math.sqrt(2) * (n0 + t1 * (n1 - n0))


def perlin_anomaly(
    image: np.ndarray,
    texture: np.ndarray,
    rng: np.random.Generator,
    *,
    min_scale: int = 0,
    max_scale: int = 6,
    threshold: float = 0.5,
    max_beta: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """One DRAEM anomaly: ``(augmented uint8 like image, mask uint8 0/1 (H, W))``.

    ``image`` and ``texture`` are uint8 ``(H, W)`` or ``(H, W, C)`` of the same shape, H and W
    divisible by ``2**(max_scale - 1)``. The mask can come out empty (DRAEM then labels the sample
    good).
    """
    h, w = image.shape[:2]
    sx = 2 ** int(rng.integers(min_scale, max_scale))
    sy = 2 ** int(rng.integers(min_scale, max_scale))
    noise = perlin_noise((h, w), (sx, sy), rng)
    angle = rng.uniform(-90.0, 90.0)
    noise = ndimage.rotate(noise, angle, reshape=False, order=1, mode="constant", cval=0.0)
    thr = (noise > threshold).astype(np.float32)
    m = thr if image.ndim == 2 else thr[..., None]
    img = image.astype(np.float32) / 255.0
    tex = texture.astype(np.float32) / 255.0
    beta = rng.random() * max_beta
    out = img * (1 - m) + (1 - beta) * tex * m + beta * img * m
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8), thr.astype(np.uint8)
