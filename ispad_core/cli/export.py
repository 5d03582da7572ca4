"""``ispad export``: a model file to an ONNX graph for deployment (onnxruntime)."""

from __future__ import annotations

import argparse
import sys

from ispad_core.cli.argtypes import number_in, positive
from ispad_core.cli.errors import CLIError

EPILOG = """examples:
  ispad export --model model.pt --onnx model.onnx
  ispad export --model model.pt --onnx model-int8.onnx --int8 --calibrate-from scans/
  ispad inspect scans/ --model model.onnx --out results/

--int8 quantizes the graph with onnxruntime (static, QDQ, per-channel int8 weights, uint8
activations; the first convolution and the last linear layer stay fp32 unless --quantize-ends)
calibrated on fault-free windows cut from the scans of --calibrate-from on the
model's grid, then checks that int8 and fp32 scores of those windows differ by at most
--tolerance (default 0.05) and prints the largest difference and both graphs' windows/s. A
warning line follows when int8 is not at least 1.5x faster here or changes a window's side of
the threshold: int8 is not always faster, nor accurate enough (docs/deploy.md).

The graph is the network alone: input float32 (batch, C, S, S) after the paper's preprocessing,
output the (batch, 2) logits. The model file's metadata (patch size, preprocessing, threshold)
travels inside the ONNX file, so 'ispad inspect' needs nothing else. Needs the [deploy] extra:
pip install "ispad-core[deploy]"."""


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``ispad export`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "export",
        help="export a model file to ONNX for onnxruntime",
        description="Write the model of a model file as an ONNX graph with a dynamic batch axis and the model's "
        "metadata, and check that onnxruntime scores random windows like torch fp32 (within 1e-4) before writing.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="FILE", help="model file (model.pt)")
    p.add_argument("--onnx", required=True, metavar="FILE", help="ONNX file to write (model.onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--int8", action="store_true", help="write an int8 graph (onnxruntime static quantization)")
    p.add_argument("--calibrate-from", metavar="DIR", help="with --int8: folder of fault-free scans to calibrate on")
    p.add_argument("--tolerance", type=number_in(0.0, 1.0), default=None, metavar="T",
                   help="largest accepted score difference: to torch fp32 (default 1e-4), or with --int8 to the fp32 "
                   "graph (default 0.05)")
    p.add_argument("--calibration-windows", type=positive, default=256, metavar="N",
                   help="with --int8: most calibration windows (default 256)")
    p.add_argument("--quantize-ends", action="store_true",
                   help="with --int8: quantize the first convolution and the last linear layer too (kept fp32 by default)")
    p.add_argument("--allow-factory", action="append", metavar="PKG.MOD:FN",
                   help="allow the model file's backbone factory to be imported (only for files you trust)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --onnx file")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run ``ispad export``."""
    from ispad_core.nn.export import export_model_file

    if args.int8 != (args.calibrate_from is not None):
        raise CLIError("--int8 needs --calibrate-from DIR (fault-free scans), and --calibrate-from needs --int8")
    result = export_model_file(args.model, args.onnx, allow_factory=args.allow_factory, opset=args.opset,
                               overwrite=args.overwrite, int8=args.int8, calibrate_from=args.calibrate_from,
                               tolerance=args.tolerance, calibration_limit=args.calibration_windows,
                               quantize_ends=args.quantize_ends)
    print(result)
    warning = getattr(result, "warning", None)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"inspect with: ispad inspect SCANS... --model {args.onnx} --out results/")
    return 0
