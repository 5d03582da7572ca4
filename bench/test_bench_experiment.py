"""``ispad experiment --jobs 2`` beside ``--jobs 1``: the same 4-run grid, wall time and ratio.

Run:  python -m pytest bench/test_bench_experiment.py -s      (about 4 minutes on 2 CPU cores)
(with ``--benchmark-disable`` everything runs once on a tiny workload, so CI keeps the file alive.)

The grid: mixed injection and oversampling with 5 point + 5 area defects of the built-in
benchmark, seeds 0 and 1 (4 runs), ResNet-18 at 64 x 64, 40 steps of batch 32 from a stream of
1 024 patches, each run scored on the benchmark's validation and test sets (336 and 840 patches).
Every grid is written to a fresh folder, so nothing is skipped.

1. ``train.threads = 1``: every run on one core, in this process (``--jobs 1``) or in one of
   two worker processes (``--jobs 2``). The ratio jobs 2 / jobs 1 is the speed-up the runner's
   processes give; on a machine with two free cores it should be at most 0.6. The two grids'
   results must be the same numbers (asserted: fixed threads make a run the same computation
   wherever it runs).
2. ``train.threads`` unset: ``--jobs 1`` lets torch use every core for each run, ``--jobs 2``
   gives each worker its share. This is what a user who does not set threads gets; on a
   machine whose cores torch already keeps busy, processes add little.

Each line also prints the runner's own "time besides training" (loading, scoring, writing).
"""

from __future__ import annotations

import os
import time

import pytest

pytest.importorskip("torch")

from ispad_core.experiment import run_experiment  # noqa: E402
from ispad_core.samples.proxy import proxy_benchmark  # noqa: E402

TINY = dict(size=32, n_scans=1, scan_side=96, n_points=6, n_area=10, n_val=4, n_test=6, good_per_defective=4)


@pytest.fixture(scope="module")
def setting(tmp_path_factory, request):
    disabled = request.config.getoption("benchmark_disable", False)
    root = tmp_path_factory.mktemp("bench_experiment")
    if disabled:
        proxy_benchmark(root / "proxy", seed=0, **TINY)
        stream, counts, steps = {"n": 32, "size": 32}, {"points": 2, "area": 2}, 1
    else:
        proxy_benchmark(root / "proxy", seed=0, contrast=3.0)
        stream, counts, steps = {"n": 1024, "size": 64, "contrast": 3.0}, {"points": 5, "area": 5}, 40
    config = {
        "data": {"benchmark": str(root / "proxy")},
        "stream": stream,
        "grid": {"strategies": ["mixed", "oversampling"], "counts": [counts], "seeds": [0, 1]},
        # a stream file made once (no curriculum, which would draw it on the fly), as the x 3 workload has
        "train": {"steps": steps, "batch_size": 32 if not disabled else 4, "p_inj": "1/32" if not disabled else 0.25,
                  "val_every": steps, "curriculum": "none"},
    }
    # the stream is made once, outside the timings, and shared by every grid through a copy of its folder
    run_experiment({**config, "grid": {**config["grid"], "strategies": ["synthetic"], "seeds": [0]},
                    "train": {**config["train"], "steps": 1}}, root / "warm", verbose=False)
    return root, config, disabled


def _grid(root, config, jobs: int, name: str):
    import shutil

    out = root / name
    shutil.copytree(root / "warm" / "_data", out / "_data")
    t0 = time.perf_counter()
    result = run_experiment(config, out, jobs=jobs, verbose=False)
    return result, time.perf_counter() - t0


def _line(label: str, result, seconds: float) -> str:
    return (f"{label:<34} {seconds:7.1f} s   time besides training {100 * result.overhead:5.1f} %")


@pytest.mark.parametrize("threads", [1, None], ids=["threads1", "threads-default"])
def test_two_jobs_beside_one(benchmark, setting, threads):
    root, config, disabled = setting
    if disabled and threads is None:
        pytest.skip("the tiny workload runs one case: the code path is the same")
    config = {**config, "train": {**config["train"], "threads": threads}}
    tag = "t1" if threads else "td"
    two, t_two = benchmark.pedantic(_grid, args=(root, config, 2, f"{tag}_jobs2"), rounds=1, iterations=1)
    one, t_one = _grid(root, config, 1, f"{tag}_jobs1")
    assert one.ran == two.ran == 4
    if threads is not None:  # the same computation in a worker process
        assert [r["test_scores"] for r in two.reports] == [r["test_scores"] for r in one.reports]
    if disabled:
        return
    which = "train.threads = 1" if threads else "train.threads unset (torch's default per process)"
    print(f"\n4-run grid, {config['train']['steps']} steps each, {os.cpu_count()} CPUs, {which}")
    print(_line("--jobs 1", one, t_one))
    print(_line("--jobs 2", two, t_two))
    print(f"jobs 2 / jobs 1: {t_two / t_one:.2f}x")
