"""The shared Numba building blocks against their definitions."""

import math

import numpy as np
import pytest

from ispad_core._shared import kernels as K
from ispad_core._shared.validation import mix64


def test_mix64_is_the_vectorised_mix64():
    values = np.random.default_rng(0).integers(0, 2**64, 200, dtype=np.uint64)
    values[:3] = [0, 1, 2**64 - 1]
    expected = mix64(values)
    got = np.array([K.mix64(v) for v in values], dtype=np.uint64)
    np.testing.assert_array_equal(got, expected)


def test_lattice_value_is_the_top_53_bits_of_the_hashed_triple():
    k1, k2, k0 = np.uint64(0xD1B54A32D192ED03), np.uint64(0xABC98388FB8FAC03), np.uint64(0x9E3779B97F4A7C15)
    for key, a, b in [(0, 0, 0), (123456789, 3, 7), (2**32 - 1, 1000, 2**20)]:
        with np.errstate(over="ignore"):
            z = np.uint64(key) * k1 + np.uint64(a) * k2 + np.uint64(b) + k0
        expected = int(mix64(np.array([z]))[0]) >> 11
        assert K.lattice_value(key, a, b) == expected / 2**53
        assert 0.0 <= K.lattice_value(key, a, b) < 1.0


@pytest.mark.parametrize("sigma, radius", [(1.0, 1), (0.7, 2), (2.3, 7), (4.1, 15)])
def test_gaussian_taps_follow_the_definition(sigma, radius):
    raw = K.gaussian_taps(sigma, radius, False)
    expected = [math.exp(-(k * k) / (2 * sigma * sigma)) for k in range(-radius, radius + 1)]
    np.testing.assert_array_equal(raw, expected)
    norm = K.gaussian_taps(sigma, radius, True)
    assert norm.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_array_equal(norm, norm[::-1])
    np.testing.assert_allclose(norm, np.array(expected) / sum(expected), rtol=1e-15)


def test_fade_is_smoothstep():
    for t in (0.0, 0.25, 0.5, 1.0):
        assert K.fade(t) == t * t * (3 - 2 * t)
