"""The balanced stream drawn on demand (:class:`SyntheticStream`), as a torch ``Dataset`` or alone.

A torch ``DataLoader`` forks its workers on Linux; the rules that keep Numba's kernels working
in them live here too.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_int
from ispad_core.stream.generation import make_generator
from ispad_core.stream.plan import epoch_plan
from ispad_core.stream.spec import StreamSpec

__all__ = ["SyntheticStream"]


def _prefer_fork_safe_numba() -> None:
    """Let Numba pick a fork-safe threading layer, unless it has picked one or the user chose.

    Numba's GNU OpenMP layer aborts a forked child that launches a parallel kernel, and its
    threads spin while they wait; ``"forksafe"`` picks TBB if installed, else Numba's own
    workqueue (the same speed for our kernels, which ``prange`` over whole items). The library's
    own worker processes never launch one (they call the serial twins, ``_shared.config.run_serial``);
    this keeps the choice safe for a user's forked processes that run Numba code of their own.
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

    The object pickles (with its images), so ``DataLoader`` worker processes can use it, started
    in any way (fork, forkserver, spawn), whatever Numba threading layer and torch threads the
    parent runs: a worker (a torch ``DataLoader`` worker, or any process forked from one that
    imported the library) makes its items with the serial twins of the kernels, the same bytes
    without a thread pool, so that ``k`` workers use ``k`` cores. In any other process than the
    one that made it, the stream also sets Numba to ``worker_threads`` threads (default 1).

    Parameters
    ----------
    images : numpy.ndarray or sequence of numpy.ndarray
        Fault-free uint8 images, each ``(H, W)`` or ``(H, W, 3)`` (all alike).
    rois : sequence of (numpy.ndarray or None), optional
        As :func:`balanced_stream`.
    n : int
        Items per epoch.
    seed : int, optional
        The stream's seed (as :func:`write_balanced_stream`); None draws a fresh one from the OS,
        kept in :attr:`seed`.
    epoch : int
        The starting epoch (default 0).
    worker_threads : int or None
        Numba threads in another process than the one that made the stream (one that is not a
        worker, e.g. started by spawn outside a ``DataLoader``); None leaves Numba's setting alone.
    names : sequence of str, optional
        The images' file names, for error messages.
    spec : StreamSpec, optional
        What the stream is made of, as for :func:`balanced_stream` (``batch_size`` and
        ``compression`` do not apply).
    **settings
        Fields of :class:`StreamSpec` as keywords, over those of ``spec``.

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
        seed: int | None = None,
        epoch: int = 0,
        worker_threads: int | None = 1,
        names: Sequence[str] | None = None,
        spec: StreamSpec | None = None,
        **settings: Any,
    ) -> None:
        self.spec = StreamSpec.build(spec, settings, "SyntheticStream")
        n = check_int(n, "n", minimum=1)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint32)[0])
        self.seed = check_int(seed, "seed", minimum=0, maximum=2**63 - 1)
        self.defect_fraction = self.spec.defect_fraction
        self.worker_threads = None if worker_threads is None else check_int(worker_threads, "worker_threads", minimum=1)
        self._gen = make_generator(images, rois, n, self.seed, self.spec, names)
        self.n = n
        self.size = self.spec.size
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

    def set_contrast_gains(self, gains: Any) -> None:
        """Scale the contrast of each item's defect (a contrast curriculum).

        Item ``i`` is then drawn with the preset's contrast times ``gains[i]``
        (:meth:`~ispad_core.synth.DefectParams.scale_contrast`, the visibility threshold unscaled):
        the same position, augmentation, skeleton and polarity as at gain 1 where its first patch
        is accepted at both gains. Items of one gain are made with one synthesizer call. The gains
        travel with the stream when it is pickled (set them before a ``DataLoader`` starts its
        workers, e.g. before each epoch).

        Parameters
        ----------
        gains : None, float or array_like of float, shape (n,)
            Positive factors, at most 10; None or 1: the preset's own contrast.
        """
        if gains is None:
            self._gen.gains = None
            return
        arr = np.asarray(gains, dtype=np.float64)
        if arr.ndim == 0:
            arr = np.full(self.n, float(arr))
        if arr.shape != (self.n,):
            raise InputValueError(f"gains: expected a number or {self.n} per-item gains, got shape {arr.shape}")
        if not (np.isfinite(arr).all() and (arr > 0).all() and (arr <= 10).all()):
            raise InputValueError("gains: expected finite factors in (0, 10]")
        self._gen.gains = None if (arr == 1.0).all() else arr.copy()

    @property
    def contrast_gains(self) -> np.ndarray:
        """The per-item contrast gains, ``(n,)`` float64 (a copy; all 1 without a curriculum)."""
        return np.ones(self.n) if self._gen.gains is None else self._gen.gains.copy()

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
            if self.worker_threads is not None:
                import numba

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
