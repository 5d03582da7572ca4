"""Rates of several arms measured in alternated rounds, the protocol of the training benches."""

from __future__ import annotations

from collections.abc import Callable


def alternated_rates(benchmark, threads: int, arms: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each arm's rate (what its callable returns) once per round, the arms in turn, with torch
    at ``threads`` intra-op threads (restored afterwards): one warm-up round and 3 timed rounds,
    or a single round when benchmarks are disabled. Returns ``{name: [rate per round]}``."""
    import torch

    rates: dict[str, list[float]] = {name: [] for name in arms}

    def one_round():
        for name, arm in arms.items():
            rates[name].append(arm())

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        disabled = benchmark.disabled
        benchmark.pedantic(one_round, rounds=1 if disabled else 3, warmup_rounds=0 if disabled else 1, iterations=1)
    finally:
        torch.set_num_threads(before)
    return rates


def training_step_rate(backbone: str, *, batch: int, size: int, steps: int, amp: bool = False) -> float:
    """Patches per second of ``steps`` plain training steps of ``backbone`` from random weights
    (lsm2 preprocessing, forward, backward, AdamW) on one grey ``batch x size x size`` batch
    already in memory, in bf16 autocast on the CPU when ``amp``, after one untimed step."""
    import time

    import numpy as np
    import torch

    from ispad_core.nn import classifier
    from ispad_core.nn.preprocessing import preprocess_batch, resolve_preprocess

    torch.manual_seed(0)
    model = classifier(backbone, in_channels=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    params = resolve_preprocess("lsm2")
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (batch, size, size), dtype=np.uint8))
    labels = torch.arange(batch) % 2

    def step():
        x = preprocess_batch(images, params, device="cpu")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)
