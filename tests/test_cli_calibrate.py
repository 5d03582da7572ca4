"""``ispad calibrate`` and ``ispad inspect --design`` in this process: the wiring, the messages and
the exit statuses (the library's behaviour is tested in tests/nn/test_calibration.py)."""

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core.cli.calibrate import rate  # noqa: E402
from ispad_core.nn import Preprocess, classifier, save_model  # noqa: E402
from ispad_core.nn.modelfile import read_model_file  # noqa: E402
from ispad_core.samples import screen_print  # noqa: E402
from tests.conftest import run_ispad as ispad  # noqa: E402

FACTORY = "tests.nn._factory:small_cnn"
QUIET = ["--allow-factory", FACTORY, "--quiet", "--precision", "fp32"]


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(0)
    net = classifier(FACTORY, in_channels=1, num_classes=2, dropout=0.1, width=4)
    meta = {"backbone": FACTORY, "backbone_kwargs": {"width": 4}, "in_channels": 1, "num_classes": 2, "dropout": 0.1,
            "patch_size": 32, "preprocess": Preprocess().to_dict(), "threshold": 0.5}
    model = save_model(tmp_path / "model.pt", net, metadata=meta)
    good = tmp_path / "good"
    good.mkdir()
    big = screen_print((320, 320), rng=0, kind="dots")
    for i, (r, c) in enumerate([(0, 0), (0, 160), (160, 0), (160, 160)]):
        iio.imwrite(good / f"g{i}.png", big[r:r + 160, c:c + 160])
    return model, good


def test_calibrate_then_inspect_with_the_design(tmp_path, setup):
    model, good = setup
    out = ispad("calibrate", "--model", model, "--good", good, "--design", "dots", "--target-fpr", "1/50",
                "--out", model, "--overwrite", *QUIET).stdout
    assert "calibration of design 'dots'" in out and "256 fault-free windows from 4 scans" in out
    assert "R = 0.02" in out and "expected false alarms per fault-free scan: 1.28" in out
    assert f"ispad inspect SCANS... --model {model} --design dots" in out
    meta = read_model_file(model)[1]
    assert meta["calibrations"]["dots"]["target_fpr"] == 0.02 and meta["calibrations"]["dots"]["precision"] == "fp32"
    res = ispad("inspect", good, "--model", model, "--design", "dots", "--out", tmp_path / "r", *QUIET).stdout
    assert "threshold" in res and "from design dots (calibrated on 256 windows at R=0.02)" in res
    assert "calibrated fault-free rate 2.000%" in res and "drift test: no drift" in res
    assert "comes from the validation prints" not in res
    rows = list(csv.DictReader((tmp_path / "r" / "summary.csv").read_text().splitlines()))
    assert rows[0]["threshold_source"] == "design dots (calibrated on 256 windows at R=0.02)"
    assert json.loads((tmp_path / "r" / "run.json").read_text())["drift"]["drift"] is False
    plain = ispad("inspect", good, "--model", model, "--out", tmp_path / "p", *QUIET).stdout
    assert "note: the threshold 0.5 comes from the validation prints" in plain
    assert "calibrated designs in this model: dots; pick one with --design" in plain and "ispad calibrate --model" in plain
    user = ispad("inspect", good, "--model", model, "--threshold", "0.9", "--out", tmp_path / "u", *QUIET).stdout
    assert "from user" in user and "validation prints" not in user


def test_a_too_small_sample_names_the_rate_and_the_windows_needed(tmp_path, setup):
    model, good = setup
    err = ispad("calibrate", "--model", model, "--good", good, "--design", "dots", "--target-fpr", "0.001",
                "--out", tmp_path / "m.pt", *QUIET, expect=1).stderr
    assert err.startswith("ispad calibrate: error: --target-fpr 0.001 needs at least 999 fault-free windows")
    assert "give 256" in err and "--allow-unsupported" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.pt").exists()
    out = ispad("calibrate", "--model", model, "--good", good, "--design", "dots", "--target-fpr", "0.001",
                "--out", tmp_path / "m.pt", "--allow-unsupported", *QUIET).stdout
    assert "warning: --target-fpr: 0.001 is below" in out and "R IS BELOW IT" in out


def test_errors_are_one_line(tmp_path, setup):
    model, good = setup
    base = ["calibrate", "--model", model, "--good", good, "--design", "dots", "--target-fpr", "0.05"]
    err = ispad(*base, "--out", model, *QUIET, expect=1).stderr
    assert "out:" in err and "exists; ask for overwrite (--overwrite)" in err
    err = ispad("inspect", good, "--model", model, "--design", "lines", "--out", tmp_path / "x", *QUIET, expect=1).stderr
    assert "has no calibration for design 'lines'; calibrated designs: none" in err
    err = ispad("calibrate", "--model", model, "--good", good, "--design", "d", "--target-fpr", "2", "--out", "x.pt", expect=2).stderr
    assert "--target-fpr: expected a rate in (0, 1) such as 0.01 or 1/100, got '2'" in err


@pytest.mark.parametrize("text, value", [("0.01", 0.01), ("1/100", 0.01), (" 1/1000 ", 0.001), ("5e-3", 0.005)])
def test_target_fpr_reads_decimals_and_fractions(text, value):
    assert rate(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["0", "1", "1/0", "abc", "-0.1", "nan", "3/2"])
def test_target_fpr_refuses_what_is_not_a_rate(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="expected a rate in"):
        rate(text)


def test_the_validation_note_of_an_onnx_model_points_to_its_model_file():
    from ispad_core.cli.inspect import _validation_note

    note = _validation_note({"threshold_used": 0.4, "calibrated_designs": []}, "model.onnx")
    assert note.startswith("note: the threshold 0.4 comes from the validation prints")
    assert "on the model file (.pt) it was exported from, then ispad export again" in note and "--out model.onnx" not in note
