"""Numba kernels of the balanced stream (assume valid input, never raise)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ispad_core._shared.config import NJIT


@njit(**NJIT)
def _pixel_change(before, after, i, p, nch):
    a = 0.0
    for c in range(nch):
        a += abs(np.float64(after[i, p * nch + c]) - np.float64(before[i, p * nch + c]))
    return a / nch


@njit(**NJIT)
def mask_contrast(before, after, masks, words, rows, out):
    """Mean absolute change over each listed item's mask, in grey levels of the dtype.

    ``before``/``after`` (N, P * C) the patches without and with the defect, ``masks`` (N, P)
    uint8 0/1, ``words`` the same masks as (N, P // 8) uint64 (to skip eight empty pixels at a
    time), ``rows`` (K,) int64 item indices, ``out`` (K,) float64 (0 for an empty mask). The sum
    runs over the mask's pixels in row-major order, each pixel's change averaged over its
    channels: the numerator of the synthesizer's contrast-to-noise ratio, in the same order.
    """
    npix = masks.shape[1]
    nch = before.shape[1] // npix
    nwords = words.shape[1]
    for k in range(rows.shape[0]):
        i = rows[k]
        total = 0.0
        count = 0
        for w in range(nwords):
            if words[i, w] == 0:
                continue
            for p in range(8 * w, 8 * w + 8):
                if masks[i, p] != 0:
                    total += _pixel_change(before, after, i, p, nch)
                    count += 1
        for p in range(8 * nwords, npix):
            if masks[i, p] != 0:
                total += _pixel_change(before, after, i, p, nch)
                count += 1
        out[k] = total / count if count else 0.0
