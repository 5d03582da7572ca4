"""The ``ispad`` parser: one sub-command per module of :mod:`ispad_core.cli`."""

from __future__ import annotations

import argparse

from ispad_core._shared.version import __version__
from ispad_core.cli import (
    benchmark,
    calibrate,
    crops,
    demo,
    evaluate,
    experiment,
    export,
    fit_preset,
    gallery,
    info,
    inspect,
    merge,
    pretrain,
    review,
    synth,
    train,
)

__all__ = ["COMMANDS", "build_parser"]

#: The command modules, in the order ``ispad --help`` lists them: each has ``add_parser(sub)``,
#: which registers its options and sets ``func`` to its ``run(args)``.
COMMANDS = (synth, merge, gallery, fit_preset, evaluate, info, pretrain, train, calibrate, inspect, review, export, crops, benchmark, experiment, demo)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``ispad`` command (building it imports no torch)."""
    parser = argparse.ArgumentParser(
        prog="ispad",
        description="Synthetic defects, balanced training streams and ISP-AD metrics.",
        epilog="Run 'ispad COMMAND --help' for the options of a command.\n\n"
        "environment:\n"
        "  ISPAD_MAX_IMAGE_PIXELS  the largest image read, in pixels (default: Pillow's guard against\n"
        "                          decompression bombs, 89 478 485; 'none' for no limit)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ispad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser
