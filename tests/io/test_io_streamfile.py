"""HDF5 stream files: layout, round trips, crash safety, resume, merge, bad input."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from ispad_core import __version__
from ispad_core.io import StreamWriter, merge_streams, open_stream, part_path, write_stream


def make_items(n=10, shape=(16, 12), seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    labels = (np.arange(n) % 3 == 1).astype(np.uint8)
    masks = np.zeros((n, *shape[:2]), np.uint8)
    for i in np.flatnonzero(labels):
        masks[i, 2 : 4 + i % 5, 3:7] = 1
    return images, masks, labels


ATTRS = {
    "seed": 12,
    "preset": {"name": "mixed", "contrast": [10.0, 40.0], "nested": {"a": [1, 2]}},
    "sources": ["a.png", "b.png"],
    "ratio": 0.25,
    "flag": True,
    "note": "grey patches",
    "nothing": None,
}


def test_layout_follows_design(tmp_path):
    images, masks, labels = make_items()
    path = write_stream(tmp_path / "s.h5", images, masks, labels, attrs=ATTRS, fields={"seeds": np.arange(10)})
    with h5py.File(path, "r") as f:
        img = f["syn_stream/images"]
        assert img.shape == (10, 16, 12) and img.dtype == np.uint8
        assert img.chunks == (1, 16, 12) and img.compression == "gzip"
        # plain h5py decodes our chunks through HDF5's own gzip filter
        np.testing.assert_array_equal(img[()], images)
        np.testing.assert_array_equal(f["syn_stream/labels"][()], labels)
        gt = f["ground_truth"]
        assert gt.chunks == (1, 16, 12) and gt.dtype == np.uint8
        np.testing.assert_array_equal(gt[()], masks * 255)
        assert set(np.unique(gt[()])) <= {0, 255}
        np.testing.assert_array_equal(f["syn_stream/seeds"][()], np.arange(10))
        assert f.attrs["ispad_core_version"] == __version__
        assert f.attrs["seed"] == 12
    assert not part_path(path).exists()


@pytest.mark.parametrize("compression", ["isal", "zlib", "none"])
@pytest.mark.parametrize("shape", [(16, 12), (9, 7, 3)])
def test_round_trip(tmp_path, compression, shape):
    if compression == "zstd":
        pytest.importorskip("zstandard")
    images, masks, labels = make_items(shape=shape)
    path = write_stream(tmp_path / "s.h5", images, masks, labels, compression=compression, batch_size=4)
    with open_stream(path) as s:
        assert len(s) == 10 and s.image_shape == shape
        got = s[:]
        np.testing.assert_array_equal(got[0], images)
        np.testing.assert_array_equal(got[1], masks != 0)
        np.testing.assert_array_equal(got[2], labels)
        assert s.attrs["compression"] == compression


def test_attributes_round_trip(tmp_path):
    images, masks, labels = make_items()
    path = write_stream(tmp_path / "s.h5", images, masks, labels, attrs=ATTRS)
    with open_stream(path) as s:
        attrs = s.attrs
    for key, value in ATTRS.items():
        assert attrs[key] == value and type(attrs[key]) is type(value)
    assert attrs["ispad_core_version"] == __version__
    assert attrs["format"] == "ispad-stream"


def test_reader_indexing(tmp_path):
    images, masks, labels = make_items()
    path = write_stream(tmp_path / "s.h5", images, masks, labels)
    with open_stream(path) as s:
        image, mask, label = s[4]
        np.testing.assert_array_equal(image, images[4])
        assert label == labels[4] and isinstance(label, int)
        np.testing.assert_array_equal(s[-1][0], images[-1])
        np.testing.assert_array_equal(s[np.int64(2)][0], images[2])
        np.testing.assert_array_equal(s[1:9:3][0], images[1:9:3])
        np.testing.assert_array_equal(s[8:2][0], images[8:2])
        idx = np.array([7, 2, 7, 0])
        got = s[idx]
        np.testing.assert_array_equal(got[0], images[idx])
        np.testing.assert_array_equal(got[2], labels[idx])
        chunks = list(s.iter_chunks(4))
        assert [c[2].shape[0] for c in chunks] == [4, 4, 2]
        np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), images)
        assert [c[2].shape[0] for c in s.iter_chunks(3, start=2, stop=7)] == [3, 2]
        assert [lab for _, _, lab in s] == labels.tolist()
        assert s.labels.tolist() == labels.tolist()
        assert s.field("seeds") is None
        with pytest.raises(IndexError, match="index 10 is out of range for a stream of 10 items"):
            s[10]
        with pytest.raises(IndexError, match="out of range"):
            s[np.array([0, 11])]
        with pytest.raises(TypeError, match="index: expected an int, a slice or a 1-D integer array, got str"):
            s["a"]
    with pytest.raises(ValueError, match="the stream is closed"):
        s[0]


def test_reader_pickles_by_path(tmp_path):
    images, masks, labels = make_items()
    path = write_stream(tmp_path / "s.h5", images, masks, labels)
    with open_stream(path) as s:
        clone = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(clone[3][0], images[3])
    clone.close()


def test_same_input_same_bytes(tmp_path):
    images, masks, labels = make_items()
    a = write_stream(tmp_path / "a.h5", images, masks, labels, attrs=ATTRS)
    b = write_stream(tmp_path / "b.h5", images, masks, labels, attrs=ATTRS)
    assert a.read_bytes() == b.read_bytes()


def test_existing_file_is_refused_and_untouched(tmp_path):
    images, masks, labels = make_items()
    path = tmp_path / "s.h5"
    path.write_bytes(b"precious user data")
    before = os.stat(path).st_mtime_ns
    with pytest.raises(FileExistsError, match="s.h5 exists; pass overwrite=True"):
        write_stream(path, images, masks, labels)
    assert path.read_bytes() == b"precious user data" and os.stat(path).st_mtime_ns == before
    assert not part_path(path).exists()
    write_stream(path, images, masks, labels, overwrite=True)
    assert len(open_stream(path)) == 10


class Boom(RuntimeError):
    pass


def write_interrupted(path, images, masks, labels, *, fail_after, batch_size=3, **kw):
    """Write batches and raise after ``fail_after`` of them, as a crash in generation would."""
    with pytest.raises(Boom):
        with StreamWriter(path, n=len(images), image_shape=images.shape[1:], batch_size=batch_size, **kw) as w:
            for k, start in enumerate(range(w.n_done, len(images), batch_size)):
                if k == fail_after:
                    raise Boom
                sl = slice(start, start + batch_size)
                w.append(images[sl], masks[sl], labels[sl])


def resume(path, images, masks, labels, *, batch_size=3, **kw):
    with StreamWriter(path, n=len(images), image_shape=images.shape[1:], batch_size=batch_size, **kw) as w:
        resumed = w.n_done
        for start in range(w.n_done, len(images), batch_size):
            sl = slice(start, start + batch_size)
            w.append(images[sl], masks[sl], labels[sl])
    return resumed


def test_interrupted_write_leaves_no_final_file_and_resumes_to_the_same_bytes(tmp_path):
    images, masks, labels = make_items(n=11)
    whole = write_stream(tmp_path / "whole.h5", images, masks, labels, attrs=ATTRS, batch_size=3)
    path = tmp_path / "s.h5"
    write_interrupted(path, images, masks, labels, fail_after=2, attrs=ATTRS)
    assert not path.exists() and part_path(path).exists()
    with pytest.raises(ValueError, match="unfinished stream \\(6 of 11 items\\)"):
        open_stream(part_path(path))
    assert resume(path, images, masks, labels, attrs=ATTRS) == 6
    assert not part_path(path).exists()
    assert path.read_bytes() == whole.read_bytes()


def test_interrupted_twice_still_same_bytes(tmp_path):
    images, masks, labels = make_items(n=11)
    whole = write_stream(tmp_path / "whole.h5", images, masks, labels, batch_size=3)
    path = tmp_path / "s.h5"
    write_interrupted(path, images, masks, labels, fail_after=1)
    write_interrupted(path, images, masks, labels, fail_after=1)  # resumes 3, adds 3, fails
    assert resume(path, images, masks, labels) == 6
    assert path.read_bytes() == whole.read_bytes()


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from io_items import make_items
    from ispad_core.io import StreamWriter
    images, masks, labels = make_items(n=11)
    w = StreamWriter({path!r}, n=11, image_shape=images.shape[1:], batch_size=3)
    for k, start in enumerate(range(0, 11, 3)):
        if k == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup of any kind
        w.append(images[start:start + 3], masks[start:start + 3], labels[start:start + 3])
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_process_resumes_to_the_same_bytes(tmp_path):
    helper = tmp_path / "io_items.py"
    helper.write_text(textwrap.dedent(
        """
        import numpy as np
        def make_items(n=10, shape=(16, 12), seed=0):
            rng = np.random.default_rng(seed)
            images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
            labels = (np.arange(n) % 3 == 1).astype(np.uint8)
            masks = np.zeros((n, *shape[:2]), np.uint8)
            for i in np.flatnonzero(labels):
                masks[i, 2 : 4 + i % 5, 3:7] = 1
            return images, masks, labels
        """
    ))
    path = tmp_path / "s.h5"
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT.format(tests=str(tmp_path), path=str(path))])
    assert proc.returncode == -signal.SIGKILL
    assert not path.exists() and part_path(path).exists()
    images, masks, labels = make_items(n=11)
    assert resume(path, images, masks, labels) == 6
    whole = write_stream(tmp_path / "whole.h5", images, masks, labels, batch_size=3)
    assert path.read_bytes() == whole.read_bytes()


def test_damaged_part_is_regenerated_from_the_damage(tmp_path):
    images, masks, labels = make_items(n=11)
    path = tmp_path / "s.h5"
    write_interrupted(path, images, masks, labels, fail_after=3)
    part = part_path(path)
    with h5py.File(part, "r") as f:
        offset = f["syn_stream/images"].id.get_chunk_info_by_coord((4, 0, 0)).byte_offset
    with open(part, "r+b") as fh:
        fh.seek(offset + 20)
        fh.write(b"\x00\xff" * 8)
    with pytest.warns(RuntimeWarning, match="items from 3 on are damaged"):
        assert resume(path, images, masks, labels) == 3
    whole = write_stream(tmp_path / "whole.h5", images, masks, labels, batch_size=3)
    assert path.read_bytes() == whole.read_bytes()


def _users_h5(path, **attrs):
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(5)
        for k, v in attrs.items():
            f.attrs[k] = v


@pytest.mark.parametrize("suffix", [".part", ".part.old", ".part.older"])
@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.write_bytes(b"my notes, not hdf5"),
        lambda p: _users_h5(p),                                        # an HDF5 file without a job
        lambda p: _users_h5(p, job="nightly", n_done=3),                # someone else's "job"
        lambda p: _users_h5(p, job='{"format": "other"}', n_done=3),    # JSON, but not a stream job
    ],
    ids=["bytes", "h5", "h5-job-text", "h5-job-json"],
)
@pytest.mark.parametrize("kw", [{}, {"overwrite": True}, {"resume": False}, {"resume": False, "overwrite": True}])
def test_a_file_the_library_did_not_write_is_never_deleted_or_resumed(tmp_path, make, suffix, kw):
    # only an unfinished file with this library's job attribute is ours to delete or resume;
    # anything else at FILE.part is the user's, with or without overwrite
    images, masks, labels = make_items(n=5)
    path = tmp_path / "s.h5"
    theirs = path.with_name(path.name + suffix)
    make(theirs)
    before = theirs.read_bytes()
    with pytest.raises(FileExistsError, match=f"{theirs}: not an unfinished stream file of this library") as info:
        resume(path, images, masks, labels, **kw)
    assert "remove or rename it" in str(info.value)
    assert theirs.read_bytes() == before and not path.exists() and not (tmp_path / "s.h5.lock").exists()
    assert sorted(os.listdir(tmp_path)) == [theirs.name]


def test_a_crashed_part_of_this_library_without_items_is_still_ours(tmp_path):
    # a part renamed into place already carries its job: one interrupted before any batch is
    # recognised and discarded by a fresh write
    images, masks, labels = make_items(n=6)
    path = tmp_path / "s.h5"
    write_interrupted(path, images, masks, labels, fail_after=0)
    with h5py.File(part_path(path), "r") as f:
        assert int(f.attrs["n_done"]) == 0 and "job" in f.attrs
    assert resume(path, images, masks, labels) == 0 and len(open_stream(path)) == 6


def test_a_new_writer_removes_what_a_killed_one_left_before_its_rename(tmp_path):
    images, masks, labels = make_items(n=5)
    path = tmp_path / "s.h5"
    left = tmp_path / ".s.h5.a1b2_c3d.new"  # killed between creating its new part and renaming it
    left.write_bytes(b"\x89HDF half written")
    users = [tmp_path / ".s.h5.new", tmp_path / ".t.h5.a1b2_c3d.new"]
    for p in users:
        p.write_text("mine")
    write_stream(path, images, masks, labels)
    assert not left.exists() and all(p.read_text() == "mine" for p in users)


def test_cli_synth_refuses_a_users_file_at_the_part_name_in_one_line(tmp_path, capsys):
    from ispad_core.cli import main

    out = tmp_path / "s.h5"
    theirs = part_path(out)
    theirs.write_text("three weeks of notes")
    rc = main(["synth", "--out", str(out), "--n", "8", "--size", "32", "--seed", "0"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ispad synth: error: ")]
    assert rc == 1 and len(errors) == 1 and str(theirs) in errors[0] and "Traceback" not in err, err
    assert theirs.read_text() == "three weeks of notes" and not out.exists()


def test_part_of_another_job_is_refused_unless_overwrite(tmp_path):
    images, masks, labels = make_items(n=11)
    path = tmp_path / "s.h5"
    write_interrupted(path, images, masks, labels, fail_after=1, attrs={"seed": 1})
    before = part_path(path).read_bytes()
    with pytest.raises(FileExistsError, match="different settings \\(differs in seed\\)"):
        resume(path, images, masks, labels, attrs={"seed": 2})
    assert part_path(path).read_bytes() == before
    assert resume(path, images, masks, labels, attrs={"seed": 2}, overwrite=True) == 0
    assert open_stream(path).attrs["seed"] == 2


def test_no_resume_starts_over(tmp_path):
    images, masks, labels = make_items(n=11)
    path = tmp_path / "s.h5"
    write_interrupted(path, images, masks, labels, fail_after=2)
    assert resume(path, images, masks, labels, resume=False) == 0


def test_no_resume_still_refuses_the_part_of_another_job(tmp_path):
    # resume=False (write_stream always, ispad synth --no-resume) discards this job's unfinished
    # part; another job's part (hours of an interrupted ispad synth) is not ours to delete unasked.
    images, masks, labels = make_items(n=11)
    path = tmp_path / "s.h5"
    write_interrupted(path, images, masks, labels, fail_after=2, attrs={"seed": 1})
    before = part_path(path).read_bytes()
    with pytest.raises(FileExistsError, match="different settings \\(differs in seed\\)"):
        write_stream(path, images, masks, labels, attrs={"seed": 2}, batch_size=3)
    with pytest.raises(FileExistsError, match="different settings"):
        resume(path, images, masks, labels, attrs={"seed": 2}, resume=False)
    assert part_path(path).read_bytes() == before and not path.exists()
    write_stream(path, images, masks, labels, attrs={"seed": 2}, batch_size=3, overwrite=True)
    assert open_stream(path).attrs["seed"] == 2 and not part_path(path).exists()


def test_clean_exit_before_the_end_warns_and_keeps_the_part(tmp_path):
    images, masks, labels = make_items(n=6)
    path = tmp_path / "s.h5"
    with pytest.warns(RuntimeWarning, match="3 of 6 items written"):
        with StreamWriter(path, n=6, image_shape=images.shape[1:], batch_size=3) as w:
            w.append(images[:3], masks[:3], labels[:3])
    assert part_path(path).exists() and not path.exists()


# --------------------------------------------------------------------------- merge


def ranged_parts(tmp_path, images, masks, labels, bounds, n_total):
    parts = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        attrs = {**ATTRS, "n_total": n_total, "item_start": a, "item_stop": b, "shard": f"{k}/{len(bounds) - 1}"}
        parts.append(write_stream(tmp_path / f"part{k}.h5", images[a:b], masks[a:b], labels[a:b], attrs=attrs,
                                  fields={"seeds": np.arange(a, b)}, batch_size=3))
    return parts


def whole_file(tmp_path, images, masks, labels):
    n = len(images)
    attrs = {**ATTRS, "n_total": n, "item_start": 0, "item_stop": n, "shard": "0/1"}
    return write_stream(tmp_path / "whole.h5", images, masks, labels, attrs=attrs,
                        fields={"seeds": np.arange(n)}, batch_size=3)


def test_copy_merge_of_parts_equals_the_whole_byte_for_byte(tmp_path):
    images, masks, labels = make_items(n=13)
    whole = whole_file(tmp_path, images, masks, labels)
    parts = ranged_parts(tmp_path, images, masks, labels, [0, 4, 5, 13], 13)
    merged = merge_streams(list(reversed(parts)), tmp_path / "merged.h5", copy=True)
    assert merged.read_bytes() == whole.read_bytes()


def test_virtual_merge_reads_like_the_whole_and_survives_a_move(tmp_path):
    images, masks, labels = make_items(n=13)
    whole = whole_file(tmp_path, images, masks, labels)
    parts = ranged_parts(tmp_path, images, masks, labels, [0, 6, 13], 13)
    merged = merge_streams(parts, tmp_path / "merged.h5")
    with open_stream(merged) as m, open_stream(whole) as w:
        assert m.images.is_virtual
        assert m.attrs == w.attrs
        for a, b in zip(m[:], w[:]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(m.field("seeds"), np.arange(13))
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    os.replace(tmp_path, moved)
    cwd = os.getcwd()
    try:
        os.chdir("/")
        with open_stream(moved / "merged.h5") as m:
            np.testing.assert_array_equal(m[12][0], images[12])
    finally:
        os.chdir(cwd)
    (moved / "part1.h5").unlink()
    with pytest.raises(FileNotFoundError, match="part part1.h5 is missing"):
        open_stream(moved / "merged.h5")


def test_virtual_merge_leaves_an_existing_part_file_alone(tmp_path):
    # OUT.part may be another job's unfinished write (or a user's file): a merge must not touch it.
    images, masks, labels = make_items(n=8)
    parts = ranged_parts(tmp_path, images, masks, labels, [0, 4, 8], 8)
    bystander = part_path(tmp_path / "merged.h5")
    bystander.write_bytes(b"not ours")
    merge_streams(parts, tmp_path / "merged.h5")
    assert bystander.read_bytes() == b"not ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged.h5", "merged.h5.part", "part0.h5", "part1.h5"]


def test_merge_refuses_gaps_overlaps_and_strangers(tmp_path):
    images, masks, labels = make_items(n=13)
    parts = ranged_parts(tmp_path, images, masks, labels, [0, 4, 9, 13], 13)
    with pytest.raises(ValueError, match="items \\[4, 9\\) are missing"):
        merge_streams([parts[0], parts[2]], tmp_path / "m.h5")
    over = write_stream(tmp_path / "over.h5", images[3:9], masks[3:9], labels[3:9],
                        attrs={**ATTRS, "n_total": 13, "item_start": 3, "item_stop": 9, "shard": "x"},
                        fields={"seeds": np.arange(3, 9)}, batch_size=3)
    with pytest.raises(ValueError, match="overlap"):
        merge_streams([parts[0], over], tmp_path / "m.h5")
    other = write_stream(tmp_path / "other.h5", images[4:9], masks[4:9], labels[4:9],
                         attrs={**ATTRS, "seed": 99, "n_total": 13, "item_start": 4, "item_stop": 9, "shard": "1/3"},
                         fields={"seeds": np.arange(4, 9)}, batch_size=3)
    with pytest.raises(ValueError, match="come from different streams \\(they differ in seed\\)"):
        merge_streams([parts[0], other, parts[2]], tmp_path / "m.h5")
    with pytest.raises(ValueError, match="more than once"):
        merge_streams([parts[0], parts[0]], tmp_path / "m.h5")
    (tmp_path / "m.h5").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        merge_streams(parts, tmp_path / "m.h5")
    assert (tmp_path / "m.h5").read_bytes() == b"keep"


def test_merge_of_unranged_streams_concatenates_in_order(tmp_path):
    images, masks, labels = make_items(n=8)
    a = write_stream(tmp_path / "a.h5", images[:5], masks[:5], labels[:5])
    b = write_stream(tmp_path / "b.h5", images[5:], masks[5:], labels[5:])
    for copy in (False, True):
        out = merge_streams([a, b], tmp_path / f"m{copy}.h5", copy=copy)
        np.testing.assert_array_equal(open_stream(out)[:][0], images)


# --------------------------------------------------------------------------- bad input

GOOD = make_items(n=4)


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        ({"images": GOOD[0].astype(np.float32)}, TypeError, "images: expected dtype uint8, got float32"),
        ({"images": GOOD[0][0]}, ValueError, "images: expected a 3 or 4-D array, got 2-D"),
        ({"masks": GOOD[1][:3]}, ValueError, "masks: expected shape \\(4, 16, 12\\) like images, got \\(3, 16, 12\\)"),
        ({"labels": [0, 1]}, ValueError, "labels: expected shape \\(4,\\) like images, got \\(2,\\)"),
        ({"labels": [0, 1, 2, 0]}, ValueError, "labels: expected 0/1 values"),
        ({"attrs": {"job": 1}}, ValueError, "attrs: attribute name 'job' is reserved"),
        ({"attrs": {"x": object()}}, TypeError, "attrs\\['x'\\]: expected a str, number, bool or JSON"),
        ({"attrs": [1]}, TypeError, "attrs: expected a mapping"),
        ({"compression": "lz4"}, ValueError, "compression: expected one of 'isal', 'zlib', 'zstd', 'none', got 'lz4'"),
        ({"batch_size": 0}, ValueError, "batch_size: expected an int >= 1, got 0"),
        ({"fields": {"colour": np.zeros(4)}}, ValueError, "fields: expected one of 'seeds'"),
        ({"fields": {"seeds": np.zeros(3, int)}}, ValueError, "seeds: expected shape \\(4,\\), got \\(3,\\)"),
        ({"fields": {"sources": np.full(4, 70000)}}, ValueError, "sources: values must fit uint16"),
        ({"fields": {"cnr": np.array([0.5, np.nan, 0, 1])}}, ValueError, "cnr: expected finite values, got nan"),
        ({"fields": {"seeds": np.zeros(4)}}, TypeError, "seeds: expected dtype kind in 'iu', got float64"),
        ({"fields": {"ssr": np.array(["a"] * 4)}}, TypeError, "ssr: expected dtype kind in 'iuf'"),
    ],
)
def test_write_stream_bad_input(tmp_path, kwargs, exc, message):
    args = dict(zip(("images", "masks", "labels"), GOOD))
    args.update(kwargs)
    path = tmp_path / "s.h5"
    with pytest.raises(exc, match=message):
        write_stream(path, args.pop("images"), args.pop("masks"), args.pop("labels"), **args)
    assert not path.exists()


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="path: the directory of .* does not exist"):
        write_stream(tmp_path / "nope" / "s.h5", *GOOD)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        write_stream(tmp_path, *GOOD)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_stream(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(ValueError, match="is not a readable HDF5 file"):
        open_stream(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match="is not a stream file: it has no dataset 'syn_stream/images'"):
        open_stream(tmp_path / "other.h5")


def test_append_checks_batches(tmp_path):
    images, masks, labels = make_items(n=5)
    w = StreamWriter(tmp_path / "s.h5", n=5, image_shape=images.shape[1:], batch_size=2, fields=("seeds",))
    with pytest.raises(ValueError, match="expected a batch of 2 items \\(batch_size 2, 5 to go\\), got 3"):
        w.append(images[:3], masks[:3], labels[:3], seeds=np.arange(3))
    with pytest.raises(ValueError, match="fields: expected \\['seeds'\\], got \\[\\]"):
        w.append(images[:2], masks[:2], labels[:2])
    with pytest.raises(ValueError, match="only 0 of 5 items written; cannot commit"):
        w.commit()
    w.close()
    with pytest.raises(ValueError, match="the writer is closed"):
        w.append(images[:2], masks[:2], labels[:2], seeds=np.arange(2))


# --------------------------------------------------------------------------- batch reads and checks


def _damage_chunk(path, item, dataset="syn_stream/images"):
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info_by_coord((item, *(0,) * (f[dataset].ndim - 1)))
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\x00\xff" * 4)


@pytest.mark.parametrize("compression", ["isal", "zlib", "zstd", "none"])
def test_batch_reads_equal_hdf5s_own_reads_in_any_order(tmp_path, compression):
    if compression == "zstd":  # before the write, which needs zstandard too
        pytest.importorskip("zstandard")
        pytest.importorskip("hdf5plugin")  # for h5py's own reads below
    images, masks, labels = make_items(n=12, shape=(9, 7, 3))
    path = write_stream(tmp_path / "s.h5", images, masks, labels, compression=compression, batch_size=5)
    idx = np.array([11, 0, 5, 5, -1, 3])
    with open_stream(path) as s, h5py.File(path, "r") as f:
        got = s.read_batch(idx)
        np.testing.assert_array_equal(got[0], f["syn_stream/images"][()][idx])
        np.testing.assert_array_equal(got[1], f["ground_truth"][()][idx])
        np.testing.assert_array_equal(got[2], labels[idx])
        items = s.__getitems__([2, 7])
        assert [lab for _, _, lab in items] == [int(labels[2]), int(labels[7])]
        np.testing.assert_array_equal(items[1][0], images[7])
        assert s.read_batch([])[0].shape == (0, 9, 7, 3)
        with pytest.raises(TypeError, match="indices: expected a 1-D integer array"):
            s.read_batch([[1]])


def test_a_damaged_chunk_names_the_file_and_the_item(tmp_path):
    images, masks, labels = make_items(n=6)
    path = write_stream(tmp_path / "s.h5", images, masks, labels)
    _damage_chunk(path, 4)
    with open_stream(path) as s:
        np.testing.assert_array_equal(s[[0, 5]][0], images[[0, 5]])  # the others still read
        with pytest.raises(ValueError, match=f"{path}: item 4: the image chunk is damaged"):
            s[[1, 4]]


def test_virtual_merge_batch_reads_go_to_the_parts(tmp_path):
    images, masks, labels = make_items(n=10)
    parts = []
    for k, (a, b) in enumerate(((0, 3), (3, 10))):
        attrs = {"item_start": a, "item_stop": b, "n_total": 10}
        parts.append(write_stream(tmp_path / f"p{k}.h5", images[a:b], masks[a:b], labels[a:b], attrs=attrs))
    merged = merge_streams(parts, tmp_path / "m.h5")
    idx = np.array([9, 0, 2, 3, 4])
    with open_stream(merged) as s:
        got = s.read_batch(idx)
        segments = s._chunk_segments("syn_stream/images")
        assert segments is not None and segments.starts.tolist() == [0, 3]  # read from the parts directly
    np.testing.assert_array_equal(got[0], images[idx])
    np.testing.assert_array_equal(got[1], masks[idx] != 0)
    with open_stream(merged) as s:
        _damage_chunk(parts[1], 1)  # while the merged file is open
        with pytest.raises(ValueError, match=f"{parts[1]}: item 1 \\(item 4 of the merged .*m.h5\\): the image chunk is damaged"):
            s[[4]]
    with pytest.raises(ValueError, match="part p1.h5 has changed since the merge"):  # and on the next open
        open_stream(merged)


def _forge(path, *, images=None, labels=None, masks=None):
    n = 4
    with h5py.File(path, "w") as f:
        f["syn_stream/images"] = np.zeros((n, 8, 8), np.uint8) if images is None else images
        f["syn_stream/labels"] = np.zeros(n, np.uint8) if labels is None else labels
        f["ground_truth"] = np.zeros((n, 8, 8), np.uint8) if masks is None else masks
    return path


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labels": np.array([0, 7, 1, 0], np.uint8)}, "labels must be 0 \\(good\\) or 1 \\(defective\\); item 1 has 7"),
        ({"labels": np.array([0, 1, 255, 255], np.uint8)}, "item 2 has 255 \\(2 bad labels in all\\)"),
        ({"labels": np.array([0, np.nan, 1, 0])}, "labels must hold integers 0/1, got dtype float64"),
        ({"images": np.zeros((4, 8, 8), np.float32)}, "syn_stream/images must be uint8, got float32"),
        ({"images": np.zeros((4, 8, 8, 4), np.uint8)}, "must be \\(N, H, W\\) or \\(N, H, W, 1 or 3\\), got shape \\(4, 8, 8, 4\\)"),
        ({"masks": np.zeros((4, 8, 8), np.int16)}, "ground_truth must be uint8 \\(0/255\\), got int16"),
    ],
)
def test_files_with_bad_labels_dtypes_or_channels_are_refused_on_open_and_merge(tmp_path, kwargs, message):
    bad = _forge(tmp_path / "bad.h5", **kwargs)
    with pytest.raises(ValueError, match=message):
        open_stream(bad)
    good = _forge(tmp_path / "good.h5")
    with pytest.raises(ValueError, match=message):
        merge_streams([good, bad], tmp_path / "m.h5", copy=True)
    assert not (tmp_path / "m.h5").exists()


# --------------------------------------------------------------------------- writers that cannot destroy each other


def test_a_second_writer_fails_at_once_and_leaves_the_first_alone(tmp_path):
    from ispad_core._shared.files import OutputBusyError

    images, masks, labels = make_items(n=6)
    other = make_items(n=6, seed=1)
    path = tmp_path / "s.h5"
    first = StreamWriter(path, n=6, image_shape=images.shape[1:], batch_size=3)
    first.append(images[:3], masks[:3], labels[:3])
    part_before = part_path(path).read_bytes()
    for resume_flag in (True, False):
        with pytest.raises(OutputBusyError, match="another process is writing .*s.h5"):
            StreamWriter(path, n=6, image_shape=images.shape[1:], batch_size=3, resume=resume_flag, overwrite=True)
    assert part_path(path).read_bytes() == part_before  # neither discarded nor renamed
    first.append(images[3:], masks[3:], labels[3:])
    first.commit()
    with open_stream(path) as s:
        np.testing.assert_array_equal(s[:][0], images)
    assert not np.array_equal(other[0], images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]  # the lock is gone with the writer
    write_stream(path, *other, overwrite=True)  # and the next writer may go


def test_commit_renames_the_file_it_wrote_not_what_is_at_the_path(tmp_path):
    images, masks, labels = make_items(n=4)
    path = tmp_path / "s.h5"
    w = StreamWriter(path, n=4, image_shape=images.shape[1:], batch_size=4)
    w.append(images, masks, labels)
    impostor = tmp_path / "impostor"
    impostor.write_bytes(b"someone else's data")
    os.replace(impostor, part_path(path))
    with pytest.raises(RuntimeError, match="no longer the file this writer wrote"):
        w.commit()
    assert not path.exists() and part_path(path).read_bytes() == b"someone else's data"
    w.close()


def test_links_and_special_files_at_the_output_are_refused_even_with_overwrite(tmp_path):
    target = tmp_path / "victim.txt"
    target.write_bytes(b"victim")
    link = tmp_path / "s.h5"
    link.symlink_to(target)
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="is a symbolic link"):
            write_stream(link, *GOOD, overwrite=overwrite)
    fifo = tmp_path / "fifo.h5"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        write_stream(fifo, *GOOD, overwrite=True)
    assert fifo.is_fifo()
    out = tmp_path / "out.h5"
    part_path(out).symlink_to(target)  # a link planted where the writer keeps its unfinished file
    with pytest.raises(ValueError, match="out.h5.part is a symbolic link"):
        write_stream(out, *GOOD)
    assert target.read_bytes() == b"victim" and part_path(out).is_symlink() and not out.exists()
    parts = ranged_parts(tmp_path, *make_items(n=4), [0, 2, 4], 4)
    for copy in (False, True):
        with pytest.raises(ValueError, match="is a symbolic link"):
            merge_streams(parts, link, copy=copy, overwrite=True)
    assert target.read_bytes() == b"victim"


def test_merge_copy_checks_every_chunk(tmp_path):
    images, masks, labels = make_items(n=8)
    parts = ranged_parts(tmp_path, images, masks, labels, [0, 4, 8], 8)
    _damage_chunk(parts[1], 2)
    with pytest.raises(ValueError, match="part1.h5: item 2: the image chunk is damaged"):
        merge_streams(parts, tmp_path / "m.h5", copy=True)
    assert not (tmp_path / "m.h5").exists()


def test_virtual_merge_refuses_a_part_regenerated_under_the_old_attributes(tmp_path):
    images, masks, labels = make_items(n=8)
    parts = ranged_parts(tmp_path, images, masks, labels, [0, 4, 8], 8)
    merged = merge_streams(parts, tmp_path / "m.h5")
    assert len(open_stream(merged)) == 8
    other = make_items(n=8, seed=5)
    attrs = {**ATTRS, "n_total": 8, "item_start": 4, "item_stop": 8, "shard": "1/2"}  # part1.h5 again, new pixels
    write_stream(parts[1], other[0][4:], other[1][4:], labels[4:], attrs=attrs, fields={"seeds": np.arange(4, 8)},
                 batch_size=3, overwrite=True)
    with pytest.raises(ValueError, match="part part1.h5 has changed since the merge"):
        open_stream(merged)


def test_merge_missing_the_first_or_last_part_needs_partial(tmp_path):
    images, masks, labels = make_items(n=12)
    parts = ranged_parts(tmp_path, images, masks, labels, [0, 4, 8, 12], 12)
    with pytest.raises(ValueError, match="items \\[4, 12\\) of a 12-item stream; items \\[0, 4\\) are missing"):
        merge_streams(parts[1:], tmp_path / "m.h5")
    with pytest.raises(ValueError, match="items \\[8, 12\\) are missing .*partial=True"):
        merge_streams(parts[:2], tmp_path / "m.h5", copy=True)
    assert not (tmp_path / "m.h5").exists()
    out = merge_streams(parts[1:], tmp_path / "m.h5", partial=True)
    with open_stream(out) as s:
        assert (s.attrs["item_start"], s.attrs["item_stop"], s.attrs["shard"]) == (4, 12, "items 4-12")
        np.testing.assert_array_equal(s[:][0], images[4:])


def test_resume_does_not_take_over_bad_labels(tmp_path):
    images, masks, labels = make_items(n=9)
    path = tmp_path / "s.h5"
    write_interrupted(path, images, masks, labels, fail_after=2)
    with h5py.File(part_path(path), "r+") as f:
        f["syn_stream/labels"][4] = 7
    with pytest.warns(RuntimeWarning, match="items from 3 on are damaged"):
        assert resume(path, images, masks, labels) == 3
    whole = write_stream(tmp_path / "whole.h5", images, masks, labels, batch_size=3)
    assert path.read_bytes() == whole.read_bytes()


# --------------------------------------------------------------------------- resume in about the part's space


def _blocks(path):
    return os.stat(path).st_blocks if path.exists() else None


def test_resume_gives_the_old_blocks_back_as_it_copies(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 128, 128), dtype=np.uint8)  # incompressible: 16 kB a chunk
    masks = np.zeros((12, 128, 128), np.uint8)
    labels = np.zeros(12, np.uint8)
    path = tmp_path / "s.h5"
    write_interrupted(path, images, masks, labels, fail_after=3)
    old = tmp_path / "s.h5.part.old"
    seen = []
    real = StreamWriter._write_raw

    def spy(self, *args):
        seen.append(_blocks(old))
        return real(self, *args)

    monkeypatch.setattr(StreamWriter, "_write_raw", spy)
    assert resume(path, images, masks, labels) == 9
    during = [b for b in seen if b is not None]
    if during[-1] >= during[0]:
        pytest.skip("this file system does not punch holes (the copy still works)")
    # st_blocks counts 512 bytes: two batches of 48 kB given back before the third is copied
    assert during == sorted(during, reverse=True) and during[0] - during[-1] >= 2 * 40 * 2
    whole = write_stream(tmp_path / "whole.h5", images, masks, labels, batch_size=3)
    assert path.read_bytes() == whole.read_bytes()


def test_a_resume_interrupted_while_copying_loses_nothing(tmp_path, monkeypatch):
    images, masks, labels = make_items(n=14)
    path = tmp_path / "s.h5"
    write_interrupted(path, images, masks, labels, fail_after=4)  # 12 items checkpointed
    real = StreamWriter._write_raw
    calls = []

    def crash_on_the_third_batch(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise Boom
        return real(self, *args)

    monkeypatch.setattr(StreamWriter, "_write_raw", crash_on_the_third_batch)
    with pytest.raises(Boom):
        resume(path, images, masks, labels)
    monkeypatch.setattr(StreamWriter, "_write_raw", real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5.part", "s.h5.part.old"]
    assert resume(path, images, masks, labels) == 12  # 6 from the new part, 6 beyond it from the old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
    whole = write_stream(tmp_path / "whole.h5", images, masks, labels, batch_size=3)
    assert path.read_bytes() == whole.read_bytes()


def test_a_virtual_merge_has_the_permissions_of_every_other_output(tmp_path):
    images, masks, labels = make_items(n=6)
    parts = ranged_parts(tmp_path, images, masks, labels, [0, 3, 6], 6)
    merged = merge_streams(parts, tmp_path / "m.h5")
    assert (os.stat(merged).st_mode & 0o777) == (os.stat(parts[0]).st_mode & 0o777) != 0o600


def test_visibility_fields_round_trip_as_float64(tmp_path):
    figures = {"accepted": np.array([0, 1, 1, 0]), "ssr": np.array([0.0, 1234.5, 2.0**60, 0.0]),
               "cnr": np.array([0, 0.35, 7.25, 0]), "contrast": np.array([0, 1.0, 3.5, 0], np.float32)}
    path = write_stream(tmp_path / "s.h5", *GOOD, fields=figures)
    with open_stream(path) as s:
        for name, values in figures.items():
            stored = s.field(name)
            assert stored.dtype == (np.uint8 if name == "accepted" else np.float64)
            np.testing.assert_array_equal(stored, values)


def test_a_resume_shows_its_progress_when_asked(tmp_path, capsys):
    images, masks, labels = make_items(n=11)
    path = tmp_path / "s.h5"
    write_interrupted(path, images, masks, labels, fail_after=3)
    capsys.readouterr()
    assert resume(path, images, masks, labels, verbose=True) == 9
    err = capsys.readouterr().err
    assert "resuming s.h5: checking and copying" in err and "9/9" in err
    path.unlink()
    write_interrupted(path, images, masks, labels, fail_after=3)
    capsys.readouterr()
    assert resume(path, images, masks, labels) == 9
    assert "resuming" not in capsys.readouterr().err  # quiet by default


def test_show_progress_is_the_old_name_of_verbose(tmp_path, capsys):
    images, masks, labels = make_items(n=11)
    path = tmp_path / "s.h5"
    write_interrupted(path, images, masks, labels, fail_after=3)
    capsys.readouterr()
    with pytest.warns(DeprecationWarning, match="StreamWriter: show_progress= is now called verbose="):
        assert resume(path, images, masks, labels, show_progress=True) == 9
    assert "resuming s.h5" in capsys.readouterr().err
