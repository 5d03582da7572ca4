"""``ispad evaluate``: score a detector, the paper's table-3 row and AU-PRO."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ispad_core.cli.argtypes import finite, fraction
from ispad_core.cli.errors import CLIError


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``evaluate`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "evaluate",
        help="score a detector: the paper's table-3 row and AU-PRO",
        description="Compute MCC, recall, FPR, TN/TP/FN/FP (the paper's table 3), precision and AUROC from image "
        "scores, and with --maps the AU-PRO and pixel AUROC from anomaly maps. The scores CSV has the columns "
        "name,score,label (label 1 = defective; names like area/001.png as in test/ of the MVTec layout). Anomaly "
        "maps are .npy, .tiff or .png files named like the test images (DIR/<group>/<stem>.npy); the ground-truth "
        "masks come from --dataset (ground_truth/<group>/<stem>_mask.png).",
        epilog="examples:\n  ispad evaluate --scores scores.csv\n"
        "  ispad evaluate --scores scores.csv --maps maps/ --dataset ISP-AD/LSM-1 --json result.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scores", required=True, metavar="CSV", help="image scores: columns name,score,label")
    p.add_argument("--maps", metavar="DIR", help="anomaly maps in the MVTec layout (needs --dataset)")
    p.add_argument("--dataset", metavar="ROOT", help="the MVTec-layout dataset the scores belong to (checks names and labels)")
    p.add_argument("--threshold", type=finite, help="predict defective when score >= threshold (default: the F1-optimal one)")
    p.add_argument("--fpr-limit", type=fraction, default=0.3, help="FPR limit of AU-PRO (default 0.3)")
    p.add_argument("--format", choices=("table", "json", "both"), default="both", help="what to print (default both)")
    p.add_argument("--json", metavar="FILE", help="also write the JSON to FILE")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=run)
    return p


def evaluate_scores(scores_csv, **kwargs) -> dict:
    """:func:`ispad_core.evaluation.evaluate_scores` with the option names of ``ispad evaluate`` in errors."""
    from ispad_core.evaluation import evaluate_scores as evaluate

    return evaluate(scores_csv, names={"scores": "--scores", "maps": "--maps", "dataset": "--dataset"}, **kwargs)


def run(args) -> int:
    """Score; print the table-3 row and/or the JSON, and write the JSON file when asked."""
    from ispad_core._shared.files import atomic_output, check_output_path
    from ispad_core.evaluation import format_row

    target = Path(args.json) if args.json else None
    if target is not None:  # before any work or output
        if target.exists() and not args.overwrite:
            raise CLIError(f"--json: {target} exists; pass --overwrite to replace it")
        check_output_path(target, "--json", overwrite=args.overwrite)
    result = evaluate_scores(args.scores, maps=args.maps, dataset=args.dataset, threshold=args.threshold, fpr_limit=args.fpr_limit)
    text = json.dumps(result, indent=2)
    if args.format in ("table", "both"):
        print(format_row(result))
    if args.format == "both":
        print()
    if args.format in ("json", "both"):
        print(text)
    if target is not None:
        with atomic_output(target, name="--json", overwrite=args.overwrite) as tmp:
            tmp.write_text(text + "\n")
    return 0
