"""``ispad inspect`` of one large scan: peak resident memory and the time outside the forward pass.

Run:  python -m pytest bench/test_bench_inspect_memory.py -s     (about 2 minutes on 2 cores)
      ISPAD_BENCH_SCAN_SIDE=13000 ISPAD_BENCH_PATCH=256 ... for the paper's scan and window

The suite writes a ``side x side`` uint8 scan (default 13 000, the paper's 1 m2 at 75 um; noise
around mid-grey, so the PNG is about as large as the pixels, the worst case for reading) and an
untrained ResNet-18 model file (the weights do not change the work; default 64 px windows), then
runs the command as a user does, in a fresh process, at the default stride, and reads:

- the command's peak resident memory (``ru_maxrss`` of the child), beside a baseline process that
  only imports the library and loads the same model file: ``peak - baseline`` is what inspecting
  the scan costs, reported as a multiple of the scan's bytes (goal: at most 2x the scan + 300 MB);
- from the scan's JSON report, the seconds outside the network's forward pass (reading, windows,
  preprocessing not hidden behind the network, overlay, writing) as a share of ``forward_s``
  (goal: at most 10 %).

With ``--benchmark-disable`` (CI) everything runs once on a 512 x 512 scan with 32 px windows, so
the code cannot rot; the figures are then printed but mean little.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core.io import write_png  # noqa: E402
from ispad_core.nn import Preprocess, classifier, save_model  # noqa: E402

GOAL_WORKING_MB, GOAL_OVERHEAD = 300, 0.10


def _child_peak_mb(args: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """Run ``args`` in a fresh process; its peak resident memory (MB) and wall seconds."""
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t)"
    )
    # a wrapper process per measurement: RUSAGE_CHILDREN is the largest child so far, never reset
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, env=env,
                         cwd=cwd)
    kb, seconds = out.stdout.split()
    return int(kb) / 1024, float(seconds)


@pytest.fixture(scope="module")
def workload(tmp_path_factory, benchmarks_disabled):
    side = 512 if benchmarks_disabled else int(os.environ.get("ISPAD_BENCH_SCAN_SIDE", 13_000))
    patch = 32 if benchmarks_disabled else int(os.environ.get("ISPAD_BENCH_PATCH", 64))
    root = tmp_path_factory.mktemp("inspect_memory")
    (root / "scans").mkdir()
    rng = np.random.default_rng(0)
    scan = np.empty((side, side), dtype=np.uint8)
    for r in range(0, side, 1024):  # drawn a band at a time: the suite itself stays small
        scan[r : r + 1024] = rng.integers(100, 140, (min(1024, side - r), side), dtype=np.uint8)
    write_png(root / "scans" / "scan.png", scan)
    del scan
    torch.manual_seed(0)
    meta = {"backbone": "resnet18", "backbone_kwargs": {}, "in_channels": 1, "num_classes": 2, "dropout": 0.1,
            "patch_size": patch, "preprocess": Preprocess().to_dict(), "threshold": 0.5}
    save_model(root / "model.pt", classifier("resnet18", in_channels=1), metadata=meta)
    env = dict(os.environ, ISPAD_MAX_IMAGE_PIXELS="none", OMP_WAIT_POLICY="PASSIVE")
    return root, side, patch, env


def test_inspect_peak_memory_and_overhead(benchmark, workload, say):
    root, side, patch, env = workload
    load_only = [sys.executable, "-c",
                 "import sys; from ispad_core.nn import load_model; load_model(sys.argv[1])", str(root / "model.pt")]
    command = [sys.executable, "-m", "ispad_core", "inspect", str(root / "scans"), "--model", str(root / "model.pt"),
               "--out", str(root / "out"), "--overwrite", "--quiet"]
    base_mb, _ = _child_peak_mb(load_only, env, root)  # in the workload's folder: PYTHONPATH picks the library
    result = {}

    def run():
        result["peak_mb"], result["wall_s"] = _child_peak_mb(command, env, root)

    benchmark.pedantic(run, rounds=1, iterations=1)
    report = json.loads((root / "out" / "scan.json").read_text())
    t = report["timings"]
    scan_mb = side * side / 2**20
    working_mb = result["peak_mb"] - base_mb
    outside = t["read_s"] + (t["total_s"] - t["forward_s"]) + t["overlay_s"] + t["write_s"]
    windows = report["windows"]["inspected"]
    benchmark.extra_info.update(scan_mb=scan_mb, peak_mb=result["peak_mb"], baseline_mb=base_mb,
                                working_mb=working_mb, forward_s=t["forward_s"], outside_s=outside)
    say(f"ispad inspect of a {side} x {side} uint8 scan ({scan_mb:.0f} MiB), {windows} windows of {patch} px at "
        f"the default stride {report['windows']['stride']}, {torch.get_num_threads()} torch threads, "
        f"{result['wall_s']:.1f} s wall")
    say(f"  peak resident {result['peak_mb']:.0f} MiB; a process that only loads the model: {base_mb:.0f} MiB; "
        f"inspecting costs {working_mb:.0f} MiB = {working_mb / scan_mb:.2f}x the scan "
        f"(goal: at most 2x the scan + {GOAL_WORKING_MB} MiB = {2 * scan_mb + GOAL_WORKING_MB:.0f} MiB)")
    parts = ", ".join(f"{k[:-2]} {t[k]:.2f}" for k in ("read_s", "wait_s", "overlay_s", "write_s"))
    say(f"  outside the forward pass: {outside:.2f} s ({parts}, the rest of inspect "
        f"{t['total_s'] - t['forward_s'] - t['wait_s']:.2f}) = {100 * outside / t['forward_s']:.1f}% of the "
        f"forward pass's {t['forward_s']:.1f} s (goal at most {100 * GOAL_OVERHEAD:.0f}%)")
    assert windows > 0 and result["peak_mb"] > base_mb > 0
