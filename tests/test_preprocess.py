"""Brightness factor and Gaussian smoothing (the paper's preprocessing)."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ispad_core.preprocess import LSM1_BRIGHTNESS, adjust_brightness, gaussian_kernel1d, gaussian_smooth
from tests.reference.preprocess_ref import adjust_brightness_ref, gaussian_smooth_ref


@settings(deadline=None, max_examples=30)
@given(
    seed=st.integers(0, 2**32 - 1),
    factor=st.floats(0, 4, allow_nan=False),
    dtype=st.sampled_from([np.uint8, np.uint16]),
)
def test_adjust_brightness_matches_reference(seed, factor, dtype):
    x = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, (3, 7, 5), dtype=dtype)
    out = adjust_brightness(x, factor)
    assert out.dtype == dtype and out.shape == x.shape and out is not x
    np.testing.assert_array_equal(out, adjust_brightness_ref(x, factor))


def test_adjust_brightness_paper_factor_saturates_and_identity():
    x = np.arange(256, dtype=np.uint8)
    out = adjust_brightness(x, LSM1_BRIGHTNESS)
    assert out[170] == 255 and out[255] == 255 and out[100] == 150 and out[3] == 5
    np.testing.assert_array_equal(adjust_brightness(x, 1.0), x)
    assert (adjust_brightness(x, 0) == 0).all()


@settings(deadline=None, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    ksize=st.sampled_from([1, 3, 5, 7]),
    sigma=st.floats(0.3, 3.0),
    layout=st.sampled_from(["hw", "nhw", "hwc", "nhwc"]),
    mode=st.sampled_from(["reflect", "mirror", "nearest"]),
    dtype=st.sampled_from([np.uint8, np.uint16]),
)
def test_gaussian_smooth_matches_scipy_within_one_level(seed, h, w, ksize, sigma, layout, mode, dtype):
    shape = {"hw": (h, w), "nhw": (3, h, w), "hwc": (h, w, 3), "nhwc": (2, h, w, 2)}[layout]
    channel_axis = -1 if layout.endswith("c") else None
    x = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    out = gaussian_smooth(x, ksize=ksize, sigma=sigma, channel_axis=channel_axis, mode=mode)
    assert out.dtype == dtype and out.shape == x.shape
    ref = gaussian_smooth_ref(x, ksize, sigma, channel_axis, mode)
    tolerance = 0.51 if dtype == np.uint8 else 0.6  # rounding plus float32 arithmetic
    assert np.abs(out - ref).max() <= tolerance
    if layout.startswith("n"):  # items are independent: smoothing acts on spatial axes only
        np.testing.assert_array_equal(gaussian_smooth(x[1:2], ksize=ksize, sigma=sigma, channel_axis=channel_axis, mode=mode)[0], out[1])


def test_gaussian_smooth_paper_setting_constant_and_identity():
    x = np.full((4, 16, 16), 77, np.uint8)
    np.testing.assert_array_equal(gaussian_smooth(x), x)  # constant images stay constant
    y = np.random.default_rng(0).integers(0, 256, (2, 9, 9), dtype=np.uint8)
    np.testing.assert_array_equal(gaussian_smooth(y, ksize=1), y)
    np.testing.assert_allclose(gaussian_kernel1d(3, 1.0), np.exp(-0.5 * np.array([1, 0, 1])) / (1 + 2 * np.exp(-0.5)))


def test_gaussian_smooth_thread_count_independent():
    x = np.random.default_rng(1).integers(0, 256, (6, 40, 40), dtype=np.uint8)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = gaussian_smooth(x)
        numba.set_num_threads(max(2, before))
        many = gaussian_smooth(x)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


@pytest.mark.parametrize(
    "x, factor, exc, match",
    [
        (np.zeros(4, np.float32), 1.5, TypeError, "x: expected dtype uint8, uint16, got float32"),
        (np.zeros(4, np.uint8), -1.0, ValueError, r"factor: expected a value in \[0, inf\), got -1"),
        (np.zeros(4, np.uint8), float("inf"), ValueError, "factor: expected a finite number, got inf"),
        (np.zeros(4, np.uint8), "1.5", TypeError, "factor: expected a real number, got str"),
        (np.zeros(0, np.uint8), 1.5, ValueError, r"x: expected a non-empty array, got shape \(0,\)"),
    ],
)
def test_adjust_brightness_rejects(x, factor, exc, match):
    with pytest.raises(exc, match=match):
        adjust_brightness(x, factor)


_X = np.zeros((4, 8, 8), np.uint8)


@pytest.mark.parametrize(
    "x, kwargs, exc, match",
    [
        (np.zeros(8, np.uint8), {}, ValueError, r"x: expected at least 2 dimensions \(\.\.\., H, W\), got shape \(8,\)"),
        (np.zeros((8, 8), np.uint8), {"channel_axis": -1}, ValueError, r"x: expected at least 3 dimensions \(\.\.\., H, W, C\), got shape \(8, 8\)"),
        (_X.astype(np.float64), {}, TypeError, "x: expected dtype uint8, uint16, got float64"),
        (_X, {"ksize": 4}, ValueError, "ksize: expected an odd int, got 4"),
        (_X, {"ksize": 0}, ValueError, "ksize: expected an int >= 1, got 0"),
        (_X, {"ksize": 3.0}, TypeError, "ksize: expected an int, got float"),
        (_X, {"sigma": 0.0}, ValueError, r"sigma: expected a value in \(0, inf\), got 0"),
        (_X, {"mode": "wrap"}, ValueError, "mode: expected one of 'reflect', 'mirror', 'nearest', got 'wrap'"),
        (_X, {"channel_axis": 0}, ValueError, "channel_axis: expected one of None, -1, got 0"),
    ],
)
def test_gaussian_smooth_rejects(x, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gaussian_smooth(x, **kwargs)
