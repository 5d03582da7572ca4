"""Numba kernels of :class:`ispad_core.metrics.PixelMetrics` (pixel metrics fed batch by batch).

Every kernel here assumes valid input (validated and converted by ``_batches.py``) and never raises.

Scores are float32. Each finite score has an order-preserving 32-bit key (``key(x) < key(y)``
exactly when ``x < y``; ``-0.0`` and ``+0.0`` share a key; no finite score has key 0).

The anomaly-free pixels are counted per key, exactly, in a two-level table: the key's top 16 bits
pick a *group* (``directory[top]``, allocated when first needed), the next 4 bits one of its 16
*subpages* (``groups[g, s]``), each a row of ``subpages`` holding a uint8 counter for each of 4096
consecutive keys. A counter that would reach 256 wraps to 0 and the key is written to an overflow
log (256 each time), so a counter costs one byte and memory follows the set of scores that
occurred, not the number of pixels. To keep the increments in cache, the keys are first collected
in a stage (:func:`stage`), then partitioned by their top 16 bits (:func:`partition`) and counted
one group at a time (:func:`count`).

The defective pixels, far fewer and needed with their regions' weights, go into an
open-addressing hash table keyed by the same key (:func:`add_positives`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ispad_core._shared.config import NJIT
from ispad_core.metrics._metrics_kernels import add_limbs

TOP_BITS = 16
N_TOP = 1 << TOP_BITS
SUB_BITS = 12
SUB_SIZE = 1 << SUB_BITS
SUBS = 1 << (TOP_BITS - SUB_BITS)
WRAP = 256
"""A uint8 counter holds 0 .. 255; every 256th count of a key goes to the overflow log."""
_SIGN = np.uint32(0x80000000)
_EXPONENT = np.uint32(0x7F800000)
_ALL = np.uint32(0xFFFFFFFF)
_LOW = np.uint64(N_TOP - 1)
_SHIFT = np.uint64(TOP_BITS)
_SUB_SHIFT = np.uint32(SUB_BITS)
_OFFSET = np.uint32(SUB_SIZE - 1)
_GOLDEN = np.uint64(2654435761)  # Knuth's multiplicative hash: a 32-bit key times it fits 64 bits
_M32 = np.uint64(0xFFFFFFFF)


@njit(**NJIT)
def _key(b):
    """Order-preserving key of a finite float32's bit pattern ``b`` (as uint64, below 2**32)."""
    if b == _SIGN:  # -0.0 is +0.0
        b = np.uint32(0)
    if b & _SIGN:
        return np.uint64(b ^ _ALL)
    return np.uint64(b | _SIGN)


@njit(**NJIT)
def count_nonfinite(bits):
    """Number of NaN and inf among float32 bit patterns."""
    n = 0
    for i in range(bits.size):
        if (bits[i] & _EXPONENT) == _EXPONENT:
            n += 1
    return n


@njit(**NJIT)
def stage(bits, masks, keys, fill, top_counts):
    """Append the key of every anomaly-free pixel to ``keys[fill:]`` and count it per group.

    ``keys`` must have room for ``bits.size`` more keys. Returns ``(n_nonfinite, new_fill)``; when
    ``n_nonfinite > 0`` the keys appended by this call are taken out of ``top_counts`` again, so
    that the caller only has to keep ``fill``.
    """
    n_bad = 0
    f = fill
    for i in range(bits.size):
        b = bits[i]
        if (b & _EXPONENT) == _EXPONENT:
            n_bad += 1
        elif masks[i] == 0:
            k = _key(b)
            keys[f] = k
            f += 1
            top_counts[k >> _SHIFT] += 1
    if n_bad:
        for j in range(fill, f):
            top_counts[np.uint64(keys[j]) >> _SHIFT] -= 1
        return n_bad, fill
    return 0, f


@njit(**NJIT)
def partition(keys, n, top_counts, offsets, low, need):
    """Group the ``n`` staged keys by their top 16 bits (stable): ``low`` receives the low 16 bits,
    group after group, and ``need[top]`` the bit of every subpage the group's keys fall in."""
    off = 0
    for p in range(N_TOP):
        offsets[p] = off
        off += top_counts[p]
    for j in range(n):
        k = np.uint64(keys[j])
        p = k >> _SHIFT
        v = np.uint32(k & _LOW)
        low[offsets[p]] = v
        offsets[p] += 1
        need[p] |= np.uint32(1) << (v >> _SUB_SHIFT)


@njit(**NJIT)
def assign_subpages(top_counts, directory, groups, need, n_sub):
    """Give every needed subpage that has none a row number from ``n_sub`` on; clear ``need``.

    Returns the new number of rows (the caller makes ``subpages`` that large before counting).
    """
    for p in range(N_TOP):
        if top_counts[p] == 0:
            continue
        g = directory[p]
        bits = need[p]
        for s in range(SUBS):
            if (bits >> np.uint32(s)) & np.uint32(1) and groups[g, s] < 0:
                groups[g, s] = n_sub
                n_sub += 1
        need[p] = 0
    return n_sub


@njit(**NJIT)
def count(low, top_counts, offsets, directory, groups, subpages, top_total, log, p0, j0):
    """Add the partitioned keys to their counters, one group at a time, from group ``p0`` (at key
    ``j0`` of ``low`` within it) on. ``offsets`` are those :func:`partition` leaves: the end of
    each group's keys.

    A counter at 255 wraps to 0 and the key goes to ``log``. Returns ``(n_log, p, j)``: ``p`` is
    -1 when done; otherwise the log is full and the call must be repeated from ``(p, j)`` once
    the caller has emptied the log.
    """
    n_log = 0
    for p in range(p0, N_TOP):
        c = top_counts[p]
        if c == 0:
            continue
        row = groups[directory[p]]
        end = offsets[p]
        j = j0 if p == p0 else end - c
        while j < end:
            v = low[j]
            s = row[v >> _SUB_SHIFT]
            o = v & _OFFSET
            x = subpages[s, o]
            if x == WRAP - 1:
                if n_log == log.size:
                    return n_log, p, j
                subpages[s, o] = 0
                log[n_log] = (np.uint32(p) << np.uint32(TOP_BITS)) | v
                n_log += 1
            else:
                subpages[s, o] = x + np.uint8(1)
            j += 1
        top_total[p] += c
    return n_log, -1, 0


@njit(**NJIT)
def _slot(keys, k, shift):
    """Slot of key ``k`` in the open-addressing table ``keys`` (0 marks a free slot)."""
    mask = keys.size - 1
    s = np.int64(((k * _GOLDEN) & _M32) >> shift)
    while keys[s] != 0 and keys[s] != k:
        s = (s + 1) & mask
    return s


@njit(**NJIT)
def add_positives(bits, labels, start, w_hi, w_lo, keys, counts, sum_hi, sum_lo, shift, used, max_used):
    """Count the pixels with ``labels[i] > 0`` per key and add their region's weight.

    Region ``r`` (label ``r``) weighs ``w_hi[r - 1] * 2**62 + w_lo[r - 1]`` in units of 2**-96
    (see :func:`ispad_core.metrics._metrics_kernels.weight_limbs`); the per-key sums are exact
    integers ``(sum_hi, sum_lo)``, so their value does not depend on the order of the
    pixels. Starts at pixel ``start``. Returns ``(stop, used)``: ``stop`` is -1 when done, or the
    pixel at which the table reached ``max_used`` keys (grow it and call again from there).
    """
    for i in range(start, bits.size):
        r = labels[i]
        if r == 0:
            continue
        k = _key(bits[i])
        s = _slot(keys, k, shift)
        if keys[s] == 0:
            if used >= max_used:
                return i, used
            keys[s] = k
            used += 1
        counts[s] += 1
        add_limbs(sum_hi, sum_lo, s, w_hi[r - 1], w_lo[r - 1])
    return -1, used


@njit(**NJIT)
def rehash(keys, counts, sum_hi, sum_lo, new_keys, new_counts, new_hi, new_lo, shift):
    """Move every entry of one hash table into a larger, empty one."""
    for s in range(keys.size):
        k = keys[s]
        if k != 0:
            t = _slot(new_keys, np.uint64(k), shift)
            new_keys[t] = k
            new_counts[t] = counts[s]
            new_hi[t] = sum_hi[s]
            new_lo[t] = sum_lo[s]


@njit(**NJIT)
def rank_keys(sorted_keys, directory, groups, subpages, top_total, below, equal):
    """Anomaly-free pixels with a key below (``below``) and equal to (``equal``) each sorted key.

    Counts from the counters and the group totals; the caller adds the overflow log's 256s of the
    keys in the same group (the totals already hold them).
    """
    j = 0
    n = sorted_keys.size
    before = 0  # anomaly-free pixels in the groups below group p
    for p in range(N_TOP):
        if j < n and (np.uint64(sorted_keys[j]) >> _SHIFT) == p:
            g = directory[p]
            run = before
            pos = 0  # offset within the group up to which ``run`` has counted
            while j < n and (np.uint64(sorted_keys[j]) >> _SHIFT) == p:
                o = np.int64(np.uint64(sorted_keys[j]) & _LOW)
                if g < 0:
                    below[j] = before
                    equal[j] = 0
                else:
                    while pos < o:
                        s = groups[g, pos >> SUB_BITS]
                        if s < 0:  # an empty subpage: skip it
                            pos = ((pos >> SUB_BITS) + 1) << SUB_BITS
                            continue
                        end = min(o, ((pos >> SUB_BITS) + 1) << SUB_BITS)
                        for q in range(pos & (SUB_SIZE - 1), ((end - 1) & (SUB_SIZE - 1)) + 1):
                            run += np.int64(subpages[s, q])
                        pos = end
                    below[j] = run
                    s = groups[g, o >> SUB_BITS]
                    equal[j] = 0 if s < 0 else np.int64(subpages[s, o & (SUB_SIZE - 1)])
                j += 1
        before += top_total[p]
