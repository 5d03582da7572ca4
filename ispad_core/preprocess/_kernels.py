"""Numba kernels behind :mod:`ispad_core.preprocess`.

Every kernel assumes valid, already converted input (the public wrapper checks it) and never
raises.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ispad_core._shared.config import NJIT_PARALLEL


@njit(**NJIT_PARALLEL)
def separable_smooth(x, weights, row_index, col_index, maxval, out):  # pragma: no cover - compiled
    """Separable filter of every plane of ``x`` (P, H, W, C) into ``out`` (same shape).

    ``weights`` (2r + 1,) float32 is applied along H then W; ``row_index`` (H + 2r,) and
    ``col_index`` (W + 2r,) map padded positions to source rows/columns (the border mode).
    Per output row: the vertical combination of 2r + 1 source rows into a float32 buffer (whole
    rows, vectorised), the buffer padded by the column map, then the horizontal combination,
    rounded half up and clipped to ``[0, maxval]``. Parallel over planes (images and leading
    axes); each writes only its own plane, and every value is summed in a fixed order.
    """
    P, H, W, C = x.shape
    taps = weights.shape[0]
    r = taps // 2
    WC = W * C
    for p in prange(P):
        plane = x[p].reshape(H, WC)
        col = np.empty(WC, dtype=np.float32)
        padded = np.empty((W + 2 * r) * C, dtype=np.float32)
        acc = np.empty(WC, dtype=np.float32)
        for i in range(H):
            col[:] = 0.0
            for k in range(taps):
                src = plane[row_index[i + k]]
                wk = weights[k]
                for j in range(WC):
                    col[j] += wk * np.float32(src[j])
            for j in range(W + 2 * r):
                s = col_index[j] * C
                for ch in range(C):
                    padded[j * C + ch] = col[s + ch]
            dst = out[p, i].reshape(WC)
            acc[:] = 0.0
            for k in range(taps):
                wk = weights[k]
                seg = padded[k * C : k * C + WC]
                for j in range(WC):
                    acc[j] += wk * seg[j]
            for j in range(WC):
                v = math.floor(acc[j] + np.float32(0.5))
                dst[j] = min(max(v, 0.0), maxval)
