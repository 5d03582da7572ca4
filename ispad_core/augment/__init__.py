"""Table-8 augmentation: one random affine transform and an illumination change per patch.

The ISP-AD paper augments its supervised training patches with vertical and horizontal flips,
rotation, shear and scaling, applied to 80-95 % of the patches, followed by random brightness and
contrast changes (section 3.2.3, table 8). :data:`AUGMENT_PRESETS` holds the table for the three
modalities; :func:`augment_batch` applies it with a Numba kernel (bilinear for the image,
nearest neighbour for the defect mask, so the mask stays binary and aligned; reflected borders,
never black ones, since a black border looks like a defect).

Per item ``i``, one 32-bit seed drives everything: the kernel seeds its generator with
``seeds[i]`` and draws, in this order, whether the affine part applies, the angle, scale, shear,
the vertical and the horizontal flip, the brightness and the contrast factor. The result for an
item therefore depends only on the item and its seed, not on the batch, its order or the number
of threads.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from ispad_core._shared.config import run_serial
from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core.augment import _kernels as K
from ispad_core.modality import MODALITIES
from ispad_core._shared.validation import (
    RNGLike,
    check_array,
    check_choice,
    check_float,
    check_probability,
    check_range,
    item_seeds,
    one_seed,
)

__all__ = [
    "AUGMENT_PRESETS",
    "AugmentParams",
    "augment",
    "augment_batch",
    "augment_batch_with_masks",
    "augment_with_mask",
    "resolve_augment",
    "warp_affine",
]

_SUPPORTED = (np.uint8, np.uint16)


def _symmetric_range(value: Any, name: str, limit: float) -> tuple[float, float]:
    """A scalar ``x`` means ``(-x, x)``; a pair is checked as a range inside ``[-limit, limit]``."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        x = check_float(value, name, minimum=0.0, maximum=limit)
        return (-x, x)
    return check_range(value, name, minimum=-limit, maximum=limit)


@dataclass(frozen=True)
class AugmentParams:
    """Ranges of the random affine transform and illumination change (table 8 of the paper).

    Every item draws its own values uniformly from these ranges.

    Parameters
    ----------
    rotation : (float, float) or float
        Rotation angle range in degrees, within [-180, 180]; a number ``x`` means ``(-x, x)``.
    scale : (float, float)
        Zoom factor range, within [0.1, 10] (> 1 magnifies).
    shear : (float, float) or float
        Shear angle range in degrees along the x (column) axis, within [-60, 60]; a number ``x``
        means ``(-x, x)``.
    vflip, hflip : float
        Probabilities of a vertical (top-bottom) and a horizontal (left-right) flip.
    brightness : (float, float)
        Brightness factor range, within [0, 10]; ``v -> brightness * v``.
    contrast : (float, float)
        Contrast factor range, within [0, 10]; values are spread by this factor about the patch
        mean.
    p_affine : float
        Probability that the affine part (flips, rotation, shear, scale) is applied at all; the
        illumination change is always drawn (a factor of 1 leaves the patch unchanged).

    Raises
    ------
    TypeError
        If a field has the wrong type.
    ValueError
        If a range has ``low > high`` or leaves its bounds, or a probability is outside [0, 1].

    Examples
    --------
    >>> from ispad_core.augment import AugmentParams
    >>> p = AugmentParams(rotation=30, shear=(0, 5), brightness=(0.9, 1.1))
    >>> p.rotation, p.shear
    ((-30.0, 30.0), (0.0, 5.0))
    >>> p.to_dict()["brightness"]
    [0.9, 1.1]
    """

    rotation: tuple[float, float] = (-45.0, 45.0)
    scale: tuple[float, float] = (0.9, 1.1)
    shear: tuple[float, float] = (-10.0, 10.0)
    vflip: float = 0.5
    hflip: float = 0.5
    brightness: tuple[float, float] = (0.75, 1.25)
    contrast: tuple[float, float] = (0.75, 1.25)
    p_affine: float = 0.875

    def __post_init__(self) -> None:
        fields = {
            "rotation": _symmetric_range(self.rotation, "rotation", 180.0),
            "scale": check_range(self.scale, "scale", minimum=0.1, maximum=10.0),
            "shear": _symmetric_range(self.shear, "shear", 60.0),
            "vflip": check_probability(self.vflip, "vflip"),
            "hflip": check_probability(self.hflip, "hflip"),
            "brightness": check_range(self.brightness, "brightness", minimum=0.0, maximum=10.0),
            "contrast": check_range(self.contrast, "contrast", minimum=0.0, maximum=10.0),
            "p_affine": check_probability(self.p_affine, "p_affine"),
        }
        for key, value in fields.items():
            object.__setattr__(self, key, value)

    def to_dict(self) -> dict:
        """JSON-serialisable dict of the fields (ranges as lists)."""
        return {
            f.name: list(getattr(self, f.name)) if isinstance(getattr(self, f.name), tuple) else getattr(self, f.name)
            for f in dataclasses.fields(self)
        }

    def _packed(self) -> np.ndarray:
        """The fields in the order the kernel's ``draw_params`` reads them."""
        return np.array(
            [
                self.p_affine,
                *self.rotation,
                *self.scale,
                *self.shear,
                self.vflip,
                self.hflip,
                *self.brightness,
                *self.contrast,
            ],
            dtype=np.float64,
        )


#: Table 8 of the paper, per modality, built from :data:`ispad_core.modality.MODALITIES`.
#: Rotation and shear are the table's maximum angles, drawn symmetrically; "yes" flips are
#: applied with probability 0.5; "no" illumination means factors fixed at 1. The paper applies
#: the affine part to "80 - 95 %" of the patches without a per-modality value; every preset uses
#: the middle of that range, 0.875.
AUGMENT_PRESETS: dict[str, AugmentParams] = {
    name: AugmentParams(**modality.augmentation) for name, modality in MODALITIES.items()
}

ParamsLike = Union[AugmentParams, str]


def resolve_augment(params: ParamsLike) -> AugmentParams:
    """The AugmentParams of a preset name (a key of :data:`AUGMENT_PRESETS`) or the params themselves."""
    if isinstance(params, str):
        return AUGMENT_PRESETS[check_choice(params, "params", tuple(AUGMENT_PRESETS))]
    if not isinstance(params, AugmentParams):
        raise InputTypeError(f"params: expected an AugmentParams or a preset name, got {type(params).__name__}")
    return params


def _check_masks(masks: Any, shape: tuple, name: str, like: str) -> np.ndarray:
    """Masks are bool or 0/1 uint8 in memory (0/255 belongs on disk only)."""
    masks = check_array(masks, name, ndim=len(shape), dtypes=(np.bool_, np.uint8), allow_empty=True)
    if masks.shape != shape:
        raise InputValueError(f"{name}: expected shape {shape} like {like}, got {masks.shape}")
    if masks.dtype == np.uint8 and masks.size and masks.max() > 1:
        raise InputValueError(
            f"{name}: expected a bool or 0/1 mask, got values up to {int(masks.max())} "
            "(0/255 is the on-disk form; convert with mask != 0)"
        )
    return masks


def _check_batch(patches: Any, channel_axis: Any) -> np.ndarray:
    check_choice(channel_axis, "channel_axis", (None, -1))
    patches = check_array(patches, "patches", ndim=(3, 4), dtypes=_SUPPORTED, allow_empty=True)
    if channel_axis == -1 and patches.ndim != 4:
        raise InputValueError(f"patches: expected (N, H, W, C) with channel_axis=-1, got shape {patches.shape}")
    return patches


def _check_patch(patch: Any, channel_axis: Any, func: str) -> np.ndarray:
    """One patch: ``(H, W)`` with ``channel_axis=None``, ``(H, W, C)`` with ``-1``; never guessed."""
    check_choice(channel_axis, "channel_axis", (None, -1))
    patch = check_array(patch, "patch", dtypes=_SUPPORTED)
    if channel_axis is None and patch.ndim != 2:
        hint = (
            f"; pass channel_axis=-1 for an (H, W, C) colour patch, or use {func} for a batch"
            if patch.ndim == 3 else ""
        )
        raise InputValueError(f"patch: expected a grey (H, W) patch with channel_axis=None, got shape {patch.shape}{hint}")
    if channel_axis == -1 and patch.ndim != 3:
        raise InputValueError(f"patch: expected an (H, W, C) patch with channel_axis=-1, got shape {patch.shape}")
    return patch


def _run(patches: np.ndarray, params: AugmentParams, seeds: np.ndarray, masks: np.ndarray | None):
    n = patches.shape[0]
    images = np.ascontiguousarray(patches if patches.ndim == 4 else patches[..., None])
    out = np.empty_like(images)
    if masks is not None:
        mask_u8 = np.ascontiguousarray(masks).view(np.uint8)
        out_masks = np.empty_like(mask_u8)
    else:
        mask_u8 = np.zeros((0, 1, 1), np.uint8)
        out_masks = mask_u8
    if n and images.size:
        maxval = int(np.iinfo(images.dtype).max)
        kernel = K.augment_serial if n == 1 or run_serial() else K.augment_batch
        kernel(images, mask_u8, masks is not None, seeds, params._packed(), maxval, out, out_masks)
    out = out.reshape(patches.shape)
    return out, (None if masks is None else out_masks.view(masks.dtype))


_MOVED = (
    "{name}: {func} returns only the augmented images (always one array); use "
    "{other} for images and masks together"
)


def augment_batch(
    patches: Any,
    params: ParamsLike = "lsm1",
    *,
    rng: RNGLike | np.ndarray = None,
    seeds: Any = None,
    channel_axis: int | None = None,
    masks: Any = None,
) -> np.ndarray:
    """Apply one random affine transform and illumination change to every patch.

    Per item: with probability ``p_affine``, a transform made of flips, a rotation, an x-shear
    and a scale about the patch centre, drawn from ``params``, is applied by bilinear
    interpolation with reflected borders; then every pixel ``v`` of the (warped, rounded) patch
    becomes ``contrast * (brightness * v - mu) + mu``, where ``mu`` is the mean of
    ``brightness * v`` over the input patch (all pixels and channels), rounded half up and
    clipped to the dtype's range. Always returns one array; :func:`augment_batch_with_masks`
    moves defect masks with the same geometry.

    Parameters
    ----------
    patches : numpy.ndarray of uint8 or uint16, shape (N, H, W) or (N, H, W, C)
        The batch axis is required, so 4-D means colour.
    params : AugmentParams or str
        Ranges, or the name of a preset in :data:`AUGMENT_PRESETS` ("lsm1", "lsm2", "asm").
    rng : None, int, SeedSequence, BitGenerator or Generator, optional
        The source of N unique per-item seeds (SPEC 7). Deprecated (it warns): an array
        of N seeds here is read as ``seeds``.
    seeds : array_like of N ints in ``[0, 2**32)``, optional
        The per-item seeds themselves, instead of ``rng``; item ``i`` depends only on
        ``patches[i]`` and ``seeds[i]``.
    channel_axis : None or -1, optional
        ``-1`` asserts that ``patches`` is ``(N, H, W, C)``.
    masks : None
        No longer taken here (the return type would change with it); passing masks raises a
        TypeError that points to :func:`augment_batch_with_masks`.

    Returns
    -------
    numpy.ndarray, like ``patches``
        A new array.

    Raises
    ------
    TypeError
        If ``patches`` is not uint8/uint16, ``params`` of a wrong type, or ``masks`` given.
    ValueError
        On wrong shapes, an unknown preset, invalid seeds, or both ``rng`` and ``seeds``.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.augment import augment_batch
    >>> patches = np.random.default_rng(0).integers(0, 256, (4, 64, 64), dtype=np.uint8)
    >>> images = augment_batch(patches, "lsm1", rng=0)
    >>> images.shape, images.dtype
    ((4, 64, 64), dtype('uint8'))
    >>> seeds = np.array([11, 22, 33, 44], dtype=np.uint32)
    >>> one = augment_batch(patches[2:3], "lsm1", seeds=seeds[2:3])
    >>> bool((one[0] == augment_batch(patches, "lsm1", seeds=seeds)[2]).all())
    True
    """
    if masks is not None:
        raise InputTypeError(_MOVED.format(name="masks", func="augment_batch", other="augment_batch_with_masks"))
    params = resolve_augment(params)
    patches = _check_batch(patches, channel_axis)
    item = item_seeds(rng, patches.shape[0], seeds=seeds)
    return _run(patches, params, item, None)[0]


def augment_batch_with_masks(
    patches: Any,
    masks: Any,
    params: ParamsLike = "lsm1",
    *,
    rng: RNGLike | np.ndarray = None,
    seeds: Any = None,
    channel_axis: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`augment_batch` that also moves each patch's defect mask with the same geometry.

    The masks are warped by nearest neighbour (no illumination change), so they stay binary
    and aligned with the defects; the images are exactly those of :func:`augment_batch` with
    the same seeds.

    Parameters
    ----------
    patches : numpy.ndarray of uint8 or uint16, shape (N, H, W) or (N, H, W, C)
    masks : numpy.ndarray of bool or uint8 (0/1), shape (N, H, W)
    params, rng, seeds, channel_axis
        As in :func:`augment_batch`.

    Returns
    -------
    images : numpy.ndarray, like ``patches``
    masks : numpy.ndarray, like ``masks``
        Always the pair.

    Raises
    ------
    TypeError, ValueError
        As :func:`augment_batch`; also for masks that are not bool or 0/1, or not ``(N, H, W)``.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.augment import augment_batch, augment_batch_with_masks
    >>> patches = np.random.default_rng(0).integers(0, 256, (4, 64, 64), dtype=np.uint8)
    >>> masks = np.zeros((4, 64, 64), bool); masks[:, 20:30, 20:40] = True
    >>> images, warped = augment_batch_with_masks(patches, masks, "lsm1", rng=0)
    >>> warped.dtype, bool((images == augment_batch(patches, "lsm1", rng=0)).all())
    (dtype('bool'), True)
    """
    params = resolve_augment(params)
    patches = _check_batch(patches, channel_axis)
    masks = _check_masks(masks, patches.shape[:3], "masks", "patches")
    item = item_seeds(rng, patches.shape[0], seeds=seeds)
    return _run(patches, params, item, masks)


def augment(
    patch: Any,
    params: ParamsLike = "lsm1",
    *,
    rng: RNGLike = None,
    seed: int | None = None,
    channel_axis: int | None = None,
    mask: Any = None,
) -> np.ndarray:
    """Augment one patch (see :func:`augment_batch` for what is applied).

    Parameters
    ----------
    patch : numpy.ndarray of uint8 or uint16, shape (H, W), or (H, W, C) with ``channel_axis=-1``
    params : AugmentParams or str
        Ranges, or a preset name ("lsm1", "lsm2", "asm").
    rng : None, int, SeedSequence, BitGenerator or Generator, optional
        Source of the patch's seed, drawn as for a batch of one.
    seed : int in ``[0, 2**32)``, optional
        The patch's own seed instead of ``rng``: the item of ``augment_batch(..., seeds=...)``
        whose seed it is.
    channel_axis : None or -1, optional
        None: ``patch`` is grey ``(H, W)``; -1: its last axis holds colour. A 3-D patch without
        ``channel_axis=-1`` is refused rather than guessed at (it may be a batch).
    mask : None
        No longer taken here; use :func:`augment_with_mask`.

    Returns
    -------
    numpy.ndarray, like ``patch``

    Raises
    ------
    TypeError, ValueError
        As :func:`augment_batch`; ValueError also for a shape ``channel_axis`` does not allow.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.augment import augment, AugmentParams
    >>> patch = np.arange(64 * 64 * 3, dtype=np.uint16).reshape(64, 64, 3)
    >>> augment(patch, "asm", rng=0, channel_axis=-1).shape
    (64, 64, 3)
    >>> still = AugmentParams(p_affine=0.0, brightness=(1, 1), contrast=(1, 1))
    >>> bool((augment(patch, still, rng=0, channel_axis=-1) == patch).all())
    True
    """
    if mask is not None:
        raise InputTypeError(_MOVED.format(name="mask", func="augment", other="augment_with_mask"))
    params = resolve_augment(params)
    patch = _check_patch(patch, channel_axis, "augment_batch")
    return _run(patch[None], params, one_seed(rng, seed), None)[0][0]


def augment_with_mask(
    patch: Any,
    mask: Any,
    params: ParamsLike = "lsm1",
    *,
    rng: RNGLike = None,
    seed: int | None = None,
    channel_axis: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`augment` that also moves the patch's defect mask (see :func:`augment_batch_with_masks`).

    Parameters
    ----------
    patch : numpy.ndarray of uint8 or uint16, shape (H, W), or (H, W, C) with ``channel_axis=-1``
    mask : numpy.ndarray of bool or uint8 (0/1), shape (H, W)
    params, rng, seed, channel_axis
        As in :func:`augment`.

    Returns
    -------
    image : numpy.ndarray, like ``patch``
    mask : numpy.ndarray, like ``mask``

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.augment import augment_with_mask
    >>> patch = np.zeros((32, 32), np.uint8); patch[4:8, 4:20] = 200
    >>> image, moved = augment_with_mask(patch, patch > 0, "asm", rng=3)
    >>> bool(((image > 100) == moved).mean() > 0.95)
    True
    """
    params = resolve_augment(params)
    patch = _check_patch(patch, channel_axis, "augment_batch_with_masks")
    mask = _check_masks(mask, patch.shape[:2], "mask", "patch")
    images, masks = _run(patch[None], params, one_seed(rng, seed), mask[None])
    return images[0], masks[0]


def warp_affine(patch: Any, matrix: Any, *, order: int = 1, channel_axis: int | None = None) -> np.ndarray:
    """Warp a patch with a fixed affine matrix, with reflected borders.

    Output pixel ``(r, c)`` takes the input value at position ``matrix @ (r, c, 1)`` (rows,
    columns), exactly as ``scipy.ndimage.affine_transform(patch, matrix[:, :2],
    offset=matrix[:, 2], order=order, mode="mirror")`` defines it; positions outside the patch
    are reflected without repeating the edge pixel (OpenCV's ``BORDER_REFLECT_101``). This is
    the warp :func:`augment_batch` uses.

    Parameters
    ----------
    patch : numpy.ndarray of uint8 or uint16, shape (H, W), or (H, W, C) with ``channel_axis=-1``; or bool for ``order=0``
    matrix : array_like, shape (2, 3)
        Output-to-input mapping in (row, column) coordinates; finite.
    order : {0, 1}
        0 for nearest neighbour (input pixel ``floor(position + 0.5)``), 1 for bilinear
        (rounded half up).
    channel_axis : None or -1, optional
        None: ``patch`` is ``(H, W)``; -1: its last axis holds channels (each warped alike).

    Returns
    -------
    numpy.ndarray, like ``patch``

    Raises
    ------
    TypeError
        On a wrong dtype.
    ValueError
        On a wrong shape, a non-finite matrix or an unknown ``order``.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.augment import warp_affine
    >>> patch = np.arange(12, dtype=np.uint8).reshape(3, 4)
    >>> warp_affine(patch, [[-1, 0, 2], [0, 1, 0]])  # vertical flip
    array([[ 8,  9, 10, 11],
           [ 4,  5,  6,  7],
           [ 0,  1,  2,  3]], dtype=uint8)
    >>> warp_affine(patch, [[1, 0, 0], [0, 1, 0.5]])  # half a pixel to the left
    array([[ 1,  2,  3,  3],
           [ 5,  6,  7,  7],
           [ 9, 10, 11, 11]], dtype=uint8)
    """
    order = check_choice(order, "order", (0, 1))
    check_choice(channel_axis, "channel_axis", (None, -1))
    dtypes = _SUPPORTED + ((np.bool_,) if order == 0 else ())
    patch = check_array(patch, "patch", dtypes=dtypes)
    want = 2 if channel_axis is None else 3
    if patch.ndim != want:
        what = "an (H, W) patch with channel_axis=None" if channel_axis is None else "an (H, W, C) patch with channel_axis=-1"
        raise InputValueError(f"patch: expected {what}, got shape {patch.shape}")
    m = check_array(matrix, "matrix", ndim=2, kinds="iuf")
    if m.shape != (2, 3):
        raise InputValueError(f"matrix: expected shape (2, 3), got {m.shape}")
    m = m.astype(np.float64)
    if not np.isfinite(m).all():
        raise InputValueError("matrix: expected finite values, got NaN or inf")
    h, w = patch.shape[:2]
    corners = np.array([[0, 0, 1], [0, w - 1, 1], [h - 1, 0, 1], [h - 1, w - 1, 1]], dtype=np.float64)
    reach = float(np.abs(corners @ m.T).max()) + 1.0
    if reach > K.POSITION_LIMIT:
        raise InputValueError(
            f"matrix: maps the patch to input positions up to {reach:.3g} pixels away; "
            f"expected at most {K.POSITION_LIMIT:.3g}"
        )
    image = patch if patch.ndim == 3 else patch[..., None]
    work = image.view(np.uint8) if image.dtype == np.bool_ else image
    if order == 1:
        work = np.ascontiguousarray(work)[None]
        out = np.empty_like(work)
        identity = np.arange(np.iinfo(work.dtype).max + 1).astype(work.dtype)
        K.warp_serial_bilinear(work, m, identity, out)  # one item: a parallel launch costs more
        return out[0].reshape(patch.shape)
    planes = np.ascontiguousarray(np.moveaxis(work, -1, 0))  # (C, H, W)
    out = np.empty_like(planes)
    kernel = K.warp_serial_nearest if planes.shape[0] == 1 or run_serial() else K.warp_batch_nearest
    kernel(planes, m, out)
    return np.moveaxis(out, 0, -1).reshape(patch.shape).view(patch.dtype)


def batch_kernels() -> tuple:
    """The Numba kernels :func:`augment_batch` runs (to tell whether they are compiled yet)."""
    return (K.augment_batch,)
