"""Make the figures of docs/inspection.md from the library itself.

    python docs/make_inspection_figures.py      # docs/figures/inspection_overlay*.png, inspection_example.json

How the figures are made (about ten minutes on two shared CPU cores):

1. The product: the built-in screen print of seed 0 (``screen_print(shape, rng=0)``: the seed
   fixes the design -- periods, angles, inks -- and the shape changes the sheet's slow
   variations and its noise), as an inspection line sees sheets of one product.
2. Training data: balanced streams (``balanced_stream``: half the patches with synthetic defects,
   table-8 ``lsm1`` augmentation) of 64 x 64 patches from two fault-free sheets of that product
   (2 048 and 1 792 px square), 32 768 patches for training and 2 048 for validation from a third
   sheet (1 664 px). The synthetic defects are the presets planted in the scan below (fiber-dark,
   scratch, dot-dark, inclusion, equally likely) at twice their contrast, as in the scan.
3. Model: a small CNN (five 3 x 3 convolutions with batch norm, global max and mean pooling, a
   2-way head; 65 000 parameters), trained with ``ispad_core.nn.train`` (AdamW 3e-3, batch 64,
   1 000 steps, ``lsm2`` preprocessing); the threshold is the F1-optimal one on the validation
   patches (``evaluate``), as the paper sets it. A ResNet-18 from random initialisation did not
   move in 400 steps at this budget (validation MCC 0), so the figure uses the small network.
4. Scan: ``inspection_scan`` (1 536 x 1 536, seed 0: another sheet of the same product) with
   three defects planted by the synthesizer (fiber-dark, scratch, dot-dark at twice the presets'
   contrast), saved as a PNG.
5. ``inspect_files`` with the trained model and its metadata writes the JSON report and the
   overlay exactly as ``ispad inspect`` does (windows of 64 px at stride 40, overlay shrunk to
   768 px); the overlay is copied to ``docs/figures/inspection_overlay.png`` and the green boxes of
   the planted defects are drawn on a second copy, ``inspection_overlay_truth.png``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from ispad_core.nn import evaluate, train
from ispad_core.nn.inference import inspect_files
from ispad_core.samples import inspection_scan, screen_print
from ispad_core.stream import balanced_stream
from ispad_core.synth import PRESETS, DefectMixture

OUT = Path(__file__).resolve().parent / "figures"
SIZE, STEPS, STRENGTH = 64, 1000, 2.0
NAMES = ("fiber-dark", "scratch", "dot-dark", "inclusion")


def _stronger(p):
    cap = 0.95 if p.contrast_mode == "relative" else 255.0
    lo, hi = p.contrast
    return dataclasses.replace(p, contrast=(min(lo * STRENGTH, cap), min(hi * STRENGTH, cap)))


MIX = DefectMixture(tuple(_stronger(PRESETS[n]) for n in NAMES), (1.0,) * len(NAMES), NAMES)


class SmallNet(nn.Module):
    """Five 3 x 3 conv + BN + ReLU layers, global max and mean pooling, a 2-way head."""

    in_channels = 1

    def __init__(self):
        super().__init__()

        def block(i, o, s):
            return [nn.Conv2d(i, o, 3, stride=s, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(*block(1, 16, 1), *block(16, 32, 2), *block(32, 32, 1), *block(32, 64, 2),
                                      *block(64, 64, 1))
        self.fc = nn.Linear(128, 2)

    def forward(self, x):
        h = self.features(x)
        return self.fc(torch.cat([h.amax(dim=(2, 3)), h.mean(dim=(2, 3))], 1))


def _stream(sides, n, seed):
    sheets = [screen_print((s, s), rng=0) for s in sides]  # one product (seed 0), sheets of other sizes
    xs, ys = [], []
    for x, _, y in balanced_stream(sheets, n, preset=MIX, augment="lsm1", rng=seed, size=SIZE):
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def main() -> None:
    t0 = time.perf_counter()
    train_set = _stream((2048, 1792), 32768, seed=1)
    val_set = _stream((1664,), 2048, seed=2)
    torch.manual_seed(0)
    model = SmallNet()
    train(model, train_set, val_set, batch_size=64, max_steps=STEPS, optimizer="adamw", lr=3e-3, t_0=STEPS,
          preprocess="lsm2", verbose=True)
    report = evaluate(model, val_set, preprocess="lsm2")
    print(f"trained in {time.perf_counter() - t0:.0f} s; validation: MCC {report.mcc:.2f}, recall {report.recall:.1f} %, "
          f"FPR {report.fpr:.1f} %, F1-optimal threshold {report.threshold:.4f}")
    meta = {"backbone": "SmallNet (docs/make_inspection_figures.py)", "in_channels": 1, "num_classes": 2,
            "patch_size": SIZE, "preprocess": {"brightness": 1.0, "ksize": 3, "sigma": 1.0, "mean": 0.449, "std": 0.226},
            "threshold": float(report.threshold)}
    scan = inspection_scan((1536, 1536), rng=0, n_defects=3, strength=STRENGTH)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        iio.imwrite(tmp / "scan.png", scan.image)
        result = inspect_files([tmp / "scan.png"], model=(model, meta), out=tmp / "results", overlay_max_side=768,
                               verbose=False)
        outcome = result.scans[0]
        print(outcome)
        payload = json.loads(outcome.json.read_text())
        OUT.mkdir(exist_ok=True)
        shutil.copyfile(outcome.overlay, OUT / "inspection_overlay.png")
        excerpt = {k: payload[k] for k in ("format", "format_version", "decision", "defective", "threshold", "max_score",
                                           "hottest_window", "windows", "inference", "timings", "notes")}
        excerpt["flagged"] = payload["flagged"][:5] + ([f"... {len(payload['flagged']) - 5} more"] if len(payload["flagged"]) > 5 else [])
        (OUT / "inspection_example.json").write_text(json.dumps(excerpt, indent=2) + "\n")
    picture = Image.open(OUT / "inspection_overlay.png").convert("RGB")
    draw = ImageDraw.Draw(picture)
    f = 1536 / picture.size[0]
    for r0, c0, r1, c1 in scan.boxes:
        draw.rectangle([c0 / f - 4, r0 / f - 4, c1 / f + 4, r1 / f + 4], outline=(0, 220, 0), width=2)
    picture.save(OUT / "inspection_overlay_truth.png")
    for (r0, c0, r1, c1), preset in zip(scan.boxes, scan.presets):
        ranks = [k + 1 for k, w in enumerate(payload["flagged"])
                 if w["row"] < r1 and r0 < w["row"] + SIZE and w["col"] < c1 and c0 < w["col"] + SIZE]
        print(f"planted {preset} at rows {r0}-{r1}, cols {c0}-{c1}: overlapped by flagged windows of rank {ranks[:5]}")
    print(f"wrote {OUT / 'inspection_overlay.png'}, {OUT / 'inspection_overlay_truth.png'} and {OUT / 'inspection_example.json'}")


if __name__ == "__main__":
    main()
