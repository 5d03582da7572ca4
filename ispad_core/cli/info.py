"""``ispad info``: describe a stream file."""

from __future__ import annotations

import argparse
import json

from ispad_core.cli.argtypes import grey_levels


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``info`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "info",
        help="describe a stream file",
        description="Print the size, labels and attributes of an HDF5 stream file, and the visibility figures of its "
        "defects: quantiles of their contrast (mean absolute change of the mask's pixels, 8-bit grey levels), "
        "contrast-to-noise ratio and sum of squared residuals, and how many have a contrast under --below.",
    )
    p.add_argument("file", metavar="FILE.h5")
    p.add_argument("--full", action="store_true", help="do not shorten long attributes")
    p.add_argument("--below", type=grey_levels, default=3.0, metavar="G", help="count defects under G grey levels of contrast (default 3)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Print the file's size, labels, attributes and the visibility of its defects."""
    from ispad_core.io import open_stream

    with open_stream(args.file) as s:
        labels = s.labels
        print(f"{args.file}: {len(s)} patches of {'x'.join(map(str, s.image_shape))}, {int(labels.sum())} defective")
        for key, value in s.attrs.items():
            text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
            if len(text) > 100 and not args.full:
                text = text[:97] + "..."
            print(f"  {key}: {text}")
        if int(labels.sum()):
            from ispad_core.stream import visibility_summary

            summary = visibility_summary(s, below=args.below)
            print(summary if summary is not None else "visibility figures: none stored (a file of an earlier version)")
    return 0
