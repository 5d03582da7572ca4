"""Inspection throughput: the whole pipeline beside the bare model forward on the same windows.

Run:  python -m pytest bench/test_bench_inspect.py -s      (about 6 minutes on one CPU core)
(``-s`` shows the tables; with ``--benchmark-disable`` everything runs once on a tiny workload
-- 32 px windows on a 64 x 400 strip -- which is how CI keeps this file from rotting.)

ResNet-18, one input channel, 256 x 256 windows at the paper's stride 160, ``torch.set_num_threads(2)``
(``ISPAD_BENCH_THREADS=N`` to change it; with ``--benchmark-disable`` one thread).

1. ``test_precision_and_layout``: the bare forward pass (ready float batches) in fp32 and bf16
   autocast, contiguous and channels-last, batch 32; each line's ratio to fp32 contiguous, and
   what ``precision="auto"`` picks on this machine (``resolve_precision``).
2. ``test_inspect_vs_bare_forward``: :func:`ispad_core.nn.inference.inspect` on a strip of a
   13 000 px wide scan (81 windows per row of windows; as many rows as four batches need: 2 rows,
   162 windows, at batch 32; 7 rows, 567 windows, at batch 128), which includes copying
   windows out of the scan, preprocessing (brightness table, 3 x 3 Gaussian, normalisation),
   the forward pass and softmax (the heat map is stitched only when read), beside the bare forward pass of the
   same windows preprocessed beforehand, with the same batch size, precision and layout, timed
   alternately in the same run. The ratio pipeline / bare should stay at or above 0.9x (the pipeline adds at most 10 %). inspect
   reads and preprocesses batch k + 1 in a second thread while the network runs batch k, so with
   one torch thread the pipeline occupies up to two cores (the bare forward one). The
   windows/s of a whole 13 000 x 13 000 scan (6 561 windows) are extrapolated from the strip
   (the per-window work is the same in every row), and printed beside the paper's requirement
   (about 20 000 windows in 15 s, 1 333 windows/s) and its 6 309 patches/s (RTX 4080, fp16).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core.nn import classifier, preprocess_batch  # noqa: E402
from ispad_core.nn.inference import default_stride, inspect, resolve_precision  # noqa: E402
from ispad_core.samples import screen_print  # noqa: E402
from ispad_core.tiling import sliding_windows  # noqa: E402

# ISPAD_BENCH_THREADS overrides the thread count: on a machine shared with other jobs, two OpenMP
# threads that wait for each other at every layer's barrier measured 60x slower than one thread
# (a 32 px batch: 1.3 s instead of 20 ms), so measure with 1 there.
THREADS = int(os.environ.get("ISPAD_BENCH_THREADS", min(2, os.cpu_count() or 1)))
SCAN_SIDE = 13_000
PAPER_WINDOWS, PAPER_SECONDS, PAPER_RTX4080 = 20_000, 15.0, 6309.0

_lines: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def cpu_threads(request):
    import numba

    # torch and Numba's OpenMP layer share one OpenMP thread count: set both
    before = torch.get_num_threads(), numba.get_num_threads()
    n = 1 if request.config.getoption("benchmark_disable", False) else THREADS
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(n)
    yield
    numba.set_num_threads(before[1])
    torch.set_num_threads(before[0])
    if _lines:
        print("\n" + "\n".join(_lines))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return classifier("resnet18", in_channels=1, num_classes=2, dropout=0.1, weights=None).eval()


def _forward(model, batches, precision, channels_last):
    """Bare forward over ready float batches; returns seconds."""
    dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    xs = [b.contiguous(memory_format=fmt) for b in batches]
    try:
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            model(xs[0][:2])  # warm-up (oneDNN picks its kernels on the first call)
            t0 = time.perf_counter()
            for x in xs:
                torch.softmax(model(x).float(), 1)[:, 1].double().numpy()
            return time.perf_counter() - t0
    finally:
        model.to(memory_format=torch.contiguous_format)


def test_precision_and_layout(benchmark, model):
    disabled = benchmark.disabled
    size, batch, reps = (32, 4, 1) if disabled else (256, 32, 2)
    gen = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (batch, size, size), dtype=torch.uint8, generator=gen)
    x = preprocess_batch(raw, "lsm2")
    rates = {}
    for precision in ("fp32", "bf16"):
        for cl in (False, True):
            best = min(_forward(model, [x] * reps, precision, cl) for _ in range(1 if disabled else 2))
            rates[(precision, cl)] = reps * batch / best
    with torch.inference_mode():
        ref = torch.softmax(model(x).float(), 1)[:, 1]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = torch.softmax(model(x).float(), 1)[:, 1]
    bf16_diff = float((low - ref).abs().max())
    auto = resolve_precision("auto", "auto", "cpu")
    benchmark.pedantic(_forward, args=(model, [x], *auto), rounds=1, iterations=1)
    base = rates[("fp32", False)]
    _lines.append(f"Bare ResNet-18 forward on the CPU, {torch.get_num_threads()} threads, {size} x {size}, batch {batch}"
                  f"{' (tiny workload: --benchmark-disable)' if disabled else ''}")
    _lines.append("| precision | layout | windows/s | vs fp32 contiguous |")
    _lines.append("|---|---|---|---|")
    for (precision, cl), rate in rates.items():
        _lines.append(f"| {precision} | {'channels-last' if cl else 'contiguous'} | {rate:.1f} | {rate / base:.2f}x |")
    _lines.append(f"max |P(defective) bf16 - fp32| on these {batch} windows: {bf16_diff:.1e}")
    fastest = max(rates, key=rates.get)
    _lines.append(f"precision='auto' runs {auto[0]}{' channels-last' if auto[1] else ''}; fastest measured here: "
                  f"{fastest[0]}{' channels-last' if fastest[1] else ''} ({rates[fastest] / rates[auto]:.2f}x auto)\n")
    assert all(r > 0 for r in rates.values())


@pytest.mark.parametrize("batch_size", [32, 128])
def test_inspect_vs_bare_forward(benchmark, model, batch_size):
    disabled = benchmark.disabled
    if disabled:
        size, width, batch_size = 32, 400, 4
    else:
        size, width = 256, SCAN_SIDE
    stride = default_stride(size)
    # enough rows of windows for four batches: the prefetch thread hides the preprocessing of every
    # batch but the first, so a single batch would show the start-up, not the steady state
    per_row = math.ceil((width - size) / stride) + 1
    rows = 1 if disabled else math.ceil(4 * batch_size / per_row)
    strip = screen_print((size + (rows - 1) * stride, width), rng=0, kind="mixed")
    tiles, _ = sliding_windows(strip, size=size, stride=stride)
    n = len(tiles)
    precision, cl = resolve_precision("auto", "auto", "cpu")
    ready = [preprocess_batch(torch.from_numpy(tiles[i:i + batch_size]), "lsm2") for i in range(0, n, batch_size)]

    def pipeline():
        return inspect(model, strip, threshold=0.5, size=size, stride=stride, preprocess="lsm2",
                       batch_size=batch_size, precision="auto", channels_last="auto", verbose=False)

    rounds = 1 if disabled else 3
    piped, bare, results = [], [], []
    for _ in range(rounds):  # alternate, so both see the same machine load
        t0 = time.perf_counter()
        results.append(pipeline())
        piped.append(time.perf_counter() - t0)
        bare.append(_forward(model, ready, precision, cl))
    benchmark.pedantic(pipeline, rounds=1, iterations=1)
    result = results[-1]
    assert result.scores.size == n
    pipe_rate, bare_rate = n / min(piped), n / min(bare)
    t = result.timings
    share = ", ".join(f"{k[:-2]} {100 * t[k] / t['total_s']:.1f}%" for k in ("wait_s", "forward_s"))
    hidden = f"gather {100 * t['gather_s'] / t['total_s']:.1f}%, preprocess {100 * t['preprocess_s'] / t['total_s']:.1f}%"
    full = math.ceil((SCAN_SIDE - size) / stride + 1) ** 2 if not disabled else None
    _lines.append(f"inspect vs bare forward, {n} windows of {size} x {size} from a {strip.shape[0]} x {width} strip, batch "
                  f"{batch_size}, {precision}{' channels-last' if cl else ''}, {torch.get_num_threads()} threads"
                  f"{' (tiny workload: --benchmark-disable)' if disabled else ''}")
    _lines.append(f"  inspect: {pipe_rate:.2f} windows/s   bare forward: {bare_rate:.2f} windows/s   "
                  f"ratio {pipe_rate / bare_rate:.3f}x (goal >= 0.9x)")
    outside = 1.0 - t["forward_s"] / t["total_s"]
    _lines.append(f"  time shares of inspect: {share}; outside the forward pass: {100 * outside:.1f}% "
                  f"(the pipeline's own cost; the ratio above also carries the load of a shared machine)")
    _lines.append(f"  in the prefetch thread, overlapped with the forward pass: {hidden} of the wall time")
    if full:
        grid = int(round(math.sqrt(full)))
        _lines.append(f"  13 000 x 13 000 scan: {grid} x {grid} = {full} windows, extrapolated from this strip: "
                      f"{full / pipe_rate:.0f} s ({pipe_rate:.2f} windows/s); the paper's requirement is about "
                      f"{PAPER_WINDOWS} windows in {PAPER_SECONDS:.0f} s ({PAPER_WINDOWS / PAPER_SECONDS:.0f} windows/s), "
                      f"its RTX 4080 measured {PAPER_RTX4080:.0f} patches/s\n")
