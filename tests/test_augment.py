"""Table-8 augmentation: the warp against scipy, exact flips and rotations, masks, determinism."""

import json
import math

import numba
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from ispad_core.augment import _kernels as K
from ispad_core.augment import (
    AUGMENT_PRESETS,
    AugmentParams,
    augment,
    augment_batch,
    augment_batch_with_masks,
    augment_with_mask,
    warp_affine,
)
from tests.reference.augment_ref import affine_matrix_ref, augment_ref, draw_params_ref, warp_fixed_ref, warp_ref

STILL = dict(p_affine=1.0, rotation=0.0, scale=(1.0, 1.0), shear=0.0, vflip=0.0, hflip=0.0,
             brightness=(1.0, 1.0), contrast=(1.0, 1.0))


def _textured(shape, dtype=np.uint8, seed=0):
    """Smooth random texture spanning the dtype's range (so interpolation matters)."""
    rng = np.random.default_rng(seed)
    noise = ndi.gaussian_filter(rng.normal(size=shape), [1.5, 1.5] + [0] * (len(shape) - 2))
    noise = (noise - noise.min()) / (np.ptp(noise) + 1e-12)
    return np.round(noise * np.iinfo(dtype).max).astype(dtype)


# ----------------------------------------------------------------------------- the warp


@settings(deadline=None, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    channels=st.sampled_from([None, 3]),
    dtype=st.sampled_from([np.uint8, np.uint16]),
)
def test_bilinear_warp_matches_scipy_within_one_level(seed, h, w, channels, dtype):
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels is None else (h, w, channels)
    image = _textured(shape, dtype, seed)
    a = np.eye(2) + rng.normal(0, 0.4, (2, 2))
    matrix = np.c_[a, rng.normal(0, max(h, w) / 3, 2)]
    out = warp_affine(image, matrix, channel_axis=None if channels is None else -1)
    assert out.dtype == image.dtype and out.shape == image.shape
    ref = warp_ref(image, matrix, 1)
    # everywhere, borders included: reflection is scipy's "mirror"
    assert np.abs(out - ref).max() <= 1.0
    assert np.abs(out - np.floor(ref + 0.5)).max() <= 1


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 30), w=st.integers(1, 30))
def test_nearest_warp_matches_scipy(seed, h, w):
    rng = np.random.default_rng(seed)
    mask = (rng.random((h, w)) < 0.3).astype(np.uint8)
    matrix = np.c_[np.eye(2) + rng.normal(0, 0.4, (2, 2)), rng.normal(0, 8, 2)]
    out = warp_affine(mask, matrix, order=0)
    ref = ndi.affine_transform(mask, matrix[:, :2], offset=matrix[:, 2], order=0, mode="mirror")
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(warp_affine(mask.astype(bool), matrix, order=0), ref.astype(bool))


def test_flips_and_quarter_turns_are_exact():
    patch = _textured((33, 33, 3))
    n = 32
    cases = {
        "vflip": ([[-1, 0, n], [0, 1, 0]], patch[::-1]),
        "hflip": ([[1, 0, 0], [0, -1, n]], patch[:, ::-1]),
        "rot90": ([[0, -1, n], [1, 0, 0]], None),
        "rot180": ([[-1, 0, n], [0, -1, n]], np.rot90(patch, 2)),
        "transpose": ([[0, 1, 0], [1, 0, 0]], patch.transpose(1, 0, 2)),
    }
    for name, (matrix, expected) in cases.items():
        out = warp_affine(patch, matrix, channel_axis=-1)
        if expected is None:  # out[r, c] = patch[n - c, r]
            expected = np.stack([patch[n - c, :] for c in range(n + 1)], axis=1)
        np.testing.assert_array_equal(out, expected, err_msg=name)


@pytest.mark.parametrize("angle, k", [(90.0, -1), (-90.0, 1), (180.0, 2), (270.0 - 360.0, 1)])
def test_augment_quarter_turns_are_exact_rotations(angle, k):
    patch = _textured((64, 64), seed=1)
    params = AugmentParams(**{**STILL, "rotation": (angle, angle)})
    out = augment(patch, params, rng=0)
    np.testing.assert_array_equal(out, np.rot90(patch, k))


@pytest.mark.parametrize("flip, expected", [("vflip", np.flipud), ("hflip", np.fliplr)])
def test_augment_flips_are_exact(flip, expected):
    patch = _textured((40, 50, 3), np.uint16, seed=2)
    mask = np.zeros((40, 50), np.uint8)
    mask[3:9, 5:20] = 1
    out, warped = augment_with_mask(patch, mask, AugmentParams(**{**STILL, flip: 1.0}), rng=3, channel_axis=-1)
    np.testing.assert_array_equal(out, expected(patch))
    np.testing.assert_array_equal(warped, expected(mask))


def test_kernel_matrix_matches_reference_composition():
    rng = np.random.default_rng(4)
    for _ in range(50):
        h, w = rng.integers(1, 300, 2)
        args = (rng.uniform(-180, 180), rng.uniform(0.5, 2), rng.uniform(-40, 40), bool(rng.random() < 0.5), bool(rng.random() < 0.5))
        np.testing.assert_allclose(K.affine_matrix(h, w, *args), affine_matrix_ref(h, w, *args), atol=1e-9)


def test_reflect_index_matches_numpy_pad():
    for n in [1, 2, 3, 7]:
        padded = np.pad(np.arange(n), 3 * n + 2, mode="reflect" if n > 1 else "edge")
        got = [K.reflect_index(i, n) for i in range(-(3 * n + 2), n + 3 * n + 2)]
        np.testing.assert_array_equal(got, padded)


def _matrix(kind, rng, h, w):
    if kind == "near identity":
        return np.c_[np.eye(2) + rng.normal(0, 0.4, (2, 2)), rng.normal(0, max(h, w) / 3, 2)]
    if kind == "zoomed out":  # positions many periods away: repeated reflections
        return np.c_[rng.normal(0, 8, (2, 2)), rng.normal(0, 200, 2)]
    if kind == "integer":  # positions exactly on the last row or column, steps of 0
        return np.c_[rng.integers(-2, 3, (2, 2)), rng.integers(-3 * h, 3 * h, 2)].astype(float)
    return np.array([[1.0, 0.0, rng.integers(-50, 50) + 0.5], [0.0, 1.0, rng.uniform(-50, 50)]])


@settings(deadline=None, max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(2, 40),
    w=st.integers(2, 40),
    channels=st.sampled_from([None, 3]),
    dtype=st.sampled_from([np.uint8, np.uint16]),
    kind=st.sampled_from(["near identity", "zoomed out", "integer", "shift"]),
)
def test_bilinear_warp_equals_fixed_point_definition_bit_for_bit(seed, h, w, channels, dtype, kind):
    # the kernel cuts grey rows into runs and interpolates uint8 in float64; the reference
    # treats every pixel alike in int64, so this pins the bytes, borders included
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels is None else (h, w, channels)
    image = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    matrix = _matrix(kind, rng, h, w)
    out = warp_affine(image, matrix, channel_axis=None if channels is None else -1)
    np.testing.assert_array_equal(out, warp_fixed_ref(image, matrix))


@numba.njit
def _lerp_mismatches(p10, p11, weights, step):
    bad = 0
    for p00 in range(0, 256, step):
        for p01 in range(0, 256, step):
            for fr in weights:
                for fc in weights:
                    a = K._lerp_u8(np.uint8(p00), np.uint8(p01), np.uint8(p10), np.uint8(p11), fr, fc)
                    b = K._lerp_fixed(np.int64(p00), np.int64(p01), np.int64(p10), np.int64(p11), fr, fc)
                    bad += a != b
    return bad


def test_float_bilinear_of_bytes_equals_fixed_point():
    rng = np.random.default_rng(11)
    weights = np.r_[0, 1, 2**19, 2**20 - 1, 2**20, rng.integers(0, 2**20, 3)].astype(np.int64)
    step = 15 if numba.config.DISABLE_JIT else 1  # every top pair when compiled; 0, 15 ... 255 without
    for p10, p11 in [(0, 255), (255, 0), (255, 255), (0, 0), *rng.integers(0, 256, (4, 2))]:
        assert _lerp_mismatches(p10, p11, weights, step) == 0


# ----------------------------------------------------------------------------- augment_batch


EXTREME = AugmentParams(rotation=180, scale=(0.3, 3.0), shear=60, p_affine=0.5, brightness=(0.2, 3), contrast=(0, 3))


@pytest.mark.parametrize("preset", ["lsm1", "lsm2", "asm", EXTREME])
@pytest.mark.parametrize("channels", [None, 3])
def test_augment_batch_matches_reference_pipeline(preset, channels):
    n = 12
    shape = (n, 48, 40) if channels is None else (n, 48, 40, channels)
    patches = np.stack([_textured(shape[1:], seed=s) for s in range(n)])
    seeds = np.arange(1000, 1000 + n, dtype=np.uint32)
    out = augment_batch(patches, preset, seeds=seeds)
    params = AUGMENT_PRESETS[preset] if isinstance(preset, str) else preset
    applied = 0
    for i in range(n):
        ref, _, drawn = augment_ref(patches[i], params, seeds[i])
        applied += drawn["apply"]
        diff = np.abs(out[i].astype(int) - ref.astype(int))
        # one level from the warp's rounding, amplified at most by brightness * contrast
        bound = max(1, math.ceil(drawn["brightness"] * drawn["contrast"]))
        assert diff.max() <= bound, (i, diff.max(), drawn)
        assert (diff > 0).mean() < 0.02
    assert applied > 0
    if preset is EXTREME:  # p_affine 0.5: both paths are exercised
        assert applied < n


def test_mask_lands_on_the_same_pixels_as_the_image():
    rng = np.random.default_rng(5)
    masks = np.zeros((16, 64, 64), np.uint8)
    for m in masks:
        r, c = rng.integers(5, 40, 2)
        m[r : r + rng.integers(3, 20), c : c + rng.integers(3, 20)] = 1
        m[rng.integers(0, 64), :] = 1  # a thin line as well
    images = masks * np.uint8(255)
    params = AugmentParams(p_affine=1.0, brightness=(1, 1), contrast=(1, 1), rotation=45, shear=20)
    out, warped = augment_batch_with_masks(images, masks, params, rng=7)
    assert set(np.unique(warped)) <= {0, 1}
    assert (warped[out == 255] == 1).all() and (warped[out == 0] == 0).all()
    assert warped.sum() > 0.5 * masks.sum()
    # bool masks stay bool, and illumination never touches masks
    out_b, warped_b = augment_batch_with_masks(images, masks.astype(bool), "lsm1", rng=7)
    assert warped_b.dtype == np.bool_
    _, warped_u = augment_batch_with_masks(images, masks, "lsm1", rng=7)
    # the images are those of augment_batch with the same seeds
    np.testing.assert_array_equal(out_b, augment_batch(images, "lsm1", rng=7))
    np.testing.assert_array_equal(warped_b, warped_u.astype(bool))


def test_unit_factors_and_no_affine_change_nothing():
    patches = np.stack([_textured((32, 48, 3), seed=s) for s in range(4)])
    masks = (patches[..., 0] > 128).astype(np.uint8)
    still = AugmentParams(p_affine=0.0, brightness=(1.0, 1.0), contrast=(1.0, 1.0))
    out, warped = augment_batch_with_masks(patches, masks, still, rng=0)
    np.testing.assert_array_equal(out, patches)
    np.testing.assert_array_equal(warped, masks)
    identity_warp = AugmentParams(**STILL)
    np.testing.assert_array_equal(augment_batch(patches, identity_warp, rng=0), patches)


def test_illumination_only_follows_the_formula():
    patch = _textured((30, 30), np.uint16, seed=8)
    params = AugmentParams(p_affine=0.0, brightness=(1.2, 1.2), contrast=(0.8, 0.8))
    out = augment(patch, params, rng=1)
    mu = 1.2 * patch.mean()
    expected = np.clip(np.floor(0.8 * (1.2 * patch.astype(float) - mu) + mu + 0.5), 0, 65535)
    assert np.abs(out - expected).max() <= 1
    bright = augment(np.full((8, 8), 250, np.uint8), AugmentParams(p_affine=0, brightness=(1.25, 1.25)), rng=0)
    assert (bright == 255).all()  # saturates instead of wrapping


def test_deterministic_per_item_seed_thread_count_and_batch_order():
    patches = np.stack([_textured((64, 64), seed=s) for s in range(24)])
    masks = (patches > 140).astype(np.uint8)
    seeds = np.random.default_rng(9).choice(2**32, 24, replace=False).astype(np.uint32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one, one_m = augment_batch_with_masks(patches, masks, "lsm2", seeds=seeds)
        numba.set_num_threads(max(2, before))
        many, many_m = augment_batch_with_masks(patches, masks, "lsm2", seeds=seeds)
    finally:
        numba.set_num_threads(before)
    assert one.tobytes() == many.tobytes() and one_m.tobytes() == many_m.tobytes()
    perm = np.random.default_rng(10).permutation(24)
    shuffled = augment_batch(patches[perm], "lsm2", seeds=seeds[perm])
    np.testing.assert_array_equal(shuffled, one[perm])
    np.testing.assert_array_equal(augment_batch(patches[5:6], "lsm2", seeds=seeds[5:6])[0], one[5])
    with pytest.warns(FutureWarning, match="rng: an array of per-item seeds given as rng is deprecated"):
        old = augment_batch(patches[5:6], "lsm2", rng=seeds[5:6])  # the deprecated form: same meaning
    np.testing.assert_array_equal(old[0], one[5])
    np.testing.assert_array_equal(augment(patches[5], "lsm2", seed=int(seeds[5])), one[5])
    # an int seed reproduces the whole batch; different seeds give different patches
    np.testing.assert_array_equal(augment_batch(patches, "lsm2", rng=3), augment_batch(patches, "lsm2", rng=3))
    assert not np.array_equal(augment_batch(patches, "lsm2", rng=3), augment_batch(patches, "lsm2", rng=4))
    # augment() of one patch is augment_batch() of a batch of one with the same seed stream
    a = augment(patches[0], "lsm1", rng=np.random.default_rng(11))
    b = augment_batch(patches[:1], "lsm1", rng=np.random.default_rng(11))[0]
    np.testing.assert_array_equal(a, b)


def test_draw_sequence_matches_reference():
    params = AUGMENT_PRESETS["lsm1"]
    p = params._packed()
    for seed in [0, 1, 2**32 - 1, 123456]:
        got = K.draw_params(np.uint32(seed), p)
        ref = draw_params_ref(seed, params)
        assert got[0] == ref["apply"] and got[4] == ref["vflip"] and got[5] == ref["hflip"]
        np.testing.assert_allclose(got[1:4] + got[6:], [ref[k] for k in ("angle", "scale", "shear", "brightness", "contrast")])


def test_shapes_dtypes_and_small_or_empty_batches():
    for shape in [(0, 8, 8), (3, 1, 1), (2, 1, 9), (2, 7, 1, 2), (1, 256, 256, 3)]:
        patches = np.full(shape, 100, np.uint8)
        out = augment_batch(patches, "lsm1", rng=0)
        assert out.shape == shape and out.dtype == np.uint8
    patch = _textured((20, 20), np.uint16)
    out, mask = augment_with_mask(patch, np.ones((20, 20), bool), "asm", rng=1)
    assert out.dtype == np.uint16 and mask.all()


def test_return_type_never_depends_on_the_arguments():
    patches = np.stack([_textured((24, 24), seed=s) for s in range(3)])
    masks = patches > 128
    for kwargs in ({}, {"rng": 1}, {"seeds": [1, 2, 3]}):
        assert isinstance(augment_batch(patches, "lsm1", **kwargs), np.ndarray)
        pair = augment_batch_with_masks(patches, masks, "lsm1", **kwargs)
        assert isinstance(pair, tuple) and len(pair) == 2
    assert isinstance(augment(patches[0], "lsm1", rng=0), np.ndarray)
    assert isinstance(augment_with_mask(patches[0], masks[0], "lsm1", rng=0), tuple)
    with pytest.raises(TypeError, match="masks: augment_batch returns only the augmented images .* use augment_batch_with_masks"):
        augment_batch(patches, "lsm1", rng=0, masks=masks)
    with pytest.raises(TypeError, match="mask: augment returns only .* use augment_with_mask"):
        augment(patches[0], "lsm1", rng=0, mask=masks[0])


def test_a_batch_is_not_augmented_as_one_patch_with_channels():
    batch = np.zeros((8, 64, 64), np.uint8)
    with pytest.raises(ValueError, match=r"patch: expected a grey \(H, W\) patch with channel_axis=None, got shape \(8, 64, 64\); pass channel_axis=-1"):
        augment(batch, "lsm1", rng=0)
    with pytest.raises(ValueError, match="patch: expected an \\(H, W\\) patch with channel_axis=None"):
        warp_affine(batch, [[1, 0, 0], [0, 1, 0]])
    rgb = _textured((32, 32, 3), seed=4)
    np.testing.assert_array_equal(augment(rgb, "lsm1", seed=9, channel_axis=-1), augment_batch(rgb[None], "lsm1", seeds=[9])[0])


# ----------------------------------------------------------------------------- parameters


def test_presets_are_table_8():
    lsm1, lsm2, asm = (AUGMENT_PRESETS[k] for k in ("lsm1", "lsm2", "asm"))
    assert lsm1.rotation == (-45.0, 45.0) and lsm1.scale == (0.9, 1.1) and lsm1.shear == (-10.0, 10.0)
    assert lsm2.rotation == (-45.0, 45.0) and lsm2.scale == (0.9, 1.1) and lsm2.shear == (-20.0, 20.0)
    assert asm.rotation == (-10.0, 10.0) and asm.scale == (1.0, 1.2) and asm.shear == (-10.0, 10.0)
    for p in (lsm1, lsm2):
        assert p.brightness == (0.75, 1.25) and p.contrast == (0.75, 1.25)
    assert asm.brightness == (1.0, 1.0) and asm.contrast == (1.0, 1.0)
    for p in (lsm1, lsm2, asm):
        assert p.vflip == 0.5 and p.hflip == 0.5 and 0.80 <= p.p_affine <= 0.95


def test_params_to_dict_round_trips_through_json():
    for p in AUGMENT_PRESETS.values():
        d = json.loads(json.dumps(p.to_dict()))
        assert AugmentParams(**d) == p
    with pytest.raises(AttributeError):
        AUGMENT_PRESETS["lsm1"].p_affine = 1.0  # frozen


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"rotation": (10, -10)}, ValueError, r"rotation: expected low <= high, got \(10, -10\)"),
        ({"rotation": 200}, ValueError, r"rotation: expected a value in \[0, 180\], got 200"),
        ({"rotation": "45"}, TypeError, "rotation: expected a \\(low, high\\) pair, got str"),
        ({"scale": (1.1, 0.9)}, ValueError, r"scale: expected low <= high, got \(1.1, 0.9\)"),
        ({"scale": (0.0, 1.0)}, ValueError, r"scale\[0\]: expected a value in \[0.1, 10\], got 0"),
        ({"shear": 75}, ValueError, r"shear: expected a value in \[0, 60\], got 75"),
        ({"shear": (1, 2, 3)}, ValueError, "shear: expected a \\(low, high\\) pair, got 3 values"),
        ({"vflip": 1.5}, ValueError, r"vflip: expected a value in \[0, 1\], got 1.5"),
        ({"hflip": -0.1}, ValueError, r"hflip: expected a value in \[0, 1\], got -0.1"),
        ({"brightness": (1.25, 0.75)}, ValueError, r"brightness: expected low <= high, got \(1.25, 0.75\)"),
        ({"contrast": (-1, 1)}, ValueError, r"contrast\[0\]: expected a value in \[0, 10\], got -1"),
        ({"p_affine": 2}, ValueError, r"p_affine: expected a value in \[0, 1\], got 2"),
        ({"p_affine": None}, TypeError, "p_affine: expected a real number, got NoneType"),
        ({"brightness": (float("nan"), 1)}, ValueError, r"brightness\[0\]: expected a finite number, got nan"),
    ],
)
def test_params_reject(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        AugmentParams(**kwargs)


_P = np.zeros((2, 16, 16), np.uint8)


@pytest.mark.parametrize(
    "patches, params, kwargs, exc, match",
    [
        (np.zeros((16, 16), np.uint8), "lsm1", {}, ValueError, "patches: expected a 3 or 4-D array, got 2-D"),
        (np.zeros(16, np.uint8), "lsm1", {}, ValueError, "patches: expected a 3 or 4-D array, got 1-D"),
        (_P.astype(np.float32), "lsm1", {}, TypeError, "patches: expected dtype uint8, uint16, got float32"),
        (_P, "lsm3", {}, ValueError, "params: expected one of 'lsm1', 'lsm2', 'asm', got 'lsm3'"),
        (_P, 3, {}, TypeError, "params: expected an AugmentParams or a preset name, got int"),
        (_P, "lsm1", {"seeds": np.array([1, 2]), "rng": 0}, ValueError, "seeds: pass either rng or seeds, not both"),
        (_P, "lsm1", {"channel_axis": -1}, ValueError, r"patches: expected \(N, H, W, C\) with channel_axis=-1"),
        (_P, "lsm1", {"channel_axis": 2}, ValueError, "channel_axis: expected one of None, -1, got 2"),
        (_P, "lsm1", {"seeds": np.array([1, 2, 3])}, ValueError, r"seeds: expected 2 per-item seeds, got an array of shape \(3,\)"),
        (_P, "lsm1", {"seeds": np.array([1.0, 2.0])}, TypeError, "seeds: per-item seeds must be integers"),
        (_P, "lsm1", {"rng": -1}, ValueError, "rng: expected a non-negative seed, got -1"),
    ],
)
def test_augment_batch_rejects(patches, params, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        augment_batch(patches, params, **kwargs)


@pytest.mark.parametrize(
    "patch, kwargs, exc, match",
    [
        (np.zeros(16, np.uint8), {}, ValueError, r"patch: expected a grey \(H, W\) patch with channel_axis=None, got shape \(16,\)$"),
        (np.zeros((4, 16, 16, 3), np.uint8), {}, ValueError, r"patch: expected a grey \(H, W\) patch with channel_axis=None, got shape \(4, 16, 16, 3\)$"),
        (np.zeros((16, 16), np.uint8), {"channel_axis": -1}, ValueError, r"patch: expected an \(H, W, C\) patch with channel_axis=-1, got shape \(16, 16\)"),
        (np.zeros((16, 16), np.int32), {}, TypeError, "patch: expected dtype uint8, uint16, got int32"),
        (np.zeros((16, 16), np.uint8), {"seed": 3}, ValueError, "seed: pass either rng or seed, not both"),
    ],
)
def test_augment_rejects(patch, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        augment(patch, "lsm1", rng=0, **kwargs)


@pytest.mark.parametrize(
    "masks, exc, match",
    [
        (np.zeros((2, 16, 15), np.uint8), ValueError, r"masks: expected shape \(2, 16, 16\) like patches, got \(2, 16, 15\)"),
        (np.zeros((2, 16, 16), np.float32), TypeError, "masks: expected dtype bool, uint8, got float32"),
        (np.full((2, 16, 16), 255, np.uint8), ValueError, "masks: expected a bool or 0/1 mask, got values up to 255 \\(0/255 is the on-disk form"),
    ],
)
def test_augment_batch_with_masks_rejects(masks, exc, match):
    with pytest.raises(exc, match=match):
        augment_batch_with_masks(_P, masks, "lsm1", rng=0)
    with pytest.raises(exc, match=match.replace("masks", "mask").replace("patches", "patch").replace(r"\(2, ", r"\(")):
        augment_with_mask(_P[0], masks[0], "lsm1", rng=0)


@pytest.mark.parametrize(
    "patch, matrix, kwargs, exc, match",
    [
        (np.zeros((8, 8), np.uint8), np.eye(3), {}, ValueError, r"matrix: expected shape \(2, 3\), got \(3, 3\)"),
        (np.zeros((8, 8), np.uint8), [[np.nan, 0, 0], [0, 1, 0]], {}, ValueError, "matrix: expected finite values, got NaN or inf"),
        (np.zeros((8, 8), np.uint8), [[1e12, 0, 0], [0, 1, 0]], {}, ValueError, "matrix: maps the patch to input positions up to"),
        (np.zeros((8, 8), np.uint8), [[1, 0, 0], [0, 1, 0]], {"order": 3}, ValueError, "order: expected one of 0, 1, got 3"),
        (np.zeros((8, 8), bool), [[1, 0, 0], [0, 1, 0]], {}, TypeError, "patch: expected dtype uint8, uint16, got bool"),
        (np.zeros(8, np.uint8), [[1, 0, 0], [0, 1, 0]], {}, ValueError, r"patch: expected an \(H, W\) patch with channel_axis=None, got shape \(8,\)"),
        (np.zeros((8, 8, 3), np.uint8), [[1, 0, 0], [0, 1, 0]], {}, ValueError, r"patch: expected an \(H, W\) patch with channel_axis=None, got shape \(8, 8, 3\)"),
    ],
)
def test_warp_affine_rejects(patch, matrix, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        warp_affine(patch, matrix, **kwargs)
