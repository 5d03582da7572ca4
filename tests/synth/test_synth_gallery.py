"""The contact sheet: layout, the outline just outside each mask, determinism."""

import numpy as np
from scipy import ndimage

from ispad_core.samples import screen_print
from ispad_core.synth import DefectParams, gallery, synthesize_batch
from ispad_core.synth._gallery import _outer_contour, _to_rgb8


def test_layout_and_dtype():
    sheet = gallery("dot-dark", n=5, size=40, columns=2, rng=1)
    # 3 rows of 2 pairs: 3 * (40 + 4) + 4 by 2 * 2 * (40 + 4) + 4
    assert sheet.shape == (136, 180, 3) and sheet.dtype == np.uint8
    np.testing.assert_array_equal(sheet, gallery("dot-dark", n=5, size=40, columns=2, rng=1))


def test_tiles_are_the_defects_and_the_outline_surrounds_the_mask():
    bg = np.stack([screen_print((48, 48), rng=i, kind="mesh") for i in range(2)])
    sheet = gallery("scratch", backgrounds=bg, columns=1, rng=3, outline=(0, 255, 0))
    res = synthesize_batch(bg, "scratch", rng=int(np.random.default_rng(3).choice(2**32, 2, replace=False)[1]),
                           warn=False)
    for i in range(2):
        y = 4 + i * 52
        left = sheet[y : y + 48, 4 : 4 + 48]
        right = sheet[y : y + 48, 56 : 56 + 48]
        np.testing.assert_array_equal(left[..., 0], res.images[i])
        # expected outline, independent of the helper under test: 8-neighbours of the mask, outside it
        mask = res.masks[i].astype(bool)
        ring = ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool)) & ~mask
        assert mask.any() and ring.any()
        np.testing.assert_array_equal(right[ring], np.tile([0, 255, 0], (ring.sum(), 1)))
        np.testing.assert_array_equal(right[~ring], left[~ring])


def test_zoom_and_colour_and_uint16_backgrounds():
    rgb = np.stack([screen_print((32, 32), rng=i, channels=3) for i in range(3)])
    sheet = gallery(DefectParams(threshold=0.0), backgrounds=rgb, n=2, columns=2, zoom=2, rng=0)
    assert sheet.shape == (2 * 32 + 8, 2 * 2 * (64 + 4) + 4, 3)
    wide = rgb[..., 0].astype(np.uint16) * 257
    np.testing.assert_array_equal(_to_rgb8(wide)[..., 1], rgb[..., 0])


def test_outer_contour():
    m = np.zeros((5, 5), np.uint8)
    m[2, 2] = 1
    ring = _outer_contour(m)
    assert ring.sum() == 8 and not ring[2, 2]
    # an L-shaped mask touching the border: the ring is cut off there, never on the mask
    m = np.zeros((6, 7), np.uint8)
    m[0:4, 0] = 1
    m[3, 0:3] = 1
    expected = np.array(
        [
            [0, 1, 0, 0, 0, 0, 0],
            [0, 1, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 0, 0, 0],
            [0, 0, 0, 1, 0, 0, 0],
            [1, 1, 1, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        bool,
    )
    np.testing.assert_array_equal(_outer_contour(m), expected)


def test_rejected_defects_are_framed():
    bg = np.stack([screen_print((40, 40), rng=i, kind="mesh") for i in range(2)])
    sheet = gallery(DefectParams(threshold=1e9, max_attempts=1), backgrounds=bg, columns=1, rng=0)
    right = sheet[4 : 4 + 40, 48 : 48 + 40]
    np.testing.assert_array_equal(right[0], np.tile([230, 190, 0], (40, 1)))
    np.testing.assert_array_equal(right[1:-1, 1:-1, 0], bg[0][1:-1, 1:-1])
