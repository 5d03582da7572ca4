"""Nested real-defect fractions (section 5.2 of the paper)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ispad_core.fractions import PAPER_FRACTIONS, nested_fractions


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
        ((10, ("half",)), {}, TypeError, "fractions\\[0\\]: expected a real number, got str"),
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
