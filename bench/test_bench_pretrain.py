"""``ispad pretrain``: what a pretraining step costs beside a supervised training step.

Run:  python -m pytest bench/test_bench_pretrain.py -s
(with ``--benchmark-disable`` everything runs once on a tiny workload, so CI keeps the file alive.)
Run the file alone, so that torch is loaded after this module asks OpenMP threads to wait
passively, as the training commands do.

What is measured, in one run, on the CPU with ``torch.set_num_threads(2)`` (at most the CPUs):
ResNet-18 on 64 x 64 patches of the built-in sample's four scans, batch 32, 40 steps each, the two
alternated in rounds, each rate the best of its rounds:

- pretraining: :func:`ispad_core.nn.pretrain` (what ``ispad pretrain`` runs: random patches,
  table-8 augmentation lsm1, lsm2 preprocessing, masking, encoder + decoder forward and backward,
  AdamW), steps per second over its steps (patches drawn in the main process);
- supervised training: :func:`ispad_core.nn.train_detector` on the balanced stream drawn on the
  fly from the same scans (what ``ispad train --images`` runs: default loader workers, synthetic
  defects, augmentation lsm1, lsm2 preprocessing, AdamW), the rate the run reports over its
  training steps.

The printed ratio pretraining / training is the cost of pretraining in units of training steps:
``ispad pretrain --steps N`` costs about ``N / ratio`` training steps of the same batch. It must be
at least 0.5 (a pretraining step costs at most two training steps).
"""

from __future__ import annotations

import os

import pytest

from bench._rounds import alternated_rates
from ispad_core._shared.config import prefer_passive_openmp

PASSIVE = prefer_passive_openmp()  # before torch loads, as the training commands do
torch = pytest.importorskip("torch")

from ispad_core.nn import TrainSettings, pretrain, train_detector  # noqa: E402
from ispad_core.nn.detector import default_workers  # noqa: E402
from ispad_core.stream import SyntheticStream  # noqa: E402

THREADS = min(2, os.cpu_count() or 1)
SIZE, BATCH = 64, 32


def _pretrain_rate(scans, steps: int) -> float:
    res = pretrain(scans, steps=steps, batch_size=BATCH, patch_size=SIZE, seed=0, verbose=False)
    return res.steps_per_s


def _train_rate(scans, root, steps: int) -> float:
    stream = SyntheticStream(scans, n=(steps + 4) * BATCH, size=SIZE, preset="mixed", augment="lsm1", seed=0)
    images, _, labels = stream.batch(list(range(steps * BATCH, (steps + 4) * BATCH)))
    settings = TrainSettings(max_steps=steps, batch_size=BATCH, seed=0, verbose=False)
    res = train_detector(stream, out=root / "model.pt", val=(images, labels.astype(int)), settings=settings,
                         overwrite=True)
    (root / "model.pt").unlink()
    return res.train.history[-1].patches_per_s / BATCH


def test_pretraining_step_rate_beside_training(benchmark, sample, tmp_path, say):
    disabled = benchmark.disabled
    steps = 2 if disabled else 40
    scans = list(sample)
    rates = alternated_rates(benchmark, THREADS, {
        "pretrain": lambda: _pretrain_rate(scans, steps),
        "train": lambda: _train_rate(scans, tmp_path, steps),
    })
    if disabled:
        return
    pre, sup = max(rates["pretrain"]), max(rates["train"])
    ratio = pre / sup
    say(f"{SIZE} x {SIZE} patches, batch {BATCH}, ResNet-18, {THREADS} torch threads, {os.cpu_count()} CPUs, "
        f"{default_workers()} loader worker(s) for training, OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    say(f"pretraining (ispad pretrain):          {pre:.2f} steps/s")
    say(f"supervised training (ispad train):     {sup:.2f} steps/s")
    say(f"pretraining / training: {ratio:.2f}x (must be >= 0.5)")
    assert ratio >= 0.5
