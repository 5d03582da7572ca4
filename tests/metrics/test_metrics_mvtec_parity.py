"""AU-PRO against a transcription of the official MVTec AD evaluation code, on a fixed workload.

The documentation claims parity with the MVTec AD evaluation; this test holds the claim on a
workload built like an evaluation run: float32 anomaly maps of several images (most of them
fault-free), regions of many sizes (single pixels, blobs, thin lines, regions that touch only at a
corner, regions on the border), quantised scores with many ties, and limits that fall between
curve points, on one, and at 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ispad_core.metrics import au_pro, pro_curve
from tests.reference import mvtec_ad_pro as official


def _workload(seed: int = 2021, n: int = 10, size: int = 96):
    """``n`` (>= 7) float32 maps and 0/255 masks; the masks of images 1, 3, 6 (and 8) hold defects."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    masks[1, 10:30, 12:40] = 255  # a blob
    masks[1, 60, 60] = 255  # a single pixel
    masks[3, 0:5, 0:5] = 255  # on the border
    masks[3, 5, 5] = 255  # touches the block only at a corner: the same 8-connected region
    masks[3, 40:90, 50] = 255  # a thin line
    masks[6] = (ndimage.gaussian_filter(rng.random((size, size)), 3) > 0.56) * 255  # ragged regions
    if n > 8:
        masks[8, 70:72, 10:80] = 255
    smooth = ndimage.gaussian_filter(rng.random((n, size, size)), (0, 2, 2))
    signal = ndimage.gaussian_filter((masks > 0).astype(float), (0, 1.5, 1.5))
    maps = smooth + 0.8 * signal + 0.05 * rng.standard_normal((n, size, size))
    maps = np.round(maps * 200) / 200  # quantised: many ties, as scores saved as images have
    return maps.astype(np.float32), masks


def test_the_workload_is_what_it_claims():
    maps, masks = _workload()
    labels = [ndimage.label(m, np.ones((3, 3)))[1] for m in masks]
    assert labels[1] == 2 and labels[3] == 2 and labels[6] >= 3 and sum(labels) >= 8
    assert sum(n == 0 for n in labels) >= 5  # most images fault-free
    assert np.unique(maps).size < maps.size / 20  # heavy ties


@pytest.mark.parametrize("limit", [0.3, 0.05, 0.01, 1.0])
def test_au_pro_equals_the_official_algorithm(limit):
    maps, masks = _workload()
    ours = au_pro(maps, masks, fpr_limit=limit)
    theirs = official.au_pro(maps, masks, integration_limit=limit)
    assert 0.2 < theirs < 1.0  # a detector that is neither perfect nor useless
    assert ours == pytest.approx(theirs, rel=0, abs=1e-9)


def test_a_limit_on_a_curve_point_and_another_workload():
    maps, masks = _workload()
    fprs, _ = official.compute_pro(maps, masks)
    on_point = float(fprs[np.searchsorted(fprs, 0.1)])
    assert 0.1 <= on_point < 0.2 and on_point in fprs
    assert au_pro(maps, masks, fpr_limit=on_point) == pytest.approx(
        official.au_pro(maps, masks, integration_limit=on_point), abs=1e-9
    )
    maps, masks = _workload(seed=7, n=7, size=64)
    assert au_pro(maps, masks) == pytest.approx(official.au_pro(maps, masks), abs=1e-9)


def test_pro_curve_points_equal_the_official_curve():
    maps, masks = _workload()
    fpr, pro, _ = pro_curve(maps, masks)
    ofpr, opro = official.compute_pro(maps, masks)
    # the official curve appends (1, 1) after its last point, which is (1, 1) already (up to the
    # rounding of its float64 running sum of 1 / |region|)
    assert ofpr[-2] == 1.0 and opro[-2] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(fpr, ofpr[:-1])
    np.testing.assert_allclose(pro, opro[:-1], rtol=0, atol=1e-12)
