"""``ispad train`` data loading never starves the model: loader patches/s beside training patches/s.

Run:  python -m pytest bench/test_bench_train.py -s
(with ``--benchmark-disable`` everything runs once on a tiny workload, so CI keeps the file alive.)

What is measured, in one run, on the CPU with ``torch.set_num_threads(2)``:

- the loader: one shuffled epoch of the DataLoader that :func:`ispad_core.nn.train_detector` builds
  (default workers, :func:`ispad_core.nn.detector.default_workers`; batch 128) over an
  :class:`InjectionDataset` of a 64 x 64 HDF5 stream (4 096 patches, ``compression="fast"``) with
  real defects of 96 x 96 injected at ``p_inj = 1/32``, each draw augmented (table 8, lsm1) and
  centre-cropped; and the same with 0 workers (everything in the main process) for reference;
- the model: ResNet-18 training steps (preprocessing, forward, backward, AdamW step) on batches
  of 128 already in memory.

The printed ratio loader / model must be at least 3 (the loader is measured alone, the model
alone; during training the worker process shares the CPUs with the model).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

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
    torch.manual_seed(0)
    model = classifier("resnet18", in_channels=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    params = resolve_preprocess("lsm2")
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (BATCH, SIZE, SIZE), dtype=np.uint8))
    labels = torch.arange(BATCH) % 2

    def step():
        x = preprocess_batch(images, params, device="cpu")
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - t0)


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
