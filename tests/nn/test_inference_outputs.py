"""inspect_files and ``ispad inspect`` under hostile conditions: two runs into one folder, a full
disk, what a killed run left behind, a stride refused before any work."""

import errno
import json
import os
import pathlib

import imageio.v3 as iio
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core._shared.files import OutOfSpaceError, OutputBusyError  # noqa: E402
from ispad_core.nn import inference  # noqa: E402
from ispad_core.nn.inference import files as inference_files  # noqa: E402
from ispad_core.nn.inference import inspect_files  # noqa: E402
from tests.nn._helpers import TinyNet  # noqa: E402

FP32 = dict(precision="fp32", channels_last=False)


def _meta(size=32, threshold=0.5):
    return {"backbone": "test:tiny", "in_channels": 1, "num_classes": 2, "patch_size": size,
            "preprocess": {"brightness": 1.0, "ksize": 3, "sigma": 1.0, "mean": 0.449, "std": 0.226},
            "threshold": threshold}


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture
def scans(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for k, name in enumerate("abc"):
        iio.imwrite(folder / f"{name}.png", np.random.default_rng(k).integers(0, 256, (64, 80), dtype=np.uint8))
    return folder


def _model_file(tmp_path, threshold=0.5):
    from ispad_core.nn import classifier, save_model

    torch.manual_seed(0)
    net = classifier("resnet18", in_channels=1, num_classes=2, dropout=0.1, weights=None)
    meta = {"backbone": "resnet18", "backbone_kwargs": {}, "in_channels": 1, "num_classes": 2, "dropout": 0.1,
            "patch_size": 32, "preprocess": {"brightness": 1.0, "ksize": 3, "sigma": 1.0, "mean": 0.449, "std": 0.226},
            "threshold": threshold}
    return save_model(tmp_path / f"model_{threshold}.pt", net, metadata=meta)


# --------------------------------------------------------------------------- two runs, one folder


def test_a_second_inspection_into_the_same_folder_is_refused_at_once(tmp_path, scans, model):
    out = tmp_path / "out"
    refused = []

    def second_run(outcome):
        if outcome.name == "a":  # the first run is busy writing out/: another one starts
            with pytest.raises(OutputBusyError) as info:
                inspect_files(scans, model=(model, _meta(threshold=0.1)), out=out, overwrite=True, **FP32)
            refused.append(str(info.value))

    report = inspect_files(scans, model=(model, _meta()), out=out, on_scan=second_run, **FP32)
    assert len(refused) == 1 and str(out) in refused[0] and "another process is writing" in refused[0]
    # the folder holds one run's results only: every JSON has the threshold of the first run
    assert {json.loads((out / f"{s.name}.json").read_text())["threshold"] for s in report.scans} == {0.5}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["a.json", "a_overlay.png", "b.json", "b_overlay.png", "c.json", "c_overlay.png", "summary.csv"])


def test_cli_second_inspection_exits_1_with_one_line(tmp_path, scans, capsys):
    from ispad_core._shared.files import exclusive_lock
    from ispad_core.cli import main

    model = _model_file(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with exclusive_lock(out, name="out", lock=out / inference.INSPECT_LOCK):  # a first run holds the folder
        rc = main(["inspect", str(scans), "--model", str(model), "--out", str(out), "--overwrite", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "another process is writing" in err and str(out) in err
    assert sorted(os.listdir(out)) == []


# --------------------------------------------------------------------------- a full disk


def _full_disk_at(monkeypatch, file_name):
    """Make writing any temporary file of ``file_name`` fail as on a full disk."""
    for method in ("write_text", "write_bytes"):
        original = getattr(pathlib.Path, method)

        def failing(self, data, *args, _original=original, **kwargs):
            if self.name.startswith(f".{file_name}."):
                raise OSError(errno.ENOSPC, "No space left on device")
            return _original(self, data, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, method, failing)


@pytest.mark.parametrize("file_name", ["b.json", "b_overlay.png", "summary.csv"])
def test_a_full_disk_stops_the_run_with_one_line_and_keeps_the_old_outputs(tmp_path, scans, model, monkeypatch,
                                                                          file_name):
    out = tmp_path / "out"
    inspect_files(scans, model=(model, _meta()), out=out, **FP32)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _full_disk_at(monkeypatch, file_name)
    seen = []
    with pytest.raises(OutOfSpaceError) as info:
        inspect_files(scans, model=(model, _meta(threshold=0.25)), out=out, overwrite=True, on_scan=seen.append, **FP32)
    message = str(info.value)
    assert "\n" not in message and str(out / file_name) in message and " free " in message
    assert f"the old {file_name} is kept" in message
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(after) == sorted(before)  # no temporary file left, nothing lost
    assert after[file_name] == before[file_name] and after["summary.csv"] == before["summary.csv"]
    if file_name != "summary.csv":
        assert after["c.json"] == before["c.json"]  # the run stopped at the full disk: no scan after it
    assert all(s.ok for s in seen)  # no scan was reported as failed because of the disk


def test_cli_full_disk_is_one_line_exit_1(tmp_path, scans, monkeypatch, capsys):
    from ispad_core.cli import main

    model = _model_file(tmp_path)
    _full_disk_at(monkeypatch, "a_overlay.png")
    rc = main(["inspect", str(scans), "--model", str(model), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert err.startswith("ispad inspect: error: out: the disk is full while writing ") and "a_overlay.png" in err
    assert "free on its file system" in err


# --------------------------------------------------------------------------- what a killed run left


def test_a_rerun_removes_the_temporaries_of_a_killed_run_and_nothing_of_the_user(tmp_path, scans, model):
    out = tmp_path / "out"
    out.mkdir()
    left = [".a.json.k3_x9abz.part", ".old_overlay.png.abcdefgh.part", ".summary.csv.zz0_12ab.part"]
    users = [".a.json.part", ".notes.txt.abcdefgh.part", "a.json.k3_x9abz.part", ".model.pt.abcdefgh.part", "keep.part"]
    for name in left + users:
        (out / name).write_text("x")
    inspect_files(scans, model=(model, _meta()), out=out, **FP32)
    names = set(os.listdir(out))
    assert not names & set(left)
    assert set(users) <= names
    assert names - set(users) == {"a.json", "a_overlay.png", "b.json", "b_overlay.png", "c.json", "c_overlay.png",
                                  "summary.csv"}


# --------------------------------------------------------------------------- refused before any work


def test_a_stride_larger_than_the_patch_is_refused_before_any_scan_is_read(tmp_path, scans, model, monkeypatch):
    def no_reading(path):
        raise AssertionError(f"{path} was read")

    monkeypatch.setattr(inference_files, "_read_scan", no_reading)
    with pytest.raises(ValueError, match=r"stride: expected an int <= the model's patch size \(32\) so that windows leave no gaps, got 40"):
        inspect_files(scans, model=(model, _meta()), out=tmp_path / "out", stride=40, **FP32)
    assert not (tmp_path / "out").exists()


def test_cli_stride_larger_than_the_patch_is_one_line_exit_1(tmp_path, scans, capsys):
    from ispad_core.cli import main

    model = _model_file(tmp_path)
    rc = main(["inspect", str(scans), "--model", str(model), "--out", str(tmp_path / "out"), "--stride", "33"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "stride" in err and "33" in err and "32" in err
    assert not (tmp_path / "out").exists()
