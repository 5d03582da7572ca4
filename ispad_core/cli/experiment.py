"""``ispad experiment``: run the paper's grid of training runs from a TOML config."""

from __future__ import annotations

import argparse

from ispad_core.cli.argtypes import positive

_EPILOG = """examples:
  ispad benchmark --out proxy/
  ispad experiment --config experiment.toml --out runs/
  ispad experiment --config experiment.toml --out runs/ --jobs 2
  ispad experiment --config experiment.toml --out runs/ --check     # only check the config

a config (paths relative to the config file):
  [data]
  benchmark = "proxy"              # or: stream/scans, real, val, test
  [stream]                         # when the stream is made from scans
  n = 4096
  size = 64
  contrast = 1.0                   # factor on the synthetic defects' contrast (1: the preset's own)
  [grid]
  strategies = ["synthetic", "mixed", "oversampling"]
  groups = ["mixed", "points", "area"]
  fractions = ["1/16", "1/4", 1]
  counts = [{points = 5, area = 5}]
  backbones = ["resnet18"]
  seeds = [0, 1, 2]
  [train]
  p_inj = "1/32"
  steps = 2000
  batch_size = 32
  curriculum = "auto"              # from scratch at contrast 1: 6:0.75:native on a stream drawn on
                                   # the fly from the scans ("none": the stream file as it is)
  amp = "auto"                     # bf16 autocast on a CPU that computes it natively, else fp32
                                   # (fp16 on CUDA); true or false to choose

Finished runs are skipped when the command is run again; an interrupted run resumes.
Output: runs/<run>/model.pt and report.json, runs/results.csv, runs/results.md, runs/mcc_vs_real.png."""


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``experiment`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "experiment",
        help="run a grid of training runs (strategy x group x real defects x backbone x seed) and tabulate it",
        description="Train and score every run of the grid in a TOML config, as the paper's tables 2 to 4: the "
        "threshold is F1-optimal on the validation set, the test set is scored at it (MCC, recall, FPR, TN, TP, FN, "
        "FP, recall per defect group). The whole config is checked before anything is trained.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, metavar="FILE.toml", help="the experiment")
    p.add_argument("--out", required=True, metavar="DIR", help="runs folder (created if missing)")
    p.add_argument("--jobs", type=positive, default=1,
                   help="runs at once, one process each, with CPUs / N torch threads unless train.threads is set "
                   "(default 1). On a CPU it pays when one run cannot keep every core busy by itself, as with "
                   "train.threads = 1; with GPUs, run K goes to GPU K mod count")
    p.add_argument("--device", help="cpu, cuda or cuda:K (default: a GPU if there is one)")
    p.add_argument("--check", action="store_true", help="check the config, list the runs and stop")
    p.add_argument("--quiet", action="store_true", help="print only the final line")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Check the config, run the grid, print where the results are."""
    from ispad_core.experiment import load_config, run_experiment

    config = load_config(args.config)
    runs = config.runs()
    if args.check:
        print(f"config {args.config} is valid: {len(runs)} runs")
        for r in runs:
            print(f"  {r.name}")
        return 0
    result = run_experiment(config, args.out, jobs=args.jobs, device=args.device, verbose=not args.quiet)
    if args.quiet:
        print(f"{result.ran} runs trained, {result.skipped} finished before; results in {result.out}/results.md")
    if result.ran:
        print(f"wall {result.wall_s:.1f} s, training {result.train_s:.1f} s over {args.jobs} job(s); "
              f"time besides training: {100 * result.overhead:.1f} %")
    return 0
