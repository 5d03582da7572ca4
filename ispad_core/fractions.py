"""Nested fractions of the real defects: the 1, 1/2, 1/4, 1/8, 1/16 selections of the paper.

The ISP-AD paper (section 5.2) shuffles all available real defects once and then takes
fractions "in an ordered manner", so that every defect of a smaller fraction is also in every
larger one. :func:`nested_fractions` does exactly that: one permutation, then prefixes of
length ``floor(f * n)``. The paper's counts follow: 172 defects (LSM-1) give 172, 86, 43, 21, 10
and 146 (ASM) give 146, 73, 36, 18, 9.

The paper also trains on one defect group alone (points or area) with the same number of
defects as the mixed selection of that fraction (table 3: "points 10", "area 10", "mixed 10").
``groups=`` gives these per-group selections from the same single shuffle.

:func:`select_defects` selects by count per group instead ("5 points + 5 area", "all area + 5
points") from the same single shuffle, so every selection is a prefix of its group's shuffled
order and a selection with fewer defects of every group is inside one with more.

Fractions may be written as numbers, :class:`fractions.Fraction` or strings such as ``"1/8"``;
:func:`parse_fraction` converts them. The dictionaries returned are keyed by float, as before,
and also answer to the same fraction written another way: ``sel["1/8"]``, ``sel[Fraction(1, 8)]``
and ``sel[1 / 8]`` are the same entry.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import RNGLike, as_generator, check_int

__all__ = ["PAPER_FRACTIONS", "FractionDict", "nested_fractions", "parse_fraction", "select_defects"]

PAPER_FRACTIONS: tuple[float, ...] = (1.0, 1 / 2, 1 / 4, 1 / 8, 1 / 16)
"""The fractions of section 5.2 of the paper."""

# floor(f * n) is computed with a small tolerance so that e.g. 0.29 * 100 = 28.999999999999996
# counts 29 items, as the decimal the user wrote means; any count that is exact in real numbers is
# recovered, and no count is raised by more than this fraction of an item.
_FLOOR_TOLERANCE = 1e-9


def parse_fraction(value: Any, name: str = "fraction") -> float:
    """A fraction in ``(0, 1]`` from a number, a :class:`fractions.Fraction` or a string.

    Parameters
    ----------
    value : float, int, fractions.Fraction or str
        ``0.125``, ``Fraction(1, 8)``, ``"1/8"``, ``"0.125"`` and ``1`` are all accepted.
    name : str
        The argument's name, for error messages.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``value`` is neither a real number nor a str (a bool included).
    ValueError
        If a string is not a number or a ratio, or the value lies outside ``(0, 1]`` (NaN included).

    Examples
    --------
    >>> from fractions import Fraction
    >>> from ispad_core.fractions import parse_fraction
    >>> parse_fraction("1/8"), parse_fraction(Fraction(1, 16)), parse_fraction(1)
    (0.125, 0.0625, 1.0)
    """
    if isinstance(value, str):
        try:
            f = float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            raise InputValueError(f"{name}: expected a number or a ratio such as '1/8', got {value!r}") from None
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        f = float(value)
    else:
        raise InputTypeError(f"{name}: expected a real number or a str such as '1/8', got {type(value).__name__}")
    if not (0.0 < f <= 1.0):  # also rejects NaN
        raise InputValueError(f"{name}: expected a value in (0, 1], got {value if isinstance(value, str) else format(f, 'g')}")
    return f


def _key(key: Any) -> Any:
    """The float a fraction-like key stands for, or the key itself when it is none."""
    if isinstance(key, bool):
        return key
    if isinstance(key, (str, numbers.Real)):
        try:
            return float(Fraction(key.strip())) if isinstance(key, str) else float(key)
        except (ValueError, ZeroDivisionError):
            return key
    return key


class FractionDict(dict):
    """A dict keyed by float fractions that also finds an entry by an equal fraction written otherwise.

    ``d["1/8"]``, ``d[Fraction(1, 8)]`` and ``d[0.125]`` are the same entry; iteration, ``len``
    and equality are those of the plain dict of float keys.

    Examples
    --------
    >>> from fractions import Fraction
    >>> from ispad_core.fractions import nested_fractions
    >>> sel = nested_fractions(16, rng=0)
    >>> len(sel["1/4"]), len(sel[Fraction(1, 8)]), "1/16" in sel, sel.get("1/3") is None
    (4, 2, True, True)
    """

    def __missing__(self, key: Any) -> Any:
        k = _key(key)
        if k is not key and dict.__contains__(self, k):
            return dict.__getitem__(self, k)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or dict.__contains__(self, _key(key))

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default


def _check_fractions(fractions: Any) -> tuple[float, ...]:
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Iterable):
        raise InputTypeError(f"fractions: expected a sequence of numbers in (0, 1], got {type(fractions).__name__}")
    values = tuple(fractions)
    if not values:
        raise InputValueError("fractions: expected at least one fraction, got an empty sequence")
    out = [parse_fraction(f, f"fractions[{k}]") for k, f in enumerate(values)]
    if len(set(out)) != len(out):
        raise InputValueError(f"fractions: expected distinct values, got {tuple(out)}")
    return tuple(out)


def _count(fraction: float, n: int) -> int:
    return min(n, math.floor(fraction * n + _FLOOR_TOLERANCE))


def nested_fractions(
    n: int,
    fractions: Sequence[Any] = PAPER_FRACTIONS,
    *,
    rng: RNGLike = None,
    groups: Any = None,
) -> dict:
    """Nested random selections of ``n`` items: one shuffle, then prefixes of ``floor(f * n)``.

    Parameters
    ----------
    n : int
        Number of available items (real defective patches), ``n >= 0``.
    fractions : sequence of float, Fraction or str, default ``(1, 1/2, 1/4, 1/8, 1/16)``
        Distinct fractions in ``(0, 1]``, in any order; ``"1/8"`` and ``Fraction(1, 8)`` mean
        ``0.125`` (see :func:`parse_fraction`).
    rng : None, int or numpy.random.Generator
        Source of the single shuffle. The same seed gives the same selections, with or without
        ``groups``.
    groups : array-like of shape (n,), optional
        A group label per item (e.g. ``"points"`` / ``"area"``, or ints). When given, the result
        holds one nested selection per group instead of the mixed one (see Returns).

    Returns
    -------
    FractionDict
        Without ``groups``: ``{fraction: indices}`` in the order of ``fractions``, keyed by float
        (and found by any equal fraction, ``out["1/4"]`` included), where ``indices`` is an int64
        array of ``floor(f * n)`` distinct item indices. Each array is a prefix of one
        permutation, so ``out[f_small]`` equals ``out[f_large][:len(out[f_small])]`` (and is thus
        contained in it).

        With ``groups``: ``{group: {fraction: indices}}``, groups in ``numpy.unique`` order. The
        selection of group ``g`` at fraction ``f`` holds ``min(floor(f * n), n_g)`` items of group
        ``g``: the same count as the mixed selection, as in the paper's tables 3 and 4
        ("points 10, area 10, mixed 10"), taken as the first items of group ``g`` in the same
        single permutation, so the prefix property holds inside each group too. A group with fewer
        than ``floor(f * n)`` items is selected whole at that fraction.

    Raises
    ------
    TypeError
        If ``n`` is not an int, a fraction is neither a real number nor a str, or ``rng`` has a
        wrong type.
    ValueError
        If ``n < 0``, a fraction lies outside ``(0, 1]`` or is an unreadable string, fractions
        repeat, or ``groups`` does not hold ``n`` labels.

    Examples
    --------
    >>> from ispad_core.fractions import nested_fractions
    >>> sel = nested_fractions(172, rng=0)
    >>> [len(v) for v in sel.values()]
    [172, 86, 43, 21, 10]
    >>> bool((sel[1 / 2][:43] == sel["1/4"]).all())
    True
    >>> groups = ["area"] * 120 + ["points"] * 52
    >>> by_group = nested_fractions(172, rng=0, groups=groups)
    >>> [len(v) for v in by_group["points"].values()]
    [52, 52, 43, 21, 10]
    """
    n = check_int(n, "n", minimum=0)
    fracs = _check_fractions(fractions)
    gen = as_generator(rng)
    order = gen.permutation(n).astype(np.int64)
    if groups is None:
        return FractionDict((f, order[: _count(f, n)].copy()) for f in fracs)

    labels = _check_groups(groups, n)
    result: dict[Hashable, FractionDict] = {}
    ordered_labels = labels[order]
    for g in np.unique(labels):
        members = order[ordered_labels == g]  # group g's items in the shuffled order
        key = g.item() if isinstance(g, np.generic) else g
        result[key] = FractionDict((f, members[: _count(f, n)].copy()) for f in fracs)
    return result


def _per_group_count(spec: Any, available: int, name: str) -> int:
    """A count from ``"all"``, an int (at most ``available``) or a fraction of ``available``."""
    if isinstance(spec, str) and spec.strip().lower() == "all":
        return available
    if isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
        count = check_int(spec, name, minimum=0)
        if count > available:
            raise InputValueError(f"{name}: expected at most {available} (the items available), got {count}")
        return count
    if isinstance(spec, (str, numbers.Real)) and not isinstance(spec, bool):
        return _count(parse_fraction(spec, name), available)
    raise InputTypeError(f"{name}: expected an int count, 'all' or a fraction such as '1/8', got {type(spec).__name__}")


def select_defects(groups: Any, counts: Any, *, rng: RNGLike = None) -> np.ndarray:
    """Select real defects by count per group, as prefixes of one shuffle.

    The shuffle is the one of :func:`nested_fractions` with the same ``rng`` (a permutation of
    ``len(groups)`` items); each group's items are taken in that shuffled order. So a selection
    with no more defects of any group than another is inside it, and
    ``select_defects(groups, "1/4", rng=s)`` equals ``nested_fractions(n, rng=s)["1/4"]``.

    Parameters
    ----------
    groups : array-like of shape (n,)
        A group label (str, int or bool) per item.
    counts : int, fraction, str or mapping
        Either one specification for the mixed pool (any group): an int count, ``"all"`` or a
        fraction (``0.25``, ``Fraction(1, 4)``, ``"1/4"``) of all ``n`` items, taken as a prefix of
        the shuffle; or a mapping ``{group: specification}`` where each group's specification is
        an int count (at most the group's size), ``"all"`` or a fraction of the group's size
        (``floor(f * n_g)``). Groups not named are not selected.

    Returns
    -------
    numpy.ndarray of int64
        The selected item indices, in the order of the single shuffle.

    Raises
    ------
    TypeError
        If a specification has a wrong type, or ``groups`` holds labels of a wrong type.
    ValueError
        If a count exceeds what is available, a fraction lies outside ``(0, 1]``, or a mapping
        names a group that ``groups`` does not hold.

    Examples
    --------
    >>> from ispad_core.fractions import select_defects
    >>> groups = ["area"] * 20 + ["points"] * 30
    >>> five_each = select_defects(groups, {"points": 5, "area": 5}, rng=0)
    >>> all_area = select_defects(groups, {"points": 5, "area": "all"}, rng=0)
    >>> len(five_each), len(all_area), set(five_each) <= set(all_area)
    (10, 25, True)
    """
    if isinstance(groups, (str, bytes)) or not hasattr(groups, "__len__"):
        raise InputTypeError(f"groups: expected a sequence of labels, got {type(groups).__name__}")
    n = len(groups)
    labels = _check_groups(groups, n)
    gen = as_generator(rng)
    order = gen.permutation(n).astype(np.int64)
    if not isinstance(counts, Mapping):
        return order[: _per_group_count(counts, n, "counts")].copy()
    present = {g.item() if isinstance(g, np.generic) else g for g in np.unique(labels)}
    keep = np.zeros(n, dtype=bool)
    ordered_labels = labels[order]
    for g, spec in counts.items():
        if g not in present:
            shown = ", ".join(repr(x) for x in sorted(present, key=str)) or "none"
            raise InputValueError(f"counts: group {g!r} is not among the groups ({shown})")
        members = np.flatnonzero(ordered_labels == g)  # positions in the shuffled order
        keep[members[: _per_group_count(spec, members.size, f"counts[{g!r}]")]] = True
    return order[keep].copy()


def _check_groups(groups: Any, n: int) -> np.ndarray:
    if isinstance(groups, (str, bytes)):
        raise InputTypeError(f"groups: expected a sequence of {n} labels, got {type(groups).__name__}")
    arr = np.asarray(groups)
    if arr.dtype == object:
        raise InputTypeError("groups: expected labels of one type (str or int), got dtype object")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputValueError(f"groups: expected {n} labels (one per item), got shape {arr.shape}")
    if arr.dtype.kind not in "biuUS" and arr.size:
        raise InputTypeError(f"groups: expected str, int or bool labels, got dtype {arr.dtype}")
    return arr
