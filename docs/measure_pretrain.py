"""Does in-domain pretraining help at native contrast? (docs/pretrain.md, docs/training.md)

The protocol of docs/measure_curriculum.py ("Learning at native contrast" in docs/training.md): a
ResNet-18, 64 x 64 patches, trained synthetic-only on the balanced stream drawn on the fly from
the built-in benchmark's scans (preset "mixed" at its native contrast, table-8 augmentation
"lsm1"), batch 32, validation on the benchmark's validation set (model selection and threshold),
scores on its test set. The arms differ only in the starting weights and the optimiser:

- ``baseline``: random initialisation, the from-scratch recipe (AdamW 1e-3 cosine-annealed to
  1e-5 over the run).
- ``pretrained``: the weights of ``pretrain`` (masked-patch reconstruction on the same scans,
  ``--pretrain-steps`` steps, seed 0, batch 32, 64 x 64, lsm2 preprocessing, lsm1 augmentation),
  AdamW 1e-3. Starting from weights selects the fine-tuning recipe, whose schedule is the paper's
  warm restarts (period 7 813 steps, so the rate stays near 1e-3 over a short run); the optimiser
  is set to AdamW so that only the schedule differs from the baseline.
- ``random-init file``: a file holding the baseline's own random initialisation for the seed,
  loaded as weights, AdamW: the same recipe as ``pretrained`` without pretraining, so that the
  difference between the two is the pretraining alone.
- ``pretrained, SGD``: the pretrained weights with the fine-tuning recipe unchanged (SGD 5e-4),
  what ``ispad train --weights backbone.pth`` does by default.

Run (after ``ispad benchmark --out proxy/ --contrast 1``)::

    python docs/measure_pretrain.py --benchmark proxy/ --work runs_pretrain/ --seeds 0 1

The measurement in docs/pretrain.md ran, one after the other (2 CPU cores shared with other work,
1 torch thread; the first command was stopped after its first two runs to put seed 1 first)::

    python docs/measure_pretrain.py --benchmark proxy/ --work runs_pretrain/ --pretrain-steps 800 --seeds 0 1
    python docs/measure_pretrain.py --benchmark proxy/ --work runs_pretrain/ --seeds 1 --arms baseline pretrained
    python docs/measure_pretrain.py --benchmark proxy/ --work runs_pretrain/ --seeds 0 \
        --arms "random-init file" "pretrained, SGD"
    python docs/measure_pretrain.py --benchmark proxy/ --work runs_pretrain/ --seeds 2 --arms baseline pretrained
    python docs/measure_pretrain.py --benchmark proxy/ --work runs_pretrain/ --report

Each run's figures are kept in ``WORK/<arm>_seed<k>.json`` and the pretrained weights in
``WORK/backbone.pth`` (with ``WORK/pretrain.json``); what exists is not computed again, so an
interrupted measurement continues. ``--report`` prints the tables of what is in ``WORK``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from measure_curriculum import _curve, _fmt, test_figures  # the same figures of a run (this folder's script)

#: The arms: name -> (starting weights: None, "pretrained" or "init"; TrainSettings fields).
ARMS = {
    "baseline": (None, {}),
    "pretrained": ("pretrained", {"optimizer": "adamw"}),
    "random-init file": ("init", {"optimizer": "adamw"}),
    "pretrained, SGD": ("pretrained", {}),
}


def _stem(arm: str) -> str:
    return arm.replace(" ", "_").replace(",", "")


def pretrain_once(bench: Path, steps: int, threads: int, work: Path) -> dict:
    """Pretrain ResNet-18 on the benchmark's scans (seed 0) unless ``work`` holds the result."""
    import torch

    from ispad_core.io import read_scans
    from ispad_core.nn import pretrain

    meta_file = work / "pretrain.json"
    if meta_file.exists() and (work / "backbone.pth").exists():
        return json.loads(meta_file.read_text())
    print(f"pretraining {steps} steps ...", file=sys.stderr, flush=True)
    res = pretrain(read_scans([str(bench / "scans")]), backbone="resnet18", steps=steps, batch_size=32,
                   patch_size=64, seed=0, threads=threads, verbose=False)
    torch.save(res.state_dict, work / "backbone.pth")
    k = max(1, steps // 10)
    meta = {"steps": steps, "seconds": res.seconds, "steps_per_s": res.steps_per_s,
            "loss_first": float(np.mean(res.losses[:k])), "loss_last": float(np.mean(res.losses[-k:])),
            "loss_every_100": [float(np.mean(res.losses[i:i + 100])) for i in range(0, steps, 100)],
            "settings": res.settings}
    meta_file.write_text(json.dumps(meta, indent=1))
    return meta


def reference_levels(bench: Path, n: int = 2048) -> dict:
    """The masked-pixel L1 loss of three predictors that learn nothing, on patches drawn as
    pretraining draws them (seed 5, masks seed 6): leaving the hidden pixels at the fill (0), the
    best single level for all of them (the median), and each patch's median of its visible pixels."""
    import torch

    from ispad_core.io import read_scans
    from ispad_core.nn import preprocess_batch
    from ispad_core.nn.pretrain import _masks, _PatchSource

    scans = read_scans([str(bench / "scans")])
    src = _PatchSource(scans.images, [None] * len(scans.images), 64, "lsm1", np.random.default_rng(5))
    x = preprocess_batch(torch.from_numpy(src.batch(n)), "lsm2")
    m = torch.from_numpy(_masks(np.random.default_rng(6), n, 64, 8)).bool()
    hidden = x[m]
    visible_median = torch.nanmedian(torch.where(m, torch.nan, x).flatten(1), dim=1).values
    return {"fill": float(hidden.abs().mean()), "best level": float((hidden - hidden.median()).abs().mean()),
            "patch's visible median": float((x - visible_median[:, None, None, None]).abs()[m].mean())}


def _init_file(seed: int, work: Path) -> Path:
    """The baseline's random initialisation for ``seed`` (what train_detector builds), without the head."""
    import torch

    from ispad_core.nn import classifier

    path = work / f"init_seed{seed}.pth"
    if not path.exists():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = classifier("resnet18", in_channels=1, num_classes=2, dropout=0.1)
        torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}, path)
    return path


def run_one(bench: Path, arm: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one arm with one seed; its figures (also written to ``args.work``)."""
    from ispad_core.io import read_scans
    from ispad_core.nn import TrainSettings, train_detector
    from ispad_core.stream import SyntheticStream

    start, extra = ARMS[arm]
    weights = {None: None, "pretrained": args.work / "backbone.pth", "init": None}[start]
    if start == "init":
        weights = _init_file(seed, args.work)
    scans = read_scans([str(bench / "scans")])
    stream = SyntheticStream(scans.images, n=args.steps * args.batch_size, size=64, preset="mixed", augment="lsm1",
                             seed=seed)
    settings = TrainSettings(max_steps=args.steps, batch_size=args.batch_size, val_every=args.val_every, workers=0,
                             threads=args.threads, seed=seed, verbose=False, weights=weights, **extra)
    out = args.work / f"{_stem(arm)}_seed{seed}.pt"
    t0 = time.perf_counter()
    res = train_detector(stream, out=out, val=str(bench / "val"), settings=settings, overwrite=True)
    train_s = time.perf_counter() - t0
    row = {
        "arm": arm, "seed": seed, "steps": args.steps, "recipe": str(res.recipe),
        **test_figures(res, bench, args.threads),
        "curve": _curve(res.metadata["training"]["history"]), "train_s": train_s,
    }
    out.unlink(missing_ok=True)
    (args.work / f"{_stem(arm)}_seed{seed}.json").write_text(json.dumps(row, indent=1))
    return row


def table(rows: list) -> str:
    """The Markdown table of the runs, one line each."""
    head = ("| arm | seed | test MCC (val thr.) | area / point recall % | FPR % | test MCC (test's own F1 thr.) | "
            "AUROC | val MCC | best step | train loss per 100 steps | s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['arm']} | {r['seed']} | {_fmt(r['test_mcc'])} | {_fmt(r['recall_area'], '.0f')} / "
            f"{_fmt(r['recall_points'], '.0f')} | {_fmt(r['fpr'], '.1f')} | {_fmt(r['test_mcc_own'])} | "
            f"{_fmt(r['test_auroc'])} | {_fmt(r['val_mcc'])} | {r['best_step']} | {r['curve']} | {r['train_s']:.0f} |")
    return "\n".join(lines)


def pretrain_line(meta: dict) -> str:
    """One line on the pretraining run."""
    curve = " ".join(f"{v:.3f}@{100 * (i + 1)}" for i, v in enumerate(meta["loss_every_100"]))
    return (f"pretraining: {meta['steps']} steps, batch 32, 64 x 64, {meta['seconds']:.0f} s "
            f"({meta['steps_per_s']:.2f} steps/s); masked-pixel L1 loss per 100 steps: {curve}")


def _report(work: Path, bench: Path) -> None:
    rows = [json.loads(f.read_text()) for f in sorted(work.glob("*_seed*.json"))]
    rows.sort(key=lambda r: (list(ARMS).index(r["arm"]), r["seed"]))
    if (work / "pretrain.json").exists():
        print(pretrain_line(json.loads((work / "pretrain.json").read_text())))
        levels = reference_levels(bench)
        print("the same loss of predictors that learn nothing: "
              + ", ".join(f"{k} {v:.3f}" for k, v in levels.items()))
        print()
    print(table(rows))
    print()
    for arm in ARMS:
        mccs = [r["test_mcc"] for r in rows if r["arm"] == arm]
        if mccs:
            print(f"{arm}: mean test MCC (val thr.) {np.mean(mccs):.2f} over seeds "
                  f"{', '.join(str(r['seed']) for r in rows if r['arm'] == arm)}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--benchmark", required=True, type=Path, help="the folder of 'ispad benchmark --out' (contrast 1)")
    p.add_argument("--work", required=True, type=Path, help="folder for the weights and the runs' figures")
    p.add_argument("--pretrain-steps", type=int, default=800)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report", action="store_true", help="train nothing: the tables of what --work holds")
    args = p.parse_args(argv)
    if args.report:
        _report(args.work, args.benchmark)
        return 0
    meta = json.loads((args.benchmark / "benchmark.json").read_text())
    contrast = meta.get("contrast", meta.get("settings", {}).get("contrast"))
    if contrast not in (None, 1, 1.0):
        p.error(f"--benchmark: made at contrast {contrast}; this measures native contrast (ispad benchmark --contrast 1)")
    args.work.mkdir(parents=True, exist_ok=True)
    if any(ARMS[a][0] == "pretrained" for a in args.arms):
        pretrain_once(args.benchmark, args.pretrain_steps, args.threads, args.work)
    for seed in args.seeds:
        for arm in args.arms:
            if (args.work / f"{_stem(arm)}_seed{seed}.json").exists():
                continue
            print(f"training {arm}, seed {seed} ...", file=sys.stderr, flush=True)
            run_one(args.benchmark, arm, seed, args)
    _report(args.work, args.benchmark)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    raise SystemExit(main())
