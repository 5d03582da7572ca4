"""Sliding windows, stitching, centre crops and random ROI patches."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ispad_core.tiling import WindowStack, center_crop, random_patches, sliding_windows, stitch
from tests.reference.tiling_ref import (
    grid_starts_ref,
    sliding_windows_ref,
    stitch_ref,
    window_roi_fraction_ref,
)


@st.composite
def image_and_grid(draw, max_side=70):
    size = draw(st.integers(1, 24))
    stride = draw(st.integers(1, size))
    h = draw(st.integers(size, max(size, max_side)))
    w = draw(st.integers(size, max(size, max_side)))
    channels = draw(st.sampled_from([None, 1, 3]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32, np.float16, np.bool_]))
    shape = (h, w) if channels is None else (h, w, channels)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 2 if dtype is np.bool_ else 250, shape).astype(dtype)
    return image, size, stride


# ----------------------------------------------------------------------------- sliding_windows


@settings(deadline=None, max_examples=60)
@given(image_and_grid())
def test_windows_cover_every_pixel_and_are_read_only_views(args):
    image, size, stride = args
    tiles, origins = sliding_windows(image, size, stride)
    ref = sliding_windows_ref(image, size, stride)
    assert isinstance(tiles, WindowStack)
    assert tiles.shape == (len(ref), size, size) + image.shape[2:] and tiles.dtype == image.dtype
    assert origins.dtype == np.int64 and origins.shape == (len(ref), 2)
    np.testing.assert_array_equal(origins, [o for o, _ in ref])
    assert tiles.grid == (
        len(grid_starts_ref(image.shape[0], size, stride)),
        len(grid_starts_ref(image.shape[1], size, stride)),
    )
    covered = np.zeros(image.shape[:2], dtype=int)
    for i, ((r, c), window) in enumerate(ref):
        view = tiles[i]
        np.testing.assert_array_equal(view, window)
        assert np.shares_memory(view, image) and not view.flags.writeable
        covered[r : r + size, c : c + size] += 1
    assert covered.min() >= 1
    # the last row and column of windows touch the border
    assert origins[:, 0].max() == image.shape[0] - size and origins[:, 1].max() == image.shape[1] - size
    dense = np.asarray(tiles)
    assert dense.shape == tiles.shape and dense.flags.c_contiguous
    np.testing.assert_array_equal(dense, np.stack([w for _, w in ref]))
    # stitching inverts tiling, for both reductions
    assert stitch(tiles, origins, image.shape, reduce="max").dtype == image.dtype
    np.testing.assert_array_equal(stitch(tiles, origins, image.shape, reduce="max"), image)
    mean = stitch(dense, origins, image.shape)
    np.testing.assert_array_equal(mean.astype(image.dtype), image)
    assert np.array_equal(mean, image)


def test_paper_grid_2048_gives_13_by_13():
    image = np.zeros((2048, 2048), np.uint8)
    tiles, origins = sliding_windows(image)
    assert tiles.grid == (13, 13) and len(tiles) == 169 and tiles.shape == (169, 256, 256)
    starts = list(range(0, 1761, 160)) + [1792]
    np.testing.assert_array_equal(np.unique(origins[:, 0]), starts)
    np.testing.assert_array_equal(np.unique(origins[:, 1]), starts)


def test_exact_fit_adds_no_extra_window():
    tiles, origins = sliding_windows(np.zeros((256 + 160 * 3, 256)), 256, 160)
    assert tiles.grid == (4, 1)
    np.testing.assert_array_equal(origins[:, 0], [0, 160, 320, 480])


def test_window_stack_indexing():
    image = np.arange(20 * 30 * 3, dtype=np.uint16).reshape(20, 30, 3)
    tiles, origins = sliding_windows(image, 8, 5)
    assert tiles.ndim == 4 and tiles.nbytes == np.asarray(tiles).nbytes
    np.testing.assert_array_equal(tiles[-1], image[12:20, 22:30])
    part = tiles[2:5]
    assert isinstance(part, np.ndarray) and part.flags.writeable
    np.testing.assert_array_equal(part, np.stack([tiles[i] for i in range(2, 5)]))
    np.testing.assert_array_equal(tiles[[0, 3]], np.stack([tiles[0], tiles[3]]))
    mask = np.zeros(len(tiles), bool)
    mask[1] = True
    np.testing.assert_array_equal(tiles[mask], tiles[1][None])
    assert [w.shape for w in tiles] == [(8, 8, 3)] * len(tiles)
    assert np.asarray(tiles, dtype=np.float32).dtype == np.float32
    assert "WindowStack(shape=(" in repr(tiles)
    with pytest.raises(IndexError, match="index 99 is out of bounds for"):
        tiles[99]
    with pytest.raises(IndexError, match="unsupported index"):
        tiles[0, 1]
    with pytest.raises(ValueError, match="without a copy"):
        np.asarray(tiles, copy=False)
    # the origins are fixed: the returned array is the caller's, the stack's is read-only
    assert not tiles.origins.flags.writeable and origins.flags.writeable


@pytest.mark.parametrize(
    "image, kwargs, exc, match",
    [
        (np.zeros(300), {}, ValueError, r"image: expected a 2 or 3-D array, got 1-D with shape \(300,\)"),
        (np.zeros((2, 300, 300, 1)), {}, ValueError, "image: expected a 2 or 3-D array, got 4-D"),
        (np.zeros((300, 300), dtype=object), {}, TypeError, "image: expected a numeric array, got dtype object"),
        (np.zeros((300, 300)), {"size": 0}, ValueError, "size: expected an int >= 1, got 0"),
        (np.zeros((300, 300)), {"size": -5}, ValueError, "size: expected an int >= 1, got -5"),
        (np.zeros((300, 300)), {"size": 25.0}, TypeError, "size: expected an int, got float"),
        (np.zeros((300, 300)), {"stride": 0}, ValueError, "stride: expected an int >= 1, got 0"),
        (np.zeros((300, 300)), {"stride": 257}, ValueError, r"stride: expected an int <= size \(256\) so that windows leave no gaps, got 257"),
        (np.zeros((255, 300)), {}, ValueError, r"image: expected height and width >= size \(256\), got shape \(255, 300\)"),
        (np.zeros((300, 10, 3)), {}, ValueError, r"got shape \(300, 10, 3\)"),
    ],
)
def test_sliding_windows_rejects(image, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        sliding_windows(image, **kwargs)


# ----------------------------------------------------------------------------- stitch


@st.composite
def tiles_and_origins(draw):
    H = draw(st.integers(1, 18))
    W = draw(st.integers(1, 18))
    h = draw(st.integers(1, H))
    w = draw(st.integers(1, W))
    n = draw(st.integers(1, 12))
    kind = draw(st.sampled_from(["map", "channels", "scores"]))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.uint8, np.int16]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    origins = np.stack([rng.integers(0, H - h + 1, n), rng.integers(0, W - w + 1, n)], axis=1)
    shape = {"map": (n, h, w), "channels": (n, h, w, 2), "scores": (n,)}[kind]
    tiles = (rng.normal(size=shape) * 50).astype(dtype)
    return tiles, origins, (H, W), (h, w)


@settings(deadline=None, max_examples=80)
@given(tiles_and_origins(), st.sampled_from(["mean", "max"]))
def test_stitch_matches_reference(args, reduce):
    tiles, origins, shape, size = args
    out = stitch(tiles, origins, shape, reduce=reduce, size=size)
    ref = stitch_ref(tiles, origins, shape, reduce=reduce, size=size)
    assert out.shape == ref.shape
    if reduce == "max":
        assert out.dtype == tiles.dtype
        np.testing.assert_array_equal(out, ref.astype(tiles.dtype))
    else:
        assert out.dtype == (tiles.dtype if tiles.dtype.kind == "f" else np.float64)
        rtol = 1e-6 if tiles.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=1e-4 if tiles.dtype == np.float32 else 1e-9)


def test_stitch_max_is_maximum_over_overlapping_windows():
    rng = np.random.default_rng(3)
    image = rng.random((40, 50))
    tiles, origins = sliding_windows(image, 16, 9)
    maps = rng.random(tiles.shape)
    out = stitch(maps, origins, image.shape, reduce="max")
    expected = np.full(image.shape, -np.inf)
    for m, (r, c) in zip(maps, origins):
        expected[r : r + 16, c : c + 16] = np.maximum(expected[r : r + 16, c : c + 16], m)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_stitch_max_treats_nan_like_fmax(dtype):
    """NaN is ignored by the maximum, as numpy.fmax does: a pixel whose every covering value is
    NaN stays NaN (it must not become -inf, a value no window gave it)."""
    nan = np.nan
    maps = np.array(
        [[[nan, 1.0, nan], [nan, nan, 2.0]],
         [[nan, 3.0, -np.inf], [nan, nan, nan]]], dtype=dtype
    )
    origins = [[0, 0], [0, 1]]
    out = stitch(maps, origins, (2, 4), reduce="max")
    expected = np.array([[nan, 1.0, 3.0, -np.inf], [nan, nan, 2.0, nan]], dtype)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == dtype
    # per-window scores: the same rule
    scores = np.array([nan, 1.0, nan], dtype)
    out = stitch(scores, [[0, 0], [0, 2], [0, 4]], (1, 8), size=(1, 3), reduce="max")
    np.testing.assert_array_equal(out, np.array([[nan, nan, 1, 1, 1, nan, nan, 0]], dtype))


def test_stitch_uncovered_pixels_are_zero_and_bool_max_is_or():
    tiles = np.ones((1, 2, 2), bool)
    out = stitch(tiles, [[1, 1]], (4, 4), reduce="max")
    assert out.dtype == np.bool_ and out.sum() == 4 and out[1:3, 1:3].all()
    np.testing.assert_array_equal(stitch(tiles, [[1, 1]], (4, 4)), out.astype(float))


def test_stitch_colour_maps_into_grey_shape_and_scores_into_colour_shape():
    image = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    tiles, origins = sliding_windows(image, 10, 7)
    grey_maps = np.asarray(tiles)[..., 0].astype(np.float32)
    out = stitch(grey_maps, origins, image.shape)  # an anomaly map per pixel of a colour image
    np.testing.assert_array_equal(out, image[..., 0])
    scores = np.arange(len(tiles), dtype=np.float64)
    assert stitch(scores, origins, image.shape, size=10).shape == (30, 40)


def test_stitch_is_independent_of_thread_count():
    rng = np.random.default_rng(1)
    maps = rng.random((60, 32, 32))
    origins = rng.integers(0, 100 - 32, (60, 2))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = stitch(maps, origins, (100, 100))
        numba.set_num_threads(max(2, before))
        many = stitch(maps, origins, (100, 100))
    finally:
        numba.set_num_threads(before)
    assert one.tobytes() == many.tobytes()


@pytest.mark.parametrize("reduce", ["mean", "max"])
@pytest.mark.parametrize("channels", [None, 3])
def test_stitch_row_blocks_give_the_same_bytes(monkeypatch, reduce, channels):
    """The output is reduced by blocks of rows (as many rows as fit a byte budget); any block size
    gives the same bytes, and the reference's values, including windows that straddle blocks."""
    rng = np.random.default_rng(2)
    shape = (40, 19, 23) if channels is None else (40, 19, 23, channels)
    maps = rng.normal(size=shape).astype(np.float32)
    maps[rng.random(shape) < 0.05] = np.nan
    origins = np.stack([rng.integers(0, 90 - 19, 40), rng.integers(0, 70 - 23, 40)], axis=1)
    origins[0] = (90 - 19, 0)  # a window touching the last row
    whole = stitch(maps, origins, (90, 70), reduce=reduce)  # one block
    np.testing.assert_allclose(whole, stitch_ref(maps, origins, (90, 70), reduce=reduce), rtol=1e-6, atol=1e-6)
    for budget in (1, 8 * 70 * 3 * 13):  # blocks of 8 rows (the minimum) and of 13 or 39 rows
        monkeypatch.setattr("ispad_core.tiling._BLOCK_BYTES", budget)
        before = numba.get_num_threads()
        try:
            for threads in sorted({1, max(2, before)}):
                numba.set_num_threads(threads)
                assert stitch(maps, origins, (90, 70), reduce=reduce).tobytes() == whole.tobytes()
        finally:
            numba.set_num_threads(before)


_T = np.zeros((2, 4, 4), np.float32)
_O = np.array([[0, 0], [2, 2]])


@pytest.mark.parametrize(
    "tiles, origins, shape, kwargs, exc, match",
    [
        (_T, _O, (8, 8), {"reduce": "median"}, ValueError, "reduce: expected one of 'mean', 'max', got 'median'"),
        (np.zeros((2, 4)), _O, (8, 8), {}, ValueError, "tiles: expected a 1 or 3 or 4-D array, got 2-D"),
        (_T.astype(object), _O, (8, 8), {}, TypeError, "tiles: expected a numeric array"),
        (_T, _O[:1], (8, 8), {}, ValueError, r"origins: expected shape \(2, 2\) like tiles, got \(1, 2\)"),
        (_T, _O.astype(float), (8, 8), {}, TypeError, "origins: expected dtype kind in 'iu', got float64"),
        (_T, [[0, 0], [5, 2]], (8, 8), {}, ValueError, r"origins: window 1 at \(5, 2\) of size \(4, 4\) is not inside shape \(8, 8\)"),
        (_T, [[-1, 0], [0, 0]], (8, 8), {}, ValueError, r"origins: window 0 at \(-1, 0\)"),
        (_T, _O, (3, 8), {}, ValueError, r"tiles: window size \(4, 4\) does not fit into shape \(3, 8\)"),
        (_T, _O, (8,), {}, ValueError, r"shape: expected \(H, W\) or \(H, W, C\), got \(8,\)"),
        (_T, _O, (8, 0), {}, ValueError, r"shape\[1\]: expected an int >= 1, got 0"),
        (np.zeros(2), _O, (8, 8), {}, ValueError, "size: expected the window size for per-window scalar scores, got None"),
        (np.zeros(2), _O, (8, 8), {"size": 0}, ValueError, "size: expected an int >= 1, got 0"),
        (np.zeros(2), _O, (8, 8), {"size": "4"}, TypeError, "size: expected an int or an"),
        (_T, _O, (8, 8), {"size": 3}, ValueError, r"size: expected \(4, 4\) like tiles, got 3"),
        (np.zeros((2, 4, 4, 3)), _O, (8, 8, 2), {}, ValueError, r"shape: expected 3 channels like tiles, got \(8, 8, 2\)"),
    ],
)
def test_stitch_rejects(tiles, origins, shape, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        stitch(tiles, origins, shape, **kwargs)


# ----------------------------------------------------------------------------- center_crop


def test_center_crop_512_to_256_is_a_view_of_the_centre():
    patch = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    crop = center_crop(patch, 256)
    assert crop.shape == (256, 256, 3) and np.shares_memory(crop, patch)
    np.testing.assert_array_equal(crop, patch[128:384, 128:384])
    batch = np.stack([patch, patch[::-1]])
    np.testing.assert_array_equal(center_crop(batch, 256, batch=True)[1], patch[::-1][128:384, 128:384])
    assert center_crop(np.zeros((7, 9)), (2, 3)).shape == (2, 3)
    np.testing.assert_array_equal(center_crop(np.arange(5)[None].repeat(5, 0), (5, 2))[0], [1, 2])


@pytest.mark.parametrize(
    "patch, size, kwargs, exc, match",
    [
        (np.zeros(10), 4, {}, ValueError, "patch: expected a 2 or 3-D array, got 1-D"),
        (np.zeros((10, 10)), 4, {"batch": True}, ValueError, "patch: expected a 3 or 4-D array, got 2-D"),
        (np.zeros((10, 10)), 0, {}, ValueError, "size: expected an int >= 1, got 0"),
        (np.zeros((10, 10)), 11, {}, ValueError, r"size: expected at most the patch size \(10, 10\), got \(11, 11\)"),
        (np.zeros((10, 10)), 2.5, {}, TypeError, "size: expected an int or an"),
    ],
)
def test_center_crop_rejects(patch, size, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        center_crop(patch, size, **kwargs)


# ----------------------------------------------------------------------------- random_patches


@settings(deadline=None, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 9),
    fraction=st.sampled_from([1.0, 0.75, 0.5, 0.1]),
    channels=st.sampled_from([None, 3]),
)
def test_random_patches_lie_in_roi_and_copy_the_image(seed, size, fraction, channels):
    rng = np.random.default_rng(seed)
    H, W = rng.integers(size, 24, 2)
    shape = (H, W) if channels is None else (H, W, channels)
    image = rng.integers(0, 65535, shape, dtype=np.uint16)
    roi = rng.random((H, W)) < 0.8
    roi[: size + 1, : size + 1] = True  # at least one valid window
    ref = window_roi_fraction_ref(roi, size)
    patches, origins = random_patches(image, 50, size, roi=roi, min_roi_fraction=fraction, rng=seed)
    assert patches.shape == (50, size, size) + image.shape[2:] and patches.dtype == np.uint16
    assert patches.flags.c_contiguous and origins.dtype == np.int64 and origins.shape == (50, 2)
    for p, (r, c) in zip(patches, origins):
        np.testing.assert_array_equal(p, image[r : r + size, c : c + size])
        assert ref[r, c] >= fraction - 1e-12
    again, again_origins = random_patches(image, 50, size, roi=roi, min_roi_fraction=fraction, rng=seed)
    np.testing.assert_array_equal(again_origins, origins)
    np.testing.assert_array_equal(again, patches)


def test_random_patches_draw_every_valid_origin_uniformly():
    roi = np.zeros((12, 14), bool)
    roi[2:9, 3:13] = True
    roi[5, 6] = False
    size = 4
    valid = window_roi_fraction_ref(roi, size) >= 0.9
    _, origins = random_patches(np.zeros((12, 14)), 20000, size, roi=roi, min_roi_fraction=0.9, rng=5)
    counts = np.zeros(valid.shape, int)
    np.add.at(counts, (origins[:, 0], origins[:, 1]), 1)
    np.testing.assert_array_equal(counts > 0, valid)
    expected = 20000 / valid.sum()
    assert np.all(np.abs(counts[valid] - expected) < 6 * np.sqrt(expected))


def test_random_patches_without_roi_and_edge_cases():
    image = np.arange(30 * 20 * 2, dtype=np.float32).reshape(30, 20, 2)
    patches, origins = random_patches(image, 100, 20, rng=np.random.default_rng(0))
    assert origins[:, 1].max() == 0 and origins[:, 0].max() <= 10
    for p, (r, c) in zip(patches, origins):
        np.testing.assert_array_equal(p, image[r : r + 20, c : c + 20])
    empty, no_origins = random_patches(image, 0, 5, rng=0)
    assert empty.shape == (0, 5, 5, 2) and no_origins.shape == (0, 2)
    mask, _ = random_patches(np.eye(8, dtype=bool), 3, 8, roi=np.ones((8, 8), np.uint8), rng=0)
    assert mask.dtype == np.bool_ and (mask == np.eye(8, dtype=bool)).all()
    half = np.arange(12 * 10 * 3, dtype=np.float16).reshape(12, 10, 3)
    patches, origins = random_patches(half, 4, 5, rng=1)
    assert patches.dtype == np.float16
    for p, (r, c) in zip(patches, origins):
        np.testing.assert_array_equal(p, half[r : r + 5, c : c + 5])


@pytest.mark.parametrize(
    "image, n, size, kwargs, exc, match",
    [
        (np.zeros(30), 1, 4, {}, ValueError, "image: expected a 2 or 3-D array, got 1-D"),
        (np.zeros((30, 30)), -1, 4, {}, ValueError, "n: expected an int >= 0, got -1"),
        (np.zeros((30, 30)), 1, 0, {}, ValueError, "size: expected an int >= 1, got 0"),
        (np.zeros((30, 30)), 1, 31, {}, ValueError, r"image: expected height and width >= size \(31\), got shape \(30, 30\)"),
        (np.zeros((30, 30)), 1, 4, {"roi": np.ones((30, 29), bool)}, ValueError, r"roi: expected shape \(30, 30\) like image, got \(30, 29\)"),
        (np.zeros((30, 30)), 1, 4, {"roi": np.ones((30, 30))}, TypeError, "roi: expected dtype kind in 'biu', got float64"),
        (np.zeros((30, 30)), 1, 4, {"roi": np.zeros((30, 30), bool)}, ValueError, r"roi: no 4 x 4 window has at least 100% of its pixels inside the region of interest \(0 ROI pixels"),
        (np.zeros((30, 30)), 1, 4, {"roi": np.eye(30, dtype=bool), "min_roi_fraction": 0.5}, ValueError, "roi: no 4 x 4 window has at least 50%"),
        (np.zeros((30, 30)), 1, 4, {"min_roi_fraction": 0.0}, ValueError, r"min_roi_fraction: expected a value in \(0, 1\], got 0"),
        (np.zeros((30, 30)), 1, 4, {"min_roi_fraction": 1.5}, ValueError, r"min_roi_fraction: expected a value in \(0, 1\], got 1.5"),
        (np.zeros((30, 30)), 1, 4, {"rng": "seed"}, TypeError, "rng: expected None, a non-negative int or a numpy.random.Generator, got str"),
    ],
)
def test_random_patches_rejects(image, n, size, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        random_patches(image, n, size, **kwargs)
