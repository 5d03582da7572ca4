"""Helpers of the torch tests: a tiny classifier and tiny data, so training tests stay fast."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")


class TinyNet(torch.nn.Module):
    """Conv -> BN -> ReLU -> global pooling -> dropout -> 2-way linear (about 200 parameters)."""

    def __init__(self, in_channels=1, bn=True):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8) if bn else torch.nn.Identity()
        self.drop = torch.nn.Dropout(0.2)
        self.fc = torch.nn.Linear(16, 2)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        feats = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.fc(self.drop(feats))


def bright_spot_data(n, *, seed, size=16, defect_fraction=0.5):
    """Noisy uint8 patches; defective ones carry a bright 3 x 3 spot (easy to learn)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(100, 8, (n, size, size)).clip(0, 255).astype(np.uint8)
    labels = (rng.random(n) < defect_fraction).astype(np.int64)
    for k in np.flatnonzero(labels):
        r, c = rng.integers(1, size - 4, 2)
        images[k, r:r + 3, c:c + 3] = 200
    return images, labels


def gloo_worker(rank, body, init_file, world, *args):
    """Run ``body(rank, *args)`` in a gloo process group of ``world`` CPU processes (for ``mp.spawn``).

    ``body`` writes its results to disk. On success the ranks meet at a barrier, so neither tears
    down its connections while the other may still be in a collective, and the process then leaves
    without finalizing the interpreter: gloo's threads can abort a process during finalization
    (SIGABRT, "terminate called without an active exception", a known torch.distributed flake that
    no collective of the tests causes). An exception in ``body`` still reaches ``mp.spawn``.
    """
    import os

    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        body(rank, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    os._exit(0)
