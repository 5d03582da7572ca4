"""Measure the drift test of ``ispad inspect --design`` on scans of one screen-printed design.

A fault-free print of 1920 x 1920 px (``ispad_core.samples.screen_print``, which shades slowly and
varies its ink density across the sheet, as real sheets do) is cut into 100 scans of 192 x 192;
30 calibrate a texture-sensitive detector stand-in (P(defective) rises with the window's mean
absolute Laplacian), the other 70 are tested one at a time: as they are, 20 % brighter, 20 %
darker, and blurred (3 x 3 Gaussian, sigma 1). Prints the share of scans flagged at alpha 0.05 by
``score_drift`` with the calibration's design effect (what inspect does) and without it (windows
taken as independent).

    PYTHONPATH=$PWD python docs/calibration_drift.py
"""

from __future__ import annotations

import numpy as np
import torch

from ispad_core.metrics import score_drift
from ispad_core.nn import Preprocess, calibrate
from ispad_core.nn.inference import predict_windows
from ispad_core.preprocess import adjust_brightness, gaussian_smooth
from ispad_core.samples import screen_print


class Contrast(torch.nn.Module):
    """Logit of P(defective) = (mean |Laplacian| - centre) / scale."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, bias=False)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
        self.register_buffer("centre", torch.tensor(0.0))
        self.register_buffer("scale", torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.conv(x).abs().mean(dim=(1, 2, 3)) - self.centre) / self.scale
        return torch.stack([torch.zeros_like(z), z], dim=1)


def contrast_model(tiles: list) -> tuple:
    """The stand-in with its logit centred on ``tiles`` and scaled to twice their spread, and its metadata."""
    net = Contrast().eval()
    p = np.concatenate([predict_windows(net, t, size=32, preprocess=Preprocess(), precision="fp32")[0] for t in tiles])
    f = np.log(p / (1 - p))
    net.centre.fill_(float(f.mean()))
    net.scale.fill_(float(2 * f.std()))
    meta = {"backbone": "contrast", "in_channels": 1, "num_classes": 2, "patch_size": 32,
            "preprocess": Preprocess().to_dict(), "threshold": 0.5}
    return net, meta


def main() -> None:
    big = screen_print((1920, 1920), rng=0, kind="dots")
    tiles = [big[r:r + 192, c:c + 192] for r in range(0, 1920, 192) for c in range(0, 1920, 192)]
    order = np.random.default_rng(0).permutation(len(tiles))
    good, test = [tiles[i] for i in order[:30]], [tiles[i] for i in order[30:]]
    net, meta = contrast_model(good[:4])
    cal = calibrate((net, meta), good, design="dots", target_fpr=0.01, verbose=False, precision="fp32")
    deff = cal.design_effect
    print(f"calibration: {cal.n_windows} windows from {cal.n_scans} scans, design effect {deff:.1f}")
    changes = {"unchanged": lambda im: im, "20 % brighter": lambda im: adjust_brightness(im, 1.2),
               "20 % darker": lambda im: adjust_brightness(im, 0.8),
               "blurred (sigma 1)": lambda im: gaussian_smooth(im, sigma=1.0, ksize=3)}
    print(f"share of {len(test)} single-scan runs flagged at alpha 0.05:")
    print(f"  {'scans':20s} {'with design effect':>18s} {'windows independent':>20s}")
    for name, change in changes.items():
        with_d = without = 0
        for im in test:
            s = predict_windows(net, change(im), size=32, preprocess=Preprocess(), precision="fp32")[0]
            with_d += score_drift(cal.sample, s, alpha=0.05, n_ref=cal.n_windows, design_effect=deff).drift
            without += score_drift(cal.sample, s, alpha=0.05, n_ref=cal.n_windows).drift
        print(f"  {name:20s} {with_d / len(test):18.3f} {without / len(test):20.3f}")


if __name__ == "__main__":
    main()
