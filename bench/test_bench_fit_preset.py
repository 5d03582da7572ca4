"""Cost of ``fit_preset``: seconds per 100 real defects (measuring their masks and images, then
mapping and fitting), on 128 x 128 patches of the built-in sample with defects of preset mixed.

Run:  python -m pytest bench/test_bench_fit_preset.py -s --benchmark-columns=min,median,rounds
(with ``--benchmark-disable`` it runs once on 12 defects, which is how CI keeps it from rotting).
The measurement is NumPy and scipy.ndimage per defect (no Numba), one process.
"""

from __future__ import annotations

import numpy as np
import pytest

from ispad_core.synth import fit_preset, synthesize_batch
from ispad_core.tiling import random_patches

SIZE = 128
N_DEFECTS = 400


@pytest.fixture(scope="module")
def defects(sample, benchmarks_disabled):
    n = 12 if benchmarks_disabled else N_DEFECTS
    rng = np.random.default_rng(0)
    patches = np.concatenate([random_patches(im, -(-n // len(sample)), SIZE, rng=rng)[0] for im in sample])[:n]
    res = synthesize_batch(patches, "mixed", rng=1, warn=False)
    return res.images[res.accepted], res.masks[res.accepted]


def test_bench_fit_preset_per_100_defects(benchmark, defects, say):
    images, masks = defects
    report = benchmark.pedantic(fit_preset, args=(images, masks), kwargs={"base": "mixed"}, rounds=3, iterations=1)
    assert len(report.measures) == len(images)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.data:
        seconds = float(np.median(stats.stats.data))
        say(f"fit_preset: {100.0 * seconds / len(images):.3f} s per 100 defects ({len(images)} defects, {SIZE} px, preset mixed)")
