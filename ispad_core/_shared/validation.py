"""Input validation and randomness helpers shared by every public module.

Public functions validate and convert here, then hand plain, valid arrays to private kernels.
Error messages name the argument, what was expected and what was received, e.g.
``ValueError("masks: expected shape (1565, 256, 256) like anomaly_maps, got (1565, 256, 255)")``.
``TypeError`` is for a wrong type or dtype, ``ValueError`` for a wrong shape, range or value.
"""

from __future__ import annotations

import numbers
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Union

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError

RNGLike = Union[None, int, np.random.SeedSequence, np.random.BitGenerator, np.random.Generator]
"""What an ``rng`` argument takes (SPEC 7): None, a non-negative int, a SeedSequence, a
BitGenerator or a Generator."""
SEED_SPACE = 2**32


# --------------------------------------------------------------------------- randomness


def as_generator(rng: RNGLike, name: str = "rng") -> np.random.Generator:
    """Normalise ``rng`` to a ``numpy.random.Generator`` (SPEC 7, as ``np.random.default_rng``).

    A Generator is returned as is (its state is shared with the caller, as in scikit-image); an
    int, a SeedSequence or a BitGenerator seeds a generator as ``default_rng`` does; None draws
    fresh entropy from the OS.

    Raises
    ------
    TypeError
        If ``rng`` is of any other type (a legacy ``RandomState`` included, to avoid silently
        mixing the two APIs, and a sequence of ints, which NumPy would read as one seed but
        batch functions of this library read as per-item seeds: pass those as ``seeds=``).
    ValueError
        If ``rng`` is a negative int.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core._shared.validation import as_generator
    >>> int(as_generator(np.random.SeedSequence(5)).integers(100)) == int(np.random.default_rng(5).integers(100))
    True
    """
    if rng is None or isinstance(rng, (np.random.Generator, np.random.SeedSequence, np.random.BitGenerator)):
        return np.random.default_rng(rng)
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if int(rng) < 0:
            raise InputValueError(f"{name}: expected a non-negative seed, got {int(rng)}")
        return np.random.default_rng(int(rng))
    raise InputTypeError(
        f"{name}: expected None, a non-negative int or a numpy.random.Generator, got "
        f"{type(rng).__name__} (a SeedSequence or BitGenerator also works)"
    )


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def warn_outside(message: str, category: type[Warning]) -> None:
    """Warn at the first frame of the call stack outside ispad_core: the line the user wrote."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def warn_renamed(caller: str, old: str, new: str) -> None:
    """Warn that the keyword ``old`` of ``caller`` is now called ``new`` (it still works, for now)."""
    warn_outside(f"{caller}: {old}= is now called {new}=; the old name will go", DeprecationWarning)


def take_renamed(options: dict, caller: str, old: str, new: str) -> None:
    """Move the keyword ``old`` of ``caller`` to ``new`` in ``options``, warning (in place)."""
    if old in options:
        if new in options:
            raise InputTypeError(f"{caller}() got both {old!r} and its new name {new!r}")
        warn_renamed(caller, old, new)
        options[new] = options.pop(old)


def _is_seed_array(x: Any) -> bool:
    return isinstance(x, (np.ndarray, Sequence)) and not isinstance(x, (str, bytes))


def check_seeds(seeds: Any, n: int, name: str = "seeds") -> np.ndarray:
    """Validate ``n`` explicit per-item seeds in ``[0, 2**32)``; returned as uint32."""
    if not _is_seed_array(seeds):
        raise InputTypeError(f"{name}: expected an array of {n} integer seeds, got {type(seeds).__name__}")
    arr = np.asarray(seeds)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputValueError(f"{name}: expected {n} per-item seeds, got an array of shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise InputTypeError(f"{name}: per-item seeds must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= SEED_SPACE):
        raise InputValueError(f"{name}: per-item seeds must lie in [0, 2**32), got [{arr.min()}, {arr.max()}]")
    return arr.astype(np.uint32)


def item_seeds(rng: Any, n: int, name: str = "rng", *, seeds: Any = None) -> np.ndarray:
    """Per-item 32-bit seeds for a batch of ``n`` independent items.

    Either ``seeds`` (an array-like of ``n`` integer seeds in ``[0, 2**32)``, validated and
    returned as is: passing the seeds of a slice of a large job regenerates exactly that slice),
    or ``n`` unique seeds drawn from ``rng`` (anything :func:`as_generator` accepts) with
    ``rng.choice(2**32, n, replace=False)``. For backward compatibility an array-like given as
    ``rng`` is still read as the per-item seeds, with a FutureWarning: that form is deprecated,
    since NumPy reads ``default_rng([1, 2, 3])`` as one seed; pass the seeds as ``seeds=``.

    Returns
    -------
    numpy.ndarray of uint32, shape (n,)

    Raises
    ------
    ValueError
        If both ``rng`` and ``seeds`` are given, or the seeds are not ``n`` values in range.
    TypeError
        If the seeds are not integers, or ``rng`` is of a wrong type.
    """
    n = check_int(n, "n", minimum=0)
    if seeds is not None:
        if rng is not None:
            raise InputValueError(f"seeds: pass either {name} or seeds, not both")
        return check_seeds(seeds, n, "seeds")
    if _is_seed_array(rng):
        warn_outside(
            f"{name}: an array of per-item seeds given as {name} is deprecated (NumPy reads an array "
            f"as one seed); pass it as seeds= (or seed= for one item)",
            FutureWarning,
        )
        return check_seeds(rng, n, name)
    gen = as_generator(rng, name)
    return gen.choice(SEED_SPACE, size=n, replace=False).astype(np.uint32)


def one_seed(rng: Any, seed: Any, name: str = "rng") -> np.ndarray:
    """The seed of a single item as a (1,) uint32 array: ``seed`` itself, or one drawn from ``rng``.

    ``seed`` is the item's own 32-bit seed (as ``BatchResult.seeds[i]``), so a function of one
    item given ``seed=s`` reproduces the item of a batch whose seed was ``s``; ``rng`` is, as for
    a batch of one, the source the seed is drawn from.
    """
    if seed is None:
        return item_seeds(rng, 1, name)
    if rng is not None:
        raise InputValueError(f"seed: pass either {name} or seed, not both")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise InputTypeError(f"seed: expected an int in [0, 2**32), got {type(seed).__name__}")
    value = check_int(int(seed), "seed", minimum=0, maximum=SEED_SPACE - 1)
    return np.array([value], dtype=np.uint32)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea and Flood 2014) on uint64: a bijection with full avalanche.

    The counter-based hash behind per-item sub-seeds (``stream``) and injection decisions
    (``nn.injection``): a pure function of its input, so results never depend on call order.
    Arithmetic wraps modulo 2**64.

    >>> int(mix64(np.array([1], dtype=np.uint64))[0])
    6238072747940578789
    """
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


# --------------------------------------------------------------------------- scalars


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as a Python int, checking its type and bounds (inclusive)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise InputTypeError(f"{name}: expected an int, got {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise InputValueError(f"{name}: expected an int >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InputValueError(f"{name}: expected an int <= {maximum}, got {value}")
    return value


def check_float(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite Python float inside the given bounds."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise InputTypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise InputValueError(f"{name}: expected a finite number, got {value}")
    lo_ok = minimum is None or (value >= minimum if min_inclusive else value > minimum)
    hi_ok = maximum is None or (value <= maximum if max_inclusive else value < maximum)
    if not (lo_ok and hi_ok):
        lo = "-inf" if minimum is None else f"{minimum:g}"
        hi = "inf" if maximum is None else f"{maximum:g}"
        interval = f"{'[' if min_inclusive and minimum is not None else '('}{lo}, {hi}{']' if max_inclusive and maximum is not None else ')'}"
        raise InputValueError(f"{name}: expected a value in {interval}, got {value:g}")
    return value


def check_probability(value: Any, name: str) -> float:
    """A float in [0, 1]."""
    return check_float(value, name, minimum=0.0, maximum=1.0)


def check_range(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
) -> tuple:
    """Validate a ``(low, high)`` range with ``low <= high`` inside optional bounds.

    Returns the pair as floats (or ints with ``integer=True``).
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InputTypeError(f"{name}: expected a (low, high) pair, got {type(value).__name__}")
    pair = tuple(value)
    if len(pair) != 2:
        raise InputValueError(f"{name}: expected a (low, high) pair, got {len(pair)} values")
    check = check_int if integer else check_float
    low = check(pair[0], f"{name}[0]", minimum=minimum, maximum=maximum)
    high = check(pair[1], f"{name}[1]", minimum=minimum, maximum=maximum)
    if low > high:
        raise InputValueError(f"{name}: expected low <= high, got ({low:g}, {high:g})")
    return (low, high)


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """``value`` must be one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise InputValueError(f"{name}: expected one of {listed}, got {value!r}")
    return value


# --------------------------------------------------------------------------- arrays


def check_array(
    x: Any,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    kinds: str | None = None,
    dtypes: Sequence[Any] | None = None,
    allow_empty: bool = False,
) -> np.ndarray:
    """Convert ``x`` with ``np.asarray`` and check its dimensionality and dtype.

    Parameters
    ----------
    ndim
        Allowed number of dimensions (an int or a sequence of ints).
    kinds
        Allowed ``dtype.kind`` characters, e.g. ``"biuf"``.
    dtypes
        Allowed exact dtypes, e.g. ``(np.uint8, np.uint16)``; checked after ``kinds``.
    allow_empty
        Whether an array with zero elements is acceptable.
    """
    if x is None:
        raise InputTypeError(f"{name}: expected an array, got None")
    arr = np.asarray(x)
    if arr.dtype == object:
        raise InputTypeError(f"{name}: expected a numeric array, got dtype object")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(d) for d in allowed)
            raise InputValueError(f"{name}: expected a {want}-D array, got {arr.ndim}-D with shape {arr.shape}")
    if kinds is not None and arr.dtype.kind not in kinds:
        raise InputTypeError(f"{name}: expected dtype kind in {kinds!r}, got {arr.dtype}")
    if dtypes is not None:
        allowed_dt = tuple(np.dtype(d) for d in dtypes)
        if arr.dtype not in allowed_dt:
            want = ", ".join(str(d) for d in allowed_dt)
            raise InputTypeError(f"{name}: expected dtype {want}, got {arr.dtype}")
    if not allow_empty and arr.size == 0:
        raise InputValueError(f"{name}: expected a non-empty array, got shape {arr.shape}")
    return arr


def check_same_shape(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    """``b`` must have the shape of ``a``."""
    if a.shape != b.shape:
        raise InputValueError(f"{b_name}: expected shape {a.shape} like {a_name}, got {b.shape}")


def check_finite(x: np.ndarray, name: str) -> None:
    """No NaN or inf in a float array (integer arrays pass trivially)."""
    if x.dtype.kind in "fc" and not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise InputValueError(f"{name}: expected finite values, got {bad} NaN or inf")


def check_binary_labels(y: Any, name: str) -> np.ndarray:
    """A 1-D array of 0/1 (or bool) labels, returned as bool."""
    arr = check_array(y, name, ndim=1, kinds="biuf")
    if arr.dtype.kind == "b":
        return arr
    values = np.unique(arr)
    if not np.isin(values, (0, 1)).all():
        shown = ", ".join(f"{v:g}" for v in values[:5])
        raise InputValueError(f"{name}: expected binary labels 0/1, got values {{{shown}{', ...' if values.size > 5 else ''}}}")
    return arr.astype(bool)
