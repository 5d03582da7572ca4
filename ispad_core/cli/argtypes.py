"""The argparse types of the ``ispad`` command's options: each parses one value or says what it expected."""

from __future__ import annotations

import argparse
import math

__all__ = [
    "finite",
    "fraction",
    "grey_levels",
    "int_at_least",
    "nonnegative",
    "number_in",
    "positive",
    "shard",
    "unit_interval",
]


def shard(text: str) -> tuple[int, int]:
    try:
        k, parts = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N with integers, e.g. 0/8, got {text!r}") from None
    if parts < 1 or not 0 <= k < parts:
        raise argparse.ArgumentTypeError(f"expected 0 <= K < N in K/N, got {text!r}")
    return k, parts


def int_at_least(minimum: int):
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


positive = int_at_least(1)
nonnegative = int_at_least(0)


def number_in(low: float, high: float, *, open_low: bool = False, what: str = "a number"):
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
fraction = number_in(0.0, 1.0, open_low=True)
#: ``--defect-fraction``: a number in [0, 1].
unit_interval = number_in(0.0, 1.0)
#: ``--min-contrast``, ``--below``: 8-bit grey levels in [0, 255].
grey_levels = number_in(0.0, 255.0, what="a number of grey levels")


def finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value
