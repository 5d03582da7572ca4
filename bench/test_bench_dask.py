"""Writing the balanced stream on a Dask LocalCluster beside one process, in the same run.

Workload: the ``ispad synth`` defaults on the built-in sample (four 640 x 640 screen prints),
``n = 4096`` patches of 256 x 256, preset ``mixed``, augmentation ``lsm1``, seed 0. Baseline: one
process with one Numba thread (:func:`ispad_core.stream.write_balanced_stream`). Contender: a
``LocalCluster`` of two worker processes with one thread and one Numba thread each, the stream in
8 parts, merged (:func:`ispad_core.stream.dask.write_balanced_stream_distributed`); the wall time
includes sending the images, the merge and removing the parts. On ``w`` free cores the ideal
ratio is ``w``; it is printed beside the number of CPUs the machine has, since other load on a
shared machine lowers it.

Run (prints the figures)::

    python -m pytest bench/test_bench_dask.py

Under ``--benchmark-disable`` (CI) a small workload runs once and its bytes are checked against
one process.
"""

from __future__ import annotations

import os
import time

import numba
import pytest

distributed = pytest.importorskip("distributed", reason='needs the [dask] extra: pip install "ispad-core[dask]"')

from ispad_core.stream.dask import write_balanced_stream_distributed  # noqa: E402
from ispad_core.stream import write_balanced_stream  # noqa: E402

FULL = {"n": 4096, "size": 256, "parts": 8}
SMALL = {"n": 24, "size": 64, "parts": 3}
WORKERS = 2


@pytest.fixture(scope="module")
def workload(benchmarks_disabled):
    return SMALL if benchmarks_disabled else FULL


@pytest.fixture(scope="module")
def client():
    # one Numba thread per worker: the workers, not Numba, share out the cores
    with (
        distributed.LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=50,
            env={"NUMBA_NUM_THREADS": "1"},
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_bench_dask_local_cluster(benchmark, workload, sample, client, tmp_path, say):
    n, size, parts = workload["n"], workload["size"], workload["parts"]
    # warm-up on both sides: loads every kernel in this process and in each worker
    write_balanced_stream(tmp_path / "warm.h5", sample, 8, size=size, seed=1)
    write_balanced_stream_distributed(tmp_path / "warm-d.h5", sample, 2 * WORKERS, client=client, parts=WORKERS, size=size, seed=1)
    counter = iter(range(100))

    summaries = []

    def distributed_write():
        out = tmp_path / f"d{next(counter)}.h5"
        summaries.append(write_balanced_stream_distributed(out, sample, n, client=client, parts=parts, size=size, seed=0))
        return out

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one_s = float("inf")
        for k in range(1 if benchmark.disabled else 2):  # best of two, as the cluster's rounds
            t0 = time.perf_counter()
            one = write_balanced_stream(tmp_path / f"one{k}.h5", sample, n, size=size, seed=0).path
            one_s = min(one_s, time.perf_counter() - t0)
    finally:
        numba.set_num_threads(before)
    if benchmark.disabled:
        out = benchmark(distributed_write)
        assert out.read_bytes() == one.read_bytes()
        return
    benchmark.pedantic(distributed_write, rounds=2, iterations=1)
    dist_s = benchmark.stats.stats.min
    merge_s = min(s.timings["merge"] for s in summaries)
    assert (tmp_path / "d0.h5").read_bytes() == one.read_bytes()
    benchmark.extra_info.update(
        one_process_patches_per_s=n / one_s, cluster_patches_per_s=n / dist_s, ratio=one_s / dist_s, merge_s=merge_s,
        cpus=os.cpu_count(),
    )
    say(
        f"{n} patches of {size}^2: one process, one Numba thread {n / one_s:,.0f} patches/s; LocalCluster of "
        f"{WORKERS} worker processes, {parts} parts, merge included {n / dist_s:,.0f} patches/s = "
        f"{one_s / dist_s:.2f} x one process; the merge took {merge_s:.2f} s (machine: {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end)"
    )
