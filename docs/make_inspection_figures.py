"""Make the figure of docs/inspection.md from the library itself.

    python docs/make_inspection_figures.py        # writes docs/figures/inspection_overlay.png

How the figure is made (a few minutes on two CPU cores):

1. Training data: a balanced stream (``balanced_stream``: half the patches with synthetic defects of
   the ``mixed`` preset, table-8 ``lsm1`` augmentation) of 64 x 64 patches cut from four built-in
   fault-free screen prints (``screen_print``, one per design), 6 144 patches for training and 1 024
   for validation from other prints.
2. Model: the paper's ResNet-18 (``resnet18_classifier``, one channel, random initialisation),
   trained briefly with ``ispad_core.nn.train`` (AdamW 1e-3, batch 32, ``lsm2`` preprocessing,
   bf16 autocast and channels-last on the CPU, ``MAX_STEPS`` steps: 400 or the first argument);
   the threshold is the F1-optimal one on the validation patches
   (``evaluate``), as the paper sets it.
3. Scan: ``inspection_scan`` (1 536 x 1 536, seed 0) with three defects planted by the
   synthesizer (fiber-dark, scratch, dot-dark at twice the presets' contrast), saved as a PNG.
4. ``inspect_files`` with the trained model and its metadata writes the JSON report and the
   overlay exactly as ``ispad inspect`` does (windows of 64 px at stride 40, overlay shrunk to
   768 px); the overlay is copied to ``docs/figures/inspection_overlay.png`` and the green boxes of
   the planted defects are added to a second copy, ``inspection_overlay_truth.png``.

The small patch size keeps the training within minutes on a CPU; the paper's 256 x 256 windows
work the same way (``ispad train`` / ``ispad inspect`` with the defaults).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image, ImageDraw

from ispad_core.nn import evaluate, resnet18_classifier, train
from ispad_core.nn.inference import inspect_files
from ispad_core.samples import KINDS, inspection_scan, screen_print
from ispad_core.stream import balanced_stream

OUT = Path(__file__).resolve().parent / "figures"
SIZE = 64
MAX_STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 400


def _stream(seed: int, n: int):
    images = [screen_print((640, 640), rng=np.random.default_rng([seed, k]), kind=kind) for k, kind in enumerate(KINDS)]
    patches, labels = [], []
    for x, _, y in balanced_stream(images, n, preset="mixed", augment="lsm1", rng=seed, size=SIZE):
        patches.append(x)
        labels.append(y)
    return np.concatenate(patches), np.concatenate(labels).astype(np.int64)


def main() -> None:
    torch.manual_seed(0)
    t0 = time.perf_counter()
    train_set = _stream(1, 6144)
    val_set = _stream(2, 1024)
    print(f"streams: {time.perf_counter() - t0:.0f} s")
    model = resnet18_classifier(in_channels=1)
    train(model, train_set, val_set, batch_size=32, max_steps=MAX_STEPS, optimizer="adamw", lr=1e-3,
          t_0=MAX_STEPS, preprocess="lsm2", amp=True, channels_last=True, verbose=True)
    report = evaluate(model, val_set, preprocess="lsm2")
    print(f"trained in {time.perf_counter() - t0:.0f} s; validation: MCC {report.mcc:.2f}, recall {report.recall:.1f} %, "
          f"FPR {report.fpr:.1f} %, F1-optimal threshold {report.threshold:.4f}")
    meta = {"backbone": "resnet18", "in_channels": 1, "num_classes": 2, "patch_size": SIZE,
            "preprocess": {"brightness": 1.0, "ksize": 3, "sigma": 1.0, "mean": 0.449, "std": 0.226},
            "threshold": float(report.threshold)}
    scan = inspection_scan((1536, 1536), rng=0, n_defects=3, strength=2.0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        iio.imwrite(tmp / "scan.png", scan.image)
        result = inspect_files([tmp / "scan.png"], model=(model, meta), out=tmp / "results", overlay_max_side=768,
                               show_progress=False)
        outcome = result.scans[0]
        print(outcome)
        payload = json.loads(outcome.json.read_text())
        OUT.mkdir(exist_ok=True)
        shutil.copyfile(outcome.overlay, OUT / "inspection_overlay.png")
        (OUT / "inspection_example.json").write_text(json.dumps(
            {k: payload[k] for k in ("decision", "threshold", "max_score", "hottest_window", "windows", "timings")}
            | {"flagged": payload["flagged"][:5]}, indent=2) + "\n")
    picture = Image.open(OUT / "inspection_overlay.png").convert("RGB")
    draw = ImageDraw.Draw(picture)
    f = 1536 / picture.size[0]
    for r0, c0, r1, c1 in scan.boxes:
        draw.rectangle([c0 / f - 4, r0 / f - 4, c1 / f + 4, r1 / f + 4], outline=(0, 220, 0), width=2)
    picture.save(OUT / "inspection_overlay_truth.png")
    hits = []
    for r0, c0, r1, c1 in scan.boxes:
        inside = [(w["row"], w["col"]) for w in payload["flagged"]
                  if w["row"] <= r0 and w["col"] <= c0 and r1 <= w["row"] + SIZE and c1 <= w["col"] + SIZE]
        hits.append(bool(inside))
    print(f"planted defects {scan.presets} at {scan.boxes.tolist()}: covered by a flagged window: {hits}")
    print(f"wrote {OUT / 'inspection_overlay.png'}, {OUT / 'inspection_overlay_truth.png'} "
          f"and {OUT / 'inspection_example.json'}")


if __name__ == "__main__":
    main()
