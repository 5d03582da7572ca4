"""The ``ispad`` command: synthetic training streams, galleries, merging and evaluation.

Subcommands (``ispad <command> --help`` for each)::

    ispad synth     --out FILE.h5 [--images DIR ...] [--n N] [--preset NAME | --params FILE.json] [--seed S]
                    [--min-contrast G] [--shard K/N | --scheduler ADDRESS]
    ispad merge     PARTS... --out FILE.h5 [--copy] [--partial]
    ispad gallery   --out FILE.png [--preset NAME | --params FILE.json] [--images DIR] [--annotate]
    ispad fit-preset REAL --out FILE.json [--group G] [--base NAME]
    ispad evaluate  --scores SCORES.csv [--maps DIR --dataset ROOT]
    ispad info      FILE.h5 [--below G]
    ispad pretrain  --images DIR --out backbone.pth [--steps N] [--backbone NAME] [--patch-size 64]
    ispad train     --stream FILE.h5 --out model.pt [--real DIR] [--val DIR] [--p-inj 1/32] [--backbone NAME]
                    [--from model.pt] [--negatives DIR] [--p-neg 1/16]; --images DIR in place of --stream: [--curriculum 6:0.5]
    ispad calibrate --model model.pt --good DIR --design NAME --target-fpr R --out model.pt
    ispad inspect   SCANS... --model model.pt --out results/ [--roi DIR] [--design NAME] [--engine torch|onnxruntime]
    ispad export    --model model.pt --onnx model.onnx [--int8 --calibrate-from DIR]
    ispad review    results/ --out review.html [--scans DIR]
    ispad crops     --scans DIR --at POSITIONS.csv --out real/ [--size 512] [--good-out DIR]
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
library's own code included, is a bug and shows its traceback. A full disk is one line naming
the file and the free space (:class:`ispad_core._shared.files.OutOfSpaceError`, an OSError).

Environment: ``ISPAD_MAX_IMAGE_PIXELS`` sets the largest image, in pixels, that is read (default:
Pillow's guard against decompression bombs, ``PIL.Image.MAX_IMAGE_PIXELS``; ``none`` for no limit).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from ispad_core._shared.errors import InputError
from ispad_core.cli.parser import build_parser

__all__ = ["main"]


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
