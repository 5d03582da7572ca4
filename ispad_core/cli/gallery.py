"""``ispad gallery``: a contact sheet of synthetic defects."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ispad_core.cli.argtypes import nonnegative, positive
from ispad_core.cli.errors import CLIError
from ispad_core.cli.synth import read_params


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``gallery`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "gallery",
        help="draw a contact sheet of synthetic defects",
        description="Write a PNG contact sheet: synthetic defects of a preset, each beside a copy with its mask outlined.",
        epilog="examples:\n  ispad gallery --out gallery.png\n  ispad gallery --out scratches.png --preset scratch --images scans/ --zoom 2\n"
        "  ispad gallery --out mine.png --params mine.json --annotate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="FILE.png", help="output PNG")
    p.add_argument("--preset", help="defect preset (default mixed)")
    p.add_argument("--params", metavar="FILE.json", help="defect parameters from a JSON file instead of --preset")
    p.add_argument("--images", nargs="+", metavar="DIR", help="draw backgrounds from these images (8 or 16 bits) instead of the built-in sample")
    p.add_argument(
        "--annotate",
        action="store_true",
        help="print each defect's visibility figures (contrast, contrast-to-noise, SSR, attempts) and draw them under it",
    )
    p.add_argument("--n", type=positive, default=8, help="number of defects (default 8)")
    p.add_argument("--size", type=positive, default=128, help="tile side in pixels (default 128)")
    p.add_argument("--columns", type=positive, default=2, help="defects per row (default 2)")
    p.add_argument("--zoom", type=positive, default=1, help="integer magnification (default 1)")
    p.add_argument("--seed", type=nonnegative, default=0, help="seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Draw the contact sheet; print where it went (and each defect's figures with --annotate)."""
    from ispad_core.io import read_images, write_png
    from ispad_core.synth import annotated_gallery
    from ispad_core.tiling import random_patches

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CLIError(f"--out: {out} exists; pass --overwrite to replace it")
    params = read_params(args)
    backgrounds = None
    if args.images:
        images, _ = read_images(args.images, name="--images", depth=(8, 16), min_size=args.size)
        rng = np.random.default_rng(args.seed)
        picks = rng.integers(0, len(images), args.n)
        backgrounds = np.stack([random_patches(images[j], 1, args.size, rng=rng)[0][0] for j in picks])
    result = annotated_gallery(
        params, backgrounds=backgrounds, n=args.n, size=args.size, columns=args.columns, zoom=args.zoom, rng=args.seed,
        captions=args.annotate,
    )
    write_png(out, result.sheet, overwrite=args.overwrite)
    what = f"preset {params}" if isinstance(params, str) else f"the parameters of {args.params}"
    if args.annotate:
        for figures in result.figures:
            print(figures)
    print(f"wrote {out} ({result.sheet.shape[1]} x {result.sheet.shape[0]} px, {args.n} defects of {what})")
    return 0
