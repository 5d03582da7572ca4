"""Speed and memory of the pixel-level metrics on an ISP-AD-sized test split.

Workload (the size of an ISP-AD test split): 1565 anomaly maps of 256 x 256 float32 (102.6 M scores) from seed 0, 95 of
them with 1 to 3 blob- or filament-shaped ground-truth regions of 5 to 2000 pixels
(``ispad_core.metrics._demo.demo_maps``). Baseline: one ``np.sort`` of the same scores, timed
in the same run, interleaved with our rounds. Goals: ``au_pro`` (in memory) and
``au_pro_batches`` (the same maps in batches of 64, one pass) at most 1x the sort, peak memory
< 1 GB; ``pixel_roc_auc`` <= 3x the sort. The literal reference (argsort of every pixel) is timed
once beside them. A memory entry feeds ``PixelMetrics`` 10 and then 40 batches of freshly drawn
maps and prints what it holds: it must not grow with the number of maps.

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

from ispad_core.metrics import PixelMetrics, au_pro, au_pro_batches, pixel_roc_auc
from ispad_core.metrics._demo import demo_maps
from tests.reference.metrics_ref import au_pro_ref, pixel_roc_auc_ref

FULL_WORKLOAD = {"n_maps": 1565, "shape": (256, 256), "n_defective": 95, "region_size": (5, 2000), "rng": 0}
SMALL_WORKLOAD = {"n_maps": 40, "shape": (64, 64), "n_defective": 6, "region_size": (5, 300), "rng": 0}
ROUNDS = 3
BATCH = 64  # maps per batch for the batched form (4.2 M scores of this workload)


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
        f"{maps.size / 1e6:.1f} M scores); peak {peak / 2**20:.1f} MiB  [goal <= 1x, < 1 GB]"
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


def _batches(maps, masks):
    return ((maps[i : i + BATCH], masks[i : i + BATCH]) for i in range(0, len(maps), BATCH))


def test_bench_au_pro_batches(benchmark, workload, say):
    """The same maps fed in batches (one pass, as from a data loader), beside one np.sort."""
    maps, masks = workload.anomaly_maps, workload.masks

    def batched(maps, masks):
        return au_pro_batches(_batches(maps, masks))

    value = batched(maps, masks)  # warm-up
    assert value == au_pro(maps, masks)
    if benchmark.disabled:
        benchmark(batched, maps, masks)
        assert abs(value - au_pro_ref(maps, masks)) <= 1e-9
        return
    ours, sort_s = _timed_against_sort(benchmark, batched, maps, masks)
    peak = _peak_bytes(lambda: batched(maps, masks))
    ratio = ours / sort_s
    benchmark.extra_info.update(
        au_pro=value, np_sort_s=sort_s, ratio_to_sort=ratio, peak_mib=peak / 2**20, batch_maps=BATCH
    )
    say(
        f"au_pro_batches {value:.6f} (== au_pro), batches of {BATCH} maps: {ours:.3f} s = {ratio:.2f} x one "
        f"np.sort ({sort_s:.3f} s); peak {peak / 2**20:.1f} MiB  [goal <= 1x]"
    )


def test_bench_pixel_metrics_memory_over_batches(benchmark, say):
    """PixelMetrics after 10, 40 and 160 batches of freshly drawn maps (64 of 256 x 256 each):
    what it holds grows with the distinct scores seen until their octaves are full, not with the
    number of maps."""
    small = benchmark.disabled
    n_maps, shape, n_batches = (8, (64, 64), 16) if small else (BATCH, (256, 256), 160)
    pm = PixelMetrics()
    held = {}
    t0 = time.perf_counter()
    for i in range(n_batches):
        d = demo_maps(n_maps, shape, n_maps // 16 + 1, region_size=(5, 200 if small else 2000), rng=1000 + i)
        pm.update(d.anomaly_maps, d.masks)
        if i + 1 in (n_batches // 16, n_batches // 4, n_batches):
            pm.pixel_roc_auc()  # counts everything staged
            held[(i + 1) * n_maps] = pm.nbytes
    elapsed = time.perf_counter() - t0
    value = benchmark.pedantic(pm.au_pro, rounds=1, iterations=1)
    assert 0.0 <= value <= 1.0
    benchmark.extra_info.update({f"held_mib_{k}_maps": v / 2**20 for k, v in held.items()})
    figures = ", ".join(f"{v / 2**20:.1f} MiB after {k} maps" for k, v in held.items())
    say(
        f"PixelMetrics holds {figures} ({pm.n_anomaly_free / 1e6:.0f} M anomaly-free pixels; "
        f"{elapsed:.1f} s with drawing the maps)"
    )
