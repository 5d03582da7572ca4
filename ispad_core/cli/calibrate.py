"""``ispad calibrate``: a model's threshold for one design, from fault-free scans of that design."""

from __future__ import annotations

import argparse
import warnings
from fractions import Fraction

from ispad_core.cli.argtypes import fraction, positive
from ispad_core.cli.errors import CLIError

EPILOG = """examples:
  ispad calibrate --model model.pt --good good_B/ --design B --target-fpr 0.01 --out model.pt --overwrite
  ispad calibrate --model model.pt --good good_B/ --rois rois_B/ --design B --target-fpr 1/1000 --out model_B.pt
  ispad inspect scans_B/ --model model.pt --design B --out results/

Every window that 'ispad inspect' scores on the fault-free scans in --good (the model's patch size,
stride and preprocessing, the ROI honoured) is scored; the threshold is the order statistic of those
scores at which a new fault-free window of the design is flagged with probability at most
--target-fpr (the conformal guarantee). The model file keeps one calibration per design, with a
compact sample of the scores for the drift test of 'ispad inspect --design'. N windows support rates
down to 1/(N+1): 0.01 needs at least 99 windows, 0.001 at least 999."""


def rate(text: str) -> float:
    """An argparse type: a rate in (0, 1), as ``0.01`` or ``1/100``."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a rate in (0, 1) such as 0.01 or 1/100, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a rate in (0, 1) such as 0.01 or 1/100, got {text!r}")
    return value


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``ispad calibrate`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "calibrate",
        help="calibrate a model's threshold for a design on fault-free scans of it",
        description="Score every window of fault-free scans of one design on the model's own grid, choose the "
        "threshold at which a fault-free window is flagged with probability at most --target-fpr, and store it in "
        "the model file as that design's calibration (one per design). 'ispad inspect --design NAME' uses it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="FILE", help="model file (model.pt)")
    p.add_argument("--good", required=True, nargs="+", metavar="DIR",
                   help="fault-free scans of the design: folders or image files (images of the patch size are windows)")
    p.add_argument("--rois", metavar="DIR", help="regions of interest: one mask per scan with the same file name")
    p.add_argument("--min-roi-fraction", type=fraction, metavar="F",
                   help="score only windows with at least this fraction inside the ROI (as in 'ispad inspect')")
    p.add_argument("--design", required=True, metavar="NAME", help="the design's name")
    p.add_argument("--target-fpr", required=True, type=rate, metavar="R",
                   help="false-alarm rate per fault-free window, e.g. 0.01 or 1/100")
    p.add_argument("--method", choices=("order", "quantile", "gpd"), default="order",
                   help="order statistic with the conformal guarantee (default), plain quantile, or generalized "
                   "Pareto tail (see docs/calibration.md)")
    p.add_argument("--stride", type=positive, help="step between windows (default 5/8 of the patch size; inspect with the same)")
    p.add_argument("--allow-unsupported", action="store_true",
                   help="proceed with a warning when the windows are too few for --target-fpr")
    p.add_argument("--batch-size", type=positive, default=128, help="windows per forward pass (default 128)")
    p.add_argument("--device", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="torch precision (default auto, as 'ispad inspect'); calibrate with the precision you inspect with")
    p.add_argument("--allow-factory", action="append", metavar="PKG.MOD:FN",
                   help="allow the model file's backbone factory to be imported (only for files you trust)")
    p.add_argument("--out", required=True, metavar="FILE", help="model file to write (may be --model with --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run ``ispad calibrate``."""
    from ispad_core.nn.calibration import UnsupportedRateError, UnsupportedRateWarning, calibrate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnsupportedRateWarning)
        try:
            cal = calibrate(
                args.model, list(args.good), design=args.design, target_fpr=args.target_fpr, rois=args.rois,
                stride=args.stride, method=args.method, out=args.out, overwrite=args.overwrite,
                verbose=False if args.quiet else None, allow_unsupported=args.allow_unsupported,
                min_roi_fraction=args.min_roi_fraction, allow_factory=args.allow_factory, batch_size=args.batch_size,
                device=args.device, precision=args.precision,
            )
        except UnsupportedRateError as exc:
            raise CLIError(
                f"--target-fpr {args.target_fpr:g} needs at least {exc.needed} fault-free windows, and the scans in "
                f"--good give {exc.n} (they support rates down to 1/(n+1) = {exc.smallest_supported_fpr:.3g}): add "
                "fault-free scans, use a smaller --stride or a larger --target-fpr, or pass --allow-unsupported"
            ) from None
    for w in caught:
        if issubclass(w.category, UnsupportedRateWarning):
            print(f"warning: --target-fpr: {str(w.message).split(': ', 1)[1]}")
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    print(cal)
    print(f"inspect with: ispad inspect SCANS... --model {args.out} --design {args.design} --out results/")
    return 0
