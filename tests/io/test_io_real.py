"""Real-defect folders (groups, order, sizes) and labelled validation sets (three layouts)."""

import numpy as np
import pytest

from ispad_core.io import write_png, write_stream
from ispad_core.io._real import LabelledSet, RealDefects, read_labelled_set, read_real_defects


def _png(path, value=100, shape=(48, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full(shape, value, np.uint8)
    write_png(path, image)
    return image


def _tree(root, files, shape=(48, 48)):
    for k, name in enumerate(files):
        _png(root / name, 10 * k, shape)
    return root


def test_groups_come_from_sub_folders_in_name_order(tmp_path):
    import imageio.v3 as iio

    root = _tree(tmp_path / "real", ["points/b.png", "points/a.png", "area/z.png", "scratch/1.png"])
    # Pillow writes the TIFF (and the library reads it with Pillow): no tifffile needed, which the
    # test extra does not install (imageio would fall back to its deprecated vendored copy and warn)
    iio.imwrite(root / "area" / "y.tif", np.full((48, 50), 7, np.uint8), plugin="pillow")
    iio.imwrite(root / "area" / "x.bmp", np.full((50, 48), 9, np.uint8))
    (root / "area" / "notes.txt").write_text("ignored")
    (root / ".hidden").mkdir()
    real = read_real_defects(root, size=32)
    assert isinstance(real, RealDefects) and len(real) == 6
    assert real.files == ("area/x.bmp", "area/y.tif", "area/z.png", "points/a.png", "points/b.png", "scratch/1.png")
    assert real.groups == ("area",) * 3 + ("points",) * 2 + ("scratch",)
    assert real.group_names == ("area", "points", "scratch") and real.counts() == {"area": 3, "points": 2, "scratch": 1}
    assert real[0].shape == (50, 48) and int(real[0][0, 0]) == 9 and int(real[3][0, 0]) == 10  # points/a.png
    assert real[1].shape == (48, 50) and int(real[1][0, 0]) == 7  # the TIFF
    again = read_real_defects(root, size=32)
    assert again.files == real.files and all(np.array_equal(a, b) for a, b in zip(again.images, real.images))


def test_flat_folder_is_one_group_named_after_it(tmp_path):
    root = _tree(tmp_path / "my_defects", ["b.png", "a.png"])
    real = read_real_defects(root)
    assert real.groups == ("my_defects", "my_defects") and real.files == ("a.png", "b.png")


def test_select_keeps_order_and_metadata(tmp_path):
    real = read_real_defects(_tree(tmp_path / "r", ["p/0.png", "p/1.png", "a/0.png"]))
    sub = real.select([2, 0])
    assert sub.files == ("p/1.png", "a/0.png") and sub.groups == ("p", "a") and sub.root == real.root
    with pytest.raises(IndexError, match=r"indices: expected values in \[0, 3\)"):
        real.select([3])


@pytest.mark.parametrize(
    "files, match",
    [
        (["a.png", "points/b.png"], r"holds both images \(a.png\) and group sub-folders \(points/\); move the loose"),
        (["good/a.png", "area/b.png"], r"good is a folder of fault-free images \('good'\)"),
        (["area/deep/a.png"], r"area holds sub-folders \(deep/\); a group folder holds images only"),
        (["area/a.txt"], r"no image files .* in .*area; it holds a.txt"),
    ],
)
def test_bad_real_folders_name_the_folder(tmp_path, files, match):
    root = tmp_path / "real"
    for name in files:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix == ".png":
            _png(p)
        else:
            p.write_text("x")
    with pytest.raises(ValueError, match=match):
        read_real_defects(root, size=32)


def test_real_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--real: .*nowhere does not exist"):
        read_real_defects(tmp_path / "nowhere", name="--real")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="is not a folder"):
        read_real_defects(tmp_path / "file.png")
    small = _tree(tmp_path / "small", ["area/a.png"], shape=(40, 30))
    with pytest.raises(ValueError, match=r"area/a.png is 40 x 30, smaller than the patch size 32 x 32"):
        read_real_defects(small, size=32)
    mixed = _tree(tmp_path / "mixed", ["a/0.png"])
    write_png(mixed / "a" / "1.png", np.zeros((48, 48, 3), np.uint8))
    with pytest.raises(ValueError, match="mixes grey images .* and RGB images"):
        read_real_defects(mixed)


# --------------------------------------------------------------------------- labelled sets


def test_good_and_defect_folders_crop_larger_images(tmp_path):
    root = tmp_path / "val"
    image = np.arange(40 * 40, dtype=np.uint32).reshape(40, 40).astype(np.uint8)
    for name in ("good/1.png", "good/0.png", "scratch/0.png", "dots/0.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_png(root / name, image)
    val = read_labelled_set(root, size=32)
    assert isinstance(val, LabelledSet) and val.kind == "folders" and len(val) == 4
    assert val.names == ("good/0.png", "good/1.png", "dots/0.png", "scratch/0.png")
    assert val.labels.tolist() == [0, 0, 1, 1] and val.groups == ("good", "good", "dots", "scratch")
    assert val.images.shape == (4, 32, 32) and np.array_equal(val.images[0], image[4:36, 4:36])
    item, label = val[2]
    assert label == 1 and item.shape == (32, 32)
    assert val.counts() == {"good": 2, "dots": 1, "scratch": 1}
    assert val.__getitems__([3, 0])[0][1] == 1


def test_mvtec_layout_reads_test_only(tmp_path):
    root = _tree(tmp_path / "mv", ["test/good/0.png", "test/area/0.png", "test/points/0.png"], shape=(32, 32))
    val = read_labelled_set(root)
    assert val.kind == "mvtec" and val.names == ("good/0.png", "area/0.png", "points/0.png")
    assert val.labels.tolist() == [0, 1, 1] and val.image_shape == (32, 32)


def test_stream_file_is_read_lazily_in_batches(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1, 1, 0])
    path = write_stream(tmp_path / "v.h5", images, np.zeros((6, 16, 16), np.uint8), labels)
    val = read_labelled_set(path, size=16)
    assert val.kind == "stream" and len(val) == 6 and val.image_shape == (16, 16)
    assert val.groups[:2] == ("good", "synthetic")
    image, label = val[3]
    assert label == 1 and np.array_equal(image, images[3])
    batch = val.__getitems__([4, 1, 4])
    assert [y for _, y in batch] == [1, 1, 1] and np.array_equal(batch[0][0], images[4])
    with pytest.raises(ValueError, match=r"holds 16 x 16 patches, expected the patch size 32 x 32"):
        read_labelled_set(path, size=32)


@pytest.mark.parametrize(
    "files, match",
    [
        (["a/0.png"], r"neither an MVTec-layout folder .* it holds a/"),
        (["good/0.png"], r"has good/ but no folder of defective images"),
        (["test/area/0.png"], r"test has no good/ folder of fault-free images"),
        (["good/0.png", "bad/0.png", "bad/1.png"], None),  # sizes differ: see below
    ],
)
def test_bad_labelled_sets_name_the_folder(tmp_path, files, match):
    root = tmp_path / "val"
    for k, name in enumerate(files):
        _png(root / name, shape=(32, 32) if k < 2 else (40, 40))
    if match is None:
        with pytest.raises(ValueError, match=r"images differ in size .* give the patch size"):
            read_labelled_set(root)
        assert len(read_labelled_set(root, size=32)) == 3
        with pytest.raises(ValueError, match=r"good/0.png is 32 x 32, smaller than the patch size 36 x 36"):
            read_labelled_set(root, size=36)
        return
    with pytest.raises(ValueError, match=match):
        read_labelled_set(root)


def test_labelled_set_missing_and_non_stream_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="--val: .*nope does not exist"):
        read_labelled_set(tmp_path / "nope", name="--val")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match=r"x.txt is a file but not an HDF5 stream \(.h5\)"):
        read_labelled_set(tmp_path / "x.txt")
