"""What must hold for every synthesized defect: locality, masks, acceptance, determinism."""

import warnings

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ispad_core.samples import screen_print
from ispad_core.synth import (
    PRESETS,
    DefectMixture,
    DefectParams,
    SynthesisWarning,
    random_walk_skeleton,
    synthesize,
    synthesize_batch,
    synthesize_steps,
)

KINDS = ("dots", "lines", "mesh", "mixed")


def _batch(n, size=96, channels=1, seed=0):
    return np.stack(
        [screen_print((size, size), rng=seed + i, kind=KINDS[i % 4], channels=channels) for i in range(n)]
    )


@pytest.fixture(scope="module")
def patches():
    return _batch(24)


def _check_item(patch, params, steps):
    """The invariants of one result from synthesize_steps."""
    h, w = patch.shape[:2]
    assert steps.image.shape == patch.shape and steps.image.dtype == patch.dtype
    assert steps.mask.shape == (h, w) and steps.mask.dtype == np.bool_  # bool in memory, as every mask
    assert np.isfinite(steps.texture).all() and np.isfinite([steps.visibility, steps.ssr, steps.cnr]).all()
    assert steps.texture.min() >= 0.0 and steps.texture.max() == 1.0
    img = steps.image.reshape(h, w, -1)
    changed = (img != patch.reshape(h, w, -1)).any(axis=2)
    # Pixels outside the texture support are bit-identical; the mask marks only changed pixels.
    assert not (changed & (steps.texture <= 0)).any()
    assert not (steps.mask.astype(bool) & ~changed).any()
    comp = params if isinstance(params, DefectParams) else params.components[params.names.index(steps.component)]
    assert not (steps.mask.astype(bool) & (steps.texture < comp.mask_level)).any()
    if steps.accepted:
        assert steps.mask.any() and steps.visibility >= comp.threshold
        assert np.array_equal(steps.mask.astype(bool), changed & (steps.texture >= comp.mask_level))
    else:
        assert not changed.any() and not steps.mask.any() and steps.attempts == comp.max_attempts
    assert 1 <= steps.attempts <= comp.max_attempts
    # Skeleton inside the patch minus the margin, chains 8-connected.
    sk = steps.skeleton
    assert (sk.points >= comp.margin).all()
    assert (sk.points[:, 0] <= h - 1 - comp.margin).all() and (sk.points[:, 1] <= w - 1 - comp.margin).all()
    for s in range(len(sk.pixel_starts) - 1):
        chain = sk.pixels[sk.pixel_starts[s] : sk.pixel_starts[s + 1]]
        if len(chain) > 1:
            assert (np.abs(np.diff(chain, axis=0)).max(axis=1) == 1).all()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_invariants_for_every_preset(name, patches):
    for i in range(0, 24, 5):
        _check_item(patches[i], PRESETS[name], synthesize_steps(patches[i], name, rng=i))


@st.composite
def _params(draw):
    def rng(lo, hi):
        a, b = sorted(draw(st.tuples(st.floats(lo, hi), st.floats(lo, hi))))
        return (a, b)

    s0 = draw(st.integers(1, 200))
    return DefectParams(
        steps=(s0, s0 + draw(st.integers(0, 100))),
        step_length=rng(0.2, 3.0),
        momentum=rng(0.0, 1.0),
        angular_sigma=rng(0.0, 2.0),
        branches=(0, draw(st.integers(0, 3))),
        branch_length=rng(0.0, 1.0),
        branch_angle=rng(0.0, 3.0),
        width=rng(0.25, 4.0),
        taper=rng(0.0, 3.0),
        noise_amplitude=rng(0.0, 1.0),
        noise_scale=rng(1.0, 8.0),
        blur=rng(0.0, 2.0),
        contrast=rng(0.0, 80.0) if draw(st.booleans()) else rng(0.0, 1.0),
        contrast_mode=draw(st.sampled_from(["absolute", "relative"])),
        bright_probability=draw(st.floats(0.0, 1.0)),
        blend=draw(st.sampled_from(["additive", "multiplicative"])),
        channel_gain=rng(0.5, 1.5),
        visibility=draw(st.sampled_from(["cnr", "ssr"])),
        threshold=draw(st.sampled_from([0.0, 0.2, 1.0, 100.0, 1e7])),
        max_attempts=draw(st.integers(1, 4)),
        margin=draw(st.integers(0, 15)),
        mask_level=draw(st.floats(0.01, 1.0)),
        ring=draw(st.integers(1, 8)),
    )


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=_params(),
    h=st.integers(32, 512),
    w=st.integers(32, 512),
    channels=st.sampled_from([0, 1, 3]),
    dtype=st.sampled_from([np.uint8, np.uint16]),
    seed=st.integers(0, 2**32 - 1),
)
def test_invariants_over_parameter_ranges(params, h, w, channels, dtype, seed):
    base = np.random.default_rng(seed % 997)
    shape = (h, w) if channels == 0 else (h, w, channels)
    top = 255 if dtype == np.uint8 else 65535
    # Random level plus noise, clipped: covers dark, bright and saturated backgrounds.
    level = base.uniform(0, top)
    patch = np.clip(level + base.normal(0, top / 40, size=shape), 0, top).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SynthesisWarning)
        axis = None if channels == 0 else -1
        steps = synthesize_steps(patch, params, rng=seed, channel_axis=axis)
        single = synthesize(patch, params, rng=seed, channel_axis=axis)
    _check_item(patch, params, steps)
    np.testing.assert_array_equal(single.image, steps.image)
    np.testing.assert_array_equal(single.mask, steps.mask)
    assert single.accepted == steps.accepted and single.attempts == steps.attempts


def test_same_bytes_on_one_and_many_threads(patches):
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = synthesize_batch(patches, "mixed", rng=5, warn=False)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = synthesize_batch(patches, "mixed", rng=5, warn=False)
    finally:
        numba.set_num_threads(before)
    for field in ("images", "masks", "visibility", "accepted", "attempts", "seeds"):
        np.testing.assert_array_equal(getattr(one, field), getattr(many, field))


def test_any_batch_order_and_shards(patches):
    res = synthesize_batch(patches, "lsm1", rng=9, warn=False)
    perm = np.random.default_rng(0).permutation(len(patches))
    shuffled = synthesize_batch(patches[perm], "lsm1", seeds=res.seeds[perm], warn=False)
    np.testing.assert_array_equal(shuffled.images, res.images[perm])
    np.testing.assert_array_equal(shuffled.masks, res.masks[perm])
    np.testing.assert_array_equal(shuffled.visibility, res.visibility[perm])
    shard = synthesize_batch(patches[7:13], "lsm1", seeds=res.seeds[7:13], warn=False)
    np.testing.assert_array_equal(shard.images, res.images[7:13])
    np.testing.assert_array_equal(shard.attempts, res.attempts[7:13])
    for i in (0, 5, 11):  # one item runs the serial kernel, a batch the parallel one
        alone = synthesize_batch(patches[i : i + 1], "lsm1", seeds=res.seeds[i : i + 1], warn=False)
        np.testing.assert_array_equal(alone.images[0], res.images[i])
        np.testing.assert_array_equal(alone.masks[0], res.masks[i])
        assert alone.visibility[0] == res.visibility[i]


def test_item_depends_only_on_its_patch_and_seed(patches):
    res = synthesize_batch(patches, "mixed", rng=2, warn=False)
    other = patches.copy()
    other[3] = screen_print(patches.shape[1:], rng=999)
    res2 = synthesize_batch(other, "mixed", seeds=res.seeds, warn=False)
    keep = np.arange(len(patches)) != 3
    np.testing.assert_array_equal(res2.images[keep], res.images[keep])


def test_single_equals_batch_of_one(patches):
    one = synthesize(patches[4], "scratch", rng=3)
    batch = synthesize_batch(patches[4:5], "scratch", rng=3, warn=False)
    np.testing.assert_array_equal(one.image, batch.images[0])
    np.testing.assert_array_equal(one.mask, batch.masks[0])
    assert one.visibility == batch.visibility[0] and one.attempts == batch.attempts[0]
    # item i of a larger batch comes back from its seed
    full = synthesize_batch(patches[:6], "scratch", rng=8, warn=False)
    again = synthesize(patches[5], "scratch", seed=int(full.seeds[5]), warn=False)
    np.testing.assert_array_equal(again.image, full.images[5])
    np.testing.assert_array_equal(again.mask, full.masks[5])


def test_seed_and_seeds_name_the_item_seeds(patches):
    full = synthesize_batch(patches[:6], "scratch", rng=8, warn=False)
    # seeds= regenerates a slice; the deprecated rng=<array> form still means the same
    part = synthesize_batch(patches[2:5], "scratch", seeds=full.seeds[2:5], warn=False)
    with pytest.warns(FutureWarning, match="deprecated"):
        legacy = synthesize_batch(patches[2:5], "scratch", rng=full.seeds[2:5], warn=False)
    np.testing.assert_array_equal(part.images, full.images[2:5])
    np.testing.assert_array_equal(legacy.images, full.images[2:5])
    np.testing.assert_array_equal(part.seeds, full.seeds[2:5])
    # seed= is the item's own seed: synthesize(seed=s) is the batch item whose seed is s
    for i in (0, 5):
        one = synthesize(patches[i], "scratch", seed=int(full.seeds[i]), warn=False)
        np.testing.assert_array_equal(one.image, full.images[i])
        np.testing.assert_array_equal(one.mask, full.masks[i])
        steps = synthesize_steps(patches[i], "scratch", seed=int(full.seeds[i]))
        np.testing.assert_array_equal(steps.image, full.images[i])
    sk = random_walk_skeleton(patches.shape[1:3], "scratch", seed=int(full.seeds[1]))
    with pytest.warns(FutureWarning, match="deprecated"):
        legacy_sk = random_walk_skeleton(patches.shape[1:3], "scratch", rng=full.seeds[1:2])
    np.testing.assert_array_equal(sk.points, legacy_sk.points)
    # rng=5 seeds the draw of the item's seed; it is not the item's seed (documented)
    assert synthesize_batch(patches[:1], "scratch", rng=5, warn=False).seeds[0] != 5


def test_rng_follows_spec_7(patches):
    by_int = synthesize_batch(patches[:3], "dot-dark", rng=7, warn=False)
    for rng in (np.random.SeedSequence(7), np.random.PCG64(7), np.random.default_rng(7)):
        other = synthesize_batch(patches[:3], "dot-dark", rng=rng, warn=False)
        np.testing.assert_array_equal(other.seeds, by_int.seeds)
        np.testing.assert_array_equal(other.images, by_int.images)


def test_a_batch_is_not_read_as_one_patch_with_channels(patches):
    with pytest.raises(ValueError, match="channel_axis=-1 for an \\(H, W, C\\) colour patch"):
        synthesize(patches[:8], "dot-dark", rng=0)
    rgb = np.repeat(patches[0][..., None], 3, axis=2)
    one = synthesize(rgb, "dot-dark", rng=0, channel_axis=-1)
    batch = synthesize_batch(rgb[None], "dot-dark", rng=0, channel_axis=-1)
    np.testing.assert_array_equal(one.image, batch.images[0])


def test_input_untouched_and_not_defective_items_copied(patches):
    before = patches.copy()
    defective = np.arange(len(patches)) % 3 == 0
    res = synthesize_batch(patches, "mixed", rng=1, defective=defective, warn=False)
    np.testing.assert_array_equal(patches, before)
    assert not np.shares_memory(res.images, patches)
    np.testing.assert_array_equal(res.images[~defective], patches[~defective])
    assert not res.masks[~defective].any()
    assert not res.accepted[~defective].any() and (res.attempts[~defective] == 0).all()
    assert (res.visibility[~defective] == 0).all()
    assert res.accepted[defective].mean() > 0.75
    assert res.masks[defective & res.accepted].reshape(-1, 96 * 96).any(axis=1).all()
    # The defective items are those of the full batch with the same seeds.
    full = synthesize_batch(patches, "mixed", seeds=res.seeds, warn=False)
    np.testing.assert_array_equal(res.images[defective], full.images[defective])


def test_rejection_warns_and_returns_input_unchanged(patches):
    never = DefectParams(threshold=1e9, max_attempts=2)
    with pytest.warns(SynthesisWarning, match=r"4 of 4 defects stayed below the visibility threshold"):
        res = synthesize_batch(patches[:4], never, rng=0)
    np.testing.assert_array_equal(res.images, patches[:4])
    assert not res.masks.any() and not res.accepted.any() and (res.attempts == 2).all()
    with pytest.warns(SynthesisWarning, match="1 of 1 defects"):
        single = synthesize(patches[0], never, rng=0)
    assert not single.accepted and np.array_equal(single.image, patches[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synthesize_batch(patches[:2], never, rng=0, warn=False)
        synthesize(patches[0], never, rng=0, warn=False)
        synthesize_steps(patches[0], never, rng=0)


def test_colour_patches_get_one_texture_with_per_channel_gains():
    grey = screen_print((96, 96), rng=4, kind="mesh")
    rgb = np.repeat(grey[..., None], 3, axis=2)
    params = DefectParams(contrast=(40.0, 40.0), channel_gain=(0.5, 1.5), threshold=0.0)
    res = synthesize_steps(rgb, params, rng=1, channel_axis=-1)
    delta = res.image.astype(int) - rgb.astype(int)
    sup = res.texture > 0
    assert not (delta[~sup] != 0).any()
    assert (delta[..., 0] != delta[..., 1]).any() or (delta[..., 1] != delta[..., 2]).any()
    flat = synthesize_steps(
        rgb, DefectParams(contrast=(40.0, 40.0), channel_gain=(1.0, 1.0), threshold=0.0), rng=1, channel_axis=-1
    )
    d2 = flat.image.astype(int) - rgb.astype(int)
    np.testing.assert_array_equal(d2[..., 0], d2[..., 1])
    np.testing.assert_array_equal(d2[..., 1], d2[..., 2])


def test_polarity_and_blend():
    patch = np.full((64, 64), 120, np.uint8)
    bright = synthesize(patch, DefectParams(bright_probability=1.0, threshold=0.0), rng=0)
    dark = synthesize(patch, DefectParams(bright_probability=0.0, threshold=0.0), rng=0)
    assert (bright.image >= patch).all() and (bright.image > patch).any()
    assert (dark.image <= patch).all() and (dark.image < patch).any()
    # Multiplicative blending leaves black pixels black (transmission-like).
    black = np.zeros((64, 64), np.uint8)
    mult = synthesize(black, DefectParams(blend="multiplicative", contrast=(0.5, 0.5), contrast_mode="relative",
                                          bright_probability=1.0, threshold=0.0), rng=0, warn=False)
    assert not mult.accepted and not mult.image.any()


def test_absolute_contrast_peak_on_flat_background():
    patch = np.full((80, 80), 100, np.uint8)
    params = DefectParams(contrast=(30.0, 30.0), noise_amplitude=(0.0, 0.0), bright_probability=1.0, threshold=0.0)
    st8 = synthesize_steps(patch, params, rng=2)
    assert int(st8.image.max()) == 130  # peak of the texture is 1
    wide = patch.astype(np.uint16) * 257
    st16 = synthesize_steps(wide, params, rng=2)
    assert int(st16.image.max()) == 100 * 257 + 30 * 257  # contrast is in 8-bit grey levels
    assert abs(st16.ssr - st8.ssr) / st8.ssr < 0.02


def test_mixture_draws_components_by_weight():
    mix = DefectMixture((PRESETS["dot-dark"], PRESETS["pinhole"]), (3.0, 1.0), ("dot", "pin"))
    patch = screen_print((40, 40), rng=0, kind="mesh")
    names = [synthesize_steps(patch, mix, rng=s).component for s in range(400)]
    frac = names.count("dot") / len(names)
    assert 0.68 < frac < 0.82  # 0.75 expected, 5 standard deviations ~ 0.11


def test_params_rebuilt_from_json_give_the_same_bytes(patches):
    # What a stream file stores (the preset as JSON) regenerates its items exactly.
    import json

    from ispad_core.synth import params_from_dict

    for name in ("fiber-dark", "lsm2"):
        a = synthesize_batch(patches[:3], name, rng=4, warn=False)
        back = params_from_dict(json.loads(json.dumps(PRESETS[name].to_dict())))
        assert back is not PRESETS[name]
        b = synthesize_batch(patches[:3], back, rng=4, warn=False)
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.masks, b.masks)


def test_skeleton_is_the_first_attempt():
    patch = screen_print((128, 128), rng=1)
    params = DefectParams(steps=(30, 60), threshold=0.0)
    sk = random_walk_skeleton((128, 128), params, rng=8)
    st_ = synthesize_steps(patch, params, rng=8)
    np.testing.assert_array_equal(sk.points, st_.skeleton.points)
    np.testing.assert_array_equal(sk.raster, st_.skeleton.raster)
    # The raster carries one unit of ink per px of path length.
    length = np.sum(np.hypot(*np.diff(sk.points, axis=0).T))
    np.testing.assert_allclose(sk.raster.sum(), length, rtol=1e-9)


def test_empty_batch():
    res = synthesize_batch(np.zeros((0, 32, 32), np.uint8), "mixed", rng=0)
    assert res.images.shape == (0, 32, 32) and res.masks.shape == (0, 32, 32) and res.seeds.shape == (0,)


def test_read_only_strided_views_are_accepted():
    big = screen_print((160, 160), rng=3)
    tiles = np.lib.stride_tricks.sliding_window_view(big, (64, 64))[::48, 5]
    assert not tiles.flags.writeable and not tiles.flags.c_contiguous
    res = synthesize_batch(tiles, "dot-dark", rng=0, warn=False)
    np.testing.assert_array_equal(res.images, synthesize_batch(np.ascontiguousarray(tiles), "dot-dark", rng=0,
                                                               warn=False).images)
    assert res.images.flags.writeable
