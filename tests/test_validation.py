"""The shared validation and randomness helpers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ispad_core._shared import validation as v


def test_as_generator_accepts_none_int_generator():
    assert isinstance(v.as_generator(None), np.random.Generator)
    a = v.as_generator(5).integers(0, 1000, 10)
    b = v.as_generator(5).integers(0, 1000, 10)
    np.testing.assert_array_equal(a, b)
    g = np.random.default_rng(1)
    assert v.as_generator(g) is g


@pytest.mark.parametrize(
    "rng, exc, match",
    [
        (-1, ValueError, "rng: expected a non-negative seed, got -1"),
        (1.5, TypeError, "rng: expected None, a non-negative int or a numpy.random.Generator, got float"),
        (True, TypeError, "got bool"),
        (np.random.RandomState(0), TypeError, "got RandomState"),
    ],
)
def test_as_generator_rejects(rng, exc, match):
    with pytest.raises(exc, match=match):
        v.as_generator(rng)


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 500))
def test_item_seeds_unique_deterministic_uint32(seed, n):
    s = v.item_seeds(seed, n)
    assert s.dtype == np.uint32 and s.shape == (n,)
    assert np.unique(s).size == n
    np.testing.assert_array_equal(s, v.item_seeds(seed, n))


def test_item_seeds_explicit_array_round_trips():
    seeds = np.array([0, 7, 2**32 - 1], dtype=np.int64)
    out = v.item_seeds(None, 3, seeds=seeds)
    np.testing.assert_array_equal(out, seeds.astype(np.uint32))


@pytest.mark.parametrize(
    "seeds, exc, match",
    [
        (np.arange(4), ValueError, "seeds: expected 3 per-item seeds, got an array of shape \\(4,\\)"),
        (np.array([0.5, 1, 2]), TypeError, "per-item seeds must be integers"),
        (np.array([-1, 1, 2]), ValueError, "must lie in \\[0, 2\\*\\*32\\)"),
        (np.array([0, 1, 2**32]), ValueError, "must lie in \\[0, 2\\*\\*32\\)"),
    ],
)
def test_item_seeds_rejects_bad_arrays(seeds, exc, match):
    with pytest.raises(exc, match=match):
        v.item_seeds(None, 3, seeds=seeds)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: v.check_int(1.0, "n"), TypeError, "n: expected an int, got float"),
        (lambda: v.check_int(-2, "n", minimum=0), ValueError, "n: expected an int >= 0, got -2"),
        (lambda: v.check_float(float("nan"), "x"), ValueError, "x: expected a finite number"),
        (lambda: v.check_float(0.0, "fpr_limit", minimum=0, min_inclusive=False, maximum=1), ValueError,
         r"fpr_limit: expected a value in \(0, 1\], got 0"),
        (lambda: v.check_probability(1.5, "p"), ValueError, r"p: expected a value in \[0, 1\], got 1.5"),
        (lambda: v.check_range((3, 1), "width"), ValueError, r"width: expected low <= high, got \(3, 1\)"),
        (lambda: v.check_range((1, 2, 3), "width"), ValueError, "expected a \\(low, high\\) pair, got 3 values"),
        (lambda: v.check_range("ab", "width"), TypeError, "expected a \\(low, high\\) pair"),
        (lambda: v.check_range((-1, 2), "width", minimum=0), ValueError, r"width\[0\]: expected a value in \[0, inf\)"),
        (lambda: v.check_choice("median", "reduce", ("mean", "max")), ValueError,
         "reduce: expected one of 'mean', 'max', got 'median'"),
        (lambda: v.check_array(np.zeros(3), "image", ndim=(2, 3)), ValueError, "image: expected a 2 or 3-D array, got 1-D"),
        (lambda: v.check_array(np.zeros((2, 2)), "image", dtypes=(np.uint8,)), TypeError, "image: expected dtype uint8, got float64"),
        (lambda: v.check_array(np.zeros((0, 2)), "image"), ValueError, "image: expected a non-empty array"),
        (lambda: v.check_array(None, "image"), TypeError, "image: expected an array, got None"),
        (lambda: v.check_array(np.array([object()]), "image"), TypeError, "dtype object"),
        (lambda: v.check_same_shape(np.zeros((2, 3)), "anomaly_maps", np.zeros((2, 4)), "masks"), ValueError,
         r"masks: expected shape \(2, 3\) like anomaly_maps, got \(2, 4\)"),
        (lambda: v.check_finite(np.array([1.0, np.nan, np.inf]), "y_score"), ValueError, "y_score: expected finite values, got 2 NaN or inf"),
        (lambda: v.check_binary_labels(np.array([0, 1, 2]), "y_true"), ValueError, "y_true: expected binary labels 0/1"),
    ],
)
def test_bad_input_messages(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_check_range_returns_typed_pairs():
    assert v.check_range((1, 2), "r") == (1.0, 2.0)
    assert v.check_range((1, 2), "r", integer=True) == (1, 2)
    assert v.check_binary_labels(np.array([0.0, 1.0]), "y").dtype == bool
