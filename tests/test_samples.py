"""The built-in screen-print sample."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ispad_core.samples import KINDS, screen_print


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_dtype_determinism(kind, channels):
    img = screen_print((70, 90), rng=3, kind=kind, channels=channels)
    assert img.dtype == np.uint8
    assert img.shape == ((70, 90) if channels == 1 else (70, 90, 3))
    np.testing.assert_array_equal(img, screen_print((70, 90), rng=3, kind=kind, channels=channels))
    assert not np.array_equal(img, screen_print((70, 90), rng=4, kind=kind, channels=channels))


def test_same_bytes_on_one_and_many_threads():
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = screen_print((128, 96), rng=7, channels=3)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = screen_print((128, 96), rng=7, channels=3)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


def test_designs_differ_and_look_like_print():
    imgs = {k: screen_print((256, 256), rng=0, kind=k).astype(float) for k in KINDS}
    for k, img in imgs.items():
        # a light foil with darker ink: plenty of structure, nothing saturated
        assert 120 < img.mean() < 245, k
        assert 4 < img.std() < 60, k
        assert (img == 0).mean() < 0.001 and (img == 255).mean() < 0.01, k
    assert len({round(v.mean(), 3) for v in imgs.values()}) == len(KINDS)


def test_periodic_structure():
    """A dot screen has a strong spectral peak away from DC (its period)."""
    img = screen_print((256, 256), rng=1, kind="dots").astype(float)
    spec = np.abs(np.fft.fft2(img - img.mean()))
    spec[:3, :3] = spec[-3:, :3] = spec[:3, -3:] = spec[-3:, -3:] = 0
    assert spec.max() > 20 * np.median(spec)


def test_grey_and_rgb_share_the_design():
    g = screen_print((96, 96), rng=5, kind="lines").astype(float)
    c = screen_print((96, 96), rng=5, kind="lines", channels=3).astype(float)
    luma = c @ np.array([0.299, 0.587, 0.114])
    assert np.corrcoef(g.ravel(), luma.ravel())[0, 1] > 0.9


def test_generator_state_is_shared():
    gen = np.random.default_rng(0)
    a = screen_print((32, 32), rng=gen)
    b = screen_print((32, 32), rng=gen)
    assert not np.array_equal(a, b)


@settings(deadline=None, max_examples=20)
@given(h=st.integers(1, 300), w=st.integers(1, 300), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(KINDS))
def test_any_shape(h, w, seed, kind):
    img = screen_print((h, w), rng=seed, kind=kind)
    assert img.shape == (h, w) and img.dtype == np.uint8


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((64,), {}, TypeError, r"shape: expected a \(height, width\) pair of ints, got int"),
        (("ab",), {}, TypeError, r"shape: expected a \(height, width\) pair of ints, got str"),
        (((64, 64, 3),), {}, ValueError, r"shape: expected a \(height, width\) pair, got 3 values"),
        (((0, 64),), {}, ValueError, r"shape\[0\]: expected an int >= 1, got 0"),
        (((64, 20000),), {}, ValueError, r"shape\[1\]: expected an int <= 16384, got 20000"),
        (((64, 64.0),), {}, TypeError, r"shape\[1\]: expected an int, got float"),
        (((64, 64),), {"kind": "stripes"}, ValueError, "kind: expected one of 'dots', 'lines', 'mesh', 'mixed', got 'stripes'"),
        (((64, 64),), {"channels": 2}, ValueError, "channels: expected one of 1, 3, got 2"),
        (((64, 64),), {"channels": "rgb"}, TypeError, "channels: expected an int, got str"),
        (((64, 64),), {"rng": -1}, ValueError, "rng: expected a non-negative seed, got -1"),
    ],
)
def test_rejects(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        screen_print(*args, **kwargs)
