"""Deterministic synthetic anomaly maps and masks, for the example script, benchmarks and docs.

Not a model of any detector: smooth background scores (a coarse bilinear field plus fine noise,
float32), a few false-alarm spots on fault-free images, and ground-truth regions shaped as blobs
(rotated ellipses) or filaments (thick random walks with momentum) of a given pixel range, whose
pixels and surroundings get a per-region detection strength (some regions are missed). Sized like
an ISP-AD test split by default: 1565 maps of 256 x 256, 95 of them with 1 to 3 regions of 5 to
2000 pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ispad_core._shared.validation import RNGLike, as_generator, check_int, check_range


@dataclass(frozen=True)
class DemoMaps:
    """Synthetic pixel-level evaluation data.

    Attributes
    ----------
    anomaly_maps : ndarray of float32, shape (N, H, W)
    masks : ndarray of bool, shape (N, H, W)
    labels : ndarray of int64, shape (N,)
        1 for maps with a ground-truth region.
    """

    anomaly_maps: np.ndarray
    masks: np.ndarray
    labels: np.ndarray

    @property
    def image_scores(self) -> np.ndarray:
        """Per-image score: the maximum of the map (float64)."""
        return self.anomaly_maps.reshape(len(self.anomaly_maps), -1).max(axis=1).astype(np.float64)


def _bilinear_weights(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) float32 matrix of linear interpolation weights (pixel centres aligned)."""
    x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.minimum(np.floor(x).astype(int), n_in - 2)
    frac = x - lo
    w = np.zeros((n_out, n_in), dtype=np.float32)
    w[np.arange(n_out), lo] = 1 - frac
    w[np.arange(n_out), lo + 1] += frac
    return w


def _blob(rng: np.random.Generator, area: int) -> np.ndarray:
    ratio = rng.uniform(0.3, 1.0)
    a = math.sqrt(area / (math.pi * ratio))
    b = a * ratio
    theta = rng.uniform(0, math.pi)
    r = int(math.ceil(a)) + 1
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    u = xx * math.cos(theta) + yy * math.sin(theta)
    v = -xx * math.sin(theta) + yy * math.cos(theta)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _filament(rng: np.random.Generator, area: int) -> np.ndarray:
    width = int(rng.integers(1, 4))
    steps = max(2, area // width)
    heading = rng.uniform(0, 2 * math.pi)
    turn = 0.0
    pts = np.empty((steps, 2))
    p = np.zeros(2)
    for i in range(steps):
        turn = 0.85 * turn + 0.15 * rng.normal(0, 0.6)
        heading += turn
        p = p + (math.sin(heading), math.cos(heading))
        pts[i] = p
    pts = np.round(pts - pts.min(axis=0)).astype(int) + width
    canvas = np.zeros(tuple(pts.max(axis=0) + width + 1), dtype=bool)
    canvas[pts[:, 0], pts[:, 1]] = True
    if width > 1:
        canvas = ndimage.binary_dilation(canvas, iterations=width - 1)
    return canvas


def _region(rng: np.random.Generator, shape: tuple[int, int], size_range: tuple[int, int]) -> np.ndarray:
    """A blob or filament mask of ``size_range`` pixels (drawn log-uniformly), placed at random."""
    lo, hi = size_range
    for _ in range(100):
        area = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
        shape_mask = _blob(rng, area) if rng.random() < 0.5 else _filament(rng, area)
        if shape_mask.shape[0] > shape[0] or shape_mask.shape[1] > shape[1]:
            continue
        if not lo <= shape_mask.sum() <= hi:
            continue
        r0 = int(rng.integers(0, shape[0] - shape_mask.shape[0] + 1))
        c0 = int(rng.integers(0, shape[1] - shape_mask.shape[1] + 1))
        out = np.zeros(shape, dtype=bool)
        out[r0 : r0 + shape_mask.shape[0], c0 : c0 + shape_mask.shape[1]] = shape_mask
        return out
    out = np.zeros(shape, dtype=bool)  # pragma: no cover - only for tiny images
    out.flat[rng.integers(out.size)] = True
    return out


def demo_maps(
    n_maps: int = 1565,
    shape: tuple[int, int] = (256, 256),
    n_defective: int = 95,
    *,
    regions_per_map: tuple[int, int] = (1, 3),
    region_size: tuple[int, int] = (5, 2000),
    rng: RNGLike = 0,
) -> DemoMaps:
    """Synthetic anomaly maps with ground truth (see the module docstring).

    Parameters
    ----------
    n_maps, shape, n_defective
        Number of maps, their (H, W), and how many of them have ground-truth regions.
    regions_per_map, region_size
        Inclusive ranges of regions per defective map and pixels per region.
    rng
        Seed or generator; the same seed gives the same bytes.

    Returns
    -------
    DemoMaps

    Examples
    --------
    >>> d = demo_maps(20, (32, 32), 4, region_size=(5, 60), rng=0)
    >>> d.anomaly_maps.shape, d.anomaly_maps.dtype, int(d.labels.sum())
    ((20, 32, 32), dtype('float32'), 4)
    """
    n_maps = check_int(n_maps, "n_maps", minimum=1)
    n_defective = check_int(n_defective, "n_defective", minimum=0, maximum=n_maps)
    h, w = (check_int(v, "shape", minimum=8) for v in shape)
    regions_per_map = check_range(regions_per_map, "regions_per_map", minimum=1, integer=True)
    region_size = check_range(region_size, "region_size", minimum=1, integer=True)
    gen = as_generator(rng)
    maps = np.empty((n_maps, h, w), dtype=np.float32)
    coarse_shape = (max(2, h // 28), max(2, w // 28))
    rows, cols = _bilinear_weights(h, coarse_shape[0]), _bilinear_weights(w, coarse_shape[1])
    chunk = 64
    for start in range(0, n_maps, chunk):
        m = min(chunk, n_maps - start)
        coarse = gen.random((m, *coarse_shape), dtype=np.float32)
        out = maps[start : start + m]
        np.matmul(rows, coarse @ cols.T, out=out)  # bilinear upsampling, separable
        out *= 0.6
        out += 0.4 * gen.random((m, h, w), dtype=np.float32)
    masks = np.zeros((n_maps, h, w), dtype=bool)
    labels = np.zeros(n_maps, dtype=np.int64)
    defective = np.sort(gen.choice(n_maps, n_defective, replace=False))
    labels[defective] = 1
    for i in defective:
        for _ in range(int(gen.integers(regions_per_map[0], regions_per_map[1] + 1))):
            region = _region(gen, (h, w), region_size)
            strength = gen.uniform(0.0, 0.9)
            halo = ndimage.gaussian_filter(region.astype(np.float32), sigma=gen.uniform(0.5, 3.0))
            halo /= max(float(halo.max()), 1e-6)
            maps[i] += (strength * halo).astype(np.float32)
            masks[i] |= region
    # False alarms: bright spots on about one fault-free map in ten.
    normal = np.flatnonzero(labels == 0)
    for i in gen.choice(normal, size=len(normal) // 10, replace=False) if len(normal) else ():
        spot = np.zeros((h, w), dtype=np.float32)
        spot[gen.integers(h), gen.integers(w)] = 1.0
        spot = ndimage.gaussian_filter(spot, sigma=gen.uniform(1.0, 4.0))
        maps[i] += gen.uniform(0.2, 0.7) * spot / spot.max()
    return DemoMaps(maps, masks, labels)
