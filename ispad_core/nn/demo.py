"""The whole path on the built-in sample: stream, training with ten real defects, inspection.

:func:`run_demo` walks the path a factory walks, with the library's own data in place of a
factory's, and writes every intermediate file so that each step can be looked at and repeated
with real data:

1. one product of the built-in screen print (one design, sheets of several sizes): fault-free
   scans in ``scans/``, a pool of ten "real" defects in ``real/points/`` and ``real/area/`` (five
   each, drawn by the generator of :mod:`ispad_core.samples.proxy`, which shares no code with the
   synthesizer), and a validation set in ``val/`` (``good/``, ``points/``, ``area/``; 20
   fault-free patches per defective one) from another sheet;
2. a balanced synthetic stream of the scans, drawn on the fly (``ispad train --images``: new
   draws every epoch, table-8 augmentation ``lsm1``, nothing written);
3. ``model.pt``: a ResNet-18 trained from random initialisation on the stream with the ten real
   defects injected with ``p_inj = 1/32`` (``ispad train``), under the demo's contrast curriculum
   (the synthetic defects start 6 times as strong and reach the preset's contrast at half the run;
   docs/training.md), its F1-optimal threshold chosen on the validation set;
4. ``new_scans/scan.png``: a new 1536 x 1536 sheet of the product with synthetic defects planted in it, and
   ``results/``: its verdict, heat-map overlay and JSON report (``ispad inspect``).

Every defect is at the presets' own, deliberately faint, contrast. It is sized for a CPU: 64 x 64
patches and a thousand training steps from random initialisation, where a real detector
trains on 256 x 256 patches from ImageNet weights for hours on a GPU. With ``contrast`` other than 1
every defect is that much stronger and the path is the older, quicker one: a stream file
(``stream.h5``, ``ispad synth``) without augmentation, and no curriculum.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputValueError
from ispad_core._shared.recipes import DEMO_CURRICULUM, DEMO_STEPS
from ispad_core._shared.validation import check_float, check_int

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
    stage_seconds : dict of str to float
        Wall time of each stage: ``"data"`` (scans, real defects, validation set), ``"stream"``,
        ``"training"`` (with the validations and the model file) and ``"inspection"``.
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
    stage_seconds: dict = field(default_factory=dict)


def _say(verbose: bool, text: str) -> None:
    if verbose:
        print(text, file=sys.stderr, flush=True)


def _checked(seed, size, n, steps, batch_size, n_defects, contrast) -> tuple:
    """The demo's numeric arguments, checked (in this order, as the errors name them)."""
    seed = check_int(seed, "seed", minimum=0, maximum=2**32 - 1)
    size = check_int(size, "size", minimum=32, maximum=512)
    n = check_int(n, "n", minimum=2 * batch_size)
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=32)
    n_defects = check_int(n_defects, "n_defects", minimum=0, maximum=8)
    contrast = check_float(contrast, "contrast", minimum=0.1, maximum=10.0)
    return seed, size, n, steps, batch_size, n_defects, contrast


def _out_folder(out: Any, overwrite: bool) -> Path:
    """The demo's output folder, made; an existing one only with ``overwrite``."""
    root = Path(os.fspath(out))
    if root.exists() and not overwrite:
        raise FileExistsError(f"out: {root} exists; ask for overwrite (--overwrite) to write into it")
    if root.exists() and not root.is_dir():
        raise InputValueError(f"out: {root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    return root


class _Stages:
    """The wall time of each stage of the demo, said as each one ends."""

    def __init__(self, verbose: bool, started: float) -> None:
        self.verbose, self.mark, self.seconds = verbose, started, {}

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = now - self.mark
        self.mark = now
        _say(self.verbose, f"      {stage}: {self.seconds[stage]:.1f} s")


def _overlaps(window: tuple[int, int, int], box: np.ndarray) -> bool:
    r, c, s = window
    r0, c0, r1, c1 = (int(v) for v in box)
    return r < r1 and r0 < r + s and c < c1 and c0 < c + s


_SHEETS = (640, 704, 768, 832)  # training sheets of the product (one design, other layouts)
_VAL_SHEET = 896


def _sheet(seed: int, side: int) -> np.ndarray:
    """A fault-free sheet of the demo's product: the same seed draws the same design."""
    from ispad_core.samples import screen_print

    return screen_print((side, side), rng=seed, kind="mixed")


def _proxy_patches(sheet, kinds, *, seed, size, contrast):
    """"Real" defects of the given classes drawn into random patches of ``sheet``."""
    from ispad_core.samples.proxy import proxy_defect

    gen = np.random.default_rng([seed, 7])
    out = []
    for kind in kinds:
        r, c = (int(v) for v in gen.integers(0, sheet.shape[0] - size - 16, size=2))
        image, _ = proxy_defect(sheet[r:r + size + 16, c:c + size + 16], kind,
                                seed=int(gen.integers(2**32)), contrast=contrast)
        out.append(image)
    return out


def _product_data(root: Path, *, seed: int, size: int, contrast: float, overwrite: bool) -> dict:
    """Fault-free scans, a pool of ten "real" defects and a validation set, all of one product."""
    from ispad_core.io import write_png
    from ispad_core.samples.proxy import AREA_CLASSES, POINT_CLASSES
    from ispad_core.tiling import random_patches

    sheets = [_sheet(seed, side) for side in _SHEETS]
    (root / "scans").mkdir(parents=True, exist_ok=True)
    for k, sheet in enumerate(sheets):
        write_png(root / "scans" / f"sheet_{k}.png", sheet, overwrite=overwrite)
    points = [POINT_CLASSES[i % len(POINT_CLASSES)] for i in range(5)]
    area = [AREA_CLASSES[i % len(AREA_CLASSES)] for i in range(5)]
    for group, kinds in (("points", points), ("area", area)):
        (root / "real" / group).mkdir(parents=True, exist_ok=True)
        for k, (kind, image) in enumerate(zip(kinds, _proxy_patches(sheets[k % len(sheets)], kinds, seed=seed + k,
                                                                      size=size, contrast=contrast))):
            write_png(root / "real" / group / f"{k:03d}_{kind}.png", image, overwrite=overwrite)
    # validation: another sheet of the product, 20 fault-free patches per defective one
    val_sheet = _sheet(seed, _VAL_SHEET)
    good, _ = random_patches(val_sheet, 320, size, rng=seed)
    (root / "val" / "good").mkdir(parents=True, exist_ok=True)
    for k, patch in enumerate(good):
        write_png(root / "val" / "good" / f"{k:03d}.png", patch, overwrite=overwrite)
    for group, classes in (("points", POINT_CLASSES), ("area", AREA_CLASSES)):
        kinds = [classes[i % len(classes)] for i in range(8)]
        (root / "val" / group).mkdir(parents=True, exist_ok=True)
        for k, image in enumerate(_proxy_patches(val_sheet, kinds, seed=seed + 100 + len(group), size=size,
                                                 contrast=contrast)):
            write_png(root / "val" / group / f"{k:03d}_{kinds[k]}.png", image, overwrite=overwrite)
    return {"scans": sheets}


def run_demo(
    out: str | os.PathLike,
    *,
    seed: int = 0,
    size: int = 64,
    n: int = 4000,
    steps: int = DEMO_STEPS,
    batch_size: int = 32,
    n_defects: int = 2,
    contrast: float = 1.0,
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
        Patches in the synthetic stream (half of them with synthetic defects); at native
        contrast, per epoch of the stream drawn on the fly.
    steps : int, default :data:`~ispad_core._shared.recipes.DEMO_STEPS`
        Training steps.
    batch_size : int, default 32
        Training batch size (``p_inj = 1/32`` needs at least 32).
    n_defects : int, default 2
        Defects planted in the new scan.
    contrast : float, default 1.0
        Factor on the contrast of every defect: the stream's synthetic ones
        (``DefectMixture.scale_contrast``), the "real" ones, and those planted in the new scan.
        1.0 (native): the stream is drawn on the fly, augmented (table 8, ``lsm1``) and
        trained under the from-scratch curriculum; otherwise a stream file without
        augmentation and no curriculum (the quicker path of stronger defects).
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
    from ispad_core.nn import train_detector
    from ispad_core.nn.training import auto_amp

    seed, size, n, steps, batch_size, n_defects, contrast = _checked(seed, size, n, steps, batch_size, n_defects, contrast)
    root = _out_folder(out, overwrite)
    started = time.perf_counter()
    q = shlex.quote
    stages = _Stages(verbose, started)
    done = stages.done

    _say(verbose, f"[1/4] one product of the built-in sample: fault-free scans -> {root / 'scans'}, "
                  f"10 'real' defects (5 points, 5 area) -> {root / 'real'}, a validation set -> {root / 'val'}")
    data = _product_data(root, seed=seed, size=size, contrast=contrast, overwrite=overwrite)
    done("data")

    native = contrast == 1.0
    if native:
        stream: Any = _drawn_stream(data["scans"], n=n, size=size, seed=seed, verbose=verbose)
        curriculum, val_every = DEMO_CURRICULUM, max(steps // 20, 1)
        how = f"under the contrast curriculum {curriculum}"
    else:
        stream = _stream_file(root, data["scans"], n=n, size=size, seed=seed, contrast=contrast, overwrite=overwrite,
                              verbose=verbose)
        curriculum, val_every = None, max(steps // 4, 1)
        how = "without a curriculum"
    done("stream")

    _say(verbose, f"[3/4] training a ResNet-18 from scratch for {steps} steps with the 10 real defects injected "
                  f"(p_inj = 1/32), {how} -> {root / 'model.pt'} (the first run compiles the synthesizer's kernels, "
                  "about 30 s)")
    model = root / "model.pt"
    trained = train_detector(stream, out=model, real=root / "real", val=root / "val", p_inj=1 / 32,
                             max_steps=steps, val_every=val_every, batch_size=batch_size, seed=seed,
                             curriculum=curriculum, amp=auto_amp(), overwrite=overwrite, verbose=verbose)
    done("training")

    _say(verbose, f"[4/4] inspecting a new {1536} x {1536} scan with {n_defects} planted defects -> {root / 'results'}")
    scan_file, results = root / "new_scans" / "scan.png", root / "results"
    report, planted, found = _inspect_new_sheet(
        root, model, seed=seed, size=size, n_defects=n_defects, contrast=contrast, overwrite=overwrite, verbose=verbose
    )
    done("inspection")

    common = (f"--real {q(str(root / 'real'))} --val {q(str(root / 'val'))} --p-inj 1/32 --max-steps {steps} "
              f"--val-every {val_every} --batch-size {batch_size} --seed {seed} --out {q(str(model))}")
    if native:  # the demo's curriculum, named: ispad train's default is the one for longer runs
        train = [f"ispad train --images {q(str(root / 'scans'))} --n {n} --size {size} --curriculum {curriculum} "
                 f"{common}"]
    else:
        train = [f"ispad synth --out {q(str(stream))} --images {q(str(root / 'scans'))} --n {n} --size {size} "
                 f"--seed {seed} --params {q(str(root / 'defects.json'))} --augment none",
                 f"ispad train --stream {q(str(stream))} {common}"]
    commands = (*train, f"ispad inspect {q(str(scan_file))} --model {q(str(model))} --out {q(str(results))}")
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
        stage_seconds=stages.seconds,
    )


def _drawn_stream(scans: list, *, n, size, seed, verbose) -> Any:
    """The balanced stream of the scans at the presets' contrast with table-8 augmentation, drawn
    on the fly (``ispad train --images``)."""
    from ispad_core.stream import SyntheticStream

    _say(verbose, f"[2/4] a balanced synthetic stream of {n} patches of {size} x {size} per epoch, drawn on the fly "
                  "from the scans with table-8 augmentation (new draws every epoch; nothing written)")
    return SyntheticStream(scans, n=n, size=size, preset="mixed", augment="lsm1", seed=seed,
                           names=[f"sheet_{k}.png" for k in range(len(scans))])


def _stream_file(root: Path, scans: list, *, n, size, seed, contrast, overwrite, verbose) -> Path:
    """``stream.h5``: the balanced stream of the scans with every defect ``contrast`` times as strong
    (no augmentation), and the preset it used in ``defects.json`` (``ispad synth --params``)."""
    from ispad_core._shared.files import atomic_output
    from ispad_core.stream import write_balanced_stream
    from ispad_core.synth import PRESETS

    _say(verbose, f"[2/4] a balanced synthetic stream of {n} patches of {size} x {size}, every defect {contrast:g} "
                  f"times as strong -> {root / 'stream.h5'} (the first run compiles the synthesizer's kernels, about 30 s)")
    params = PRESETS["mixed"].scale_contrast(contrast)
    with atomic_output(root / "defects.json", name="out", overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(params.to_dict(), indent=1) + "\n")
    stream = root / "stream.h5"
    write_balanced_stream(stream, scans, n, preset=params, augment=None, size=size, seed=seed, overwrite=overwrite,
                          verbose=verbose)
    return stream


def _inspect_new_sheet(root: Path, model: Path, *, seed, size, n_defects, contrast, overwrite, verbose):
    """Plant defects in a new sheet of the product, inspect it; which planted defects were flagged."""
    from ispad_core.io import write_png
    from ispad_core.nn.inference import inspect_files
    from ispad_core.samples import inspection_scan

    # the same product (same seed, so the same design) on a sheet of another size: a new sheet
    planted = inspection_scan((1536, 1536), rng=seed, kind="mixed", n_defects=n_defects, strength=contrast, region=max(2 * size, 96))
    scan_dir = root / "new_scans"
    scan_dir.mkdir(exist_ok=True)
    scan_file = scan_dir / "scan.png"
    write_png(scan_file, planted.image, overwrite=overwrite)
    report = inspect_files([scan_file], model=model, out=root / "results", overwrite=overwrite, verbose=verbose)
    outcome = report.scans[0]
    if not outcome.ok:
        raise RuntimeError(f"the demo's own scan could not be inspected: {outcome.error}")
    payload = json.loads(Path(outcome.json).read_text())
    flagged = [(w["row"], w["col"], w["size"]) for w in payload["flagged"]]
    return report, planted, tuple(any(_overlaps(w, box) for w in flagged) for box in planted.boxes)
