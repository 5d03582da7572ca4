"""The grid runner behind ``ispad experiment``."""

import csv
import importlib.util
import json
import os

import numpy as np
import pytest

from ispad_core._shared.recipes import FROM_SCRATCH_CURRICULUM
from ispad_core.experiment import (
    ConfigError,
    TrainOutput,
    load_config,
    run_experiment,
    score_test_set,
    select_real,
)
from ispad_core.fractions import nested_fractions
from ispad_core.samples.proxy import proxy_benchmark

_TORCH = 'the real trainer needs the [torch] extra: pip install "ispad-core[torch]"'


def _needs_torch():
    pytest.importorskip("torch", reason=_TORCH)


TINY_BENCH = dict(size=32, n_scans=1, scan_side=96, n_points=6, n_area=10, n_val=4, n_test=6, good_per_defective=4)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A benchmark as written before it had calibration sheets (the runs are scored without them)."""
    import shutil

    root = tmp_path_factory.mktemp("bench") / "proxy"
    proxy_benchmark(root, seed=0, **TINY_BENCH)
    shutil.rmtree(root / "calibration")
    (root / "test_designs.csv").unlink()
    return root


def _config(bench, **grid):
    return {
        "data": {"benchmark": str(bench)},
        "stream": {"n": 32, "size": 32},
        "grid": {"strategies": ["mixed", "oversampling"], "fractions": ["1/2", 1], "seeds": [0], **grid},
        "train": {"steps": 1, "batch_size": 4, "p_inj": 0.25},
    }


def fake_trainer(request, test_images):
    """A stand-in training step: deterministic scores from the run and its real defects."""
    key = f"{request.run.name}|{len(request.real_images)}"
    rng = np.random.default_rng(list(key.encode()))
    request.model_path.write_bytes(key.encode())
    val = request.val_labels * 0.6 + rng.random(len(request.val_labels)) * 0.5
    test = rng.random(len(test_images))
    return TrainOutput(val, test, {"fake": True})


# --------------------------------------------------------------------------- a tiny grid, really trained


@pytest.fixture(scope="module")
def tiny_grid(bench, tmp_path_factory):
    _needs_torch()
    out = tmp_path_factory.mktemp("runs") / "runs"
    result = run_experiment(_config(bench), out, verbose=False)
    return out, result


@pytest.mark.slow
def test_tiny_grid_writes_every_file(tiny_grid):
    out, result = tiny_grid
    assert result.ran == 4 and result.skipped == 0
    names = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert names == sorted(
        f"{s}_mixed_f{f}_resnet18_seed0" for s in ("mixed", "oversampling") for f in ("1-2", "1")
    )
    for name in names:
        assert (out / name / "model.pt").stat().st_size > 1000
        report = json.loads((out / name / "report.json").read_text())
        assert {"mcc", "recall", "fpr", "tn", "tp", "fn", "fp", "threshold", "recall_by_group"} <= set(report["test"])
        assert report["test"]["tn"] + report["test"]["fp"] == 24 and report["test"]["tp"] + report["test"]["fn"] == 6
        assert set(report["test"]["recall_by_group"]) == {"points", "area"}
        assert report["n_real"] == (16 if report["selection"] == "f1" else 8)
    rows = list(csv.DictReader((out / "results.csv").read_text().splitlines()))
    assert len(rows) == 4
    assert {"group", "n_real", "mcc", "recall", "fpr", "tn", "tp", "fn", "fp", "backbone", "strategy", "seed",
            "recall_points", "recall_area"} <= set(rows[0])
    md = (out / "results.md").read_text()
    assert "| Strategy | Defect group | #Real defects |" in md and md.count("| mixed | mixed |") >= 2
    png = (out / "mcc_vs_real.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_rerun_skips_finished_runs(tiny_grid, bench):
    out, first = tiny_grid
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/model.pt")}
    called = []

    def must_not_train(request, test_images):
        called.append(request.run)
        raise AssertionError("a finished run was trained again")

    again = run_experiment(_config(bench), out, verbose=False, trainer=must_not_train)
    assert again.ran == 0 and again.skipped == 4 and not called
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/model.pt")} == before
    assert [r["test"] for r in again.reports] == [r["test"] for r in first.reports]
    # a changed setting is a different run: it trains again
    changed = _config(bench)
    changed["train"]["steps"] = 2
    with pytest.raises(AssertionError, match="trained again"):
        run_experiment(changed, out, verbose=False, trainer=must_not_train)


@pytest.mark.slow
def test_selected_defects_are_nested_prefixes(tiny_grid, bench):
    out, result = tiny_grid
    by_strategy = {}
    for r in result.reports:
        by_strategy.setdefault(r["strategy"], {})[r["selection"]] = r["settings"]["real"]
    for sel in by_strategy.values():
        assert sel["f1"][: len(sel["f1/2"])] == sel["f1/2"]
    # the counts and the order are those of nested_fractions with the run's seed
    files = sorted(str(p.relative_to(bench / "real")) for p in (bench / "real").glob("*/*.png"))
    order = nested_fractions(len(files), (1, "1/2"), rng=0)
    assert by_strategy["mixed"]["f1/2"] == [files[i] for i in order["1/2"]]


@pytest.mark.slow
def test_two_jobs_give_the_results_of_one(bench, tmp_path):
    # with the threads fixed, a run is the same computation in a worker process as in this one
    _needs_torch()
    config = _config(bench, fractions=[1])
    config["train"].update(steps=2, threads=1)
    one = run_experiment(config, tmp_path / "one", verbose=False)
    two = run_experiment(config, tmp_path / "two", jobs=2, verbose=False)
    assert one.ran == two.ran == 2 and two.jobs == 2
    assert [r["run"] for r in two.reports] == [r["run"] for r in one.reports]  # grid order, not finishing order
    assert [r["test_scores"] for r in two.reports] == [r["test_scores"] for r in one.reports]
    assert (tmp_path / "two" / "results.csv").read_bytes() == (tmp_path / "one" / "results.csv").read_bytes()


# --------------------------------------------------------------------------- plumbing with a stand-in trainer


def test_interrupted_grid_completes_with_the_same_results(bench, tmp_path):
    config = _config(bench, strategies=["synthetic", "mixed"], fractions=["1/4", "1/2", 1], groups=["mixed", "area"])
    whole = run_experiment(config, tmp_path / "whole", verbose=False, trainer=fake_trainer)
    assert whole.ran == 7

    calls = []

    def dies_on_the_fourth(request, test_images):
        calls.append(request.run.name)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return fake_trainer(request, test_images)

    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path / "cut", verbose=False, trainer=dies_on_the_fourth)
    assert not (tmp_path / "cut" / "results.csv").exists()
    resumed = run_experiment(config, tmp_path / "cut", verbose=False, trainer=fake_trainer)
    assert resumed.skipped == 3 and resumed.ran == 4
    for name in ("results.csv", "results.md", "mcc_vs_real.png"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


def test_counts_per_group_and_group_runs(bench, tmp_path):
    config = _config(bench, strategies=["mixed"], fractions=["1/2"], groups=["points", "area"],
                     counts=[3, {"points": 2, "area": 2}, {"area": "all", "points": 2}])
    result = run_experiment(config, tmp_path / "runs", verbose=False, trainer=fake_trainer)
    got = {(r["group"], r["selection"]): r["real_by_group"] for r in result.reports}
    assert got == {
        ("points", "f1/2"): {"area": 0, "points": 6},  # a group smaller than the mixed count goes whole
        ("area", "f1/2"): {"area": 8, "points": 0},
        ("points", "n3"): {"area": 0, "points": 3},
        ("area", "n3"): {"area": 3, "points": 0},
        ("mixed", "area=2+points=2"): {"area": 2, "points": 2},
        ("mixed", "area=all+points=2"): {"area": 10, "points": 2},
    }
    reals = {(r["group"], r["selection"]): r["settings"]["real"] for r in result.reports}
    small, large = reals[("mixed", "area=2+points=2")], reals[("mixed", "area=all+points=2")]
    assert set(small) <= set(large)
    assert reals[("area", "n3")] == reals[("area", "f1/2")][:3]


def test_select_real_synthetic_is_empty():
    from ispad_core.experiment import RunSpec

    assert select_real(RunSpec("synthetic", "-", "none", "resnet18", 0), np.array(["a", "b"])).size == 0


# --------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c["grid"].update(fractionz=[1]), "config: grid.fractionz: unknown key"),
        (lambda c: c.update(extra={}), "config: config.extra: unknown key"),
        (lambda c: c["data"].update(real="nowhere"), "config: data.real: folder .*nowhere does not exist"),
        (lambda c: c["data"].update(stream="missing.h5"), "config: data.stream: file .*missing.h5 does not exist"),
        (lambda c: c["grid"].update(fractions=[0.5, 0]), "config: grid.fractions\\[1\\]: expected a value in \\(0, 1\\], got 0"),
        (lambda c: c["grid"].update(fractions=["3/2"]), "config: grid.fractions\\[0\\]: expected a value in \\(0, 1\\], got 3/2"),
        (lambda c: c["train"].update(p_inj=0.5), "config: train.p_inj: expected a value in \\[1/B, 0.25\\] = \\[0.25, 0.25\\] for batch_size B = 4, got 0.5"),
        (lambda c: c["train"].update(p_inj="1/8"), "config: train.p_inj: expected a value in \\[1/B, 0.25\\]"),
        (lambda c: c["grid"].update(strategies=["mixd"]), "config: grid.strategies\\[0\\]: expected one of synthetic, mixed, oversampling, got 'mixd'"),
        (lambda c: c["grid"].update(groups=["scratches"]), "config: grid.groups\\[0\\]: group 'scratches' has no folder"),
        (lambda c: c["grid"].update(counts=[{"dots": 2}]), "config: grid.counts\\[0\\].dots: group 'dots' has no folder"),
        (lambda c: c["grid"].update(counts=[{"points": 7}]), "config: grid.counts\\[0\\].points: expected at most 6 \\(the points defects"),
        (lambda c: c["grid"].update(counts=[17]), "config: grid.counts\\[0\\]: expected at most 16 \\(the real defects"),
        (lambda c: c["grid"].update(counts=[0]), "config: grid.counts\\[0\\]: expected an integer >= 1, got 0"),
        (lambda c: c["train"].update(optimizer="adam"), "config: train.optimizer: expected sgd or adamw, got 'adam'"),
        (lambda c: c["grid"].update(seeds=[0, 0]), "config: grid.seeds: expected distinct seeds"),
        (lambda c: c["grid"].update(fractions=[], counts=[]), "config: grid.fractions: expected fractions or counts"),
        (lambda c: c["train"].update(steps=0), "config: train.steps: expected an integer >= 1, got 0"),
        (lambda c: c["grid"].update(backbones=["resnet19"]), "config: grid.backbones\\[0\\]: expected one of"),
        (lambda c: c["stream"].update(preset="blobs"), "config: stream.preset: expected one of"),
    ],
)
def test_bad_config_is_refused_before_training(bench, tmp_path, edit, match):
    config = _config(bench)
    config["train"]["batch_size"] = 4
    edit(config)

    def must_not_train(request, test_images):
        raise AssertionError("trained despite a bad config")

    with pytest.raises(ConfigError, match=match):
        run_experiment(config, tmp_path / "runs", verbose=False, trainer=must_not_train)
    assert not (tmp_path / "runs").exists()


def test_toml_file_relative_paths_and_check(bench, tmp_path):
    (tmp_path / "sub").mkdir()
    toml = tmp_path / "sub" / "exp.toml"
    rel = os.path.relpath(bench, toml.parent)  # relative to the config file's folder, not the cwd
    assert rel.startswith("..")
    toml.write_text(
        f'[data]\nbenchmark = "{rel}"\n[stream]\nn = 32\nsize = 32\n'
        '[grid]\nstrategies = ["synthetic", "mixed"]\ncounts = [{points = 5, area = 5}]\nseeds = [1, 2]\n'
        '[train]\np_inj = "1/32"\n'
    )
    config = load_config(toml)
    assert [r.name for r in config.runs()] == [
        "synthetic_none_none_resnet18_seed1",
        "synthetic_none_none_resnet18_seed2",
        "mixed_mixed_area5-points5_resnet18_seed1",
        "mixed_mixed_area5-points5_resnet18_seed2",
    ]
    assert config.train["p_inj"] == 1 / 32
    from tests.conftest import run_ispad

    assert "4 runs" in run_ispad("experiment", "--config", toml, "--out", tmp_path / "r", "--check").stdout
    assert not (tmp_path / "r").exists()
    toml.write_text("[grid\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(toml)


# --------------------------------------------------------------------------- scoring


@pytest.mark.parametrize("name", ["reproduction", "reproduction_fractions", "reproduction_long",
                                  "reproduction_long_augment", "reproduction_native", "reproduction_native_fractions"])
def test_the_documented_configs_are_valid(name, tmp_path):
    # docs/reproduction.md runs these against the benchmark made beside docs/: a copy beside a small one
    import shutil
    import tomllib
    from pathlib import Path

    docs = Path(__file__).resolve().parent.parent / "docs"
    native = "native" in name
    proxy_benchmark(tmp_path / ("proxy_native" if native else "proxy"), seed=0, size=64, n_scans=1, scan_side=128,
                    n_points=16, n_area=16, n_val=2, n_test=2, good_per_defective=2)
    (tmp_path / "docs").mkdir()
    toml = shutil.copy(docs / f"{name}.toml", tmp_path / "docs")
    config = load_config(toml)
    text = tomllib.loads((docs / f"{name}.toml").read_text())
    assert config.train["steps"] == text["train"]["steps"] and config.train["threads"] == text["train"]["threads"]
    # the native configs name the from-scratch default, under which reproduction.md's native grid ran
    # (a new default means rerunning that grid); the others, at x 3, have none
    assert config.train["curriculum"] == (FROM_SCRATCH_CURRICULUM if native else "none")
    assert len(config.runs()) == {"reproduction": 9, "reproduction_fractions": 21, "reproduction_long": 9,
                                  "reproduction_long_augment": 3, "reproduction_native": 9,
                                  "reproduction_native_fractions": 18}[name]


def test_scoring_uses_the_validation_threshold():
    val_labels = [0, 0, 0, 1, 1]
    val_scores = [0.1, 0.2, 0.4, 0.5, 0.9]  # F1-optimal threshold 0.5
    test_labels = [0, 0, 0, 0, 1, 1, 1]
    test_scores = [0.45, 0.55, 0.1, 0.2, 0.6, 0.49, 0.95]
    r = score_test_set(val_labels, val_scores, test_labels, test_scores,
                       test_groups=["good"] * 4 + ["area", "points", "area"])
    assert r["threshold"] == 0.5
    assert (r["tn"], r["fp"], r["fn"], r["tp"]) == (3, 1, 1, 2)
    assert r["recall_by_group"] == {"area": 100.0, "points": 0.0}
    assert r["val_mcc"] == 1.0
    known = score_test_set(None, None, test_labels, test_scores, threshold=0.5,
                           test_groups=["good"] * 4 + ["area", "points", "area"])
    assert {k: v for k, v in known.items() if k != "val_mcc"} == {k: v for k, v in r.items() if k != "val_mcc"}
    assert known["val_mcc"] is None
    with pytest.raises(ValueError, match="threshold: give either"):
        score_test_set(val_labels, val_scores, test_labels, test_scores, threshold=0.5)
    with pytest.raises(ValueError, match="test_groups: expected 7 groups"):
        score_test_set(val_labels, val_scores, test_labels, test_scores, test_groups=["good"])


def test_a_large_stream_is_read_from_its_file(bench, tmp_path, monkeypatch):
    import ispad_core.experiment.runner as ex

    config = _config(bench, strategies=["synthetic", "oversampling"], fractions=[1])
    config["train"]["curriculum"] = "none"  # a stream file, made from the scans
    seen = []

    def check(request, test_images):
        seen.append((request.run.strategy, request.stream_images is None, request.stream_path.is_file()))
        return fake_trainer(request, test_images)

    monkeypatch.setattr(ex, "_IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(ex, "_CACHE", {})
    run_experiment(config, tmp_path / "runs", verbose=False, trainer=check)
    assert seen == [("synthetic", True, True), ("oversampling", True, True)]


def test_oversampling_from_the_stream_file_trains(bench, tmp_path, monkeypatch):
    import ispad_core.experiment.runner as ex

    _needs_torch()
    monkeypatch.setattr(ex, "_IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(ex, "_CACHE", {})
    config = _config(bench, strategies=["oversampling"], fractions=[1])
    config["train"]["curriculum"] = "none"
    result = run_experiment(config, tmp_path / "runs", verbose=False)
    (report,) = result.reports
    assert report["n_real"] == 16 and report["training"]["steps"] == 1
    assert (tmp_path / "runs" / report["run"] / "model.pt").is_file()
    assert "curriculum" not in report["settings"]["train"]  # as in the reports of runs made before the option


# --------------------------------------------------------------------------- a curriculum on a stream drawn on the fly


def test_curriculum_auto_is_the_from_scratch_default_at_native_contrast(bench, tmp_path):
    from ispad_core._shared.recipes import FROM_SCRATCH_CURRICULUM

    assert load_config(_config(bench)).train["curriculum"] == FROM_SCRATCH_CURRICULUM
    native = _config(bench)
    native["stream"]["contrast"] = 3.0  # the defects made stronger by hand: no curriculum
    assert load_config(native).train["curriculum"] == "none"
    stream_file = tmp_path / "stream.h5"
    stream_file.write_bytes(b"")  # only its existence is checked here
    from_file = _config(bench)
    from_file["data"]["stream"] = str(stream_file)
    assert load_config(from_file).train["curriculum"] == "none"
    from_file["train"]["curriculum"] = "3:0.5"
    with pytest.raises(ConfigError, match=r"train\.curriculum: '3:0\.5' scales .* data\.stream is a file"):
        load_config(from_file)
    explicit = _config(bench)
    explicit["train"]["curriculum"] = "3:0.5:Cosine"
    assert load_config(explicit).train["curriculum"] == "3:0.5:cosine"
    explicit["train"]["curriculum"] = "None"
    assert load_config(explicit).train["curriculum"] == "none"


@pytest.mark.parametrize("value, match", [("3", "train.curriculum: expected START:FRACTION"), ("", "train.curriculum: expected auto"),
                                          (3, "train.curriculum: expected auto")])
def test_a_bad_curriculum_is_refused_naming_the_key(bench, value, match):
    _needs_torch()  # the text is checked by the models layer's parser
    config = _config(bench)
    config["train"]["curriculum"] = value
    with pytest.raises(ConfigError, match=match):
        load_config(config)


def test_each_run_draws_its_own_stream_and_no_file_is_written(bench, tmp_path, monkeypatch):
    import ispad_core.experiment.runner as ex
    from ispad_core.stream import SyntheticStream

    monkeypatch.setattr(ex, "_CACHE", {})
    config = _config(bench, strategies=["synthetic", "mixed"], fractions=[1])
    seen = []

    def check(request, test_images):
        seen.append(request.stream)
        assert request.stream_path is None and request.stream_images is None
        assert isinstance(request.stream, SyntheticStream) and request.stream.epoch == 0
        assert np.array_equal(request.stream_labels, request.stream.labels)
        return fake_trainer(request, test_images)

    out = tmp_path / "runs"
    result = run_experiment(config, out, verbose=False, trainer=check)
    assert len(seen) == 2 and seen[0] is not seen[1]  # a curriculum sets the gains of its run's stream only
    assert not (out / "_data").exists()
    stream = result.reports[0]["settings"]["stream"]
    assert stream["drawn"] == "on the fly" and stream["files"] == sorted(p.name for p in (bench / "scans").iterdir())
    assert result.reports[0]["settings"]["train"]["curriculum"] == "6:0.75:native"
    again = run_experiment(config, out, verbose=False, trainer=check)
    assert again.skipped == 2 and len(seen) == 2


def test_oversampling_on_a_drawn_stream_trains_under_the_curriculum(bench, tmp_path, monkeypatch):
    import ispad_core.experiment.runner as ex

    _needs_torch()
    from ispad_core.nn import load_model

    monkeypatch.setattr(ex, "_CACHE", {})
    config = _config(bench, strategies=["oversampling"], fractions=[1])
    config["train"].update(steps=2, threads=1)
    (report,) = run_experiment(config, tmp_path / "runs", verbose=False).reports
    assert report["training"]["steps"] == 2
    meta = load_model(tmp_path / "runs" / report["run"] / "model.pt")[1]
    assert meta["training"]["curriculum"]["start"] == 6.0


# --------------------------------------------------------------------------- per-design calibrated thresholds


@pytest.fixture(scope="module")
def cal_bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("calbench") / "proxy"
    proxy_benchmark(root, seed=1, **{**TINY_BENCH, "n_scans": 2})
    return root


def _cal_config(bench, rate=0.05):
    return {
        "data": {"benchmark": str(bench)},
        "stream": {"n": 32, "size": 32},
        "grid": {"strategies": ["synthetic"], "seeds": [0]},
        "train": {"steps": 2, "batch_size": 4, "p_inj": 0.25, "threads": 1},
        "calibration": {"target_fpr": rate},
    }


@pytest.mark.slow
def test_runs_are_scored_at_the_thresholds_calibrate_gives(cal_bench, tmp_path):
    _needs_torch()
    from ispad_core.io import read_mvtec
    from ispad_core.metrics import classification_report, f1_optimal_threshold, mcc
    from ispad_core.nn import calibrate

    out = tmp_path / "runs"
    result = run_experiment(_cal_config(cal_bench), out, verbose=False)
    (report,) = result.reports
    cal = report["calibrated"]
    designs = ["test_000_dots", "test_001_lines"]
    assert sorted(cal["thresholds"]) == designs and cal["target_fpr"] == 0.05
    for d in designs:  # the threshold is what nn.calibrate gives on that design's sheets
        c = calibrate(out / report["run"] / "model.pt", cal_bench / "calibration" / d, design=d, target_fpr=0.05,
                      verbose=False, precision="fp32")
        assert cal["thresholds"][d] == c.threshold and cal["n_windows"][d] == c.n_windows and cal["supported"][d]
    # every test patch at its own design's threshold
    test = read_mvtec(cal_bench / "test", split="test")
    table = dict(line.split(",") for line in (cal_bench / "test_designs.csv").read_text().splitlines()[1:])
    thr = np.array([cal["thresholds"][table[n]] for n in test.test_names])
    scores = np.array(report["test_scores"])
    pred = (scores >= thr).astype(int)
    assert cal["cal_mcc"] == pytest.approx(mcc(test.test_labels, pred))
    assert cal["cal_fp"] == int(pred[test.test_labels == 0].sum())
    assert cal["cal_fpr"] == pytest.approx(100 * pred[test.test_labels == 0].mean())
    assert cal["cal_fpr_ratio"] == pytest.approx(pred[test.test_labels == 0].mean() / 0.05)
    opt = f1_optimal_threshold(test.test_labels, scores)
    assert cal["opt_threshold"] == opt
    assert cal["opt_mcc"] == pytest.approx(classification_report(test.test_labels, scores, threshold=opt).mcc)
    rows = list(csv.DictReader((out / "results.csv").read_text().splitlines()))
    assert {"target_fpr", "cal_mcc", "cal_fpr", "cal_fpr_ratio", "opt_mcc", "cal_vs_opt", "cal_thresholds"} <= set(rows[0])
    assert float(rows[0]["cal_mcc"]) == pytest.approx(cal["cal_mcc"], abs=1e-5)
    assert "test_000_dots=" in rows[0]["cal_thresholds"]
    md = (out / "results.md").read_text()
    assert "At per-design calibrated thresholds (R = 0.05" in md and "| Goal met |" in md

    # a rerun keeps the calibration; another R calibrates the finished run again without training it
    def must_not_train(request, test_images):
        raise AssertionError("a finished run was trained again")

    again = run_experiment(_cal_config(cal_bench), out, verbose=False, trainer=must_not_train)
    assert again.reports[0]["calibrated"]["thresholds"] == cal["thresholds"]
    other = run_experiment(_cal_config(cal_bench, 0.2), out, verbose=False, trainer=must_not_train)
    cal2 = other.reports[0]["calibrated"]
    assert cal2["target_fpr"] == 0.2
    assert all(cal2["thresholds"][d] <= cal["thresholds"][d] for d in designs)
    assert json.loads((out / report["run"] / "report.json").read_text())["calibrated"]["target_fpr"] == 0.2


def test_new_sheets_in_the_same_folder_are_calibrated_on_again(cal_bench, tmp_path, monkeypatch):
    """A finished run's calibration is keyed by the sheets' content, not only their folder."""
    _needs_torch()
    import shutil

    from ispad_core.io import read_image, write_png

    bench = tmp_path / "proxy"
    shutil.copytree(cal_bench, bench)
    out = tmp_path / "runs"
    first = run_experiment(_cal_config(bench), out, verbose=False).reports[0]["calibrated"]

    def must_not_train(request, test_images):
        raise AssertionError("a finished run was trained again")

    # darker sheets of one design, written over the old ones: the threshold of that design moves
    sheets = sorted((bench / "calibration" / "test_000_dots").glob("*.png"))
    for f in sheets:
        im = read_image(f)
        write_png(f, (im // 2).astype(np.uint8), overwrite=True)
    again = run_experiment(_cal_config(bench), out, verbose=False, trainer=must_not_train).reports[0]["calibrated"]
    assert again["sheets_sha256"] != first["sheets_sha256"]
    assert again["thresholds"]["test_001_lines"] == first["thresholds"]["test_001_lines"]
    assert again["thresholds"]["test_000_dots"] != first["thresholds"]["test_000_dots"]
    # unchanged sheets: the stored calibration is kept (nothing is scored again)
    import ispad_core.experiment.runner as runner

    def must_not_calibrate(*args, **kwargs):
        raise AssertionError("calibrated again on unchanged sheets")

    monkeypatch.setattr(runner, "_calibrate", must_not_calibrate)
    same = run_experiment(_cal_config(bench), out, verbose=False, trainer=must_not_train).reports[0]["calibrated"]
    assert same == again


def test_the_sheets_digest_follows_content_and_designs(cal_bench, tmp_path):
    import shutil

    from ispad_core.experiment.calibrated import sheets_digest

    designs = ["test_000_dots", "test_001_lines", "test_000_dots"]
    cal = tmp_path / "calibration"
    shutil.copytree(cal_bench / "calibration", cal)
    d0 = sheets_digest(cal, designs)
    assert d0 == sheets_digest(cal_bench / "calibration", designs)  # content, not the folder's path
    assert sheets_digest(cal, designs[:2]) != d0  # the designs of the patches count
    f = sorted((cal / "test_001_lines").glob("*.png"))[0]
    f.write_bytes(f.read_bytes() + b"\0")
    assert sheets_digest(cal, designs) != d0
    with pytest.raises(ValueError, match="no folder for the test design 'nope'"):
        sheets_digest(cal, ["nope"])


def test_calibration_config_is_checked(cal_bench, bench):
    config = load_config(_cal_config(cal_bench))
    assert config.data["calibration"] == cal_bench / "calibration"
    assert config.data["test_designs"] == cal_bench / "test_designs.csv"
    assert load_config({**_cal_config(cal_bench), "calibration": {}}).calibration["target_fpr"] == 0.01
    assert load_config(_config(bench)).data["calibration"] is None  # a benchmark without sheets
    with pytest.raises(ConfigError, match="calibration.target_fpr"):
        load_config(_cal_config(cal_bench, 1.0))
    with pytest.raises(ConfigError, match="calibration.target_fpr"):
        load_config(_cal_config(cal_bench, 0))
    half = _config(bench)
    half["data"]["calibration"] = str(cal_bench / "calibration")
    with pytest.raises(ConfigError, match="data.test_designs: expected it with data.calibration"):
        load_config(half)


def test_test_designs_must_name_every_test_patch(tmp_path):
    from ispad_core.experiment.calibrated import read_test_designs

    path = tmp_path / "d.csv"
    path.write_text("file,design\ngood/000.png,a\npoints/000_blob.png,b\n")
    assert read_test_designs(path, ["points/000_blob.png", "good/000.png"]) == ("b", "a")
    with pytest.raises(ValueError, match="no design for 1 test patches, such as 'good/001.png'"):
        read_test_designs(path, ["good/000.png", "good/001.png"])
    path.write_text("name,design\n")
    with pytest.raises(ValueError, match="needs the columns file and design"):
        read_test_designs(path, [])


def test_train_amp_is_checked_and_recorded_as_the_precision_trained_in(bench, tmp_path, monkeypatch):
    import ispad_core.experiment.runner as ex

    config = _config(bench, strategies=["synthetic"])
    config["train"]["amp"] = "bf16"
    with pytest.raises(ConfigError, match=r"train\.amp: expected \"auto\", true or false, got 'bf16'"):
        load_config(config)
    monkeypatch.setattr(ex, "_CACHE", {})
    reports = {}
    for amp in ("auto", True):
        config["train"]["amp"] = amp
        (reports[amp],) = run_experiment(config, tmp_path / f"runs_{amp}", verbose=False, trainer=fake_trainer,
                                         device="cpu").reports
    # the precision trained in is recorded, fp32 left out as in the reports of runs made before the option
    has_torch = importlib.util.find_spec("torch") is not None  # without the models layer: a stand-in trainer, fp32
    if has_torch:
        from ispad_core.nn.runtime import cpu_has_bf16
    auto = "bf16" if has_torch and cpu_has_bf16() else "fp32"
    assert "amp" not in reports["auto"]["settings"]["train"]
    assert reports["auto"]["settings"]["train"].get("precision", "fp32") == auto
    assert reports[True]["settings"]["train"].get("precision", "fp32") == ("bf16" if has_torch else "fp32")


def test_a_run_another_process_trains_keeps_its_checkpoints(bench, tmp_path):
    # A run whose folder holds another writer's lock is left alone, even when its settings differ
    # from this grid's (which would otherwise clear what the folder holds): the lock comes first.
    from ispad_core._shared.files import OutputBusyError, exclusive_lock

    config = _config(bench, strategies=["synthetic"], fractions=[1])
    out = tmp_path / "runs"
    first = run_experiment(config, out, verbose=False, trainer=fake_trainer)
    run_dir = out / first.reports[0]["run"]
    (run_dir / "model.pt.ckpt").mkdir()
    (run_dir / "model.pt.ckpt" / "last.pt").write_bytes(b"another process's checkpoint")
    stamp = (run_dir / "settings.json").read_text()
    config["train"]["batch_size"] = 8  # other settings: this grid would retrain the run
    with exclusive_lock(run_dir / "report.json", name="run"):
        with pytest.raises(OutputBusyError, match="report.json"):
            run_experiment(config, out, verbose=False, trainer=fake_trainer)
    assert (run_dir / "model.pt.ckpt" / "last.pt").read_bytes() == b"another process's checkpoint"
    assert (run_dir / "settings.json").read_text() == stamp and (run_dir / "report.json").is_file()
    again = run_experiment(config, out, verbose=False, trainer=fake_trainer)  # the lock released: retrained
    assert again.ran == 1 and not (run_dir / "model.pt.ckpt").exists()
