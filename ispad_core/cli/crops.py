"""``ispad crops``: cut real-defect patches from full scans at listed positions."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from ispad_core.cli.argtypes import positive

    p = sub.add_parser(
        "crops",
        help="cut real-defect patches from scans around listed positions",
        description="Cut a square patch centred on each listed defect from its scan and write it to "
        "OUT/<group>/<scan>_r<row>_c<col>.png, the real-defect folder layout that 'ispad train --real' reads. "
        "The position table is a CSV with the header scan,row,col,group (scan: file name inside --scans; "
        "row, col: the defect's centre in pixels, counted from 0; group: points, area or any folder name). "
        "Every row is checked before the first file is written.",
        epilog="example:\n  ispad crops --scans scans/ --at defects.csv --size 512 --out real/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scans", required=True, metavar="DIR", help="folder of the full scans named in the table")
    p.add_argument("--at", required=True, metavar="CSV", help="position table with columns scan,row,col,group")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder, one sub-folder per group")
    p.add_argument("--size", type=positive, default=512, help="patch side in pixels (default 512, as in the paper)")
    p.add_argument("--pad", action="store_true", help="mirror the scan's border for patches that leave it (default: refuse them)")
    p.add_argument("--overwrite", action="store_true", help="replace existing patch files")
    p.set_defaults(func=run)


def run(args) -> int:
    from ispad_core.tiling.crops import write_crops

    written = write_crops(args.at, scans=args.scans, out=args.out, size=args.size, pad=args.pad, overwrite=args.overwrite)
    groups: dict[str, int] = {}
    for path in written:
        groups[path.parent.name] = groups.get(path.parent.name, 0) + 1
    per_group = ", ".join(f"{n} {g}" for g, n in sorted(groups.items()))
    print(f"wrote {len(written)} patches of {args.size} x {args.size} to {args.out} ({per_group})")
    return 0
