"""The ``ispad`` command: synthetic training streams, galleries, merging and evaluation.

Subcommands (``ispad <command> --help`` for each)::

    ispad synth     --out FILE.h5 [--images DIR ...] [--n N] [--preset NAME | --params FILE.json] [--seed S]
                    [--min-contrast G] [--shard K/N | --scheduler ADDRESS]
    ispad merge     PARTS... --out FILE.h5 [--copy] [--partial]
    ispad gallery   --out FILE.png [--preset NAME | --params FILE.json] [--images DIR] [--annotate]
    ispad evaluate  --scores SCORES.csv [--maps DIR --dataset ROOT]
    ispad info      FILE.h5 [--below G]
    ispad train     --stream FILE.h5 --out model.pt [--real DIR] [--val DIR] [--p-inj 1/32] [--backbone NAME]
    ispad inspect   SCANS... --model model.pt --out results/ [--roi DIR] [--engine torch|onnxruntime]
    ispad export    --model model.pt --onnx model.onnx
    ispad crops     --scans DIR --at POSITIONS.csv --out real/ [--size 512]
    ispad benchmark --out DIR [--seed S] [--size 64]
    ispad experiment --config experiment.toml --out runs/ [--jobs N]
    ispad demo      --out DIR

Every command runs on the built-in procedural sample (:mod:`ispad_core.samples`) when given no
images. Errors are reported as one line on stderr with exit status 1 (2 for usage errors);
an interrupted ``ispad synth`` exits with 130 and resumes when run again with the same arguments.

What counts as a user error (one line, exit 1) is decided by the exception's type: the library's
:class:`ispad_core.InputError` family (bad arguments, files, settings; :class:`CLIError` is one),
any ValueError, and OSError (files: missing, existing, unreadable, busy). Anything else, a
TypeError or RuntimeError raised inside NumPy, Numba, h5py, Python or by a mistake in the
library's own code included, is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ispad_core._shared.errors import InputError
from ispad_core._shared.version import __version__
from ispad_core.evaluation import format_row  # noqa: F401  (importable from here, as before)
from ispad_core.samples.builtin import BUILTIN_KINDS, BUILTIN_SIDE, builtin_images  # noqa: F401  (as before)

#: Subcommands that live in their own module ``ispad_core.cli.<name>`` (``add_parser(sub)`` and
#: ``run(args)``), in the order ``ispad --help`` lists them after the ones defined here.
_COMMAND_MODULES = ("train", "inspect", "export", "crops", "benchmark", "experiment", "demo")


class CLIError(InputError):
    """A user error of the command line (an option missing or at odds with another): one line, exit status 1."""


# --------------------------------------------------------------------------- helpers


def _shard(text: str) -> tuple[int, int]:
    try:
        k, parts = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N with integers, e.g. 0/8, got {text!r}") from None
    if parts < 1 or not 0 <= k < parts:
        raise argparse.ArgumentTypeError(f"expected 0 <= K < N in K/N, got {text!r}")
    return k, parts


def _int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


_positive = _int_at_least(1)
_nonnegative = _int_at_least(0)


def _number_in(low: float, high: float, *, open_low: bool = False, what: str = "a number"):
    """An argparse type: a float in ``[low, high]`` (``(low, high]`` with ``open_low``); rejects NaN."""
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} in {interval}, got {text!r}") from None
        if not ((low < value) if open_low else (low <= value)) or not value <= high:  # also rejects nan
            raise argparse.ArgumentTypeError(f"expected {what} in {interval}, got {text!r}")
        return value

    parse.__name__ = f"number in {interval}"
    return parse


#: ``--min-roi-fraction``, ``--fpr-limit``: a number in (0, 1].
_fraction = _number_in(0.0, 1.0, open_low=True)
#: ``--defect-fraction``: a number in [0, 1].
_unit_interval = _number_in(0.0, 1.0)
#: ``--min-contrast``, ``--below``: 8-bit grey levels in [0, 255].
_grey_levels = _number_in(0.0, 255.0, what="a number of grey levels")


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _read_scans(args):
    """``--images`` (and ``--rois``): 8- or 16-bit scans, each at least ``--size`` on a side.

    Through :func:`ispad_core.io.read_scans`, which pairs each scan with its ROI by file name.
    """
    from ispad_core.io import read_scans

    return read_scans(args.images, rois=args.rois, name="--images", rois_name="--rois", depth=(8, 16), min_size=args.size)


def _read_params(args):
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


def cmd_synth(args) -> int:
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
    params = _read_params(args)
    rois = roi_names = None
    if args.images:
        scans = _read_scans(args)
        images, names, rois, roi_names = scans.images, scans.names, scans.rois, scans.roi_names
        wide = [n for n, im in zip(names, images) if im.dtype == np.uint16]
        if wide:
            print(f"{len(wide)} of {len(images)} scans have 16 bits per sample (e.g. {wide[0]}); the stream "
                  f"stores 8: each is reduced to round(v / 257)", file=sys.stderr)
    else:
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


def cmd_merge(args) -> int:
    from ispad_core.io import merge_streams, open_stream

    out = merge_streams(args.parts, args.out, copy=args.copy, overwrite=args.overwrite, partial=args.partial)
    with open_stream(out) as s:
        kind = "copied into one file" if args.copy else "virtual datasets over the parts"
        print(f"merged {len(args.parts)} parts into {out}: {len(s)} patches, {int(s.labels.sum())} defective ({kind})")
    return 0


def cmd_gallery(args) -> int:
    from ispad_core.io import read_images, write_png
    from ispad_core.synth import annotated_gallery
    from ispad_core.tiling import random_patches

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CLIError(f"--out: {out} exists; pass --overwrite to replace it")
    params = _read_params(args)
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


def evaluate_scores(scores_csv, **kwargs) -> dict:
    """:func:`ispad_core.evaluation.evaluate_scores` with the option names of ``ispad evaluate`` in errors."""
    from ispad_core.evaluation import evaluate_scores as evaluate

    return evaluate(scores_csv, names={"scores": "--scores", "maps": "--maps", "dataset": "--dataset"}, **kwargs)


def cmd_evaluate(args) -> int:
    from ispad_core._shared.files import atomic_output, check_output_path
    from ispad_core.evaluation import format_row

    target = Path(args.json) if args.json else None
    if target is not None:  # before any work or output
        if target.exists() and not args.overwrite:
            raise CLIError(f"--json: {target} exists; pass --overwrite to replace it")
        check_output_path(target, "--json", overwrite=args.overwrite)
    result = evaluate_scores(args.scores, maps=args.maps, dataset=args.dataset, threshold=args.threshold, fpr_limit=args.fpr_limit)
    text = json.dumps(result, indent=2)
    if args.format in ("table", "both"):
        print(format_row(result))
    if args.format == "both":
        print()
    if args.format in ("json", "both"):
        print(text)
    if target is not None:
        with atomic_output(target, name="--json", overwrite=args.overwrite) as tmp:
            tmp.write_text(text + "\n")
    return 0


def cmd_info(args) -> int:
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


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ispad",
        description="Synthetic defects, balanced training streams and ISP-AD metrics.",
        epilog="Run 'ispad COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"ispad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    p.add_argument("--n", type=_positive, default=1000, help="patches in the whole stream (default 1000); exactly n//2 get a defect at the default --defect-fraction")
    p.add_argument("--preset", help="defect preset of ispad_core.synth.PRESETS (default mixed)")
    p.add_argument(
        "--params",
        metavar="FILE.json",
        help="defect parameters from a JSON file (DefectParams.to_dict() or DefectMixture.to_dict()) instead of --preset",
    )
    p.add_argument(
        "--min-contrast",
        type=_grey_levels,
        metavar="G",
        help="redraw a defect whose mask pixels change by less than G grey levels on average (8-bit levels), "
        "besides the preset's own visibility test (default: that test alone)",
    )
    p.add_argument("--augment", default="lsm1", help="table-8 augmentation preset (lsm1, lsm2, asm) or none (default lsm1)")
    p.add_argument("--seed", type=_nonnegative, help="seed of the stream (default: a fresh one, printed and recorded in the file)")
    p.add_argument("--size", type=_positive, default=256, help="patch side in pixels (default 256)")
    p.add_argument("--min-roi-fraction", type=_fraction, default=1.0, help="fraction of a patch that must lie inside the ROI (default 1)")
    p.add_argument(
        "--defect-fraction",
        type=_unit_interval,
        default=0.5,
        help="fraction of patches with a synthetic defect (default 0.5, the balanced stream; 0 = fault-free only)",
    )
    p.add_argument("--shard", type=_shard, metavar="K/N", help="write only part K (0 <= K < N) of N of the stream (needs --seed); join parts with 'ispad merge'")
    p.add_argument("--scheduler", metavar="ADDRESS", help="write on a Dask cluster (e.g. tcp://host:8786; needs the [dask] extra)")
    p.add_argument("--parts", type=_positive, metavar="K", help="with --scheduler: parts of the stream, one Dask task each (default twice the workers)")
    p.add_argument("--batch-size", type=_positive, default=256, help="patches per batch and checkpoint (default 256)")
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
    p.set_defaults(func=cmd_synth)

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
    p.set_defaults(func=cmd_merge)

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
    p.add_argument("--n", type=_positive, default=8, help="number of defects (default 8)")
    p.add_argument("--size", type=_positive, default=128, help="tile side in pixels (default 128)")
    p.add_argument("--columns", type=_positive, default=2, help="defects per row (default 2)")
    p.add_argument("--zoom", type=_positive, default=1, help="integer magnification (default 1)")
    p.add_argument("--seed", type=_nonnegative, default=0, help="seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_gallery)

    p = sub.add_parser(
        "evaluate",
        help="score a detector: the paper's table-3 row and AU-PRO",
        description="Compute MCC, recall, FPR, TN/TP/FN/FP (the paper's table 3), precision and AUROC from image "
        "scores, and with --maps the AU-PRO and pixel AUROC from anomaly maps. The scores CSV has the columns "
        "name,score,label (label 1 = defective; names like area/001.png as in test/ of the MVTec layout). Anomaly "
        "maps are .npy, .tiff or .png files named like the test images (DIR/<group>/<stem>.npy); the ground-truth "
        "masks come from --dataset (ground_truth/<group>/<stem>_mask.png).",
        epilog="examples:\n  ispad evaluate --scores scores.csv\n"
        "  ispad evaluate --scores scores.csv --maps maps/ --dataset ISP-AD/LSM-1 --json result.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scores", required=True, metavar="CSV", help="image scores: columns name,score,label")
    p.add_argument("--maps", metavar="DIR", help="anomaly maps in the MVTec layout (needs --dataset)")
    p.add_argument("--dataset", metavar="ROOT", help="the MVTec-layout dataset the scores belong to (checks names and labels)")
    p.add_argument("--threshold", type=_finite, help="predict defective when score >= threshold (default: the F1-optimal one)")
    p.add_argument("--fpr-limit", type=_fraction, default=0.3, help="FPR limit of AU-PRO (default 0.3)")
    p.add_argument("--format", choices=("table", "json", "both"), default="both", help="what to print (default both)")
    p.add_argument("--json", metavar="FILE", help="also write the JSON to FILE")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "info",
        help="describe a stream file",
        description="Print the size, labels and attributes of an HDF5 stream file, and the visibility figures of its "
        "defects: quantiles of their contrast (mean absolute change of the mask's pixels, 8-bit grey levels), "
        "contrast-to-noise ratio and sum of squared residuals, and how many have a contrast under --below.",
    )
    p.add_argument("file", metavar="FILE.h5")
    p.add_argument("--full", action="store_true", help="do not shorten long attributes")
    p.add_argument("--below", type=_grey_levels, default=3.0, metavar="G", help="count defects under G grey levels of contrast (default 3)")
    p.set_defaults(func=cmd_info)

    for module in _COMMAND_MODULES:
        importlib.import_module(f"ispad_core.cli.{module}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ispad`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    started = time.perf_counter()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.command == "synth":
            print(f"\nispad synth: interrupted after {time.perf_counter() - started:.0f} s; {args.out}.part keeps the "
                  f"finished batches: run the same command again to resume", file=sys.stderr)
        else:
            print(f"\nispad {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`ispad info FILE | head`): stop quietly, as Unix tools do, and keep
        # Python from complaining again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (InputError, ValueError, OSError) as exc:
        print(f"ispad {args.command}: error: {exc}", file=sys.stderr)
        return 1
