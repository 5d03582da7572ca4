"""``ispad train``: the loader never starves the model, and training keeps pace with a plain loop.

Run:  python -m pytest bench/test_bench_train.py -s
(with ``--benchmark-disable`` everything runs once on a tiny workload, so CI keeps the file alive.)
Run the file alone, so that torch is loaded after this module asks OpenMP threads to wait
passively, as ``ispad train`` and ``ispad demo`` do (the policy in effect is printed).

What is measured, in one run, on the CPU with ``torch.set_num_threads(2)``:

``test_training_keeps_pace_with_a_plain_torch_loop``: the training rate of
:func:`ispad_core.nn.train_detector` (what ``ispad train`` and ``ispad demo`` run: default
workers, an HDF5 stream of 64 x 64 patches, real defects injected at ``p_inj = 1/32``, batch 32,
ResNet-18 from scratch, the rate the run itself reports over its training steps) beside a plain
torch loop over the same model, batch size and batches (already in memory: preprocessing,
forward, backward, AdamW, the schedule), the two alternated in rounds, each rate the best of its
rounds. The ratio must be at least 0.9.

``test_loader_outpaces_training``:

- the loader: one shuffled epoch of the DataLoader that :func:`ispad_core.nn.train_detector` builds
  (default workers, :func:`ispad_core.nn.detector.default_workers`; batch 128) over an
  :class:`InjectionDataset` of a 64 x 64 HDF5 stream (4 096 patches, ``compression="fast"``) with
  real defects of 96 x 96 injected at ``p_inj = 1/32``, each draw augmented (table 8, lsm1) and
  centre-cropped; and the same with 0 workers (everything in the main process) for reference;
- the model: ResNet-18 training steps (preprocessing, forward, backward, AdamW step) on batches
  of 128 already in memory.

The printed ratio loader / model must be at least 3 (the loader is measured alone, the model
alone; during training the worker process shares the CPUs with the model).

``test_bf16_autocast_beside_fp32_on_the_cpu``: the training rate of
:func:`ispad_core.nn.train_detector` as above, on one torch thread (one run of the experiment grid
with two at once on 2 cores) and on two (``ispad train`` and ``ispad demo`` on 2 cores), with
``amp=True`` (bf16 autocast on the CPU), and that with ``channels_last=True``, beside
``amp=False``, alternated in rounds, each the best of its rounds; the ratio is printed with whether the CPU has AVX-512 BF16 or AMX, without which
bf16 is emulated and slower.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from bench._rounds import alternated_rates, training_step_rate
from ispad_core._shared.config import prefer_passive_openmp

PASSIVE = prefer_passive_openmp()  # before torch loads, as the training commands do
torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from ispad_core.io import write_stream  # noqa: E402
from ispad_core.io import RealDefects  # noqa: E402
from ispad_core.nn import RealTransform  # noqa: E402
from ispad_core.nn import InjectionDataset, classifier  # noqa: E402
from ispad_core.nn.detector import default_workers  # noqa: E402
from ispad_core.nn.preprocessing import preprocess_batch, resolve_preprocess  # noqa: E402
from ispad_core.nn.training import _collate, _generator  # noqa: E402

THREADS = min(2, os.cpu_count() or 1)
SIZE, BATCH = 64, 128


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, request):
    disabled = request.config.getoption("benchmark_disable", False)
    n = 256 if disabled else 4096
    rng = np.random.default_rng(0)
    images = rng.integers(60, 200, (n, SIZE, SIZE), dtype=np.uint8)
    masks = np.zeros((n, SIZE, SIZE), np.uint8)
    labels = np.arange(n) % 2
    masks[labels == 1, 20:30, 20:30] = 1
    path = write_stream(tmp_path_factory.mktemp("bench_train") / "stream.h5", images, masks, labels)
    from ispad_core.io import open_stream

    real_images = tuple(rng.integers(0, 256, (96, 96), dtype=np.uint8) for _ in range(16))
    real = RealDefects(images=real_images, groups=("area",) * 16, files=tuple(map(str, range(16))), root="<memory>")
    ds = InjectionDataset(open_stream(path), real, p_inj=1 / 32, batch_size=BATCH, seed=0,
                          real_transform=RealTransform(SIZE, "lsm1"))
    return ds


def _epoch(ds, workers: int, batches: int) -> float:
    """Patches per second of one shuffled pass of ``batches`` batches (worker start-up included)."""
    order = torch.randperm(len(ds), generator=_generator(0, 1, 0)).tolist()[: batches * BATCH]
    loader = DataLoader(ds, batch_size=BATCH, sampler=order, num_workers=workers, collate_fn=_collate,
                        drop_last=True, generator=_generator(0, 1, 0))
    t0 = time.perf_counter()
    n = sum(int(labels.shape[0]) for _, labels in loader)
    return n / (time.perf_counter() - t0)


def _model_rate(steps: int) -> float:
    return training_step_rate("resnet18", batch=BATCH, size=SIZE, steps=steps)


def test_loader_outpaces_training(benchmark, dataset):
    disabled = benchmark.disabled
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        workers = default_workers()
        batches = len(dataset) // BATCH
        loader = benchmark.pedantic(_epoch, args=(dataset, workers, batches), rounds=1 if disabled else 3,
                                    warmup_rounds=0 if disabled else 1, iterations=1)
        if disabled:
            return
        # pedantic returns the last round's value; the best of the rounds is the loader's capacity
        loader = max(loader, _epoch(dataset, workers, batches))
        inline = _epoch(dataset, 0, batches)
        model = _model_rate(steps=5)
    finally:
        torch.set_num_threads(before)
    ratio = loader / model
    print(f"\n{SIZE} x {SIZE} patches, batch {BATCH}, {THREADS} torch threads, {os.cpu_count()} CPUs")
    print(f"loader, {workers} worker(s) (default): {loader:,.0f} patches/s")
    print(f"loader, 0 workers:             {inline:,.0f} patches/s")
    print(f"ResNet-18 training steps:      {model:,.0f} patches/s")
    print(f"loader / model: {ratio:.1f}x (must be >= 3)")
    assert ratio >= 3.0


# --------------------------------------------------------------------------- train vs a plain loop

PACE_BATCH = 32


@pytest.fixture(scope="module")
def pace_data(tmp_path_factory, request):
    """A stream file like the demo's (64 x 64, half defective), 96 x 96 real defects, a validation pair."""
    disabled = request.config.getoption("benchmark_disable", False)
    n = 128 if disabled else 2048
    rng = np.random.default_rng(2)
    images = rng.integers(60, 200, (n, SIZE, SIZE), dtype=np.uint8)
    labels = np.arange(n) % 2
    masks = np.zeros((n, SIZE, SIZE), np.uint8)
    images[labels == 1, 20:26, 30:36] = 240
    masks[labels == 1, 20:26, 30:36] = 1
    root = tmp_path_factory.mktemp("bench_pace")
    path = write_stream(root / "stream.h5", images, masks, labels)
    real_images = tuple(rng.integers(0, 256, (96, 96), dtype=np.uint8) for _ in range(10))
    real = RealDefects(images=real_images, groups=("area",) * 10, files=tuple(map(str, range(10))), root="<memory>")
    val = (images[:64].copy(), labels[:64].copy())
    return root, path, real, val


def _train_detector_rate(root, path, real, val, steps: int, amp: bool | None = None,
                         channels_last: bool = False) -> float:
    """Training patches/s of train_detector as ispad train runs it (its own report: training steps only)."""
    from ispad_core.nn import train_detector

    res = train_detector(path, out=root / "model.pt", real=real, val=val, p_inj=1 / 32, batch_size=PACE_BATCH,
                         max_steps=steps, seed=0, amp=amp, channels_last=channels_last, overwrite=True, verbose=False)
    (root / "model.pt").unlink()
    return res.train.history[-1].patches_per_s


def _plain_loop_rate(batches, steps: int) -> float:
    """Patches/s of a plain torch loop: the same model, recipe, batch size and batches, in memory."""
    from ispad_core.nn.detector import recipe

    torch.manual_seed(0)
    model = classifier("resnet18", in_channels=1, num_classes=2, dropout=0.1)
    rec = recipe(pretrained=False, max_steps=steps)
    opt = torch.optim.AdamW(model.parameters(), lr=rec.lr, weight_decay=rec.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=rec.t_0, T_mult=rec.t_mult, eta_min=rec.lr_min)
    params = resolve_preprocess("lsm2")
    model.train()
    t0 = time.perf_counter()
    for k in range(steps):
        images, labels = batches[k % len(batches)]
        loss = torch.nn.functional.cross_entropy(model(preprocess_batch(images, params, device="cpu")), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return steps * PACE_BATCH / (time.perf_counter() - t0)


def test_training_keeps_pace_with_a_plain_torch_loop(benchmark, pace_data):
    root, path, real, val = pace_data
    disabled = benchmark.disabled
    steps = 2 if disabled else 40
    from ispad_core.io import open_stream

    ds = InjectionDataset(open_stream(path), real, p_inj=1 / 32, batch_size=PACE_BATCH, seed=0,
                          real_transform=RealTransform(SIZE, "lsm1"))
    order = torch.randperm(len(ds), generator=_generator(0, 1, 0)).tolist()
    batches = [_collate(ds.__getitems__(order[k * PACE_BATCH:(k + 1) * PACE_BATCH])) for k in range(min(steps, 16))]
    rates = alternated_rates(benchmark, THREADS, {
        "plain": lambda: _plain_loop_rate(batches, steps),
        "train": lambda: _train_detector_rate(root, path, real, val, steps),
    })
    if disabled:
        return
    train_rate, plain_rate = max(rates["train"]), max(rates["plain"])
    ratio = train_rate / plain_rate
    print(f"\n{SIZE} x {SIZE} patches, batch {PACE_BATCH}, {THREADS} torch threads, {os.cpu_count()} CPUs, "
          f"{default_workers()} loader worker(s), OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}"
          f"{'' if PASSIVE else ' (torch was loaded first: run this file alone for the ispad train setting)'}")
    print(f"train_detector (ispad train):  {train_rate:,.0f} patches/s  (rounds: "
          f"{', '.join(f'{r:,.0f}' for r in rates['train'])})")
    print(f"plain torch loop:              {plain_rate:,.0f} patches/s  (rounds: "
          f"{', '.join(f'{r:,.0f}' for r in rates['plain'])})")
    print(f"train / plain loop: {ratio:.2f}x (must be >= 0.9)")
    assert ratio >= 0.9


@pytest.mark.parametrize("threads", [1, 2])
def test_bf16_autocast_beside_fp32_on_the_cpu(benchmark, pace_data, threads):
    root, path, real, val = pace_data
    disabled = benchmark.disabled
    steps = 2 if disabled else 40
    arms = {"fp32 (amp=False)": (False, False), "bf16 autocast (amp=True)": (True, False),
            "bf16, channels-last": (True, True)}
    rates = alternated_rates(benchmark, threads, {
        name: (lambda amp=amp, cl=cl: _train_detector_rate(root, path, real, val, steps, amp=amp, channels_last=cl))
        for name, (amp, cl) in arms.items()
    })
    if disabled:
        return
    from ispad_core.nn.runtime import cpu_has_bf16

    best = {name: max(r) for name, r in rates.items()}
    print(f"\n{SIZE} x {SIZE} patches, batch {PACE_BATCH}, {threads} torch thread(s), {os.cpu_count()} CPUs, "
          f"bf16 in hardware (AVX-512 BF16 or AMX): {'yes' if cpu_has_bf16() else 'no'}")
    for name, r in rates.items():
        print(f"train_detector, {name:<25} {best[name]:,.0f} patches/s  (rounds: {', '.join(f'{x:,.0f}' for x in r)})")
    fp32 = best["fp32 (amp=False)"]
    print(f"bf16 / fp32: {best['bf16 autocast (amp=True)'] / fp32:.2f}x; bf16 channels-last / fp32: "
          f"{best['bf16, channels-last'] / fp32:.2f}x")
