"""Pillow images into NumPy arrays without the whole-image copies of ``np.asarray``."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["pil_into_array"]

#: Rows are copied about this many bytes at a time.
BAND_BYTES = 1 << 23


def pil_into_array(image: Any, out: np.ndarray, *, band_bytes: int = BAND_BYTES) -> np.ndarray:
    """Copy the Pillow ``image`` into ``out`` a band of rows at a time, and return ``out``.

    ``np.asarray`` of a whole image holds Pillow's ``tobytes()`` pieces, their join and (for a
    writable array) a copy at once: three times the image. Band by band, only ``out`` and one
    band are held. ``out`` must have the shape and dtype ``np.asarray(image)`` would give.

    >>> from PIL import Image
    >>> im = Image.new("L", (3, 2), 7)
    >>> pil_into_array(im, np.empty((2, 3), np.uint8), band_bytes=3).tolist()
    [[7, 7, 7], [7, 7, 7]]
    """
    w, h = image.size
    step = max(1, band_bytes // max(1, out[:1].nbytes))
    for y in range(0, h, step):
        out[y : y + step] = np.asarray(image.crop((0, y, w, min(h, y + step))))
    return out
