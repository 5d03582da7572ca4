"""``ispad benchmark``: write the built-in benchmark with "real" defects the synthesizer cannot draw."""

from __future__ import annotations

import argparse

from ispad_core.cli.argtypes import int_at_least, nonnegative, number_in, positive

_EPILOG = """examples:
  ispad benchmark --out proxy/
  ispad benchmark --out proxy256/ --size 256 --scan-side 1024 --seed 3
  ispad synth --out proxy/stream.h5 --images proxy/scans --size 64 --n 4000 --seed 0   # then a stream from its scans

layout:
  proxy/scans/*.png                     fault-free training scans
  proxy/real/{points,area}/*.png        the pool of "real" defects (ispad train --real proxy/real)
  proxy/real_masks/{points,area}/*_mask.png
  proxy/val/, proxy/test/               MVTec layout (test/good, test/<group>, ground_truth/<group>)
  proxy/benchmark.json                  settings and the defect class of every file
  proxy/test_designs.csv                the design (test scan) of every test patch
  proxy/calibration/<design>/*.png      fault-free calibration sheets of every test design
                                        (ispad calibrate --good proxy/calibration/<design> --design <design>)"""


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``benchmark`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "benchmark",
        help="write the built-in benchmark: scans, a pool of 'real' defects, validation and test sets",
        description="Write a benchmark that stands in for the closed ISP-AD data: fault-free scans of the built-in "
        "screen print, a pool of 'real' defective patches in two groups (points: blobs and clusters; area: squeegee "
        "streaks along the print direction, pattern misalignment, grid damage) drawn by a generator that shares no "
        "code with the synthesizer, and held-out validation and test sets with about 20 fault-free patches per "
        "defective one, the design of every test patch and fault-free calibration sheets of every test design. "
        "The same --seed gives the same files.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder to create")
    p.add_argument("--seed", type=nonnegative, default=0, help="seed (default 0)")
    p.add_argument("--size", type=int_at_least(16), default=64, help="patch side in pixels (default 64)")
    p.add_argument("--scans", type=positive, default=4, help="fault-free training scans (default 4; as many validation and test scans are drawn)")
    p.add_argument("--scan-side", type=positive, default=512, help="side of each scan in pixels (default 512)")
    p.add_argument("--n-points", type=nonnegative, default=32, help="'real' point defects in the pool (default 32)")
    p.add_argument("--n-area", type=nonnegative, default=32, help="'real' area defects in the pool (default 32)")
    p.add_argument("--n-val", type=positive, default=16, help="defective patches in the validation set (default 16)")
    p.add_argument("--n-test", type=positive, default=40, help="defective patches in the test set (default 40)")
    p.add_argument("--good-per-defective", type=positive, default=20, help="fault-free patches per defective one in validation and test (default 20)")
    p.add_argument("--contrast", type=number_in(0.0, 10.0, open_low=True), default=1.0, help="factor on the 'real' defects' contrast (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing benchmark folder")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Write the benchmark; print what was written and where."""
    from ispad_core.samples.proxy import proxy_benchmark

    bench = proxy_benchmark(
        args.out,
        seed=args.seed,
        size=args.size,
        n_scans=args.scans,
        scan_side=args.scan_side,
        n_points=args.n_points,
        n_area=args.n_area,
        n_val=args.n_val,
        n_test=args.n_test,
        good_per_defective=args.good_per_defective,
        contrast=args.contrast,
        overwrite=args.overwrite,
    )
    def counts(groups):
        return ", ".join(f"{groups.count(g)} {g}" for g in ("good", "points", "area") if g in groups)

    print(f"wrote {bench.root}/")
    print(f"  scans/       {len(bench.scans)} fault-free training scans")
    print(f"  real/        {counts(bench.real_groups)} (masks in real_masks/)")
    print(f"  val/         {counts(bench.val_groups)}")
    print(f"  test/        {counts(bench.test_groups)} (their designs in test_designs.csv)")
    sheets = sum(len(v) for v in bench.calibration.values())
    print(f"  calibration/ {sheets} fault-free sheets of the {len(bench.calibration)} test designs")
    return 0
