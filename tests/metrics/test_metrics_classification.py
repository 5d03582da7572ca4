"""Image-level metrics: the paper's tables, scikit-learn parity, invariants and bad input."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import matthews_corrcoef, precision_recall_curve, roc_auc_score

from ispad_core.metrics import (
    ClassificationReport,
    ConfusionCounts,
    classification_report,
    confusion_counts,
    f1,
    f1_optimal_threshold,
    fpr,
    mcc,
    mcc_from_counts,
    precision,
    recall,
    roc_auc,
)
from tests.reference.metrics_ref import f1_curve_ref, mcc_ref, roc_auc_ref

# --------------------------------------------------------------------------- the paper's tables

# (table, group, #real defects, MCC, recall %, FPR %, TN, TP, FN, FP) exactly as printed.
PAPER_ROWS = [
    ("3 LSM-1", "-", 0, 0.81, 76.8, 0.7, 1459, 73, 22, 11),
    ("3 LSM-1", "points", 10, 0.86, 82.1, 0.5, 1463, 78, 17, 7),
    ("3 LSM-1", "area", 10, 0.90, 84.2, 0.2, 1467, 80, 15, 3),
    ("3 LSM-1", "mixed", 10, 0.91, 84.2, 0.1, 1469, 80, 15, 1),
    ("3 LSM-1", "mixed", 21, 0.91, 86.3, 0.2, 1467, 82, 13, 3),
    ("3 LSM-1", "mixed", 43, 0.93, 91.6, 0.3, 1466, 87, 8, 4),
    ("3 LSM-1", "mixed", 86, 0.93, 90.5, 0.2, 1467, 86, 9, 3),
    ("3 LSM-1", "mixed", 172, 0.96, 95.8, 0.2, 1467, 91, 4, 3),
    ("4 ASM", "-", 0, 0.70, 62.2, 0.6, 1905, 46, 28, 11),
    ("4 ASM", "points", 9, 0.76, 66.2, 0.3, 1910, 49, 25, 6),
    ("4 ASM", "area", 9, 0.91, 91.9, 0.4, 1909, 68, 6, 7),
    ("4 ASM", "mixed", 9, 0.94, 93.2, 0.2, 1912, 69, 5, 4),
    ("4 ASM", "mixed", 18, 0.92, 91.9, 0.3, 1911, 68, 6, 5),
    # The paper prints MCC 0.97 for this row, but its own counts give 0.964706 -> 0.96: a rounding
    # slip in the paper (recall and FPR of the same row do match). We test the true value 0.9647.
    ("4 ASM", "mixed", 36, 0.9647, 95.9, 0.1, 1914, 71, 3, 2),
    ("4 ASM", "mixed", 73, 0.96, 94.6, 0.1, 1914, 70, 4, 2),
    ("4 ASM", "mixed", 146, 0.96, 97.3, 0.2, 1912, 72, 2, 4),
]


def _decimals(x: float) -> int:
    return len(repr(x).split(".")[1]) if "." in repr(x) else 0


@pytest.mark.parametrize(
    "table, group, n_real, mcc_printed, recall_printed, fpr_printed, tn, tp, fn, fp",
    PAPER_ROWS,
    ids=[f"table{r[0].split()[0]}-{r[1]}-{r[2]}" for r in PAPER_ROWS],
)
def test_paper_rows_round_to_printed_values(
    table, group, n_real, mcc_printed, recall_printed, fpr_printed, tn, tp, fn, fp
):
    value = mcc_from_counts(tn=tn, fp=fp, fn=fn, tp=tp)
    assert round(value, _decimals(mcc_printed)) == mcc_printed
    counts = ConfusionCounts(tn=tn, fp=fp, fn=fn, tp=tp)
    assert round(100 * counts.recall, 1) == recall_printed
    assert round(100 * counts.fpr, 1) == fpr_printed
    # The same row through the report, from labels and scores that reproduce the counts.
    y = np.r_[np.zeros(tn + fp, int), np.ones(fn + tp, int)]
    s = np.r_[np.zeros(tn), np.ones(fp), np.zeros(fn), np.ones(tp)]
    report = classification_report(y, s, threshold=0.5)
    assert (report.tn, report.tp, report.fn, report.fp) == (tn, tp, fn, fp)
    assert report.mcc == value
    assert round(report.recall_percent, 1) == recall_printed and round(report.fpr_percent, 1) == fpr_printed


def test_asm_36_row_is_a_rounding_slip_in_the_paper():
    value = mcc_from_counts(tn=1914, fp=2, fn=3, tp=71)
    assert abs(value - 0.964706) < 1e-6
    assert round(value, 2) == 0.96  # not the printed 0.97


# --------------------------------------------------------------------------- scikit-learn parity


def _tied_scores(rng, n, levels):
    """Scores with many ties: a few distinct levels, shifted for the defective samples."""
    y = rng.random(n) < rng.uniform(0.05, 0.6)
    y[rng.integers(n)] = True
    y[rng.integers(n)] = False
    s = rng.integers(0, levels, n) + y * rng.integers(0, 3, n)
    return y.astype(int), (s / levels).astype(rng.choice([np.float32, np.float64]))


@pytest.mark.parametrize("seed", range(25))
def test_sklearn_parity_on_tied_inputs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 3000))
    y, s = _tied_scores(rng, n, levels=int(rng.integers(2, 40)))
    pred = s >= np.median(s)
    assert abs(mcc(y, pred) - matthews_corrcoef(y, pred)) <= 1e-12
    assert abs(roc_auc(y, s) - roc_auc_score(y, s)) <= 1e-12
    p, r, thr = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1_curve = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)[:-1]
    best = f1_optimal_threshold(y, s)
    ours = f1(y, s >= best)
    assert abs(ours - f1_curve.max()) <= 1e-12
    near = np.flatnonzero(f1_curve >= f1_curve.max() - 1e-12)
    if near.size == 1:  # a unique optimum: the same threshold as the precision-recall curve's
        assert best == thr[near[0]]


@pytest.mark.parametrize("seed", range(10))
def test_roc_auc_matches_pairwise_reference(seed):
    rng = np.random.default_rng(100 + seed)
    y, s = _tied_scores(rng, int(rng.integers(2, 300)), levels=7)
    assert abs(roc_auc(y, s) - roc_auc_ref(y, s)) <= 1e-12


def test_f1_optimal_threshold_prefers_the_highest_of_exact_ties():
    # thresholds 0.9 (tp 1, fp 0: F1 2/3) and 0.5 (tp 2, fp 2: F1 2/3) tie exactly; 0.1 gives 4/7
    y = [1, 1, 0, 0, 0]
    s = [0.9, 0.5, 0.5, 0.5, 0.1]
    thresholds, curve = f1_curve_ref(y, s)
    assert curve[thresholds == 0.9][0] == curve[thresholds == 0.5][0] == max(curve)
    assert f1_optimal_threshold(y, s) == 0.9


def test_f1_optimal_threshold_equals_literal_search():
    rng = np.random.default_rng(7)
    for _ in range(20):
        y, s = _tied_scores(rng, int(rng.integers(2, 200)), levels=9)
        thresholds, curve = f1_curve_ref(y, s)
        best = f1_optimal_threshold(y, s)
        assert f1(y, s >= best) == pytest.approx(curve.max(), abs=1e-15)
        assert best == thresholds[curve >= curve.max() - 1e-15].max()


def test_mcc_has_no_integer_overflow():
    # int64 would overflow in the product of the marginals (about 1e37 here).
    big = 10**9
    value = mcc_from_counts(tn=big, fp=big // 3, fn=big // 5, tp=big // 2)
    assert value == pytest.approx(mcc_ref(big, big // 3, big // 5, big // 2), rel=1e-15)
    assert mcc_from_counts(tn=np.int64(big), fp=np.int64(1), fn=np.int64(2), tp=np.int64(big)) > 0.99


def test_mcc_is_zero_when_a_marginal_is_empty():
    assert mcc_from_counts(tn=10, fp=0, fn=0, tp=0) == 0.0
    assert mcc_from_counts(tn=0, fp=0, fn=0, tp=0) == 0.0
    assert mcc([0, 0, 1], [1, 1, 1]) == matthews_corrcoef([0, 0, 1], [1, 1, 1]) == 0.0


def test_counts_and_rates():
    c = confusion_counts([0, 0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 0])
    assert c == ConfusionCounts(tn=1, fp=2, fn=1, tp=3)
    assert all(type(v) is int for v in (c.tn, c.fp, c.fn, c.tp))
    y, p = [0, 0, 0, 1, 1, 1, 1], [False, True, True, True, True, True, False]
    assert recall(y, p) == 3 / 4 and precision(y, p) == 3 / 5 and fpr(y, p) == 2 / 3
    assert f1(y, p) == 6 / 9
    assert recall([0, 0], [0, 1]) == 0.0 and precision([1, 0], [0, 0]) == 0.0 and fpr([1, 1], [1, 0]) == 0.0
    assert f1([0, 0], [0, 0]) == 0.0


def test_report_fields_dict_and_text():
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(200, int), np.ones(12, int)]
    s = rng.normal(size=212) + 2.5 * y
    r = classification_report(y, s)
    assert isinstance(r, ClassificationReport)
    assert r.threshold == f1_optimal_threshold(y, s)
    assert r.auroc == roc_auc(y, s)
    c = confusion_counts(y, s >= r.threshold)
    assert (r.tn, r.tp, r.fn, r.fp) == (c.tn, c.tp, c.fn, c.fp)
    assert r.mcc == c.mcc and r.recall == pytest.approx(100 * c.recall) and r.fpr == pytest.approx(100 * c.fpr)
    assert r.precision == pytest.approx(100 * c.precision)
    d = r.to_dict()
    assert list(d) == [
        "mcc", "recall_percent", "fpr_percent", "precision_percent", "tn", "tp", "fn", "fp", "threshold",
        "auroc_percent", "recall", "fpr", "precision", "auroc",
    ]
    assert json.loads(json.dumps(d)) == d
    assert list(r.to_dict(legacy=False))[-1] == "auroc_percent" and len(r.to_dict(legacy=False)) == 10
    text = str(r)
    assert "MCC" in text and "Recall (%)" in text and f"{r.mcc:.4f}" in text and str(r.tn) in text
    with pytest.raises(AttributeError):
        r.mcc = 0.0  # frozen
    fixed = classification_report(y, s, threshold=10.0)
    assert fixed.tp == 0 and fixed.fp == 0 and fixed.precision == 0.0 and fixed.threshold == 10.0


def test_report_threshold_is_compared_exactly_with_float32_scores():
    s = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    y = [0, 0, 1, 1]
    just_above = float(np.nextafter(np.float64(s[1]), 1.0))  # rounds to s[1] in float32
    r = classification_report(y, s, threshold=just_above)
    assert (r.tp, r.fp) == (2, 0)  # 0.2f < threshold: not predicted defective
    assert classification_report(y, s, threshold=float(s[1])).fp == 1


# --------------------------------------------------------------------------- invariants

labels_and_predictions = st.integers(1, 60).flatmap(
    lambda n: st.tuples(st.lists(st.booleans(), min_size=n, max_size=n), st.lists(st.booleans(), min_size=n, max_size=n))
)


@settings(deadline=None, max_examples=150)
@given(labels_and_predictions)
def test_mcc_in_range_and_symmetric_under_flipping(lp):
    y, p = np.array(lp[0]), np.array(lp[1])
    value = mcc(y, p)
    assert -1.0 <= value <= 1.0
    assert mcc(~y, ~p) == pytest.approx(value, abs=1e-15)
    with warnings.catch_warnings():  # scikit-learn warns when a single label is present
        warnings.simplefilter("ignore")
        expected = matthews_corrcoef(y, p)
    assert value == pytest.approx(expected, abs=1e-12)


scored = st.integers(2, 80).flatmap(
    lambda n: st.tuples(
        st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda v: 0 < sum(v) < len(v)),
        st.lists(st.integers(-5, 5) | st.floats(-1e6, 1e6), min_size=n, max_size=n),
    )
)


@settings(deadline=None, max_examples=150)
@given(scored)
def test_roc_auc_complement(ys):
    y, s = np.array(ys[0]), np.array(ys[1], dtype=np.float64)
    a = roc_auc(y, s)
    assert 0.0 <= a <= 1.0
    assert a + roc_auc(y, -s) == pytest.approx(1.0, abs=1e-15)
    assert a == pytest.approx(roc_auc_ref(y, s), abs=1e-12)


# --------------------------------------------------------------------------- bad input

Y = [0, 1, 0, 1]
S = [0.1, 0.9, 0.2, 0.8]
BAD_INPUT = [
    (confusion_counts, ([0, 1, 0], [0, 1]), {}, ValueError, r"y_pred: expected shape \(3,\) like y_true, got \(2,\)"),
    (confusion_counts, ([0, 2, 1], [0, 1, 1]), {}, ValueError, r"y_true: expected binary labels 0/1, got values \{0, 1, 2\}"),
    (confusion_counts, ([0, 1], [0.5, 1]), {}, ValueError, r"y_pred: expected binary labels 0/1, got values \{0.5, 1\}"),
    (confusion_counts, ([], []), {}, ValueError, r"y_true: expected a non-empty array"),
    (confusion_counts, ([[0, 1]], [[0, 1]]), {}, ValueError, r"y_true: expected a 1-D array, got 2-D"),
    (confusion_counts, (["a", "b"], [0, 1]), {}, TypeError, r"y_true: expected dtype kind in 'biuf'"),
    (mcc, ([0, 1, 3], [0, 1, 1]), {}, ValueError, r"y_true: expected binary labels 0/1"),
    (recall, ([0, 1], [0, 1, 1]), {}, ValueError, r"y_pred: expected shape \(2,\) like y_true, got \(3,\)"),
    (precision, ([0, 1], None), {}, TypeError, r"y_pred: expected an array, got None"),
    (fpr, ([0, -1], [0, 1]), {}, ValueError, r"y_true: expected binary labels"),
    (f1, ([0, 1], [0, 7]), {}, ValueError, r"y_pred: expected binary labels"),
    (roc_auc, ([0, 0, 0], [0.1, 0.2, 0.3]), {}, ValueError, r"y_true: expected both classes 0 and 1, got only 0"),
    (roc_auc, ([1, 1], [0.1, 0.2]), {}, ValueError, r"y_true: expected both classes 0 and 1, got only 1"),
    (roc_auc, (Y, [0.1, np.nan, 0.2, 0.3]), {}, ValueError, r"y_score: expected finite values, got 1 NaN or inf"),
    (roc_auc, (Y, [0.1, np.inf, -np.inf, 0.3]), {}, ValueError, r"y_score: expected finite values, got 2 NaN or inf"),
    (roc_auc, (Y, [0.1, 0.2]), {}, ValueError, r"y_score: expected shape \(4,\) like y_true, got \(2,\)"),
    (roc_auc, (Y, ["a", "b", "c", "d"]), {}, TypeError, r"y_score: expected dtype kind in 'biuf'"),
    (f1_optimal_threshold, ([0, 0], [0.1, 0.2]), {}, ValueError, r"y_true: expected at least one defective \(1\) sample"),
    (f1_optimal_threshold, (Y, [0.1, 0.2, np.nan, 0.3]), {}, ValueError, r"y_score: expected finite values"),
    (classification_report, (Y, S), {"threshold": np.nan}, ValueError, r"threshold: expected a finite number, got nan"),
    (classification_report, (Y, S), {"threshold": "0.5"}, TypeError, r"threshold: expected a real number, got str"),
    (classification_report, ([0, 0, 0, 0], S), {}, ValueError, r"y_true: expected both classes 0 and 1, got only 0"),
    (classification_report, (Y, S[:3]), {}, ValueError, r"y_score: expected shape \(4,\) like y_true, got \(3,\)"),
    (mcc_from_counts, (), {"tn": -1, "fp": 0, "fn": 0, "tp": 1}, ValueError, r"tn: expected an int >= 0, got -1"),
    (mcc_from_counts, (), {"tn": 1, "fp": 0.5, "fn": 0, "tp": 1}, TypeError, r"fp: expected an int, got float"),
    (mcc_from_counts, (), {"tn": 1, "fp": 0, "fn": True, "tp": 1}, TypeError, r"fn: expected an int, got bool"),
]


@pytest.mark.parametrize(
    "func, args, kwargs, exc, match", BAD_INPUT, ids=[f"{b[0].__name__}-{i}" for i, b in enumerate(BAD_INPUT)]
)
def test_bad_input(func, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        func(*args, **kwargs)


def test_mcc_from_counts_is_keyword_only():
    with pytest.raises(TypeError):
        mcc_from_counts(1, 2, 3, 4)  # type: ignore[misc]


# --------------------------------------------------------------------------- 64-bit integer scores


def test_int64_scores_beyond_2_53_are_ranked_exactly_or_refused():
    big = 2**60
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.array([big, big + 1, big + 2, big + 3, -big, big + 1], np.int64)
    assert roc_auc(y, s) == roc_auc_score(y, s)
    with pytest.raises(ValueError, match="y_score: integer scores beyond 2\\*\\*53"):
        f1_optimal_threshold(y, s)
    with pytest.raises(ValueError, match="y_score: integer scores beyond 2\\*\\*53"):
        classification_report(y, s)


def test_report_threshold_is_compared_exactly_with_int64_scores():
    s = np.array([2**53 + 3, 2**53 + 4, 3, 2**53 - 1], np.int64)
    y = np.array([0, 1, 0, 0])
    # float64 rounds 2**53 + 3 up to 2**53 + 4, so NumPy's float comparison would count item 0 too
    assert (s >= float(2**53 + 4)).sum() == 2
    r = classification_report(y, s, threshold=float(2**53 + 4))
    assert (r.tp, r.fp) == (1, 0)
    r = classification_report(y, s, threshold=float(2**53))
    assert (r.tp, r.fp) == (1, 1)
    r = classification_report(y, s, threshold=1e300)
    assert (r.tp, r.fp) == (0, 0)
    r = classification_report(y, s, threshold=-1e300)
    assert (r.tp, r.fp) == (1, 3)


def test_report_states_one_unit_in_its_field_names():
    y = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    s = np.array([0.1, 0.7, 0.2, 0.8, 0.3, 0.25, 0.9, 0.05])
    r = classification_report(y, s, threshold=0.5)
    c = confusion_counts(y, s >= 0.5)
    # every rate in percent, computed from exact counts with one rounding
    assert r.recall_percent == 100 * 2 / 3 == pytest.approx(100 * c.recall)
    assert r.fpr_percent == 20.0 and r.precision_percent == 100 * 2 / 3
    assert r.auroc_percent == 100 * 14 / 15
    assert r.auroc_percent == pytest.approx(100 * roc_auc_score(y, s), abs=1e-12)
    # the old names keep their old units: rates in percent, AUROC a fraction, exactly as before
    assert (r.recall, r.fpr, r.precision) == (r.recall_percent, r.fpr_percent, r.precision_percent)
    assert r.auroc == roc_auc(y, s) == 14 / 15
    d = r.to_dict()
    assert d["auroc"] == 14 / 15 and d["auroc_percent"] == 100 * 14 / 15 and d["recall"] == d["recall_percent"]
    # a report built by hand (no private fraction) derives the alias from the percent
    hand = ClassificationReport(mcc=0.5, recall_percent=50.0, fpr_percent=1.0, precision_percent=90.0, tn=1, tp=1,
                                fn=1, fp=0, threshold=0.5, auroc_percent=75.0)
    assert hand.auroc == 0.75 and "_auroc" not in hand.to_dict() and "auroc" in hand.to_dict()
    assert hand == dataclasses.replace(hand, _auroc=0.75)  # the alias' cache takes no part in equality
