"""Making the items of a balanced synthetic stream: :func:`balanced_stream` and the generator
behind :class:`~ispad_core.stream.SyntheticStream` and the writers.

Each item of a stream of ``n`` is one ``size x size`` patch drawn at a random position inside the
region of interest of one of the fault-free images, augmented with the paper's table-8 transforms
(:mod:`ispad_core.augment`); exactly ``n // 2`` items (``floor(n * defect_fraction)`` in
general), at shuffled positions, then receive a synthetic defect (:mod:`ispad_core.synth`) and a
pixel mask. A defect that stays below its visibility threshold after the synthesizer's own
attempts is redrawn on another patch, so the stream stays exactly balanced. How each item's
draws follow from the stream's seed, so that any slice can be made alone, is in
:mod:`ispad_core.stream.plan`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ispad_core._shared.errors import InvisibleDefectError
from ispad_core._shared.validation import check_int
from ispad_core.stream.plan import _AUG, _KEYS_PER_DRAW, _POS, _SYN, _derive32, stream_plan
from ispad_core.stream.sources import _extract, _positions, _prepare_sources
from ispad_core.stream.spec import StreamSpec

__all__ = ["VISIBILITY_FIELDS", "balanced_stream", "make_generator", "stream_kernels_uncached"]


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
        self.gains: np.ndarray | None = None  # per item, (n,) float64: contrast factors (None: all 1)
        self._scaled: tuple = (1.0, params)

    def _params_at(self, gain: float):
        """The preset with its contrast times ``gain`` (the last one kept: a batch is one step)."""
        if gain == 1.0:
            return self.params
        if self._scaled[0] != gain:
            self._scaled = (gain, self.params.scale_contrast(gain))
        return self._scaled[1]

    def _draw(self, seeds: np.ndarray, defective: np.ndarray, attempt: int, params=None):
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
            patches, self.params if params is None else params, _derive32(seeds, base + _SYN), defective
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
        """Items ``index`` (1-D int array, valid indices) of the planned stream, in that order; with
        :attr:`gains` set, each item's defect at its contrast gain (one synthesizer call per gain)."""
        if self.gains is None:
            return self._make_items(index, self.params)
        gains = self.gains[index]
        levels = np.unique(gains)
        if levels.size == 1:
            return self._make_items(index, self._params_at(float(levels[0])))
        parts = [(np.flatnonzero(gains == g), self._make_items(index[gains == g], self._params_at(float(g))))
                 for g in levels]
        return _merge(parts, index.size)

    def _make_items(self, index: np.ndarray, params) -> _Batch:
        seeds = self.seeds[index]
        defective = self.defective[index]
        res = self._draw(seeds, defective, 0, params)
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
            again = self._draw(seeds[todo], np.ones(todo.size, bool), attempt, params)
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


def _merge(parts: list, n: int) -> _Batch:
    """One batch of ``n`` items from ``(rows, batch)`` parts that cover rows ``0..n-1`` once."""
    first = parts[0][1]
    out = {}
    for name in ("images", "masks", "labels", "seeds", "sources", "origins", "attempts"):
        ref = getattr(first, name)
        arr = np.empty((n, *ref.shape[1:]), ref.dtype)
        for rows, b in parts:
            arr[rows] = getattr(b, name)
        out[name] = arr
    vis = {}
    for name, ref in first.visibility.items():
        arr = np.empty(n, ref.dtype)
        for rows, b in parts:
            arr[rows] = b.visibility[name]
        vis[name] = arr
    return _Batch(**out, redrawn=sum(b.redrawn for _, b in parts), visibility=vis)


def balanced_stream(
    images: Any,
    n: int,
    *,
    rois: Any = None,
    rng: Any = None,
    start: int = 0,
    stop: int | None = None,
    spec: StreamSpec | None = None,
    **settings: Any,
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
    rng : None, int or numpy.random.Generator
        The stream's seed (see :mod:`ispad_core.stream.plan`).
    start, stop : int
        Generate only items ``[start, stop)`` of the stream (default all), e.g. one shard.
    spec : StreamSpec, optional
        What the stream is made of: ``preset``, ``augment``, ``size``, ``min_roi_fraction``,
        ``max_redraws``, ``defect_fraction``, ``min_contrast``, and ``batch_size`` (the items
        per yielded batch; it does not change the items). Defaults as in :class:`StreamSpec`.
    **settings
        Fields of :class:`StreamSpec` as keywords (``size=64``), over those of ``spec``.

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
        If a defect stays invisible on ``max_redraws + 1`` patches (InvisibleDefectError).

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
    spec = StreamSpec.build(spec, settings, "balanced_stream")
    n = check_int(n, "n", minimum=1)
    start = check_int(start, "start", minimum=0, maximum=n)
    stop = n if stop is None else check_int(stop, "stop", minimum=start, maximum=n)
    gen = make_generator(images, rois, n, rng, spec)
    return _iterate(gen, start, stop, spec.batch_size)


def make_generator(images: Any, rois: Any, n: int, rng: Any, spec: StreamSpec, names: Any = None) -> _Generator:
    """The generator of a stream of ``n`` items of ``spec`` from ``images`` (checked), seeded by ``rng``."""
    sources = _prepare_sources(images, rois, spec.size, spec.min_roi_fraction, names)
    seeds, defective = stream_plan(n, rng=rng, defect_fraction=spec.defect_fraction)
    return _Generator(
        sources, seeds, defective, size=spec.size, params=spec.params(), augment=spec.augment_params(),
        max_redraws=spec.max_redraws, min_contrast=spec.min_contrast,
    )


def _iterate(gen: _Generator, start: int, stop: int, batch_size: int):
    for a in range(start, stop, batch_size):
        batch = gen.make(a, min(a + batch_size, stop))
        yield batch.images, batch.masks, batch.labels
