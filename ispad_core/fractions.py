"""Nested fractions of the real defects: the 1, 1/2, 1/4, 1/8, 1/16 selections of the paper.

The ISP-AD paper (section 5.2) shuffles all available real defects once and then takes
fractions "in an ordered manner", so that every defect of a smaller fraction is also in every
larger one. :func:`nested_fractions` does exactly that: one permutation, then prefixes of
length ``floor(f * n)``. The paper's counts follow: 172 defects (LSM-1) give 172, 86, 43, 21, 10
and 146 (ASM) give 146, 73, 36, 18, 9.

The paper also trains on one defect group alone (points or area) with the same number of
defects as the mixed selection of that fraction (table 3: "points 10", "area 10", "mixed 10").
``groups=`` gives these per-group selections from the same single shuffle.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np

from ispad_core._validation import RNGLike, as_generator, check_int

__all__ = ["PAPER_FRACTIONS", "nested_fractions"]

PAPER_FRACTIONS: tuple[float, ...] = (1.0, 1 / 2, 1 / 4, 1 / 8, 1 / 16)
"""The fractions of section 5.2 of the paper."""

# floor(f * n) is computed with a small tolerance so that e.g. 0.29 * 100 = 28.999999999999996
# counts 29 items, as the decimal the user wrote means; any count that is exact in real numbers is
# recovered, and no count is raised by more than this fraction of an item.
_FLOOR_TOLERANCE = 1e-9


def _check_fractions(fractions: Any) -> tuple[float, ...]:
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Iterable):
        raise TypeError(f"fractions: expected a sequence of numbers in (0, 1], got {type(fractions).__name__}")
    values = tuple(fractions)
    if not values:
        raise ValueError("fractions: expected at least one fraction, got an empty sequence")
    out = []
    for k, f in enumerate(values):
        if not isinstance(f, numbers.Real) or isinstance(f, bool):
            raise TypeError(f"fractions[{k}]: expected a real number, got {type(f).__name__}")
        f = float(f)
        if not (0.0 < f <= 1.0):  # also rejects NaN
            raise ValueError(f"fractions[{k}]: expected a value in (0, 1], got {f:g}")
        out.append(f)
    if len(set(out)) != len(out):
        raise ValueError(f"fractions: expected distinct values, got {tuple(out)}")
    return tuple(out)


def _count(fraction: float, n: int) -> int:
    return min(n, math.floor(fraction * n + _FLOOR_TOLERANCE))


def nested_fractions(
    n: int,
    fractions: Sequence[float] = PAPER_FRACTIONS,
    *,
    rng: RNGLike = None,
    groups: Any = None,
) -> dict:
    """Nested random selections of ``n`` items: one shuffle, then prefixes of ``floor(f * n)``.

    Parameters
    ----------
    n : int
        Number of available items (real defective patches), ``n >= 0``.
    fractions : sequence of float, default ``(1, 1/2, 1/4, 1/8, 1/16)``
        Distinct fractions in ``(0, 1]``, in any order.
    rng : None, int or numpy.random.Generator
        Source of the single shuffle. The same seed gives the same selections, with or without
        ``groups``.
    groups : array-like of shape (n,), optional
        A group label per item (e.g. ``"points"`` / ``"area"``, or ints). When given, the result
        holds one nested selection per group instead of the mixed one (see Returns).

    Returns
    -------
    dict
        Without ``groups``: ``{fraction: indices}`` in the order of ``fractions``, where
        ``indices`` is an int64 array of ``floor(f * n)`` distinct item indices. Each array is a
        prefix of one permutation, so ``out[f_small]`` equals ``out[f_large][:len(out[f_small])]``
        (and is thus contained in it).

        With ``groups``: ``{group: {fraction: indices}}``, groups in ``numpy.unique`` order. The
        selection of group ``g`` at fraction ``f`` holds ``min(floor(f * n), n_g)`` items of group
        ``g``: the same count as the mixed selection, as in the paper's tables 3 and 4
        ("points 10, area 10, mixed 10"), taken as the first items of group ``g`` in the same
        single permutation, so the prefix property holds inside each group too. A group with fewer
        than ``floor(f * n)`` items is selected whole at that fraction.

    Raises
    ------
    TypeError
        If ``n`` is not an int, a fraction is not a real number, or ``rng`` has a wrong type.
    ValueError
        If ``n < 0``, a fraction lies outside ``(0, 1]``, fractions repeat, or ``groups`` does not
        hold ``n`` labels.

    Examples
    --------
    >>> from ispad_core.fractions import nested_fractions
    >>> sel = nested_fractions(172, rng=0)
    >>> [len(v) for v in sel.values()]
    [172, 86, 43, 21, 10]
    >>> bool((sel[1 / 2][:43] == sel[1 / 4]).all())
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
        return {f: order[: _count(f, n)].copy() for f in fracs}

    labels = _check_groups(groups, n)
    result: dict[Hashable, dict[float, np.ndarray]] = {}
    ordered_labels = labels[order]
    for g in np.unique(labels):
        members = order[ordered_labels == g]  # group g's items in the shuffled order
        key = g.item() if isinstance(g, np.generic) else g
        result[key] = {f: members[: _count(f, n)].copy() for f in fracs}
    return result


def _check_groups(groups: Any, n: int) -> np.ndarray:
    if isinstance(groups, (str, bytes)):
        raise TypeError(f"groups: expected a sequence of {n} labels, got {type(groups).__name__}")
    arr = np.asarray(groups)
    if arr.dtype == object:
        raise TypeError("groups: expected labels of one type (str or int), got dtype object")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"groups: expected {n} labels (one per item), got shape {arr.shape}")
    if arr.dtype.kind not in "biuUS":
        raise TypeError(f"groups: expected str, int or bool labels, got dtype {arr.dtype}")
    return arr
