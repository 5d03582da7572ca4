"""Numba kernels of :mod:`ispad_core.metrics`.

Every kernel here assumes valid input (validated and converted by ``_pro.py``) and never raises.

AU-PRO and the pixel AUROC need, for each defective pixel, only how many anomaly-free pixels score
above and equal to it: :func:`count_negatives` finds that in one linear pass against the sorted
distinct defective scores, and :func:`pro_area` turns it into the area (see ``docs/metrics.md``).

The PRO curve needs the anomaly-free scores above the FPR limit's cut in order. The cut is found
by a radix *selection* over an order-preserving unsigned key: for a float with bit pattern ``b``
(``uint32`` for float32, ``uint64`` for float64, widened to ``uint64``), the key is ``b | sign``
for non-negative numbers and ``b ^ ones`` for negative ones, so ``key(x) < key(y)`` exactly when
``x < y``; ``-0.0`` is first mapped to ``+0.0`` so that equal values have equal keys. The top 16
bits of the key form the digit of a histogram (:func:`scan`, :func:`refine`), and only the scores
above the cut are gathered (:func:`gather_negatives`) and sorted.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ispad_core._shared.config import NJIT

DIGIT_BITS = 16
N_BUCKETS = 1 << DIGIT_BITS


@njit(**NJIT)
def _key(b, sign, ones):
    """Order-preserving unsigned key of a float's bit pattern ``b`` (see the module docstring)."""
    k = np.uint64(b)
    if k == sign:  # -0.0 sorts and compares as +0.0
        k = np.uint64(0)
    if k & sign:
        return k ^ ones
    return k | sign


@njit(**NJIT)
def scan(vals, bits, masks, n_img, img_size, sign, ones, top_shift, hist, with_hist, pos_counts):
    """One pass over ``n_img`` flattened images of ``img_size`` pixels.

    Adds the number of defective pixels of image ``j`` to ``pos_counts[j]`` and, if
    ``with_hist``, the top key digit of every anomaly-free finite pixel to ``hist``.
    Returns ``(n_nonfinite, n_anomaly_free)``.
    """
    n_bad = 0
    n_neg = 0
    digit_mask = np.uint64(N_BUCKETS - 1)
    for j in range(n_img):
        npos = 0
        start = j * img_size
        for i in range(start, start + img_size):
            if not math.isfinite(vals[i]):
                n_bad += 1
            elif masks[i] != 0:
                npos += 1
            else:
                n_neg += 1
                if with_hist:
                    hist[(_key(bits[i], sign, ones) >> top_shift) & digit_mask] += 1
        pos_counts[j] += npos
    return n_bad, n_neg


@njit(**NJIT)
def _bucket(v, origin, scale, n_buckets):
    """Bucket ``0 .. n_buckets + 1`` of a score: a non-decreasing function of ``v`` (also under
    float rounding: subtraction, scaling, clamping and truncation are all monotone)."""
    x = (np.float64(v) - origin) * scale
    x = min(max(x, -1.0), np.float64(n_buckets))
    return np.int64(x) + 1


@njit(**NJIT)
def level_buckets(levels, origin, scale, n_buckets):
    """``first[b]``: index of the first of the sorted ``levels`` whose bucket is ``>= b``.

    Because :func:`_bucket` is monotone, a score can equal or neighbour only the levels of its
    own bucket: levels in lower buckets are smaller, levels in higher buckets larger.
    """
    first = np.empty(n_buckets + 3, np.int32)
    b = 0
    for j in range(levels.size):
        lb = _bucket(levels[j], origin, scale, n_buckets)
        while b <= lb:
            first[b] = j
            b += 1
    while b < first.size:
        first[b] = levels.size
        b += 1
    return first


@njit(**NJIT)
def count_negatives(vals, masks, levels, origin, scale, first, counts):
    """Place every anomaly-free score among the sorted distinct defective scores ``levels``.

    For a score ``v``, ``j`` is the number of levels below it; ``counts[2 j + 1] += 1`` when
    ``levels[j] == v``, otherwise ``counts[2 j] += 1`` (``counts`` has ``2 len(levels) + 2``
    slots; ``counts[2 len(levels)]`` counts scores above every level). The bucket table ``first``
    (from :func:`level_buckets`) narrows the search to the levels of ``v``'s bucket, usually one
    or none (binary search when a bucket is crowded), so no sorting of the anomaly-free scores is
    needed: the cost is linear in the pixels, at worst ``log2(len(levels))`` steps each.
    """
    n_buckets = first.size - 3
    for i in range(vals.size):
        if masks[i] != 0:
            continue
        v = vals[i]
        bucket = _bucket(v, origin, scale, n_buckets)
        a = first[bucket]
        b = first[bucket + 1]
        slot = 2 * a
        if a < b:
            end = b
            while b - a > 8:  # crowded bucket (clustered levels): binary search
                mid = (a + b) >> 1
                if levels[mid] < v:
                    a = mid + 1
                else:
                    b = mid
            while a < end and levels[a] < v:
                a += 1
            slot = 2 * a
            if a < end and levels[a] == v:
                slot += 1
        counts[slot] += 1


@njit(**NJIT)
def refine(bits, masks, sign, ones, prefix, prefix_shift, digit_shift, hist):
    """Histogram of the next key digit of the anomaly-free pixels whose key starts with ``prefix``."""
    digit_mask = np.uint64(N_BUCKETS - 1)
    for i in range(bits.size):
        if masks[i] == 0:
            k = _key(bits[i], sign, ones)
            if (k >> prefix_shift) == prefix:
                hist[(k >> digit_shift) & digit_mask] += 1


@njit(**NJIT)
def gather_negatives(vals, bits, masks, sign, ones, lower, out, start):
    """Copy the anomaly-free scores with key >= ``lower`` to ``out[start:]``; return the new end."""
    n = start
    for i in range(vals.size):
        if masks[i] == 0:
            if _key(bits[i], sign, ones) >= lower:
                out[n] = vals[i]
                n += 1
    return n


@njit(**NJIT)
def gather_positives(vals, masks, out, start):
    """Copy the defective pixels' scores to ``out[start:]``; return the new end."""
    n = start
    for i in range(vals.size):
        if masks[i] != 0:
            out[n] = vals[i]
            n += 1
    return n


@njit(**NJIT)
def _neumaier_add(total, comp, x):
    """One step of Neumaier's compensated summation; returns the new ``(total, comp)``."""
    t = total + x
    if abs(total) >= abs(x):
        comp += (total - t) + x
    else:
        comp += (x - t) + total
    return t, comp


@njit(**NJIT)
def pro_area(greater, equal, region, sizes, limit_count):
    """Area under the PRO curve up to the FPR limit, in units of anomaly-free pixels.

    Pixel ``p`` of region ``r`` adds ``1 / (R |r|)`` to PRO from the curve point of its own score
    on; on the polyline that contribution ramps linearly from 0 at x = ``greater[p]`` (anomaly-free
    pixels scoring above it) to 1 at x = ``greater[p] + equal[p]`` (its ties included). Its
    integral from 0 to ``limit_count`` is therefore ``limit - g - e / 2`` when the ramp ends
    before the limit, ``(limit - g)**2 / (2 e)`` when the limit cuts the ramp, and 0 after. The
    trapezoid rule with linear interpolation at the limit is linear in PRO, so the area is the
    sum of these pixel terms weighted by ``1 / |r|`` (divide by ``R * limit_count`` for AU-PRO).
    Integer parts are accumulated exactly, region terms with compensated summation.
    """
    n_regions = sizes.size
    n_full = np.zeros(n_regions, np.int64)
    twice_rank = np.zeros(n_regions, np.int64)
    partial = np.zeros(n_regions, np.float64)
    for p in range(greater.size):
        g = greater[p]
        e = equal[p]
        r = region[p]
        if g + e <= limit_count:
            n_full[r] += 1
            twice_rank[r] += 2 * g + e
        elif g < limit_count:
            d = limit_count - g
            partial[r] += d * d / (2.0 * e)
    total = 0.0
    comp = 0.0
    for r in range(n_regions):
        term = (n_full[r] * limit_count - 0.5 * twice_rank[r] + partial[r]) / sizes[r]
        total, comp = _neumaier_add(total, comp, term)
    return total + comp


@njit(**NJIT)
def pro_curve_points(neg_sorted, pos_sorted_desc, weights, n_regions, limit_count, out_thr, out_count, out_pro):
    """Merge anomaly-free scores (ascending) and defective scores (descending, with weights).

    Emits one point per distinct score, from the highest down: the threshold, the number of
    anomaly-free pixels scoring at or above it, and the PRO sum (compensated) divided by
    ``n_regions`` (exactly 1 once every defective pixel is counted). Stops after the first point
    whose count exceeds ``limit_count``. Returns the number of points written.
    """
    i = neg_sorted.size - 1
    j = 0
    n_pos = pos_sorted_desc.size
    count = 0
    s = 0.0
    comp = 0.0
    m = 0
    while i >= 0 or j < n_pos:
        if i >= 0 and (j >= n_pos or neg_sorted[i] >= pos_sorted_desc[j]):
            v = neg_sorted[i]
        else:
            v = pos_sorted_desc[j]
        while i >= 0 and neg_sorted[i] == v:
            count += 1
            i -= 1
        while j < n_pos and pos_sorted_desc[j] == v:
            s, comp = _neumaier_add(s, comp, weights[j])
            j += 1
        out_thr[m] = v
        out_count[m] = count
        if j == n_pos:
            out_pro[m] = 1.0
        else:
            out_pro[m] = min((s + comp) / n_regions, 1.0)
        m += 1
        if count > limit_count:
            break
    return m


# --------------------------------------------------------------------------- per-level reduction
# Shared by the in-memory functions and by PixelMetrics (batches), so that both give the same
# bits: the per-level weights are exact fixed-point sums, and the area is reduced in one order.

_TWO62 = 2.0**62
_UNIT = 2.0**96
_BASE = np.uint64(1 << 62)
"""Region weights are summed as integers in units of 2**-96 (``1 / size`` of a region of up to
2**43 pixels is a multiple of it), held as ``hi * 2**62 + lo`` with ``lo < 2**62`` (so that no
addition overflows a uint64): exact for fewer than 2**29 regions sharing one score."""


@njit(**NJIT)
def weight_limbs(sizes):
    """``(hi, lo)`` with ``hi[r] * 2**62 + lo[r] == (1.0 / sizes[r]) * 2**96`` exactly, ``lo < 2**62``."""
    hi = np.empty(sizes.size, np.uint64)
    lo = np.empty(sizes.size, np.uint64)
    for r in range(sizes.size):
        m = (1.0 / sizes[r]) * _UNIT  # an integer: a float64 of at most 53 bits, times 2**96
        h = math.floor(m / _TWO62)
        hi[r] = np.uint64(h)
        lo[r] = np.uint64(m - h * _TWO62)  # exact: the low bits of m
    return hi, lo


@njit(**NJIT)
def add_limbs(s_hi, s_lo, j, hi, lo):
    """``(s_hi[j], s_lo[j]) += (hi, lo)``, keeping ``s_lo[j] < 2**62``."""
    x = s_lo[j] + lo
    if x >= _BASE:
        x -= _BASE
        s_hi[j] += np.uint64(1)
    s_lo[j] = x
    s_hi[j] += hi


@njit(**NJIT)
def level_weights(level_of, region, w_hi, w_lo, n_levels):
    """Exact per-level sums of the weights of the defective pixels' regions, as limbs."""
    s_hi = np.zeros(n_levels, np.uint64)
    s_lo = np.zeros(n_levels, np.uint64)
    for p in range(level_of.size):
        r = region[p]
        add_limbs(s_hi, s_lo, level_of[p], w_hi[r], w_lo[r])
    return s_hi, s_lo


@njit(**NJIT)
def limbs_to_float(s_hi, s_lo):
    """The float64 values of the fixed-point sums (units of 2**-96): one fixed rounding rule."""
    out = np.empty(s_hi.size, np.float64)
    for j in range(s_hi.size):
        out[j] = np.float64(s_hi[j]) * (_TWO62 / _UNIT) + np.float64(s_lo[j]) * (1.0 / _UNIT)
    return out


@njit(**NJIT)
def pro_area_levels(weights, greater, equal, limit_count):
    """Area under the PRO curve up to the FPR limit, in units of anomaly-free pixels, per level.

    Level ``j`` (a distinct defective score, ascending) carries ``weights[j]``, the sum of
    ``1 / |r|`` over the defective pixels with that score, and has ``greater[j]`` anomaly-free
    pixels scoring above it and ``equal[j]`` scoring the same. Each such pixel's share of the area
    is the closed form of :func:`pro_area` (``L - g - e / 2``, ``(L - g)**2 / (2 e)`` or 0), so
    the area is ``sum_j weights[j] * phi(g_j, e_j)``, summed in level order with compensation.
    """
    total = 0.0
    comp = 0.0
    for j in range(weights.size):
        g = np.float64(greater[j])
        e = np.float64(equal[j])
        if g + e <= limit_count:
            phi = limit_count - g - 0.5 * e
        elif g < limit_count:
            d = limit_count - g
            phi = d * d / (2.0 * e)
        else:
            continue
        total, comp = _neumaier_add(total, comp, weights[j] * phi)
    return total + comp


_M31 = np.uint64((1 << 31) - 1)
_S31 = np.uint64(31)


@njit(**NJIT)
def dot_u128(a, b):
    """``sum(a[j] * b[j])`` of non-negative int64 arrays below 2**62, exact, as ``(hi, lo)`` with
    the sum ``hi * 2**62 + lo`` (no uint64 addition overflows on the way)."""
    acc = np.zeros(1, np.uint64)  # the high limb
    low = np.zeros(1, np.uint64)  # the low limb, < 2**62
    for j in range(a.size):
        x = np.uint64(a[j])
        y = np.uint64(b[j])
        x0 = x & _M31
        x1 = x >> _S31
        y0 = y & _M31
        y1 = y >> _S31
        cross = x1 * y0 + x0 * y1  # < 2**63: times 2**31
        acc[0] += x1 * y1 + (cross >> _S31)
        add_limbs(acc, low, 0, np.uint64(0), (cross & _M31) << _S31)
        add_limbs(acc, low, 0, np.uint64(0), x0 * y0)
    return acc[0], low[0]
