"""Separate the detector from its threshold in an ``ispad experiment`` folder (docs/reproduction.md).

The grid scores every test set at the F1-optimal threshold of the validation set, as the paper
does. When the validation and test patches come from different designs, that threshold may not
transfer, and the test MCC then measures the transfer as much as the detector. This script reads
the scores every run saved (``runs/<run>/report.json``) and prints, per configuration (mean over
seeds, min to max):

- ``MCC``: the grid's test MCC, at the validation threshold (``results.md``);
- ``MCC at test F1``: the test MCC at the test set's own F1-optimal threshold, the best the same
  scores could do with a threshold that transferred perfectly (an upper bound no deployment has);
- ``AUROC``: threshold-free;
- ``FPR``: the false-positive rate (percent) at the validation threshold.

It also draws ``runs/mcc_vs_real_test_f1.png``, the grid's figure (``runs/mcc_vs_real.png``) with
the MCC at the test set's own F1-optimal threshold.

Run from the repository root:  python docs/reproduction_threshold.py runs/
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ispad_core.experiment.report import plot_mcc  # noqa: E402
from ispad_core.io import read_mvtec  # noqa: E402
from ispad_core.metrics import classification_report, f1_optimal_threshold  # noqa: E402


def _spread(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.2f} ({v.min():.2f} to {v.max():.2f})"


def main(runs: Path) -> None:
    config = json.loads((runs / "config.json").read_text())
    labels = read_mvtec(config["data"]["test"], split="test").test_labels.astype(np.int64)
    rows: dict[tuple, list[dict]] = {}
    plot_rows = []
    for report_path in sorted(runs.glob("*/report.json")):
        report = json.loads(report_path.read_text())
        scores = np.asarray(report["test_scores"], dtype=np.float64)
        if scores.shape != labels.shape:
            raise ValueError(f"{report_path}: {scores.size} test scores for {labels.size} test patches")
        own = classification_report(labels, scores, threshold=float(f1_optimal_threshold(labels, scores)))
        key = (report["strategy"], report["group"], report["selection"], report["n_real"])
        plot_rows.append({"strategy": report["strategy"], "group": report["group"], "backbone": report["backbone"],
                          "n_real": report["n_real"], "mcc": own.mcc})
        rows.setdefault(key, []).append(
            {"mcc": report["test"]["mcc"], "own": own.mcc, "auroc": report["test"]["auroc"],
             "fpr": report["test"]["fpr"]})
    print("| Strategy | Defect group | Selection | #Real defects | Seeds | MCC | MCC at test F1 | AUROC | FPR (%) |")
    print("|---|---|---|---|---|---|---|---|---|")
    order = {"synthetic": 0, "mixed": 1, "oversampling": 2}
    for (strategy, group, selection, n_real), rs in sorted(rows.items(), key=lambda kv: (order[kv[0][0]], kv[0][3])):
        print(f"| {strategy} | {group} | {selection} | {n_real} | {len(rs)} | {_spread([r['mcc'] for r in rs])} | "
              f"{_spread([r['own'] for r in rs])} | {_spread([r['auroc'] for r in rs])} | "
              f"{np.mean([r['fpr'] for r in rs]):.1f} |")
    plot_mcc(runs / "mcc_vs_real_test_f1.png", plot_rows,
              title="MCC at the test set's own F1-optimal threshold (mean over seeds, band: min to max)")
    print(f"figure: {runs / 'mcc_vs_real_test_f1.png'}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python docs/reproduction_threshold.py RUNS_FOLDER")
    main(Path(sys.argv[1]))
