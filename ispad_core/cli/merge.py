"""``ispad merge``: join stream parts written with ``--shard``."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``merge`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "merge",
        help="join stream parts written with --shard",
        description="Join HDF5 stream parts (ispad synth --shard K/N) into one file, in the order of their item ranges. "
        "By default the result holds HDF5 virtual datasets that read from the parts (keep them beside it); "
        "--copy writes a self-contained file, byte-identical to what one uninterrupted run writes.",
        epilog="example:\n  ispad merge part-*.h5 --out stream.h5 --copy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("parts", nargs="+", metavar="PART", help="stream files to join")
    p.add_argument("--out", required=True, metavar="FILE.h5", help="merged file")
    p.add_argument("--copy", action="store_true", help="copy the compressed chunks instead of linking the parts")
    p.add_argument("--partial", action="store_true", help="allow parts that miss the start or the end of their stream")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Join the parts; print what the file holds."""
    from ispad_core.io import merge_streams, open_stream

    out = merge_streams(args.parts, args.out, copy=args.copy, overwrite=args.overwrite, partial=args.partial)
    with open_stream(out) as s:
        kind = "copied into one file" if args.copy else "virtual datasets over the parts"
        print(f"merged {len(args.parts)} parts into {out}: {len(s)} patches, {int(s.labels.sum())} defective ({kind})")
    return 0
