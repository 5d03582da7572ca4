"""Slow, obviously correct versions of :mod:`ispad_core.preprocess`."""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage as ndi


def adjust_brightness_ref(x: np.ndarray, factor: float) -> np.ndarray:
    """Value by value: round half up, saturate at the dtype's maximum."""
    maxval = np.iinfo(x.dtype).max
    flat = [min(maxval, math.floor(int(v) * factor + 0.5)) for v in x.ravel()]
    return np.array(flat, dtype=x.dtype).reshape(x.shape)


def gaussian_smooth_ref(x, ksize, sigma, channel_axis=None, mode="reflect") -> np.ndarray:
    """scipy.ndimage.gaussian_filter in float64 on the spatial axes with truncate = r / sigma,
    not rounded."""
    s = [0.0] * x.ndim
    spatial = (-3, -2) if channel_axis is not None else (-2, -1)
    for a in spatial:
        s[a] = sigma
    return ndi.gaussian_filter(x.astype(np.float64), s, truncate=(ksize // 2) / sigma, mode=mode)
