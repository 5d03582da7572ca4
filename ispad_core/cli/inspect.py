"""``ispad inspect``: scans and a model file in, a verdict per scan, JSON reports and overlays out."""

from __future__ import annotations

import argparse
import sys

from ispad_core.cli.argtypes import fraction, positive
from ispad_core.cli.errors import CLIError

EPILOG = """examples:
  ispad inspect scans/*.png --model model.pt --out results/
  ispad inspect scans/ --model model.pt --out results/ --roi rois/ --batch-size 64
  ispad inspect scan.png --model model.onnx --out results/          (onnxruntime, from 'ispad export')
  ispad inspect scans_B/ --model model.pt --design B --out results/  (the threshold calibrated for design B)

For every scan SCAN.png it writes results/SCAN.json (the decision, the windows at or over the
threshold with origin and score, timings), results/SCAN_overlay.png (the scan with the heat map and
the flagged windows) and, at the end, results/summary.csv (one row per scan); with --design also
results/run.json (the share of windows at or over the threshold beside the calibrated rate, and the
drift test of the run's window scores against the design's calibration sample). A scan that cannot be inspected is
reported and the others go on; the exit status is then 1.

The threshold: the model's own (chosen on the validation prints of the designs it was trained on),
a design's calibrated one (--design, from 'ispad calibrate'), or --threshold; every output names
its source."""


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``ispad inspect`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "inspect",
        help="inspect scans with a trained model: verdict, heat map, JSON and overlay per scan",
        description="Cut each scan into the model's sliding windows (its patch size, stride 5/8 of it, the last "
        "window touching the border), score every window with the model (the paper's preprocessing, softmax "
        "P(defective)), stitch a heat map (maximum over windows) and decide: defective when any window reaches the "
        "model's threshold. An RGB scan for a one-channel model is converted to ITU-R BT.601 luma, and the output "
        "says so.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scans", nargs="+", metavar="SCAN", help="scan images (PNG, TIFF, BMP, JPEG) or folders of them")
    p.add_argument("--model", required=True, metavar="FILE", help="model file from 'ispad train' (model.pt) or 'ispad export' (model.onnx)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--roi", metavar="DIR", help="regions of interest: one mask per scan with the same file name (nonzero = inside)")
    p.add_argument("--min-roi-fraction", type=fraction, metavar="F",
                   help="inspect only windows with at least this fraction inside the ROI (default: any ROI pixel)")
    p.add_argument("--stride", type=positive, help="step between windows in pixels, at most the model's patch size (default 5/8 of it)")
    p.add_argument("--threshold", type=float, metavar="P", help="decision threshold on P(defective) (default: the model's)")
    p.add_argument("--design", metavar="NAME",
                   help="use the threshold calibrated for this design ('ispad calibrate') and test the run for drift")
    p.add_argument("--batch-size", type=positive, default=128, help="windows per forward pass (default 128)")
    p.add_argument("--device", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--engine", choices=("torch", "onnxruntime"),
                   help="inference engine (default: onnxruntime for a .onnx model, torch otherwise)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="torch precision (default auto: bf16 autocast on CPUs that compute bf16 natively, fp32 on other "
                   "CPUs, fp16 on CUDA, all channels-last); fp32 scores exactly as the validation run did")
    p.add_argument("--allow-factory", action="append", metavar="PKG.MOD:FN",
                   help="allow the model file's backbone factory to be imported (only for files you trust)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run ``ispad inspect``; exit status 0 when every scan was inspected, 1 otherwise."""
    from ispad_core._shared.warmup import start_warm_up

    start_warm_up()  # the compiled kernel (0.3 s or more: Numba's own set-up) and image decoder load while torch imports
    from ispad_core.nn.inference import inspect_files

    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise CLIError(f"--threshold: expected a probability in [0, 1], got {args.threshold}")
    report = inspect_files(
        args.scans,
        model=args.model,
        out=args.out,
        rois=args.roi,
        min_roi_fraction=args.min_roi_fraction,
        threshold=args.threshold,
        design=args.design,
        stride=args.stride,
        batch_size=args.batch_size,
        device=args.device,
        engine=args.engine,
        precision=args.precision,
        allow_factory=args.allow_factory,
        overwrite=args.overwrite,
        verbose=False if args.quiet else None,
        on_scan=lambda outcome: print(outcome, flush=True),
    )
    m = report.model
    notes = sorted({s.colour for s in report.scans if s.ok and s.colour})
    for note in notes:
        print(f"note: colour conversion: {note}")
    n = len(report.scans)
    bad = len(report.failed)
    if m["threshold_source"] == "validation":
        print(_validation_note(m, args.model))
    print(f"{n - bad} of {n} scans inspected, {len(report.defective)} defective (model {m.get('path')}, "
          f"{m.get('backbone')}, {m.get('patch_size')} px windows, threshold {m['threshold_used']:.4g} from "
          f"{m['threshold_source']}, {m['engine']}); results in {report.out}/, summary {report.summary}")
    line = _run_line(report.run)
    if line:
        print(line)
    for note in report.run.get("notes", ()):
        print(f"note: {note}")
    if bad:
        print(f"ispad inspect: {bad} scan{'s' if bad > 1 else ''} could not be inspected: "
              + ", ".join(str(s.path) for s in report.failed), file=sys.stderr)
        return 1
    return 0


def _validation_note(model: dict, path: str) -> str:
    """One line: the threshold is the validation prints', and how to calibrate one for this design."""
    designs = model.get("calibrated_designs") or []
    known = f" (calibrated designs in this model: {', '.join(designs)}; pick one with --design)" if designs else ""
    how = (f"ispad calibrate --model {path} --good GOOD_DIR --design NAME --target-fpr 0.01 --out {path} --overwrite")
    if str(path).lower().endswith(".onnx"):
        how = ("ispad calibrate on the model file (.pt) it was exported from, then ispad export again (the calibrations "
               "travel in the metadata)")
    return (f"note: the threshold {model['threshold_used']:.4g} comes from the validation prints of the designs the model "
            f"was trained on, not from this design; its false-alarm rate here is unknown{known}. Calibrate it on "
            f"fault-free sheets of this design: {how}")


def _run_line(run: dict) -> str:
    """The run's windows over the threshold beside the calibrated rate, and the drift test."""
    if not run or not run.get("windows"):
        return ""
    share = run["share_over_threshold"]
    text = f"run: {run['windows_over_threshold']} of {run['windows']} windows at or over the threshold ({share:.3%}"
    if run.get("calibrated_fpr") is not None:
        text += f"; calibrated fault-free rate {run['calibrated_fpr']:.3%})"
    else:
        text += ")"
    d = run.get("drift")
    if d is not None:
        verdict = "DRIFT: the window scores do not look like the calibration sample (recalibrate or check the process)" \
            if d["drift"] else "no drift"
        text += f"; drift test: {verdict} (KS {d['statistic']:.3f}, p = {d['p_value']:.3g}, alpha {d['alpha']:g})"
    return text
