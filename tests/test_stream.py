"""The balanced synthetic stream: balance, masks, determinism, shards, resume, bad input."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ispad_core.io import merge_streams, open_stream, part_path
from ispad_core.samples import screen_print
from ispad_core.stream import (
    generation,
    plan,
    seed_of_unfinished,
    SyntheticStream,
    balanced_stream,
    reduce_to_8_bits,
    shard_range,
    stream_plan,
    visibility_summary,
    write_balanced_stream,
)
from ispad_core.synth import PRESETS, DefectParams, params_from_dict, synthesize_steps

SIZE = 64


def collect(gen):
    batches = list(gen)
    return tuple(np.concatenate([b[k] for b in batches]) for k in range(3))


@pytest.mark.parametrize("n", [1, 2, 7, 24])
def test_exactly_half_defective_and_masks_where_labels_are(images, n):
    patches, masks, labels = collect(balanced_stream(images, n, size=SIZE, rng=3, batch_size=5))
    assert patches.shape == (n, SIZE, SIZE) and patches.dtype == np.uint8
    assert masks.shape == (n, SIZE, SIZE) and set(np.unique(masks)) <= {0, 1}
    assert labels.dtype == np.uint8 and int(labels.sum()) == n // 2
    np.testing.assert_array_equal(masks.reshape(n, -1).any(axis=1), labels.astype(bool))


def test_same_seed_same_items_in_any_batch_size_and_slice(images):
    whole = collect(balanced_stream(images, 20, size=SIZE, rng=5, batch_size=20))
    again = collect(balanced_stream(images, 20, size=SIZE, rng=5, batch_size=3))
    part = collect(balanced_stream(images, 20, size=SIZE, rng=5, batch_size=4, start=7, stop=16))
    for a, b, c in zip(whole, again, part):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a[7:16], c)
    other = collect(balanced_stream(images, 20, size=SIZE, rng=6, batch_size=20))
    assert not np.array_equal(whole[0], other[0])


def test_rgb_images_give_rgb_patches():
    rgb = [screen_print((120, 120), rng=0, channels=3)]
    patches, masks, labels = collect(balanced_stream(rgb, 6, size=SIZE, rng=0))
    assert patches.shape == (6, SIZE, SIZE, 3)
    np.testing.assert_array_equal(masks.reshape(6, -1).any(axis=1), labels.astype(bool))


def test_patches_come_from_inside_the_roi(tmp_path, images):
    roi = np.zeros(images[0].shape, bool)
    roi[10:90, 40:150] = True
    out = tmp_path / "s.h5"
    write_balanced_stream(out, [images[0]], 16, rois=[roi], size=SIZE, seed=0, augment=None)
    with open_stream(out) as s:
        origins = s.field("origins")
        patches, masks, labels = s[:]
    for (r, c), patch, label in zip(origins, patches, labels):
        assert roi[r : r + SIZE, c : c + SIZE].all()
        if not label:  # no augmentation, no defect: the patch is the image window
            np.testing.assert_array_equal(patch, images[0][r : r + SIZE, c : c + SIZE])
    # half the pixels inside is enough with min_roi_fraction=0.5
    write_balanced_stream(tmp_path / "h.h5", [images[0]], 16, rois=[roi], size=SIZE, seed=0, min_roi_fraction=0.5)
    with open_stream(tmp_path / "h.h5") as s:
        assert all(roi[r : r + SIZE, c : c + SIZE].mean() >= 0.5 for r, c in s.field("origins"))


def test_invisible_defects_are_redrawn_on_other_patches(tmp_path):
    image = screen_print((128, 256), rng=0)
    image[:, :128] = 0  # dark defects cannot show on black
    params = dataclasses.replace(PRESETS["dot-dark"], max_attempts=2)
    out = tmp_path / "s.h5"
    summary = write_balanced_stream(out, image, 40, size=SIZE, preset=params, augment=None, seed=1)
    assert summary.n_redrawn > 0
    with open_stream(out) as s:
        patches, masks, labels = s[:]
        origins = s.field("origins")
    assert int(labels.sum()) == 20
    np.testing.assert_array_equal(masks.reshape(40, -1).any(axis=1), labels.astype(bool))
    assert all(c + SIZE > 128 for (r, c), lab in zip(origins, labels) if lab)


def test_a_defect_that_never_shows_is_an_error(images):
    params = DefectParams(threshold=1e9, max_attempts=1)
    with pytest.raises(RuntimeError, match="no visible defect after 3 patches"):
        collect(balanced_stream(images, 4, size=SIZE, preset=params, rng=0, max_redraws=2))


def test_stream_plan_and_shards(images):
    seeds, defective = stream_plan(1000, rng=0)
    assert np.unique(seeds).size == 1000 and int(defective.sum()) == 500
    s2, d2 = stream_plan(1000, rng=0)
    np.testing.assert_array_equal(seeds, s2)
    np.testing.assert_array_equal(defective, d2)
    # each shard, generated alone, is its slice of the whole stream: same labels, patches and masks
    whole = collect(balanced_stream(images, 11, size=SIZE, rng=0, batch_size=11))
    plan_labels = stream_plan(11, rng=0)[1].astype(np.uint8)
    np.testing.assert_array_equal(whole[2], plan_labels)
    pieces = []
    for k in range(3):
        a, b = shard_range(11, (k, 3))
        pieces.append(collect(balanced_stream(images, 11, size=SIZE, rng=0, batch_size=2, start=a, stop=b)))
        assert pieces[-1][0].shape[0] == b - a
    for j in range(3):
        np.testing.assert_array_equal(np.concatenate([piece[j] for piece in pieces]), whole[j])


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 10_000), parts=st.integers(1, 64))
def test_shards_are_contiguous_and_cover(n, parts):
    ranges = [shard_range(n, (k, parts)) for k in range(parts)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [b - a for a, b in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_derived_seeds_are_distinct_per_key():
    seeds = np.arange(10_000, dtype=np.uint32)
    a, b = plan._derive32(seeds, 0), plan._derive32(seeds, 1)
    assert np.unique(a).size > 9_980 and np.mean(a == b) < 0.01


# --------------------------------------------------------------------------- files


def test_file_same_seed_same_bytes_and_attrs(tmp_path, images):
    a = write_balanced_stream(tmp_path / "a.h5", images, 12, size=SIZE, seed=4, names=["x.png", "y.png"])
    b = write_balanced_stream(tmp_path / "b.h5", images, 12, size=SIZE, seed=4, names=["x.png", "y.png"])
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.n_items == 12 and a.n_defective == 6 and a.seed == 4 and a.mean_attempts >= 1
    assert set(a.timings) == {"extract", "augment", "synthesize", "compress", "write"}
    assert "wrote 12 patches" in str(a)
    with open_stream(a.path) as s:
        attrs = s.attrs
        assert attrs["seed"] == 4 and attrs["n_total"] == 12 and attrs["shard"] == "0/1"
        assert attrs["preset_name"] == "mixed" and params_from_dict(attrs["preset"]) == PRESETS["mixed"]
        assert params_from_dict(attrs["preset"]) != PRESETS["asm"]  # the check can fail
        assert attrs["augment_name"] == "lsm1" and isinstance(attrs["augment"], dict)
        assert [src["name"] for src in attrs["sources"]] == ["x.png", "y.png"]
        assert s.field("seeds").dtype == np.uint32 and (s.field("attempts")[s.labels == 1] >= 1).all()
        assert (s.field("attempts")[s.labels == 0] == 0).all()
        patches, masks, labels = s[:]
    ref = collect(balanced_stream(images, 12, size=SIZE, rng=4))
    np.testing.assert_array_equal(patches, ref[0])
    np.testing.assert_array_equal(masks, ref[1] != 0)


def test_shards_merged_equal_the_whole(tmp_path, images):
    whole = write_balanced_stream(tmp_path / "whole.h5", images, 17, size=SIZE, seed=9, batch_size=4).path
    parts = [
        write_balanced_stream(tmp_path / f"p{k}.h5", images, 17, size=SIZE, seed=9, batch_size=4, shard=(k, 3)).path
        for k in range(3)
    ]
    with open_stream(parts[1]) as p:
        assert p.attrs["shard"] == "1/3" and (p.attrs["item_start"], p.attrs["item_stop"]) == shard_range(17, (1, 3))
    copied = merge_streams(parts, tmp_path / "copied.h5", copy=True)
    assert copied.read_bytes() == whole.read_bytes()
    virtual = merge_streams(parts, tmp_path / "virtual.h5")
    with open_stream(virtual) as v, open_stream(whole) as w:
        for a, b in zip(v[:], w[:]):
            np.testing.assert_array_equal(a, b)
        assert v.attrs == w.attrs
        for name in ("accepted", "ssr", "cnr", "contrast"):
            np.testing.assert_array_equal(v.field(name), w.field(name))
        assert visibility_summary(v) == visibility_summary(w) is not None


def test_interrupted_write_resumes_to_the_same_bytes(tmp_path, images, monkeypatch):
    whole = write_balanced_stream(tmp_path / "whole.h5", images, 13, size=SIZE, seed=2, batch_size=3).path
    out = tmp_path / "s.h5"
    real_make = generation._Generator.make
    calls = []

    def failing_make(self, a, b):
        calls.append(a)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as Ctrl-C would, after two complete batches
        return real_make(self, a, b)

    monkeypatch.setattr(generation._Generator, "make", failing_make)
    with pytest.raises(KeyboardInterrupt):
        write_balanced_stream(out, images, 13, size=SIZE, seed=2, batch_size=3)
    assert not out.exists() and part_path(out).exists()
    monkeypatch.setattr(generation._Generator, "make", real_make)
    summary = write_balanced_stream(out, images, 13, size=SIZE, batch_size=3)  # seed taken from the part
    assert summary.n_resumed == 6 and summary.seed == 2
    assert out.read_bytes() == whole.read_bytes()


def test_callback_sees_each_checkpoint_and_can_stop_the_write(tmp_path, images):
    seen = []

    def stop_after_two_batches(done, total):
        seen.append((done, total))
        if len(seen) == 2:
            raise KeyboardInterrupt

    out = tmp_path / "s.h5"
    with pytest.raises(KeyboardInterrupt):
        write_balanced_stream(out, images, 13, size=SIZE, seed=2, batch_size=3, callback=stop_after_two_batches)
    assert seen == [(3, 13), (6, 13)]
    assert not out.exists() and part_path(out).exists()
    seen.clear()
    summary = write_balanced_stream(out, images, 13, size=SIZE, batch_size=3, callback=lambda d, t: seen.append((d, t)))
    assert summary.n_resumed == 6 and seen == [(9, 13), (12, 13), (13, 13)]


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        ({"images": np.zeros((50, 50), np.uint8)}, ValueError, "images\\[0\\]: image of 50 x 50 pixels is smaller than the patch size 64"),
        ({"images": np.zeros((80, 80), np.float32)}, TypeError, "images\\[0\\]: expected dtype uint8, uint16, got float32"),
        ({"images": []}, TypeError, "images: expected an image array or a non-empty sequence"),
        ({"images": [np.zeros((80, 80), np.uint8), np.zeros((80, 80, 3), np.uint8)]}, ValueError, "images\\[1\\]: has shape"),
        ({"rois": [np.zeros((150, 170), bool), None]}, ValueError, "rois\\[0\\]: no 64 x 64 window has 100% of its pixels inside"),
        ({"rois": [None]}, ValueError, "rois: expected one ROI \\(or None\\) per image, 2 in all"),
        ({"rois": [np.ones((10, 10), bool), None]}, ValueError, "rois\\[0\\]: expected shape \\(150, 170\\) like images\\[0\\]"),
        ({"preset": "nope"}, ValueError, "preset: expected one of .*'mixed'.*, got 'nope'"),
        ({"preset": 3}, TypeError, "preset: expected a preset name or DefectParams"),
        ({"augment": "nope"}, ValueError, "augment: expected one of 'asm', 'lsm1', 'lsm2' or 'none', got 'nope'"),
        ({"n": 0}, ValueError, "n: expected an int >= 1, got 0"),
        ({"min_roi_fraction": 0.0}, ValueError, "min_roi_fraction: expected a value in \\(0, 1\\]"),
        ({"stop": 99}, ValueError, "stop: expected an int <= 10, got 99"),
    ],
)
def test_bad_input(images, kwargs, exc, message):
    args = {"images": images, "n": 10, "size": SIZE, "rng": 0}
    args.update(kwargs)
    with pytest.raises(exc, match=message):
        collect(balanced_stream(args.pop("images"), args.pop("n"), **args))


def test_bad_file_input(tmp_path, images):
    with pytest.raises(ValueError, match="shard: part 0 of 4 of a 3-item stream is empty"):
        write_balanced_stream(tmp_path / "s.h5", images, 3, size=SIZE, seed=0, shard=(0, 4))
    with pytest.raises(ValueError, match="shard index: expected an int <= 3, got 4"):
        write_balanced_stream(tmp_path / "s.h5", images, 3, size=SIZE, seed=0, shard=(4, 4))
    (tmp_path / "mine.h5").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        write_balanced_stream(tmp_path / "mine.h5", images, 3, size=SIZE, seed=0)
    assert (tmp_path / "mine.h5").read_bytes() == b"mine"
    assert not part_path(tmp_path / "mine.h5").exists() and not list(tmp_path.glob("*.part*"))


# --------------------------------------------------------------------------- defect fraction


@pytest.mark.parametrize("n, fraction, expected", [(10, 0.0, 0), (7, 0.5, 3), (100, 0.29, 29), (9, 1.0, 9), (10, 0.25, 2)])
def test_defect_fraction_sets_the_number_of_defects_and_keeps_the_seeds(n, fraction, expected):
    seeds, defective = stream_plan(n, rng=1, defect_fraction=fraction)
    assert int(defective.sum()) == expected
    np.testing.assert_array_equal(seeds, stream_plan(n, rng=1)[0])


def test_a_pure_fault_free_stream(tmp_path, images):
    out = tmp_path / "good.h5"
    summary = write_balanced_stream(out, images, 9, size=SIZE, seed=3, defect_fraction=0)
    assert summary.n_defective == 0
    with open_stream(out) as s:
        assert s.attrs["defect_fraction"] == 0.0 and not s.labels.any()
        assert not s[:][1].any() and (s.field("attempts") == 0).all()
    with pytest.raises(ValueError, match="defect_fraction: expected a value"):
        stream_plan(4, rng=0, defect_fraction=1.5)


# --------------------------------------------------------------------------- on the fly


def _rgb_images():
    return [screen_print((120, 140), rng=0, channels=3, kind="mesh"), screen_print((100, 100), rng=1, channels=3)]


def _rois(images):
    rois = []
    for k, image in enumerate(images):
        roi = np.zeros(image.shape[:2], bool)
        roi[5 + k :, : image.shape[1] - 3 * k] = True
        rois.append(roi)
    return rois


@pytest.mark.parametrize("colour", [False, True], ids=["grey", "colour"])
@pytest.mark.parametrize("augment, with_rois", [("lsm1", True), (None, False), ("asm", False)])
def test_synthetic_stream_item_i_is_file_item_i(tmp_path, images, colour, augment, with_rois):
    imgs = _rgb_images() if colour else images
    rois = _rois(imgs) if with_rois else None
    kwargs = dict(rois=rois, size=SIZE, augment=augment, preset="mixed", min_roi_fraction=0.9)
    out = tmp_path / "s.h5"
    write_balanced_stream(out, imgs, 14, seed=11, batch_size=5, **kwargs)
    stream = SyntheticStream(imgs, n=14, seed=11, **kwargs)
    with open_stream(out) as f:
        file_items = f[:]
        order = np.random.default_rng(0).permutation(14)
        got = stream[order]
        for a, b in zip(got, file_items):
            np.testing.assert_array_equal(a, b[order])
        for i in (0, 5, 13, -1):
            image, mask, label = stream[i]
            ref = f[i]
            assert image.dtype == ref[0].dtype and image.shape == ref[0].shape
            np.testing.assert_array_equal(image, ref[0])
            np.testing.assert_array_equal(mask, ref[1])
            assert label == ref[2] and type(label) is int
    np.testing.assert_array_equal(stream.labels, file_items[2])
    items = stream.__getitems__([3, 1])
    assert [lab for _, _, lab in items] == [int(file_items[2][3]), int(file_items[2][1])]
    np.testing.assert_array_equal(items[0][0], file_items[0][3])


def test_synthetic_stream_epochs_are_fresh_and_repeat_by_seed(images):
    stream = SyntheticStream(images, n=12, seed=4, size=SIZE)
    epoch0 = stream[:]
    stream.set_epoch(1)
    epoch1 = stream[:]
    assert stream.epoch == 1 and int(epoch1[2].sum()) == 6
    assert not np.array_equal(epoch0[2], epoch1[2]) or not np.array_equal(epoch0[0], epoch1[0])
    assert all(not np.array_equal(a, b) for a, b in zip(epoch0[0], epoch1[0]))  # every patch is new
    stream.set_epoch(2)
    epoch2 = stream[:]
    assert all(not np.array_equal(a, b) for a, b in zip(epoch1[0], epoch2[0]))
    again = SyntheticStream(images, n=12, seed=4, size=SIZE, epoch=1)
    for a, b in zip(again[:], epoch1):
        np.testing.assert_array_equal(a, b)
    stream.set_epoch(0)
    for a, b in zip(stream[:], epoch0):
        np.testing.assert_array_equal(a, b)
    other = SyntheticStream(images, n=12, seed=5, size=SIZE, epoch=1)
    assert not np.array_equal(other[:][0], epoch1[0])


def test_synthetic_stream_pickles_and_sets_one_numba_thread_in_another_process(images):
    import pickle

    import numba

    stream = SyntheticStream(images, n=6, seed=2, size=SIZE, epoch=3)
    clone = pickle.loads(pickle.dumps(stream))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        stream[0]
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # the making process: untouched
        for a, b in zip(clone[:], stream[:]):  # the clone acts as a worker would
            np.testing.assert_array_equal(a, b)
        assert numba.get_num_threads() == 1 and clone.epoch == 3
    finally:
        numba.set_num_threads(before)


def test_synthetic_stream_bad_input(images):
    stream = SyntheticStream(images, n=4, seed=0, size=SIZE)
    with pytest.raises(IndexError, match="index 4 is out of range for a stream of 4 items"):
        stream[4]
    with pytest.raises(IndexError, match="indices out of range"):
        stream[[0, 9]]
    with pytest.raises(TypeError, match="index: expected an int, a slice or a 1-D integer array"):
        stream[[0.5]]
    with pytest.raises(ValueError, match="epoch: expected an int >= 0"):
        stream.set_epoch(-1)
    with pytest.raises(ValueError, match="n: expected an int >= 1"):
        SyntheticStream(images, n=0, seed=0, size=SIZE)
    assert stream[[]][0].shape == (0, SIZE, SIZE)
    assert "SyntheticStream(4 items" in repr(stream)


@pytest.mark.torch
@pytest.mark.parametrize("workers", [0, 2])
def test_synthetic_stream_in_a_dataloader_gives_the_file_items(tmp_path, images, workers):
    torch = pytest.importorskip("torch")
    out = tmp_path / "s.h5"
    write_balanced_stream(out, images, 16, size=SIZE, seed=8, batch_size=5)
    stream = SyntheticStream(images, n=16, seed=8, size=SIZE)
    # forked workers after this process ran Numba's parallel kernels: they run the serial twins
    loader = torch.utils.data.DataLoader(stream, batch_size=4, num_workers=workers)
    got = [torch.cat(parts).numpy() for parts in zip(*loader)]
    with open_stream(out) as f:
        for a, b in zip(got, f[:]):
            np.testing.assert_array_equal(a, b)
    stream.set_epoch(1)  # the loader's workers are made per epoch and see the new epoch
    epoch1 = [torch.cat(parts).numpy() for parts in zip(*loader)]
    for a, b in zip(epoch1, stream[:]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(epoch1[0], got[0])


_FRESH_PROCESS = """
import numpy as np, torch
from ispad_core.samples import screen_print
from ispad_core.stream import SyntheticStream
stream = SyntheticStream([screen_print((100, 100), rng=0)], n=8, seed=1, size=48)
loader = torch.utils.data.DataLoader(stream, batch_size=4, num_workers=2, multiprocessing_context="fork")
images = torch.cat([b[0] for b in loader]).numpy()
assert (images == stream[:][0]).all()
import numba
print(numba.threading_layer())
"""


@pytest.mark.torch
def test_forked_workers_work_when_the_stream_comes_first():
    pytest.importorskip("torch")
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    done = subprocess.run([sys.executable, "-c", _FRESH_PROCESS], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() in ("workqueue", "tbb")


def test_a_link_at_the_part_path_is_neither_read_nor_written_through(tmp_path, images):
    target = tmp_path / "elsewhere.h5"
    write_balanced_stream(target, images, 4, size=SIZE, seed=1)
    before = target.read_bytes()
    out = tmp_path / "s.h5"
    part_path(out).symlink_to(target)
    assert seed_of_unfinished(out) is None  # its seed would be the linked file's
    with pytest.raises(ValueError, match="s.h5.part is a symbolic link"):
        write_balanced_stream(out, images, 4, size=SIZE)
    assert target.read_bytes() == before and not out.exists()


def test_errors_about_an_image_name_its_file(tmp_path, images):
    small = np.zeros((40, 40), np.uint8)
    with pytest.raises(ValueError, match="images\\[1\\] \\(b.png\\): image of 40 x 40 pixels is smaller"):
        write_balanced_stream(tmp_path / "s.h5", [images[0], small], 4, size=SIZE, seed=0, names=["a.png", "b.png"])
    with pytest.raises(ValueError, match="images\\[1\\] \\(scan7.tif\\): has shape \\(80, 80, 3\\), but images\\[0\\] \\(a.png\\)"):
        SyntheticStream([images[0], np.zeros((80, 80, 3), np.uint8)], n=4, size=SIZE, seed=0,
                                   names=["a.png", "scan7.tif"])


# --------------------------------------------------------------------------- visibility


def test_visibility_figures_are_stored_and_are_the_synthesizers(tmp_path, images):
    out = tmp_path / "s.h5"
    write_balanced_stream(out, images, 24, size=SIZE, seed=3, augment=None, batch_size=5)
    with open_stream(out) as s:
        patches, masks, labels = s[:]
        seeds, origins, sources = s.field("seeds"), s.field("origins"), s.field("sources")
        fig = {name: s.field(name) for name in ("accepted", "ssr", "cnr", "contrast")}
    good, bad = labels == 0, labels == 1
    assert fig["accepted"].dtype == np.uint8 and fig["cnr"].dtype == np.float64
    for name in fig:
        assert (fig[name][good] == 0).all()
    assert (fig["accepted"][bad] == 1).all() and (fig["ssr"][bad] > 0).all()
    checked = 0
    for i in np.flatnonzero(bad):
        r, c = origins[i]
        before = images[sources[i]][r : r + SIZE, c : c + SIZE]  # no augmentation: the window itself
        diff = patches[i].astype(np.float64) - before
        m = masks[i] > 0
        # the figures, recomputed from the pixels: SSR over the patch, contrast over the mask
        np.testing.assert_allclose(fig["ssr"][i], (diff**2).sum(), rtol=1e-12)
        np.testing.assert_allclose(fig["contrast"][i], np.abs(diff[m]).mean(), rtol=1e-12)
        assert fig["cnr"][i] <= fig["contrast"][i] + 1e-9  # the noise is floored at one grey level
        steps = synthesize_steps(before, PRESETS["mixed"], seed=int(plan._derive32(seeds[i : i + 1], 2)[0]))
        if np.array_equal(steps.image, patches[i]):  # drawn on its first patch: the same defect
            assert fig["cnr"][i] == steps.cnr and fig["ssr"][i] == steps.ssr
            checked += 1
    assert checked >= 6


def test_min_contrast_redraws_faint_defects_and_is_recorded(tmp_path, images):
    faint = DefectParams(contrast=(2.0, 20.0), threshold=0.0, noise_amplitude=(0.0, 0.0))
    common = dict(size=SIZE, seed=1, preset=faint, augment=None, batch_size=8)
    plain = write_balanced_stream(tmp_path / "plain.h5", images, 40, **common)
    floored = write_balanced_stream(tmp_path / "floor.h5", images, 40, min_contrast=6.0, **common)
    with open_stream(plain.path) as a, open_stream(floored.path) as b:
        assert "min_contrast" not in a.attrs and b.attrs["min_contrast"] == 6.0
        assert (a.field("contrast")[a.labels == 1] < 6).any()  # without the floor some are fainter
        assert (b.field("contrast")[b.labels == 1] >= 6).all()
        np.testing.assert_array_equal(a.labels, b.labels)
        assert visibility_summary(b, below=6.0).n_below == 0 < visibility_summary(a, below=6.0).n_below
    assert floored.n_redrawn > plain.n_redrawn
    # a floor every defect passes leaves the items as they were
    zero = write_balanced_stream(tmp_path / "zero.h5", images, 40, min_contrast=0.0, **common)
    with open_stream(plain.path) as a, open_stream(zero.path) as z:
        for x, y in zip(a[:], z[:]):
            np.testing.assert_array_equal(x, y)
    # the on-the-fly stream applies the same floor
    fly = SyntheticStream(images, n=40, min_contrast=6.0, size=SIZE, seed=1, preset=faint, augment=None)
    with open_stream(floored.path) as b:
        for i in (0, 7, 39):
            np.testing.assert_array_equal(fly[i][0], b[i][0])
    with pytest.raises(RuntimeError, match="minimum contrast 200"):
        collect(balanced_stream(images, 4, size=SIZE, rng=0, preset=faint, min_contrast=200.0, max_redraws=1))
    with pytest.raises(ValueError, match="min_contrast"):
        collect(balanced_stream(images, 4, size=SIZE, rng=0, min_contrast=-1.0))


def test_a_file_without_visibility_figures_stays_readable(tmp_path, images):
    from ispad_core.io import write_stream

    patches, masks, labels = collect(balanced_stream(images, 6, size=SIZE, rng=0))
    old = write_stream(tmp_path / "old.h5", patches, masks, labels)
    with open_stream(old) as s:
        assert s.field("contrast") is None and len(s) == 6
        assert visibility_summary(s) is None


def test_16_bit_images_are_reduced_to_8_bits(tmp_path, images):
    wide = [im.astype(np.uint16) * 257 for im in images]
    np.testing.assert_array_equal(reduce_to_8_bits(wide[0]), images[0])
    a = write_balanced_stream(tmp_path / "a.h5", images, 8, size=SIZE, seed=2)
    b = write_balanced_stream(tmp_path / "b.h5", wide, 8, size=SIZE, seed=2)
    with open_stream(a.path) as x, open_stream(b.path) as y:
        for u, v in zip(x[:], y[:]):
            np.testing.assert_array_equal(u, v)
        assert "bits" not in x.attrs["sources"][0] and y.attrs["sources"][0]["bits"] == 16
        assert x.attrs["sources"][0]["sha256"] == y.attrs["sources"][0]["sha256"]


@pytest.mark.parametrize("shape", [(20, 21, 3), (16, 16), (7, 5)])
def test_mask_contrast_kernel_against_its_definition(shape):
    rng = np.random.default_rng(1)
    before = rng.integers(0, 256, (6, *shape), dtype=np.uint8)
    masks = (rng.random((6, *shape[:2])) < 0.2).astype(np.uint8)
    masks[2] = 0
    after = np.where(masks.reshape(*masks.shape, *([1] * (len(shape) - 2))) == 1, 255 - before, before).astype(np.uint8)
    rows = np.array([0, 2, 5])
    got = generation._mask_contrast(before, after, masks, rows)
    change = np.abs(after.astype(np.float64) - before)
    if change.ndim == 4:
        change = change.mean(axis=3)
    expected = np.zeros(6)
    for i in (0, 5):
        expected[i] = change[i][masks[i] == 1].mean()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


# --------------------------------------------------------------------------- one spec for every stream function


def test_a_spec_and_the_keywords_make_the_same_stream(tmp_path, images):
    from ispad_core.stream import StreamSpec

    spec = StreamSpec(size=SIZE, preset="scratch", augment="lsm2", defect_fraction=0.25, batch_size=4)
    by_spec = list(balanced_stream(images, 8, rng=3, spec=spec))
    by_keywords = list(balanced_stream(images, 8, rng=3, size=SIZE, preset="scratch", augment="lsm2",
                                       defect_fraction=0.25, batch_size=4))
    assert len(by_spec) == len(by_keywords) == 2
    for a, b in zip(by_spec, by_keywords):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # keywords override the spec's fields; the file records the spec it was written with
    out = write_balanced_stream(tmp_path / "s.h5", images, 8, seed=3, spec=spec.replace(size=32), size=SIZE).path
    with open_stream(out) as s:
        assert s.attrs["patch_size"] == SIZE and s.attrs["preset_name"] == "scratch" and s.attrs["defect_fraction"] == 0.25
        stream = SyntheticStream(images, n=8, seed=3, spec=spec)
        np.testing.assert_array_equal(stream[0:8][0], s[0:8][0])


def test_a_spec_is_checked_when_made_and_unknown_keywords_are_refused(images):
    from ispad_core.stream import StreamSpec

    with pytest.raises(ValueError, match="size: expected height and width of at least"):
        StreamSpec(size=8)
    with pytest.raises(ValueError, match="compression: expected one of"):
        StreamSpec(compression="fast")
    with pytest.raises(TypeError, match="balanced_stream\\(\\) got an unexpected keyword argument 'sise'"):
        balanced_stream(images, 4, sise=SIZE)
    with pytest.raises(TypeError, match="write_balanced_stream\\(\\) got an unexpected keyword argument 'colour'"):
        write_balanced_stream("never.h5", images, 4, colour=True)
    with pytest.raises(TypeError, match="spec: expected a StreamSpec, got dict"):
        SyntheticStream(images, n=4, spec={"size": SIZE})


def test_show_progress_still_works_and_warns(tmp_path, images):
    with pytest.warns(DeprecationWarning, match="write_balanced_stream: show_progress= is now called verbose="):
        write_balanced_stream(tmp_path / "s.h5", images, 4, seed=0, size=SIZE, show_progress=False)
