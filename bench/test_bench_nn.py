"""Inference throughput of the ResNet-18 classifier with the paper's protocol (measure_throughput).

Run:  python -m pytest bench/test_bench_nn.py -s
(``-s`` shows one line per configuration and the table at the end; with ``--benchmark-disable``
every configuration runs once on a tiny workload, which is how CI keeps this file from rotting.)

On the CPU: 256 x 256 grey patches, batch 32 and 128, fp32 and bf16 autocast, contiguous and
channels-last, plus 64 x 64 fp32; ``torch.set_num_threads(2)`` (the reference figures: about 35
patches/s at 256 x 256 and 450 at 64 x 64, fp32, 2 threads, on a 2-core x86 machine). Each line prints the
ratio to the fp32 contiguous configuration of the same batch size and patch size, measured in the
same run. The paper's protocol (10 warm-up iterations, 5 cycles of 100 repetitions at batch 128)
would take hours on a CPU, so the CPU runs use 3 cycles of about 256 patches each; set
``ISPAD_BENCH_FULL=1`` for the full protocol.

On a CUDA machine ``test_cuda_paper_protocol`` runs the paper's exact protocol (batch 128, fp16
autocast, CUDA events) for the figure beside the paper's 6 309 patches/s on an RTX 4080.
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from ispad_core.nn import measure_throughput, resnet18_classifier  # noqa: E402

THREADS = min(2, os.cpu_count() or 1)
FULL = os.environ.get("ISPAD_BENCH_FULL") == "1"
PAPER_RTX4080 = 6309.0
REFERENCE_CPU = {256: 35.0, 64: 450.0}  # fp32 patches/s, 2 threads, on a 2-core x86 machine

CONFIGS = [(256, bs, amp, cl) for bs in (32, 128) for amp in (False, True) for cl in (False, True)]
CONFIGS += [(64, 32, False, False), (64, 128, False, False)]

_results: dict = {}


@pytest.fixture(scope="module", autouse=True)
def cpu_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)
    if _results:
        print(f"\nResNet-18 inference on the CPU, {THREADS} threads (reference: ~35 patches/s at 256, ~450 at 64, fp32)")
        print("| patch | batch | precision | layout | patches/s | ms/patch | vs fp32 |")
        print("|---|---|---|---|---|---|---|")
        for (size, bs, amp, cl), (t, ratio) in sorted(_results.items()):
            print(f"| {t.input_shape[1]} | {t.batch_size} | {t.precision} | {'channels-last' if cl else 'contiguous'} | "
                  f"{t.patches_per_s:.1f} +- {t.patches_per_s_std:.1f} | {t.ms_per_patch:.2f} | {ratio:.2f}x |")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return resnet18_classifier(in_channels=1)


def _protocol(disabled: bool, size: int, batch_size: int) -> dict:
    if disabled:
        return dict(patch_size=32, batch_size=2, warmup=0, cycles=2, reps=1)
    if FULL:
        return dict(patch_size=size, batch_size=batch_size, warmup=10, cycles=5, reps=100)
    per_cycle = 256 if size == 256 else 2048
    return dict(patch_size=size, batch_size=batch_size, warmup=1, cycles=3, reps=max(1, per_cycle // batch_size))


def _measure(model, disabled, size, bs, amp, cl):
    return measure_throughput(model, device="cpu", amp=amp, channels_last=cl, **_protocol(disabled, size, bs))


@pytest.mark.parametrize("size, batch_size, amp, channels_last", CONFIGS,
                         ids=[f"{s}px-b{b}-{'bf16' if a else 'fp32'}{'-cl' if c else ''}" for s, b, a, c in CONFIGS])
def test_cpu_throughput(benchmark, model, size, batch_size, amp, channels_last):
    disabled = benchmark.disabled
    key = (size, batch_size, amp, channels_last)
    base_key = (size, batch_size, False, False)
    if base_key not in _results and key != base_key:  # the baseline of this line, same run
        base = _measure(model, disabled, size, batch_size, False, False)
        _results[base_key] = (base, 1.0)
    t = benchmark.pedantic(_measure, args=(model, disabled, *key), rounds=1, iterations=1)
    ratio = t.patches_per_s / (_results[base_key][0].patches_per_s if key != base_key else t.patches_per_s)
    _results[key] = (t, ratio)
    benchmark.extra_info.update(t.to_dict())
    benchmark.extra_info["ratio_vs_fp32_contiguous"] = ratio
    benchmark.extra_info["reference_fp32_patches_per_s"] = REFERENCE_CPU[size]
    print(f"\n{t}  ratio to fp32 contiguous {ratio:.2f}x  (reference fp32: ~{REFERENCE_CPU[size]:.0f} patches/s)")
    assert t.patches_per_s > 0 and len(t.per_cycle) == _protocol(disabled, size, batch_size)["cycles"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_paper_protocol(benchmark, model):
    kw = dict(batch_size=128, warmup=10, cycles=5, reps=100, patch_size=256, device="cuda", amp=True)
    if benchmark.disabled:
        kw.update(warmup=1, cycles=2, reps=2)
    t = benchmark.pedantic(measure_throughput, args=(model,), kwargs=kw, rounds=1, iterations=1)
    benchmark.extra_info.update(t.to_dict())
    print(f"\n{torch.cuda.get_device_name()}: {t}; the paper: {PAPER_RTX4080:,.0f} +- 5 patches/s, 0.16 ms "
          f"(RTX 4080), ratio {t.patches_per_s / PAPER_RTX4080:.2f}")
    assert t.timer == "cuda-events"
