"""Every public function of ispad_core.synth rejects bad input with the exact exception and message."""

import numpy as np
import pytest

from ispad_core.synth import (
    DefectParams,
    gallery,
    random_walk_skeleton,
    synthesize,
    synthesize_batch,
    synthesize_steps,
)

GOOD = np.zeros((32, 32), np.uint8)
BATCH = np.zeros((2, 32, 32), np.uint8)


@pytest.mark.parametrize("func", [synthesize, synthesize_steps])
@pytest.mark.parametrize(
    "patch, params, kwargs, exc, match",
    [
        (GOOD.astype(np.float32), "mixed", {}, TypeError, "patch: expected dtype uint8 or uint16, got float32"),
        (GOOD.astype(np.int16), "mixed", {}, TypeError, "patch: expected dtype uint8 or uint16, got int16"),
        (np.zeros(32, np.uint8), "mixed", {}, ValueError, r"patch: expected a grey \(H, W\) patch, got shape \(32,\)"),
        (BATCH[None], "mixed", {}, ValueError, r"patch: expected a grey \(H, W\) patch, got shape \(1, 2, 32, 32\)"),
        (np.zeros((32, 32, 5), np.uint8), "mixed", {"channel_axis": -1}, ValueError,
         r"patch: expected 1 to 4 channels on the last axis, got shape \(32, 32, 5\)"),
        # a batch given to the one-patch function is not read as one patch with many channels
        (np.zeros((3, 32, 32), np.uint8), "mixed", {}, ValueError,
         r"patch: expected a grey \(H, W\) patch with channel_axis=None, got shape \(3, 32, 32\); pass channel_axis=-1"),
        (GOOD, "mixed", {"channel_axis": -1}, ValueError, r"patch: expected an \(H, W, C\) patch with channel_axis=-1, got shape \(32, 32\)"),
        (GOOD, "mixed", {"channel_axis": 0}, ValueError, "channel_axis: expected one of None, -1, got 0"),
        (GOOD, "mixed", {"rng": 0, "seed": 1}, ValueError, "seed: pass either rng or seed, not both"),
        (GOOD, "mixed", {"seed": 2**32}, ValueError, r"seed: expected an int <= 4294967295"),
        (GOOD, "mixed", {"seed": 1.0}, TypeError, r"seed: expected an int in \[0, 2\*\*32\), got float"),
        (np.zeros((16, 32), np.uint8), "mixed", {}, ValueError,
         r"patch: expected height and width of at least 2 \* margin \+ 1 = 17 \(margin 8 of params\), got \(16, 32\)"),
        (np.zeros((32, 10), np.uint8), DefectParams(margin=5), {}, ValueError, r"= 11 \(margin 5 of params\), got \(32, 10\)"),
        (np.zeros((0, 32), np.uint8), "mixed", {}, ValueError, "patch: expected a non-empty array"),
        (None, "mixed", {}, TypeError, "patch: expected an array, got None"),
        (np.array([["a"]], dtype=object), "mixed", {}, TypeError, "patch: expected a numeric array, got dtype object"),
        (GOOD, "bogus", {}, ValueError, "params: expected a preset name"),
        (GOOD, {"steps": (1, 2)}, {}, TypeError, "params: expected a DefectParams, DefectMixture or preset name, got dict"),
        (GOOD, "mixed", {"rng": -3}, ValueError, "rng: expected a non-negative seed, got -3"),
        (GOOD, "mixed", {"rng": 1.5}, TypeError, "rng: expected None, a non-negative int or a numpy.random.Generator, got float"),
    ],
)
def test_single_item_rejects(func, patch, params, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        func(patch, params, **kwargs)


@pytest.mark.parametrize(
    "patches, kwargs, exc, match",
    [
        (GOOD, {}, ValueError, r"patches: expected a 3 or 4-D array, got 2-D with shape \(32, 32\)"),
        (BATCH.astype(np.float64), {}, TypeError, "patches: expected dtype uint8 or uint16, got float64"),
        (BATCH.astype(bool), {}, TypeError, "patches: expected dtype uint8 or uint16, got bool"),
        (np.zeros((2, 32, 32, 0), np.uint8), {}, ValueError, "patches: expected 1 to 4 channels on the last axis"),
        (np.zeros((2, 10, 32), np.uint8), {}, ValueError, r"patches: expected height and width of at least 2 \* margin \+ 1 = 17"),
        (BATCH, {"seeds": np.array([1.0, 2.0])}, TypeError, "seeds: per-item seeds must be integers, got dtype float64"),
        (BATCH, {"seeds": np.array([1, 2**32])}, ValueError, r"seeds: per-item seeds must lie in \[0, 2\*\*32\)"),
        (BATCH, {"seeds": np.array([-1, 2])}, ValueError, r"seeds: per-item seeds must lie in \[0, 2\*\*32\)"),
        (BATCH, {"seeds": [1, 2, 3]}, ValueError, r"seeds: expected 2 per-item seeds, got an array of shape \(3,\)"),
        (BATCH, {"seeds": 5}, TypeError, "seeds: expected an array of 2 integer seeds, got int"),
        (BATCH, {"seeds": [1, 2], "rng": 0}, ValueError, "seeds: pass either rng or seeds, not both"),
        (BATCH, {"channel_axis": -1}, ValueError, r"patches: expected \(N, H, W, C\) with channel_axis=-1, got shape \(2, 32, 32\)"),
        (BATCH, {"rng": np.random.RandomState(0)}, TypeError, "rng: expected None, a non-negative int or a numpy.random.Generator, got RandomState"),
        (BATCH, {"defective": [True]}, ValueError, r"defective: expected shape \(2,\) like patches, got \(1,\)"),
        (BATCH, {"defective": [0, 2]}, ValueError, r"defective: expected binary labels 0/1, got values \{0, 2\}"),
        (BATCH, {"defective": [[True, False]]}, ValueError, "defective: expected a 1-D array, got 2-D"),
    ],
)
def test_batch_rejects(patches, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        synthesize_batch(patches, "mixed", **kwargs)


@pytest.mark.parametrize(
    "shape, params, exc, match",
    [
        (32, "mixed", TypeError, r"shape: expected a \(height, width\) pair of ints, got int"),
        ((32, 32, 3), "mixed", ValueError, r"shape: expected a \(height, width\) pair, got 3 values"),
        ((32.0, 32), "mixed", TypeError, r"shape\[0\]: expected an int, got float"),
        ((0, 32), "mixed", ValueError, r"shape\[0\]: expected an int >= 1, got 0"),
        ((12, 40), "mixed", ValueError, r"shape: expected height and width of at least 2 \* margin \+ 1 = 17"),
        ((40, 40), 7, TypeError, "params: expected a DefectParams, DefectMixture or preset name, got int"),
    ],
)
def test_skeleton_rejects(shape, params, exc, match):
    with pytest.raises(exc, match=match):
        random_walk_skeleton(shape, params, rng=0)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"n": 0}, ValueError, "n: expected an int >= 1, got 0"),
        ({"columns": 0}, ValueError, "columns: expected an int >= 1, got 0"),
        ({"zoom": 9}, ValueError, "zoom: expected an int <= 8, got 9"),
        ({"size": 16}, ValueError, "size: expected an int >= 17, got 16"),
        ({"outline": (255, 0)}, ValueError, r"outline: expected three ints in \[0, 255\], got \(255, 0\)"),
        ({"outline": (255, 0, 300)}, ValueError, r"outline: expected three ints in \[0, 255\]"),
        ({"backgrounds": np.zeros((0, 32, 32), np.uint8)}, ValueError, r"backgrounds: expected a non-empty array, got shape \(0, 32, 32\)"),
        ({"backgrounds": np.zeros((2, 32, 32), np.float32)}, TypeError, "backgrounds: expected dtype uint8 or uint16, got float32"),
        ({"backgrounds": np.zeros((32, 32), np.uint8)}, ValueError, "backgrounds: expected a 3 or 4-D array"),
        ({"params": "nope"}, ValueError, "params: expected a preset name"),
    ],
)
def test_gallery_rejects(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gallery(**kwargs)


def test_masks_are_bool_in_memory_everywhere():
    """synthesize, synthesize_batch and synthesize_steps give bool masks, like the stream and its files."""
    from ispad_core.samples import screen_print
    from ispad_core.synth import synthesize, synthesize_batch, synthesize_steps

    patches = np.stack([screen_print((64, 64), rng=i) for i in range(3)])
    res = synthesize_batch(patches, "dot-dark", rng=0, defective=[True, False, True])
    assert res.masks.dtype == np.bool_ and not res.masks[1].any() and res.masks[0].any()
    assert synthesize(patches[0], "scratch", rng=1).mask.dtype == np.bool_
    assert synthesize_steps(patches[0], "scratch", rng=1).mask.dtype == np.bool_


def test_batch_result_keeps_both_visibility_measures_and_the_component():
    from ispad_core.samples import screen_print
    from ispad_core.synth import PRESETS, synthesize_batch, synthesize_steps

    patches = np.stack([screen_print((64, 64), rng=i) for i in range(4)])
    res = synthesize_batch(patches, "mixed", rng=3)
    for i in range(4):
        steps = synthesize_steps(patches[i], "mixed", seed=int(res.seeds[i]))
        assert res.ssr[i] == steps.ssr and res.cnr[i] == steps.cnr
        assert PRESETS["mixed"].names[res.components[i]] == steps.component
        comp = PRESETS["mixed"].components[res.components[i]]
        assert res.visibility[i] == (res.cnr[i] if comp.visibility == "cnr" else res.ssr[i])
