"""The Numba kernels against the slow NumPy reference that replays the same draws."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ispad_core._shared.validation import item_seeds
from ispad_core.samples import screen_print
from ispad_core.synth import PRESETS, DefectParams, random_walk_skeleton, synthesize_steps
from tests.reference import synth_ref as ref

KINDS = ("dots", "lines", "mesh", "mixed")

# Exercises what the presets leave out: blur, absolute multiplicative, relative additive,
# several branches, strong taper, a small margin and the ssr measure.
EXOTIC = DefectParams(
    steps=(5, 40),
    step_length=(0.8, 2.0),
    momentum=(0.0, 0.9),
    angular_sigma=(0.1, 1.0),
    branches=(1, 3),
    branch_length=(0.3, 1.0),
    taper=(1.0, 3.0),
    width=(0.5, 2.5),
    noise_amplitude=(0.0, 0.8),
    noise_scale=(1.0, 5.0),
    blur=(0.3, 1.5),
    contrast=(10.0, 60.0),
    blend="multiplicative",
    visibility="ssr",
    threshold=50.0,
    margin=2,
    mask_level=0.5,
    ring=2,
)
RELATIVE_ADDITIVE = DefectParams(contrast=(0.05, 0.3), contrast_mode="relative", bright_probability=0.3)


def _patch(seed, size=96, channels=1, dtype=np.uint8):
    img = screen_print((size, size), rng=seed, kind=KINDS[seed % 4], channels=channels)
    if dtype == np.uint16:
        img = img.astype(np.uint16) * 257 + np.uint16(seed % 200)
    return img


def _walks(skel):
    return [skel.points[skel.starts[s] : skel.starts[s + 1]] for s in range(len(skel.starts) - 1)]


def _compare(patch, params, rng):
    got = synthesize_steps(patch, params, rng=rng, channel_axis=-1 if patch.ndim == 3 else None)
    want = ref.synthesize(patch, params, int(item_seeds(rng, 1)[0]))
    walks = _walks(got.skeleton)
    assert len(walks) == len(want["walks"])
    for a, b in zip(walks, want["walks"]):
        np.testing.assert_array_equal(a, np.asarray(b))  # skeletons exactly
    assert got.attempts == want["attempts"] and got.accepted == want["accepted"]
    diff = np.abs(got.image.astype(np.int64) - want["image"].astype(np.int64))
    assert diff.max() <= 1  # one grey level of the dtype
    differs = diff.reshape(diff.shape[0], diff.shape[1], -1).max(axis=2) > 0
    assert not ((got.mask != want["mask"]) & ~differs).any()
    np.testing.assert_allclose(got.ssr, want["ssr"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.cnr, want["cnr"], rtol=1e-6, atol=1e-9)
    # The texture on the frame, cropped to the patch, equals the reference's.
    r0, c0 = want["origin"]
    tex = want["texture"]
    h, w = patch.shape[:2]
    full = np.zeros((h, w))
    ys, xs = np.nonzero(tex > 0)
    keep = (ys + r0 >= 0) & (ys + r0 < h) & (xs + c0 >= 0) & (xs + c0 < w)
    full[ys[keep] + r0, xs[keep] + c0] = tex[ys[keep], xs[keep]]
    np.testing.assert_allclose(got.texture, full, rtol=1e-9, atol=1e-12)
    return got


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_presets_match_reference_grey(name, seed):
    _compare(_patch(seed), PRESETS[name], seed)


@pytest.mark.parametrize("name", ["mixed", "lsm2", "asm"])
def test_presets_match_reference_rgb(name):
    _compare(_patch(5, channels=3), PRESETS[name], 11)


@pytest.mark.parametrize("name", ["lsm1", "asm"])
def test_presets_match_reference_uint16(name):
    _compare(_patch(6, dtype=np.uint16), PRESETS[name], 12)


@pytest.mark.parametrize("seed", range(6))
def test_exotic_parameters_match_reference(seed):
    _compare(_patch(seed, size=72, channels=3 if seed % 2 else 1), EXOTIC, seed)
    _compare(_patch(seed, size=72), RELATIVE_ADDITIVE, seed + 100)


def test_rejected_defect_matches_reference():
    never = DefectParams(threshold=1e9, max_attempts=3)
    got = _compare(_patch(3), never, 4)
    assert not got.accepted and got.attempts == 3


@pytest.mark.parametrize("name", ["fiber-bright", "scratch", "inclusion"])
@pytest.mark.parametrize("seed", [0, 7])
def test_skeleton_and_chain_match_reference(name, seed):
    skel = random_walk_skeleton((128, 160), name, rng=seed)
    want = ref.first_walks((128, 160), PRESETS[name], int(item_seeds(seed, 1)[0]))
    for s, (got, exp) in enumerate(zip(_walks(skel), want)):
        np.testing.assert_array_equal(got, np.asarray(exp))
        pix = skel.pixels[skel.pixel_starts[s] : skel.pixel_starts[s + 1]]
        np.testing.assert_array_equal(pix, np.asarray(ref.chain(exp)))
    assert len(want) == len(skel.starts) - 1
    raster = ref.raster(want, 0.0, (128 + 2, 160 + 2), (0, 0))[:128, :160]
    np.testing.assert_allclose(skel.raster, raster, rtol=1e-12, atol=1e-12)


_ranges = st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)).map(sorted)


@st.composite
def _params(draw):
    lo, hi = draw(st.tuples(st.integers(1, 30), st.integers(0, 30)))
    width = draw(_ranges)
    return DefectParams(
        steps=(lo, lo + hi),
        step_length=tuple(0.3 + 2.0 * x for x in draw(_ranges)),
        momentum=tuple(draw(_ranges)),
        angular_sigma=tuple(1.5 * x for x in draw(_ranges)),
        branches=(0, draw(st.integers(0, 2))),
        width=tuple(0.3 + 2.5 * x for x in width),
        taper=tuple(2.0 * x for x in draw(_ranges)),
        noise_amplitude=tuple(draw(_ranges)),
        noise_scale=tuple(1.0 + 4.0 * x for x in draw(_ranges)),
        blur=tuple(1.2 * x for x in draw(_ranges)),
        contrast=tuple(5.0 + 60.0 * x for x in draw(_ranges)),
        bright_probability=draw(st.floats(0.0, 1.0)),
        blend=draw(st.sampled_from(["additive", "multiplicative"])),
        visibility=draw(st.sampled_from(["cnr", "ssr"])),
        threshold=draw(st.sampled_from([0.0, 0.3, 200.0])),
        max_attempts=draw(st.integers(1, 3)),
        margin=draw(st.integers(0, 10)),
        mask_level=draw(st.floats(0.05, 1.0)),
        ring=draw(st.integers(1, 6)),
    )


@settings(deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow])
@given(params=_params(), seed=st.integers(0, 2**32 - 1), size=st.integers(32, 80), channels=st.sampled_from([1, 3]))
def test_random_parameters_match_reference(params, seed, size, channels):
    _compare(_patch(seed % 1000, size=size, channels=channels), params, seed)
