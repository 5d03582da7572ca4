"""Pixel AUROC and AU-PRO of maps that arrive batch by batch: one pass, exact, bounded memory.

:class:`PixelMetrics` keeps, for the anomaly-free pixels, an exact count per distinct float32
score (one-byte counters in blocks of 4096 consecutive scores, see ``_batches_kernels.py``), and
for the defective pixels a count and an exact sum of region weights per distinct score. That is
all that the pixel AUROC and AU-PRO depend on, so the results equal those of
:func:`~ispad_core.metrics.au_pro` and :func:`~ispad_core.metrics.pixel_roc_auc` on all the maps
at once, bit for bit, whatever the batches. The in-memory functions use the same counting for
float32 maps. See ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from ispad_core._shared.errors import InputError, InputTypeError, InputValueError
from ispad_core._shared.validation import check_array, check_same_shape
from ispad_core.metrics import _batches_kernels as B
from ispad_core.metrics import _metrics_kernels as K
from ispad_core.metrics._pixel_common import (
    STRUCTURE_8,
    au_pro_value,
    auroc_value,
    check_limit,
    mask_view,
    score_dtype,
)

__all__ = ["PixelMetrics", "au_pro_batches", "pixel_roc_auc_batches"]

_STAGE_KEYS = 1 << 22
"""Anomaly-free keys collected before they are counted (16 MiB, plus 8 MiB to partition them)."""
_LOG_KEYS = 1 << 16
"""Room for keys whose counter wrapped, between two merges into the overflow table."""
_FLOAT32_INT = 2**24
"""Integers up to this magnitude are exact in float32."""
_HASH_START = 1 << 10


class _OverBudget(Exception):
    """Counting would need more subpages than the budget allows (scores spread very thinly)."""


def _in_batch(exc: InputError, index: int) -> InputError:
    """The same error, its message's leading argument name followed by the batch index."""
    name, sep, rest = str(exc).partition(": ")
    text = f"{name} (batch {index}): {rest}" if sep else f"batch {index}: {name}"
    return type(exc)(text)


def _as_float32(a: np.ndarray, name: str) -> np.ndarray:
    """The scores as float32, refusing any that float32 would change (it would change the metrics)."""
    score_dtype(a.dtype, name)  # TypeError for non-real dtypes
    if a.dtype == np.float32:
        return a
    if a.dtype.kind == "f" and a.dtype.itemsize <= 4 or a.dtype.kind in "iu" and a.dtype.itemsize <= 2:
        return a.astype(np.float32)
    if a.dtype.kind in "iu":
        if a.size and (int(a.max()) > _FLOAT32_INT or int(a.min()) < -_FLOAT32_INT):
            raise InputValueError(
                f"{name}: integer scores beyond 2**24 are not exact in float32, which the batched form "
                "counts in; rescale them, or score all maps at once with au_pro / pixel_roc_auc"
            )
        return a.astype(np.float32)
    out = a.astype(np.float32)
    if not np.array_equal(out, a, equal_nan=True):
        raise InputValueError(
            f"{name}: {a.dtype} scores must be float32 values in the batched form (it keeps one exact "
            "count per distinct float32 score); these would be rounded: convert them with "
            ".astype(np.float32) first (close scores may then tie), or score all maps at once with "
            "au_pro / pixel_roc_auc"
        )
    return out


def _batch(anomaly_maps: Any, masks: Any) -> tuple[np.ndarray, np.ndarray, list]:
    """Validate one batch: ``(scores, masks, per_map)``, flat float32 scores, flat unsigned masks,
    and one ``(start, mask_2d)`` per map. The same checks and messages as the in-memory functions."""
    for x, name in ((anomaly_maps, "anomaly_maps"), (masks, "masks")):
        if x is None:
            raise InputTypeError(f"{name}: expected an (N, H, W) array or a list of (H, W) arrays, got None")
    if isinstance(anomaly_maps, np.ndarray) and isinstance(masks, np.ndarray):
        if anomaly_maps.ndim != 3:
            raise InputValueError(
                "anomaly_maps: expected an (N, H, W) array or a list of (H, W) arrays, "
                f"got an array of shape {anomaly_maps.shape}"
            )
        if anomaly_maps.dtype == object:
            raise InputTypeError("anomaly_maps: expected a numeric array, got dtype object")
        score_dtype(anomaly_maps.dtype, "anomaly_maps")
        check_same_shape(anomaly_maps, "anomaly_maps", masks, "masks")
        if masks.dtype == object:
            raise InputTypeError("masks: expected a boolean or integer dtype (non-zero = defective), got dtype object")
        mviews = mask_view(masks, "masks")
        scores = np.ascontiguousarray(_as_float32(anomaly_maps, "anomaly_maps")).reshape(-1)
        size = anomaly_maps.shape[1] * anomaly_maps.shape[2]
        return scores, mviews.reshape(-1), [(i * size, mviews[i]) for i in range(len(mviews))]
    for x, name in ((anomaly_maps, "anomaly_maps"), (masks, "masks")):
        if not isinstance(x, (Sequence, np.ndarray)) or isinstance(x, (str, bytes)):
            raise InputTypeError(
                f"{name}: expected an (N, H, W) array or a list of (H, W) arrays, got {type(x).__name__}"
            )
    if len(masks) != len(anomaly_maps):
        raise InputValueError(f"masks: expected {len(anomaly_maps)} masks like anomaly_maps, got {len(masks)}")
    scores, mflat, per_map, start = [], [], [], 0
    for i in range(len(anomaly_maps)):
        s = check_array(anomaly_maps[i], f"anomaly_maps[{i}]", ndim=2, allow_empty=True)
        m = check_array(masks[i], f"masks[{i}]", ndim=2, allow_empty=True)
        check_same_shape(s, f"anomaly_maps[{i}]", m, f"masks[{i}]")
        s = _as_float32(s, f"anomaly_maps[{i}]")
        m = mask_view(m, f"masks[{i}]")
        scores.append(s.reshape(-1))
        mflat.append(m.reshape(-1) if m.dtype == np.uint8 else (m != 0).reshape(-1).view(np.uint8))
        per_map.append((start, m))
        start += s.size
    if not scores:
        return np.empty(0, np.float32), np.empty(0, np.uint8), []
    return np.concatenate(scores), np.concatenate(mflat), per_map


class PixelMetrics:
    """Pixel AUROC and AU-PRO of anomaly maps given batch by batch, in one pass, exactly.

    Call :meth:`update` with each batch of maps and masks, then :meth:`au_pro` (any
    ``fpr_limit``, as often as wanted) and :meth:`pixel_roc_auc`; more batches can follow. The
    results equal :func:`~ispad_core.metrics.au_pro` and
    :func:`~ispad_core.metrics.pixel_roc_auc` of all the maps at once, to the last bit, however
    the maps are split into batches: both depend only on exact counts per distinct score and on
    exact sums of region weights (regions are labelled per map, 8-connected), reduced by the same
    code in the same order.

    Memory does not grow with the number of maps. The anomaly-free pixels take a one-byte
    counter per float32 value in each block of 4096 consecutive float32 values where a score
    occurred (a count past 255 goes to an overflow table), so at most 8 MiB per octave
    ``[2**k, 2**(k+1))`` that the scores reach: scores in [1e-3, 2] need at most 88 MiB however
    many maps there are. Scores spread very thinly (a few per block, e.g. from 1e-30 to 1e30) cost
    up to 4 KiB each until their octaves fill. The defective pixels take about 60 bytes per
    distinct score, and a working stage at most 25 MiB. :attr:`nbytes` says what it holds now.

    Scores must be float32 values (float16, 8- and 16-bit integers and float64 or wider integers
    that float32 holds exactly are converted): a count per distinct float64 score would need
    memory proportional to the number of pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.metrics import PixelMetrics, au_pro
    >>> rng = np.random.default_rng(0)
    >>> masks = np.zeros((6, 32, 32), dtype=bool)
    >>> masks[1, 5:9, 5:9] = masks[4, 20:30, 3] = True
    >>> maps = (rng.random((6, 32, 32)) + 0.5 * masks).astype(np.float32)
    >>> pm = PixelMetrics()
    >>> for start in range(0, 6, 4):  # batches of 4 maps, as a data loader yields them
    ...     pm.update(maps[start : start + 4], masks[start : start + 4])
    >>> pm.au_pro() == au_pro(maps, masks)
    True
    >>> round(pm.au_pro(fpr_limit=0.3), 4), round(pm.pixel_roc_auc(), 4)
    (0.7172, 0.8855)
    """

    def __init__(self) -> None:
        self._directory = np.full(B.N_TOP, -1, np.int32)
        self._groups = np.full((0, B.SUBS), -1, np.int32)
        self._subpages = np.zeros((0, B.SUB_SIZE), np.uint8)
        self._n_groups = 0
        self._n_sub = 0
        self._top_total = np.zeros(B.N_TOP, np.int64)
        self._top_counts = np.zeros(B.N_TOP, np.int64)  # staged keys per group
        self._offsets = np.zeros(B.N_TOP, np.int64)
        self._need = np.zeros(B.N_TOP, np.uint32)
        self._overflow_keys = np.empty(0, np.uint32)  # sorted; each adds WRAP times its count
        self._overflow_counts = np.empty(0, np.int64)
        self._stage = np.empty(0, np.uint32)
        self._low = np.empty(0, np.uint16)
        self._log = np.empty(0, np.uint32)
        self._fill = 0
        self._new_hash(_HASH_START)
        self._n_pos_keys = 0
        self._n_batches = 0
        self._n_maps = 0
        self._n_neg = 0
        self._n_pos = 0
        self._n_regions = 0
        self._structure = STRUCTURE_8  # (4-connectivity only to document the choice)
        self._max_subpages = None  # a budget, for the in-memory functions (see _OverBudget)

    # ----------------------------------------------------------------------- state

    @property
    def n_batches(self) -> int:
        """Batches added so far."""
        return self._n_batches

    @property
    def n_maps(self) -> int:
        """Maps added so far."""
        return self._n_maps

    @property
    def n_anomaly_free(self) -> int:
        """Anomaly-free pixels added so far."""
        return self._n_neg

    @property
    def n_defective(self) -> int:
        """Defective pixels added so far."""
        return self._n_pos

    @property
    def n_regions(self) -> int:
        """Ground-truth regions (8-connected, per map) added so far."""
        return self._n_regions

    @property
    def nbytes(self) -> int:
        """Bytes held: the counters of the anomaly-free pixels, the defective pixels' table, the
        working stage and the fixed tables."""
        arrays = (
            self._directory, self._groups, self._subpages, self._top_total, self._top_counts, self._offsets,
            self._need, self._overflow_keys, self._overflow_counts, self._stage, self._low, self._log,
            self._keys, self._counts, self._sum_hi, self._sum_lo,
        )
        return sum(a.nbytes for a in arrays)

    def __repr__(self) -> str:
        return (
            f"PixelMetrics(n_maps={self._n_maps}, n_anomaly_free={self._n_neg}, n_defective={self._n_pos}, "
            f"n_regions={self._n_regions}, nbytes={self.nbytes})"
        )

    # ----------------------------------------------------------------------- adding batches

    def update(self, anomaly_maps: Any, masks: Any) -> None:
        """Add one batch of maps and their masks.

        Parameters
        ----------
        anomaly_maps : ndarray of shape (N, H, W) or list of (H, W) arrays
            Anomaly scores, finite, float32 (or a dtype whose values float32 holds exactly: float16,
            8- and 16-bit integers, float64 or wider integers holding float32 values). Lists may
            mix sizes; N may be 0.
        masks : ndarray of shape (N, H, W) or list of (H, W) arrays
            Ground truth of the same shapes, boolean or any integer dtype; non-zero is defective.

        Raises
        ------
        TypeError
            If a map is not real-valued or a mask is neither boolean nor integer.
        ValueError
            If shapes differ, a score is NaN or inf, or scores are not float32 values. The message
            names the batch (counting from 0). A batch that fails leaves the counts as they were.
        """
        index = self._n_batches
        try:
            scores, mflat, per_map = _batch(anomaly_maps, masks)
            bits = scores.view(np.uint32)
            if bits.size > self._stage.size - self._fill:
                self._flush()
                self._grow_stage(bits.size)
            if bits.size <= self._stage.size - self._fill:  # check and stage in one pass
                n_bad, fill = B.stage(bits, mflat, self._stage, self._fill, self._top_counts)
                self._raise_nonfinite(n_bad)
                n_neg, self._fill = fill - self._fill, fill
            else:  # larger than the stage: check every score first, then stage piece by piece
                self._raise_nonfinite(B.count_nonfinite(bits))
                n_neg = self._stage_all(bits, mflat)[1]
        except InputError as exc:
            raise _in_batch(exc, index) from None
        self._add_counted(bits.size, n_neg, bits, per_map)

    def _add_counted(self, n_pixels: int, n_neg: int, bits: np.ndarray, per_map: list) -> None:
        """Book a staged batch: its counts, and its defective pixels with their regions."""
        self._n_neg += n_neg
        self._n_pos += n_pixels - n_neg
        self._add_defective(bits, per_map)
        self._n_maps += len(per_map)
        self._n_batches += 1

    def _add_unchecked(self, bits: np.ndarray, mflat: np.ndarray, per_map: list) -> int:
        """Add maps without a separate check pass; return how many scores are NaN or inf (if
        any are, the counts are wrong and the object must be dropped: for one-shot use)."""
        n_bad, n_neg = self._stage_all(bits, mflat)
        if n_bad == 0:
            self._add_counted(bits.size, n_neg, bits, per_map)
        return n_bad

    @staticmethod
    def _raise_nonfinite(n_bad: int) -> None:
        if n_bad:
            raise InputValueError(f"anomaly_maps: expected finite values, got {n_bad} NaN or inf")

    def _grow_stage(self, n: int) -> None:
        size = min(_STAGE_KEYS, 1 << max(16, (n - 1).bit_length()))
        if size > self._stage.size:
            self._stage = np.empty(size, np.uint32)
            self._low = np.empty(size, np.uint16)
            self._log = np.empty(min(size, _LOG_KEYS), np.uint32)

    def _stage_all(self, bits: np.ndarray, mflat: np.ndarray) -> tuple[int, int]:
        """Stage scores of any number, flushing as the stage fills; ``(n_nonfinite, n_anomaly_free)``
        (pieces with NaN or inf are left out)."""
        n_bad = n_neg = 0
        self._grow_stage(bits.size)
        for start in range(0, bits.size, self._stage.size):
            stop = min(start + self._stage.size, bits.size)
            if stop - start > self._stage.size - self._fill:
                self._flush()
            bad, fill = B.stage(bits[start:stop], mflat[start:stop], self._stage, self._fill, self._top_counts)
            n_bad += bad
            n_neg += fill - self._fill
            self._fill = fill
        return n_bad, n_neg

    def _flush(self) -> None:
        """Count the staged keys: partition them by group, make the subpages they need, count."""
        if self._fill == 0:
            return
        B.partition(self._stage, self._fill, self._top_counts, self._offsets, self._low, self._need)
        new = np.flatnonzero((self._top_counts > 0) & (self._directory < 0))
        if new.size:
            self._directory[new] = np.arange(self._n_groups, self._n_groups + new.size, dtype=np.int32)
            self._n_groups += new.size
            self._groups = _grown(self._groups, self._n_groups, -1)
        self._n_sub = B.assign_subpages(self._top_counts, self._directory, self._groups, self._need, self._n_sub)
        if self._max_subpages is not None and self._n_sub > self._max_subpages:
            raise _OverBudget
        self._subpages = _grown(self._subpages, self._n_sub, 0)
        p, j = 0, 0
        while p >= 0:
            n_log, p, j = B.count(
                self._low, self._top_counts, self._offsets, self._directory, self._groups, self._subpages,
                self._top_total, self._log, p, j,
            )
            self._add_to_overflow(self._log[:n_log])
        self._top_counts[:] = 0
        self._fill = 0
        if self._stage.size < _STAGE_KEYS:  # a long stream: fewer, larger flushes
            self._grow_stage(2 * self._stage.size)

    def _add_to_overflow(self, logged: np.ndarray) -> None:
        """Merge keys whose counter wrapped (each one stands for WRAP counts) into the overflow."""
        if logged.size == 0:
            return
        keys, counts = np.unique(np.r_[self._overflow_keys, logged], return_counts=True)
        old = np.zeros(keys.size, np.int64)
        old[np.searchsorted(keys, self._overflow_keys)] = self._overflow_counts - 1
        self._overflow_keys, self._overflow_counts = keys, counts + old

    def _new_hash(self, capacity: int) -> None:
        self._keys = np.zeros(capacity, np.uint32)
        self._counts = np.zeros(capacity, np.int64)
        self._sum_hi = np.zeros(capacity, np.uint64)
        self._sum_lo = np.zeros(capacity, np.uint64)

    def _hash_shift(self) -> np.uint64:
        return np.uint64(32 - (self._keys.size.bit_length() - 1))

    def _grow_hash(self) -> None:
        old = (self._keys, self._counts, self._sum_hi, self._sum_lo)
        self._new_hash(2 * self._keys.size)
        B.rehash(*old, self._keys, self._counts, self._sum_hi, self._sum_lo, self._hash_shift())

    def _add_defective(self, bits: np.ndarray, per_map: list) -> None:
        """Label each map's regions and add its defective pixels to the per-score table."""
        for start, mask in per_map:
            if not mask.any():
                continue
            labels, n = ndimage.label(mask, structure=self._structure)
            flat = labels.reshape(-1)
            sizes = np.bincount(flat, minlength=n + 1)[1:].astype(np.int64)
            w_hi, w_lo = K.weight_limbs(sizes)
            pix = bits[start : start + flat.size]
            at = 0
            while at >= 0:
                at, self._n_pos_keys = B.add_positives(
                    pix, flat, at, w_hi, w_lo, self._keys, self._counts, self._sum_hi, self._sum_lo,
                    self._hash_shift(), self._n_pos_keys, self._keys.size // 2,
                )
                if at >= 0:
                    self._grow_hash()
            self._n_regions += n

    # ----------------------------------------------------------------------- results

    def _levels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per distinct defective score (ascending): defective count, weight sum, anomaly-free
        pixels below and equal."""
        if self._n_maps == 0:
            raise InputValueError("anomaly_maps: expected at least one map in the batches, got none")
        if self._n_pos == 0:
            raise InputValueError("masks: expected at least one defective (non-zero) pixel, got none")
        if self._n_neg == 0:
            raise InputValueError("masks: expected at least one anomaly-free (zero) pixel, got none")
        self._flush()
        used = np.flatnonzero(self._keys)
        order = used[np.argsort(self._keys[used])]
        keys = self._keys[order]
        below = np.empty(keys.size, np.int64)
        equal = np.empty(keys.size, np.int64)
        B.rank_keys(keys, self._directory, self._groups, self._subpages, self._top_total, below, equal)
        self._add_overflow(keys, below, equal)
        weights = K.limbs_to_float(self._sum_hi[order], self._sum_lo[order])
        return self._counts[order], weights, below, equal

    def _add_overflow(self, keys: np.ndarray, below: np.ndarray, equal: np.ndarray) -> None:
        """Add the counts held in the overflow log to the counts read from the counters."""
        if self._overflow_keys.size == 0:
            return
        cum = np.r_[0, np.cumsum(self._overflow_counts * B.WRAP)]
        group_start = (keys >> np.uint32(B.TOP_BITS)) << np.uint32(B.TOP_BITS)
        first = np.searchsorted(self._overflow_keys, group_start)
        at = np.searchsorted(self._overflow_keys, keys)
        after = np.searchsorted(self._overflow_keys, keys, side="right")
        below += cum[at] - cum[first]  # (the group totals before this group hold them already)
        equal += cum[after] - cum[at]

    def au_pro(self, *, fpr_limit: float = 0.3) -> float:
        """AU-PRO of all maps added so far (see :func:`~ispad_core.metrics.au_pro`).

        Parameters
        ----------
        fpr_limit : float, default 0.3
            Upper integration limit in (0, 1].

        Returns
        -------
        float
            AU-PRO in [0, 1], equal to ``au_pro`` of all the maps at once.

        Raises
        ------
        ValueError
            If no map was added, no pixel is defective or none is anomaly-free, or ``fpr_limit``
            is outside (0, 1].
        """
        fpr_limit = check_limit(fpr_limit)
        _, weights, below, equal = self._levels()
        greater = self._n_neg - below - equal
        return au_pro_value(weights, greater, equal, self._n_neg, self._n_regions, fpr_limit)

    def pixel_roc_auc(self) -> float:
        """Pixel AUROC of all maps added so far (see :func:`~ispad_core.metrics.pixel_roc_auc`).

        Returns
        -------
        float
            The exact Mann-Whitney statistic in [0, 1], equal to ``pixel_roc_auc`` of all the
            maps at once.

        Raises
        ------
        ValueError
            If no map was added, or no pixel is defective or none is anomaly-free.
        """
        counts, _, below, equal = self._levels()
        return auroc_value(counts, below, equal, self._n_pos, self._n_neg)


def _grown(a: np.ndarray, rows: int, fill: int) -> np.ndarray:
    """``a`` with at least ``rows`` rows (growing by a quarter at least; new rows set to ``fill``)."""
    if rows <= a.shape[0]:
        return a
    shape = (max(rows, a.shape[0] + a.shape[0] // 4, 16), a.shape[1])
    out = np.zeros(shape, a.dtype) if fill == 0 else np.full(shape, fill, a.dtype)
    out[: a.shape[0]] = a
    return out


def _fed(batches: Iterable, name: str = "batches") -> PixelMetrics:
    """A :class:`PixelMetrics` fed with every ``(anomaly_maps, masks)`` pair of ``batches``."""
    if batches is None or isinstance(batches, (str, bytes, np.ndarray)) or not isinstance(batches, Iterable):
        raise InputTypeError(
            f"{name}: expected an iterable of (anomaly_maps, masks) pairs, got {type(batches).__name__}"
        )
    pm = PixelMetrics()
    for i, pair in enumerate(batches):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            got = type(pair).__name__
            if isinstance(pair, (tuple, list)):
                got = f"a {got} of length {len(pair)}"
            raise InputTypeError(f"{name}[{i}]: expected a pair (anomaly_maps, masks), got {got}")
        pm.update(pair[0], pair[1])
    return pm


def au_pro_batches(batches: Iterable, *, fpr_limit: float = 0.3) -> float:
    """AU-PRO of maps that arrive in batches: one pass, exact, memory independent of their number.

    The same value as :func:`~ispad_core.metrics.au_pro` on all the maps at once, to the last
    bit, for maps that do not fit in memory together. Use :class:`PixelMetrics` to get the pixel
    AUROC or several limits from the same pass.

    Parameters
    ----------
    batches : iterable of (anomaly_maps, masks) pairs
        Each pair as :meth:`PixelMetrics.update` takes it: ``(N, H, W)`` arrays or lists of
        ``(H, W)`` arrays, float32 scores and boolean or integer masks. Read once (a generator
        works).
    fpr_limit : float, default 0.3
        Upper integration limit in (0, 1].

    Returns
    -------
    float
        AU-PRO in [0, 1].

    Raises
    ------
    TypeError
        If ``batches`` is not an iterable of pairs, a map is not real-valued or a mask is neither
        boolean nor integer.
    ValueError
        If a batch's shapes differ, a score is NaN or inf or not a float32 value (the message
        names the batch), no map is given, no pixel is defective or none is anomaly-free, or
        ``fpr_limit`` is outside (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.metrics import au_pro, au_pro_batches
    >>> rng = np.random.default_rng(0)
    >>> masks = np.zeros((8, 32, 32), dtype=bool)
    >>> masks[3, 10:14, 5:9] = True
    >>> maps = (rng.random((8, 32, 32)) + 0.5 * masks).astype(np.float32)
    >>> batches = ((maps[i : i + 3], masks[i : i + 3]) for i in range(0, 8, 3))
    >>> au_pro_batches(batches) == au_pro(maps, masks)
    True
    """
    fpr_limit = check_limit(fpr_limit)
    return _fed(batches).au_pro(fpr_limit=fpr_limit)


def pixel_roc_auc_batches(batches: Iterable) -> float:
    """Pixel AUROC of maps that arrive in batches: one pass, exact, memory independent of their number.

    The same value as :func:`~ispad_core.metrics.pixel_roc_auc` on all the maps at once (exact
    integer counts, one rounding).

    Parameters
    ----------
    batches : iterable of (anomaly_maps, masks) pairs
        As for :func:`au_pro_batches`.

    Returns
    -------
    float
        Pixel AUROC in [0, 1].

    Raises
    ------
    TypeError, ValueError
        As for :func:`au_pro_batches`.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.metrics import pixel_roc_auc_batches
    >>> maps = np.array([[[0.1, 0.9], [0.4, 0.4]], [[0.2, 0.3], [0.5, 0.0]]], dtype=np.float32)
    >>> masks = np.array([[[0, 1], [0, 1]], [[0, 0], [1, 0]]])
    >>> pixel_roc_auc_batches([(maps[:1], masks[:1]), (maps[1:], masks[1:])])
    0.9666666666666667
    """
    return _fed(batches).pixel_roc_auc()
