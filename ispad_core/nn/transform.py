"""The training transform of real defects: augment, then crop the patch out of the middle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputValueError
from ispad_core._shared.validation import check_int
from ispad_core.augment import augment, resolve_augment
from ispad_core.tiling import center_crop

__all__ = ["RealTransform"]


@dataclass(frozen=True)
class RealTransform:
    """Augment a real defect (table 8), then crop its centre to the patch size: one draw.

    The ``real_transform`` of :class:`ispad_core.nn.InjectionDataset`: called as
    ``transform(image, rng)`` with a generator seeded per ``(seed, epoch, item)``, so every
    injection of a defect draws its own augmentation, reproducibly. Augmenting the whole (larger)
    image before the crop keeps the rotation's reflected borders out of the patch, as the paper's
    512 -> 256 crop does.

    Parameters
    ----------
    size : int
        Patch side.
    augment : AugmentParams, preset name or None, default "lsm1"
        The augmentation (``ispad_core.augment.AUGMENT_PRESETS``); None crops only.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.nn import RealTransform
    >>> image = np.random.default_rng(0).integers(0, 256, (96, 96), dtype=np.uint8)
    >>> patch = RealTransform(64)(image, np.random.default_rng(1))
    >>> patch.shape, patch.dtype
    ((64, 64), dtype('uint8'))
    >>> bool((RealTransform(64, augment=None)(image, None) == image[16:80, 16:80]).all())
    True
    """

    size: int
    augment: Any = "lsm1"

    def __post_init__(self) -> None:
        check_int(self.size, "size", minimum=1)
        if self.augment is not None:
            resolve_augment(self.augment)  # a bad preset name fails here, not in a DataLoader worker

    def __call__(self, image: np.ndarray, rng: Any) -> np.ndarray:
        if image.shape[0] < self.size or image.shape[1] < self.size:
            raise InputValueError(
                f"real: a defect image of {image.shape[0]} x {image.shape[1]} is smaller than the patch size {self.size}"
            )
        if self.augment is not None:
            image = augment(image, self.augment, rng=rng, channel_axis=-1 if image.ndim == 3 else None)
        return np.ascontiguousarray(center_crop(image, self.size))
