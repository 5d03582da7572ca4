"""``ispad demo``: the whole path on the built-in sample, stream to verdict."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from ispad_core._shared.recipes import DEMO_STEPS
    from ispad_core.cli.argtypes import int_at_least, nonnegative, number_in, positive

    p = sub.add_parser(
        "demo",
        help="the whole path on the built-in sample: stream, training with 10 real defects, inspection",
        description="Walk the path a factory walks, on the library's built-in sample, writing every file: "
        "fault-free scans of one product (OUT/scans) with 10 'real' defects (5 points, 5 area, OUT/real) and a "
        "validation set (OUT/val), a balanced synthetic stream drawn on the fly from the scans, a ResNet-18 "
        "trained on it from scratch with the real defects injected at p_inj = 1/32 under the from-scratch "
        "contrast curriculum (OUT/model.pt), and the inspection of a new 1536 x 1536 scan with planted defects "
        "(OUT/results: verdict, heat-map overlay, JSON). Every defect is at the presets' own, faint contrast. "
        "The commands that repeat each step on your own data are printed at the end.",
        epilog="example:\n  ispad demo --out demo/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="DIR", help="new folder for everything the demo writes")
    p.add_argument("--seed", type=nonnegative, default=0, help="seed of the data, the training and the scan (default 0)")
    p.add_argument("--size", type=int_at_least(32), default=64, help="patch side in pixels (default 64)")
    p.add_argument("--n", type=positive, default=4000, help="patches in the synthetic stream (default 4000)")
    p.add_argument("--steps", type=positive, default=DEMO_STEPS, help=f"training steps (default {DEMO_STEPS})")
    p.add_argument("--contrast", type=number_in(0.1, 10.0), default=1.0, help="factor on every defect's contrast "
                   "(default 1: the presets' own); another value makes every defect that much stronger and takes the "
                   "quicker path of a stream file without augmentation or curriculum, e.g. --contrast 3 --steps 400")
    p.add_argument("--overwrite", action="store_true", help="write into an existing --out, replacing the demo's files")
    p.add_argument("--quiet", action="store_true", help="no progress, only the summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from ispad_core._shared.config import prefer_passive_openmp

    prefer_passive_openmp()  # before torch loads its OpenMP runtime
    from ispad_core.nn.demo import run_demo

    res = run_demo(args.out, seed=args.seed, size=args.size, n=args.n, steps=args.steps, contrast=args.contrast,
                   overwrite=args.overwrite, verbose=not args.quiet)
    outcome = res.report.scans[0]
    v = res.validation
    print(f"validation: MCC {v.mcc:.3f}, recall {v.recall_percent:.1f} %, FPR {v.fpr_percent:.1f} % "
          f"at threshold {v.threshold:.3g}")
    verdict = "DEFECTIVE" if outcome.defective else "good"
    print(f"new scan {outcome.path}: {verdict} (max window score {outcome.max_score:.3f}, "
          f"{outcome.flagged} of {outcome.windows} windows over the threshold)")
    for k, (box, hit) in enumerate(zip(res.planted, res.found)):
        r0, c0, r1, c1 = (int(x) for x in box)
        print(f"  planted defect {k + 1} at rows {r0}-{r1 - 1}, columns {c0}-{c1 - 1}: "
              f"{'found' if hit else 'missed'}")
    print(f"look at: {outcome.overlay} (heat map and flagged windows), {outcome.json} (report), "
          f"{res.results / 'summary.csv'}")
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in res.stage_seconds.items())
    print(f"time per stage: {stages}")
    print(f"done in {res.seconds:.0f} s. The same steps with the ispad command (replace the built-in data with yours):")
    for cmd in res.commands:
        print(f"  {cmd}")
    return 0
