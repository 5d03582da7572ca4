"""The overlay's colour blend written per pixel, as :mod:`ispad_core.nn.inference.overlay` first did
it: the heat map sampled at every picture pixel, its colour and opacity computed per pixel."""

from __future__ import annotations

import numpy as np

STOPS = np.array([[49, 54, 149], [116, 173, 209], [254, 224, 144], [244, 109, 67], [165, 0, 38]], dtype=np.float64)


def colour_map_ref(heat: np.ndarray) -> np.ndarray:
    """Piecewise-linear colours through :data:`STOPS` at heat 0, 0.25, ..., 1."""
    x = np.clip(heat, 0.0, 1.0) * (len(STOPS) - 1)
    lo = np.minimum(np.floor(x).astype(np.int64), len(STOPS) - 2)
    t = (x - lo)[..., None]
    return STOPS[lo] * (1.0 - t) + STOPS[lo + 1] * t


def blend_ref(small: np.ndarray, heat: np.ndarray, covered: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """``base * (1 - alpha) + colour(heat) * alpha`` per pixel, ``alpha = 0.15 + 0.55 * heat`` where
    ``covered`` (else 0), ``base`` darkened to ``0.45 * base`` outside ``inside``; rounded half up."""
    heat = heat.astype(np.float64)
    alpha = np.where(covered, 0.15 + 0.55 * np.clip(heat, 0.0, 1.0), 0.0)[..., None]
    base = small.astype(np.float64)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    if inside is not None:
        base = np.where(inside[..., None], base, 0.45 * base)
    blend = base * (1.0 - alpha) + colour_map_ref(heat) * alpha
    return np.clip(np.floor(blend + 0.5), 0, 255).astype(np.uint8)
