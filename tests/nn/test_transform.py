"""The training transform of real defects (augment, then crop the centre)."""

import numpy as np
import pytest

pytest.importorskip("torch")

from ispad_core.nn import RealTransform  # noqa: E402


def test_real_transform_crops_the_centre_and_augments_per_draw():
    image = np.random.default_rng(0).integers(0, 256, (96, 80), dtype=np.uint8)
    crop = RealTransform(64, augment=None)(image, None)
    assert crop.shape == (64, 64) and np.array_equal(crop, image[16:80, 8:72]) and crop.flags.c_contiguous
    t = RealTransform(64, augment="lsm1")
    a = t(image, np.random.default_rng(1))
    b = t(image, np.random.default_rng(1))
    c = t(image, np.random.default_rng(2))
    assert a.shape == (64, 64) and np.array_equal(a, b) and not np.array_equal(a, c)
    rgb = np.repeat(image[..., None], 3, axis=2)
    assert RealTransform(64)(rgb, np.random.default_rng(0)).shape == (64, 64, 3)
    with pytest.raises(ValueError, match="smaller than the patch size 64"):
        t(image[:60], np.random.default_rng(0))
    with pytest.raises(ValueError, match="expected one of 'lsm1', 'lsm2', 'asm', got 'lsm9'"):
        RealTransform(64, augment="lsm9")


def test_the_old_home_in_io_warns_and_gives_the_same_class():
    import ispad_core.io

    with pytest.warns(DeprecationWarning, match="moved to ispad_core.nn.RealTransform"):
        old = ispad_core.io.RealTransform
    assert old is RealTransform
    with pytest.raises(AttributeError, match="no attribute 'RealTransfrom'"):
        ispad_core.io.RealTransfrom  # noqa: B018
