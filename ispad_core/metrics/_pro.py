"""Pixel-level metrics: PRO curve, AU-PRO (MVTec AD definition) and pixel ROC-AUC.

The public functions validate and convert their input, then call the kernels in
``_metrics_kernels.py``. See ``docs/metrics.md`` for the definitions and the speed figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_array, check_same_shape
from ispad_core.metrics import _batches_kernels as BK
from ispad_core.metrics import _metrics_kernels as K
from ispad_core.metrics._batches import PixelMetrics, _OverBudget
from ispad_core.metrics._pixel_common import (
    MASK_VIEW,
    STRUCTURE_4,
    STRUCTURE_8,
    au_pro_value,
    auroc_value,
    check_limit,
    mask_view,
    score_dtype,
)

__all__ = ["au_pro", "pixel_roc_auc", "pro_curve"]

_REFINE_MIN = 1 << 20
"""A radix bucket with more anomaly-free pixels than this (and more than k/8) is split further."""



# --------------------------------------------------------------------------- input handling


@dataclass
class _Pixels:
    """Validated maps and masks: flat chunks for the kernels, 2-D views for labelling."""

    scores: list  # per-image 2-D score arrays (converted dtype)
    masks: list  # per-image 2-D unsigned views of the masks (non-zero = defective)
    chunks: list  # (vals, bits, masks_flat, n_img, img_size, first_image)
    dtype: np.dtype

    @property
    def n_images(self) -> int:
        return len(self.scores)

    @property
    def key_constants(self):
        nbits = 8 * self.dtype.itemsize
        sign = np.uint64(1 << (nbits - 1))
        ones = np.uint64((1 << nbits) - 1)
        return sign, ones, nbits - K.DIGIT_BITS


_EXACT_INT = 2**53
"""Integers of magnitude up to this are exact in float64; beyond it distinct scores can merge."""


def _beyond_float64(a: np.ndarray) -> bool:
    """Whether 64-bit integer scores hold a value that float64 cannot represent exactly."""
    if a.dtype.kind not in "iu" or a.dtype.itemsize < 8 or a.size == 0:
        return False
    return int(a.max()) > _EXACT_INT or int(a.min()) < -_EXACT_INT


def _as_ranks(arrays: list, name: str, exact: bool) -> list | None:
    """Dense ranks (float64) of 64-bit integer scores that float64 would round, else None.

    Ranks keep the order and the ties of the scores, so every ranking metric computed on them
    is exact. With ``exact=True`` (a function that returns score thresholds) such scores are
    refused instead, since a threshold must be a float64 that means what it says.
    """
    if not any(_beyond_float64(a) for a in arrays):
        return None
    if exact:
        raise InputValueError(
            f"{name}: integer scores beyond 2**53 are not exact in float64, and the thresholds this "
            "function returns would be rounded; rescale the scores (or convert them to float64 "
            "yourself)"
        )
    # Mixed dtypes (int64 with uint64 or with floats) would be promoted to float64, which rounds;
    # Python objects compare ints and floats exactly.
    common = arrays[0].dtype if all(a.dtype == arrays[0].dtype for a in arrays) else object
    flat = np.concatenate([a.reshape(-1).astype(common, copy=False) for a in arrays])
    _, inverse = np.unique(flat, return_inverse=True)
    ranks = inverse.reshape(-1).astype(np.float64)
    out, start = [], 0
    for a in arrays:
        out.append(ranks[start : start + a.size].reshape(a.shape))
        start += a.size
    return out


def _check_map_container(x: Any, name: str) -> None:
    if x is None:
        raise InputTypeError(f"{name}: expected an (N, H, W) array or a list of (H, W) arrays, got None")


def _prepare(anomaly_maps: Any, masks: Any, *, exact_thresholds: bool = False) -> _Pixels:
    """Validate ``anomaly_maps`` and ``masks`` (an (N, H, W) array or a list of (H, W) arrays each).

    64-bit integer scores beyond 2**53 are replaced by their dense ranks (see :func:`_as_ranks`).
    """
    _check_map_container(anomaly_maps, "anomaly_maps")
    _check_map_container(masks, "masks")
    if isinstance(anomaly_maps, np.ndarray) and isinstance(masks, np.ndarray):
        return _prepare_arrays(anomaly_maps, masks, exact_thresholds)
    if not isinstance(anomaly_maps, (Sequence, np.ndarray)) or isinstance(anomaly_maps, (str, bytes)):
        raise InputTypeError(
            f"anomaly_maps: expected an (N, H, W) array or a list of (H, W) arrays, got {type(anomaly_maps).__name__}"
        )
    if not isinstance(masks, (Sequence, np.ndarray)) or isinstance(masks, (str, bytes)):
        raise InputTypeError(f"masks: expected an (N, H, W) array or a list of (H, W) arrays, got {type(masks).__name__}")
    if len(anomaly_maps) == 0:
        raise InputValueError("anomaly_maps: expected at least one map, got an empty sequence")
    if len(masks) != len(anomaly_maps):
        raise InputValueError(f"masks: expected {len(anomaly_maps)} masks like anomaly_maps, got {len(masks)}")
    raw_scores, raw_masks, dtypes = [], [], []
    for i in range(len(anomaly_maps)):
        s = check_array(anomaly_maps[i], f"anomaly_maps[{i}]", ndim=2, allow_empty=True)
        m = check_array(masks[i], f"masks[{i}]", ndim=2, allow_empty=True)
        check_same_shape(s, f"anomaly_maps[{i}]", m, f"masks[{i}]")
        dtypes.append(score_dtype(s.dtype, f"anomaly_maps[{i}]"))
        raw_scores.append(s)
        raw_masks.append(mask_view(m, f"masks[{i}]"))
    ranks = _as_ranks(raw_scores, "anomaly_maps", exact_thresholds)
    if ranks is not None:
        raw_scores, dtypes = ranks, [np.dtype(np.float64)]
    dtype = np.dtype(np.float64) if any(d == np.float64 for d in dtypes) else np.dtype(np.float32)
    scores = [np.ascontiguousarray(s, dtype=dtype) for s in raw_scores]
    bits_dtype = MASK_VIEW[dtype.itemsize]
    chunks = [
        (s.reshape(-1), s.reshape(-1).view(bits_dtype), m.reshape(-1), 1, s.size, i)
        for i, (s, m) in enumerate(zip(scores, raw_masks))
    ]
    return _Pixels(scores, raw_masks, chunks, dtype)


def _prepare_arrays(anomaly_maps: np.ndarray, masks: np.ndarray, exact_thresholds: bool = False) -> _Pixels:
    if anomaly_maps.ndim != 3:
        raise InputValueError(
            "anomaly_maps: expected an (N, H, W) array or a list of (H, W) arrays, "
            f"got an array of shape {anomaly_maps.shape}"
        )
    if anomaly_maps.dtype == object:
        raise InputTypeError("anomaly_maps: expected a numeric array, got dtype object")
    dtype = score_dtype(anomaly_maps.dtype, "anomaly_maps")
    check_same_shape(anomaly_maps, "anomaly_maps", masks, "masks")
    if anomaly_maps.shape[0] == 0:
        raise InputValueError(f"anomaly_maps: expected at least one map, got shape {anomaly_maps.shape}")
    if masks.dtype == object:
        raise InputTypeError("masks: expected a boolean or integer dtype (non-zero = defective), got dtype object")
    ranks = _as_ranks([anomaly_maps], "anomaly_maps", exact_thresholds)
    if ranks is not None:
        anomaly_maps, dtype = ranks[0], np.dtype(np.float64)
    scores = np.ascontiguousarray(anomaly_maps, dtype=dtype)
    mviews = mask_view(masks, "masks")
    n, h, w = scores.shape
    vals = scores.reshape(-1)
    chunks = [(vals, vals.view(MASK_VIEW[dtype.itemsize]), mviews.reshape(-1), n, h * w, 0)]
    return _Pixels(list(scores), list(mviews), chunks, dtype)


# --------------------------------------------------------------------------- shared passes


@dataclass
class _Scan:
    hist: np.ndarray | None  # top-digit histogram of anomaly-free keys (when asked for)
    n_neg: int
    pos_counts: np.ndarray  # defective pixels per image


def _scan(px: _Pixels, *, with_hist: bool = False) -> _Scan:
    sign, ones, top_shift = px.key_constants
    hist = np.zeros(K.N_BUCKETS if with_hist else 1, np.int64)
    pos_counts = np.zeros(px.n_images, np.int64)
    n_bad = n_neg = 0
    for vals, bits, m, n_img, size, first in px.chunks:
        bad, neg = K.scan(
            vals, bits, m, n_img, size, sign, ones, np.uint64(top_shift), hist, with_hist,
            pos_counts[first : first + n_img],
        )
        n_bad += bad
        n_neg += neg
    if n_bad:
        raise InputValueError(f"anomaly_maps: expected finite values, got {n_bad} NaN or inf")
    return _Scan(hist if with_hist else None, n_neg, pos_counts)


def _require_both_classes(scan: _Scan) -> None:
    if scan.pos_counts.sum() == 0:
        raise InputValueError("masks: expected at least one defective (non-zero) pixel, got none")
    if scan.n_neg == 0:
        raise InputValueError("masks: expected at least one anomaly-free (zero) pixel, got none")


def _cut(px: _Pixels, scan: _Scan, k: int) -> tuple[int, int]:
    """Key bound and count bound of a set of anomaly-free pixels that holds the ``k`` highest.

    Returns ``(lower, capacity)``: every anomaly-free pixel with key >= ``lower`` is among the
    ``capacity`` such pixels, and they include the ``k`` highest-scoring ones with all their ties.
    A radix selection: a histogram of the top 16 key bits (from :func:`_scan`), refined by further
    16-bit digits only while the bucket holding the k-th score is large.
    """
    if k >= scan.n_neg:
        return 0, scan.n_neg
    sign, ones, shift = px.key_constants
    hist = scan.hist
    prefix = 0
    above = 0
    remaining = k
    while True:
        from_top = np.cumsum(hist[::-1])
        idx = int(np.searchsorted(from_top, remaining))  # first digit (from the top) reaching k
        digit = K.N_BUCKETS - 1 - idx
        bucket = int(hist[digit])
        higher = int(from_top[idx]) - bucket
        above += higher
        remaining -= higher
        prefix = (prefix << K.DIGIT_BITS) | digit
        if shift == 0 or bucket <= max(_REFINE_MIN, k // 8):
            break
        hist = np.zeros(K.N_BUCKETS, np.int64)
        for _, bits, m, _, _, _ in px.chunks:
            K.refine(bits, m, sign, ones, np.uint64(prefix), np.uint64(shift), np.uint64(shift - K.DIGIT_BITS), hist)
        shift -= K.DIGIT_BITS
    return prefix << shift, above + bucket


def _rank_among_levels(px: _Pixels, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count the anomaly-free scores strictly between and equal to the sorted distinct ``levels``.

    Returns ``(below, equal)``: ``below[j]`` anomaly-free pixels score strictly between
    ``levels[j - 1]`` and ``levels[j]`` (``below[0]``: under every level, ``below[-1]``: above
    every level), ``equal[j]`` score exactly ``levels[j]``. One linear pass, no sort.
    """
    n = levels.size
    origin = float(levels[0])
    span = float(levels[-1]) - origin
    n_buckets = max(1, min(8 * n, 1 << 22))
    scale = n_buckets / span if span > 0.0 else 0.0
    if not (math.isfinite(span) and math.isfinite(scale)) or scale == 0.0:
        # One bucket (a single level, or a range whose span or reciprocal overflows). The origin
        # must then be 0: (v - origin) could overflow to inf, and inf * 0 is NaN, not a bucket.
        origin, scale = 0.0, 0.0
    first = K.level_buckets(levels, origin, scale, n_buckets)
    counts = np.zeros(2 * n + 2, np.int64)
    for vals, _, m, _, _, _ in px.chunks:
        K.count_negatives(vals, m, levels, origin, scale, first, counts)
    return counts[0::2], counts[1:-1:2]


def _sorted_negatives(px: _Pixels, lower: int, capacity: int) -> np.ndarray:
    """The anomaly-free scores with key >= ``lower``, sorted ascending."""
    sign, ones, _ = px.key_constants
    out = np.empty(capacity, dtype=px.dtype)
    n = 0
    for vals, bits, m, _, _, _ in px.chunks:
        n = K.gather_negatives(vals, bits, m, sign, ones, np.uint64(lower), out, n)
    out = out[:n]
    out.sort()
    return out


def _limit_k(fpr_limit: float, n_neg: int) -> int:
    """How many of the highest anomaly-free scores can matter up to ``fpr_limit`` (with margin)."""
    return min(n_neg, math.floor(fpr_limit * n_neg) + 2)


def _regions(px: _Pixels, pos_counts: np.ndarray, structure: np.ndarray):
    """Label the defective images; return defective scores, their region ids and region sizes."""
    scores, ids, sizes = [], [], []
    offset = 0
    for i in np.flatnonzero(pos_counts):
        labels, n = ndimage.label(px.masks[i], structure=structure)
        flat = labels.reshape(-1)
        where = np.flatnonzero(flat)
        local = flat[where]
        scores.append(px.scores[i].reshape(-1)[where])
        ids.append(local.astype(np.int64) + (offset - 1))
        sizes.append(np.bincount(local, minlength=n + 1)[1:])
        offset += n
    return np.concatenate(scores), np.concatenate(ids), np.concatenate(sizes).astype(np.int64)


# --------------------------------------------------------------------------- public API


def pro_curve(anomaly_maps: Any, masks: Any, *, fpr_limit: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-region overlap (PRO) against the pixel false positive rate, one point per distinct score.

    Ground-truth regions are the 8-connected components of each mask (``scipy.ndimage.label``
    with a 3x3 structure of ones), labelled per image. For a threshold ``t``,
    ``PRO(t)`` is the mean over all regions of all images of the fraction of the region's pixels
    with score ``>= t``, and ``FPR(t)`` is the fraction of all anomaly-free pixels of all images
    with score ``>= t``. The curve starts at ``(0, 0)`` (threshold ``+inf``) and has one point
    per distinct score, from the highest down; without a limit it ends at ``(1, 1)``.

    Parameters
    ----------
    anomaly_maps : ndarray of shape (N, H, W) or list of (H, W) arrays
        Anomaly scores, any float or integer dtype, finite. Higher means more anomalous. Lists may
        hold maps of different sizes. An array avoids copying (float32 and float64 are used as
        they are; other dtypes are converted).
    masks : ndarray of shape (N, H, W) or list of (H, W) arrays
        Ground truth of the same shapes, boolean or any integer dtype; non-zero means defective.
    fpr_limit : float, default 1.0
        Stop after the first point whose FPR exceeds this (in (0, 1]). Only the anomaly-free
        scores above the limit's cut are sorted, so a limit saves time and memory: without one
        the curve has a point per distinct score (up to one per pixel).

    Returns
    -------
    fpr : ndarray of float64, shape (M,)
        Non-decreasing, from 0.
    pro : ndarray of float64, shape (M,)
        Non-decreasing, from 0; exactly 1 once every defective pixel is counted.
    thresholds : ndarray of float64, shape (M,)
        Decreasing; ``thresholds[0]`` is ``inf``, the rest are the distinct scores.

    Raises
    ------
    TypeError
        If a map is not real-valued or a mask is neither boolean nor integer.
    ValueError
        If shapes differ, a score is NaN or inf, the input is empty, no pixel is defective, no
        pixel is anomaly-free, ``fpr_limit`` is outside (0, 1], or 64-bit integer scores go
        beyond 2**53 (the returned thresholds could not be exact; :func:`au_pro` and
        :func:`pixel_roc_auc` take such scores).

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.metrics import pro_curve
    >>> maps = np.array([[[0.1, 0.9], [0.2, 0.4]]])
    >>> masks = np.array([[[0, 1], [0, 1]]])
    >>> fpr, pro, thr = pro_curve(maps, masks)
    >>> fpr.round(3).tolist(), pro.tolist()
    ([0.0, 0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0, 1.0])
    >>> thr.tolist()
    [inf, 0.9, 0.4, 0.2, 0.1]
    """
    fpr_limit = check_limit(fpr_limit)
    return _pro_curve(anomaly_maps, masks, fpr_limit=fpr_limit, structure=STRUCTURE_8)


def _pro_curve(anomaly_maps, masks, *, fpr_limit, structure):
    px = _prepare(anomaly_maps, masks, exact_thresholds=True)
    scan = _scan(px, with_hist=fpr_limit < 1.0)
    _require_both_classes(scan)
    pos, ids, sizes = _regions(px, scan.pos_counts, structure)
    lower, capacity = _cut(px, scan, _limit_k(fpr_limit, scan.n_neg))
    neg = _sorted_negatives(px, lower, capacity)
    order = np.argsort(pos, kind="stable")[::-1]
    pos_desc = np.ascontiguousarray(pos[order])
    weights = 1.0 / sizes[ids[order]].astype(np.float64)
    size = neg.size + pos.size
    thr = np.empty(size, dtype=px.dtype)
    count = np.empty(size, dtype=np.int64)
    pro = np.empty(size + 1, dtype=np.float64)
    limit_count = fpr_limit * scan.n_neg if fpr_limit < 1.0 else math.inf
    m = K.pro_curve_points(neg, pos_desc, weights, sizes.size, limit_count, thr, count, pro[1:])
    pro = pro[: m + 1]
    pro[0] = 0.0
    fpr = np.empty(m + 1, dtype=np.float64)
    fpr[0] = 0.0
    np.divide(count[:m], scan.n_neg, out=fpr[1:])
    thresholds = np.empty(m + 1, dtype=np.float64)
    thresholds[0] = np.inf
    thresholds[1:] = thr[:m]
    return fpr, pro, thresholds


def au_pro(anomaly_maps: Any, masks: Any, *, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to an FPR limit (MVTec AD definition).

    The area under the :func:`pro_curve` polyline (trapezoid rule, one point per distinct
    score, starting at ``(0, 0)``) from FPR 0 to ``fpr_limit``, with the curve interpolated
    linearly at the limit, divided by ``fpr_limit`` so that a perfect detector scores 1.
    Regions are 8-connected. The result agrees with the MVTec AD evaluation code to its float32
    precision, and with anomalib's AUPRO.

    Computed without sorting the anomaly-free pixels: only images with defects are labelled,
    the distinct defective scores are sorted, one linear pass counts the anomaly-free scores
    above and equal to each of them (a bucket table narrows each lookup), and each
    defective pixel then adds a closed-form share of the area (see ``docs/metrics.md``).

    Parameters
    ----------
    anomaly_maps : ndarray of shape (N, H, W) or list of (H, W) arrays
        Anomaly scores, any float or integer dtype, finite; lists may mix sizes. 64-bit
        integers beyond 2**53, which float64 would round, are replaced by their exact ranks.
    masks : ndarray of shape (N, H, W) or list of (H, W) arrays
        Ground truth, boolean or any integer dtype; non-zero means defective.
    fpr_limit : float, default 0.3
        Upper integration limit in (0, 1].

    Returns
    -------
    float
        AU-PRO in [0, 1].

    Raises
    ------
    TypeError
        If a map is not real-valued or a mask is neither boolean nor integer.
    ValueError
        If shapes differ, a score is NaN or inf, the input is empty, no pixel is defective
        (AU-PRO is undefined), no pixel is anomaly-free, or ``fpr_limit`` is outside (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.metrics import au_pro
    >>> rng = np.random.default_rng(0)
    >>> masks = np.zeros((4, 32, 32), dtype=bool)
    >>> masks[1, 5:9, 5:9] = True
    >>> maps = rng.random((4, 32, 32)) + 0.5 * masks
    >>> round(au_pro(maps, masks), 4)
    0.5723
    >>> round(au_pro(maps, masks, fpr_limit=1.0), 4)
    0.8438
    """
    fpr_limit = check_limit(fpr_limit)
    return _au_pro(anomaly_maps, masks, fpr_limit=fpr_limit, structure=STRUCTURE_8)


_COUNT_BUDGET = 1 << 28
"""The in-memory functions count float32 scores per distinct value while the counters take at
most this many bytes or one byte per pixel, whichever is more; scores spread so thinly that they
would need more (a few per 4096 consecutive float32 values) are ranked among the defective levels
instead."""


def _counted(px: _Pixels, structure: np.ndarray) -> PixelMetrics | None:
    """Float32 maps counted per distinct score by :class:`PixelMetrics` (one pass, no sort), or
    None when the counters would exceed the budget."""
    pm = PixelMetrics()
    pm._structure = structure
    n_pixels = sum(c[1].size for c in px.chunks)
    pm._max_subpages = max(_COUNT_BUDGET, n_pixels) // BK.SUB_SIZE
    n_bad = 0
    try:
        for _, bits, m, n_img, size, first in px.chunks:
            n_bad += pm._add_unchecked(bits, m, [(j * size, px.masks[first + j]) for j in range(n_img)])
        if n_bad == 0:
            pm._flush()
    except _OverBudget:
        n_bad = sum(BK.count_nonfinite(c[1]) for c in px.chunks)
        if n_bad == 0:
            return None
    if n_bad:
        raise InputValueError(f"anomaly_maps: expected finite values, got {n_bad} NaN or inf")
    return pm


def _au_pro(anomaly_maps, masks, *, fpr_limit, structure, method=None):
    """AU-PRO; ``method`` "levels" forces the level path on float32 maps too (for the tests)."""
    px = _prepare(anomaly_maps, masks)
    counted = _counted(px, structure) if px.dtype == np.float32 and method != "levels" else None
    if counted is not None:
        return counted.au_pro(fpr_limit=fpr_limit)
    scan = _scan(px)
    _require_both_classes(scan)
    pos, ids, sizes = _regions(px, scan.pos_counts, structure)
    levels, level_of = np.unique(pos, return_inverse=True)
    under, equal = _under_and_equal(*_rank_among_levels(px, levels))
    w_hi, w_lo = K.weight_limbs(sizes)
    s_hi, s_lo = K.level_weights(level_of.reshape(-1), ids, w_hi, w_lo, levels.size)
    greater = scan.n_neg - under - equal
    return au_pro_value(K.limbs_to_float(s_hi, s_lo), greater, equal, scan.n_neg, sizes.size, fpr_limit)


def _under_and_equal(below: np.ndarray, equal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anomaly-free pixels strictly below and equal to each level, from :func:`_rank_among_levels`."""
    under = np.cumsum(below[:-1]) + np.cumsum(np.r_[0, equal[:-1]])
    return under, equal


def pixel_roc_auc(anomaly_maps: Any, masks: Any) -> float:
    """Exact area under the pixel-level ROC curve (all pixels of all images pooled).

    The Mann-Whitney statistic: the probability that a defective pixel scores higher than an
    anomaly-free one, ties counting one half. Computed with exact integer counts and a single
    rounding; equal to ``sklearn.metrics.roc_auc_score`` on the flattened pixels. Only the
    distinct defective scores are sorted; the anomaly-free ones are counted in one linear pass.

    Parameters
    ----------
    anomaly_maps : ndarray of shape (N, H, W) or list of (H, W) arrays
        Anomaly scores, any float or integer dtype, finite. 64-bit integers beyond 2**53, which
        float64 would round, are replaced by their exact ranks.
    masks : ndarray of shape (N, H, W) or list of (H, W) arrays
        Ground truth, boolean or any integer dtype; non-zero means defective.

    Returns
    -------
    float
        Pixel AUROC in [0, 1].

    Raises
    ------
    TypeError
        If a map is not real-valued or a mask is neither boolean nor integer.
    ValueError
        If shapes differ, a score is NaN or inf, the input is empty, or the pixels are not of both
        classes.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.metrics import pixel_roc_auc
    >>> maps = np.array([[[0.1, 0.9], [0.4, 0.4]]])
    >>> masks = np.array([[[0, 1], [0, 1]]])
    >>> pixel_roc_auc(maps, masks)
    0.875
    """
    return _pixel_roc_auc(anomaly_maps, masks)


def _pixel_roc_auc(anomaly_maps, masks, method=None):
    """Pixel AUROC; ``method`` "levels" forces the level path on float32 maps too (for the tests)."""
    px = _prepare(anomaly_maps, masks)
    counted = _counted(px, STRUCTURE_8) if px.dtype == np.float32 and method != "levels" else None
    if counted is not None:
        return counted.pixel_roc_auc()
    scan = _scan(px)
    _require_both_classes(scan)
    n_pos = int(scan.pos_counts.sum())
    pos = np.empty(n_pos, dtype=px.dtype)
    end = 0
    for vals, _, m, _, _, _ in px.chunks:
        end = K.gather_positives(vals, m, pos, end)
    levels, pos_per_level = np.unique(pos, return_counts=True)
    under, equal = _under_and_equal(*_rank_among_levels(px, levels))
    return auroc_value(pos_per_level, under, equal, n_pos, scan.n_neg)
