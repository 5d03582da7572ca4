"""MVTec layout and single-image I/O: round trips and clear errors."""

import shutil

import imageio.v3 as iio
import numpy as np
import pytest

from ispad_core.io import list_images, read_image, read_images, read_mvtec, write_mvtec, write_png


def toy(rgb=False, n_train=2):
    rng = np.random.default_rng(3)
    shape = (10, 12, 3) if rgb else (10, 12)
    train = rng.integers(0, 256, (n_train, *shape), dtype=np.uint8)
    test = rng.integers(0, 256, (5, *shape), dtype=np.uint8)
    groups = ["good", "area", "good", "points", "area"]
    masks = np.zeros((5, 10, 12), np.uint8)
    masks[1, 2:5, 2:6] = 1
    masks[3, 7, 7] = 1
    masks[4, 0:2, :] = 1
    return train, test, groups, masks


@pytest.mark.parametrize("rgb", [False, True])
def test_round_trip(tmp_path, rgb):
    train, test, groups, masks = toy(rgb)
    root = write_mvtec(tmp_path / "d", train, test, test_groups=groups, test_masks=masks)
    assert sorted(p.name for p in (root / "ground_truth").iterdir()) == ["area", "points"]
    assert (root / "ground_truth" / "area" / "001_mask.png").is_file()
    data = read_mvtec(root)
    np.testing.assert_array_equal(data.train_images, train)
    assert data.train_names == ("000.png", "001.png")
    # good first, then groups by name; order within a group by file name
    order = [0, 2, 1, 4, 3]
    np.testing.assert_array_equal(data.test_images, test[order])
    assert data.test_names == ("good/000.png", "good/001.png", "area/000.png", "area/001.png", "points/000.png")
    assert data.test_groups == ("good", "good", "area", "area", "points")
    assert data.test_labels.tolist() == [0, 0, 1, 1, 1]
    assert data.test_masks.dtype == bool  # 0/255 only on disk
    np.testing.assert_array_equal(data.test_masks, masks[order].astype(bool))
    assert iio.imread(root / "ground_truth" / "area" / "000_mask.png").max() == 255
    only_test = read_mvtec(root, split="test")
    assert only_test.train_images.shape[0] == 0 and len(only_test.test_names) == 5
    assert "MVTecDataset(" in repr(data)


def test_top_level_extras_are_ignored(tmp_path):
    train, test, groups, masks = toy()
    root = write_mvtec(tmp_path / "d", train, test, test_groups=groups, test_masks=masks)
    (root / "license.txt").write_text("MIT")
    (root / ".DS_Store").write_bytes(b"x")
    (root / "test" / "good" / ".hidden").write_bytes(b"x")
    assert len(read_mvtec(root).test_names) == 5


def _dataset(tmp_path):
    train, test, groups, masks = toy()
    return write_mvtec(tmp_path / "d", train, test, test_groups=groups, test_masks=masks)


def _mutations():
    def stray_txt(root):
        (root / "test" / "area" / "notes.txt").write_text("x")

    def missing_mask(root):
        (root / "ground_truth" / "area" / "000_mask.png").unlink()

    def orphan_mask(root):
        shutil.copy(root / "ground_truth" / "area" / "000_mask.png", root / "ground_truth" / "area" / "009_mask.png")

    def mask_size(root):
        iio.imwrite(root / "ground_truth" / "points" / "000_mask.png", np.zeros((9, 12), np.uint8))

    def image_size(root):
        iio.imwrite(root / "test" / "good" / "001.png", np.zeros((10, 13), np.uint8))

    def unreadable(root):
        (root / "test" / "good" / "001.png").write_bytes(b"not a png")

    def no_train(root):
        shutil.rmtree(root / "train")

    def gt_for_good(root):
        (root / "ground_truth" / "good").mkdir()

    def badly_named_mask(root):
        (root / "ground_truth" / "area" / "000_mask.png").rename(root / "ground_truth" / "area" / "000.png")

    def file_in_test(root):
        (root / "test" / "x.png").write_bytes(b"")

    def train_group(root):
        (root / "train" / "area").mkdir()

    return [
        (stray_txt, ValueError, "test/area should hold only .png images, found notes.txt"),
        (missing_mask, FileNotFoundError, "test/area/000.png has no mask .*ground_truth/area/000_mask.png"),
        (orphan_mask, ValueError, "masks without an image in .*test/area: 009_mask.png"),
        (mask_size, ValueError, "mask .*points/000_mask.png is \\(9, 12\\) but its image .*points/000.png is \\(10, 12\\)"),
        (image_size, ValueError, "images differ in size: .* is \\(10, 12\\), .*good/001.png is \\(10, 13\\)"),
        (unreadable, ValueError, "cannot read .*good/001.png as an image"),
        (no_train, FileNotFoundError, "train/good is missing"),
        (gt_for_good, ValueError, "ground_truth holds good, which match no defect group"),
        (badly_named_mask, ValueError, "000.png is not named <image>_mask.png"),
        (file_in_test, ValueError, "test should hold only group folders, found files x.png"),
        (train_group, ValueError, "train should hold only the folder 'good', found area"),
    ]


@pytest.mark.parametrize("mutate, exc, message", _mutations(), ids=lambda x: getattr(x, "__name__", ""))
def test_read_mvtec_errors(tmp_path, mutate, exc, message):
    root = _dataset(tmp_path)
    mutate(root)
    with pytest.raises(exc, match=message):
        read_mvtec(root)


def test_read_mvtec_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="root: .*nope is not a directory"):
        read_mvtec(tmp_path / "nope")
    with pytest.raises(ValueError, match="split: expected one of 'all', 'train', 'test', got 'val'"):
        read_mvtec(tmp_path, split="val")


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        ({"test_groups": ["good"] * 4}, ValueError, "test_groups: expected 5 group names like test_images, got 4"),
        ({"test_groups": "good"}, TypeError, "test_groups: expected a sequence of group names, got a str"),
        ({"test_groups": ["good", "../x", "good", "a", "a"]}, ValueError, "test_groups: expected folder names"),
        ({"test_masks": None}, ValueError, "test_masks: required when test_groups has defect groups"),
        ({"test_masks": np.zeros((5, 10, 11))}, ValueError, "test_masks: expected shape \\(5, 10, 12\\) like test_images"),
        ({"test_masks": np.ones((5, 10, 12))}, ValueError, "test image 0 is in group 'good' but its mask is not empty"),
        ({"test_names": ["a.png"] * 5}, ValueError, "test_names: names must be unique within each group"),
        ({"test_names": ["a.jpg", "b.png", "c.png", "d.png", "e.png"]}, ValueError, "test_names: expected plain file names ending in .png"),
        ({"train_names": ["x.png", "x.png"]}, ValueError, "train_names: names must be unique"),
        ({"train_images": np.zeros((2, 10, 12), np.float32)}, TypeError, "train_images: expected dtype uint8"),
    ],
)
def test_write_mvtec_bad_input(tmp_path, kwargs, exc, message):
    train, test, groups, masks = toy()
    args = {"train_images": train, "test_images": test, "test_groups": groups, "test_masks": masks}
    args.update(kwargs)
    with pytest.raises(exc, match=message):
        write_mvtec(tmp_path / "d", args.pop("train_images"), args.pop("test_images"), **args)
    assert not (tmp_path / "d").exists() and not (tmp_path / "d.part").exists()


def test_write_mvtec_never_replaces_without_being_asked(tmp_path):
    root = _dataset(tmp_path)
    train, test, groups, masks = toy()
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        write_mvtec(root, train[:1], test, test_groups=groups, test_masks=masks)
    assert len(read_mvtec(root).train_names) == 2
    write_mvtec(root, train[:1], test, test_groups=groups, test_masks=masks, overwrite=True)
    assert len(read_mvtec(root).train_names) == 1
    (root / "my_notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds other things \\(my_notes.txt\\); refusing to replace it"):
        write_mvtec(root, train, test, test_groups=groups, test_masks=masks, overwrite=True)
    assert (root / "my_notes.txt").read_text() == "mine"


def test_write_mvtec_leaves_the_neighbours_alone(tmp_path):
    # Folders beside root named like its temporaries (a user's backup "d.old", a "d.part") are
    # not ours: writing or replacing root must not delete them.
    train, test, groups, masks = toy()
    for name in ("d.old", "d.part"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "keep.txt").write_text("mine")
    root = write_mvtec(tmp_path / "d", train, test, test_groups=groups, test_masks=masks)
    write_mvtec(root, train[:1], test, test_groups=groups, test_masks=masks, overwrite=True)
    assert len(read_mvtec(root).train_names) == 1
    for name in ("d.old", "d.part"):
        assert (tmp_path / name / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "d.old", "d.part"]


def test_write_png_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    import pathlib

    def failing_write(self, data):  # the encoded PNG reaches the temporary file only in part
        with open(self, "wb") as fh:
            fh.write(data[: len(data) // 2])
        raise OSError("disk full")

    (tmp_path / "a.png").write_bytes(b"mine")
    monkeypatch.setattr(pathlib.Path, "write_bytes", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8), overwrite=True)
    assert (tmp_path / "a.png").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_read_image_channels(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgba = np.dstack([np.stack([grey] * 3, -1), np.full((3, 4), 255, np.uint8)])
    iio.imwrite(tmp_path / "g.png", grey)
    iio.imwrite(tmp_path / "rgba.png", rgba)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), grey)
    assert read_image(tmp_path / "rgba.png").shape == (3, 4, 3)
    rgba[0, 0, 3] = 10
    iio.imwrite(tmp_path / "t.png", rgba)
    with pytest.raises(ValueError, match="has a transparent alpha channel"):
        read_image(tmp_path / "t.png")
    iio.imwrite(tmp_path / "16.png", grey.astype(np.uint16) * 1000)
    with pytest.raises(ValueError, match="expected an 8-bit image, got uint16"):
        read_image(tmp_path / "16.png")
    with pytest.raises(FileNotFoundError, match="image: .*none.png does not exist"):
        read_image(tmp_path / "none.png")


def test_list_and_read_images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    with pytest.raises(ValueError, match="images: no image files .* in .*imgs; it is empty"):
        list_images(d)
    (d / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="it holds readme.md"):
        list_images(d)
    with pytest.raises(FileNotFoundError, match="images: .*missing does not exist"):
        list_images(tmp_path / "missing")
    write_png(d / "b.png", np.zeros((4, 4), np.uint8))
    write_png(d / "a.PNG", np.ones((5, 5), np.uint8))
    assert [p.name for p in list_images(d)] == ["a.PNG", "b.png"]
    images, files = read_images(d)
    assert [im.shape for im in images] == [(5, 5), (4, 4)]
    write_png(d / "c.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="mixes grey images .* and RGB images \\(c.png\\)"):
        read_images(d)
    with pytest.raises(FileExistsError):
        write_png(d / "c.png", np.zeros((4, 4), np.uint8))
