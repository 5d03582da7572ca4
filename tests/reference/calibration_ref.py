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
