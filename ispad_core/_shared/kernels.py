"""Numba building blocks that several kernels share, each in one place (private).

- :func:`gaussian_taps`: the Gaussian weights of every smoothing in the library (the synthesizer's
  width profile and optics blur, the paper's 3 x 3 preprocessing in numpy and torch).
- :func:`mix64` and :func:`lattice_value`: SplitMix64's finaliser (the same function as the
  vectorised :func:`ispad_core._shared.validation.mix64`) and the hashed lattice of the value noise.
- :func:`fade`: the smoothstep that interpolates between lattice nodes.

Kernels assume valid input and never raise. Numba's on-disk cache of a calling kernel does not
notice an edit here: after changing this file, clear the ``__pycache__`` folders of the calling
modules (``synth/``) so their kernels compile again.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ispad_core._shared.config import NJIT

_K0 = np.uint64(0x9E3779B97F4A7C15)
_K1 = np.uint64(0xD1B54A32D192ED03)
_K2 = np.uint64(0xABC98388FB8FAC03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV53 = 1.0 / 9007199254740992.0


@njit(**NJIT)
def gaussian_taps(sigma, radius, normalise):
    """``g[k + radius] = exp(-k^2 / (2 sigma^2))`` for ``|k| <= radius``; with ``normalise``
    divided by their sum (accumulated from ``k = -radius`` up, so the result never depends on
    the caller)."""
    g = np.empty(2 * radius + 1)
    total = 0.0
    for k in range(-radius, radius + 1):
        g[k + radius] = math.exp(-(k * k) / (2.0 * sigma * sigma))
        total += g[k + radius]
    if normalise:
        for k in range(2 * radius + 1):
            g[k] /= total
    return g


@njit(**NJIT)
def mix64(z):
    """SplitMix64's finaliser of one uint64 (Steele, Lea and Flood 2014); wraps modulo 2**64."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(**NJIT)
def lattice_value(key, a, b):
    """Uniform [0, 1) value of lattice node (a, b) for noise key ``key`` (mix64 of the triple)."""
    z = mix64(np.uint64(key) * _K1 + np.uint64(a) * _K2 + np.uint64(b) + _K0)
    return float(z >> np.uint64(11)) * _INV53


@njit(**NJIT)
def fade(t):
    """Smoothstep ``3 t^2 - 2 t^3`` on [0, 1]."""
    return t * t * (3.0 - 2.0 * t)
