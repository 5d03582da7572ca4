"""The balanced synthetic stream: the paper's supervised training data, made from fault-free images.

Each item of a stream of ``n`` is one ``size x size`` patch drawn at a random position inside the
region of interest of one of the fault-free images, augmented with the paper's table-8 transforms
(:mod:`ispad_core.augment`); exactly ``n // 2`` items (``floor(n * defect_fraction)`` in
general), at shuffled positions, then receive a synthetic defect (:mod:`ispad_core.synth`) and a
pixel mask. A defect that stays below its visibility threshold after the synthesizer's own
attempts is redrawn on another patch, so the stream stays exactly balanced.

The stream is written to a file by :func:`write_balanced_stream`, or drawn while training by
:class:`SyntheticStream`, whose item ``i`` equals item ``i`` of that file byte for byte and which
can switch to a fresh set of patches and defects every epoch (:meth:`SyntheticStream.set_epoch`).

Determinism. A stream is a function of its inputs and one integer seed. The seed gives the ``n``
per-item 32-bit seeds (:func:`ispad_core._shared.validation.item_seeds`) and the set of defective items;
item ``i`` depends only on the inputs, its seed and its flag. Its position, augmentation and
synthesis draws use seeds derived from the item seed by a fixed mixing function (splitmix64 of
``(seed << 32) | k``, keeping the upper 32 bits). Therefore any slice ``[start, stop)`` of the
stream can be generated alone, in any batch size, on any machine: that is what
``ispad synth --shard K/N`` and resuming an interrupted write rely on.
"""

from __future__ import annotations

import hashlib
import inspect
import numbers
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError, InvisibleDefectError
from ispad_core._shared.progress import progress
from ispad_core._shared.validation import as_generator, check_array, check_float, check_int, item_seeds, mix64
from ispad_core.io import StreamWriter, part_path

__all__ = [
    "StreamSummary",
    "SyntheticStream",
    "VisibilitySummary",
    "balanced_stream",
    "epoch_plan",
    "reduce_to_8_bits",
    "shard_range",
    "stream_plan",
    "visibility_summary",
    "write_balanced_stream",
]

_MASK64 = (1 << 64) - 1
_POS, _AUG, _SYN = 0, 1, 2
_KEYS_PER_DRAW = 3


# --------------------------------------------------------------------------- seeds


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """One SplitMix64 step on uint64: add the golden gamma, then the finaliser."""
    with np.errstate(over="ignore"):
        return mix64(x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))


def _derive64(seeds: np.ndarray, key: int) -> np.ndarray:
    """A 64-bit value per item seed for the draw ``key`` (distinct keys give independent draws)."""
    return _splitmix64((seeds.astype(np.uint64) << np.uint64(32)) | np.uint64(key))


def _derive32(seeds: np.ndarray, key: int) -> np.ndarray:
    return (_derive64(seeds, key) >> np.uint64(32)).astype(np.uint32)


def n_defective(n: int, defect_fraction: float) -> int:
    """Defective items of an ``n``-item stream: ``floor(n * defect_fraction)`` (``n // 2`` at 0.5)."""
    return int(np.floor(n * defect_fraction * (1 + 1e-12)))  # 0.29 * 100 is 28.999999999999996


def _check_fraction(defect_fraction: Any) -> float:
    return check_float(defect_fraction, "defect_fraction", minimum=0.0, maximum=1.0)


def stream_plan(n: int, *, rng: Any = None, defect_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per-item seeds and defect flags of an ``n``-item balanced stream.

    Parameters
    ----------
    n : int
        Stream length.
    rng : None, int or numpy.random.Generator
        The stream's seed.
    defect_fraction : float
        Fraction of defective items, in [0, 1]: ``floor(n * defect_fraction)`` items get a
        defect (default 0.5, the balanced stream; 0 gives a pure fault-free stream).

    Returns
    -------
    seeds : numpy.ndarray of uint32, shape (n,)
        Unique per-item seeds.
    defective : numpy.ndarray of bool, shape (n,)
        Exactly ``n // 2`` True (at the default fraction), at uniformly random positions. The
        seeds do not depend on ``defect_fraction``.

    Examples
    --------
    >>> seeds, defective = stream_plan(5, rng=0)
    >>> seeds.dtype, int(defective.sum())
    (dtype('uint32'), 2)
    """
    n = check_int(n, "n", minimum=0)
    defect_fraction = _check_fraction(defect_fraction)
    gen = as_generator(rng)
    seeds = item_seeds(gen, n)
    defective = np.zeros(n, bool)
    defective[gen.permutation(n)[: n_defective(n, defect_fraction)]] = True
    return seeds, defective


def epoch_plan(n: int, *, seed: int, epoch: int = 0, defect_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per-item seeds and defect flags of epoch ``epoch`` of a stream (see :class:`SyntheticStream`).

    Epoch 0 is the stream itself (:func:`stream_plan` with ``rng=seed``), the plan of the file that
    :func:`write_balanced_stream` writes with this seed; epoch ``e > 0`` is the plan of a stream
    seeded by ``numpy.random.SeedSequence([seed, e])``: fresh seeds and fresh defect positions, a
    pure function of ``(seed, epoch)``.

    Examples
    --------
    >>> s0, d0 = epoch_plan(6, seed=3)
    >>> s1, d1 = epoch_plan(6, seed=3, epoch=1)
    >>> bool((s0 == stream_plan(6, rng=3)[0]).all()), bool((s0 == s1).any()), int(d1.sum())
    (True, False, 3)
    """
    seed = check_int(seed, "seed", minimum=0, maximum=2**63 - 1)
    epoch = check_int(epoch, "epoch", minimum=0)
    rng = seed if epoch == 0 else np.random.default_rng(np.random.SeedSequence([seed, epoch]))
    return stream_plan(n, rng=rng, defect_fraction=defect_fraction)


def shard_range(n: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """Items ``[start, stop)`` of part ``k`` of ``parts`` (``shard=(k, parts)``, k from 0).

    The parts are contiguous, disjoint, cover ``[0, n)`` and differ in size by at most one.

    Parameters
    ----------
    n : int
        Stream length.
    shard : (int, int) or None
        ``(k, parts)`` with ``0 <= k < parts``; None means the whole stream.

    Returns
    -------
    (int, int)
        ``(start, stop)`` with ``start = k * n // parts`` and ``stop = (k + 1) * n // parts``.

    Raises
    ------
    TypeError
        If ``shard`` is not a pair of ints.
    ValueError
        If ``parts < 1`` or ``k`` is outside ``[0, parts)``.

    Examples
    --------
    >>> [shard_range(10, (k, 3)) for k in range(3)]
    [(0, 3), (3, 6), (6, 10)]
    """
    n = check_int(n, "n", minimum=0)
    if shard is None:
        return 0, n
    if not isinstance(shard, tuple) or len(shard) != 2:
        raise InputTypeError(f"shard: expected a (k, parts) pair, got {shard!r}")
    parts = check_int(shard[1], "shard parts", minimum=1)
    k = check_int(shard[0], "shard index", minimum=0, maximum=parts - 1)
    return k * n // parts, (k + 1) * n // parts


# --------------------------------------------------------------------------- sources


@dataclass
class _Source:
    image: np.ndarray
    valid: np.ndarray | None  # (nr, nc) bool of window origins inside the ROI, None = all
    row_cum: np.ndarray | None  # cumulative valid origins per row
    count: int
    nc: int
    bits: int = 8  # of the image given; a 16-bit one is held reduced to 8 bits


def reduce_to_8_bits(image: np.ndarray) -> np.ndarray:
    """A uint16 image reduced to uint8 as ``round(v / 257)`` (the inverse of ``v * 257``).

    Examples
    --------
    >>> reduce_to_8_bits(np.array([0, 128, 257, 32896, 65535], np.uint16)).tolist()
    [0, 0, 1, 128, 255]
    """
    return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _prepare_sources(
    images: Any, rois: Any, size: int, min_roi_fraction: float, names: Sequence[str] | None = None
) -> list[_Source]:
    """Check the images and ROIs; errors name an image by ``names[j]`` (its file) when given."""
    if isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype != object:
        images = [images]
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence) or len(images) == 0:
        raise InputTypeError("images: expected an image array or a non-empty sequence of image arrays")
    if rois is None:
        rois = [None] * len(images)
    elif isinstance(rois, np.ndarray) and rois.ndim == 2:
        rois = [rois]
    if not isinstance(rois, Sequence) or len(rois) != len(images):
        raise InputValueError(f"rois: expected one ROI (or None) per image, {len(images)} in all")
    sources = []
    channels = None
    labels = [f"images[{j}]" for j in range(len(images))]
    if names is not None and len(names) == len(images):
        labels = [f"images[{j}] ({names[j]})" for j in range(len(images))]
    for j, (image, roi) in enumerate(zip(images, rois)):
        name = labels[j]
        image = check_array(image, name, ndim=(2, 3), dtypes=(np.uint8, np.uint16))
        bits = 8
        if image.dtype == np.uint16:
            image, bits = reduce_to_8_bits(image), 16
        if image.ndim == 3 and image.shape[2] not in (1, 3):
            raise InputValueError(f"{name}: expected (H, W) or (H, W, 3), got shape {image.shape}")
        ch = image.shape[2] if image.ndim == 3 else 0
        if channels is None:
            channels = ch
        elif ch != channels:
            raise InputValueError(f"{name}: has shape {image.shape}, but {labels[0]} has {'no' if not channels else channels} channel axis; expected all alike")
        h, w = image.shape[:2]
        if h < size or w < size:
            raise InputValueError(f"{name}: image of {h} x {w} pixels is smaller than the patch size {size}")
        nr, nc = h - size + 1, w - size + 1
        if roi is None:
            sources.append(_Source(np.ascontiguousarray(image), None, None, nr * nc, nc, bits))
            continue
        roi = check_array(roi, f"rois[{j}]", ndim=2, kinds="biu")
        if roi.shape != (h, w):
            raise InputValueError(f"rois[{j}]: expected shape {(h, w)} like {name}, got {roi.shape}")
        sat_dtype = np.int32 if h * w < 2**31 else np.int64  # summed-area table of the ROI
        sat = np.zeros((h + 1, w + 1), sat_dtype)
        np.cumsum(np.cumsum(roi != 0, axis=0, dtype=sat_dtype), axis=1, out=sat[1:, 1:])
        inside = sat[size:, size:] - sat[:-size, size:] - sat[size:, :-size] + sat[:-size, :-size]
        need = max(1, int(np.ceil(min_roi_fraction * size * size - 1e-9)))
        valid = inside >= need
        count = int(valid.sum())
        if count == 0:
            raise InputValueError(
                f"rois[{j}]: no {size} x {size} window has {min_roi_fraction:.0%} of its pixels inside "
                f"the region of interest ({int(sat[-1, -1])} ROI pixels in {h} x {w})"
            )
        sources.append(_Source(np.ascontiguousarray(image), valid, np.cumsum(valid.sum(axis=1)), count, nc, bits))
    return sources


def _positions(sources: list[_Source], seeds: np.ndarray, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Source index and (row, col) origin per item: uniform over all valid windows of all images."""
    counts = np.array([s.count for s in sources], np.uint64)
    cum = np.cumsum(counts)
    ranks = _derive64(seeds, key) % cum[-1]
    src = np.searchsorted(cum, ranks, side="right")
    local = (ranks - np.concatenate([[np.uint64(0)], cum[:-1]])[src]).astype(np.int64)
    origins = np.empty((seeds.shape[0], 2), np.int64)
    for i in range(seeds.shape[0]):
        s = sources[src[i]]
        r = int(local[i])
        if s.valid is None:
            origins[i] = divmod(r, s.nc)
        else:
            row = int(np.searchsorted(s.row_cum, r, side="right"))
            before = int(s.row_cum[row - 1]) if row else 0
            origins[i] = row, int(np.flatnonzero(s.valid[row])[r - before])
    return src.astype(np.int64), origins


def _extract(sources: list[_Source], src: np.ndarray, origins: np.ndarray, size: int) -> np.ndarray:
    first = sources[0].image
    out = np.empty((src.shape[0], size, size, *first.shape[2:]), np.uint8)
    for i in range(src.shape[0]):
        r, c = origins[i]
        out[i] = sources[src[i]].image[r : r + size, c : c + size]
    return out


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class _Batch:
    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    seeds: np.ndarray
    sources: np.ndarray
    origins: np.ndarray
    attempts: np.ndarray
    redrawn: int
    visibility: dict  # accepted (uint8), ssr, cnr, contrast (float64), each (B,); 0 for good items


#: The visibility figures stored per item (io's FIELDS of the same names).
VISIBILITY_FIELDS = ("accepted", "ssr", "cnr", "contrast")


@dataclass(frozen=True)
class _Draw:
    images: np.ndarray
    masks: np.ndarray
    accepted: np.ndarray
    attempts: np.ndarray
    ssr: np.ndarray
    cnr: np.ndarray
    contrast: np.ndarray
    sources: np.ndarray
    origins: np.ndarray


def _synthesize(patches: np.ndarray, params, seeds: np.ndarray, defective: np.ndarray):
    """The synthesizer on a batch of the stream, with both visibility measures of every item."""
    from ispad_core.synth import synthesize_batch

    res = synthesize_batch(patches, params, seeds=seeds, defective=defective, warn=False)
    return res.images, res.masks, res.accepted, res.attempts, res.ssr, res.cnr


def stream_kernels_uncached() -> list[str] | None:
    """The names of the kernels every batch of the stream runs that would compile on their first
    call (:func:`ispad_core._shared.jit_cache.uncached`), or None when that cannot be told."""
    from ispad_core import augment, synth
    from ispad_core._shared.jit_cache import uncached
    from ispad_core.stream._kernels import mask_contrast

    return uncached((*synth.batch_kernels(), *augment.batch_kernels(), mask_contrast))


def _mask_contrast(before: np.ndarray, after: np.ndarray, masks: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mean absolute grey-level change over the mask of each item in ``rows`` (0 elsewhere)."""
    from ispad_core.stream._kernels import mask_contrast

    n = before.shape[0]
    out = np.zeros(n)
    if rows.size:
        vals = np.empty(rows.size)
        flat = np.ascontiguousarray(masks.reshape(n, -1)).view(np.uint8)  # bool masks, as 0/1 bytes
        words = flat[:, : flat.shape[1] // 8 * 8].copy().view(np.uint64)
        mask_contrast(before.reshape(n, -1), after.reshape(n, -1), flat, words, rows.astype(np.int64), vals)
        out[rows] = vals
    return out


def _resolve_augment(augment: Any):
    if augment is None or (isinstance(augment, str) and augment == "none"):
        return None
    from ispad_core.augment import AUGMENT_PRESETS, AugmentParams

    if isinstance(augment, str):
        if augment not in AUGMENT_PRESETS:
            raise InputValueError(f"augment: expected one of {', '.join(map(repr, sorted(AUGMENT_PRESETS)))} or 'none', got {augment!r}")
        return AUGMENT_PRESETS[augment]
    if not isinstance(augment, AugmentParams):
        raise InputTypeError(f"augment: expected an AugmentParams, a preset name or None, got {type(augment).__name__}")
    return augment


def _resolve_preset(preset: Any):
    from ispad_core.synth import PRESETS

    if isinstance(preset, str):
        if preset not in PRESETS:
            raise InputValueError(f"preset: expected one of {', '.join(map(repr, sorted(PRESETS)))}, got {preset!r}")
        return PRESETS[preset]
    if not hasattr(preset, "to_dict"):
        raise InputTypeError(f"preset: expected a preset name or DefectParams/DefectMixture, got {type(preset).__name__}")
    return preset


class _Generator:
    """Makes items ``[a, b)`` of a planned stream; keeps the time spent per stage."""

    def __init__(self, sources, seeds, defective, *, size, params, augment, max_redraws, min_contrast=None):
        self.min_contrast = min_contrast
        self.sources = sources
        self.seeds = seeds
        self.defective = defective
        self.size = size
        self.params = params
        self.augment = augment
        self.max_redraws = max_redraws
        self.timings = {"extract": 0.0, "augment": 0.0, "synthesize": 0.0}

    def _draw(self, seeds: np.ndarray, defective: np.ndarray, attempt: int):
        from ispad_core.augment import augment_batch

        base = attempt * _KEYS_PER_DRAW
        t0 = time.perf_counter()
        src, origins = _positions(self.sources, seeds, base + _POS)
        patches = _extract(self.sources, src, origins, self.size)
        t1 = time.perf_counter()
        if self.augment is not None:
            patches = augment_batch(patches, self.augment, seeds=_derive32(seeds, base + _AUG))
        t2 = time.perf_counter()
        images, masks, accepted, attempts, ssr, cnr = _synthesize(
            patches, self.params, _derive32(seeds, base + _SYN), defective
        )
        contrast = _mask_contrast(patches, images, masks, np.flatnonzero(accepted))
        t3 = time.perf_counter()
        self.timings["extract"] += t1 - t0
        self.timings["augment"] += t2 - t1
        self.timings["synthesize"] += t3 - t2
        return _Draw(images, masks, accepted, attempts, ssr, cnr, contrast, src, origins)

    def _visible(self, d: _Draw) -> np.ndarray:
        """Which items of a draw carry a defect the stream accepts: the synthesizer's own test
        (``accepted``, non-empty mask) and, when set, the minimum contrast."""
        ok = d.accepted & d.masks.reshape(d.masks.shape[0], -1).any(axis=1)
        if self.min_contrast is not None:
            ok &= d.contrast >= self.min_contrast
        return ok

    def make(self, a: int, b: int) -> _Batch:
        return self.make_items(np.arange(a, b, dtype=np.int64))

    def make_items(self, index: np.ndarray) -> _Batch:
        """Items ``index`` (1-D int array, valid indices) of the planned stream, in that order."""
        seeds = self.seeds[index]
        defective = self.defective[index]
        res = self._draw(seeds, defective, 0)
        images, masks, src, origins = res.images, res.masks, res.sources, res.origins
        attempts = res.attempts.astype(np.int64)
        vis = {"accepted": res.accepted.astype(np.uint8), "ssr": res.ssr, "cnr": res.cnr, "contrast": res.contrast}
        todo = np.flatnonzero(defective & ~self._visible(res))
        redrawn = int(todo.size)
        attempt = 0
        while todo.size:
            attempt += 1
            if attempt > self.max_redraws:
                i = int(index[todo[0]])
                floor = "" if self.min_contrast is None else f" and the minimum contrast {self.min_contrast:g}"
                raise InvisibleDefectError(
                    f"item {i}: no visible defect after {self.max_redraws + 1} patches; the preset's "
                    f"visibility threshold{floor} is out of reach on these images (try another preset or images)"
                )
            again = self._draw(seeds[todo], np.ones(todo.size, bool), attempt)
            images[todo] = again.images
            masks[todo] = again.masks
            src[todo] = again.sources
            origins[todo] = again.origins
            attempts[todo] += again.attempts
            vis["accepted"][todo] = again.accepted
            for name in ("ssr", "cnr", "contrast"):
                vis[name][todo] = getattr(again, name)
            todo = todo[~self._visible(again)]
        return _Batch(
            images=images,
            masks=masks,
            labels=defective.astype(np.uint8),
            seeds=seeds,
            sources=src,
            origins=origins,
            attempts=attempts,
            redrawn=redrawn,
            visibility=vis,
        )


def _check_common(n, size, batch_size, min_roi_fraction, max_redraws):
    n = check_int(n, "n", minimum=1)
    size = check_int(size, "size", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    min_roi_fraction = check_float(min_roi_fraction, "min_roi_fraction", minimum=0.0, maximum=1.0, min_inclusive=False)
    max_redraws = check_int(max_redraws, "max_redraws", minimum=0)
    return n, size, batch_size, min_roi_fraction, max_redraws


def balanced_stream(
    images: Any,
    n: int,
    *,
    rois: Any = None,
    preset: Any = "mixed",
    augment: Any = "lsm1",
    rng: Any = None,
    size: int = 256,
    batch_size: int = 256,
    min_roi_fraction: float = 1.0,
    max_redraws: int = 20,
    start: int = 0,
    stop: int | None = None,
    defect_fraction: float = 0.5,
    min_contrast: float | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield the balanced synthetic stream in batches of ``(patches, masks, labels)``.

    Parameters
    ----------
    images : numpy.ndarray or sequence of numpy.ndarray
        Fault-free uint8 images, each ``(H, W)`` or ``(H, W, 3)`` (all alike), at least
        ``size`` pixels on each side. Positions are uniform over all valid windows of all images.
        uint16 images (16-bit scans) are reduced to 8 bits first (:func:`reduce_to_8_bits`); the
        stream holds uint8 patches.
    n : int
        Stream length; exactly ``n // 2`` items are defective (at the default ``defect_fraction``).
    rois : sequence of (numpy.ndarray or None), optional
        Region of interest per image (nonzero = inside); None means the whole image.
    preset : str, DefectParams or DefectMixture
        The synthesizer's morphology (a key of :data:`ispad_core.synth.PRESETS`).
    augment : str, AugmentParams or None
        Table-8 augmentation (a key of :data:`ispad_core.augment.AUGMENT_PRESETS`), or None.
    rng : None, int or numpy.random.Generator
        The stream's seed (see the module docstring).
    size : int
        Patch side.
    batch_size : int
        Items per yielded batch (does not change the items).
    min_roi_fraction : float
        Fraction of a window's pixels that must lie inside the ROI, in (0, 1].
    max_redraws : int
        How many other patches an invisible defect is redrawn on before giving up.
    start, stop : int
        Generate only items ``[start, stop)`` of the stream (default all), e.g. one shard.
    defect_fraction : float
        Fraction of items with a synthetic defect, in [0, 1] (default 0.5, the balanced stream;
        0 is a pure fault-free stream, the paper's oversampling strategy). The per-item seeds do
        not depend on it.
    min_contrast : float, optional
        A floor on each defect's contrast, in 8-bit grey levels: the mean absolute change of its
        mask's pixels (the numerator of the synthesizer's contrast-to-noise ratio). A defect that
        passes the preset's own visibility test but stays under it is redrawn on another patch,
        like an invisible one. None (default): only the preset's test, as before.

    Yields
    ------
    patches : numpy.ndarray of uint8, shape (B, size, size[, 3])
    masks : numpy.ndarray of bool, shape (B, size, size)
        Non-empty exactly where the label is 1.
    labels : numpy.ndarray of uint8, shape (B,)

    Raises
    ------
    TypeError, ValueError
        For bad images, ROIs or settings (an image smaller than ``size``, a ROI with no valid
        window, an unknown preset).
    RuntimeError
        If a defect stays invisible on ``max_redraws + 1`` patches.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.samples import screen_print
    >>> from ispad_core.stream import balanced_stream
    >>> image = screen_print((160, 160), rng=0)
    >>> batches = list(balanced_stream(image, 6, size=64, rng=0, batch_size=4))
    >>> [b[0].shape for b in batches], int(sum(b[2].sum() for b in batches))
    ([(4, 64, 64), (2, 64, 64)], 3)
    """
    n, size, batch_size, min_roi_fraction, max_redraws = _check_common(n, size, batch_size, min_roi_fraction, max_redraws)
    start = check_int(start, "start", minimum=0, maximum=n)
    stop = n if stop is None else check_int(stop, "stop", minimum=start, maximum=n)
    defect_fraction = _check_fraction(defect_fraction)
    gen = _make_generator(
        images, rois, n, rng, size, preset, augment, min_roi_fraction, max_redraws, defect_fraction, min_contrast=min_contrast
    )
    return _iterate(gen, start, stop, batch_size)


def _check_min_contrast(min_contrast: Any) -> float | None:
    if min_contrast is None:
        return None
    return check_float(min_contrast, "min_contrast", minimum=0.0, maximum=255.0)


def _make_generator(
    images, rois, n, rng, size, preset, augment, min_roi_fraction, max_redraws, defect_fraction=0.5, names=None,
    min_contrast=None,
) -> _Generator:
    from ispad_core.synth import check_room

    sources = _prepare_sources(images, rois, size, min_roi_fraction, names)
    params = _resolve_preset(preset)
    check_room(size, size, params, "size")  # what synthesize_batch checks first
    aug = _resolve_augment(augment)
    min_contrast = _check_min_contrast(min_contrast)
    seeds, defective = stream_plan(n, rng=rng, defect_fraction=defect_fraction)
    return _Generator(
        sources, seeds, defective, size=size, params=params, augment=aug, max_redraws=max_redraws, min_contrast=min_contrast
    )


def _iterate(gen: _Generator, start: int, stop: int, batch_size: int):
    for a in range(start, stop, batch_size):
        batch = gen.make(a, min(a + batch_size, stop))
        yield batch.images, batch.masks, batch.labels


# --------------------------------------------------------------------------- on the fly


def _prefer_fork_safe_numba() -> None:
    """Let Numba pick a fork-safe threading layer, unless it has picked one or the user chose.

    A torch ``DataLoader`` forks its workers on Linux, and Numba's GNU OpenMP layer aborts a forked
    child that launches a parallel kernel; ``"forksafe"`` picks TBB if installed, else Numba's
    own workqueue (the same speed for our kernels, which ``prange`` over whole items).
    """
    import numba

    try:
        numba.threading_layer()
        return  # chosen already: the first parallel kernel has run
    except ValueError:
        pass
    if numba.config.THREADING_LAYER == "default" and "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "forksafe"


_prefer_fork_safe_numba()  # at import, before any kernel of the library can have run


def _gnu_openmp_in_use() -> bool:
    import numba

    try:
        if numba.threading_layer() != "omp":
            return False
        from numba.np.ufunc import omppool

        return getattr(omppool, "openmp_vendor", "GNU") == "GNU"
    except (ValueError, ImportError):
        return False


class SyntheticStream:
    """The balanced stream drawn on demand: item ``i`` without writing a file.

    Item ``i`` is computed from its own seed and defect flag (see the module docstring) and is
    byte for byte item ``i`` of the file :func:`write_balanced_stream` writes with the same
    images, ROIs, settings and ``seed``. Items are ``(image, mask, label)`` as
    :class:`ispad_core.io.StreamReader` gives them: image ``(size, size[, 3])`` uint8, mask
    ``(size, size)`` bool, label an int, so the two are interchangeable as the stream of
    :class:`ispad_core.nn.InjectionDataset` or any torch ``DataLoader``.

    :meth:`set_epoch` switches to a fresh stream of the same length and defect fraction (new
    positions, augmentations and defects), a pure function of ``(seed, epoch)`` (:func:`epoch_plan`);
    epoch 0 is the file's stream. ``stream[indices]`` and :meth:`__getitems__` (which a torch
    ``DataLoader`` calls with a whole batch of indices) make a batch with one call of each kernel.

    The object pickles (with its images), so ``DataLoader`` worker processes can use it; in any
    process other than the one that made it (a worker), it first sets Numba to
    ``worker_threads`` threads (default 1), so that ``k`` workers use ``k`` cores. Workers forked
    on Linux need a fork-safe Numba threading layer: unless Numba has run a parallel kernel
    already or ``NUMBA_THREADING_LAYER`` is set, making a stream selects ``"forksafe"`` (TBB if
    installed, else Numba's workqueue); after GNU OpenMP has started, a forked worker raises a
    RuntimeError that says to use ``multiprocessing_context="forkserver"``.

    Parameters
    ----------
    images : numpy.ndarray or sequence of numpy.ndarray
        Fault-free uint8 images, each ``(H, W)`` or ``(H, W, 3)`` (all alike).
    rois, preset, augment, size, min_roi_fraction, max_redraws, defect_fraction, min_contrast
        As :func:`balanced_stream`.
    n : int
        Items per epoch.
    seed : int, optional
        The stream's seed (as :func:`write_balanced_stream`); None draws a fresh one from the OS,
        kept in :attr:`seed`.
    epoch : int
        The starting epoch (default 0).
    worker_threads : int or None
        Numba threads in a worker process; None leaves Numba's setting alone.
    names : sequence of str, optional
        The images' file names, for error messages.

    Raises
    ------
    TypeError, ValueError
        As :func:`balanced_stream`.
    RuntimeError
        When an item is made: if a defect stays invisible on ``max_redraws + 1`` patches.

    Examples
    --------
    >>> from ispad_core.samples import screen_print
    >>> stream = SyntheticStream(screen_print((160, 160), rng=0), n=6, size=64, seed=0)
    >>> image, mask, label = stream[1]
    >>> len(stream), image.shape, mask.dtype, int(stream.labels.sum())
    (6, (64, 64), dtype('bool'), 3)
    >>> images, masks, labels = stream[[0, 5, 2]]
    >>> images.shape, labels.tolist() == stream.labels[[0, 5, 2]].tolist()
    ((3, 64, 64), True)
    >>> stream.set_epoch(1)
    >>> bool((stream[1][0] == image).all())
    False
    """

    def __init__(
        self,
        images: Any,
        *,
        n: int,
        rois: Any = None,
        preset: Any = "mixed",
        augment: Any = "lsm1",
        size: int = 256,
        seed: int | None = None,
        min_roi_fraction: float = 1.0,
        max_redraws: int = 20,
        defect_fraction: float = 0.5,
        epoch: int = 0,
        worker_threads: int | None = 1,
        names: Sequence[str] | None = None,
        min_contrast: float | None = None,
    ) -> None:
        n, size, _, min_roi_fraction, max_redraws = _check_common(n, size, 1, min_roi_fraction, max_redraws)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint32)[0])
        self.seed = check_int(seed, "seed", minimum=0, maximum=2**63 - 1)
        self.defect_fraction = _check_fraction(defect_fraction)
        self.worker_threads = None if worker_threads is None else check_int(worker_threads, "worker_threads", minimum=1)
        self._gen = _make_generator(
            images, rois, n, self.seed, size, preset, augment, min_roi_fraction, max_redraws, self.defect_fraction, names,
            min_contrast=min_contrast,
        )
        self.n = n
        self.size = size
        self._epoch = 0
        self._pid: int | None = os.getpid()
        _prefer_fork_safe_numba()
        self.set_epoch(epoch)

    # -- plan ----------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The current epoch."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Switch to epoch ``epoch``: fresh per-item seeds and defect positions (epoch 0: the file's)."""
        epoch = check_int(epoch, "epoch", minimum=0)
        if epoch != self._epoch:
            self._gen.seeds, self._gen.defective = epoch_plan(
                self.n, seed=self.seed, epoch=epoch, defect_fraction=self.defect_fraction
            )
        self._epoch = epoch

    @property
    def labels(self) -> np.ndarray:
        """The labels of the current epoch, ``(n,)`` uint8 (a copy; known without drawing items)."""
        return self._gen.defective.astype(np.uint8)

    @property
    def seeds(self) -> np.ndarray:
        """The per-item seeds of the current epoch, ``(n,)`` uint32 (a copy)."""
        return self._gen.seeds.copy()

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(size, size)`` or ``(size, size, 3)``."""
        return (self.size, self.size, *self._gen.sources[0].image.shape[2:])

    def __len__(self) -> int:
        return self.n

    # -- items ---------------------------------------------------------------------------

    def _in_this_process(self) -> None:
        pid = os.getpid()
        if self._pid != pid:
            import numba

            if self._pid is not None and _gnu_openmp_in_use():  # forked, not unpickled
                raise RuntimeError(
                    "SyntheticStream: this process was forked from one that already runs Numba's GNU "
                    "OpenMP threading layer, which cannot run in a forked child; give the DataLoader "
                    "multiprocessing_context='forkserver' (or 'spawn'), or set "
                    "NUMBA_THREADING_LAYER=workqueue before the first kernel runs"
                )
            if self.worker_threads is not None:
                numba.set_num_threads(min(self.worker_threads, numba.config.NUMBA_NUM_THREADS))
            self._pid = pid

    def _index(self, key: Any) -> np.ndarray:
        idx = np.asarray(key)
        if idx.ndim != 1 or not (idx.dtype.kind in "iu" or idx.size == 0):
            raise InputTypeError(f"index: expected an int, a slice or a 1-D integer array, got {type(key).__name__}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -self.n or idx.max() >= self.n):
            raise IndexError(f"indices out of range for a stream of {self.n} items")
        return idx % self.n

    def batch(self, indices: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items ``indices`` as arrays ``(images, masks, labels)``, in that order.

        Parameters
        ----------
        indices : array_like of int, shape (B,)

        Returns
        -------
        images : numpy.ndarray of uint8, shape (B, size, size[, 3])
        masks : numpy.ndarray of bool, shape (B, size, size)
        labels : numpy.ndarray of uint8, shape (B,)
        """
        idx = self._index(indices)
        self._in_this_process()
        if idx.size == 0:
            shape = self.image_shape
            return np.empty((0, *shape), np.uint8), np.empty((0, *shape[:2]), np.bool_), np.empty(0, np.uint8)
        b = self._gen.make_items(idx)
        return b.images, b.masks, b.labels

    def __getitem__(self, key: Any):
        if isinstance(key, (numbers.Integral, np.integer)) and not isinstance(key, bool):
            i = int(key)
            if i < -self.n or i >= self.n:
                raise IndexError(f"index {i} is out of range for a stream of {self.n} items")
            images, masks, labels = self.batch([i % self.n])
            return images[0], masks[0], int(labels[0])
        if isinstance(key, slice):
            return self.batch(np.arange(*key.indices(self.n)))
        return self.batch(key)

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """Items ``indices`` as a list of ``(image, mask, label)``, made as one batch.

        A torch ``DataLoader`` calls this with the indices of a whole batch when the dataset has
        it, instead of one ``__getitem__`` per item.
        """
        images, masks, labels = self.batch(list(indices))
        return [(images[k], masks[k], int(labels[k])) for k in range(labels.shape[0])]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        for a in range(0, self.n, 256):
            images, masks, labels = self.batch(np.arange(a, min(a + 256, self.n)))
            for k in range(labels.shape[0]):
                yield images[k], masks[k], int(labels[k])

    # -- pickling ------------------------------------------------------------------------

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pid"] = None  # unpickled means: another process
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return (
            f"SyntheticStream({self.n} items of {self.image_shape}, {int(self._gen.defective.sum())} defective, "
            f"seed {self.seed}, epoch {self._epoch})"
        )


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class StreamSummary:
    """What :func:`write_balanced_stream` did.

    Attributes
    ----------
    path : pathlib.Path
        The file written.
    n_items : int
        Items in the file.
    n_resumed : int
        Items taken over from an interrupted run (not generated again).
    n_defective : int
        Defective items in the file.
    n_redrawn : int
        Defective items of this run whose first patch gave no visible defect.
    mean_attempts : float
        Mean synthesis attempts per defective item of this run (over all its patches).
    seconds : float
        Wall time of this run.
    rate : float
        Items generated and written per second in this run.
    seed : int
        The stream's seed (recorded in the file).
    timings : dict
        Seconds per stage: extract, augment, synthesize, compress, write.
    """

    path: Path
    n_items: int
    n_resumed: int
    n_defective: int
    n_redrawn: int
    mean_attempts: float
    seconds: float
    rate: float
    seed: int
    timings: dict = field(default_factory=dict)

    def __str__(self) -> str:
        resumed = f" ({self.n_resumed} resumed)" if self.n_resumed else ""
        return (
            f"wrote {self.n_items} patches to {self.path}{resumed}: {self.n_defective} with synthetic "
            f"defects ({self.n_redrawn} redrawn on another patch), {self.mean_attempts:.2f} synthesis "
            f"attempts per defect, {self.rate:,.0f} patches/s, seed {self.seed}"
        )


@dataclass(frozen=True)
class VisibilitySummary:
    """The visibility figures of a stream file's defective items (:func:`visibility_summary`).

    Attributes
    ----------
    n_defective : int
        Defective items (label 1).
    n_accepted : int
        Of those, the ones whose defect passed the synthesizer's visibility test (all, in a file
        :func:`write_balanced_stream` wrote: an invisible defect is redrawn on another patch).
    quantiles : tuple of float
        The quantile levels of the three figures below, e.g. ``(0.0, 0.05, 0.5, 0.95, 1.0)``.
    contrast, cnr, ssr : tuple of float
        Those quantiles among the defective items of the mean absolute change of the mask's
        pixels (8-bit grey levels), the contrast-to-noise ratio and the sum of squared residuals.
    below : float
        The contrast (grey levels) counted in :attr:`n_below`.
    n_below : int
        Defective items with a contrast under :attr:`below`.
    min_contrast : float or None
        The floor the stream was written with (its attribute ``min_contrast``), if any.
    """

    n_defective: int
    n_accepted: int
    quantiles: tuple
    contrast: tuple
    cnr: tuple
    ssr: tuple
    below: float
    n_below: int
    min_contrast: float | None

    def __str__(self) -> str:
        levels = ", ".join(f"{100 * q:g}%" for q in self.quantiles)

        def row(values: tuple, fmt: str) -> str:
            return ", ".join(format(v, fmt) for v in values)

        share = self.n_below / self.n_defective if self.n_defective else 0.0
        floor = "none" if self.min_contrast is None else f"{self.min_contrast:g} grey levels"
        return "\n".join([
            f"visibility of the {self.n_defective} defects ({self.n_accepted} passed the synthesizer's test; "
            f"minimum contrast {floor}), quantiles {levels}:",
            f"  contrast (mean |change| in the mask, grey levels): {row(self.contrast, '.2f')}",
            f"  contrast-to-noise ratio: {row(self.cnr, '.2f')}",
            f"  sum of squared residuals: {row(self.ssr, '.0f')}",
            f"  under {self.below:g} grey levels of contrast: {self.n_below} ({100 * share:.1f} %)",
        ])


def visibility_summary(
    stream: Any, *, quantiles: Sequence[float] = (0.0, 0.05, 0.5, 0.95, 1.0), below: float = 3.0
) -> VisibilitySummary | None:
    """Sum up the per-item visibility figures of a stream file's defective items.

    Parameters
    ----------
    stream : str, os.PathLike or ispad_core.io.StreamReader
        A stream file (or an open reader of one).
    quantiles : sequence of float
        Quantile levels in [0, 1] to report (default min, 5 %, median, 95 %, max).
    below : float
        Count the defects whose contrast is under this many grey levels (default 3).

    Returns
    -------
    VisibilitySummary or None
        None for a file written before the figures were stored (it has no ``syn_stream/contrast``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ispad_core.samples import screen_print
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "stream.h5"
    >>> _ = write_balanced_stream(out, screen_print((160, 160), rng=0), 8, size=64, seed=0)
    >>> v = visibility_summary(out)
    >>> v.n_defective, v.n_accepted, v.contrast[0] >= 1.0  # a changed pixel moves a whole grey level
    (4, 4, True)
    """
    from ispad_core.io import StreamReader, open_stream

    levels = tuple(check_float(q, "quantiles", minimum=0.0, maximum=1.0) for q in quantiles)
    below = check_float(below, "below", minimum=0.0)
    if isinstance(stream, StreamReader):
        return _visibility_of(stream, levels, below)
    with open_stream(stream) as reader:
        return _visibility_of(reader, levels, below)


def _visibility_of(reader, levels: tuple, below: float) -> VisibilitySummary | None:
    figures = {name: reader.field(name) for name in VISIBILITY_FIELDS}
    if any(v is None for v in figures.values()):
        return None
    defective = reader.labels == 1

    def q(values: np.ndarray) -> tuple:
        return tuple(float(x) for x in np.quantile(values, levels)) if values.size else tuple(float("nan") for _ in levels)

    contrast = figures["contrast"][defective]
    floor = reader.attrs.get("min_contrast")
    return VisibilitySummary(
        n_defective=int(defective.sum()),
        n_accepted=int(figures["accepted"][defective].sum()),
        quantiles=levels,
        contrast=q(contrast),
        cnr=q(figures["cnr"][defective]),
        ssr=q(figures["ssr"][defective]),
        below=below,
        n_below=int((contrast < below).sum()),
        min_contrast=None if floor is None else float(floor),
    )


def _fingerprint(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]


def _same(a: Any, b: Any) -> bool:
    """Whether an argument is its default (by identity for objects, by value for plain values)."""
    if a is b:
        return True
    if isinstance(a, (str, int, float, bool)) and isinstance(b, (str, int, float, bool)) and type(a) is type(b):
        return a == b
    return False


def seed_of_unfinished(path: Path) -> int | None:
    """The seed of an unfinished write of ``path`` (its ``.part`` file), or None."""
    part = part_path(path)
    if part.is_symlink() or not part.is_file():  # the writer refuses a link there; never read through one
        return None
    try:
        with h5py.File(part, "r") as f:
            return int(f.attrs["seed"])
    except Exception:
        return None


def write_balanced_stream(
    path: str | os.PathLike,
    images: Any,
    n: int,
    *,
    rois: Any = None,
    preset: Any = "mixed",
    augment: Any = "lsm1",
    seed: int | None = None,
    size: int = 256,
    min_roi_fraction: float = 1.0,
    max_redraws: int = 20,
    shard: tuple[int, int] | None = None,
    batch_size: int = 256,
    compression: str = "isal",
    overwrite: bool = False,
    resume: bool = True,
    names: Sequence[str] | None = None,
    roi_names: Sequence[str | None] | None = None,
    show_progress: bool = False,
    callback: Callable[[int, int], None] | None = None,
    defect_fraction: float = 0.5,
    client: Any = None,
    parts: int | None = None,
    retries: int = 3,
    min_contrast: float | None = None,
) -> StreamSummary:
    """Write a balanced stream (or one shard of it) to an HDF5 file, resumably.

    The file has the layout of :func:`ispad_core.io.write_stream`, with the per-item provenance
    ``seeds``, ``sources`` (index into the attribute ``sources``), ``origins`` and ``attempts``,
    the per-item visibility figures of each defect (0 for good items): ``accepted`` (it passed
    the synthesizer's test), ``ssr`` (sum of squared residuals, 8-bit grey levels squared),
    ``cnr`` (contrast-to-noise ratio against the background ring) and ``contrast`` (mean absolute
    change of the mask's pixels, 8-bit grey levels), all of the accepted draw;
    :func:`visibility_summary` sums them up. The attributes are ``seed``, ``n_total``, ``item_start``, ``item_stop``, ``shard``,
    ``preset_name``, ``preset`` (JSON), ``augment_name``, ``augment`` (JSON), ``patch_size``,
    ``min_roi_fraction``, ``max_redraws``, ``sources`` and ``rois`` (names and SHA-256 prefixes
    of the pixels). An interrupted write resumes when called again with the same arguments, and the
    result is byte-identical to an uninterrupted write; shards merged with
    :func:`ispad_core.io.merge_streams` (``copy=True``) are byte-identical to the whole.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    images, n, rois, preset, augment, size, min_roi_fraction, max_redraws
        As :func:`balanced_stream`.
    seed : int, optional
        The stream's seed. None: the seed of an unfinished write of ``path`` if there is one, else
        a fresh one from the OS; either way it is recorded in the file and the summary.
    shard : (int, int), optional
        ``(k, parts)``: write only part ``k`` (from 0) of ``parts`` (see :func:`shard_range`).
    batch_size : int
        Items per batch and checkpoint.
    compression : {"isal", "zlib", "zstd", "none"}
        See :class:`ispad_core.io.StreamWriter`.
    overwrite : bool
        Replace an existing ``path`` (and discard an unfinished write with other settings).
    resume : bool
        Continue an unfinished write with the same settings (default).
    names, roi_names : sequence of str, optional
        Names of the images and ROIs for the file's provenance (e.g. their file names); errors
        about an image name it too.
    show_progress : bool
        Show a progress bar with rate and ETA on stderr.
    callback : callable, optional
        Called as ``callback(done, total)`` after each batch is checkpointed, with the items of
        this part written so far (resumed ones included) and the part's size. An exception it
        raises stops the write at that safe point, keeping the finished batches for a resume
        (the ``ispad`` command uses it to turn Ctrl-C into a clean stop).
    defect_fraction : float
        As :func:`balanced_stream` (default 0.5); recorded as the attribute ``defect_fraction``.
    client : dask.distributed.Client, optional
        Write on a Dask cluster (``pip install "ispad-core[dask]"``), one task per part, merged
        into the file one process writes, byte for byte: this call hands everything to
        ``ispad_core.stream.dask.write_balanced_stream_distributed`` (see ``docs/dask.md``).
    parts : int, optional
        With ``client``: the number of parts (tasks); the file does not depend on it.
    retries : int
        With ``client``: how often a part that failed on the shared storage is run again.
    min_contrast : float, optional
        As :func:`balanced_stream`; recorded as the attribute ``min_contrast`` when given.

    Returns
    -------
    StreamSummary

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ispad_core.samples import screen_print
    >>> from ispad_core.io import open_stream
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "stream.h5"
    >>> summary = write_balanced_stream(out, screen_print((160, 160), rng=0), 6, size=64, seed=0)
    >>> with open_stream(out) as s:
    ...     print(len(s), int(s.labels.sum()), s.attrs["seed"], s.attrs["preset_name"])
    6 3 0 mixed
    """
    if client is not None:
        if shard is not None:
            raise InputValueError("shard: not with client (the cluster writes every part of the stream)")
        from ispad_core.stream.dask import write_balanced_stream_distributed

        given = dict(
            seed=seed, overwrite=overwrite, retries=retries, show_progress=show_progress, rois=rois, preset=preset,
            augment=augment, size=size, min_roi_fraction=min_roi_fraction, max_redraws=max_redraws,
            batch_size=batch_size, compression=compression, resume=resume, names=names, roi_names=roi_names,
            callback=callback, defect_fraction=defect_fraction, min_contrast=min_contrast,
        )
        defaults = inspect.signature(write_balanced_stream).parameters
        changed = {k: v for k, v in given.items() if not _same(v, defaults[k].default)}  # the rest: its defaults
        return write_balanced_stream_distributed(path, images, n, client=client, parts=parts, **changed)
    t_start = time.perf_counter()
    n, size, batch_size, min_roi_fraction, max_redraws = _check_common(n, size, batch_size, min_roi_fraction, max_redraws)
    path = Path(path)
    if seed is None:
        seed = seed_of_unfinished(path) if resume else None
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint32)[0])
    seed = check_int(seed, "seed", minimum=0, maximum=2**63 - 1)
    defect_fraction = _check_fraction(defect_fraction)
    start, stop = shard_range(n, shard)
    if stop == start:
        raise InputValueError(f"shard: part {shard[0]} of {shard[1]} of a {n}-item stream is empty; use fewer parts")
    gen = _make_generator(
        images, rois, n, seed, size, preset, augment, min_roi_fraction, max_redraws, defect_fraction, names,
        min_contrast=min_contrast,
    )
    sources_meta = []
    for j, s in enumerate(gen.sources):
        name = names[j] if names is not None else f"images[{j}]"
        sources_meta.append({"name": str(name), "shape": list(s.image.shape), "sha256": _fingerprint(s.image)})
        if s.bits != 8:  # only then: the provenance of 8-bit files keeps its bytes
            sources_meta[-1]["bits"] = s.bits
    roi_meta = None
    if rois is not None:
        roi_list = [rois] if isinstance(rois, np.ndarray) else list(rois)
        roi_meta = []
        for j, roi in enumerate(roi_list):
            if roi is None:
                roi_meta.append(None)
            else:
                name = roi_names[j] if roi_names is not None and roi_names[j] is not None else f"rois[{j}]"
                roi_meta.append({"name": str(name), "sha256": _fingerprint(np.asarray(roi) != 0)})
    preset_name = preset if isinstance(preset, str) else "custom"
    aug_name = "none" if gen.augment is None else (augment if isinstance(augment, str) else "custom")
    attrs = {
        "seed": seed,
        "n_total": n,
        "item_start": start,
        "item_stop": stop,
        "shard": "0/1" if shard is None else f"{shard[0]}/{shard[1]}",
        "preset_name": preset_name,
        "preset": gen.params.to_dict(),
        "augment_name": aug_name,
        "augment": None if gen.augment is None else gen.augment.to_dict(),
        "patch_size": size,
        "min_roi_fraction": min_roi_fraction,
        "max_redraws": max_redraws,
        "defect_fraction": defect_fraction,
        "sources": sources_meta,
        "rois": roi_meta,
    }
    if gen.min_contrast is not None:  # absent otherwise: files written without it keep their bytes
        attrs["min_contrast"] = gen.min_contrast
    if shard is not None and start == 0 and stop == n:
        attrs["shard"] = "0/1"  # a single part is the whole stream
    shape = gen.sources[0].image.shape[2:]
    writer = StreamWriter(
        path,
        n=stop - start,
        image_shape=(size, size, *shape),
        attrs=attrs,
        fields=("seeds", "sources", "origins", "attempts", *VISIBILITY_FIELDS),
        compression=compression,
        batch_size=batch_size,
        overwrite=overwrite,
        resume=resume,
        show_progress=show_progress,
    )
    resumed = writer.n_done
    n_redrawn = 0
    attempts_sum = 0
    n_def_run = 0
    bar = progress(total=stop - start, desc=f"ispad synth {path.name}", unit="patch", disable=not show_progress)
    bar.update(resumed)
    try:
        for a in range(start + resumed, stop, batch_size):
            b = min(a + batch_size, stop)
            batch = gen.make(a, b)
            writer.append(
                batch.images,
                batch.masks,
                batch.labels,
                seeds=batch.seeds,
                sources=batch.sources,
                origins=batch.origins,
                attempts=batch.attempts,
                **batch.visibility,
            )
            n_redrawn += batch.redrawn
            attempts_sum += int(batch.attempts.sum())
            n_def_run += int(batch.labels.sum())
            bar.update(b - a)
            if callback is not None:
                callback(b - start, stop - start)
        writer.commit()
    finally:
        bar.close()
        writer.close()
    seconds = time.perf_counter() - t_start
    generated = stop - start - resumed
    timings = {**gen.timings, **writer.timings}
    return StreamSummary(
        path=path,
        n_items=stop - start,
        n_resumed=resumed,
        n_defective=int(gen.defective[start:stop].sum()),
        n_redrawn=n_redrawn,
        mean_attempts=attempts_sum / n_def_run if n_def_run else 0.0,
        seconds=seconds,
        rate=generated / seconds if seconds > 0 else 0.0,
        seed=seed,
        timings=timings,
    )

