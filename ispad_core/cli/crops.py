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
        "The decisions.csv of 'ispad review' (scan,row,col,group,decision,score,threshold) is read as it is: "
        "each row is a reviewed inspection window, row and col its top-left corner and --size its side (required "
        "then: the model's patch size); 'defect' rows go to OUT/<group>/, 'false_alarm' rows to --good-out DIR, "
        "the fault-free windows 'ispad train --negatives' reads. Every row is checked before the first file is "
        "written.",
        epilog="examples:\n  ispad crops --scans scans/ --at defects.csv --size 512 --out real/\n"
        "  ispad crops --scans new_scans/ --at decisions.csv --size 512 --out real/ --good-out good/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scans", required=True, metavar="DIR", help="folder of the full scans named in the table")
    p.add_argument("--at", required=True, metavar="CSV", help="position table with columns scan,row,col,group "
                   "(or the decisions.csv of 'ispad review')")
    p.add_argument("--out", metavar="DIR", help="output folder, one sub-folder per group (needed when the table "
                   "lists defects)")
    p.add_argument("--good-out", metavar="DIR", help="folder for the false_alarm windows of a decisions.csv "
                   "(needed when it lists any)")
    p.add_argument("--size", type=positive, default=None, help="patch side in pixels (default 512, as in the "
                   "paper; for a decisions.csv the inspection's window side, required)")
    p.add_argument("--pad", action="store_true", help="mirror the scan's border for patches that leave it (default: refuse them)")
    p.add_argument("--overwrite", action="store_true", help="replace existing patch files")
    p.set_defaults(func=run)


def run(args) -> int:
    from ispad_core.tiling.crops import read_positions, write_crops

    rows = read_positions(args.at)
    written = write_crops(rows, scans=args.scans, out=args.out, size=args.size, pad=args.pad,
                          overwrite=args.overwrite, good_out=args.good_out)
    groups: dict[str, int] = {}
    alarms = 0
    for p in rows:
        if p.decision == "false_alarm":
            alarms += 1
        else:
            groups[p.group] = groups.get(p.group, 0) + 1
    side = args.size or 512
    if groups:
        per_group = ", ".join(f"{n} {g}" for g, n in sorted(groups.items()))
        print(f"wrote {len(written) - alarms} patches of {side} x {side} to {args.out} ({per_group})")
    if alarms:
        print(f"wrote {alarms} false-alarm windows of {side} x {side} to {args.good_out} (fault-free: "
              f"'ispad train --negatives {args.good_out}')")
    return 0
