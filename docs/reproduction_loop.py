"""The review loop of docs/review.md, run from ground truth on the built-in benchmark.

A cold-start model trained on synthetic defects only (the grid's ``synthetic`` run of a seed)
inspects new sheets of the test designs that carry "real" defects; every flagged window is
decided from the ground truth, as a person on the review page would decide and export it
(``decisions.csv``: a window that holds at least ``--min-overlap`` defect pixels is a defect of
that defect's group, a window without any defect pixel a false alarm, a window that only grazes a
defect is left undecided); ``ispad crops --at decisions.csv`` turns the decisions into ``real/``
and ``good/``; ``ispad train --from`` fine-tunes the cold-start model on the stream with them
(``--real`` and ``--negatives``); and the held-out test patches are scored at thresholds
calibrated per test design on the benchmark's calibration sheets, the same way for both models
(:func:`ispad_core.experiment.calibrated.calibrated_scores`).

The inspected sheets are further sheets of the test designs (``design_sheet`` with ``k`` after
the calibration sheets'), neither the test scans nor the calibration sheets; the defects are the
benchmark's generator's (``proxy_defect``), all five classes, at the benchmark's contrast. The
cold start inspects at its own calibrated thresholds (those of the grid's report). The fine-tune
uses the grid's batch size, preprocessing, ``p_inj``, optimizer and learning rate, and validates
once at its end; it adds ``--steps`` steps to the cold start's.

Prints, per seed: what the inspection flagged and how it was decided, and the test MCC, recall
and FPR at the calibrated thresholds before and after the loop; with ``--control`` also after a
fine-tune of as many steps from the cold start without the loop's windows (the extra steps alone).

Run from the repository root, after the grid (docs/reproduction.md):
    python docs/reproduction_loop.py --runs runs/ --benchmark proxy/ --work loop/ --seeds 0 1 2 --control
"""

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ispad_core.experiment.calibrated import calibrated_scores, read_test_designs  # noqa: E402
from ispad_core.io import read_mvtec, write_png  # noqa: E402
from ispad_core.samples.proxy import AREA_CLASSES, POINT_CLASSES, design_sheet, proxy_defect  # noqa: E402

_CLASSES = POINT_CLASSES + AREA_CLASSES


def _ispad(*args) -> None:
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    subprocess.run([sys.executable, "-m", "ispad_core", *map(str, args)], check=True, env=env, stdout=subprocess.DEVNULL)


def make_sheets(bench: Path, out: Path, n_sheets: int, n_defects: int, size: int, seed: int) -> dict:
    """Sheets of every test design with defects drawn in; ``{scan file: (design, label image, groups)}``."""
    meta = json.loads((bench / "calibration" / "calibration.json").read_text())
    settings = json.loads((bench / "benchmark.json").read_text())["settings"]
    side, contrast = settings["scan_side"], settings["contrast"]
    gen = np.random.default_rng(seed)
    out.mkdir(parents=True)
    truth = {}
    for design, drawn in meta["drawn"].items():
        for j in range(n_sheets):
            k = meta["n_calibration"] + 1 + j  # sheets after the calibration sheets
            sheet = design_sheet(drawn["seed"], drawn["kind"], side, k, sheet_seed=int(gen.integers(2**32)))
            labels = np.zeros(sheet.shape, np.int32)
            groups = []
            for d in range(n_defects):
                kind = _CLASSES[(j * n_defects + d) % len(_CLASSES)]
                for _ in range(50):  # a place that no earlier defect of the sheet touches
                    r, c = (int(v) for v in gen.integers(0, side - size - 16, size=2))
                    if not labels[r:r + size + 16, c:c + size + 16].any():
                        break
                image, mask = proxy_defect(sheet[r:r + size + 16, c:c + size + 16].copy(), kind,
                                           seed=int(gen.integers(2**32)), contrast=contrast)
                sheet[r + 8:r + 8 + size, c + 8:c + 8 + size] = image
                labels[r + 8:r + 8 + size, c + 8:c + 8 + size][mask] = len(groups) + 1
                groups.append("points" if kind in POINT_CLASSES else "area")
            name = f"{design}_sheet{j}.png"
            write_png(out / name, sheet)
            truth[name] = (design, labels, groups)
    return truth


def decide(results: Path, truth: dict, min_overlap: int) -> list[dict]:
    """The review page's decisions.csv rows for every flagged window, decided from the ground truth
    (``defect``: the index of the defect a defect window holds, not written to the file)."""
    rows = []
    for name, (_, labels, groups) in truth.items():
        report = json.loads((results / (Path(name).stem + ".json")).read_text())
        for w in report["flagged"]:
            win = labels[w["row"]:w["row"] + w["size"], w["col"]:w["col"] + w["size"]]
            ids, counts = np.unique(win[win > 0], return_counts=True)
            defect = 0
            if ids.size and counts.max() >= min_overlap:
                defect = int(ids[np.argmax(counts)])
                decision, group = "defect", groups[defect - 1]
            elif ids.size:
                continue  # grazes a defect: left undecided
            else:
                decision, group = "false_alarm", ""
            rows.append({"scan": name, "row": w["row"], "col": w["col"], "group": group, "decision": decision,
                         "score": f"{w['score']:.6f}", "threshold": f"{report['threshold']:.6f}", "defect": defect})
    return rows


def _score(model: Path, bench: Path, test, designs, rate: float, threads: int) -> dict:
    import torch

    from ispad_core.nn import Preprocess, load_model, predict

    torch.set_num_threads(threads)
    net, meta = load_model(model)
    scores = predict(net, test.test_images, preprocess=Preprocess(**meta["preprocess"]), batch_size=256).scores
    return calibrated_scores(model, bench / "calibration", designs, test.test_labels, scores, target_fpr=rate,
                             threads=threads)


def _fine_tune(args, config: dict, seed: int, cold: Path, real: Path, good: Path, out: Path) -> None:
    t = config["train"]
    stream = sorted((args.runs / "_data").glob("stream-*.h5"))
    if len(stream) != 1:
        raise SystemExit(f"expected one stream file in {args.runs / '_data'}, got {len(stream)}")
    cmd = ["train", "--stream", stream[0], "--from", cold, "--val", config["data"]["val"], "--out", out,
           "--max-steps", args.steps, "--val-every", args.steps, "--seed", seed, "--batch-size", t["batch_size"],
           "--optimizer", t["optimizer"], "--lr", t["lr"], "--preprocess", t["preprocess"], "--augment", t["augment"],
           "--threads", t["threads"] or 1, "--workers", 0, "--quiet", "--overwrite"]
    if any(real.glob("*/*.png")):
        cmd += ["--real", real, "--p-inj", t["p_inj"]]
    if any(good.glob("*.png")):
        cmd += ["--negatives", good]
    _ispad(*cmd)


def loop(args, seed: int, test, designs) -> None:
    config = json.loads((args.runs / "config.json").read_text())
    run = args.runs / f"synthetic_none_none_resnet18_seed{seed}"
    before = json.loads((run / "report.json").read_text())["calibrated"]
    rate, threads = before["target_fpr"], config["train"]["threads"] or 1
    work = args.work / f"seed{seed}"
    truth = make_sheets(args.benchmark, work / "sheets", args.sheets, args.defects, test.test_images.shape[1], 1000 + seed)
    decisions = []
    for design in sorted({d for d, _, _ in truth.values()}):
        folder = work / "by_design" / design
        folder.mkdir(parents=True)
        for name in (n for n, v in truth.items() if v[0] == design):
            os.link(work / "sheets" / name, folder / name)
        _ispad("inspect", folder, "--model", run / "model.pt", "--threshold", repr(before["thresholds"][design]),
               "--out", work / "results", "--precision", "fp32", "--quiet", "--overwrite")
    decisions = decide(work / "results", truth, args.min_overlap)
    with open(work / "decisions.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["scan", "row", "col", "group", "decision", "score", "threshold"],
                           extrasaction="ignore")
        w.writeheader()
        w.writerows(decisions)
    n_def = sum(r["decision"] == "defect" for r in decisions)
    n_fa = len(decisions) - n_def
    n_truth = sum(len(g) for _, _, g in truth.values())
    found = len({(r["scan"], r["defect"]) for r in decisions if r["decision"] == "defect"})
    if decisions:
        _ispad("crops", "--scans", work / "sheets", "--at", work / "decisions.csv", "--size", test.test_images.shape[1],
               "--out", work / "real", "--good-out", work / "good")
    (work / "real").mkdir(exist_ok=True)
    (work / "good").mkdir(exist_ok=True)
    _fine_tune(args, config, seed, run / "model.pt", work / "real", work / "good", work / "model.pt")
    after = _score(work / "model.pt", args.benchmark, test, designs, rate, threads)
    results = [("cold start", before), (f"after the loop (+{args.steps} steps)", after)]
    if args.control:  # the same fine-tune without the loop's windows: what the extra steps alone do
        (work / "none").mkdir()
        _fine_tune(args, config, seed, run / "model.pt", work / "none", work / "none", work / "control.pt")
        results.append((f"control: +{args.steps} steps without the windows", _score(work / "control.pt", args.benchmark, test,
                                                                                   designs, rate, threads)))
    print(f"seed {seed}: {len(truth)} sheets with {n_truth} defects; flagged windows decided: {n_def} defect "
          f"(windows on {found} of the {n_truth} defects), {n_fa} false alarm")
    for label, c in results:
        print(f"  {label}: calibrated MCC {c['cal_mcc']:.3f}, recall {c['cal_recall']:.1f} %, FPR {c['cal_fpr']:.2f} % "
              f"(R = {rate:g}); test-optimal MCC {c['opt_mcc']:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="the grid's folder (its synthetic runs are the cold start)")
    p.add_argument("--benchmark", type=Path, required=True, help="the benchmark folder (with calibration/)")
    p.add_argument("--work", type=Path, required=True, help="new folder for the loop's files")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=300, help="fine-tune steps (default 300)")
    p.add_argument("--sheets", type=int, default=2, help="inspected sheets per test design (default 2)")
    p.add_argument("--defects", type=int, default=5, help="defects per sheet (default 5)")
    p.add_argument("--min-overlap", type=int, default=16, help="defect pixels that make a window a defect (default 16)")
    p.add_argument("--control", action="store_true", help="also fine-tune as many steps without the loop's windows")
    args = p.parse_args()
    if args.work.exists():
        raise SystemExit(f"--work {args.work} exists; name a new folder")
    config = json.loads((args.runs / "config.json").read_text())
    test = read_mvtec(config["data"]["test"], split="test")
    designs = read_test_designs(config["data"]["test_designs"], test.test_names)
    for seed in args.seeds:
        loop(args, seed, test, designs)


if __name__ == "__main__":
    main()
