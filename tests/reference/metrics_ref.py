"""Slow, literal implementations of the metrics, written from their definitions.

Nothing here is clever: AU-PRO sorts every pixel (``argsort``), accumulates the per-pixel
changes of FPR and PRO, keeps one point per distinct score, and integrates with the trapezoid
rule, interpolating linearly at the limit (as the MVTec AD evaluation code does, but in float64).
The fast implementations in :mod:`ispad_core.metrics` are tested against these.
"""

from __future__ import annotations

import bisect
import math

import numpy as np
from scipy import ndimage
from scipy.stats import rankdata

STRUCTURE_8 = np.ones((3, 3), dtype=int)
STRUCTURE_4 = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])


def mcc_ref(tn, fp, fn, tp):
    """MCC straight from the formula; 0 when a marginal is empty."""
    den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return 0.0 if den == 0 else (tp * tn - fp * fn) / math.sqrt(den)


def roc_auc_ref(y_true, y_score):
    """Mann-Whitney by comparing every (defective, fault-free) pair; ties count one half."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(y_score, dtype=np.float64)
    pos, neg = s[y], s[~y]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * ties) / (pos.size * neg.size)


def rank_auc_ref(y_true, y_score):
    """Mann-Whitney from average ranks (for inputs too large for the pairwise version)."""
    y = np.asarray(y_true).astype(bool)
    ranks = rankdata(np.asarray(y_score, dtype=np.float64))  # average ranks for ties
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    return (ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def f1_curve_ref(y_true, y_score):
    """(thresholds, f1) at every distinct score: predict defective when score >= threshold."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(y_score, dtype=np.float64)
    thresholds = np.unique(s)
    f1 = []
    for t in thresholds:
        pred = s >= t
        tp = np.sum(pred & y)
        fp = np.sum(pred & ~y)
        fn = np.sum(~pred & y)
        f1.append(2 * tp / (2 * tp + fp + fn))
    return thresholds, np.array(f1)


def _pixels(anomaly_maps, masks, structure):
    """Flat scores, anomaly-free indicator and per-pixel PRO increment 1 / |region|."""
    scores, ok, weight = [], [], []
    n_regions = 0
    for amap, mask in zip(anomaly_maps, masks):
        labels, n = ndimage.label(np.asarray(mask) != 0, structure=structure)
        n_regions += n
        w = np.zeros(labels.shape)
        for k in range(1, n + 1):
            region = labels == k
            w[region] = 1.0 / region.sum()
        scores.append(np.asarray(amap, dtype=np.float64).ravel())
        ok.append((labels == 0).ravel())
        weight.append(w.ravel())
    return np.concatenate(scores), np.concatenate(ok), np.concatenate(weight), n_regions


def pro_curve_ref(anomaly_maps, masks, structure=STRUCTURE_8, ties="distinct"):
    """(fpr, pro, thresholds) from (0, 0), one point per distinct score (``ties="distinct"``).

    ``ties="pixel"`` keeps one point per pixel in a stable descending order instead (what a
    naive implementation that forgets ties would do); used only to document the effect.
    """
    scores, ok, weight, n_regions = _pixels(anomaly_maps, masks, structure)
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    fp = np.cumsum(ok[order])
    pro = np.cumsum(weight[order])
    if ties == "distinct":
        keep = np.append(s[1:] != s[:-1], True)
    else:
        keep = np.ones(s.size, dtype=bool)
    fpr = fp[keep] / ok.sum()
    pro = np.minimum(pro[keep] / n_regions, 1.0)
    return np.r_[0.0, fpr], np.r_[0.0, pro], np.r_[np.inf, s[keep]]


def trapezoid_ref(x, y, x_max, interpolate=True):
    """Trapezoid area under (x, y) from x[0] to x_max; linear interpolation at x_max.

    The MVTec AD evaluation code's ``trapezoid`` in float64: the points with x <= x_max, plus a
    last trapezoid to the curve's value at x_max interpolated on the segment that crosses it.
    ``interpolate=False`` stops at the last point with x <= x_max instead (documentation only).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    correction = 0.0
    if interpolate and x_max not in x:
        j = bisect.bisect_right(x, x_max)  # first point beyond the limit (x is sorted)
        y_lim = y[j - 1] + (y[j] - y[j - 1]) * (x_max - x[j - 1]) / (x[j] - x[j - 1])
        correction = 0.5 * (y[j - 1] + y_lim) * (x_max - x[j - 1])
    inside = x <= x_max
    x, y = x[inside], y[inside]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def au_pro_ref(anomaly_maps, masks, fpr_limit=0.3, structure=STRUCTURE_8, ties="distinct", interpolate=True):
    """AU-PRO: trapezoid area of the PRO curve up to ``fpr_limit``, divided by ``fpr_limit``."""
    fpr, pro, _ = pro_curve_ref(anomaly_maps, masks, structure=structure, ties=ties)
    return trapezoid_ref(fpr, pro, fpr_limit, interpolate=interpolate) / fpr_limit


def pixel_roc_auc_ref(anomaly_maps, masks):
    """Pixel AUROC from average ranks of all pixels pooled."""
    scores = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in anomaly_maps])
    labels = np.concatenate([(np.asarray(m) != 0).ravel() for m in masks])
    return rank_auc_ref(labels, scores)
