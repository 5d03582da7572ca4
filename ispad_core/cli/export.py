"""``ispad export``: a model file to an ONNX graph for deployment (onnxruntime)."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  ispad export --model model.pt --onnx model.onnx
  ispad inspect scans/ --model model.onnx --out results/

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
    p.add_argument("--allow-factory", action="append", metavar="PKG.MOD:FN",
                   help="allow the model file's backbone factory to be imported (only for files you trust)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --onnx file")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run ``ispad export``."""
    from ispad_core.nn.export import export_model_file

    result = export_model_file(args.model, args.onnx, allow_factory=args.allow_factory, opset=args.opset,
                               overwrite=args.overwrite)
    print(result)
    print(f"inspect with: ispad inspect SCANS... --model {args.onnx} --out results/")
    return 0
