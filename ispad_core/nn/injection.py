"""Stochastic real-defect injection into a balanced synthetic stream (the paper's equation 1),
and its mirror for confirmed false alarms (:class:`NegativeDataset`: label-0 items).

Each item of the stream is independently replaced, with probability ``p_inj``, by a real
defective patch drawn uniformly from the few real defects, with label 1. The decision for item
``i`` is a counter-based hash of ``(seed, epoch, i)``: no global random state is touched, so the
items do not depend on the number of DataLoader workers, on the order in which they are read, or
on the process (DistributedSampler ranks see exactly the items of the single-process stream).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.utils.data

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_choice, check_float, check_int, mix64

__all__ = ["InjectionDataset", "InjectionPlan", "NegativeDataset", "injection_bounds"]

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
# domain separation: the injection decision and the choice of the real patch are independent
_DOMAIN_DECISION = _U64(0x5851F42D4C957F2D)
_DOMAIN_CHOICE = _U64(0x14057B7EF767814F)
# and those of the negatives (confirmed false alarms put in for fault-free items), independent of both
_DOMAIN_NEG_DECISION = _U64(0x2545F4914F6CDD1D)
_DOMAIN_NEG_CHOICE = _U64(0x9FB21C651E98DF25)


def _hash(seed: int, epoch: int, index: np.ndarray, domain: np.uint64) -> np.ndarray:
    """uint64 hash of (seed, epoch, i) for an array of indices; pure function, no state."""
    with np.errstate(over="ignore"):
        key = mix64(np.array([seed], dtype=_U64) ^ domain)
        key = mix64(key + np.array([epoch], dtype=_U64) * _GOLDEN)
        return mix64(key + index.astype(_U64) * _GOLDEN)


def _uniform(h: np.ndarray) -> np.ndarray:
    """The top 53 bits of a uint64 hash as a float64 in [0, 1)."""
    return (h >> _U64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def _below(h: np.ndarray, m: int) -> np.ndarray:
    """An integer in [0, m) from the top 32 bits (Lemire's multiply-shift; bias <= m / 2**32)."""
    with np.errstate(over="ignore"):
        return (((h >> _U64(32)) * _U64(m)) >> _U64(32)).astype(np.int64)


def injection_bounds(batch_size: int) -> tuple[float, float]:
    """The interval ``[1/B, 0.25]`` of equation 1 for batch size ``B``.

    >>> injection_bounds(128)
    (0.0078125, 0.25)
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    return (1.0 / batch_size, 0.25)


def _check_p_inj(p_inj: Any, batch_size: int, mode: str) -> float:
    p = check_float(p_inj, "p_inj", minimum=0.0, maximum=1.0)
    if mode == "oversampling":
        if p != 0.5:
            raise InputValueError(
                f"p_inj: mode='oversampling' is the paper's special case of a pure fault-free stream "
                f"with p_inj = 0.5 (half of each batch real defects, in expectation), got {p:g}"
            )
        return p
    lo, hi = injection_bounds(batch_size)
    if batch_size < 4:
        raise InputValueError(
            f"p_inj: equation 1 requires 1/B <= p_inj <= 0.25, an empty interval for batch_size B={batch_size} "
            f"(use B >= 4), got p_inj={p:g}"
        )
    # a relative tolerance so that p_inj=1/B written as a decimal still passes
    if p < lo * (1 - 1e-9) or p > hi:
        raise InputValueError(
            f"p_inj: expected a value in [1/B, 0.25] = [{lo:g}, {hi:g}] for batch_size B={batch_size}, got {p:g}. "
            f"Equation 1 of the paper: the lower bound puts at least one real defect into each batch in "
            f"expectation (B * p_inj >= 1); the upper bound keeps real defects from dominating the "
            f"synthetic stream"
        )
    return p


@dataclass(frozen=True)
class InjectionPlan:
    """Which items of one epoch are replaced by real defects.

    Attributes
    ----------
    injected : numpy.ndarray of bool, shape (N,)
        True where item i is a real defect.
    real_index : numpy.ndarray of int64, shape (N,)
        Index into ``real`` of the injected patch, -1 where not injected.
    epoch : int
    """

    injected: np.ndarray
    real_index: np.ndarray
    epoch: int

    @property
    def fraction(self) -> float:
        """Fraction of injected items (``p_inj`` in expectation)."""
        return float(self.injected.mean()) if self.injected.size else 0.0


class InjectionDataset(torch.utils.data.Dataset):
    """A torch Dataset over a balanced stream with real defects injected at rate ``p_inj``.

    Parameters
    ----------
    stream : sequence-like
        Any object with ``__len__`` and ``__getitem__(int)`` returning a tuple whose first element
        is the image ``(H, W[, C])`` uint8 and whose last element is the integer label (so both
        ``(image, label)`` and ``(image, mask, label)`` work; ``ispad_core.io.StreamReader`` is one).
    real : array or sequence-like
        The real defective patches: an array ``(M, H', W'[, C])`` or any object with ``__len__``
        and ``__getitem__(int)`` returning an image (or a tuple whose first element is one).
    p_inj : float
        Injection probability, in ``[1/batch_size, 0.25]`` (equation 1); exactly 0.5 with
        ``mode="oversampling"``.
    batch_size : int
        The training batch size B of equation 1.
    seed : int
        Non-negative seed; decisions depend only on ``(seed, epoch, i)``.
    real_transform : callable, optional
        Called as ``real_transform(image, rng)`` on an injected patch, with ``rng`` a
        ``numpy.random.Generator`` seeded from ``SeedSequence((seed, epoch, i))``, e.g. the
        table-8 augmentation followed by the 512 -> 256 centre crop. It must return an image of
        the stream's shape and dtype.
    mode : {"mixed", "oversampling"}
        ``"mixed"``: the paper's injection into a balanced synthetic stream. ``"oversampling"``:
        the special case of a pure fault-free stream (every label 0, checked per item) with
        ``p_inj = 0.5``, which is the oversampling scheme of Krassnig et al. (2024).

    Notes
    -----
    Items are ``(image, label)`` with ``image`` a numpy array as the stream gives it and ``label``
    an int. ``set_epoch(e)`` redraws the injections; call it before each epoch (``train`` does).
    With ``persistent_workers=True`` a DataLoader keeps stale copies of the dataset in its
    workers, so leave it off.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.nn import InjectionDataset
    >>> stream = [(np.zeros((8, 8), np.uint8), i % 2) for i in range(1000)]
    >>> real = np.full((3, 8, 8), 255, np.uint8)
    >>> ds = InjectionDataset(stream, real, p_inj=1 / 32, batch_size=32, seed=0)
    >>> image, label = ds[0]
    >>> image.shape, label in (0, 1)
    ((8, 8), True)
    >>> round(ds.plan().fraction, 2)
    0.03
    """

    def __init__(
        self,
        stream: Any,
        real: Any,
        *,
        p_inj: float,
        batch_size: int,
        seed: int,
        real_transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        mode: str = "mixed",
    ) -> None:
        for obj, name in ((stream, "stream"), (real, "real")):
            if not (hasattr(obj, "__len__") and hasattr(obj, "__getitem__")):
                raise InputTypeError(f"{name}: expected an object with __len__ and __getitem__, got {type(obj).__name__}")
        self.mode = check_choice(mode, "mode", ("mixed", "oversampling"))
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.p_inj = _check_p_inj(p_inj, self.batch_size, self.mode)
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
            raise InputTypeError(f"seed: expected an int, got {type(seed).__name__}")
        self.seed = check_int(seed, "seed", minimum=0, maximum=2**64 - 1)
        if real_transform is not None and not callable(real_transform):
            raise InputTypeError(f"real_transform: expected a callable or None, got {type(real_transform).__name__}")
        self.real_transform = real_transform
        if len(stream) == 0:
            raise InputValueError("stream: expected a non-empty stream, got length 0")
        if len(real) == 0:
            raise InputValueError("real: expected at least one real defective patch, got 0")
        self.stream = stream
        self.real = real
        first = np.asarray(stream[0][0])
        self.image_shape = first.shape
        self.image_dtype = first.dtype
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.stream)

    def set_epoch(self, epoch: int) -> None:
        """Select the injections of ``epoch`` (a non-negative int); a stream that has
        ``set_epoch`` (one made on the fly with fresh items per epoch) gets the epoch too."""
        self.epoch = check_int(epoch, "epoch", minimum=0)
        if hasattr(self.stream, "set_epoch"):
            self.stream.set_epoch(self.epoch)

    def plan(self, epoch: int | None = None) -> InjectionPlan:
        """The injection decisions of ``epoch`` (default: the current one) for every item, vectorised."""
        epoch = self.epoch if epoch is None else check_int(epoch, "epoch", minimum=0)
        idx = np.arange(len(self), dtype=np.int64)
        injected, real_index = self._decide(epoch, idx)
        return InjectionPlan(injected=injected, real_index=real_index, epoch=epoch)

    def _decide(self, epoch: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        injected = _uniform(_hash(self.seed, epoch, idx, _DOMAIN_DECISION)) < self.p_inj
        choice = _below(_hash(self.seed, epoch, idx, _DOMAIN_CHOICE), len(self.real))
        return injected, np.where(injected, choice, -1)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if not isinstance(i, numbers.Integral) or isinstance(i, bool):
            raise InputTypeError(f"index: expected an int, got {type(i).__name__}")
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"index: expected an int in [{-n}, {n}), got {i}")
        i %= n
        injected, real_index = self._decide(self.epoch, np.array([i], dtype=np.int64))
        if injected[0]:
            return self._real_item(i, int(real_index[0])), 1
        return self._stream_item(i, self.stream[i])

    def __getitems__(self, indices: list) -> list[tuple[np.ndarray, int]]:
        """Items ``[self[i] for i in indices]`` in one call (torch's DataLoader uses it per batch).

        The stream's items are read with one ``stream.__getitems__(indices)`` call when the stream
        has that method (a batched read, e.g. of an HDF5 file or an on-the-fly stream), else one
        by one.
        """
        n = len(self)
        idx = np.empty(len(indices), dtype=np.int64)
        for k, i in enumerate(indices):
            if not isinstance(i, numbers.Integral) or isinstance(i, bool):
                raise InputTypeError(f"index: expected an int, got {type(i).__name__}")
            if not -n <= int(i) < n:
                raise IndexError(f"index: expected an int in [{-n}, {n}), got {int(i)}")
            idx[k] = int(i) % n
        injected, real_index = self._decide(self.epoch, idx)
        out: list = [None] * len(idx)
        from_stream = np.flatnonzero(~injected)
        if from_stream.size:
            wanted = idx[from_stream].tolist()
            getitems = getattr(self.stream, "__getitems__", None)
            items = getitems(wanted) if getitems is not None else [self.stream[i] for i in wanted]
            if len(items) != len(wanted):
                raise InputValueError(f"stream: __getitems__ returned {len(items)} items for {len(wanted)} indices")
            for k, item in zip(from_stream.tolist(), items):
                out[k] = self._stream_item(int(idx[k]), item)
        for k in np.flatnonzero(injected).tolist():
            out[k] = (self._real_item(int(idx[k]), int(real_index[k])), 1)
        return out

    def _stream_item(self, i: int, item: Any) -> tuple[np.ndarray, int]:
        label = int(item[-1])
        if self.mode == "oversampling" and label != 0:
            raise InputValueError(
                f"stream: mode='oversampling' expects a pure fault-free stream (all labels 0), item {i} has label "
                f"{label}; write one with 'ispad synth --defect-fraction 0'"
            )
        return np.asarray(item[0]), label

    def _real_item(self, i: int, j: int) -> np.ndarray:
        item = self.real[j]
        image = np.asarray(item[0] if isinstance(item, tuple) else item)
        if self.real_transform is not None:
            rng = np.random.default_rng(np.random.SeedSequence((self.seed, self.epoch, i)))
            image = np.asarray(self.real_transform(image, rng))
        if image.shape != self.image_shape or image.dtype != self.image_dtype:
            what = "real_transform returned" if self.real_transform is not None else "real holds"
            raise InputValueError(
                f"real: expected injected patches of the stream's shape {self.image_shape} and dtype "
                f"{self.image_dtype}, but {what} shape {image.shape} and dtype {image.dtype} "
                f"(pass a real_transform that crops, e.g. the 512 -> 256 centre crop)"
            )
        return np.ascontiguousarray(image)


class NegativeDataset(torch.utils.data.Dataset):
    """A dataset whose fault-free items are replaced, with probability ``p_neg``, by confirmed false alarms.

    The mirror of :class:`InjectionDataset` on the label-0 side: the windows an inspection
    flagged and a person rejected (``ispad review`` -> ``ispad crops --good-out``) are fault-free
    patches the detector got wrong. Each item ``i`` of ``dataset`` whose label is 0 is replaced,
    with probability ``p_neg``, by a negative drawn uniformly, passed through ``transform`` (the
    same augmentation and centre crop as the real defects), with label 0. Items of label 1 (the
    synthetic defects and the injected real ones) are left alone, so the rate of negatives among
    the fault-free items is ``p_neg`` and the stream's balance does not change. The decision and
    the choice are counter-based hashes of ``(seed, epoch, i)`` in their own domains,
    independent of the real-defect injection and of workers, order and processes.

    Parameters
    ----------
    dataset : sequence-like
        Items ``(image, ..., label)`` (an :class:`InjectionDataset`, a stream).
    negatives : array or sequence-like
        The fault-free patches: ``(M, H', W'[, C])`` or items whose first element is an image.
    p_neg : float
        Replacement probability of a fault-free item, in (0, 0.5].
    seed : int
        Non-negative seed.
    transform : callable, optional
        ``transform(image, rng)`` with ``rng`` seeded from ``SeedSequence((seed, epoch, i, 1))``;
        must return an image of the dataset's shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.nn.injection import NegativeDataset
    >>> stream = [(np.zeros((8, 8), np.uint8), i % 2) for i in range(4000)]
    >>> negatives = np.full((2, 8, 8), 7, np.uint8)
    >>> ds = NegativeDataset(stream, negatives, p_neg=1 / 16, seed=0)
    >>> replaced = [i for i in range(len(ds)) if ds[i][0][0, 0] == 7]
    >>> all(ds[i][1] == 0 for i in replaced), round(len(replaced) / 2000, 2)
    (True, 0.06)
    """

    def __init__(
        self,
        dataset: Any,
        negatives: Any,
        *,
        p_neg: float,
        seed: int,
        transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    ) -> None:
        for obj, name in ((dataset, "dataset"), (negatives, "negatives")):
            if not (hasattr(obj, "__len__") and hasattr(obj, "__getitem__")):
                raise InputTypeError(f"{name}: expected an object with __len__ and __getitem__, got {type(obj).__name__}")
        self.p_neg = check_float(p_neg, "p_neg", minimum=0.0, maximum=0.5, min_inclusive=False)
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
            raise InputTypeError(f"seed: expected an int, got {type(seed).__name__}")
        self.seed = check_int(seed, "seed", minimum=0, maximum=2**64 - 1)
        if transform is not None and not callable(transform):
            raise InputTypeError(f"transform: expected a callable or None, got {type(transform).__name__}")
        if len(dataset) == 0:
            raise InputValueError("dataset: expected a non-empty dataset, got length 0")
        if len(negatives) == 0:
            raise InputValueError("negatives: expected at least one fault-free patch, got 0")
        self.dataset, self.negatives, self.transform = dataset, negatives, transform
        first = np.asarray(dataset[0][0])
        self.image_shape, self.image_dtype = first.shape, first.dtype
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Select the replacements of ``epoch``; the wrapped dataset gets the epoch too."""
        self.epoch = check_int(epoch, "epoch", minimum=0)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)

    def decide(self, epoch: int | None = None, index: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(chosen, negative_index)`` for items ``index`` (default: all) of ``epoch``: whether the item
        would be replaced if it is fault-free, and by which negative (-1 where not)."""
        epoch = self.epoch if epoch is None else check_int(epoch, "epoch", minimum=0)
        idx = np.arange(len(self), dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
        chosen = _uniform(_hash(self.seed, epoch, idx, _DOMAIN_NEG_DECISION)) < self.p_neg
        which = _below(_hash(self.seed, epoch, idx, _DOMAIN_NEG_CHOICE), len(self.negatives))
        return chosen, np.where(chosen, which, -1)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if not isinstance(i, numbers.Integral) or isinstance(i, bool):
            raise InputTypeError(f"index: expected an int, got {type(i).__name__}")
        n = len(self)
        if not -n <= int(i) < n:
            raise IndexError(f"index: expected an int in [{-n}, {n}), got {int(i)}")
        return self.__getitems__([int(i) % n])[0]

    def __getitems__(self, indices: list) -> list[tuple[np.ndarray, int]]:
        """Items ``[self[i] for i in indices]``, read from the wrapped dataset in one call when it can."""
        n = len(self)
        idx = [int(i) % n if -n <= int(i) < n else int(i) for i in indices]
        getitems = getattr(self.dataset, "__getitems__", None)
        items = getitems(idx) if getitems is not None else [self.dataset[i] for i in idx]
        chosen, which = self.decide(self.epoch, idx)
        out = []
        for k, (i, item) in enumerate(zip(idx, items)):
            label = int(item[-1])
            if label == 0 and chosen[k]:
                out.append((self._negative(i, int(which[k])), 0))
            else:
                out.append((np.asarray(item[0]), label))
        return out

    def _negative(self, i: int, j: int) -> np.ndarray:
        item = self.negatives[j]
        image = np.asarray(item[0] if isinstance(item, tuple) else item)
        if self.transform is not None:
            rng = np.random.default_rng(np.random.SeedSequence((self.seed, self.epoch, i, 1)))
            image = np.asarray(self.transform(image, rng))
        if image.shape != self.image_shape or image.dtype != self.image_dtype:
            what = "transform returned" if self.transform is not None else "negatives hold"
            raise InputValueError(
                f"negatives: expected patches of the stream's shape {self.image_shape} and dtype {self.image_dtype}, "
                f"but {what} shape {image.shape} and dtype {image.dtype}"
            )
        return np.ascontiguousarray(image)
