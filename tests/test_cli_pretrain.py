"""``ispad pretrain`` in this process: the weights file it writes is what ``ispad train --weights``
takes, it never overwrites unasked or leaves a partial file, and bad options are named (the
library's behaviour is tested in tests/nn/test_pretrain.py)."""

import json
import os

import pytest

torch = pytest.importorskip("torch")

from ispad_core.cli.pretrain import BACKBONE_NAMES  # noqa: E402
from ispad_core.nn import BACKBONES, classifier  # noqa: E402
from ispad_core.nn.modelfile import read_model_file  # noqa: E402
from tests.conftest import run_ispad as ispad  # noqa: E402

TINY = ["--steps", "2", "--batch-size", "2", "--patch-size", "32", "--threads", "1", "--quiet"]


def test_the_backbone_names_are_the_library_s():
    assert BACKBONE_NAMES == BACKBONES


def test_pretrain_then_train_with_the_weights(tmp_path, image_dir):
    out = tmp_path / "backbone.pth"
    ran = ispad("pretrain", "--images", image_dir, "--out", out, *TINY)
    assert "pretrained resnet18: 2 steps of batch 2 (32 x 32 patches)" in ran.stdout
    assert f"wrote {out}" in ran.stdout and "--weights" in ran.stdout
    state = torch.load(out, weights_only=True)
    assert "conv1.weight" in state and "fc.weight" not in state
    classifier("resnet18", weights=out)
    model = tmp_path / "model.pt"
    train = ispad("train", "--images", image_dir, "--size", "32", "--n", "40", "--max-steps", "2", "--batch-size", "4",
                  "--weights", out, "--optimizer", "adamw", "--workers", "0", "--threads", "1", "--out", model,
                  "--quiet")
    assert "finished, 2 steps" in train.stdout
    meta = read_model_file(model)[1]
    assert str(out) in json.dumps(meta) and meta["training"]["recipe"]["optimizer"] == "adamw"


def test_refuses_an_existing_out_before_any_work_and_replaces_it_when_asked(tmp_path, image_dir):
    out = tmp_path / "backbone.pth"
    out.write_bytes(b"mine")
    err = ispad("pretrain", "--images", image_dir, "--out", out, *TINY, expect=1).stderr
    assert "--out" in err and "exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"mine"
    ispad("pretrain", "--images", image_dir, "--out", out, "--overwrite", *TINY)
    assert "layer4.1.bn2.weight" in torch.load(out, weights_only=True)


def test_no_partial_file_when_the_write_fails(tmp_path, image_dir, monkeypatch):
    def broken_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk went away")

    monkeypatch.setattr(torch, "save", broken_save)
    out = tmp_path / "backbone.pth"
    err = ispad("pretrain", "--images", image_dir, "--out", out, *TINY, expect=1).stderr
    assert "disk went away" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "args, named, code",
    [
        (["--patch-size", "48"], "--patch-size", 1),
        (["--mask-size", "7"], "--mask-size", 1),
        (["--mask-size", "64"], "--mask-size", 1),
        (["--batch-size", "1"], "--batch-size", 2),
        (["--backbone", "resnet19"], "--backbone", 2),
        (["--augment", "lsm9"], "--augment", 2),
    ],
)
def test_bad_options_are_named(tmp_path, image_dir, args, named, code):
    base = ["--steps", "1", "--batch-size", "2", "--patch-size", "32", "--quiet"]
    ran = ispad("pretrain", "--images", image_dir, "--out", tmp_path / "b.pth", *base, *args, expect=code)
    assert named in ran.stderr
    assert not (tmp_path / "b.pth").exists()


def test_missing_images_and_small_scans(tmp_path, image_dir):
    err = ispad("pretrain", "--images", tmp_path / "none", "--out", tmp_path / "b.pth", *TINY, expect=1).stderr
    assert "--images" in err
    err = ispad("pretrain", "--images", image_dir, "--out", tmp_path / "b.pth", "--patch-size", "128",
                "--quiet", expect=1).stderr
    assert "--images" in err and "128" in err


def test_help_explains_the_command():
    out = ispad("pretrain", "--help").stdout
    for words in ("fault-free", "masked", "torchvision", "--weights", "--patch-size", "examples:"):
        assert words in out
    assert "pretrain" in ispad("--help").stdout
