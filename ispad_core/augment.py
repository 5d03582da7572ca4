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

from ispad_core import _augment_kernels as K
from ispad_core._validation import (
    RNGLike,
    check_array,
    check_choice,
    check_float,
    check_probability,
    check_range,
    item_seeds,
)

__all__ = ["AugmentParams", "AUGMENT_PRESETS", "augment", "augment_batch", "warp_affine"]

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


#: Table 8 of the paper. Rotation and shear are the table's maximum angles, drawn symmetrically;
#: "yes" flips are applied with probability 0.5; "no" illumination means factors fixed at 1.
#: The paper applies the affine part to "80 - 95 %" of the patches without a per-modality value;
#: every preset uses the middle of that range, 0.875.
AUGMENT_PRESETS: dict[str, AugmentParams] = {
    "lsm1": AugmentParams(
        rotation=45.0, scale=(0.9, 1.1), shear=10.0, vflip=0.5, hflip=0.5,
        brightness=(0.75, 1.25), contrast=(0.75, 1.25), p_affine=0.875,
    ),
    "lsm2": AugmentParams(
        rotation=45.0, scale=(0.9, 1.1), shear=20.0, vflip=0.5, hflip=0.5,
        brightness=(0.75, 1.25), contrast=(0.75, 1.25), p_affine=0.875,
    ),
    "asm": AugmentParams(
        rotation=10.0, scale=(1.0, 1.2), shear=10.0, vflip=0.5, hflip=0.5,
        brightness=(1.0, 1.0), contrast=(1.0, 1.0), p_affine=0.875,
    ),
}

ParamsLike = Union[AugmentParams, str]


def _resolve(params: ParamsLike) -> AugmentParams:
    if isinstance(params, str):
        return AUGMENT_PRESETS[check_choice(params, "params", tuple(AUGMENT_PRESETS))]
    if not isinstance(params, AugmentParams):
        raise TypeError(f"params: expected an AugmentParams or a preset name, got {type(params).__name__}")
    return params


def _check_masks(masks: Any, shape: tuple, name: str, like: str) -> np.ndarray:
    masks = check_array(masks, name, ndim=len(shape), dtypes=(np.bool_, np.uint8))
    if masks.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} like {like}, got {masks.shape}")
    return masks


def augment_batch(
    patches: Any,
    params: ParamsLike = "lsm1",
    *,
    rng: RNGLike | np.ndarray = None,
    masks: Any = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Apply one random affine transform and illumination change to every patch.

    Per item: with probability ``p_affine``, a transform made of flips, a rotation, an x-shear
    and a scale about the patch centre, drawn from ``params``, is applied by bilinear
    interpolation with reflected borders (the mask, if any, by nearest neighbour with the same
    geometry); then every pixel ``v`` of the (warped, rounded) patch becomes
    ``contrast * (brightness * v - mu) + mu``, where ``mu`` is the mean of ``brightness * v`` over
    the input patch (all pixels and channels), rounded half up and clipped to the dtype's range.
    Masks keep their values (0/1, 0/255 or bool): only pixels move.

    Parameters
    ----------
    patches : numpy.ndarray of uint8 or uint16, shape (N, H, W) or (N, H, W, C)
    params : AugmentParams or str
        Ranges, or the name of a preset in :data:`AUGMENT_PRESETS` ("lsm1", "lsm2", "asm").
    rng : None, int, numpy.random.Generator or array of N uint32 seeds
        Either the source of N per-item seeds, or the seeds themselves; item ``i`` depends only
        on ``patches[i]`` and its seed.
    masks : numpy.ndarray of bool or uint8, shape (N, H, W), optional
        Defect masks, transformed with the same geometry (no illumination change).

    Returns
    -------
    images : numpy.ndarray, like ``patches``
        New array.
    masks : numpy.ndarray, like ``masks``
        Only when ``masks`` is given: ``(images, masks)``.

    Raises
    ------
    TypeError
        If ``patches`` is not uint8/uint16, ``masks`` not bool/uint8, or ``params`` of a wrong
        type.
    ValueError
        On wrong shapes, an unknown preset, or invalid seeds.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.augment import augment_batch
    >>> patches = np.random.default_rng(0).integers(0, 256, (4, 64, 64), dtype=np.uint8)
    >>> masks = np.zeros((4, 64, 64), np.uint8); masks[:, 20:30, 20:40] = 1
    >>> images, warped = augment_batch(patches, "lsm1", rng=0, masks=masks)
    >>> images.shape, images.dtype, sorted(np.unique(warped).tolist())
    ((4, 64, 64), dtype('uint8'), [0, 1])
    >>> seeds = np.array([11, 22, 33, 44], dtype=np.uint32)
    >>> one = augment_batch(patches[2:3], "lsm1", rng=seeds[2:3])
    >>> bool((one[0] == augment_batch(patches, "lsm1", rng=seeds)[2]).all())
    True
    """
    params = _resolve(params)
    patches = check_array(patches, "patches", ndim=(3, 4), dtypes=_SUPPORTED, allow_empty=True)
    n = patches.shape[0]
    seeds = item_seeds(rng, n)
    images = patches if patches.ndim == 4 else patches[..., None]
    images = np.ascontiguousarray(images)
    out = np.empty_like(images)
    has_masks = masks is not None
    if has_masks:
        masks = _check_masks(masks, patches.shape[:3], "masks", "patches")
        mask_u8 = np.ascontiguousarray(masks).view(np.uint8)
        out_masks = np.empty_like(mask_u8)
    else:
        mask_u8 = np.zeros((0, 1, 1), np.uint8)
        out_masks = mask_u8
    if n and images.size:
        maxval = int(np.iinfo(images.dtype).max)
        K.augment_batch(images, mask_u8, has_masks, seeds, params._packed(), maxval, out, out_masks)
    out = out.reshape(patches.shape)
    if not has_masks:
        return out
    return out, out_masks.view(masks.dtype)


def augment(
    patch: Any,
    params: ParamsLike = "lsm1",
    *,
    rng: RNGLike = None,
    mask: Any = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Augment one patch (see :func:`augment_batch` for what is applied).

    Parameters
    ----------
    patch : numpy.ndarray of uint8 or uint16, shape (H, W) or (H, W, C)
    params : AugmentParams or str
        Ranges, or a preset name ("lsm1", "lsm2", "asm").
    rng : None, int or numpy.random.Generator
        Source of the patch's seed.
    mask : numpy.ndarray of bool or uint8, shape (H, W), optional

    Returns
    -------
    image : numpy.ndarray, like ``patch``
    mask : numpy.ndarray, like ``mask``
        Only when ``mask`` is given: ``(image, mask)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`augment_batch`.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.augment import augment, AugmentParams
    >>> patch = np.arange(64 * 64 * 3, dtype=np.uint16).reshape(64, 64, 3)
    >>> augment(patch, "asm", rng=0).shape
    (64, 64, 3)
    >>> still = AugmentParams(p_affine=0.0, brightness=(1, 1), contrast=(1, 1))
    >>> bool((augment(patch, still, rng=0) == patch).all())
    True
    """
    patch = check_array(patch, "patch", ndim=(2, 3), dtypes=_SUPPORTED)
    if mask is not None:
        mask = _check_masks(mask, patch.shape[:2], "mask", "patch")
        image, warped = augment_batch(patch[None], params, rng=item_seeds(rng, 1), masks=mask[None])
        return image[0], warped[0]
    return augment_batch(patch[None], params, rng=item_seeds(rng, 1))[0]


def warp_affine(patch: Any, matrix: Any, *, order: int = 1) -> np.ndarray:
    """Warp a patch with a fixed affine matrix, with reflected borders.

    Output pixel ``(r, c)`` takes the input value at position ``matrix @ (r, c, 1)`` (rows,
    columns), exactly as ``scipy.ndimage.affine_transform(patch, matrix[:, :2],
    offset=matrix[:, 2], order=order, mode="mirror")`` defines it; positions outside the patch
    are reflected without repeating the edge pixel (OpenCV's ``BORDER_REFLECT_101``). This is
    the warp :func:`augment_batch` uses.

    Parameters
    ----------
    patch : numpy.ndarray of uint8 or uint16, shape (H, W) or (H, W, C); or bool for ``order=0``
    matrix : array_like, shape (2, 3)
        Output-to-input mapping in (row, column) coordinates; finite.
    order : {0, 1}
        0 for nearest neighbour (input pixel ``floor(position + 0.5)``), 1 for bilinear
        (rounded half up).

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
    dtypes = _SUPPORTED + ((np.bool_,) if order == 0 else ())
    patch = check_array(patch, "patch", ndim=(2, 3), dtypes=dtypes)
    m = check_array(matrix, "matrix", ndim=2, kinds="iuf")
    if m.shape != (2, 3):
        raise ValueError(f"matrix: expected shape (2, 3), got {m.shape}")
    m = m.astype(np.float64)
    if not np.isfinite(m).all():
        raise ValueError("matrix: expected finite values, got NaN or inf")
    h, w = patch.shape[:2]
    corners = np.array([[0, 0, 1], [0, w - 1, 1], [h - 1, 0, 1], [h - 1, w - 1, 1]], dtype=np.float64)
    reach = float(np.abs(corners @ m.T).max()) + 1.0
    if reach > K.POSITION_LIMIT:
        raise ValueError(
            f"matrix: maps the patch to input positions up to {reach:.3g} pixels away; "
            f"expected at most {K.POSITION_LIMIT:.3g}"
        )
    image = patch if patch.ndim == 3 else patch[..., None]
    work = image.view(np.uint8) if image.dtype == np.bool_ else image
    if order == 1:
        work = np.ascontiguousarray(work)[None]
        out = np.empty_like(work)
        identity = np.arange(np.iinfo(work.dtype).max + 1).astype(work.dtype)
        K.warp_batch_bilinear(work, m, identity, out)
        return out[0].reshape(patch.shape)
    planes = np.ascontiguousarray(np.moveaxis(work, -1, 0))  # (C, H, W)
    out = np.empty_like(planes)
    K.warp_batch_nearest(planes, m, out)
    return np.moveaxis(out, 0, -1).reshape(patch.shape).view(patch.dtype)
