"""Stream files whose objects are not what the format says: links, groups, external storage, strange virtual datasets.

Each file here is built with h5py as a hostile or careless writer would; opening it (and so
``ispad info``, ``ispad merge``, ``ispad train``) must refuse it with one line that names the file
and the object, and never read bytes from anywhere but the stream files themselves.
"""

import os

import h5py
import numpy as np
import pytest

from ispad_core.cli import main
from ispad_core.io import merge_streams, open_stream, write_stream

N, H, W = 4, 8, 8
IMAGES, LABELS, MASKS = "syn_stream/images", "syn_stream/labels", "ground_truth"


def _secret(tmp_path, nbytes=N * H * W):
    """An arbitrary local file whose bytes must never become patches."""
    path = tmp_path / "secret.bin"
    (np.arange(nbytes, dtype=np.uint8) ^ 0x5A).tofile(path)
    return path


def _plain(f, *, skip=()):
    """The datasets of a small valid stream, except those in ``skip``."""
    if IMAGES not in skip:
        f[IMAGES] = np.zeros((N, H, W), np.uint8)
    if LABELS not in skip:
        f[LABELS] = np.zeros(N, np.uint8)
    if MASKS not in skip:
        f[MASKS] = np.zeros((N, H, W), np.uint8)


def _stream(tmp_path, name="good.h5"):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, H, W), dtype=np.uint8)
    return write_stream(tmp_path / name, images, np.zeros((N, H, W), np.uint8), [0, 1, 0, 1],
                        fields={"seeds": np.arange(N)})


def _external(tmp_path, name):
    secret = _secret(tmp_path)
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        _plain(f, skip=(name,))
        shape, dtype = {IMAGES: ((N, H, W), np.uint8), LABELS: ((N,), np.uint8), MASKS: ((N, H, W), np.uint8),
                        "syn_stream/seeds": ((N,), np.uint32)}[name]
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        f.create_dataset(name, shape, dtype, external=[(secret.name, 0, nbytes)])
    return path, rf"{name} stores its data outside the file \(HDF5 external storage in secret\.bin\)"


def _group(tmp_path, name):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        _plain(f, skip=(name,))
        f.create_group(name)
    return path, rf"{name} is a group, not a dataset"


def _named_datatype(tmp_path, name):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        _plain(f, skip=(name,))
        f[name] = np.dtype("u1")
    return path, rf"{name} is a Datatype, not a dataset"


def _external_link(tmp_path, name):
    target = tmp_path / "target.h5"
    with h5py.File(target, "w") as f:
        f["x"] = np.full((N, H, W), 7, np.uint8)
        f["y"] = np.zeros(N, np.uint8)
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        _plain(f, skip=(name,))
        f[name] = h5py.ExternalLink(target.name, "/y" if name == LABELS else "/x")
    return path, rf"{name} is an external link \(to /[xy] in target\.h5\), not a dataset"


def _soft_link(tmp_path, name):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        _plain(f, skip=(name,))
        f["elsewhere"] = np.ones(N, np.uint8) if name == LABELS else np.ones((N, H, W), np.uint8)
        f[name] = h5py.SoftLink("/elsewhere")
    return path, rf"{name} is a soft link \(to /elsewhere\), not a dataset"


def _linked_group(tmp_path, kind):
    """``syn_stream`` itself a link to a valid stream's group in another file (or elsewhere in this one)."""
    good = _stream(tmp_path)
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f[MASKS] = np.zeros((N, H, W), np.uint8)
        if kind == "external":
            f["syn_stream"] = h5py.ExternalLink(good.name, "/syn_stream")
            return path, r"syn_stream is an external link \(to /syn_stream in good\.h5\), not a group"
        _plain(f["elsewhere"] if "elsewhere" in f else f.create_group("elsewhere"), skip=(MASKS,))
        f["syn_stream"] = h5py.SoftLink("/elsewhere/syn_stream")
        return path, r"syn_stream is a soft link \(to /elsewhere/syn_stream\), not a group"


def _group_is_a_dataset(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["syn_stream"] = np.zeros(3, np.uint8)
        f[MASKS] = np.zeros((N, H, W), np.uint8)
    return path, r"syn_stream is a Dataset, not a group"


CASES = {
    **{f"external-storage-{n}": (lambda t, n=n: _external(t, n)) for n in (IMAGES, LABELS, MASKS, "syn_stream/seeds")},
    **{f"group-{n}": (lambda t, n=n: _group(t, n)) for n in (IMAGES, MASKS)},
    "named-datatype-images": lambda t: _named_datatype(t, IMAGES),
    **{f"external-link-{n}": (lambda t, n=n: _external_link(t, n)) for n in (IMAGES, LABELS, MASKS)},
    **{f"soft-link-{n}": (lambda t, n=n: _soft_link(t, n)) for n in (IMAGES, MASKS)},
    "syn_stream-external-link": lambda t: _linked_group(t, "external"),
    "syn_stream-soft-link": lambda t: _linked_group(t, "soft"),
    "syn_stream-a-dataset": _group_is_a_dataset,
}


@pytest.mark.parametrize("case", list(CASES))
def test_objects_that_are_not_datasets_of_the_file_are_refused_by_name(tmp_path, case):
    path, what = CASES[case](tmp_path)
    with pytest.raises(ValueError, match=rf"^path: {tmp_path}/bad\.h5: {what}; a stream file holds its datasets"):
        open_stream(path)


@pytest.mark.parametrize("case", ["external-storage-" + IMAGES, "group-" + IMAGES, "external-link-" + IMAGES,
                                  "soft-link-" + MASKS, "syn_stream-external-link"])
@pytest.mark.parametrize("copy", [False, True])
def test_merge_refuses_them_and_writes_nothing(tmp_path, case, copy):
    path, what = CASES[case](tmp_path)
    good = _stream(tmp_path, "other.h5")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match=rf"bad\.h5: {what}"):
        merge_streams([good, path], tmp_path / "merged.h5", copy=copy)
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("command", ["info", "merge"])
def test_the_command_line_says_one_line(tmp_path, capsys, command):
    path, what = CASES["external-storage-" + IMAGES](tmp_path)
    argv = ["info", path] if command == "info" else ["merge", _stream(tmp_path, "other.h5"), path,
                                                     "--out", tmp_path / "m.h5"]
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}: syn_stream/images stores its data outside the file" in err


def test_train_refuses_them_before_any_work(tmp_path):
    torch = pytest.importorskip("torch")  # noqa: F841
    from ispad_core.nn.detector import _open_stream

    path, what = CASES["soft-link-" + IMAGES](tmp_path)
    with pytest.raises(ValueError, match=rf"bad\.h5: {what}"):
        _open_stream(path)


# --------------------------------------------------------------------------- per-item fields


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("seeds", np.arange(N, dtype=np.float64), r"syn_stream/seeds must be uint32, got float64"),
        ("seeds", np.arange(N, dtype=np.int64), r"syn_stream/seeds must be uint32, got int64"),
        ("origins", np.zeros(N, np.int32), r"syn_stream/origins must have shape \(4, 2\) \(one per item\), got \(4,\)"),
        ("ssr", np.zeros(N + 1), r"syn_stream/ssr must have shape \(4,\) \(one per item\), got \(5,\)"),
    ],
)
def test_fields_of_another_dtype_or_shape_are_refused(tmp_path, name, data, message):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        _plain(f)
        f[f"syn_stream/{name}"] = data
    with pytest.raises(ValueError, match=message):
        open_stream(path)


# --------------------------------------------------------------------------- virtual datasets


def _virtual(path, sources, *, name=IMAGES, shape=(N, H, W)):
    """A stream file whose ``name`` is virtual, mapping ``sources`` [(file, dataset, shape)] one after another."""
    with h5py.File(path, "w") as f:
        _plain(f, skip=(name,))
        f["decoy"] = np.full(shape, 9, np.uint8)
        layout = h5py.VirtualLayout(shape=shape, dtype=np.uint8)
        offset = 0
        for file_name, dset_name, src_shape in sources:
            layout[offset: offset + src_shape[0]] = h5py.VirtualSource(file_name, dset_name, shape=src_shape)
            offset += src_shape[0]
        f.create_virtual_dataset(name, layout, fillvalue=0)
    return path


def test_virtual_dataset_of_a_part_with_external_storage_is_refused(tmp_path):
    part, _ = _external(tmp_path, IMAGES)
    path = _virtual(tmp_path / "merged.h5", [(part.name, IMAGES, (N, H, W))])
    with pytest.raises(ValueError, match=r"merged\.h5: syn_stream/images maps the part bad\.h5, which is refused: "
                                         r".*bad\.h5: syn_stream/images stores its data outside the file"):
        open_stream(path)


def test_virtual_dataset_of_a_part_with_a_link_is_refused(tmp_path):
    part, _ = _external_link(tmp_path, IMAGES)
    path = _virtual(tmp_path / "merged.h5", [(part.name, IMAGES, (N, H, W))])
    with pytest.raises(ValueError, match=r"merged\.h5: syn_stream/images maps the part bad\.h5, which is refused: "
                                         r".*syn_stream/images is an external link"):
        open_stream(path)


@pytest.mark.parametrize(
    "sources, message",
    [
        ([(".", "decoy", (N, H, W))], r"syn_stream/images is virtual and maps decoy of the same file"),
        ([("good.h5", "ground_truth", (N, H, W))],
         r"syn_stream/images is virtual and maps ground_truth of good\.h5 \(a merge maps syn_stream/images\)"),
    ],
)
def test_virtual_datasets_that_no_merge_writes_are_refused(tmp_path, sources, message):
    _stream(tmp_path)
    path = _virtual(tmp_path / "merged.h5", sources)
    with pytest.raises(ValueError, match=rf"merged\.h5: {message}"):
        open_stream(path)


def test_virtual_dataset_of_a_selection_is_refused(tmp_path):
    _stream(tmp_path)
    path = tmp_path / "merged.h5"
    with h5py.File(path, "w") as f:
        _plain(f, skip=(IMAGES,))
        layout = h5py.VirtualLayout(shape=(N, H, W), dtype=np.uint8)
        layout[: N // 2] = h5py.VirtualSource("good.h5", IMAGES, shape=(N, H, W))[N // 2:]
        f.create_virtual_dataset(IMAGES, layout)
    with pytest.raises(ValueError, match=r"merged\.h5: syn_stream/images is virtual and maps a selection of good\.h5"):
        open_stream(path)


def test_virtual_datasets_that_map_each_other_are_refused(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    _virtual(a, [("b.h5", IMAGES, (N, H, W))])
    _virtual(b, [("a.h5", IMAGES, (N, H, W))])
    with pytest.raises(ValueError, match=r"a\.h5: syn_stream/images maps the part b\.h5, which is refused: .*b\.h5: "
                                         r"syn_stream/images is virtual and maps a\.h5, which maps it back \(a cycle\)"):
        open_stream(a)


def test_merges_of_merges_still_read(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2 * N, H, W), dtype=np.uint8)
    masks = np.zeros((2 * N, H, W), np.uint8)
    labels = np.arange(2 * N) % 2
    p0 = write_stream(tmp_path / "p0.h5", images[:N], masks[:N], labels[:N])
    p1 = write_stream(tmp_path / "p1.h5", images[N:], masks[N:], labels[N:])
    inner = merge_streams([p0, p1], tmp_path / "inner.h5")
    outer = merge_streams([inner], tmp_path / "outer.h5")
    with open_stream(outer) as s:
        assert s.images.is_virtual
        got, _, got_labels = s[:]
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_a_valid_stream_and_its_merges_still_open(tmp_path):
    good = _stream(tmp_path)
    merged = merge_streams([good], tmp_path / "merged.h5")
    for path in (good, merged):
        with open_stream(path) as s:
            assert len(s) == N and s.field("seeds").tolist() == list(range(N))


def test_a_recorded_part_that_is_not_a_stream_is_refused_by_name(tmp_path):
    good = _stream(tmp_path)
    merged = merge_streams([good], tmp_path / "merged.h5")
    with h5py.File(merged, "a") as f:  # the fingerprints name another file, whose images are a group
        f.attrs["part_fingerprints"] = '[["odd.h5", "0"]]'
    with h5py.File(tmp_path / "odd.h5", "w") as f:
        _plain(f, skip=(IMAGES,))
        f.create_group(IMAGES)
    with pytest.raises(ValueError, match=r"odd\.h5: syn_stream/images is a group, not a dataset"):
        open_stream(merged)
    with h5py.File(tmp_path / "odd.h5", "w") as f:
        f[LABELS] = np.zeros(N, np.uint8)
    with pytest.raises(ValueError, match=r"merged\.h5 is a merged stream whose part odd\.h5 has changed since the merge"):
        open_stream(merged)
