"""SyntheticStream.set_contrast_gains: defects at gain g carry g times the contrast of native ones
(by the synthesizer's own visibility figure), the rest of each item unchanged; gains pickle."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ispad_core._shared.errors import InputError
from ispad_core.samples import screen_print
from ispad_core.stream import SyntheticStream

IMAGE = screen_print((256, 256), rng=0)


def _stream(preset="scratch", n=24, augment=None, seed=0):
    return SyntheticStream(IMAGE, n=n, size=64, seed=seed, preset=preset, augment=augment)


def _same_patch(a, b, d):
    """Defective items drawn on the same patch with the same draws at both gains (accepted at the
    synthesizer's first attempt both times, no redraw on another patch)."""
    return d & (a.origins == b.origins).all(axis=1) & (a.sources == b.sources) & (a.attempts == 1) & (b.attempts == 1)


@pytest.mark.parametrize("gain", [0.5, 2.0, 3.0])
def test_gain_multiplies_the_visibility_figure(gain):
    s = _stream()
    idx = np.arange(s.n)
    native = s._gen.make_items(idx)
    s.set_contrast_gains(gain)
    scaled = s._gen.make_items(idx)
    d = _same_patch(native, scaled, native.labels == 1)
    assert d.sum() >= 4
    # scratch's visibility figure is the CNR: linear in the contrast (up to 8-bit rounding and clipping)
    ratio = scaled.visibility["cnr"][d] / native.visibility["cnr"][d]
    assert np.median(ratio) == pytest.approx(gain, rel=0.03)
    assert np.all((ratio > 0.85 * gain) & (ratio < 1.1 * gain))
    contrast = scaled.visibility["contrast"][d] / native.visibility["contrast"][d]
    assert np.median(contrast) == pytest.approx(gain, rel=0.05)
    # the same defect: the same mask, and fault-free items byte for byte the same
    np.testing.assert_array_equal(scaled.masks[d], native.masks[d])
    good = native.labels == 0
    np.testing.assert_array_equal(scaled.images[good], native.images[good])


def test_gain_one_is_the_stream_itself_and_none_resets():
    s = _stream(augment="lsm1", preset="mixed")
    before = s[:]
    s.set_contrast_gains(np.ones(s.n))
    assert s._gen.gains is None
    for x, y in zip(before, s[:]):
        np.testing.assert_array_equal(x, y)
    s.set_contrast_gains(2.0)
    assert not np.array_equal(s[:][0], before[0])
    s.set_contrast_gains(None)
    np.testing.assert_array_equal(s[:][0], before[0])
    np.testing.assert_array_equal(s.contrast_gains, np.ones(s.n))


@settings(max_examples=8, deadline=None)
@given(st.lists(st.sampled_from([1.0, 1.5, 3.0]), min_size=12, max_size=12), st.permutations(list(range(12))))
def test_mixed_gains_in_one_batch_equal_each_gain_alone(gains, order):
    """Items of several gains in one batch: each as the batch of its gain alone makes it."""
    s = _stream(preset="mixed", augment="lsm1", n=12)
    gains = np.asarray(gains)
    s.set_contrast_gains(gains)
    images, masks, labels = s[np.asarray(order)]
    for g in np.unique(gains):
        s.set_contrast_gains(np.full(12, g))
        alone = s[np.asarray(order)]
        sel = gains[np.asarray(order)] == g
        np.testing.assert_array_equal(images[sel], alone[0][sel])
        np.testing.assert_array_equal(masks[sel], alone[1][sel])
        s.set_contrast_gains(gains)


def test_gains_travel_with_the_pickled_stream():
    s = _stream(n=8)
    s.set_contrast_gains(np.linspace(3, 1, 8))
    t = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(t.contrast_gains, s.contrast_gains)
    np.testing.assert_array_equal(t[:][0], s[:][0])


@pytest.mark.parametrize("bad", [np.ones(3), 0.0, -1.0, 11.0, np.nan, np.ones((8, 1))])
def test_bad_gains_are_refused(bad):
    with pytest.raises(InputError, match="gains"):
        _stream(n=8).set_contrast_gains(bad)
