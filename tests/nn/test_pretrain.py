"""In-domain self-supervised pretraining (``ispad_core.nn.pretrain``): the weights it writes load
as torchvision-layout weights into every built-in backbone, it is deterministic from the seed, it
learns (the masked-pixel loss falls on a simple texture) and it refuses bad input by name."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core.io import Scans  # noqa: E402
from ispad_core.nn import BACKBONES, TrainSettings, classifier, pretrain  # noqa: E402
from ispad_core.nn.pretrain import _masks, _PatchSource, feature_map  # noqa: E402

LAYOUTS = json.loads((Path(__file__).parent / "data" / "torchvision_layouts.json").read_text())["models"]


def _texture(h=96, w=96, seed=0):
    """Stripes with noise: a texture whose hidden squares can be inferred from their surroundings."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(2 * np.pi * (xx + 0.5 * yy) / 12.0)
    return (base + rng.normal(0, 4, (h, w))).clip(0, 255).astype(np.uint8)


TINY = dict(steps=2, batch_size=2, patch_size=32, mask_size=8, verbose=False, threads=1)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_weights_load_as_torchvision_weights_and_differ_from_the_init(backbone, tmp_path):
    res = pretrain([_texture(48, 48)], backbone=backbone, seed=3, **TINY)
    layout = LAYOUTS[backbone]["state_dict"]
    init = classifier(backbone, in_channels=1)
    head = set(init.head_keys)
    # exactly torchvision's keys but the head; its shapes, the stem for one channel
    assert set(res.state_dict) == set(layout) - head
    stem = init.stem_key
    for key, value in res.state_dict.items():
        want = list(layout[key])
        if key == stem:
            want[1] = 1
        assert list(value.shape) == want, key
        assert value.device.type == "cpu"
    # through a file, as --weights reads it, and through train_detector's settings
    path = tmp_path / "backbone.pth"
    res.save(path)
    with pytest.raises(FileExistsError, match="overwrite"):
        res.save(path)
    loaded = classifier(backbone, in_channels=1, weights=path)
    assert TrainSettings(weights=path, backbone=backbone).weights == path
    own = loaded.state_dict()
    for key, value in res.state_dict.items():
        assert torch.equal(own[key], value), key
    # the head is fresh (not in the file), and the backbone moved away from its initialisation
    torch.manual_seed(3)
    fresh = classifier(backbone, in_channels=1).state_dict()
    trainable = [k for k, v in fresh.items() if k not in head and v.is_floating_point() and "running" not in k]
    moved = [k for k in trainable if not torch.allclose(fresh[k], own[k])]
    assert len(moved) >= 0.9 * len(trainable), f"{len(moved)} of {len(trainable)} tensors changed"
    # three colour channels: the grey stem is spread over RGB as an ImageNet one is summed
    rgb = classifier(backbone, in_channels=3, weights=path)
    assert torch.allclose(rgb.state_dict()[stem].sum(dim=1, keepdim=True), res.state_dict[stem], atol=1e-6)


def test_deterministic_from_the_seed():
    scans = [_texture(64, 80, seed=1), _texture(80, 64, seed=2)]
    kw = dict(TINY, steps=3, batch_size=4)
    a = pretrain(scans, seed=5, **kw)
    b = pretrain(scans, seed=5, **kw)
    c = pretrain(scans, seed=6, **kw)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-4, atol=1e-6)
    for key in a.state_dict:
        torch.testing.assert_close(a.state_dict[key], b.state_dict[key], rtol=1e-3, atol=1e-5)
    assert not np.allclose(a.losses, c.losses)
    assert a.settings == b.settings and a.settings["seed"] == 5


def _ramp(h=192, w=192, seed=0):
    """A diagonal brightness ramp (30 to 220) with noise: each hidden square's level can be read
    from its visible surroundings, but no single grey level fits every patch."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 30 + 190 * (xx + yy) / (h + w - 2)
    return (base + rng.normal(0, 4, (h, w))).clip(0, 255).astype(np.uint8)


def test_the_masked_loss_falls_below_the_best_constant():
    """Forty steps on a ramp: the loss falls, and ends well under the error of the best single
    grey level for the hidden pixels (the median; what a network that learned nothing from the
    visible pixels could reach). Measured: 0.50 -> 0.30 against 0.50."""
    from ispad_core.nn import preprocess_batch

    im = _ramp()
    res = pretrain([im], steps=40, batch_size=8, patch_size=32, mask_size=8, augment=None, seed=0,
                   verbose=False, threads=1)
    first, last = res.losses[:5].mean(), res.losses[-5:].mean()
    src = _PatchSource([im], [None], 32, None, np.random.default_rng(1))
    x = preprocess_batch(torch.from_numpy(src.batch(256)), "lsm2")
    m = torch.from_numpy(_masks(np.random.default_rng(2), 256, 32, 8)).bool()
    hidden = x[m]
    constant = float((hidden - hidden.median()).abs().mean())
    assert last < 0.75 * first, res.losses
    assert last < 0.75 * constant, (last, constant)


def test_patches_stay_inside_the_roi_and_masks_hide_half():
    im = np.full((64, 96), 255, np.uint8)
    im[:, 48:] = 10
    roi = np.zeros(im.shape, bool)
    roi[:, 48:] = True
    src = _PatchSource([im], [roi], 32, None, np.random.default_rng(0))
    patches = src.batch(50)
    assert patches.shape == (50, 32, 32) and (patches == 10).all()
    m = _masks(np.random.default_rng(0), 7, 32, 8)
    assert m.shape == (7, 1, 32, 32)
    assert (m.reshape(7, -1).mean(axis=1) == 0.5).all()
    res = pretrain(Scans(images=[im], names=["a.png"], rois=[roi]), **TINY)
    assert res.settings["scans"] == 1


def test_feature_map_is_the_spatial_map_before_pooling():
    model = classifier("resnet18").eval()
    x = torch.randn(2, 1, 64, 64)
    f = feature_map(model, x)
    assert f.shape == (2, 512, 2, 2)
    torch.testing.assert_close(f.mean(dim=(2, 3)), model.features(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(backbone="resnet19"), "backbone"),
        (dict(backbone=18), "backbone"),
        (dict(steps=0), "steps"),
        (dict(batch_size=1), "batch_size"),
        (dict(patch_size=48), "patch_size"),
        (dict(patch_size=16), "patch_size"),
        (dict(mask_size=7), "mask_size"),
        (dict(mask_size=32), "mask_size"),
        (dict(augment="lsm9"), "augment"),
        (dict(preprocess="lsm9"), "preprocess"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(threads=0), "threads"),
        (dict(device="gpu9"), "device"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    args = dict(TINY, **kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        pretrain([_texture(48, 48)], **args)


@pytest.mark.parametrize(
    "images, match",
    [
        ([], "no scans"),
        ([np.zeros((48, 48), np.float32)], "uint8"),
        ([np.zeros((20, 48), np.uint8)], "smaller than patch_size"),
        ([np.zeros((48, 48), np.uint8), np.zeros((48, 48, 3), np.uint8)], "alike"),
        ([np.zeros((48, 48, 2), np.uint8)], "shape"),
        (42, "images"),
    ],
)
def test_bad_images_are_named(images, match):
    with pytest.raises((ValueError, TypeError), match=match):
        pretrain(images, **TINY)


def test_missing_folder_and_empty_roi(tmp_path):
    with pytest.raises(FileNotFoundError):
        pretrain(str(tmp_path / "nothing"), **TINY)
    im = _texture(48, 48)
    with pytest.raises(ValueError, match="ROI"):
        pretrain(Scans(images=[im], names=["a"], rois=[np.zeros(im.shape, bool)]), **TINY)
