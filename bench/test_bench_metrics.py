"""Speed and memory of the pixel-level metrics on an ISP-AD-sized test split.

Workload (the size of an ISP-AD test split): 1565 anomaly maps of 256 x 256 float32 (102.6 M scores) from seed 0, 95 of
them with 1 to 3 blob- or filament-shaped ground-truth regions of 5 to 2000 pixels
(``ispad_core.metrics._demo.demo_maps``). Baseline: one ``np.sort`` of the same scores, timed
in the same run, interleaved with our rounds. Goals: ``au_pro`` <= 2x the sort with peak memory
< 1 GB, ``pixel_roc_auc`` <= 3x the sort. The literal reference (argsort of every pixel) is
timed once beside them.

Run (prints the ratios)::

    python -m pytest bench/test_bench_metrics.py

Under ``--benchmark-disable`` (CI) a small workload is used and the results are checked against
the reference instead.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from ispad_core.metrics import au_pro, pixel_roc_auc
from ispad_core.metrics._demo import demo_maps
from tests.reference.metrics_ref import au_pro_ref, pixel_roc_auc_ref

FULL_WORKLOAD = {"n_maps": 1565, "shape": (256, 256), "n_defective": 95, "region_size": (5, 2000), "rng": 0}
SMALL_WORKLOAD = {"n_maps": 40, "shape": (64, 64), "n_defective": 6, "region_size": (5, 300), "rng": 0}
ROUNDS = 3


@pytest.fixture(scope="module")
def workload(request):
    small = request.config.getoption("benchmark_disable")
    return demo_maps(**(SMALL_WORKLOAD if small else FULL_WORKLOAD))


def _peak_bytes(func) -> int:
    """Peak of the memory allocated through Python/NumPy during one call (inputs excluded)."""
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _timed_against_sort(benchmark, func, maps, masks):
    """Benchmark ``func`` with one np.sort of the same scores timed before each round."""
    flat = maps.reshape(-1)
    sort_times = []

    def sort_round():
        t0 = time.perf_counter()
        np.sort(flat)
        sort_times.append(time.perf_counter() - t0)
        return (maps, masks), {}

    benchmark.pedantic(func, setup=sort_round, rounds=ROUNDS, iterations=1)
    return benchmark.stats.stats.min, min(sort_times)


def test_bench_au_pro(benchmark, workload, say):
    maps, masks = workload.anomaly_maps, workload.masks
    value = au_pro(maps, masks)  # warm-up: loads or compiles the Numba kernels
    if benchmark.disabled:
        benchmark(au_pro, maps, masks)
        assert abs(value - au_pro_ref(maps, masks)) <= 1e-9
        return
    ours, sort_s = _timed_against_sort(benchmark, au_pro, maps, masks)
    peak = _peak_bytes(lambda: au_pro(maps, masks))
    ratio = ours / sort_s
    benchmark.extra_info.update(
        au_pro=value, np_sort_s=sort_s, ratio_to_sort=ratio, peak_mib=peak / 2**20, n_scores=maps.size
    )
    say(
        f"au_pro {value:.6f}: {ours:.3f} s = {ratio:.2f} x one np.sort ({sort_s:.3f} s, "
        f"{maps.size / 1e6:.1f} M scores); peak {peak / 2**20:.1f} MiB  [goal <= 2x, < 1 GB]"
    )


def test_bench_pixel_roc_auc(benchmark, workload, say):
    maps, masks = workload.anomaly_maps, workload.masks
    value = pixel_roc_auc(maps, masks)  # warm-up
    if benchmark.disabled:
        benchmark(pixel_roc_auc, maps, masks)
        assert abs(value - pixel_roc_auc_ref(maps, masks)) <= 1e-12
        return
    ours, sort_s = _timed_against_sort(benchmark, pixel_roc_auc, maps, masks)
    peak = _peak_bytes(lambda: pixel_roc_auc(maps, masks))
    ratio = ours / sort_s
    benchmark.extra_info.update(
        pixel_auroc=value, np_sort_s=sort_s, ratio_to_sort=ratio, peak_mib=peak / 2**20, n_scores=maps.size
    )
    say(
        f"pixel_roc_auc {value:.6f}: {ours:.3f} s = {ratio:.2f} x one np.sort ({sort_s:.3f} s); "
        f"peak {peak / 2**20:.1f} MiB  [goal <= 3x]"
    )


def test_bench_au_pro_reference(benchmark, workload, say):
    """The literal argsort reference, once (pure NumPy, nothing to warm up), beside ours."""
    maps, masks = workload.anomaly_maps, workload.masks
    ours_value = au_pro(maps, masks)  # warm-up
    t0 = time.perf_counter()
    au_pro(maps, masks)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    np.sort(maps.reshape(-1))
    sort_s = time.perf_counter() - t0
    if benchmark.disabled:
        ref_value = benchmark(au_pro_ref, maps, masks)
        assert abs(ours_value - ref_value) <= 1e-9
        return
    tracemalloc.start()
    try:
        ref_value = benchmark.pedantic(au_pro_ref, args=(maps, masks), rounds=1, iterations=1)
        ref_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    ref_s = benchmark.stats.stats.min
    assert abs(ours_value - ref_value) <= 1e-9
    benchmark.extra_info.update(
        reference_s=ref_s, ours_s=ours, np_sort_s=sort_s, speedup=ref_s / ours, reference_peak_mib=ref_peak / 2**20
    )
    say(
        f"reference au_pro (argsort of all pixels): {ref_s:.2f} s, peak {ref_peak / 2**30:.2f} GiB "
        f"(traced, under tracemalloc) = {ref_s / sort_s:.1f} x np.sort; "
        f"ours {ours:.3f} s ({ref_s / ours:.0f} x faster), |difference| {abs(ours_value - ref_value):.1e}"
    )
