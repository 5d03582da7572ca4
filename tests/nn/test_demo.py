"""The whole path end to end on the CPU: stream -> training with real defects -> inspection."""

import importlib.util
import json

import numpy as np
import pytest

from ispad_core.nn.demo import _overlaps, run_demo

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason='the demo trains a detector: needs the [torch] extra: pip install "ispad-core[torch]"',
)


@needs_torch
@pytest.mark.slow
def test_demo_finds_the_planted_defect(tmp_path):
    res = run_demo(tmp_path / "demo", seed=0, n_defects=1, verbose=False)
    outcome = res.report.scans[0]
    assert outcome.ok and outcome.defective
    payload = json.loads(outcome.json.read_text())
    hot = payload["hottest_window"]
    box = res.planted[0]
    # the hottest window covers the planted defect
    assert _overlaps((hot["row"], hot["col"], hot["size"]), box), (hot, box)
    assert res.found == (True,)
    # the detector is selective: a few windows, not the whole scan
    assert 0 < outcome.flagged <= 0.02 * outcome.windows
    # JSON, overlay and summary agree with the result
    assert outcome.overlay.is_file() and payload["overlay"] == outcome.overlay.name
    assert payload["decision"] == "defective" and payload["windows"]["flagged"] == outcome.flagged
    summary = (res.results / "summary.csv").read_text().splitlines()
    assert len(summary) == 2 and "scan" in summary[1]
    for name in ("stream.h5", "model.pt", "defects.json", "real/points", "real/area", "val/good", "scans"):
        assert (tmp_path / "demo" / name).exists(), name
    assert res.validation.mcc > 0.5


@needs_torch
def test_demo_refuses_existing_folder_and_bad_arguments(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(FileExistsError, match="overwrite"):
        run_demo(tmp_path / "d")
    with pytest.raises(ValueError, match="size"):
        run_demo(tmp_path / "e", size=8)
    with pytest.raises(ValueError, match="contrast"):
        run_demo(tmp_path / "f", contrast=0.0)
    assert not (tmp_path / "e").exists() and not (tmp_path / "f").exists()


def test_overlap_rule():
    box = np.array([10, 10, 20, 20])
    assert _overlaps((0, 0, 11), box) and _overlaps((19, 19, 5), box)
    assert not _overlaps((0, 0, 10), box) and not _overlaps((20, 0, 64), box)


def test_demo_prints_and_returns_the_time_of_each_stage(tmp_path, capsys):
    from ispad_core.cli import main

    assert main(["demo", "--out", str(tmp_path / "d"), "--n", "64", "--steps", "2", "--size", "32"]) == 0
    captured = capsys.readouterr()
    for stage in ("data", "stream", "training", "inspection"):
        assert f"      {stage}: " in captured.err, stage
    line = next(x for x in captured.out.splitlines() if x.startswith("time per stage: "))
    assert [part.split()[0] for part in line[len("time per stage: "):].split(", ")] == [
        "data", "stream", "training", "inspection"]
