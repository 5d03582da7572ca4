"""The grid at three thresholds: validation, calibrated per test design, test-optimal (docs/reproduction.md).

``ispad experiment`` on a benchmark with calibration sheets calibrates every run on each test
design's fault-free sheets at a false-alarm rate per window R (``[calibration] target_fpr``) and
stores the thresholds in ``runs/<run>/report.json`` (``calibrated``). This script reads those
reports, scores every test patch at its own design's threshold again from the saved test scores
(and checks that it gives the MCC the grid wrote), and prints:

- per run: the test MCC at the validation threshold (the paper's), at the calibrated thresholds
  and at the test set's own F1-optimal threshold (a ceiling that looks at the test labels), the
  ratio calibrated / test-optimal, the measured window FPR on the test set's fault-free patches
  against R, and whether the goal holds (calibrated >= 0.9 x test-optimal, measured FPR within
  2x of R, i.e. R/2 to 2R), and the measured FPR of each test design (in the designs' name order);
- per configuration (a run folder's name without its seed; mean over seeds, min to max): the
  three MCCs and the recall of each defect group at the calibrated thresholds (the paper's
  claims re-read there);

with ``--recall``, per run also the recall of each defect group at the calibrated thresholds and
the AUROC; and draws ``<runs>/mcc_vs_real_calibrated.png`` for every folder, the grid's figure
(``runs/mcc_vs_real.png``) with the MCC at the calibrated thresholds.

Run from the repository root:  python docs/reproduction_calibrated.py [--recall] runs/ [runs_long/ ...]
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ispad_core.experiment.calibrated import read_test_designs  # noqa: E402
from ispad_core.experiment.report import plot_mcc  # noqa: E402
from ispad_core.io import read_mvtec  # noqa: E402
from ispad_core.metrics import mcc  # noqa: E402


def _spread(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.2f} ({v.min():.2f} to {v.max():.2f})"


def _rows(runs: Path) -> list[dict]:
    config = json.loads((runs / "config.json").read_text())
    test = read_mvtec(config["data"]["test"], split="test")
    labels = test.test_labels.astype(np.int64)
    groups = np.asarray(test.test_groups)
    designs = np.asarray(read_test_designs(config["data"]["test_designs"], test.test_names))
    steps = config["train"]["steps"]
    out = []
    for report_path in sorted(runs.glob("*/report.json")):
        r = json.loads(report_path.read_text())
        c = r.get("calibrated")
        if not c:
            raise ValueError(f"{report_path}: no calibration; run ispad experiment on it again with the calibration sheets")
        scores = np.asarray(r["test_scores"], dtype=np.float64)
        thr = np.array([c["thresholds"][d] for d in designs])
        pred = scores >= thr
        again = mcc(labels, pred.astype(np.int64))
        if abs(again - c["cal_mcc"]) > 1e-9:
            raise ValueError(f"{report_path}: calibrated MCC {c['cal_mcc']} but the thresholds give {again}")
        fpr = float(pred[labels == 0].mean())
        out.append({
            "steps": steps, "strategy": r["strategy"], "group": r["group"], "backbone": r["backbone"],
            "n_real": r["n_real"], "seed": r["seed"],
            "run": _run_name(report_path.parent.name),
            "val": r["test"]["mcc"], "cal": again, "opt": c["opt_mcc"], "fpr": fpr, "ratio": fpr / c["target_fpr"],
            "rate": c["target_fpr"], "recall": {g: float(100 * pred[groups == g].mean()) for g in ("points", "area")},
            "windows": c["n_windows"], "auroc": r["test"]["auroc"],
            "by_design": [float(100 * pred[(labels == 0) & (designs == d)].mean()) for d in sorted(set(designs.tolist()))],
        })
    return out


def _run_name(folder: str) -> str:
    """A run folder's name without its seed and backbone: the configuration it belongs to."""
    return folder.rsplit("_seed", 1)[0].replace("_resnet18", "")


def _goal(row: dict) -> str:
    mcc_ok = row["opt"] > 0 and row["cal"] >= 0.9 * row["opt"]
    fpr_ok = 0.5 <= row["ratio"] <= 2.0
    return "met" if mcc_ok and fpr_ok else "not met (" + ", ".join(
        w for w, bad in (("MCC", not mcc_ok), ("FPR", not fpr_ok)) if bad) + ")"


def main(folders: list[Path], recall: bool = False) -> None:
    per_folder = {f: _rows(f) for f in folders}
    rows = [row for f in folders for row in per_folder[f]]
    order = {"synthetic": 0, "mixed": 1, "oversampling": 2}
    rows.sort(key=lambda x: (x["steps"], order[x["strategy"]], x["n_real"], x["run"], x["seed"]))
    print("| Steps | Run | #Real | Seed | MCC validation thr. | MCC calibrated | MCC test-optimal | "
          "Calibrated / test-optimal | FPR calibrated (%) | FPR / R | FPR per design (%) | Goal |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for x in rows:
        ratio = x["cal"] / x["opt"] if x["opt"] > 0 else float("nan")
        print(f"| {x['steps']} | {x['run']} | {x['n_real']} | {x['seed']} | {x['val']:.2f} | {x['cal']:.2f} | "
              f"{x['opt']:.2f} | {ratio:.2f} | {100 * x['fpr']:.2f} | {x['ratio']:.2f} | "
              f"{' / '.join(f'{v:.1f}' for v in x['by_design'])} | {_goal(x)} |")
    if recall:
        print("\n| Steps | Run | #Real | Seed | Recall area / points calibrated (%) | AUROC |")
        print("|---|---|---|---|---|---|")
        for x in rows:
            print(f"| {x['steps']} | {x['run']} | {x['n_real']} | {x['seed']} | {x['recall']['area']:.0f} / "
                  f"{x['recall']['points']:.0f} | {x['auroc']:.2f} |")
    met = sum(_goal(x) == "met" for x in rows)
    rates = ", ".join(sorted({format(x["rate"], "g") for x in rows}))
    windows = sorted({" ".join(f"{d} {n}" for d, n in sorted(x["windows"].items())) for x in rows})
    print(f"\ngoal met in {met} of {len(rows)} runs (R = {rates}); calibration windows per design: {'; '.join(windows)}\n")
    print("| Steps | Run | #Real | Seeds | MCC validation thr. | MCC calibrated | MCC test-optimal | "
          "Recall points calibrated (%) | Recall area calibrated (%) | FPR calibrated (%) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    keys: dict[tuple, list[dict]] = {}
    for x in rows:
        keys.setdefault((x["steps"], x["run"], x["n_real"]), []).append(x)
    for (steps, run, n_real), rs in keys.items():
        print(f"| {steps} | {run} | {n_real} | {len(rs)} | {_spread([x['val'] for x in rs])} | {_spread([x['cal'] for x in rs])} | "
              f"{_spread([x['opt'] for x in rs])} | {np.mean([x['recall']['points'] for x in rs]):.1f} | "
              f"{np.mean([x['recall']['area'] for x in rs]):.1f} | {100 * np.mean([x['fpr'] for x in rs]):.2f} |")
    for folder, folder_rows in per_folder.items():
        rates = ", ".join(sorted({format(x["rate"], "g") for x in folder_rows}))
        plot_mcc(folder / "mcc_vs_real_calibrated.png", [{**x, "mcc": x["cal"]} for x in folder_rows],
                 title=f"MCC at thresholds calibrated per test design, R = {rates} (mean over seeds, band: min to max)")
        print(f"figure: {folder / 'mcc_vs_real_calibrated.png'}")


if __name__ == "__main__":
    args = sys.argv[1:]
    with_recall = "--recall" in args
    folders = [Path(a) for a in args if a != "--recall"]
    if not folders:
        sys.exit("usage: python docs/reproduction_calibrated.py [--recall] RUNS_FOLDER [RUNS_FOLDER ...]")
    main(folders, recall=with_recall)
