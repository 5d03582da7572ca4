"""The whole path on the built-in sample: stream, training with ten real defects, inspection.

:func:`run_demo` walks the path a factory walks, with the library's own data in place of a
factory's, and writes every intermediate file so that each step can be looked at and repeated
with real data:

1. ``benchmark/``: fault-free scans of the built-in screen print, a pool of ten "real" defects
   (five points, five area; drawn by a generator that shares no code with the synthesizer, see
   :mod:`ispad_core.proxy`) in the folder layout training reads, and a validation set;
2. ``stream.h5``: a balanced synthetic stream cut from the scans (``ispad synth``);
3. ``model.pt``: a ResNet-18 trained on the stream with the ten real defects injected with
   ``p_inj = 1/32`` (``ispad train``), its F1-optimal threshold chosen on the validation set;
4. ``scans/scan.png``: a new ~1500 x 1500 scan with synthetic defects planted in it, and
   ``results/``: its verdict, heat-map overlay and JSON report (``ispad inspect``).

It is sized to finish in a few minutes on a laptop CPU (64 x 64 patches, a few hundred training
steps); a real detector trains on 256 x 256 patches for hours on a GPU.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ispad_core._validation import check_int

__all__ = ["DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` made.

    Attributes
    ----------
    out : pathlib.Path
        The demo folder.
    model : pathlib.Path
        The trained model file.
    results : pathlib.Path
        Folder of the inspection outputs (JSON, overlay, summary.csv).
    report : ispad_core.nn.inference.InspectionReport
        The inspection of the new scan.
    validation : ispad_core.metrics.ClassificationReport
        The model's validation report (its table-3 row).
    planted : numpy.ndarray of int64, shape (n, 4)
        ``(row0, col0, row1, col1)`` of each defect planted in the new scan.
    found : tuple of bool
        For each planted defect, whether a window over the threshold overlaps it.
    commands : tuple of str
        The ``ispad`` commands that repeat each step from the files on disk.
    seconds : float
        Wall time.
    """

    out: Path
    model: Path
    results: Path
    report: Any
    validation: Any
    planted: np.ndarray
    found: tuple
    commands: tuple
    seconds: float


def _say(verbose: bool, text: str) -> None:
    if verbose:
        print(text, file=sys.stderr, flush=True)


def _overlaps(window: tuple[int, int, int], box: np.ndarray) -> bool:
    r, c, s = window
    r0, c0, r1, c1 = (int(v) for v in box)
    return r < r1 and r0 < r + s and c < c1 and c0 < c + s


def run_demo(
    out: str | os.PathLike,
    *,
    seed: int = 0,
    size: int = 64,
    n: int = 4000,
    steps: int = 400,
    batch_size: int = 32,
    n_defects: int = 2,
    overwrite: bool = False,
    verbose: bool = True,
) -> DemoResult:
    """Make a stream, train a detector with ten real defects, and inspect a new scan.

    Parameters
    ----------
    out : path
        A new folder for everything the demo writes (see the module docstring).
    seed : int, default 0
        Fixes the data, the training and the new scan.
    size : int, default 64
        Patch side in pixels.
    n : int, default 4000
        Patches in the synthetic stream (half of them with synthetic defects).
    steps : int, default 400
        Training steps.
    batch_size : int, default 32
        Training batch size (``p_inj = 1/32`` needs at least 32).
    n_defects : int, default 2
        Defects planted in the new scan.
    overwrite : bool, default False
        Allow ``out`` to exist; files the demo writes are then replaced.
    verbose : bool, default True
        Say what each step does, with progress, on stderr.

    Returns
    -------
    DemoResult

    Raises
    ------
    FileExistsError
        If ``out`` exists and ``overwrite`` is False.
    ValueError
        For out-of-range arguments.
    """
    from ispad_core.cli import builtin_images
    from ispad_core.io import write_png
    from ispad_core.nn import train_detector
    from ispad_core.nn.inference import inspect_files
    from ispad_core.proxy import proxy_benchmark
    from ispad_core.samples import inspection_scan
    from ispad_core.stream import write_balanced_stream

    seed = check_int(seed, "seed", minimum=0, maximum=2**32 - 1)
    size = check_int(size, "size", minimum=32, maximum=512)
    n = check_int(n, "n", minimum=2 * batch_size)
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=32)
    n_defects = check_int(n_defects, "n_defects", minimum=0, maximum=8)
    root = Path(os.fspath(out))
    if root.exists() and not overwrite:
        raise FileExistsError(f"out: {root} exists; ask for overwrite (--overwrite) to write into it")
    if root.exists() and not root.is_dir():
        raise ValueError(f"out: {root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    q = shlex.quote

    _say(verbose, f"[1/4] the built-in sample: fault-free scans, 10 'real' defects (5 points, 5 area), a validation set "
                  f"-> {root / 'benchmark'}")
    bench_dir = root / "benchmark"
    proxy_benchmark(bench_dir, seed=seed, size=size, n_points=5, n_area=5, n_val=16, overwrite=overwrite)

    _say(verbose, f"[2/4] a balanced synthetic stream of {n} patches of {size} x {size} -> {root / 'stream.h5'} "
                  "(the first run compiles the synthesizer's kernels, about 30 s)")
    from ispad_core.io import read_images

    scans, _ = read_images(bench_dir / "scans", name="scans")
    stream = root / "stream.h5"
    write_balanced_stream(stream, scans, n, preset="mixed", augment="lsm1", size=size, seed=seed,
                          overwrite=overwrite, show_progress=verbose)

    _say(verbose, f"[3/4] training a ResNet-18 for {steps} steps with the 10 real defects injected (p_inj = 1/32) "
                  f"-> {root / 'model.pt'}")
    model = root / "model.pt"
    trained = train_detector(stream, out=model, real=bench_dir / "real", val=bench_dir / "val", p_inj=1 / 32,
                             max_steps=steps, val_every=max(steps // 4, 1), batch_size=batch_size, seed=seed,
                             overwrite=overwrite, verbose=verbose)

    _say(verbose, f"[4/4] inspecting a new {1536} x {1536} scan with {n_defects} planted defects -> {root / 'results'}")
    planted = inspection_scan((1536, 1536), rng=seed + 1, n_defects=n_defects, strength=2.0, region=max(2 * size, 96))
    scan_dir = root / "scans"
    scan_dir.mkdir(exist_ok=True)
    scan_file = scan_dir / "scan.png"
    write_png(scan_file, planted.image, overwrite=overwrite)
    results = root / "results"
    report = inspect_files([scan_file], model=model, out=results, overwrite=overwrite, show_progress=verbose)
    outcome = report.scans[0]
    if not outcome.ok:
        raise RuntimeError(f"the demo's own scan could not be inspected: {outcome.error}")
    payload = json.loads(Path(outcome.json).read_text())
    flagged = [(w["row"], w["col"], w["size"]) for w in payload["flagged"]]
    found = tuple(any(_overlaps(w, box) for w in flagged) for box in planted.boxes)

    commands = (
        f"ispad benchmark --out {q(str(bench_dir))} --seed {seed} --size {size} --n-points 5 --n-area 5 --n-val 16",
        f"ispad synth --out {q(str(stream))} --images {q(str(bench_dir / 'scans'))} --n {n} --size {size} --seed {seed}",
        f"ispad train --stream {q(str(stream))} --real {q(str(bench_dir / 'real'))} --val {q(str(bench_dir / 'val'))} "
        f"--p-inj 1/32 --max-steps {steps} --batch-size {batch_size} --seed {seed} --out {q(str(model))}",
        f"ispad inspect {q(str(scan_file))} --model {q(str(model))} --out {q(str(results))}",
    )
    return DemoResult(
        out=root,
        model=model,
        results=results,
        report=report,
        validation=trained.report,
        planted=planted.boxes,
        found=found,
        commands=commands,
        seconds=time.perf_counter() - started,
    )
