"""The plan of a stream: per-item seeds, which items are defective, and the parts of a shard.

A stream is a function of its inputs and one integer seed. The seed gives the ``n`` per-item
32-bit seeds (:func:`ispad_core._shared.validation.item_seeds`) and the set of defective items;
item ``i`` depends only on the inputs, its seed and its flag. Its position, augmentation and
synthesis draws use seeds derived from the item seed by a fixed mixing function (splitmix64 of
``(seed << 32) | k``, keeping the upper 32 bits). Therefore any slice ``[start, stop)`` of the
stream can be generated alone, in any batch size, on any machine: that is what
``ispad synth --shard K/N`` and resuming an interrupted write rely on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError
from ispad_core._shared.validation import as_generator, check_float, check_int, item_seeds, mix64

__all__ = ["epoch_plan", "n_defective", "shard_range", "stream_plan"]

_POS, _AUG, _SYN = 0, 1, 2  # the draws of one attempt at an item: position, augmentation, synthesis
_KEYS_PER_DRAW = 3


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
