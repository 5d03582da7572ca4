"""Real-defect patches cut around listed positions (ispad_core.tiling.crops)."""


import numpy as np
import pytest

from ispad_core.tiling.crops import crop_at, read_positions, write_crops
from ispad_core.io import read_image, write_png


def _reference_crop(image, r, c, size):
    """Pixel by pixel from the definition, mirroring (symmetric) outside the image."""
    h, w = image.shape[:2]

    def mirror(i, n):
        while i < 0 or i >= n:
            i = -i - 1 if i < 0 else 2 * n - i - 1
        return i

    out = np.empty((size, size) + image.shape[2:], image.dtype)
    for i in range(size):
        for j in range(size):
            out[i, j] = image[mirror(r - size // 2 + i, h), mirror(c - size // 2 + j, w)]
    return out


@pytest.mark.parametrize("size", [1, 4, 5, 8])
def test_crop_at_matches_reference_inside_and_padded(size):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 15, 3), dtype=np.uint8)
    centers = [(0, 0), (6, 7), (11, 14), (3, 12)]
    got = crop_at(image, centers, size, pad=True)
    for k, (r, c) in enumerate(centers):
        np.testing.assert_array_equal(got[k], _reference_crop(image, r, c, size))


def test_crop_at_refuses_patch_leaving_the_image():
    image = np.zeros((20, 20), np.uint8)
    assert crop_at(image, [(10, 10)], 8).shape == (1, 8, 8)
    with pytest.raises(ValueError, match=r"centers\[1\].*leaves the 20 x 20 image"):
        crop_at(image, [(10, 10), (2, 10)], 8)
    with pytest.raises(ValueError, match="outside"):
        crop_at(image, [(20, 0)], 4, pad=True)
    with pytest.raises(ValueError, match="exceeds"):
        crop_at(image, [(10, 10)], 32, pad=True)
    with pytest.raises(TypeError, match="integer"):
        crop_at(image, [(1.5, 2.0)], 4)
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        crop_at(image, [1, 2, 3], 4)


def _scans(tmp_path):
    rng = np.random.default_rng(1)
    scans = tmp_path / "scans"
    scans.mkdir()
    images = {}
    for name in ("a.png", "b.png"):
        images[name] = rng.integers(0, 256, (64, 80), dtype=np.uint8)
        write_png(scans / name, images[name])
    return scans, images


def test_write_crops_layout_and_content(tmp_path):
    scans, images = _scans(tmp_path)
    table = tmp_path / "defects.csv"
    table.write_text("scan,row,col,group\na.png,20,30,points\nb.png,40,50,area\na.png,32,40,area\n")
    written = write_crops(table, scans=scans, out=tmp_path / "real", size=16)
    assert [p.relative_to(tmp_path / "real").as_posix() for p in written] == [
        "points/a_r20_c30.png", "area/b_r40_c50.png", "area/a_r32_c40.png"]
    np.testing.assert_array_equal(read_image(written[1]), images["b.png"][32:48, 42:58])
    with pytest.raises(FileExistsError):
        write_crops(table, scans=scans, out=tmp_path / "real", size=16)
    assert len(write_crops(table, scans=scans, out=tmp_path / "real", size=16, overwrite=True)) == 3


def test_write_crops_checks_every_row_before_writing(tmp_path):
    scans, _ = _scans(tmp_path)
    table = tmp_path / "defects.csv"
    table.write_text("scan,row,col,group\na.png,20,30,points\nb.png,2,50,area\n")
    with pytest.raises(ValueError, match="line 3 .*b.png.*leaves"):
        write_crops(table, scans=scans, out=tmp_path / "real", size=16)
    assert not (tmp_path / "real").exists()
    assert len(write_crops(table, scans=scans, out=tmp_path / "real", size=16, pad=True)) == 2


@pytest.mark.parametrize(
    "text, match",
    [
        ("scan,row,group\na.png,1,points\n", "missing col"),
        ("scan,row,col,group\na.png,x,1,points\n", ":2: row and col must be integers"),
        ("scan,row,col,group\na.png,-1,1,points\n", ">= 0"),
        ("scan,row,col,group\na.png,1,1,../up\n", "not a plain folder name"),
        ("scan,row,col,group\na.png,1,1,points\na.png,1,1,area\n", ":3: .*listed twice"),
        ("scan,row,col,group\n", "no positions"),
    ],
)
def test_read_positions_bad_tables(tmp_path, text, match):
    table = tmp_path / "t.csv"
    table.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_positions(table)


def test_scan_outside_folder_and_missing_scan(tmp_path):
    scans, _ = _scans(tmp_path)
    write_png(tmp_path / "secret.png", np.zeros((64, 64), np.uint8))
    table = tmp_path / "t.csv"
    table.write_text("scan,row,col,group\n../secret.png,30,30,points\n")
    with pytest.raises(ValueError, match="outside"):
        write_crops(table, scans=scans, out=tmp_path / "real", size=8)
    table.write_text("scan,row,col,group\nnone.png,30,30,points\n")
    with pytest.raises(FileNotFoundError, match="line 2: no scan"):
        write_crops(table, scans=scans, out=tmp_path / "real", size=8)


def test_cli_wiring(tmp_path):
    from tests.conftest import run_ispad

    scans, _ = _scans(tmp_path)
    table = tmp_path / "t.csv"
    table.write_text("scan,row,col,group\na.png,30,30,points\nb.png,30,30,points\n")
    ran = run_ispad("crops", "--scans", scans, "--at", table, "--out", tmp_path / "r", "--size", 8)
    assert "wrote 2 patches of 8 x 8" in ran.stdout
