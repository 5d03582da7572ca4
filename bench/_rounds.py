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
