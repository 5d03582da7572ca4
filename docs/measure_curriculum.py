"""Learning at native contrast: a contrast curriculum against none (docs/training.md).

A ResNet-18 from random initialisation, 64 x 64 patches, trained synthetic-only on the balanced
stream drawn on the fly from the built-in benchmark's scans (preset "mixed" at its native
contrast, table-8 augmentation "lsm1"), the from-scratch recipe (AdamW 1e-3, cosine-annealed over
the run), batch 32; validation on the benchmark's validation set (model selection and threshold),
scores on its test set. Each arm differs only in ``TrainSettings`` (``curriculum``, ``lr``,
``warmup``, ...) and in the real defects it injects.

Run (after ``ispad benchmark --out proxy/``, native contrast, its default)::

    python docs/measure_curriculum.py --benchmark proxy/ --work runs_curriculum/ --steps 600 --seeds 0 1

The measurement in docs/training.md ran, one after the other (2 shared CPU cores, 2 torch threads)::

    python docs/measure_curriculum.py --benchmark proxy/ --work runs_curriculum/ --seeds 0 1
    python docs/measure_curriculum.py --benchmark proxy/ --work runs_curriculum/ --seeds 0 \
        --arms "curriculum 6:0.5" "lr 3e-4"
    python docs/measure_curriculum.py --benchmark proxy/ --work runs_curriculum/ --seeds 1 2 --arms "curriculum 6:0.5"
    python docs/measure_curriculum.py --benchmark proxy/ --work runs_curriculum/ --seeds 2 --arms baseline
    python docs/measure_curriculum.py --benchmark proxy/ --work runs_curriculum/ --seeds 0 1 2 --arms "curriculum 6:1"
    python docs/measure_curriculum.py --benchmark proxy/ --work runs_curriculum/ --seeds 2 --arms "curriculum 3:0.5"
    python docs/measure_curriculum.py --benchmark proxy/ --work runs_curriculum/ --report
    python docs/measure_curriculum.py --benchmark proxy/ --work runs_curriculum_1200/ --steps 1200 --seeds 0 \
        --arms "curriculum 6:0.5" baseline
    python docs/measure_curriculum.py --benchmark proxy/ --work runs_curriculum_1200/ --steps 1200 --seeds 1 2 \
        --arms "curriculum 6:0.5" baseline

Each run's figures are kept in ``WORK/<arm>_seed<k>.json``; a run whose file exists is not trained
again, so an interrupted measurement continues where it stopped. Prints one Markdown table (with
``--report`` a second one: each arm's means over its seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

#: The arms: name -> TrainSettings fields on top of the common ones.
ARMS = {
    "baseline": {},
    "curriculum 3:0.5": {"curriculum": "3:0.5"},
    "curriculum 3:0.5:cosine": {"curriculum": "3:0.5:cosine"},
    "curriculum 6:0.5": {"curriculum": "6:0.5"},
    "curriculum 6:1": {"curriculum": "6:1"},
    "lr 3e-4": {"lr": 3e-4},
    # the benchmark's real defects, 5 area + 5 points chosen by the seed (as the experiment grid's
    # "area=5+points=5"), injected at p_inj 1/32 and augmented with the stream's preset (lsm1)
    "curriculum 6:0.5 + real 5+5": {"curriculum": "6:0.5", "real": {"area": 5, "points": 5}},
    # the model selected (lowest validation loss) only from the validations at native contrast on
    "curriculum 6:0.5:native": {"curriculum": "6:0.5:native"},
    "curriculum 6:0.5:native + real 5+5": {"curriculum": "6:0.5:native", "real": {"area": 5, "points": 5}},
    # the same 10 real defects drawn four times as often (p_inj 1/8: four per batch of 32 on average)
    "curriculum 6:0.5:native + real 5+5 p_inj 1/8": {"curriculum": "6:0.5:native", "real": {"area": 5, "points": 5},
                                                     "p_inj": 1 / 8},
    # the same 10 real defects at p_inj 1/32, drawn as they are (no augmentation of the real defects)
    "curriculum 6:0.5:native + real 5+5 as they are": {"curriculum": "6:0.5:native", "real": {"area": 5, "points": 5},
                                                       "augment": None},
    # a shorter annealing: the gain reaches 1 at a quarter of the run, so three quarters train at native contrast
    "curriculum 6:0.25:native": {"curriculum": "6:0.25:native"},
    "curriculum 6:0.25:native + real 5+5": {"curriculum": "6:0.25:native", "real": {"area": 5, "points": 5}},
    # the same in bf16 autocast on the CPU (TrainSettings(amp=True)): a CPU with AVX-512 BF16 runs a
    # step in about 0.6 of the fp32 time
    "curriculum 6:0.5:native bf16": {"curriculum": "6:0.5:native", "amp": True},
    "curriculum 6:0.5:native + real 5+5 bf16": {"curriculum": "6:0.5:native", "real": {"area": 5, "points": 5},
                                                "amp": True},
    # a longer annealing (the gain reaches 1 at three quarters of the run), in bf16 as the commands train
    "curriculum 6:0.75:native bf16": {"curriculum": "6:0.75:native", "amp": True},
    "curriculum 6:0.75:native + real 5+5 bf16": {"curriculum": "6:0.75:native", "real": {"area": 5, "points": 5},
                                                 "amp": True},
    # the default curriculum after 200 steps of linear learning-rate warm-up (a tenth of a 2 000-step run)
    "curriculum 6:0.5:native warm-up 200 bf16": {"curriculum": "6:0.5:native", "warmup": 200, "amp": True},
    "curriculum 6:0.5:native + real 5+5 warm-up 200 bf16": {"curriculum": "6:0.5:native", "warmup": 200,
                                                            "real": {"area": 5, "points": 5}, "amp": True},
}

#: The false-alarm rate per window of the calibrated thresholds (the benchmark's calibration sheets).
CALIBRATION_R = 0.01


def _file_stem(arm: str) -> str:
    """An arm's name as a file name: ``"curriculum 6:0.5 + real 5+5"`` -> ``curriculum_6-0.5_+_real_5+5``."""
    return arm.replace(" ", "_").replace(":", "-").replace("/", "-")


def _curve(history: list) -> str:
    """Training loss per validation interval, e.g. ``0.69@100 0.69@200 0.52@300``."""
    return " ".join(f"{h['train_loss']:.2f}@{h['steps']}" for h in history)


def _left_chance(history: list, level: float = 0.66) -> int | None:
    """The first validation step whose interval's training loss is under ``level`` (None: never)."""
    for h in history:
        if h["train_loss"] < level:
            return int(h["steps"])
    return None


def test_figures(res, bench: Path, threads: int) -> dict:
    """The trained detector ``res`` (a :class:`ispad_core.nn.DetectorResult`) on the benchmark's
    test set: MCC, recall per group and FPR at the validation threshold, MCC and recall at the test
    set's own F1-optimal threshold, AUROC, and the run's best step and validation MCC."""
    from ispad_core.experiment import score_test_set
    from ispad_core.io import read_mvtec
    from ispad_core.nn import predict
    from ispad_core.nn.detector import torch_threads

    test = read_mvtec(bench / "test", split="test")
    with torch_threads(threads):
        scores = predict(res.model, test.test_images, preprocess="lsm2", batch_size=256).scores
    labels = test.test_labels.astype(np.int64)
    at_val = score_test_set(None, None, labels, scores, test_groups=test.test_groups, threshold=res.threshold)
    own = score_test_set(labels, scores, labels, scores, test_groups=test.test_groups)
    return {**_calibrated(res, bench, labels, scores, np.asarray(test.test_groups), test.test_names, threads),
        "best_step": res.train.best_step, "val_mcc": float(res.report.mcc), "test_mcc": at_val["mcc"],
        "test_auroc": at_val["auroc"], "recall_area": at_val["recall_by_group"].get("area"),
        "recall_points": at_val["recall_by_group"].get("points"), "fpr": at_val["fpr"], "test_mcc_own": own["mcc"],
        "recall_area_own": own["recall_by_group"].get("area"), "recall_points_own": own["recall_by_group"].get("points"),
    }


def _calibrated(res, bench: Path, labels, scores, groups, names, threads: int) -> dict:
    """MCC, FPR and recall per group with every test patch at its design's threshold calibrated at
    :data:`CALIBRATION_R` on the benchmark's calibration sheets (as ``ispad experiment`` does);
    empty for a benchmark without them."""
    if not (bench / "calibration").is_dir():
        return {}
    from ispad_core.experiment.calibrated import calibrated_scores, read_test_designs

    designs = read_test_designs(bench / "test_designs.csv", names)
    c = calibrated_scores((res.model, res.metadata), bench / "calibration", designs, labels, scores,
                          target_fpr=CALIBRATION_R, threads=threads)
    pred = scores >= np.array([c["thresholds"][d] for d in designs])
    recall = {g: float(100 * pred[(labels == 1) & (groups == g)].mean()) for g in ("area", "points")}
    return {"cal_mcc": c["cal_mcc"], "cal_fpr": c["cal_fpr"], "cal_recall_area": recall["area"],
            "cal_recall_points": recall["points"]}


def _real_defects(bench: Path, counts: dict | None, seed: int) -> np.ndarray | None:
    """``counts`` real defects per group of the benchmark's ``real/`` pool, chosen by ``seed``
    (:func:`ispad_core.fractions.select_defects`, as the experiment grid chooses them), centre
    64 x 64 crops; None for a synthetic-only arm."""
    if counts is None:
        return None
    from ispad_core.fractions import select_defects
    from ispad_core.io import read_real_defects

    pool = read_real_defects(bench / "real", size=64, name="real")
    chosen = select_defects(np.asarray(pool.groups), counts, rng=seed)
    crops = []
    for i in chosen.tolist():
        im = np.asarray(pool[i])
        r, c = (im.shape[0] - 64) // 2, (im.shape[1] - 64) // 2
        crops.append(im[r : r + 64, c : c + 64])
    return np.stack(crops)


def run_one(bench: Path, arm: str, seed: int, steps: int, batch: int, val_every: int, threads: int, work: Path) -> dict:
    """Train one arm with one seed; its figures (also written to ``work``)."""
    from ispad_core.io import read_scans
    from ispad_core.nn import TrainSettings, train_detector
    from ispad_core.stream import SyntheticStream

    scans = read_scans([str(bench / "scans")])
    stream = SyntheticStream(scans.images, n=steps * batch, size=64, preset="mixed", augment="lsm1", seed=seed)
    fields = dict(ARMS[arm])
    real = _real_defects(bench, fields.pop("real", None), seed)
    settings = TrainSettings(max_steps=steps, batch_size=batch, val_every=val_every, workers=0, threads=threads,
                             seed=seed, verbose=False, **fields)
    out = work / f"{_file_stem(arm)}_seed{seed}.pt"
    t0 = time.perf_counter()
    res = train_detector(stream, out=out, real=real, val=str(bench / "val"), settings=settings, overwrite=True)
    train_s = time.perf_counter() - t0
    history = res.metadata["training"]["history"]
    row = {
        "arm": arm, "seed": seed, "steps": steps, **test_figures(res, bench, threads),
        "left_chance": _left_chance(history), "curve": _curve(history), "train_s": train_s,
    }
    out.unlink(missing_ok=True)
    (work / out.with_suffix(".json").name).write_text(json.dumps(row, indent=1))
    return row


def checkpoint_figures(path: Path, bench: Path, threads: int) -> dict:
    """The figures of :func:`test_figures` for the model in a training checkpoint (``last.pt`` or
    ``best.pt`` of a run's ``.ckpt`` folder, e.g. of a run stopped before its end): the
    threshold F1-optimal on the benchmark's validation set, as training chooses it."""
    from types import SimpleNamespace

    import torch

    from ispad_core.io import read_mvtec
    from ispad_core.metrics import f1_optimal_threshold, mcc
    from ispad_core.nn import classifier, predict
    from ispad_core.nn.detector import torch_threads

    ck = torch.load(path, map_location="cpu", weights_only=True)
    model = classifier("resnet18", in_channels=1)
    model.load_state_dict(ck["model"])
    model.eval()
    val = read_mvtec(bench / "val", split="test")
    labels = val.test_labels.astype(np.int64)
    with torch_threads(threads):
        scores = predict(model, val.test_images, preprocess="lsm2", batch_size=256).scores
    thr = float(f1_optimal_threshold(labels, scores))
    res = SimpleNamespace(model=model, threshold=thr, report=SimpleNamespace(mcc=mcc(labels, (scores >= thr).astype(int))),
                          train=SimpleNamespace(best_step=ck.get("steps")),
                          metadata={"patch_size": 64, "preprocess": "lsm2", "threshold": thr})
    return {"checkpoint": str(path), **test_figures(res, bench, threads)}


def _fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list) -> str:
    """The Markdown table of the runs, one line each."""
    head = ("| arm | seed | test MCC (val thr.) | area / point recall % | FPR % | test MCC (test's own F1 thr.) | "
            "area / point recall % (own thr.) | test MCC (calibrated, R = 1 %) | area / point recall % (calibrated) | "
            "FPR % (calibrated) | AUROC | val MCC | best step | loss < 0.66 at step | train loss per 100 steps | s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['arm']} | {r['seed']} | {_fmt(r['test_mcc'])} | {_fmt(r['recall_area'], '.0f')} / "
            f"{_fmt(r['recall_points'], '.0f')} | {_fmt(r['fpr'], '.1f')} | {_fmt(r['test_mcc_own'])} | "
            f"{_fmt(r['recall_area_own'], '.0f')} / {_fmt(r['recall_points_own'], '.0f')} | {_fmt(r.get('cal_mcc'))} | "
            f"{_fmt(r.get('cal_recall_area'), '.0f')} / {_fmt(r.get('cal_recall_points'), '.0f')} | "
            f"{_fmt(r.get('cal_fpr'), '.1f')} | {_fmt(r['test_auroc'])} | "
            f"{_fmt(r['val_mcc'])} | {r['best_step']} | {r['left_chance'] if r['left_chance'] is not None else 'never'} | "
            f"{r['curve']} | {r['train_s']:.0f} |")
    return "\n".join(lines)


def means(rows: list) -> str:
    """The Markdown table of each arm's means over its seeds (the headline figures of the runs)."""
    head = ("| arm | seeds | test MCC (val thr.) | test MCC (test's own F1 thr.) | test MCC (calibrated, R = 1 %) | "
            "area recall % (calibrated) | AUROC |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for arm in dict.fromkeys(r["arm"] for r in rows):
        rs = [r for r in rows if r["arm"] == arm]

        def mean(key, spec=".2f"):
            values = [r.get(key) for r in rs]
            return "-" if any(v is None for v in values) else format(float(np.mean(values)), spec)

        lines.append(f"| {arm} | {', '.join(str(r['seed']) for r in rs)} | {mean('test_mcc')} | {mean('test_mcc_own')} | "
                     f"{mean('cal_mcc')} | {mean('cal_recall_area', '.1f')} | {mean('test_auroc')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--benchmark", required=True, type=Path, help="the folder of 'ispad benchmark --out' (contrast 1)")
    p.add_argument("--work", required=True, type=Path, help="folder for the runs' figures")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--arms", nargs="+", default=["baseline", "curriculum 3:0.5"], choices=list(ARMS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--report", action="store_true", help="train nothing: the table of the runs kept in --work")
    p.add_argument("--checkpoint", type=Path, nargs="+", metavar="PT",
                   help="train nothing: the test figures of the models in these checkpoint files (last.pt, best.pt)")
    args = p.parse_args(argv)
    if args.checkpoint:
        for path in args.checkpoint:
            f = checkpoint_figures(path, args.benchmark, args.threads)
            print(f"{path} (step {f['best_step']}): test MCC {f['test_mcc']:.2f} at the validation threshold "
                  f"(area / point recall {_fmt(f['recall_area'], '.0f')} / {_fmt(f['recall_points'], '.0f')} %, FPR "
                  f"{f['fpr']:.1f} %), {f['test_mcc_own']:.2f} at the test's own, {_fmt(f.get('cal_mcc'))} calibrated "
                  f"(FPR {_fmt(f.get('cal_fpr'), '.1f')} %), AUROC {f['test_auroc']:.2f}")
        return 0
    if args.report:
        rows = [json.loads(f.read_text()) for f in sorted(args.work.glob("*.json"))]
        rows.sort(key=lambda r: (list(ARMS).index(r["arm"]), r["seed"]))
        print(table(rows))
        print()
        print(means(rows))
        return 0
    meta = json.loads((args.benchmark / "benchmark.json").read_text())
    contrast = meta.get("contrast", meta.get("settings", {}).get("contrast"))
    if contrast not in (None, 1, 1.0):
        p.error(f"--benchmark: made at contrast {contrast}; this measures native contrast (ispad benchmark --contrast 1)")
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        for arm in args.arms:
            cached = args.work / f"{_file_stem(arm)}_seed{seed}.json"
            if cached.exists():
                rows.append(json.loads(cached.read_text()))
                continue
            print(f"training {arm}, seed {seed} ...", file=sys.stderr, flush=True)
            rows.append(run_one(args.benchmark, arm, seed, args.steps, args.batch_size, args.val_every,
                                args.threads, args.work))
    rows.sort(key=lambda r: (list(ARMS).index(r["arm"]), r["seed"]))
    print(table(rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    raise SystemExit(main())
