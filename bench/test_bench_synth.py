"""Speed of the synthesizer beside DRAEM-style Perlin anomalies, one core, 256 x 256 patches.

Run:  python -m pytest bench/test_bench_synth.py -s --benchmark-columns=min,median,rounds
(``-s`` shows the summary lines; with ``--benchmark-disable`` every test runs once on a small
workload, which is how CI keeps this file from rotting). On a shared machine add
``--benchmark-timer=time.process_time``: every figure here, the peer's included, then counts the
CPU time of this process (one thread), not the time other jobs held the core.

Everything runs on one Numba thread (``numba.set_num_threads(1)``). Rates count *accepted*
defects per second of wall time, including the patch copy and redrawn invisible defects; the
Perlin peer counts patches per second (its masks are almost never empty).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

import numba
import numpy as np
import pytest

from bench.peers.perlin import perlin_anomaly, perlin_noise, perlin_noise_literal
from ispad_core.samples import KINDS, screen_print
from ispad_core.synth import PRESETS, synthesize_batch

SIZE = 256
N_BACKGROUNDS = 64
N_ITEMS = 512  # per timed synthesize_batch call
N_PEER = 24  # Perlin anomalies per timed round
GOAL_RATIO = 60.0
GOAL_RATE = 15_000.0

_peer: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


@pytest.fixture(scope="module")
def backgrounds():
    return np.stack(
        [screen_print((SIZE, SIZE), rng=1000 + i, kind=KINDS[i % len(KINDS)]) for i in range(N_BACKGROUNDS)]
    )


def _items(backgrounds, n):
    reps = -(-n // len(backgrounds))
    return np.ascontiguousarray(np.concatenate([backgrounds] * reps)[:n])


def _best(fn, rounds, timer=time.perf_counter):
    """Best time of ``rounds`` calls (after one warm-up call), with the benchmark's timer."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        t = timer()
        fn()
        best = min(best, timer() - t)
    return best


def _peer_rate(backgrounds, small: bool, timer) -> float:
    key = "small" if small else "full"
    if key not in _peer:
        n = 2 if small else N_PEER
        rng = np.random.default_rng(0)

        def run():
            for i in range(n):
                perlin_anomaly(backgrounds[i % len(backgrounds)], backgrounds[(i + 7) % len(backgrounds)], rng)

        _peer[key] = n / _best(run, 1 if small else 3, timer)
    return _peer[key]


@pytest.mark.parametrize("res", [(1, 1), (2, 8), (32, 4)])
def test_perlin_peer_is_the_published_recipe(res):
    """The timed peer's vectorised noise equals DRAEM's rand_perlin_2d_np transcribed line by line
    (same draws, same values), so the speed ratio compares against the real recipe."""
    fast = perlin_noise((64, 64), res, np.random.default_rng(3))
    literal = perlin_noise_literal((64, 64), res, np.random.default_rng(3))
    np.testing.assert_allclose(fast, literal, rtol=0, atol=1e-12)
    assert fast.std() > 0.05


def test_perlin_peer(benchmark, backgrounds):
    """The baseline: DRAEM's Perlin anomaly recipe in NumPy (bench/peers/perlin.py)."""
    n = 2 if benchmark.disabled else N_PEER
    rng = np.random.default_rng(1)

    def run():
        for i in range(n):
            perlin_anomaly(backgrounds[i % len(backgrounds)], backgrounds[(i + 7) % len(backgrounds)], rng)

    run()
    benchmark.pedantic(run, rounds=1 if benchmark.disabled else 3, iterations=1)
    if not benchmark.disabled:
        rate = n / benchmark.stats.stats.min
        benchmark.extra_info["patches_per_s"] = round(rate, 1)
        print(f"\nperlin peer: {rate:8.1f} patches/s per core")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_synthesize_batch_preset(benchmark, backgrounds, name):
    """Accepted defects per second for each preset, and the ratio to the Perlin peer."""
    small = benchmark.disabled
    patches = _items(backgrounds, 8 if small else N_ITEMS)
    synthesize_batch(patches[:4], name, rng=0, warn=False)  # warm-up (compile or cache load)
    res = benchmark.pedantic(
        synthesize_batch, args=(patches, name), kwargs={"rng": 1, "warn": False},
        rounds=1 if small else 5, iterations=1,
    )
    assert res.accepted.mean() > (0.5 if small else 0.9)
    if small:
        return
    rate = res.accepted.sum() / benchmark.stats.stats.min
    peer = _peer_rate(backgrounds, small=False, timer=getattr(benchmark, "_timer", time.perf_counter))
    ratio = rate / peer
    benchmark.extra_info.update(
        accepted_per_s=round(rate), perlin_patches_per_s=round(peer, 1), ratio=round(ratio, 1),
        mean_attempts=round(float(res.attempts.mean()), 3), accepted_fraction=round(float(res.accepted.mean()), 4),
    )
    print(
        f"\n{name:13s} {rate:9.0f} accepted/s per core  {ratio:6.1f} x Perlin ({peer:.0f}/s)"
        f"  attempts {res.attempts.mean():.2f}  accepted {res.accepted.mean():.1%}"
    )
    if name == "mixed":
        print(f"mixed goals: >= {GOAL_RATIO:.0f} x Perlin -> {ratio:.1f} x; >= {GOAL_RATE:.0f}/s -> {rate:.0f}/s")


def test_patch_copy_floor(benchmark, backgrounds):
    """What a batch costs with no defect requested: the copy of the patches and the empty masks."""
    small = benchmark.disabled
    patches = _items(backgrounds, 8 if small else N_ITEMS)
    none = np.zeros(len(patches), bool)
    synthesize_batch(patches, "mixed", rng=0, defective=none)
    benchmark.pedantic(
        synthesize_batch, args=(patches, "mixed"), kwargs={"rng": 0, "defective": none},
        rounds=1 if small else 5, iterations=1,
    )
    if not small:
        per = benchmark.stats.stats.min / len(patches) * 1e6
        benchmark.extra_info["us_per_patch"] = round(per, 2)
        print(f"\ncopy floor: {per:.2f} us per 256 x 256 patch")


LENGTHS = (4, 16, 64, 160)


@pytest.mark.parametrize("length", LENGTHS)
def test_cost_grows_with_defect_length(benchmark, backgrounds, length):
    """A straight fibre of ``length`` px (steps of 1 px, momentum 0.99), always accepted on its first
    draw: the time per defect above the copy floor grows linearly with the length of the path."""
    small = benchmark.disabled
    timer = getattr(benchmark, "_timer", time.perf_counter)
    patches = _items(backgrounds, 8 if small else N_ITEMS)
    fibre = dataclasses.replace(
        PRESETS["fiber-bright"], steps=(length, length), step_length=(1.0, 1.0), momentum=(0.99, 0.99),
        angular_sigma=(0.02, 0.02), branches=(0, 0), threshold=0.0, max_attempts=1,
    )
    none = np.zeros(len(patches), bool)
    floor = _best(lambda: synthesize_batch(patches, fibre, rng=0, defective=none), 1 if small else 5, timer)
    synthesize_batch(patches[:2], fibre, rng=0)
    benchmark.pedantic(synthesize_batch, args=(patches, fibre), kwargs={"rng": 0}, rounds=1 if small else 5,
                       iterations=1)
    if not small:
        per = (benchmark.stats.stats.min - floor) / len(patches) * 1e6
        benchmark.extra_info.update(length_px=length, us_per_defect_above_copy=round(per, 2),
                                    us_per_px=round(per / length, 3))
        print(f"\nfibre of {length:4d} px: {per:8.2f} us per defect above the copy ({per / length:.3f} us/px)")


def test_first_call_compile_time_and_cache(tmp_path, benchmark):
    """Cold compile of the kernels in a fresh cache directory, then a second process that loads them."""
    if benchmark.disabled:
        pytest.skip("compiles from scratch (about a minute); runs only with benchmarks enabled")
    code = (
        "import time, numpy as np\n"
        "from ispad_core.synth import synthesize_batch\n"
        "p = np.zeros((2, 64, 64), np.uint8)\n"
        "t = time.perf_counter(); synthesize_batch(p, 'mixed', rng=0, warn=False)\n"
        "print(time.perf_counter() - t)\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def first_call():
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                             cwd=root)
        return float(out.stdout.strip().splitlines()[-1])

    cold = first_call()
    assert any(p.suffix == ".nbi" for p in tmp_path.rglob("*")), "no cache index written"
    warm = benchmark.pedantic(first_call, rounds=1, iterations=1)
    benchmark.extra_info.update(cold_first_call_s=round(cold, 2), cached_first_call_s=round(warm, 3))
    print(f"\nfirst call of synthesize_batch: {cold:.1f} s compiling, {warm:.3f} s from the cache")
