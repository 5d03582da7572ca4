"""Public functions of the synthesizer: validate and convert, then call the Numba kernels."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from ispad_core._shared.config import run_serial
from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import (
    RNGLike,
    check_array,
    check_binary_labels,
    check_choice,
    check_int,
    item_seeds,
    one_seed,
)
from ispad_core.synth import _synth_kernels as K
from ispad_core.synth._params import (
    DefectMixture,
    DefectParams,
    ParamsLike,
    encode,
    max_margin,
    resolve_params,
)

__all__ = [
    "BatchResult",
    "Skeleton",
    "SynthResult",
    "SynthSteps",
    "SynthesisWarning",
    "batch_kernels",
    "check_room",
    "random_walk_skeleton",
    "synthesize",
    "synthesize_batch",
    "synthesize_steps",
]

_DTYPES = (np.uint8, np.uint16)
_MAX_CHANNELS = 4


class SynthesisWarning(UserWarning):
    """Some requested defects stayed below their visibility threshold after ``max_attempts``."""


@dataclass(frozen=True)
class SynthResult:
    """One synthesized defect.

    Attributes
    ----------
    image : numpy.ndarray
        The patch with the defect, shape and dtype of the input; the input itself (a copy) when
        not accepted.
    mask : numpy.ndarray of bool, shape (H, W)
        True where the texture reaches ``mask_level`` and the pixel changed.
    visibility : float
        The preset's measure (``"cnr"`` or ``"ssr"``) of the last attempt.
    accepted : bool
        Whether an attempt reached the threshold with a non-empty mask.
    attempts : int
        Attempts drawn (1 to ``max_attempts``).
    """

    image: np.ndarray
    mask: np.ndarray
    visibility: float
    accepted: bool
    attempts: int


@dataclass(frozen=True)
class BatchResult:
    """A batch of synthesized defects (item i as in :class:`SynthResult`).

    Attributes
    ----------
    images : numpy.ndarray, shape (N, H, W[, C])
    masks : numpy.ndarray of bool, shape (N, H, W)
    visibility : numpy.ndarray of float64, shape (N,)
        The preset's measure (``"cnr"`` or ``"ssr"``); 0 for items not requested (``defective``
        False).
    accepted : numpy.ndarray of bool, shape (N,)
        False for items not requested.
    attempts : numpy.ndarray of int64, shape (N,)
        0 for items not requested.
    seeds : numpy.ndarray of uint32, shape (N,)
        The per-item seeds: ``synthesize_batch(patches[a:b], params, seeds=seeds[a:b])``
        regenerates items ``a:b`` exactly, and ``synthesize(patches[i], params, seed=seeds[i])``
        item ``i``.
    ssr, cnr : numpy.ndarray of float64, shape (N,)
        Both visibility measures of each item's last attempt, whichever the preset tests: the sum
        of squared residuals (8-bit grey levels squared) and the contrast-to-noise ratio; 0 for
        items not requested.
    components : numpy.ndarray of int64, shape (N,)
        The index of the mixture component drawn for each item (0 for a DefectParams).
    """

    images: np.ndarray
    masks: np.ndarray
    visibility: np.ndarray
    accepted: np.ndarray
    attempts: np.ndarray
    seeds: np.ndarray
    ssr: np.ndarray | None = None
    cnr: np.ndarray | None = None
    components: np.ndarray | None = None


@dataclass(frozen=True)
class Skeleton:
    """Step 1: the random walk with momentum and its rasters.

    Attributes
    ----------
    points : numpy.ndarray of float64, shape (n, 2)
        Vertices (row, col), inside the patch minus the margin.
    starts : numpy.ndarray of int64, shape (k + 1,)
        Walk s (the main walk first, then its branches) is ``points[starts[s]:starts[s + 1]]``.
    pixels : numpy.ndarray of int64, shape (m, 2)
        The binary skeleton: per walk an 8-connected chain of pixels (row, col) through the
        rounded vertices.
    pixel_starts : numpy.ndarray of int64, shape (k + 1,)
        Chain s is ``pixels[pixel_starts[s]:pixel_starts[s + 1]]``.
    raster : numpy.ndarray of float64, shape (H, W)
        The anti-aliased raster (bilinear splats every <= 0.5 px; ink per px of arc length is 1).
    """

    points: np.ndarray
    starts: np.ndarray
    pixels: np.ndarray
    pixel_starts: np.ndarray
    raster: np.ndarray


@dataclass(frozen=True)
class SynthSteps:
    """Every step of one synthesized defect (its last attempt), for inspection and figures.

    Attributes
    ----------
    skeleton : Skeleton
    texture : numpy.ndarray of float64, shape (H, W)
        Step 2, normalised to [0, 1]; its support (> 0) bounds the pixels step 3 may change.
    image, mask, visibility, accepted, attempts
        As in :class:`SynthResult`.
    ssr : float
        Sum of squared residuals (8-bit grey levels squared, averaged over channels).
    cnr : float
        Contrast-to-noise ratio (0 when the mask is empty).
    component : str
        The mixture component drawn (the name of the single component for a DefectParams).
    """

    skeleton: Skeleton
    texture: np.ndarray
    image: np.ndarray
    mask: np.ndarray
    visibility: float
    accepted: bool
    attempts: int
    ssr: float
    cnr: float
    component: str


# --------------------------------------------------------------------------- validation


def _check_patches(x: Any, name: str, batch: bool, channel_axis: Any = None) -> np.ndarray:
    """A batch ``(N, H, W[, C])`` (the batch axis is required, so 4-D means colour) or, for one
    patch, ``(H, W)`` with ``channel_axis=None`` and ``(H, W, C)`` with ``channel_axis=-1``."""
    check_choice(channel_axis, "channel_axis", (None, -1))
    if batch:
        arr = check_array(x, name, ndim=(3, 4), allow_empty=True)
        if channel_axis == -1 and arr.ndim != 4:
            raise InputValueError(f"{name}: expected (N, H, W, C) with channel_axis=-1, got shape {arr.shape}")
    else:
        arr = check_array(x, name)
        want = 2 if channel_axis is None else 3
        if arr.ndim != want:
            if channel_axis is None and arr.ndim == 3:
                raise InputValueError(
                    f"{name}: expected a grey (H, W) patch with channel_axis=None, got shape {arr.shape}; "
                    "pass channel_axis=-1 for an (H, W, C) colour patch, or use synthesize_batch for a batch"
                )
            what = "a grey (H, W) patch" if channel_axis is None else "an (H, W, C) patch with channel_axis=-1"
            raise InputValueError(f"{name}: expected {what}, got shape {arr.shape}")
    if arr.dtype not in _DTYPES:
        raise InputTypeError(f"{name}: expected dtype uint8 or uint16, got {arr.dtype}")
    ndim = (3, 4) if batch else (2, 3)
    if arr.ndim == ndim[1]:
        nch = arr.shape[-1]
        if not 1 <= nch <= _MAX_CHANNELS:
            raise InputValueError(
                f"{name}: expected 1 to {_MAX_CHANNELS} channels on the last axis, got shape {arr.shape}"
            )
    return arr


def check_room(h: int, w: int, params: ParamsLike, name: str = "patches") -> None:
    """Check that ``h x w`` patches leave room for the margin of ``params`` (what every synthesis
    function checks first); raises InputValueError naming ``name`` otherwise.

    >>> check_room(64, 64, "mixed")
    """
    margin = max_margin(resolve_params(params))
    if h < 2 * margin + 1 or w < 2 * margin + 1:
        raise InputValueError(
            f"{name}: expected height and width of at least 2 * margin + 1 = {2 * margin + 1} "
            f"(margin {margin} of params), got ({h}, {w})"
        )


def _scale(dtype: np.dtype) -> tuple[float, float]:
    """(maximum value, grey levels per 8-bit level) of a patch dtype."""
    return (255.0, 1.0) if dtype == np.uint8 else (65535.0, 257.0)


def _component_names(params: Union[DefectParams, DefectMixture]) -> tuple:
    return ("defect",) if isinstance(params, DefectParams) else params.names


def _run(arr: np.ndarray, params, seeds: np.ndarray, defective: np.ndarray, debug: bool):
    """Copy ``arr`` (N, H, W[, C]) and synthesize into the copy. Returns the raw outputs."""
    n, h, w = arr.shape[:3]
    nch = arr.shape[3] if arr.ndim == 4 else 1
    table, cum = encode(params)
    maxval, scale = _scale(arr.dtype)
    images = np.array(arr, dtype=arr.dtype, order="C", copy=True)
    masks = np.zeros((n, h, w), dtype=np.uint8)
    vis = np.zeros(n)
    accepted = np.zeros(n, dtype=bool)
    attempts = np.zeros(n, dtype=np.int64)
    info = np.zeros((n, K.N_INFO))
    if debug:
        max_points = int(table[:, K.T_MAX_POINTS].max())
        max_walks = int(table[:, K.T_BRANCHES + 1].max()) + 2
        tex = np.zeros((1, h, w))
        pts = np.zeros((1, max_points, 2))
        starts = np.zeros((1, max_walks), dtype=np.int64)
    else:
        tex = np.zeros((1, 1, 1))
        pts = np.zeros((1, 1, 2))
        starts = np.zeros((1, 1), dtype=np.int64)
    if n:
        kernel = K.synth_serial if n == 1 or run_serial() else K.synth_batch  # run_serial: in a loader worker
        kernel(
            images.reshape(n, -1), masks.reshape(n, -1), h, w, nch, seeds, defective, table, cum,
            maxval, scale, vis, accepted, attempts, info, debug, tex, pts, starts,
        )
    masks = masks.view(np.bool_)  # the kernel writes 0/1 bytes: bool in memory, without a copy
    return images, masks, vis, accepted, attempts, info, tex[0], pts[0], starts[0]


def _warn_rejected(n_rejected: int, n_requested: int, stacklevel: int = 3) -> None:
    if n_rejected:
        warnings.warn(
            f"{n_rejected} of {n_requested} defects stayed below the visibility threshold after "
            "max_attempts; those patches are returned unchanged with empty masks (see `accepted`)",
            SynthesisWarning,
            stacklevel=stacklevel,
        )


def _skeleton_from(pts: np.ndarray, starts: np.ndarray, npts: int, nw: int, h: int, w: int) -> Skeleton:
    points = pts[:npts].copy()
    starts = starts[: nw + 1].astype(np.int64)
    # A chain has at most one pixel per unit of Chebyshev length plus one per walk.
    cheb = 0
    for s in range(nw):
        seg = points[starts[s] : starts[s + 1]]
        if len(seg) > 1:
            cheb += int(np.abs(np.diff(np.floor(seg + 0.5), axis=0)).max(axis=1).sum())
    pixels = np.zeros((cheb + nw, 2), dtype=np.int64)
    pixel_starts = np.zeros(nw + 1, dtype=np.int64)
    m = K.chain_pixels(points, starts, nw, pixels, pixel_starts)
    raster = np.zeros((h, w))
    K.skeleton_raster(points, starts, nw, npts, h, w, raster)
    return Skeleton(points, starts, pixels[:m], pixel_starts, raster)


# --------------------------------------------------------------------------- public API


def synthesize_batch(
    patches: Any,
    params: ParamsLike,
    *,
    rng: Any = None,
    seeds: Any = None,
    defective: Any = None,
    warn: bool = True,
    channel_axis: int | None = None,
) -> BatchResult:
    """Synthesize one defect into each patch of a batch, in parallel over items.

    Each item follows the four steps (skeleton, texture, modification, visibility) with its own
    32-bit seed, so item i depends only on ``patches[i]`` and ``seeds[i]``: the same bytes on any
    number of Numba threads and in any batch order.

    Parameters
    ----------
    patches : array_like of uint8 or uint16, shape (N, H, W) or (N, H, W, C)
        Fault-free patches (C in 1..4); colour patches get the same texture with a gain per
        channel. Not modified.
    params : DefectParams, DefectMixture or str
        The morphology, a mixture, or a preset name (a key of ``PRESETS``).
    rng : None, int, SeedSequence, BitGenerator or Generator, optional
        The source the N unique per-item seeds are drawn from (SPEC 7). Deprecated (it warns):
        an array of N ints here is read as ``seeds``.
    seeds : array_like of N ints in ``[0, 2**32)``, optional
        The per-item seeds themselves, instead of ``rng`` (e.g. ``BatchResult.seeds[a:b]`` to
        regenerate items ``a:b``).
    defective : array_like of bool, shape (N,), optional
        Which items receive a defect (default all); the others are copied unchanged with an empty
        mask, ``accepted`` False and ``attempts`` 0.
    warn : bool, optional
        Emit a :class:`SynthesisWarning` when requested defects stayed below their threshold.
    channel_axis : None or -1, optional
        The batch axis is required, so ``(N, H, W)`` is grey and ``(N, H, W, C)`` colour;
        ``-1`` asserts the latter.

    Returns
    -------
    BatchResult
        ``images`` like ``patches`` (new array), ``masks`` uint8 0/1 (N, H, W), ``visibility``,
        ``accepted``, ``attempts`` and the ``seeds`` used.

    Raises
    ------
    TypeError
        If ``patches`` is not uint8/uint16, ``params`` has the wrong type, or seeds are not ints.
    ValueError
        If ``patches`` is not 3-D or 4-D, a side is smaller than ``2 * margin + 1``, ``params``
        names no preset, ``defective``/the seeds do not have N entries, or both ``rng`` and
        ``seeds`` are given.

    Warns
    -----
    SynthesisWarning
        When ``warn`` and some requested defects were not accepted.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.samples import screen_print
    >>> from ispad_core.synth import synthesize_batch
    >>> patches = np.stack([screen_print((64, 64), rng=i) for i in range(4)])
    >>> res = synthesize_batch(patches, "dot-dark", rng=0)
    >>> res.images.shape, res.masks.shape, res.masks.dtype
    ((4, 64, 64), (4, 64, 64), dtype('bool'))
    >>> bool(res.accepted.all()), bool(res.masks.reshape(4, -1).any(1).all())
    (True, True)
    >>> again = synthesize_batch(patches[2:], "dot-dark", seeds=res.seeds[2:])  # items 2 and 3
    >>> bool((again.images == res.images[2:]).all())
    True
    """
    params = resolve_params(params)
    arr = _check_patches(patches, "patches", batch=True, channel_axis=channel_axis)
    n, h, w = arr.shape[:3]
    check_room(h, w, params, "patches")
    seeds = item_seeds(rng, n, seeds=seeds)
    if defective is None:
        requested = np.ones(n, dtype=bool)
    else:
        requested = check_binary_labels(defective, "defective") if n else np.zeros(0, bool)
        if requested.shape[0] != n:
            raise InputValueError(f"defective: expected shape ({n},) like patches, got {requested.shape}")
    images, masks, vis, accepted, attempts, info, *_ = _run(arr, params, seeds, requested, False)
    if warn:
        _warn_rejected(int(np.count_nonzero(requested & ~accepted)), int(requested.sum()))
    return BatchResult(
        images, masks, vis, accepted, attempts, seeds,
        ssr=info[:, K.I_SSR].copy(), cnr=info[:, K.I_CNR].copy(), components=info[:, K.I_COMPONENT].astype(np.int64),
    )


def synthesize(
    patch: Any,
    params: ParamsLike,
    *,
    rng: RNGLike = None,
    seed: int | None = None,
    warn: bool = True,
    channel_axis: int | None = None,
) -> SynthResult:
    """Synthesize one defect into a patch (the four steps; see :func:`synthesize_batch`).

    Parameters
    ----------
    patch : array_like of uint8 or uint16, shape (H, W), or (H, W, C) with ``channel_axis=-1``
        A fault-free patch (C in 1..4). Not modified.
    params : DefectParams, DefectMixture or str
        The morphology, a mixture, or a preset name.
    rng : None, int, SeedSequence, BitGenerator or Generator, optional
        Source of the item's 32-bit seed, drawn as for a batch of one: the result equals item 0
        of ``synthesize_batch(patch[None], params, rng=rng)``. An int seeds that draw; it is not
        the item's seed, so ``synthesize(p, params, rng=5)`` is not the item of a batch whose
        seed is 5 (use ``seed=5`` for that). Deprecated (it warns): a one-element array here is
        read as ``seed``.
    seed : int in ``[0, 2**32)``, optional
        The item's own seed, instead of ``rng``: ``synthesize(patches[i], params,
        seed=int(res.seeds[i]))`` regenerates item ``i`` of ``res = synthesize_batch(...)``.
    warn : bool, optional
        Emit a :class:`SynthesisWarning` if the defect stayed below its threshold.
    channel_axis : None or -1, optional
        None: ``patch`` is grey ``(H, W)``; -1: its last axis holds colour, ``(H, W, C)``. A 3-D
        patch without ``channel_axis=-1`` is refused rather than guessed at.

    Returns
    -------
    SynthResult
        ``image`` like ``patch`` (a new array), ``mask`` uint8 0/1 (H, W), ``visibility``,
        ``accepted``, ``attempts``. A defect not accepted after ``max_attempts`` leaves
        ``image`` equal to ``patch`` and ``mask`` empty.

    Raises
    ------
    TypeError
        If ``patch`` is not uint8/uint16 or ``params`` has the wrong type.
    ValueError
        If ``patch`` does not have the shape ``channel_axis`` says, a side is smaller than
        ``2 * margin + 1``, or both ``rng`` and ``seed`` are given.

    Warns
    -----
    SynthesisWarning
        When ``warn`` and the defect was not accepted.

    Examples
    --------
    >>> from ispad_core.samples import screen_print
    >>> from ispad_core.synth import synthesize
    >>> patch = screen_print((128, 128), rng=0)
    >>> res = synthesize(patch, "fiber-bright", rng=0)
    >>> res.accepted, res.image.dtype, res.mask.shape
    (True, dtype('uint8'), (128, 128))
    >>> changed = (res.image != patch)
    >>> bool(res.mask[~changed].any())  # the mask marks only changed pixels
    False
    """
    params = resolve_params(params)
    arr = _check_patches(patch, "patch", batch=False, channel_axis=channel_axis)
    h, w = arr.shape[:2]
    check_room(h, w, params, "patch")
    seeds = one_seed(rng, seed)
    images, masks, vis, accepted, attempts, *_ = _run(arr[None], params, seeds, np.ones(1, bool), False)
    if warn:
        _warn_rejected(int(not accepted[0]), 1)
    return SynthResult(images[0], masks[0], float(vis[0]), bool(accepted[0]), int(attempts[0]))


def synthesize_steps(
    patch: Any,
    params: ParamsLike,
    *,
    rng: RNGLike = None,
    seed: int | None = None,
    channel_axis: int | None = None,
) -> SynthSteps:
    """:func:`synthesize` with every intermediate step of the last attempt exposed.

    The same ``rng`` gives the same ``image`` and ``mask`` as :func:`synthesize`; the skeleton,
    texture and both visibility measures belong to the attempt that was accepted (or the last one).
    Never warns; check ``accepted``.

    Parameters
    ----------
    patch, params, rng, seed, channel_axis
        As in :func:`synthesize`.

    Returns
    -------
    SynthSteps

    Examples
    --------
    >>> from ispad_core.samples import screen_print
    >>> from ispad_core.synth import synthesize_steps
    >>> patch = screen_print((96, 96), rng=1)
    >>> st = synthesize_steps(patch, "scratch", rng=3)
    >>> float(st.texture.max()), bool(((st.image != patch) <= (st.texture > 0)).all())
    (1.0, True)
    """
    params = resolve_params(params)
    arr = _check_patches(patch, "patch", batch=False, channel_axis=channel_axis)
    h, w = arr.shape[:2]
    check_room(h, w, params, "patch")
    seeds = one_seed(rng, seed)
    images, masks, vis, accepted, attempts, info, tex, pts, starts = _run(
        arr[None], params, seeds, np.ones(1, bool), True
    )
    info = info[0]
    skel = _skeleton_from(pts, starts, int(info[K.I_POINTS]), int(info[K.I_WALKS]), h, w)
    return SynthSteps(
        skeleton=skel,
        texture=tex,
        image=images[0],
        mask=masks[0],
        visibility=float(vis[0]),
        accepted=bool(accepted[0]),
        attempts=int(attempts[0]),
        ssr=float(info[K.I_SSR]),
        cnr=float(info[K.I_CNR]),
        component=_component_names(params)[int(info[K.I_COMPONENT])],
    )


def random_walk_skeleton(
    shape: Any, params: ParamsLike, *, rng: RNGLike = None, seed: int | None = None
) -> Skeleton:
    """Step 1 alone: the random walk with momentum for a patch of ``shape``, and its rasters.

    Uses exactly the draws :func:`synthesize` makes first, so the same ``rng`` gives the
    skeleton of :func:`synthesize`'s first attempt.

    Parameters
    ----------
    shape : tuple of two ints
        ``(H, W)`` of the patch, each at least ``2 * margin + 1``.
    params : DefectParams, DefectMixture or str
    rng : None, int, SeedSequence, BitGenerator or Generator, optional
    seed : int in ``[0, 2**32)``, optional
        The item's own seed, as in :func:`synthesize`.

    Returns
    -------
    Skeleton

    Raises
    ------
    TypeError, ValueError
        For a shape that is not two ints, or too small for the margin.

    Examples
    --------
    >>> from ispad_core.synth import random_walk_skeleton
    >>> sk = random_walk_skeleton((128, 128), "fiber-dark", rng=0)
    >>> bool((sk.points >= 8).all() and (sk.points <= 119).all())
    True
    >>> steps = abs(np.diff(sk.pixels[sk.pixel_starts[0]:sk.pixel_starts[1]], axis=0)).max(axis=1)
    >>> bool((steps == 1).all())  # 8-connected
    True
    """
    params = resolve_params(params)
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__"):
        raise InputTypeError(f"shape: expected a (height, width) pair of ints, got {type(shape).__name__}")
    if len(shape) != 2:
        raise InputValueError(f"shape: expected a (height, width) pair, got {len(shape)} values")
    h = check_int(shape[0], "shape[0]", minimum=1)
    w = check_int(shape[1], "shape[1]", minimum=1)
    check_room(h, w, params, "shape")
    seed = one_seed(rng, seed)[0]
    table, cum = encode(params)
    pts = np.zeros((int(table[:, K.T_MAX_POINTS].max()), 2))
    starts = np.zeros(int(table[:, K.T_BRANCHES + 1].max()) + 2, dtype=np.int64)
    npts, nw, _ = K.skeleton(h, w, seed, table, cum, pts, starts)
    return _skeleton_from(pts, starts, npts, nw, h, w)


def batch_kernels() -> tuple:
    """The Numba kernels :func:`synthesize_batch` runs (to tell whether they are compiled yet)."""
    return (K.synth_batch,)
