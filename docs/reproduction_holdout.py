"""Does a calibrated threshold hold on new sheets of its design? (docs/reproduction.md)

``docs/reproduction_calibrated.py`` measures each run's false-alarm rate at its calibrated
thresholds on the test set's fault-free patches: 200 per design, 800 in all, so at R = 1 % about
8 false alarms are expected and the count alone scatters widely (even a threshold whose true rate
is exactly R gives a measured rate within a factor 2 of R, 0.5 % to 2 %, in only 95 % of runs).
This script measures the same thresholds on many more fault-free windows:

- ``--sheets K`` further fault-free sheets of every test design (``design_sheet`` with ``k`` from
  21 on: neither the calibration sheets, 1 to 4, nor the review loop's, 5 to 12), every window
  on the model's grid (169 per 512 px sheet);
- the test scan itself (the design rendered as the test patches were cut from it, ``k = 0``,
  fault-free), every window on the same grid.

For every run of the grid folders given (models and ``report.json`` with the calibration, as
``ispad experiment`` writes them on a benchmark with calibration sheets) it prints the measured
window FPR at each design's calibrated threshold on the held-out sheets and on the test scan,
beside the test patches' figure, and whether the held-out rate is within a factor 2 of R. As a
check of the scoring, the calibration sheets are scored the same way and the calibrated threshold
is recomputed from them (``fpr_threshold``); the script stops if it differs from the report's.

Run from the repository root after the grid of the section (``runs/``, ``runs_long/``)::

    python docs/reproduction_holdout.py --benchmark proxy/ --sheets 8 runs/ runs_long/
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ispad_core.io import read_image  # noqa: E402
from ispad_core.metrics import fpr_threshold  # noqa: E402
from ispad_core.samples import screen_print  # noqa: E402
from ispad_core.samples.proxy import design_sheet  # noqa: E402

FIRST_HELD_OUT = 21  # sheet index of the first held-out sheet


def held_out_sheets(bench: Path, n_sheets: int) -> tuple[dict, dict, dict]:
    """Per test design: the held-out sheets, the test scan (fault-free) and the calibration sheets."""
    meta = json.loads((bench / "calibration" / "calibration.json").read_text())
    side = json.loads((bench / "benchmark.json").read_text())["settings"]["scan_side"]
    held, scan, cal = {}, {}, {}
    for i, (design, drawn) in enumerate(sorted(meta["drawn"].items())):
        gen = np.random.default_rng([2026, i])
        held[design] = [design_sheet(drawn["seed"], drawn["kind"], side, FIRST_HELD_OUT + j,
                                     sheet_seed=int(gen.integers(2**32))) for j in range(n_sheets)]
        scan[design] = screen_print((side, side), rng=drawn["seed"], kind=drawn["kind"])
        cal[design] = [read_image(bench / "calibration" / f) for f in meta["designs"][design]]
    return held, scan, cal


def _scores(net, meta: dict, sheets: list) -> np.ndarray:
    """Every window's score on the model's grid, as ``calibrate`` scores a sheet (fp32)."""
    from ispad_core.nn.inference import predict_windows

    size = int(meta["patch_size"])
    return np.concatenate([predict_windows(net, s, size=size, preprocess=meta.get("preprocess", "lsm2"),
                                           precision="fp32")[0] for s in sheets])


def run_rows(runs: Path, held: dict, scan: dict, cal: dict, keep: Path | None = None) -> list[dict]:
    """One row per run of the grid folder ``runs``; with ``keep``, every window's score is also
    written to ``keep/<grid>__<run>.npz`` (``<design>/cal<i>``, ``<design>/held<j>``,
    ``<design>/scan`` per sheet) for other calibration rules to be tried without scoring again."""
    from ispad_core.nn import Preprocess, load_model
    from ispad_core.nn.detector import torch_threads

    threads = json.loads((runs / "config.json").read_text())["train"]["threads"]
    rows = []
    for report_path in sorted(runs.glob("*/report.json")):
        report = json.loads(report_path.read_text())
        c = report["calibrated"]
        net, meta = load_model(report_path.parent / "model.pt")
        meta = dict(meta)
        if isinstance(meta.get("preprocess"), dict):
            meta["preprocess"] = Preprocess(**meta["preprocess"])
        r = c["target_fpr"]
        row = {"run": f"{runs.name}/{report_path.parent.name}", "R": r, "held": {}, "scan": {}, "test": c["cal_fpr_by_design"]}
        kept = {}
        saved = keep / f"{runs.name}__{report_path.parent.name}.npz" if keep is not None else None
        earlier = dict(np.load(saved)) if saved is not None and saved.is_file() else None  # scored before: reused
        with torch_threads(threads):
            for design, thr in sorted(c["thresholds"].items()):
                if earlier is not None:
                    per_sheet = {k.split("/", 1)[1]: v for k, v in earlier.items() if k.startswith(design + "/")}
                else:
                    per_sheet = {f"cal{i}": _scores(net, meta, [im]) for i, im in enumerate(cal[design])}
                    per_sheet |= {f"held{j}": _scores(net, meta, [im]) for j, im in enumerate(held[design])}
                    per_sheet["scan"] = _scores(net, meta, [scan[design]])
                kept |= {f"{design}/{k}": v for k, v in per_sheet.items()}
                cal_scores = np.concatenate([v for k, v in per_sheet.items() if k.startswith("cal")])
                again = float(fpr_threshold(cal_scores, r, allow_unsupported=True).threshold)
                if abs(again - thr) > 1e-6:
                    raise SystemExit(f"{report_path}: {design}: the calibration sheets give {again}, the report {thr}")
                h = np.concatenate([v for k, v in per_sheet.items() if k.startswith("held")]) >= thr
                s = per_sheet["scan"] >= thr
                row["held"][design] = (int(h.sum()), int(h.size))
                row["scan"][design] = (int(s.sum()), int(s.size))
        if saved is not None and earlier is None:
            keep.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(saved, **kept)
        flagged = sum(f for f, _ in row["held"].values())
        windows = sum(n for _, n in row["held"].values())
        row["held_fpr"] = flagged / windows
        row["ok"] = r / 2 <= row["held_fpr"] <= 2 * r
        rows.append(row)
        print(_line(row), flush=True)
    return rows


def _line(row: dict) -> str:
    designs = sorted(row["held"])
    held = " ".join(f"{100 * f / n:.1f}" for f, n in (row["held"][d] for d in designs))
    scan = " ".join(f"{100 * f / n:.1f}" for f, n in (row["scan"][d] for d in designs))
    test = " ".join(f"{row['test'][d]:.1f}" for d in designs)
    n = sum(n for _, n in row["held"].values())
    return (f"| {row['run']} | {100 * row['held_fpr']:.2f} % of {n} | {'yes' if row['ok'] else 'NO'} | {held} | "
            f"{scan} | {test} |")


#: Which sheets calibrate and which measure, for ``--swap``: (name, calibration sheets, measured sheets),
#: sheets named as in the kept scores (``cal<i>``: the benchmark's, ``held<j>``: the held-out ones).
SWAPS = (
    ("the benchmark's 4 calibration sheets -> held-out 4-7", ["cal0", "cal1", "cal2", "cal3"], ["held4", "held5", "held6", "held7"]),
    ("held-out sheets 0-3 -> held-out 4-7", ["held0", "held1", "held2", "held3"], ["held4", "held5", "held6", "held7"]),
    ("held-out sheets 4-7 -> held-out 0-3", ["held4", "held5", "held6", "held7"], ["held0", "held1", "held2", "held3"]),
    ("held-out sheets 0-7 -> the benchmark's 4 calibration sheets", [f"held{j}" for j in range(8)], ["cal0", "cal1", "cal2", "cal3"]),
    ("calibration sheets + held-out 0-3 (8 sheets) -> held-out 4-7",
     ["cal0", "cal1", "cal2", "cal3", "held0", "held1", "held2", "held3"], ["held4", "held5", "held6", "held7"]),
)


def swaps(keep: Path, grids: dict, bench: Path, r: float) -> None:
    """Calibrate on other sets of sheets (the kept scores) and measure on the rest: per set, the
    share of runs whose measured window FPR is within a factor 2 of R, its mean and maximum, the
    share whose test MCC at those thresholds is at least 0.9 x the test set's own optimum, and the
    share whose FPR on the test set's fault-free patches is within a factor 2 of R (and how many
    miss it on either side), and the share that meets the calibration goal on the test set itself
    (both)."""
    from ispad_core.experiment.calibrated import read_test_designs
    from ispad_core.io import read_mvtec
    from ispad_core.metrics import f1_optimal_threshold, mcc

    test = read_mvtec(bench / "test", split="test")
    labels = test.test_labels.astype(np.int64)
    designs = np.asarray(read_test_designs(bench / "test_designs.csv", test.test_names))
    files = sorted(keep.glob("*.npz"))
    print(f"\nCalibrating on other sheets ({len(files)} runs, R = {r:g}; each threshold fpr_threshold of the "
          "pooled windows, as nn.calibrate):\n")
    print("| calibrated on -> measured on | measured window FPR: within 2x of R | mean | max | calibrated MCC "
          ">= 0.9 x test-optimal | mean calibrated test MCC | test patches' FPR within 2x of R | goal on the test set |")
    print("|---|---|---|---|---|---|---|---|")
    for name, cal_sheets, measured in SWAPS:
        fprs, ok_ratio, mccs, test_ok, test_fprs = [], [], [], [], []
        for f in files:
            grid, run = f.stem.split("__", 1)
            z = np.load(f)
            scores = np.asarray(json.loads((grids[grid] / run / "report.json").read_text())["test_scores"])
            thr, flagged, windows = {}, 0, 0
            for d in sorted(set(designs.tolist())):
                thr[d] = float(fpr_threshold(np.concatenate([z[f"{d}/{k}"] for k in cal_sheets]), r,
                                             allow_unsupported=True).threshold)
                m = np.concatenate([z[f"{d}/{k}"] for k in measured])
                flagged += int((m >= thr[d]).sum())
                windows += m.size
            fprs.append(flagged / windows)
            pred = scores >= np.array([thr[d] for d in designs.tolist()])
            cal_mcc = mcc(labels, pred.astype(np.int64))
            opt = f1_optimal_threshold(labels, scores)
            ok_ratio.append(cal_mcc >= 0.9 * mcc(labels, (scores >= opt).astype(np.int64)))
            mccs.append(cal_mcc)
            test_fpr = pred[labels == 0].mean()
            test_fprs.append(test_fpr)
            test_ok.append(-1 if test_fpr < r / 2 else (1 if test_fpr > 2 * r else 0))
        fprs = np.array(fprs)
        within = ((fprs >= r / 2) & (fprs <= 2 * r)).sum()
        goal = sum(a and b == 0 for a, b in zip(ok_ratio, test_ok))
        print(f"| {name} | {within} of {len(fprs)} | {100 * fprs.mean():.2f} % | {100 * fprs.max():.2f} % | "
              f"{sum(ok_ratio)} of {len(ok_ratio)} | {np.mean(mccs):.3f} | {test_ok.count(0)} of {len(test_ok)} "
              f"({test_ok.count(-1)} under R/2, {test_ok.count(1)} over 2R; mean {100 * np.mean(test_fprs):.2f} %) | "
              f"{goal} of {len(test_ok)} |")


def effective(keep: Path, r: float) -> None:
    """Per calibration (run and design): the calibration sheets' design effect and the effective
    windows ``ispad calibrate`` reports from it, against the held-out sheets' rate at the
    calibrated threshold: how many calibrations it calls too few for R, and which of them miss."""
    from ispad_core.metrics import design_effect, min_calibration_windows

    need = min_calibration_windows(r)
    rows = []
    for f in sorted(keep.glob("*.npz")):
        z = np.load(f)
        for d in sorted({k.split("/", 1)[0] for k in z.files}):
            cal = [z[k] for k in sorted(z.files) if k.startswith(f"{d}/cal")]
            held = np.concatenate([z[k] for k in sorted(z.files) if k.startswith(f"{d}/held")])
            pooled = np.concatenate(cal)
            thr = float(fpr_threshold(pooled, r, allow_unsupported=True).threshold)
            rows.append((d, pooled.size / design_effect(cal), float((held >= thr).mean())))
    few = [h for _, e, h in rows if e < need]
    enough = [h for _, e, h in rows if e >= need]
    print(f"\nEffective windows of the calibration sheets (windows / design effect, as 'ispad calibrate' reports; "
          f"R = {r:g} needs {need}):\n")
    print(f"{len(few)} of {len(rows)} calibrations have too few: held-out FPR {100 * np.mean(few):.2f} % mean, "
          f"over 2R in {sum(h > 2 * r for h in few)}; the other {len(enough)}: {100 * np.mean(enough):.2f} % mean, "
          f"over 2R in {sum(h > 2 * r for h in enough)}")
    for d in sorted({d for d, _, _ in rows}):
        mine = [(e, h) for dd, e, h in rows if dd == d]
        print(f"{d}: effective windows {np.median([e for e, _ in mine]):.0f} median ({min(e for e, _ in mine):.0f} to "
              f"{max(e for e, _ in mine):.0f}), too few in {sum(e < need for e, _ in mine)} of {len(mine)}; "
              f"held-out FPR over 2R in {sum(h > 2 * r for _, h in mine)}")


def sheet_medians(keep: Path, design: str) -> None:
    """Per run, the median window score of each sheet of ``design``: calibration | held-out | test scan."""
    print(f"\nMedian window score per sheet of {design}: the benchmark's calibration sheets | held-out sheets | "
          "the test scan\n")
    for f in sorted(keep.glob("*.npz")):
        z = np.load(f)
        cal = [np.median(z[k]) for k in sorted(z.files) if k.startswith(f"{design}/cal")]
        held = [np.median(z[k]) for k in sorted(z.files) if k.startswith(f"{design}/held")]
        print(f"{f.stem.replace('__', '/')}: {' '.join(f'{v:.2f}' for v in cal)} | "
              f"{' '.join(f'{v:.2f}' for v in held)} | {np.median(z[f'{design}/scan']):.2f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="grid folders of 'ispad experiment' with calibration")
    p.add_argument("--benchmark", required=True, type=Path, help="the benchmark the grid ran on")
    p.add_argument("--sheets", type=int, default=8, help="held-out fault-free sheets per test design (default 8)")
    p.add_argument("--keep", type=Path, help="folder for every window's score (one .npz per run; a run whose file "
                   "is there is not scored again)")
    p.add_argument("--swap", action="store_true",
                   help="with --keep: also calibrate on other sets of sheets and measure on the rest (needs --sheets 8)")
    p.add_argument("--sheet-medians", metavar="DESIGN", help="with --keep: the median score of every sheet of DESIGN, per run")
    p.add_argument("--effective", action="store_true",
                   help="with --keep: the calibration sheets' effective windows (as 'ispad calibrate' reports them) "
                   "against the held-out rate")
    args = p.parse_args(argv)
    if args.swap and (args.keep is None or args.sheets != 8):
        p.error("--swap needs --keep and --sheets 8")
    held, scan, cal = held_out_sheets(args.benchmark, args.sheets)
    designs = sorted(held)
    print(f"held-out sheets: {args.sheets} per design, k = {FIRST_HELD_OUT} to {FIRST_HELD_OUT + args.sheets - 1}; "
          f"per-design figures in the order {', '.join(designs)}\n")
    print("| run | held-out window FPR | within 2x of R | held-out FPR % per design | test scan's windows FPR % per "
          "design | test patches FPR % per design |")
    print("|---|---|---|---|---|---|")
    rows = [row for runs in args.runs for row in run_rows(runs, held, scan, cal, args.keep)]
    ok = sum(r["ok"] for r in rows)
    fprs = np.array([r["held_fpr"] for r in rows])
    print(f"\n{ok} of {len(rows)} runs have a held-out window FPR within a factor 2 of R; held-out FPR "
          f"{100 * fprs.mean():.2f} % mean ({100 * fprs.min():.2f} to {100 * fprs.max():.2f} %)")
    for d in designs:
        h = [r["held"][d][0] / r["held"][d][1] for r in rows]
        s = [r["scan"][d][0] / r["scan"][d][1] for r in rows]
        t = [r["test"][d] / 100 for r in rows]
        print(f"{d}: held-out sheets {100 * np.mean(h):.2f} %, test scan's windows {100 * np.mean(s):.2f} %, "
              f"test patches {100 * np.mean(t):.2f} % (means over the runs)")
    if args.swap:
        swaps(args.keep, {g.name: g for g in args.runs}, args.benchmark, rows[0]["R"])
    if args.effective and args.keep is not None:
        effective(args.keep, rows[0]["R"])
    if args.sheet_medians and args.keep is not None:
        sheet_medians(args.keep, args.sheet_medians)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    raise SystemExit(main())
