"""Slow, obviously correct versions of :mod:`ispad_core.tiling`, written from the definitions."""

from __future__ import annotations

import numpy as np


def grid_starts_ref(length: int, size: int, stride: int) -> list[int]:
    """0, stride, 2 * stride, ... while the window fits; then one window ending at the border if
    the last one does not already end there."""
    starts = []
    p = 0
    while p + size <= length:
        starts.append(p)
        p += stride
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def sliding_windows_ref(image: np.ndarray, size: int, stride: int):
    """List of (origin, window copy) in row-major order."""
    out = []
    for r in grid_starts_ref(image.shape[0], size, stride):
        for c in grid_starts_ref(image.shape[1], size, stride):
            out.append(((r, c), image[r : r + size, c : c + size].copy()))
    return out


def stitch_ref(tiles, origins, shape, reduce="mean", size=None):
    """Pixel loops over every window: mean or max (``numpy.fmax``: NaN ignored) of the covering
    windows' values, 0 where no window covers the pixel."""
    tiles = np.asarray(tiles)
    H, W = shape[:2]
    if tiles.ndim == 1:
        h, w = size
        tiles = np.broadcast_to(tiles[:, None, None], (tiles.shape[0], h, w))
    h, w = tiles.shape[1:3]
    extra = tiles.shape[3:]
    values = [[[] for _ in range(W)] for _ in range(H)]
    for t, (r0, c0) in enumerate(origins):
        for i in range(h):
            for j in range(w):
                values[r0 + i][c0 + j].append(tiles[t, i, j])
    out = np.zeros((H, W) + extra, dtype=np.float64)
    for r in range(H):
        for c in range(W):
            vs = values[r][c]
            if not vs:
                continue
            stack = np.array(vs, dtype=np.float64)
            out[r, c] = np.fmax.reduce(stack, axis=0) if reduce == "max" else stack.mean(axis=0)
    return out


def window_roi_fraction_ref(roi: np.ndarray, size: int) -> np.ndarray:
    """Fraction of ROI pixels in every size x size window, by brute force."""
    H, W = roi.shape
    out = np.empty((H - size + 1, W - size + 1))
    for r in range(H - size + 1):
        for c in range(W - size + 1):
            out[r, c] = np.count_nonzero(roi[r : r + size, c : c + size]) / (size * size)
    return out
