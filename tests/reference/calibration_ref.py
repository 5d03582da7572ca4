"""Slow, obvious versions of the threshold calibration, written from the definition.

The conformal threshold: sort the n fault-free scores, take the k-th smallest with
k = ceil((n + 1)(1 - R)) (computed exactly on the float R with fractions), and step to the next
float above it; the smallest n for a rate is found by counting up.
"""

import math
from fractions import Fraction

import numpy as np


def conformal_rank_ref(n, rate):
    """k = ceil((n + 1)(1 - R)), exact."""
    return math.ceil((n + 1) * (1 - Fraction(rate)))


def fpr_threshold_ref(scores, rate):
    """The k-th smallest score (1-based) nudged up, or None when k > n."""
    s = sorted(float(x) for x in np.ravel(scores))
    k = conformal_rank_ref(len(s), rate)
    if k > len(s):
        return None
    return float(np.nextafter(s[k - 1], np.inf))


def min_calibration_windows_ref(rate):
    """The smallest n >= 1 whose rank k is at most n, by counting."""
    n = 1
    while conformal_rank_ref(n, rate) > n:
        n += 1
    return n


def false_alarms_ref(scores, threshold):
    """Windows flagged by the library's rule, score >= threshold."""
    return sum(1 for x in np.ravel(scores) if x >= threshold)


def design_effect_ref(groups):
    """Kish's design effect from per-scan empirical distribution functions, by counting.

    At each pooled decile t: sum over scans of m_s (F_s(t) - F(t))^2 / ((S - 1) F(t)(1 - F(t))),
    then the mean over the deciles where 0 < F(t) < 1, at least 1.
    """
    pooled = [float(x) for g in groups for x in g]
    ts = np.quantile(np.array(pooled), np.arange(1, 10) / 10)
    effects = []
    for t in ts:
        f = sum(1 for x in pooled if x <= t) / len(pooled)
        if not 0 < f < 1:
            continue
        total = 0.0
        for g in groups:
            fs = sum(1 for x in g if x <= t) / len(g)
            total += len(g) * (fs - f) ** 2
        effects.append(total / ((len(groups) - 1) * f * (1 - f)))
    return max(1.0, sum(effects) / len(effects)) if effects else 1.0


def calibration_sample_ref(scores, size):
    """All scores sorted, or the order statistics at ranks round((i + 0.5) n / size - 0.5), as float32."""
    s = sorted(float(x) for x in scores)
    n = len(s)
    if n <= size:
        return np.array(s, dtype=np.float32)
    ranks = [min(n - 1, max(0, int(np.rint((i + 0.5) * n / size - 0.5)))) for i in range(size)]
    return np.array([s[r] for r in ranks], dtype=np.float32)
