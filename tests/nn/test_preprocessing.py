"""Batch preprocessing on the device against the scipy reference and ispad_core.preprocess."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from ispad_core.nn import PREPROCESS_PRESETS, Preprocess, preprocess_batch  # noqa: E402
from tests.reference.nn_ref import preprocess_reference  # noqa: E402

pytestmark = pytest.mark.torch


@settings(deadline=None, max_examples=40)
@given(
    shape=st.sampled_from([(2, 9, 7), (1, 16, 16), (3, 5, 12, 3), (2, 4, 4, 1), (1, 2, 3)]),
    brightness=st.sampled_from([1.0, 1.5, 0.8, 2.3]),
    ksize=st.sampled_from([1, 3, 5]),
    sigma=st.sampled_from([1.0, 0.6, 2.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_scipy_reference(shape, brightness, ksize, sigma, seed):
    images = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    params = Preprocess(brightness=brightness, ksize=ksize, sigma=sigma)
    got = preprocess_batch(torch.from_numpy(images), params, normalize=False).numpy()
    ref = preprocess_reference(images, brightness, ksize, sigma)
    ref = ref[:, None] if images.ndim == 3 else np.moveaxis(ref, -1, 1)
    assert got.shape == ref.shape and got.dtype == np.float32
    diff = np.abs(got.astype(np.float64) - ref)
    # float32 vs float64 can only move a value that sits on a .5 rounding boundary
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


@pytest.mark.parametrize("shape", [(4, 33, 31), (3, 20, 17, 3)])
def test_matches_ispad_core_preprocess(shape):
    from ispad_core.preprocess import adjust_brightness, gaussian_smooth

    images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    channel_axis = -1 if len(shape) == 4 else None
    for preset in ("lsm1", "lsm2", "none"):
        p = PREPROCESS_PRESETS[preset]
        bright = adjust_brightness(images, p.brightness)
        expected = gaussian_smooth(bright, ksize=p.ksize, sigma=p.sigma, channel_axis=channel_axis)
        if channel_axis is not None:
            expected = np.moveaxis(expected, -1, 1)
        else:
            expected = expected[:, None]
        got = preprocess_batch(torch.from_numpy(images), p, normalize=False).numpy()
        diff = np.abs(got - expected.astype(np.float32))
        # both filter in float32 and round half up; only summation order differs
        assert diff.max() <= 1 and (diff == 0).mean() > 0.999, preset
        # the brightness step alone is the same table: exact
        if p.brightness != 1.0:
            only = preprocess_batch(torch.from_numpy(images), dataclasses.replace(p, ksize=1), normalize=False).numpy()
            ref = np.moveaxis(bright, -1, 1) if channel_axis is not None else bright[:, None]
            np.testing.assert_array_equal(only, ref.astype(np.float32))


def test_paper_settings_and_normalisation():
    assert PREPROCESS_PRESETS["lsm1"] == Preprocess(brightness=1.5, ksize=3, sigma=1.0)
    assert PREPROCESS_PRESETS["asm"].brightness == 1.0 and PREPROCESS_PRESETS["asm"].ksize == 3
    x = torch.full((1, 6, 6), 200, dtype=torch.uint8)
    # brightness saturates at 255
    assert preprocess_batch(x, "lsm1", normalize=False).unique().tolist() == [255.0]
    p = Preprocess(mean=0.5, std=0.25)
    out = preprocess_batch(x, p)
    torch.testing.assert_close(out, torch.full((1, 1, 6, 6), (200 / 255 - 0.5) / 0.25))
    # None: no brightness change and no smoothing
    y = torch.randint(0, 256, (2, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(preprocess_batch(y, None, normalize=False)[:, 0], y.float())


def test_channels_last_and_colour_layout():
    x = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    a = preprocess_batch(x, "lsm2")
    b = preprocess_batch(x, "lsm2", channels_last=True)
    assert a.shape == (2, 3, 8, 8) and b.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(a, b)
    # channels are smoothed independently
    single = preprocess_batch(x[..., 1].contiguous(), "lsm2")
    torch.testing.assert_close(a[:, 1:2], single)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: preprocess_batch(np.zeros((1, 4, 4), np.uint8)), TypeError, "images: expected a torch.Tensor, got ndarray"),
        (lambda: preprocess_batch(torch.zeros(1, 4, 4)), TypeError, "images: expected dtype torch.uint8, got torch.float32"),
        (lambda: preprocess_batch(torch.zeros(4, 4, dtype=torch.uint8)), ValueError,
         r"images: expected a \(B, H, W\) or \(B, H, W, C\) batch, got shape \(4, 4\)"),
        (lambda: preprocess_batch(torch.zeros(1, 4, 4, dtype=torch.uint8), "lsm3"), ValueError,
         "preprocess: expected one of 'lsm1', 'lsm2', 'asm', 'none', got 'lsm3'"),
        (lambda: preprocess_batch(torch.zeros(1, 4, 4, dtype=torch.uint8), 1.5), TypeError,
         "preprocess: expected a Preprocess, a preset name or None, got float"),
        (lambda: Preprocess(ksize=4), ValueError, "ksize: expected an odd kernel size, got 4"),
        (lambda: Preprocess(brightness=0), ValueError, r"brightness: expected a value in \(0, inf\), got 0"),
        (lambda: Preprocess(std=0.0), ValueError, r"std: expected a value in \(0, inf\), got 0"),
        (lambda: Preprocess(sigma=-1.0), ValueError, r"sigma: expected a value in \(0, inf\), got -1"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
