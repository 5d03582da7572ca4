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
    # the quicker path of defects 3 times as strong (the default, native contrast, is the README's
    # main job, which CI runs as it is)
    res = run_demo(tmp_path / "demo", seed=0, n_defects=1, contrast=3.0, steps=400, verbose=False)
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
    assert res.commands[0].startswith("ispad synth ") and "--contrast" not in res.commands[0]


@needs_torch
def test_demo_at_native_contrast_draws_the_stream_and_trains_under_the_curriculum(tmp_path):
    import shlex

    from ispad_core._shared.recipes import DEMO_CURRICULUM
    from ispad_core.cli.parser import build_parser
    from ispad_core.nn import ContrastCurriculum, load_model

    res = run_demo(tmp_path / "demo", seed=0, n=64, steps=2, size=32, n_defects=1, verbose=False)
    assert not (tmp_path / "demo" / "stream.h5").exists() and not (tmp_path / "demo" / "defects.json").exists()
    training = load_model(res.model)[1]["training"]
    assert training["curriculum"] == ContrastCurriculum.parse(DEMO_CURRICULUM).to_dict()
    assert training["max_steps"] == 2
    train, inspect = res.commands
    # the printed command draws the same stream under the demo's curriculum
    args = build_parser().parse_args(shlex.split(train)[1:])
    assert args.images == [str(tmp_path / "demo" / "scans")] and args.curriculum == DEMO_CURRICULUM
    assert (args.n, args.size, args.seed, args.max_steps, args.batch_size) == (64, 32, 0, 2, 32)
    assert args.weights is None and args.init_from is None
    assert inspect.startswith("ispad inspect ")


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
