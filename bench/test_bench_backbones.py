"""Training steps of the five built-in backbones at the library's CPU scale, beside ResNet-18.

Run:  python -m pytest bench/test_bench_backbones.py -s
(with ``--benchmark-disable`` each backbone runs two steps, so CI keeps the file alive.)

What is measured, in one run, on the CPU with one torch thread (one run of the experiment grid
with two at once on 2 cores): training steps of each backbone of
:data:`ispad_core.nn.backbones.BACKBONES` from random weights, 64 x 64 grey patches, batch 32,
lsm2 preprocessing, forward and backward pass, AdamW step, in bf16 autocast (the precision the
commands train in on a CPU with AVX-512 BF16 or AMX) and in fp32, on batches already in memory;
the backbones alternated in rounds, each rate the best of its rounds. Each line prints the
patches per second and the ratio to ResNet-18 in the same precision: a backbone that trains faster
per patch than ResNet-18 is a candidate for training from scratch on a CPU, one that trains slower
is not.
"""

from __future__ import annotations

import os

import pytest

from bench._rounds import alternated_rates, training_step_rate
from ispad_core._shared.config import prefer_passive_openmp

PASSIVE = prefer_passive_openmp()  # before torch loads, as the training commands do
torch = pytest.importorskip("torch")

from ispad_core.nn.backbones import BACKBONES  # noqa: E402

SIZE, BATCH = 64, 32


@pytest.mark.parametrize("amp", [True, False], ids=["bf16", "fp32"])
def test_backbone_training_rates_beside_resnet18(benchmark, say, amp):
    steps = 1 if benchmark.disabled else 8
    rates = alternated_rates(benchmark, 1, {
        name: (lambda name=name: training_step_rate(name, batch=BATCH, size=SIZE, steps=steps, amp=amp))
        for name in BACKBONES
    })
    best = {name: max(r) for name, r in rates.items()}
    assert all(rate > 0 for rate in best.values())
    if benchmark.disabled:
        return
    from ispad_core.nn.runtime import cpu_has_bf16

    precision = "bf16 autocast" if amp else "fp32"
    say(f"{SIZE} x {SIZE} patches, batch {BATCH}, 1 torch thread, {precision}, bf16 in hardware (AVX-512 BF16 or "
        f"AMX): {'yes' if cpu_has_bf16() else 'no'}, OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    for name in BACKBONES:
        say(f"{name:<16} {best[name]:7,.1f} patches/s  ({best[name] / best['resnet18']:.2f}x resnet18; rounds: "
            f"{', '.join(f'{x:,.1f}' for x in rates[name])})")
