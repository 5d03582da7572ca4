"""``ispad review``: one HTML page on which a person confirms or rejects what ``ispad inspect`` flagged."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  ispad inspect new_scans/ --model model.pt --out results/
  ispad review results/ --out review.html
  # open review.html in a browser, decide, press "Export CSV" -> decisions.csv
  ispad crops --scans new_scans/ --at decisions.csv --size 512 --out real/ --good-out good/
  ispad train --stream stream.h5 --real real/ --negatives good/ --from model.pt --val val/ --out model2.pt

The page needs no server and no network: it is one file with the pictures inside. In decisions.csv
(scan,row,col,group,decision,score,threshold) row and col are the window's top-left corner as the
inspection reports it; decision is defect or false_alarm; undecided windows are left out."""


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``ispad review`` to the subparsers ``sub``."""
    from ispad_core.cli.argtypes import positive

    p = sub.add_parser(
        "review",
        help="a review page for the windows 'ispad inspect' flagged -> decisions.csv",
        description="Write ONE self-contained HTML page listing every window flagged in an 'ispad inspect' output "
        "folder, highest score first: the window, its heat map, where it lies in the scan, score and threshold, "
        "with the buttons 'defect' (and a group) and 'false alarm', keyboard shortcuts, a counter, and 'Export "
        "CSV', which downloads decisions.csv for 'ispad crops --at'.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results", metavar="RESULTS", help="the output folder of 'ispad inspect'")
    p.add_argument("--out", required=True, metavar="FILE.html", help="the page to write")
    p.add_argument("--scans", metavar="DIR", help="folder of the scans (default: the path each report records)")
    p.add_argument("--max", type=positive, default=200, metavar="N",
                   help="show the N highest-scoring windows (default 200)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run ``ispad review``."""
    from ispad_core.evaluation import write_review_page

    path, shown, total = write_review_page(args.results, args.out, scans=args.scans, max_windows=args.max,
                                           overwrite=args.overwrite)
    if total == 0:
        print(f"no windows were flagged in {args.results}; {path} says so")
    else:
        more = f" (the {shown} highest of {total})" if shown < total else ""
        print(f"wrote {path}: {shown} flagged windows to review{more}; open it in a browser, decide, and press "
              f"'Export CSV' for decisions.csv")
    return 0
