"""Scans and ROIs read from folders, matched by file name, each mismatch named."""

import numpy as np
import pytest

from ispad_core.io import read_scans, write_png


@pytest.fixture
def folders(tmp_path):
    scans, rois = tmp_path / "scans", tmp_path / "rois"
    scans.mkdir()
    rois.mkdir()
    for name, shape in (("a", (30, 40)), ("b", (20, 20))):
        write_png(scans / f"{name}.png", np.full(shape, 100, np.uint8))
        roi = np.zeros(shape, np.uint8)
        roi[2:10, 3:9] = 255
        write_png(rois / f"{name}.png", roi)
    return scans, rois


def test_scans_and_rois_match_by_name(folders):
    scans, rois = folders
    got = read_scans(scans, rois=rois)
    assert got.names == ["a.png", "b.png"] and got.roi_names == ["a.png", "b.png"]
    assert [r.shape for r in got.rois] == [(30, 40), (20, 20)] and all(r.dtype == bool and r.sum() == 48 for r in got.rois)
    plain = read_scans([scans / "b.png"])
    assert plain.rois is None and plain.names == ["b.png"]


def test_mismatches_are_named(folders, tmp_path):
    scans, rois = folders
    (rois / "b.png").unlink()
    with pytest.raises(ValueError, match="--rois: no ROI for image b in .*rois \\(expected a file named b.png\\)"):
        read_scans(scans, rois=rois, name="--images", rois_name="--rois")
    write_png(rois / "b.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match="rois: .*b.png is 5 x 5 but its image is 20 x 20"):
        read_scans(scans, rois=rois)
    (rois / "b.png").unlink()
    write_png(rois / "c.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match="rois: c in .* match no image of images"):
        read_scans(scans, rois=rois)
