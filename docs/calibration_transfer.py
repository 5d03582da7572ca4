"""Does a model's validation threshold transfer to other designs, and does calibration fix it?

A model file (argument 1, e.g. the README's factory path's model.pt, a ResNet-18 trained for 50
steps on 64 x 64 patches of the built-in sample, as ``.ci/factory_path.py`` makes it) scores the
fault-free windows of the four built-in print designs (``screen_print`` kinds dots, lines, mesh,
mixed; one 1920 x 1920 print each, cut into 100 scans of 192 x 192 px, 25 windows per scan on the
inspection grid, fp32). For 20 seeded splits of the scans into 50 to calibrate and 50 to inspect,
the design's threshold is taken as ``calibrate`` takes it (``fpr_threshold`` of the calibration
windows at R = 0.01; split 0 also through ``calibrate`` itself, which must agree), and the share
of the other 50 scans' windows at or over it is the realised false-alarm rate. Prints per design
the rate with the model's validation threshold, and the mean and range over the splits of the rate
with the calibrated one; and the share of the inspected scans that the drift test
(``score_drift`` with the calibration's design effect, alpha 0.05) flags, one scan per run.

    PYTHONPATH=$PWD python docs/calibration_transfer.py model.pt
"""

from __future__ import annotations

import sys

import numpy as np

from ispad_core.metrics import calibration_sample, design_effect, fpr_threshold, score_drift
from ispad_core.nn import calibrate, load_model
from ispad_core.nn.inference import predict_windows
from ispad_core.nn.preprocessing import Preprocess
from ispad_core.samples import KINDS, screen_print

R = 0.01
SPLITS = 20


def main(path: str) -> None:
    net, meta = load_model(path)
    size, pre = meta["patch_size"], Preprocess(**meta["preprocess"])
    print(f"model {path}: validation threshold {meta['threshold']:.4g}, {size} px windows, fp32; R = {R}, "
          f"{SPLITS} splits of 100 scans into 50 + 50")
    print(f"{'design':8s} {'FPR, validation threshold':>26s} {'FPR, calibrated: mean':>22s} {'min':>7s} {'max':>7s} "
          f"{'drift flagged':>14s}")
    for kind in KINDS:
        big = screen_print((1920, 1920), rng=11, kind=kind)
        tiles = [big[r:r + 192, c:c + 192] for r in range(0, 1920, 192) for c in range(0, 1920, 192)]
        scores = [predict_windows(net, t, size=size, preprocess=pre, precision="fp32")[0] for t in tiles]
        realised, flagged = [], 0
        for split in range(SPLITS):
            order = np.random.default_rng(split).permutation(len(tiles))
            cal_scans, test_scans = [scores[i] for i in order[:50]], [scores[i] for i in order[50:]]
            pooled = np.concatenate(cal_scans)
            t = fpr_threshold(pooled, R).threshold
            if split == 0:
                cal = calibrate((net, meta), [tiles[i] for i in order[:50]], design=kind, target_fpr=R, verbose=False,
                                precision="fp32")
                assert abs(cal.threshold - t) < 1e-6, (cal.threshold, t)
            test = np.concatenate(test_scans)
            realised.append(float(np.mean(test >= t)))
            sample, deff = calibration_sample(pooled), design_effect(cal_scans)
            flagged += sum(score_drift(sample, s, alpha=0.05, n_ref=pooled.size, design_effect=deff).drift
                           for s in test_scans)
        every = np.concatenate(scores)
        r = np.array(realised)
        print(f"{kind:8s} {np.mean(every >= meta['threshold']):26.2%} {r.mean():22.2%} {r.min():7.2%} {r.max():7.2%} "
              f"{flagged / (50 * SPLITS):14.1%}")


if __name__ == "__main__":
    main(sys.argv[1])
