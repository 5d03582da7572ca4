"""Make the figures of docs/training.md from the library itself.

    python docs/make_training_figures.py            # writes docs/figures/training_*.png

- ``training_injection.png``: real defects per batch of 128 drawn by ``InjectionDataset`` for
  p_inj = 1/128, 1/32 (the paper) and 1/4 over 4 000 batches (bars) beside the Binomial(128, p_inj)
  probabilities (dots): each item is injected independently, so the count per batch is binomial.
- ``training_batch.png``: one batch of 32 from ``InjectionDataset`` with p_inj = 1/4 over a
  balanced stream of 64 x 64 patches of the built-in sample (``screen_print``) with synthetic dots
  (``synthesize_batch``); frames: green fault-free, orange synthetic defect, red injected real
  defect (here high-contrast scratches standing in for the real ones).
- ``training_schedule.png``: the learning rate of ``train``'s defaults (5e-4 -> 1e-5, cosine warm
  restarts, T_0 = 7813 iterations, T_mult = 2) over the first 54 691 iterations, read from the
  torch scheduler that ``train`` builds.

Needs torch (the ``[torch]`` extra) and Pillow (installed with imageio).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ispad_core.nn import InjectionDataset
from ispad_core.samples import screen_print
from ispad_core.synth import PRESETS, synthesize_batch

OUT = Path(__file__).resolve().parent / "figures"
BLUE, ORANGE, GREY, BLACK = (31, 119, 180), (255, 127, 14), (200, 200, 200), (0, 0, 0)


class _Axes:
    """A minimal line/bar plot on a PIL image (no matplotlib in the environment)."""

    def __init__(self, draw, box, xlim, ylim):
        self.d, self.box, self.xlim, self.ylim = draw, box, xlim, ylim
        draw.rectangle(box, outline=BLACK)

    def px(self, x, y):
        (x0, y0, x1, y1), (a, b), (c, e) = self.box, self.xlim, self.ylim
        return x0 + (x - a) / (b - a) * (x1 - x0), y1 - (y - c) / (e - c) * (y1 - y0)

    def ticks(self, xs, ys, xfmt="{:g}", yfmt="{:g}"):
        x0, y0, x1, y1 = self.box
        for x in xs:
            px, _ = self.px(x, self.ylim[0])
            self.d.line([(px, y1), (px, y1 + 4)], fill=BLACK)
            label = xfmt.format(x)
            self.d.text((px - 3 * len(label), y1 + 6), label, fill=BLACK)
        for y in ys:
            _, py = self.px(self.xlim[0], y)
            self.d.line([(x0 - 4, py), (x0, py)], fill=BLACK)
            self.d.line([(x0 + 1, py), (x1 - 1, py)], fill=(235, 235, 235))
            label = yfmt.format(y)
            self.d.text((x0 - 8 - 6 * len(label), py - 5), label, fill=BLACK)

    def title(self, text):
        x0, y0, _, _ = self.box
        self.d.text((x0, y0 - 16), text, fill=BLACK)


def injection_figure(path: Path) -> None:
    b, n_batches = 128, 4000
    stream = [(np.zeros((1, 1), np.uint8), 0)] * (b * n_batches)
    real = np.zeros((1, 1, 1), np.uint8)
    panels = [(1 / 128, "p_inj = 1/B = 1/128"), (1 / 32, "p_inj = 1/32 (the paper)"), (0.25, "p_inj = 0.25")]
    img = Image.new("RGB", (1020, 330), "white")
    d = ImageDraw.Draw(img)
    for k, (p, label) in enumerate(panels):
        ds = InjectionDataset(stream, real, p_inj=p, batch_size=b, seed=0)
        counts = ds.plan().injected.reshape(n_batches, b).sum(axis=1)
        kmax = int(max(counts.max(), b * p + 4 * math.sqrt(b * p * (1 - p)))) + 1
        freq = np.bincount(counts, minlength=kmax + 1)[: kmax + 1] / n_batches
        ks = np.arange(kmax + 1)
        pmf = np.array([math.comb(b, int(j)) * p**j * (1 - p) ** (b - j) for j in ks])
        ymax = max(freq.max(), pmf.max()) * 1.15
        ax = _Axes(d, (60 + k * 330, 40, 320 + k * 330, 280), (-0.5, kmax + 0.5), (0, ymax))
        width = max(1.0, 200 / (kmax + 1))
        for j, f in zip(ks, freq):
            x, y = ax.px(j, f)
            _, y0 = ax.px(j, 0)
            d.rectangle([x - width / 2, y, x + width / 2, y0], fill=BLUE)
        for j, q in zip(ks, pmf):
            x, y = ax.px(j, q)
            d.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=ORANGE)
        step = max(1, (kmax + 1) // 6)
        ax.ticks(range(0, kmax + 1, step), np.round(np.linspace(0, ymax / 1.15, 4), 2))
        ax.title(f"{label}: mean {counts.mean():.2f}, P(0) {np.mean(counts == 0):.2f}")
        d.text((150 + k * 330, 300), "real defects per batch of 128", fill=BLACK)
    d.text((60, 8), "bars: InjectionDataset, 4000 batches    dots: Binomial(128, p_inj)", fill=BLACK)
    img.save(path, optimize=True)


def batch_figure(path: Path) -> None:
    import dataclasses
    import warnings

    rng = np.random.default_rng(0)
    sample = screen_print((512, 512), rng=0)

    def crops(n):
        r, c = rng.integers(0, 512 - 64, n), rng.integers(0, 512 - 64, n)
        return np.stack([sample[a:a + 64, b:b + 64] for a, b in zip(r, c)])

    dots = dataclasses.replace(PRESETS["dot-dark"], contrast=(40.0, 60.0), width=(3.0, 5.0), steps=(3, 8),
                               bright_probability=0.5)
    scratches = dataclasses.replace(PRESETS["scratch"], contrast=(40.0, 60.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flags = np.arange(64) % 2 == 1
        stream = synthesize_batch(crops(64), dots, rng=rng, defective=flags)
        real = synthesize_batch(crops(8), scratches, rng=rng).images
    items = list(zip(stream.images, (flags & stream.accepted).astype(int)))
    ds = InjectionDataset(items, real, p_inj=0.25, batch_size=32, seed=1)
    injected = ds.plan().injected
    img = Image.new("RGB", (8 * 74 + 6, 4 * 74 + 30), "white")
    d = ImageDraw.Draw(img)
    for k in range(32):
        patch, label = ds[k]
        colour = (220, 30, 30) if injected[k] else ((255, 140, 0) if label else (0, 170, 0))
        x, y = 6 + (k % 8) * 74, 24 + (k // 8) * 74
        d.rectangle([x - 3, y - 3, x + 66, y + 66], fill=colour)
        img.paste(Image.fromarray(patch).convert("RGB"), (x, y))
    d.text((6, 6), f"one batch, p_inj = 1/4: {int(injected[:32].sum())} injected (red), synthetic defects (orange), "
                   "fault-free (green)", fill=BLACK)
    img.save(path, optimize=True)


def schedule_figure(path: Path) -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=5e-4, momentum=0.9, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=7813, T_mult=2, eta_min=1e-5)
    n = 7813 * 7
    lrs = np.empty(n)
    for i in range(n):
        lrs[i] = sched.get_last_lr()[0]
        opt.step()
        sched.step()
    img = Image.new("RGB", (700, 300), "white")
    d = ImageDraw.Draw(img)
    ax = _Axes(d, (80, 30, 680, 250), (0, n), (0, 5.5e-4))
    pts = [ax.px(i, lrs[i]) for i in range(0, n, 25)]
    d.line(pts, fill=BLUE, width=2)
    for restart in (7813, 7813 * 3):
        x, _ = ax.px(restart, 0)
        d.line([(x, 30), (x, 250)], fill=GREY)
    ax.ticks([0, 7813, 23439, 54691], [1e-5, 2.5e-4, 5e-4], xfmt="{:d}", yfmt="{:.1e}")
    ax.title("train() defaults: lr 5e-4 -> 1e-5, cosine warm restarts T_0 = 7813 it, T_mult = 2")
    d.text((300, 275), "iteration (scheduler steps once per batch)", fill=BLACK)
    img.save(path, optimize=True)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    injection_figure(OUT / "training_injection.png")
    schedule_figure(OUT / "training_schedule.png")
    batch_figure(OUT / "training_batch.png")
    for name in ("training_injection.png", "training_schedule.png", "training_batch.png"):
        print(f"wrote {OUT / name} ({(OUT / name).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
