"""Numba kernels behind :mod:`ispad_core.tiling`.

Every kernel assumes valid, already converted input (the public wrappers check it) and never
raises. Images are handled as ``(H, W, C)`` (a grey image is viewed with ``C = 1``), tiles as
``(n, h, w, C)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ispad_core._shared.config import NJIT, NJIT_PARALLEL

# ----------------------------------------------------------------------------- extraction


@njit(**NJIT_PARALLEL)
def gather_windows(image, rows, cols, channels, out):  # pragma: no cover - compiled
    """Copy the windows with top-left corners ``(rows[k], cols[k])`` of ``image`` (H, W * C,
    C-contiguous rows) into ``out`` (n, h, w * C). Assumes every window lies inside the image."""
    n, h, run = out.shape
    for k in prange(n):
        r0 = rows[k]
        base = cols[k] * channels
        for i in range(h):
            # slice first: indexing src[base + j] defeats LLVM's vectorizer (20x slower)
            src = image[r0 + i, base : base + run]
            dst = out[k, i]
            for j in range(run):
                dst[j] = src[j]


# ----------------------------------------------------------------------------- ROI


@njit(**NJIT)
def summed_area_table(roi, sat):  # pragma: no cover - compiled
    """Fill ``sat`` (H + 1, W + 1) with the integral image of the 0/1 array ``roi`` (H, W):
    ``sat[i, j]`` is the number of ROI pixels in ``roi[:i, :j]``."""
    h, w = roi.shape
    for j in range(w + 1):
        sat[0, j] = 0
    for i in range(h):
        sat[i + 1, 0] = 0
        acc = 0
        for j in range(w):
            acc += roi[i, j] != 0
            sat[i + 1, j + 1] = sat[i, j + 1] + acc


@njit(**NJIT)
def valid_origins(sat, h, w, need, valid):  # pragma: no cover - compiled
    """Mark in ``valid`` (H - h + 1, W - w + 1) the origins whose h x w window holds at least
    ``need`` ROI pixels, reading window sums from the integral image ``sat``; returns the
    number of valid origins."""
    nr, nc = valid.shape
    total = 0
    for r in range(nr):
        # slices, not sat[r + h, c + w]: lets LLVM vectorize the row (several times faster)
        a = sat[r + h, w : w + nc]
        b = sat[r, w : w + nc]
        c = sat[r + h, 0:nc]
        d = sat[r, 0:nc]
        v = valid[r]
        count = 0
        for j in range(nc):
            ok = (a[j] - b[j]) - (c[j] - d[j]) >= need
            v[j] = ok
            count += ok
        total += count
    return total


@njit(**NJIT)
def pick_origins(valid, ranks, out):  # pragma: no cover - compiled
    """Write to ``out`` (n, 2) the (row, col) of the ``ranks[k]``-th True entry of ``valid`` in
    row-major order; ``ranks`` must be sorted ascending (the caller restores the draw order)."""
    nr, nc = valid.shape
    k = 0
    seen = 0
    n = ranks.shape[0]
    for r in range(nr):
        if k >= n:
            break
        for c in range(nc):
            if valid[r, c]:
                while k < n and ranks[k] == seen:
                    out[k, 0] = r
                    out[k, 1] = c
                    k += 1
                seen += 1
                if k >= n:
                    break


# ----------------------------------------------------------------------------- stitching


@njit(**NJIT)
def _first_active(rows, order, h, r):  # pragma: no cover - compiled
    """Index into ``order`` of the first tile whose window (height ``h``) reaches row ``r``."""
    lo = 0
    hi = order.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if rows[order[mid]] + h <= r:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(**NJIT)
def _active_run(rows, order, h, r, lo):  # pragma: no cover - compiled
    """Advance ``lo`` past the tiles that end above row ``r`` and return ``(lo, hi)``: the tiles
    ``order[lo:hi]`` are exactly those covering row ``r`` (all have height ``h``)."""
    n = order.shape[0]
    while lo < n and rows[order[lo]] + h <= r:
        lo += 1
    hi = lo
    while hi < n and rows[order[hi]] <= r:
        hi += 1
    return lo, hi


@njit(**NJIT)
def _coverage(cols, order, lo, hi, w, channels, cnt):  # pragma: no cover - compiled
    """Number of tiles ``order[lo:hi]`` (width ``w``) covering each element of an output row
    (``W * channels`` elements), as float64 in ``cnt``."""
    cnt[:] = 0.0
    run = w * channels
    for k in range(lo, hi):
        base = cols[order[k]] * channels
        seg = cnt[base : base + run]
        for j in range(run):
            seg[j] += 1.0


@njit(**NJIT)
def _block_tiles(rows, order, h, r_start, r_stop):  # pragma: no cover - compiled
    """``(first, last)``: the tiles ``order[first:last]`` are exactly those (height ``h``) that
    overlap the output rows ``r_start <= r < r_stop``."""
    n = order.shape[0]
    first = _first_active(rows, order, h, r_start)
    last = first
    while last < n and rows[order[last]] < r_stop:
        last += 1
    return first, last


@njit(**NJIT_PARALLEL)
def stitch_mean(tiles, rows, cols, order, w, channels, reciprocal, block, out):  # pragma: no cover
    """Mean-stitch ``tiles`` (n, h, w * C) with origins ``(rows, cols)`` into ``out`` (H, W * C).

    Parallel over blocks of ``block`` output rows; a block writes only its own rows. ``order``
    sorts the tiles by origin row (stable), so the tiles overlapping a block are one contiguous
    run. A block sums them into a private float64 buffer (block, W * C), tile by tile in
    ``order`` and, within a tile, row by row: each tile's rows in the block are read as one
    contiguous stretch of memory (reading one row of every covering tile per output row instead
    was 1.4x slower: many short streams). Every pixel therefore adds its covering tiles in
    ``order``, whatever the block size or the number of threads. Then each row is divided by its
    coverage count, which is recomputed only when the set of tiles covering the row changes. With
    ``reciprocal`` the sums are multiplied by the reciprocal count instead of divided (several
    times faster; within one ulp of float64, so exact after rounding to a float32 ``out``).
    Uncovered pixels are 0.
    """
    H, WC = out.shape
    h = tiles.shape[1]
    run = w * channels
    nblocks = (H + block - 1) // block
    for b in prange(nblocks):
        r_start = b * block
        r_stop = min(H, r_start + block)
        acc = np.zeros((r_stop - r_start, WC), dtype=np.float64)
        cnt = np.empty(WC, dtype=np.float64)
        first, last = _block_tiles(rows, order, h, r_start, r_stop)
        for k in range(first, last):
            t = order[k]
            r0 = rows[t]
            base = cols[t] * channels
            for r in range(max(r_start, r0), min(r_stop, r0 + h)):
                src = tiles[t, r - r0]
                seg = acc[r - r_start, base : base + run]
                for j in range(run):
                    seg[j] += src[j]
        lo = first
        prev_lo = -1
        prev_hi = -1
        for r in range(r_start, r_stop):
            lo, hi = _active_run(rows, order, h, r, lo)
            if lo != prev_lo or hi != prev_hi:
                _coverage(cols, order, lo, hi, w, channels, cnt)
                for j in range(WC):
                    cnt[j] = 1.0 / max(cnt[j], 1.0) if reciprocal else max(cnt[j], 1.0)
                prev_lo = lo
                prev_hi = hi
            a = acc[r - r_start]
            dst = out[r]
            if reciprocal:
                for j in range(WC):
                    dst[j] = a[j] * cnt[j]
            else:
                for j in range(WC):
                    dst[j] = a[j] / cnt[j]


@njit(**NJIT_PARALLEL)
def stitch_max(tiles, rows, cols, order, w, channels, lowest, block, out):  # pragma: no cover
    """Max-stitch ``tiles`` (n, h, w * C) into ``out`` (H, W * C), by blocks of rows and tile by
    tile as :func:`stitch_mean` (the running maximum lives in ``out`` itself). The running
    maximum starts at ``lowest`` (NaN for floats, the dtype's minimum for integers) and follows
    ``numpy.fmax`` (a NaN value is ignored; a pixel stays NaN only if every window gives it NaN);
    uncovered pixels are 0."""
    H, WC = out.shape
    h = tiles.shape[1]
    run = w * channels
    nblocks = (H + block - 1) // block
    for b in prange(nblocks):
        r_start = b * block
        r_stop = min(H, r_start + block)
        cnt = np.empty(WC, dtype=np.float64)
        for r in range(r_start, r_stop):
            dst = out[r]
            for j in range(WC):
                dst[j] = lowest
        first, last = _block_tiles(rows, order, h, r_start, r_stop)
        for k in range(first, last):
            t = order[k]
            r0 = rows[t]
            base = cols[t] * channels
            for r in range(max(r_start, r0), min(r_stop, r0 + h)):
                src = tiles[t, r - r0]
                seg = out[r, base : base + run]
                for j in range(run):
                    v = src[j]
                    m = seg[j]
                    if v > m or m != m:  # numpy.fmax: NaN only where every value is NaN
                        seg[j] = v
        lo = first
        prev_lo = -1
        prev_hi = -1
        for r in range(r_start, r_stop):
            lo, hi = _active_run(rows, order, h, r, lo)
            if lo != prev_lo or hi != prev_hi:
                _coverage(cols, order, lo, hi, w, channels, cnt)
                prev_lo = lo
                prev_hi = hi
            dst = out[r]
            for j in range(WC):
                if cnt[j] == 0.0:
                    dst[j] = 0


@njit(**NJIT_PARALLEL)
def stitch_scores(scores, rows, cols, order, h, w, reduce_max, lowest, block, out):  # pragma: no cover
    """Stitch per-tile scalar ``scores`` (n,): each fills its h x w window of ``out`` (H, W);
    overlapping windows combine by mean (float64 sums in ``order``) or maximum, as in
    :func:`stitch_mean`. Uncovered pixels are 0."""
    H, W = out.shape
    nblocks = (H + block - 1) // block
    for b in prange(nblocks):
        r_start = b * block
        r_stop = min(H, r_start + block)
        acc = np.empty(W, dtype=np.float64)
        best = np.empty(W, dtype=out.dtype)
        cnt = np.empty(W, dtype=np.float64)
        lo = _first_active(rows, order, h, r_start)
        prev_lo = -1
        prev_hi = -1
        for r in range(r_start, r_stop):
            lo, hi = _active_run(rows, order, h, r, lo)
            if lo == prev_lo and hi == prev_hi:
                # same windows as the previous row: same values
                for j in range(W):
                    out[r, j] = out[r - 1, j]
                continue
            prev_lo = lo
            prev_hi = hi
            _coverage(cols, order, lo, hi, w, 1, cnt)
            acc[:] = 0.0
            best[:] = lowest
            for k in range(lo, hi):
                t = order[k]
                v = scores[t]
                c0 = cols[t]
                for j in range(c0, c0 + w):
                    if reduce_max:
                        m = best[j]
                        if v > m or m != m:  # numpy.fmax, as in stitch_max
                            best[j] = v
                    else:
                        acc[j] += v
            for j in range(W):
                if cnt[j] == 0.0:
                    out[r, j] = 0
                elif reduce_max:
                    out[r, j] = best[j]
                else:
                    out[r, j] = acc[j] / cnt[j]
