"""``bench/gpu_check.py --tiny`` runs on the CPU and writes a complete report, so that the GPU check
cannot rot before a GPU is there to run it: every figure is a positive number or a recorded error.

The run is one subprocess of the command as documented (about a minute on 2 cores).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"
BACKBONES = ("resnet18", "resnet50", "efficientnet_b0", "efficientnet_b4", "convnext_tiny")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _figures_or_error(row: dict, figures: tuple[str, ...]) -> None:
    """Either no error and every figure positive, or an error string and no figure."""
    if row["error"] is None:
        bad = {k: row[k] for k in figures if not _positive(row[k])}
        assert not bad, (bad, row)
    else:
        assert isinstance(row["error"], str) and row["error"].strip(), row
        assert all(row[k] is None for k in figures), row


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--tiny", "--device", "cpu"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.slow
def test_tiny_run_writes_the_whole_report(tiny_run):
    report, stdout = tiny_run
    assert report["schema"] == "ispad-gpu-check/1" and report["tiny"] is True and report["device"] == "cpu"
    assert report["sizes"]["patch"] == 32 and _positive(report["elapsed_s"])

    rows = report["throughput"]
    assert sorted((r["backbone"], r["variant"]) for r in rows) == sorted(
        (b, v) for b in BACKBONES for v in ("fp32", "bf16", "bf16+cl", "bf16+cl+compile"))
    for r in rows:
        _figures_or_error(r, ("patches_per_s",))
        if r["error"] is None:
            assert r["patches_per_s_std"] >= 0 and len(r["per_cycle"]) == report["sizes"]["cycles"]
    # the uncompiled variants of every backbone must work on any CPU
    assert all(r["error"] is None for r in rows if not r["compiled"]), [r for r in rows if r["error"]]

    ins = report["inspect"]
    _figures_or_error(ins, ("windows", "wall_s", "windows_per_s", "forward_s", "forward_windows_per_s"))
    assert ins["error"] is None and ins["scan_shape"] == [512, 512]
    assert ins["windows_per_s"] == pytest.approx(ins["windows"] / ins["wall_s"])

    data = report["data"]
    _figures_or_error(data["training"], ("items_per_s",))
    assert [s["source"] for s in data["sources"]] == ["SyntheticStream", "stream file"]
    for s in data["sources"]:
        _figures_or_error(s, ("items_per_s", "ratio_to_training"))
        if s["error"] is None:
            assert s["ratio_to_training"] == pytest.approx(s["items_per_s"] / data["training"]["items_per_s"])
            assert s["keeps_device_fed"] == (s["ratio_to_training"] >= 1.0)

    goals = report["goals"]
    assert [g["target"] for g in goals] == [30000.0, 2.0, 1.5, 1.5]
    for g in goals:
        assert g["value"] is None or _positive(g["value"]), g
        assert g["met"] is None  # a tiny CPU run judges no goal
    assert "| goal | target | measured | met |" in stdout and "| throughput | resnet18 fp32 |" in stdout


def test_refuses_to_replace_a_file_without_overwrite(tmp_path):
    spec = importlib.util.spec_from_file_location("_gpu_check_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    out = tmp_path / "gpu_check.json"
    out.write_text("mine")
    with pytest.raises(FileExistsError):
        module.main(["--out", str(out), "--tiny"])
    assert out.read_text() == "mine"
