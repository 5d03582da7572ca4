"""Image-level metrics: confusion counts, the MCC family, ROC-AUC and the paper's report row.

Counts are Python ints and every ratio is formed from exact integers with a single rounding, so
the results do not depend on the input's dtype or size (MCC's product of the four marginals
overflows int64 beyond about 55 000 samples per class; Python ints do not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputValueError
from ispad_core._shared.validation import (
    check_array,
    check_binary_labels,
    check_finite,
    check_float,
    check_int,
    check_same_shape,
)

__all__ = [
    "ClassificationReport",
    "ConfusionCounts",
    "classification_report",
    "confusion_counts",
    "f1",
    "f1_optimal_threshold",
    "fpr",
    "mcc",
    "mcc_from_counts",
    "precision",
    "recall",
    "roc_auc",
]


def _ratio(num: int, den: int) -> float:
    """``num / den`` as a correctly rounded float, 0.0 when ``den`` is 0 (scikit-learn's default)."""
    return num / den if den else 0.0


@dataclass(frozen=True)
class ConfusionCounts:
    """The four cells of a binary confusion matrix (defective = positive).

    Attributes
    ----------
    tn, fp, fn, tp : int
        True negatives (correct fault-free), false positives (false alarms), false negatives
        (missed defects), true positives (detected defects).
    """

    tn: int
    fp: int
    fn: int
    tp: int

    @property
    def recall(self) -> float:
        """``tp / (tp + fn)``; 0.0 without defective samples."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def precision(self) -> float:
        """``tp / (tp + fp)``; 0.0 without positive predictions."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def fpr(self) -> float:
        """False positive rate ``fp / (fp + tn)``; 0.0 without fault-free samples."""
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def f1(self) -> float:
        """``2 tp / (2 tp + fp + fn)``; 0.0 when the matrix has only true negatives."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def mcc(self) -> float:
        """Matthews correlation coefficient, see :func:`mcc_from_counts`."""
        return mcc_from_counts(tn=self.tn, fp=self.fp, fn=self.fn, tp=self.tp)


def _labels_and_predictions(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = check_binary_labels(y_true, "y_true")
    p = check_binary_labels(y_pred, "y_pred")
    check_same_shape(t, "y_true", p, "y_pred")
    return t, p


def _labels_and_scores(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    t = check_binary_labels(y_true, "y_true")
    s = check_array(y_score, "y_score", ndim=1, kinds="biuf")
    check_same_shape(t, "y_true", s, "y_score")
    check_finite(s, "y_score")
    return t, s


def _counts(t: np.ndarray, p: np.ndarray) -> ConfusionCounts:
    tp = int(np.count_nonzero(t & p))
    fn = int(np.count_nonzero(t)) - tp
    fp = int(np.count_nonzero(p)) - tp
    tn = int(t.size) - tp - fn - fp
    return ConfusionCounts(tn=tn, fp=fp, fn=fn, tp=tp)


def confusion_counts(y_true: Any, y_pred: Any) -> ConfusionCounts:
    """Count true/false negatives and positives of binary predictions.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Ground truth, bool or 0/1 (1 = defective).
    y_pred : array_like of shape (n,)
        Predictions, bool or 0/1.

    Returns
    -------
    ConfusionCounts
        Frozen dataclass ``(tn, fp, fn, tp)`` of Python ints, with ``recall``, ``precision``,
        ``fpr``, ``f1`` and ``mcc`` properties.

    Raises
    ------
    TypeError
        If an input is not numeric.
    ValueError
        If an input is not 1-D, is empty, is not binary, or the lengths differ.

    Examples
    --------
    >>> from ispad_core.metrics import confusion_counts
    >>> confusion_counts([0, 0, 1, 1, 1], [0, 1, 1, 1, 0])
    ConfusionCounts(tn=1, fp=1, fn=1, tp=2)
    """
    return _counts(*_labels_and_predictions(y_true, y_pred))


def mcc_from_counts(*, tn: int, fp: int, fn: int, tp: int) -> float:
    """Matthews correlation coefficient from the four confusion counts.

    ``MCC = (tp tn - fp fn) / sqrt((tp + fp)(tp + fn)(tn + fp)(tn + fn))``, and 0.0 when any
    of the four marginals is empty (as ``sklearn.metrics.matthews_corrcoef``). The numerator and
    the product under the root are exact Python ints, so there is no overflow and only three
    roundings.

    Parameters
    ----------
    tn, fp, fn, tp : int
        Non-negative counts.

    Returns
    -------
    float
        MCC in [-1, 1].

    Raises
    ------
    TypeError
        If a count is not an int.
    ValueError
        If a count is negative.

    Examples
    --------
    >>> from ispad_core.metrics import mcc_from_counts
    >>> round(mcc_from_counts(tn=1914, fp=2, fn=3, tp=71), 4)  # the paper's ASM 1/2 row
    0.9647
    """
    tn = check_int(tn, "tn", minimum=0)
    fp = check_int(fp, "fp", minimum=0)
    fn = check_int(fn, "fn", minimum=0)
    tp = check_int(tp, "tp", minimum=0)
    product = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    if product == 0:
        return 0.0
    value = (tp * tn - fp * fn) / math.sqrt(product)
    return min(1.0, max(-1.0, value))


def mcc(y_true: Any, y_pred: Any) -> float:
    """Matthews correlation coefficient of binary predictions.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Ground truth, bool or 0/1 (1 = defective).
    y_pred : array_like of shape (n,)
        Predictions, bool or 0/1.

    Returns
    -------
    float
        MCC in [-1, 1]; 0.0 when a class is absent from ``y_true`` or ``y_pred``.

    Raises
    ------
    TypeError, ValueError
        As :func:`confusion_counts`.

    Examples
    --------
    >>> from ispad_core.metrics import mcc
    >>> round(mcc([0, 0, 1, 1, 1], [0, 1, 1, 1, 0]), 4)
    0.1667
    """
    c = confusion_counts(y_true, y_pred)
    return mcc_from_counts(tn=c.tn, fp=c.fp, fn=c.fn, tp=c.tp)


def recall(y_true: Any, y_pred: Any) -> float:
    """Recall (true positive rate) ``tp / (tp + fn)``; 0.0 without defective samples.

    Parameters and errors as :func:`confusion_counts`.

    Examples
    --------
    >>> from ispad_core.metrics import recall
    >>> recall([0, 0, 1, 1], [0, 1, 1, 0])
    0.5
    """
    return confusion_counts(y_true, y_pred).recall


def precision(y_true: Any, y_pred: Any) -> float:
    """Precision ``tp / (tp + fp)``; 0.0 without positive predictions.

    Parameters and errors as :func:`confusion_counts`.

    Examples
    --------
    >>> from ispad_core.metrics import precision
    >>> precision([0, 0, 1, 1], [0, 1, 1, 1])
    0.6666666666666666
    """
    return confusion_counts(y_true, y_pred).precision


def fpr(y_true: Any, y_pred: Any) -> float:
    """False positive rate ``fp / (fp + tn)``; 0.0 without fault-free samples.

    Parameters and errors as :func:`confusion_counts`.

    Examples
    --------
    >>> from ispad_core.metrics import fpr
    >>> fpr([0, 0, 0, 1], [0, 1, 0, 1])
    0.3333333333333333
    """
    return confusion_counts(y_true, y_pred).fpr


def f1(y_true: Any, y_pred: Any) -> float:
    """F1 score ``2 tp / (2 tp + fp + fn)``; 0.0 when there are only true negatives.

    Parameters and errors as :func:`confusion_counts`.

    Examples
    --------
    >>> from ispad_core.metrics import f1
    >>> f1([0, 0, 1, 1], [0, 1, 1, 1])
    0.8
    """
    return confusion_counts(y_true, y_pred).f1


def _require_both(t: np.ndarray) -> tuple[int, int]:
    n_pos = int(np.count_nonzero(t))
    n_neg = int(t.size) - n_pos
    if n_pos == 0 or n_neg == 0:
        present = "1 (defective)" if n_pos else "0 (fault-free)"
        raise InputValueError(f"y_true: expected both classes 0 and 1, got only {present}")
    return n_pos, n_neg


def roc_auc(y_true: Any, y_score: Any) -> float:
    """Exact area under the ROC curve (the Mann-Whitney statistic, ties counting one half).

    ``AUROC = (#{(i, j): s_i > s_j} + #{(i, j): s_i = s_j} / 2) / (n_pos n_neg)`` over defective
    ``i`` and fault-free ``j``. Counted with integers and rounded once; equal to
    ``sklearn.metrics.roc_auc_score``.

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Ground truth, bool or 0/1, with both classes present.
    y_score : array_like of shape (n,)
        Finite scores, higher = more likely defective.

    Returns
    -------
    float
        AUROC in [0, 1].

    Raises
    ------
    TypeError
        If an input is not numeric.
    ValueError
        If an input is not 1-D or empty, labels are not binary or of one class only, lengths
        differ, or a score is NaN or inf.

    Examples
    --------
    >>> from ispad_core.metrics import roc_auc
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.8])
    0.875
    """
    t, s = _labels_and_scores(y_true, y_score)
    twice_u, pairs = _twice_u(t, s)
    return twice_u / (2 * pairs)


def _twice_u(t: np.ndarray, s: np.ndarray) -> tuple[int, int]:
    """(2 U, n_pos n_neg) as exact ints: U the Mann-Whitney count with ties as one half."""
    n_pos, n_neg = _require_both(t)
    neg = np.sort(s[~t])
    pos = s[t]
    twice_u = int(np.searchsorted(neg, pos, side="left").sum(dtype=np.int64))
    twice_u += int(np.searchsorted(neg, pos, side="right").sum(dtype=np.int64))
    return twice_u, n_pos * n_neg


def _threshold_counts(t: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores (descending) with the tp and fp counts of ``score >= threshold``."""
    order = np.argsort(s, kind="stable")[::-1]
    s_desc = s[order]
    t_desc = t[order]
    last_of_run = np.flatnonzero(np.append(s_desc[1:] != s_desc[:-1], True))
    tp = np.cumsum(t_desc, dtype=np.int64)[last_of_run]
    fp = (last_of_run + 1) - tp
    return s_desc[last_of_run], tp, fp


def _refuse_inexact_thresholds(s: np.ndarray) -> None:
    """64-bit integer scores beyond 2**53 have no exact float64 threshold: refuse them."""
    if s.dtype.kind in "iu" and s.dtype.itemsize == 8 and s.size:
        if int(s.max()) > 2**53 or int(s.min()) < -(2**53):
            raise InputValueError(
                "y_score: integer scores beyond 2**53 are not exact in float64, so the threshold "
                "would be rounded; rescale the scores (or convert them to float64 yourself)"
            )


def _at_least(s: np.ndarray, threshold: float) -> np.ndarray:
    """``s >= threshold`` decided exactly, whatever the dtype of ``s``.

    NumPy would round integer scores to float64 (and float32 scores would round the threshold
    to float32); for integers ``s >= t`` is ``s >= ceil(t)``, an exact integer comparison.
    """
    if s.dtype.kind == "f":
        return s.astype(np.float64, copy=False) >= threshold
    bound = math.ceil(threshold)
    info = np.iinfo(s.dtype) if s.dtype.kind in "iu" else None
    if info is None:  # bool
        return s.astype(np.int64) >= bound
    if bound > info.max:
        return np.zeros(s.shape, dtype=bool)
    if bound <= info.min:
        return np.ones(s.shape, dtype=bool)
    return s >= s.dtype.type(bound)


def f1_optimal_threshold(y_true: Any, y_score: Any) -> float:
    """The score threshold (predict defective when ``score >= threshold``) with the highest F1.

    The candidates are the distinct scores, as on ``sklearn.metrics.precision_recall_curve``;
    ``F1 = 2 tp / (2 tp + fp + fn)`` is compared exactly (as fractions), and of thresholds with
    exactly equal F1 the highest is returned (the fewest false alarms).

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Ground truth, bool or 0/1, with at least one defective sample.
    y_score : array_like of shape (n,)
        Finite scores.

    Returns
    -------
    float
        One of the scores.

    Raises
    ------
    TypeError
        If an input is not numeric.
    ValueError
        If an input is not 1-D or empty, labels are not binary, lengths differ, a score is NaN or
        inf, no sample is defective (F1 is then undefined), or 64-bit integer scores go beyond
        2**53 (the float threshold could not be exact).

    Examples
    --------
    >>> from ispad_core.metrics import f1_optimal_threshold
    >>> f1_optimal_threshold([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.35, 0.8, 0.5, 0.6])
    0.35
    """
    t, s = _labels_and_scores(y_true, y_score)
    _refuse_inexact_thresholds(s)
    n_pos = int(np.count_nonzero(t))
    if n_pos == 0:
        raise InputValueError("y_true: expected at least one defective (1) sample, got none; F1 is undefined")
    thresholds, tp, fp = _threshold_counts(t, s)
    # F1 = 2 tp / (tp + fp + n_pos); screen in float, then decide among near-ties exactly.
    approx = tp / (tp + fp + n_pos)
    candidates = np.flatnonzero(approx >= approx.max() * (1.0 - 1e-9))
    best = max(candidates, key=lambda i: (Fraction(int(tp[i]), int(tp[i] + fp[i]) + n_pos), -i))
    return float(thresholds[best])


_LEGACY_KEYS = ("recall", "fpr", "precision", "auroc")


@dataclass(frozen=True)
class ClassificationReport:
    """One row of the ISP-AD paper's tables 3 to 7 (image level); every rate in percent.

    Attributes
    ----------
    mcc : float
        Matthews correlation coefficient, in [-1, 1].
    recall_percent, fpr_percent, precision_percent : float
        Recall, false positive rate and precision in percent (0 to 100), as the paper prints
        them; each is an exact ratio of integers rounded once.
    tn, tp, fn, fp : int
        Confusion counts.
    threshold : float
        Decision threshold; a sample is predicted defective when ``score >= threshold``.
    auroc_percent : float
        Image-level ROC-AUC in percent (threshold-free), rounded once from exact counts.

    Notes
    -----
    Earlier releases named the rates ``recall``, ``fpr`` and ``precision`` (percent) and
    ``auroc`` (a fraction in [0, 1]). These names remain as read-only aliases with their old
    units, and :meth:`to_dict` still writes them, so saved reports and scripts keep working;
    new code should use the ``*_percent`` names, whose unit is in the name.
    """

    mcc: float
    recall_percent: float
    fpr_percent: float
    precision_percent: float
    tn: int
    tp: int
    fn: int
    fp: int
    threshold: float
    auroc_percent: float
    _auroc: float | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the exact fraction behind auroc_percent, kept for the old `auroc` alias; a copy made
        # with another auroc_percent (dataclasses.replace) must not keep a stale one
        if self._auroc is not None and abs(100 * self._auroc - self.auroc_percent) > 1e-9:
            object.__setattr__(self, "_auroc", None)

    @property
    def recall(self) -> float:
        """Alias of :attr:`recall_percent` (percent), kept for backward compatibility."""
        return self.recall_percent

    @property
    def fpr(self) -> float:
        """Alias of :attr:`fpr_percent` (percent), kept for backward compatibility."""
        return self.fpr_percent

    @property
    def precision(self) -> float:
        """Alias of :attr:`precision_percent` (percent), kept for backward compatibility."""
        return self.precision_percent

    @property
    def auroc(self) -> float:
        """The image AUROC as a fraction in [0, 1]: the old unit of this name (see
        :attr:`auroc_percent`), kept for backward compatibility."""
        return self._auroc if self._auroc is not None else self.auroc_percent / 100

    def to_dict(self, *, legacy: bool = True) -> dict:
        """The fields as a JSON-serialisable dict (Python floats and ints).

        Parameters
        ----------
        legacy : bool, default True
            Also write the old keys ``recall``, ``fpr``, ``precision`` (percent) and ``auroc``
            (a fraction), after the others, for readers of earlier reports.
        """
        out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        if legacy:
            out.update({k: getattr(self, k) for k in _LEGACY_KEYS})
        return out

    def __str__(self) -> str:
        header = ["MCC", "Recall (%)", "FPR (%)", "Precision (%)", "TN", "TP", "FN", "FP", "Threshold", "AUROC (%)"]
        values = [
            f"{self.mcc:.4f}",
            f"{self.recall_percent:.1f}",
            f"{self.fpr_percent:.2f}",
            f"{self.precision_percent:.1f}",
            str(self.tn),
            str(self.tp),
            str(self.fn),
            str(self.fp),
            f"{self.threshold:.6g}",
            f"{self.auroc_percent:.2f}",
        ]
        widths = [max(len(h), len(v)) for h, v in zip(header, values)]
        row = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
        return row(header) + "\n" + row(values)


def classification_report(y_true: Any, y_score: Any, *, threshold: float | None = None) -> ClassificationReport:
    """Image-level metrics as reported in the ISP-AD paper (tables 3 to 7).

    Parameters
    ----------
    y_true : array_like of shape (n,)
        Ground truth, bool or 0/1 (1 = defective), with both classes present.
    y_score : array_like of shape (n,)
        Finite scores, higher = more likely defective.
    threshold : float, optional
        Predict defective when ``score >= threshold``. Default: :func:`f1_optimal_threshold`.

    Returns
    -------
    ClassificationReport
        MCC, recall/FPR/precision/AUROC in percent (``*_percent``), TN/TP/FN/FP and the
        threshold.

    Raises
    ------
    TypeError, ValueError
        As :func:`roc_auc`; also if ``threshold`` is not a finite number, or, without a
        ``threshold``, as :func:`f1_optimal_threshold`.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.metrics import classification_report
    >>> rng = np.random.default_rng(0)
    >>> y = np.r_[np.zeros(95, int), np.ones(5, int)]
    >>> s = rng.normal(size=100) + 3 * y
    >>> r = classification_report(y, s)
    >>> r.tp, r.fn, r.fp, round(r.mcc, 4)
    (3, 2, 0, 0.7666)
    >>> print(r)
       MCC  Recall (%)  FPR (%)  Precision (%)  TN  TP  FN  FP  Threshold  AUROC (%)
    0.7666        60.0     0.00          100.0  95   3   2   0    2.41447      97.47
    """
    t, s = _labels_and_scores(y_true, y_score)
    _require_both(t)
    if threshold is None:
        threshold = f1_optimal_threshold(t, s)
    else:
        threshold = check_float(threshold, "threshold")
    c = _counts(t, _at_least(s, threshold))
    twice_u, pairs = _twice_u(t, s)
    return ClassificationReport(
        mcc=c.mcc,
        recall_percent=_ratio(100 * c.tp, c.tp + c.fn),
        fpr_percent=_ratio(100 * c.fp, c.fp + c.tn),
        precision_percent=_ratio(100 * c.tp, c.tp + c.fp),
        tn=c.tn,
        tp=c.tp,
        fn=c.fn,
        fp=c.fp,
        threshold=float(threshold),
        auroc_percent=100 * twice_u / (2 * pairs),
        _auroc=twice_u / (2 * pairs),
    )
