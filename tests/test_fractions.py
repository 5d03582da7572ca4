"""Nested real-defect fractions (section 5.2 of the paper)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fractions import Fraction

from ispad_core.fractions import PAPER_FRACTIONS, FractionDict, nested_fractions, parse_fraction, select_defects


@pytest.mark.parametrize(
    "n, counts",
    [(172, [172, 86, 43, 21, 10]), (146, [146, 73, 36, 18, 9]), (0, [0, 0, 0, 0, 0]), (1, [1, 0, 0, 0, 0])],
)
def test_paper_counts(n, counts):
    sel = nested_fractions(n, rng=0)
    assert list(sel) == list(PAPER_FRACTIONS)
    assert [len(v) for v in sel.values()] == counts
    assert all(v.dtype == np.int64 for v in sel.values())


@settings(deadline=None, max_examples=60)
@given(
    n=st.integers(0, 400),
    fracs=st.lists(st.floats(0.001, 1.0), min_size=1, max_size=6, unique=True),
    seed=st.integers(0, 2**32 - 1),
)
def test_prefix_property(n, fracs, seed):
    sel = nested_fractions(n, fracs, rng=seed)
    assert list(sel) == [float(f) for f in fracs]
    by_size = sorted(sel.values(), key=len)
    for small, large in zip(by_size, by_size[1:]):
        np.testing.assert_array_equal(large[: len(small)], small)
    for f, idx in sel.items():
        assert len(idx) == math.floor(f * n + 1e-9)
        assert np.unique(idx).size == idx.size
        assert idx.size == 0 or (idx.min() >= 0 and idx.max() < n)
    # same seed, same selection
    again = nested_fractions(n, fracs, rng=seed)
    for f in sel:
        np.testing.assert_array_equal(sel[f], again[f])


def test_floor_is_robust_to_decimal_rounding():
    # 0.29 * 100 is 28.999999999999996 in binary floating point; the user means 29 items
    assert len(nested_fractions(100, (0.29,), rng=0)[0.29]) == 29


def test_whole_set_is_a_permutation_and_seed_changes_it():
    a = nested_fractions(50, (1.0,), rng=1)[1.0]
    b = nested_fractions(50, (1.0,), rng=2)[1.0]
    np.testing.assert_array_equal(np.sort(a), np.arange(50))
    assert not np.array_equal(a, b)


def test_generator_is_consumed_like_the_docs_say():
    g = np.random.default_rng(3)
    first = nested_fractions(20, rng=g)[1.0]
    second = nested_fractions(20, rng=g)[1.0]
    assert not np.array_equal(first, second)


def test_groups_per_group_selections_lsm1():
    # LSM-1: 120 area and 52 point defects (table 7); table 3 trains "points 10", "area 10"
    groups = np.array(["area"] * 120 + ["points"] * 52)
    np.random.default_rng(0).shuffle(groups)
    mixed = nested_fractions(172, rng=7)
    sel = nested_fractions(172, rng=7, groups=groups)
    assert list(sel) == ["area", "points"]
    assert [len(v) for v in sel["area"].values()] == [120, 86, 43, 21, 10]
    assert [len(v) for v in sel["points"].values()] == [52, 52, 43, 21, 10]
    for g, per in sel.items():
        assert all((groups[idx] == g).all() for idx in per.values())
        by_size = sorted(per.values(), key=len)
        for small, large in zip(by_size, by_size[1:]):
            np.testing.assert_array_equal(large[: len(small)], small)
        # the group's order is the mixed shuffle restricted to the group
        order = mixed[1.0]
        np.testing.assert_array_equal(per[1.0], order[groups[order] == g])


def test_groups_with_int_labels_asm():
    groups = [0] * 37 + [1] * 109  # ASM: 37 area, 109 points
    sel = nested_fractions(146, rng=0, groups=groups)
    assert set(sel) == {0, 1} and all(type(k) is int for k in sel)
    assert [len(v) for v in sel[0].values()] == [37, 37, 36, 18, 9]
    assert [len(v) for v in sel[1].values()] == [109, 73, 36, 18, 9]


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((-1,), {}, ValueError, "n: expected an int >= 0, got -1"),
        ((3.0,), {}, TypeError, "n: expected an int, got float"),
        ((10, ()), {}, ValueError, "fractions: expected at least one fraction, got an empty sequence"),
        ((10, 0.5), {}, TypeError, "fractions: expected a sequence of numbers in \\(0, 1\\], got float"),
        ((10, (1.0, 0.0)), {}, ValueError, "fractions\\[1\\]: expected a value in \\(0, 1\\], got 0"),
        ((10, (1.5,)), {}, ValueError, "fractions\\[0\\]: expected a value in \\(0, 1\\], got 1.5"),
        ((10, (float("nan"),)), {}, ValueError, "fractions\\[0\\]: expected a value in \\(0, 1\\], got nan"),
        ((10, ("half",)), {}, ValueError, "fractions\\[0\\]: expected a number or a ratio such as '1/8', got 'half'"),
        ((10, ("1/0",)), {}, ValueError, "fractions\\[0\\]: expected a number or a ratio such as '1/8', got '1/0'"),
        ((10, ("3/2",)), {}, ValueError, "fractions\\[0\\]: expected a value in \\(0, 1\\], got 3/2"),
        ((10, (True,)), {}, TypeError, "fractions\\[0\\]: expected a real number or a str such as '1/8', got bool"),
        ((10, (None,)), {}, TypeError, "fractions\\[0\\]: expected a real number or a str such as '1/8', got NoneType"),
        ((10, ("1/2", 0.5)), {}, ValueError, "fractions: expected distinct values, got \\(0.5, 0.5\\)"),
        ((10, (0.5, 0.5)), {}, ValueError, "fractions: expected distinct values, got \\(0.5, 0.5\\)"),
        ((10,), {"rng": -1}, ValueError, "rng: expected a non-negative seed, got -1"),
        ((3,), {"groups": [0, 1]}, ValueError, "groups: expected 3 labels \\(one per item\\), got shape \\(2,\\)"),
        ((3,), {"groups": "abc"}, TypeError, "groups: expected a sequence of 3 labels, got str"),
        ((2,), {"groups": [0.5, 1.5]}, TypeError, "groups: expected str, int or bool labels, got dtype float64"),
        ((2,), {"groups": [object(), 1]}, TypeError, "groups: expected labels of one type"),
    ],
)
def test_bad_inputs(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        nested_fractions(*args, **kwargs)


# --------------------------------------------------------------------------- keys a user need not retype


def test_keys_answer_to_equal_fractions_written_otherwise():
    sel = nested_fractions(172, ("1", "1/2", Fraction(1, 4), 0.125, "0.0625"), rng=0)
    assert isinstance(sel, FractionDict)
    assert list(sel) == list(PAPER_FRACTIONS)  # stored as floats, as before
    for key in (1 / 8, "1/8", Fraction(1, 8), " 1/8 ", "0.125", np.float64(0.125)):
        assert key in sel
        np.testing.assert_array_equal(sel[key], sel[0.125])
        np.testing.assert_array_equal(sel.get(key), sel[0.125])
    assert sel[1] is sel[1.0] and len(sel["1/16"]) == 10
    assert "1/3" not in sel and sel.get("1/3") is None and sel.get("x", 7) == 7
    with pytest.raises(KeyError):
        sel["1/3"]
    with pytest.raises(KeyError):
        sel["half"]
    by_group = nested_fractions(20, ("1/2",), rng=0, groups=[0] * 10 + [1] * 10)
    assert len(by_group[0]["1/2"]) == 10


def test_one_third_written_three_ways():
    sel = nested_fractions(30, ("1/3",), rng=0)
    assert len(sel[1 / 3]) == len(sel[Fraction(1, 3)]) == len(sel["1/3"]) == 10


@pytest.mark.parametrize(
    "value, expected", [("1/8", 0.125), (" 1/16", 0.0625), ("0.5", 0.5), ("1", 1.0), (Fraction(3, 4), 0.75), (1, 1.0), (np.float32(0.5), 0.5)]
)
def test_parse_fraction(value, expected):
    assert parse_fraction(value) == expected


# --------------------------------------------------------------------------- counts per group


def _groups(n_area=20, n_points=30, seed=0):
    g = np.array(["area"] * n_area + ["points"] * n_points)
    np.random.default_rng(seed).shuffle(g)
    return g


def test_counts_per_group_are_prefixes_of_the_one_shuffle():
    groups = _groups()
    order = nested_fractions(50, (1,), rng=3)[1]
    specs = [
        {"points": 5, "area": 5},
        {"points": 5, "area": "all"},
        {"points": 10, "area": 5},
        {"area": 5},
        {"points": "1/2", "area": Fraction(1, 4)},
    ]
    sels = [select_defects(groups, s, rng=3) for s in specs]
    counts = [
        {g: int((groups[sel] == g).sum()) for g in ("area", "points")} for sel in sels
    ]
    assert counts == [
        {"area": 5, "points": 5},
        {"area": 20, "points": 5},
        {"area": 5, "points": 10},
        {"area": 5, "points": 0},
        {"area": 5, "points": 15},
    ]
    for sel, c in zip(sels, counts):
        # in shuffle order, and per group the first c[g] items of the group in that order
        rank = np.empty(50, np.int64)
        rank[order] = np.arange(50)
        assert (np.diff(rank[sel]) > 0).all()
        for g in ("area", "points"):
            np.testing.assert_array_equal(sel[groups[sel] == g], order[groups[order] == g][: c[g]])
    # a selection with no more of each group is inside one with more
    assert set(sels[0]) <= set(sels[1]) and set(sels[0]) <= set(sels[2]) and set(sels[3]) <= set(sels[0])


def test_mixed_counts_match_nested_fractions():
    groups = _groups()
    fr = nested_fractions(50, rng=11)
    for f in ("1", "1/2", "1/4", "1/8", "1/16"):
        np.testing.assert_array_equal(select_defects(groups, f, rng=11), fr[f])
    np.testing.assert_array_equal(select_defects(groups, 7, rng=11), fr[1][:7])
    np.testing.assert_array_equal(select_defects(groups, "all", rng=11), fr[1])
    # per-group fractions of nested_fractions (same count as the mixed one) are count selections
    by_group = nested_fractions(50, rng=11, groups=groups)
    for g in ("area", "points"):
        for f, idx in by_group[g].items():
            np.testing.assert_array_equal(select_defects(groups, {g: len(idx)}, rng=11), idx)


def test_select_is_deterministic_and_seed_dependent():
    groups = _groups()
    a = select_defects(groups, {"points": 5, "area": 5}, rng=1)
    np.testing.assert_array_equal(a, select_defects(list(groups), {"points": 5, "area": 5}, rng=1))
    assert not np.array_equal(a, select_defects(groups, {"points": 5, "area": 5}, rng=2))


def test_select_int_groups_and_zero():
    sel = select_defects([0, 1, 1, 0, 1], {1: 2, 0: 0}, rng=0)
    assert len(sel) == 2 and all(i in (1, 2, 4) for i in sel)
    assert select_defects([], 0, rng=0).size == 0


@pytest.mark.parametrize(
    "groups, counts, exc, match",
    [
        (["a", "b"], {"a": 2}, ValueError, "counts\\['a'\\]: expected at most 1 \\(the items available\\), got 2"),
        (["a", "b"], {"c": 1}, ValueError, "counts: group 'c' is not among the groups \\('a', 'b'\\)"),
        (["a", "b"], {"a": -1}, ValueError, "counts\\['a'\\]: expected an int >= 0, got -1"),
        (["a", "b"], {"a": "1/0"}, ValueError, "counts\\['a'\\]: expected a number or a ratio such as '1/8', got '1/0'"),
        (["a", "b"], {"a": 1.5}, ValueError, "counts\\['a'\\]: expected a value in \\(0, 1\\], got 1.5"),
        (["a", "b"], {"a": None}, TypeError, "counts\\['a'\\]: expected an int count, 'all' or a fraction such as '1/8', got NoneType"),
        (["a", "b"], 3, ValueError, "counts: expected at most 2 \\(the items available\\), got 3"),
        (["a", "b"], [1], TypeError, "counts: expected an int count, 'all' or a fraction such as '1/8', got list"),
        ("ab", 1, TypeError, "groups: expected a sequence of labels, got str"),
        ([0.5, 1.5], 1, TypeError, "groups: expected str, int or bool labels, got dtype float64"),
    ],
)
def test_select_bad_inputs(groups, counts, exc, match):
    with pytest.raises(exc, match=match):
        select_defects(groups, counts, rng=0)
