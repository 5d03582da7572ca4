"""The ``ispad`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ispad_core._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ispad",
        description="Synthetic defects, balanced training streams and ISP-AD metrics.",
    )
    parser.add_argument("--version", action="version", version=f"ispad {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ispad`` console script; returns the process exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
