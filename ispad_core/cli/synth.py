"""``ispad synth``: write a balanced synthetic training stream to HDF5."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import numpy as np

from ispad_core.cli.argtypes import fraction, grey_levels, nonnegative, positive, shard, unit_interval
from ispad_core.cli.errors import CLIError


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``synth`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "synth",
        help="write a balanced synthetic training stream to HDF5",
        description="Write a balanced stream of patches, half of them with synthetic defects and pixel masks, "
        "to an HDF5 file (syn_stream/images, syn_stream/labels, ground_truth). Without --images it uses the "
        "built-in procedural screen-print sample. An interrupted run leaves FILE.part and resumes when run again.",
        epilog="examples:\n  ispad synth --out stream.h5 --n 2000 --seed 0\n"
        "  ispad synth --out lsm1.h5 --images scans/ --rois rois/ --n 200000 --preset lsm1 --seed 7\n"
        "  ispad synth --out part-3.h5 --images scans/ --n 200000 --seed 7 --shard 3/8\n"
        "  ispad synth --out lsm1.h5 --images scans/ --n 200000 --seed 7 --scheduler tcp://head:8786 --parts 32",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="FILE.h5", help="output HDF5 file")
    p.add_argument("--images", nargs="+", metavar="DIR", help="fault-free images: folders and/or files (PNG, TIFF, BMP, JPEG)")
    p.add_argument("--rois", metavar="DIR", help="regions of interest, one mask per image with the same file name (nonzero = inside)")
    p.add_argument("--n", type=positive, default=1000, help="patches in the whole stream (default 1000); exactly n//2 get a defect at the default --defect-fraction")
    p.add_argument("--preset", help="defect preset of ispad_core.synth.PRESETS (default mixed)")
    p.add_argument(
        "--params",
        metavar="FILE.json",
        help="defect parameters from a JSON file (DefectParams.to_dict() or DefectMixture.to_dict()) instead of --preset",
    )
    p.add_argument(
        "--min-contrast",
        type=grey_levels,
        metavar="G",
        help="redraw a defect whose mask pixels change by less than G grey levels on average (8-bit levels), "
        "besides the preset's own visibility test (default: that test alone)",
    )
    p.add_argument("--augment", default="lsm1", help="table-8 augmentation preset (lsm1, lsm2, asm) or none (default lsm1)")
    p.add_argument("--seed", type=nonnegative, help="seed of the stream (default: a fresh one, printed and recorded in the file)")
    p.add_argument("--size", type=positive, default=256, help="patch side in pixels (default 256)")
    p.add_argument("--min-roi-fraction", type=fraction, default=1.0, help="fraction of a patch that must lie inside the ROI (default 1)")
    p.add_argument(
        "--defect-fraction",
        type=unit_interval,
        default=0.5,
        help="fraction of patches with a synthetic defect (default 0.5, the balanced stream; 0 = fault-free only)",
    )
    p.add_argument("--shard", type=shard, metavar="K/N", help="write only part K (0 <= K < N) of N of the stream (needs --seed); join parts with 'ispad merge'")
    p.add_argument("--scheduler", metavar="ADDRESS", help="write on a Dask cluster (e.g. tcp://host:8786; needs the [dask] extra)")
    p.add_argument("--parts", type=positive, metavar="K", help="with --scheduler: parts of the stream, one Dask task each (default twice the workers)")
    p.add_argument("--batch-size", type=positive, default=256, help="patches per batch and checkpoint (default 256)")
    p.add_argument(
        "--compression",
        default="isal",
        choices=("isal", "zlib", "zstd", "none"),
        help="chunk compression (default isal: ISA-L deflate; zlib: zlib level 1; both are gzip-filter chunks any HDF5 reader "
        "opens; zstd: Zstandard, reads about 4 x faster, other readers need the HDF5 Zstd filter plugin)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--no-resume", action="store_true", help="start over instead of resuming an unfinished write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _read_scans(args):
    """``--images`` (and ``--rois``): 8- or 16-bit scans, each at least ``--size`` on a side.

    Through :func:`ispad_core.io.read_scans`, which pairs each scan with its ROI by file name.
    """
    from ispad_core.io import read_scans

    return read_scans(args.images, rois=args.rois, name="--images", rois_name="--rois", depth=(8, 16), min_size=args.size)


def read_params(args):
    """``--params FILE.json`` or ``--preset NAME`` (default mixed)."""
    if args.params is None:
        return args.preset or "mixed"
    if args.preset is not None:
        raise CLIError("--params and --preset: give one of them")
    from ispad_core.synth import read_params

    return read_params(args.params, name="--params")


# --------------------------------------------------------------------------- commands


class _DeferredInterrupt:
    """Ctrl-C during ``ispad synth``: finish the batch in flight, checkpoint it, then stop.

    Python raises KeyboardInterrupt wherever the interpreter happens to be, and one raised inside
    a weakref callback or a ``__del__`` is printed and swallowed, so a plain Ctrl-C could be lost
    and the run would go on. The first Ctrl-C only sets a flag that :meth:`check` (called after each
    checkpointed batch) turns into KeyboardInterrupt at a safe point; a second one interrupts at
    once, as usual.
    """

    #: Test hook: with ``ISPAD_TEST_SIGINT_AT=K`` in the environment the process sends itself
    #: SIGINT once the checkpoint at ``K`` items is passed, as a user's Ctrl-C at that moment would
    #: (the command's tests use it instead of racing a progress bar).
    TEST_HOOK = "ISPAD_TEST_SIGINT_AT"

    def __enter__(self) -> "_DeferredInterrupt":
        self.requested = False
        self._previous = signal.signal(signal.SIGINT, self._handler)
        at = os.environ.get(self.TEST_HOOK)
        self._send_at = int(at) if at and at.isdigit() else None
        return self

    def _handler(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def check(self, done: int, total: int) -> None:
        if self._send_at is not None and done >= self._send_at:
            self._send_at = None
            signal.raise_signal(signal.SIGINT)  # runs the handler before the next line
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self._previous)


def run(args) -> int:
    """Write the stream; print what was written, the time per stage and how to write it again."""
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CLIError(f"--out: {out} exists; pass --overwrite to replace it")
    seed = args.seed
    if seed is None and not args.no_resume:
        from ispad_core.stream import seed_of_unfinished

        seed = seed_of_unfinished(out)
        if seed is not None:
            print(f"resuming the unfinished write {out}.part (seed {seed})", file=sys.stderr)
    if seed is None:
        if args.shard is not None:  # each part would draw its own seed: parts of different streams
            raise CLIError(
                f"--shard needs --seed: every part of a stream must be written with the same seed "
                f"(e.g. --shard {args.shard[0]}/{args.shard[1]} --seed 7 on every machine)"
            )
        seed = int(np.random.SeedSequence().generate_state(1, np.uint32)[0])
    if args.rois and not args.images:
        raise CLIError("--rois needs --images (the built-in sample has no ROIs)")
    params = read_params(args)
    rois = roi_names = None
    if args.images:
        scans = _read_scans(args)
        images, names, rois, roi_names = scans.images, scans.names, scans.rois, scans.roi_names
        wide = [n for n, im in zip(names, images) if im.dtype == np.uint16]
        if wide:
            print(f"{len(wide)} of {len(images)} scans have 16 bits per sample (e.g. {wide[0]}); the stream "
                  f"stores 8: each is reduced to round(v / 257)", file=sys.stderr)
    else:
        from ispad_core.samples import builtin_images

        images, names = builtin_images(seed)
    client = None
    if args.scheduler is not None:
        if args.shard is not None:
            raise CLIError("--scheduler writes every part on the cluster; drop --shard")
        try:
            from distributed import Client
        except ImportError:
            raise CLIError('--scheduler needs Dask: pip install "ispad-core[dask]"') from None
        client = Client(args.scheduler)
        workers = len(client.scheduler_info().get("workers", {}))
        print(f"writing on the Dask cluster at {args.scheduler} ({workers} workers)", file=sys.stderr)
    elif args.parts is not None:
        raise CLIError("--parts needs --scheduler ADDRESS")
    if not args.quiet and client is None:
        from ispad_core.stream.generation import stream_kernels_uncached

        if stream_kernels_uncached():
            print("compiling kernels (first run only, about 30 s)", file=sys.stderr, flush=True)
    try:
        summary = _synth(args, out, images, rois, seed, names, roi_names, client, params)
    finally:
        if client is not None:
            client.close()
    t = summary.timings
    total = sum(t.values()) or 1.0
    share = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in t.items())
    print(summary)
    print(f"time: {summary.seconds:.1f} s ({share})")
    if args.shard is None:
        print(f"reproduce with: {_reproduce_command(args, summary.seed)}")
    return 0


def _synth(args, out, images, rois, seed, names, roi_names, client, params):
    from ispad_core.stream import write_balanced_stream

    with _DeferredInterrupt() as interrupt:
        return write_balanced_stream(
            out,
            images,
            args.n,
            rois=rois,
            preset=params,
            augment=args.augment,
            seed=seed,
            size=args.size,
            min_roi_fraction=args.min_roi_fraction,
            shard=args.shard,
            batch_size=args.batch_size,
            compression=args.compression,
            overwrite=args.overwrite,
            resume=not args.no_resume,
            names=names,
            roi_names=roi_names,
            verbose=not args.quiet and client is None,
            callback=interrupt.check if client is None else None,
            defect_fraction=args.defect_fraction,
            client=client,
            parts=args.parts,
            min_contrast=args.min_contrast,
        )


#: Options of ``ispad synth`` that decide the bytes of the stream, with their defaults.
_SYNTH_CONTENT_OPTIONS = (
    ("--augment", "augment", "lsm1"),
    ("--size", "size", 256),
    ("--min-roi-fraction", "min_roi_fraction", 1.0),
    ("--defect-fraction", "defect_fraction", 0.5),
    ("--batch-size", "batch_size", 256),
    ("--compression", "compression", "isal"),
    ("--min-contrast", "min_contrast", None),
)


def _reproduce_command(args, seed: int) -> str:
    """An ``ispad synth`` command line that writes the same file again (every option that matters)."""
    import shlex

    words = ["ispad", "synth", "--out", str(args.out)]
    if args.images:
        words += ["--images", *map(str, args.images)]
    if args.rois:
        words += ["--rois", str(args.rois)]
    words += ["--n", str(args.n)]
    words += ["--params", str(args.params)] if args.params is not None else ["--preset", args.preset or "mixed"]
    words += ["--seed", str(seed)]
    for flag, name, default in _SYNTH_CONTENT_OPTIONS:
        value = getattr(args, name)
        if value != default:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)
