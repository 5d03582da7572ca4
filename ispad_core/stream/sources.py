"""The images a stream cuts its patches from: checked once, with the windows inside their ROIs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_array
from ispad_core.stream.plan import _derive64

__all__ = ["reduce_to_8_bits"]


@dataclass
class _Source:
    image: np.ndarray
    valid: np.ndarray | None  # (nr, nc) bool of window origins inside the ROI, None = all
    row_cum: np.ndarray | None  # cumulative valid origins per row
    count: int
    nc: int
    bits: int = 8  # of the image given; a 16-bit one is held reduced to 8 bits


def reduce_to_8_bits(image: np.ndarray) -> np.ndarray:
    """A uint16 image reduced to uint8 as ``round(v / 257)`` (the inverse of ``v * 257``).

    Examples
    --------
    >>> reduce_to_8_bits(np.array([0, 128, 257, 32896, 65535], np.uint16)).tolist()
    [0, 0, 1, 128, 255]
    """
    return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _prepare_sources(
    images: Any, rois: Any, size: int, min_roi_fraction: float, names: Sequence[str] | None = None
) -> list[_Source]:
    """Check the images and ROIs; errors name an image by ``names[j]`` (its file) when given."""
    if isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype != object:
        images = [images]
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence) or len(images) == 0:
        raise InputTypeError("images: expected an image array or a non-empty sequence of image arrays")
    if rois is None:
        rois = [None] * len(images)
    elif isinstance(rois, np.ndarray) and rois.ndim == 2:
        rois = [rois]
    if not isinstance(rois, Sequence) or len(rois) != len(images):
        raise InputValueError(f"rois: expected one ROI (or None) per image, {len(images)} in all")
    sources = []
    channels = None
    labels = [f"images[{j}]" for j in range(len(images))]
    if names is not None and len(names) == len(images):
        labels = [f"images[{j}] ({names[j]})" for j in range(len(images))]
    for j, (image, roi) in enumerate(zip(images, rois)):
        name = labels[j]
        image = check_array(image, name, ndim=(2, 3), dtypes=(np.uint8, np.uint16))
        bits = 8
        if image.dtype == np.uint16:
            image, bits = reduce_to_8_bits(image), 16
        if image.ndim == 3 and image.shape[2] not in (1, 3):
            raise InputValueError(f"{name}: expected (H, W) or (H, W, 3), got shape {image.shape}")
        ch = image.shape[2] if image.ndim == 3 else 0
        if channels is None:
            channels = ch
        elif ch != channels:
            raise InputValueError(f"{name}: has shape {image.shape}, but {labels[0]} has {'no' if not channels else channels} channel axis; expected all alike")
        h, w = image.shape[:2]
        if h < size or w < size:
            raise InputValueError(f"{name}: image of {h} x {w} pixels is smaller than the patch size {size}")
        nr, nc = h - size + 1, w - size + 1
        if roi is None:
            sources.append(_Source(np.ascontiguousarray(image), None, None, nr * nc, nc, bits))
            continue
        roi = check_array(roi, f"rois[{j}]", ndim=2, kinds="biu")
        if roi.shape != (h, w):
            raise InputValueError(f"rois[{j}]: expected shape {(h, w)} like {name}, got {roi.shape}")
        sat_dtype = np.int32 if h * w < 2**31 else np.int64  # summed-area table of the ROI
        sat = np.zeros((h + 1, w + 1), sat_dtype)
        np.cumsum(np.cumsum(roi != 0, axis=0, dtype=sat_dtype), axis=1, out=sat[1:, 1:])
        inside = sat[size:, size:] - sat[:-size, size:] - sat[size:, :-size] + sat[:-size, :-size]
        need = max(1, int(np.ceil(min_roi_fraction * size * size - 1e-9)))
        valid = inside >= need
        count = int(valid.sum())
        if count == 0:
            raise InputValueError(
                f"rois[{j}]: no {size} x {size} window has {min_roi_fraction:.0%} of its pixels inside "
                f"the region of interest ({int(sat[-1, -1])} ROI pixels in {h} x {w})"
            )
        sources.append(_Source(np.ascontiguousarray(image), valid, np.cumsum(valid.sum(axis=1)), count, nc, bits))
    return sources


def _positions(sources: list[_Source], seeds: np.ndarray, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Source index and (row, col) origin per item: uniform over all valid windows of all images."""
    counts = np.array([s.count for s in sources], np.uint64)
    cum = np.cumsum(counts)
    ranks = _derive64(seeds, key) % cum[-1]
    src = np.searchsorted(cum, ranks, side="right")
    local = (ranks - np.concatenate([[np.uint64(0)], cum[:-1]])[src]).astype(np.int64)
    origins = np.empty((seeds.shape[0], 2), np.int64)
    for i in range(seeds.shape[0]):
        s = sources[src[i]]
        r = int(local[i])
        if s.valid is None:
            origins[i] = divmod(r, s.nc)
        else:
            row = int(np.searchsorted(s.row_cum, r, side="right"))
            before = int(s.row_cum[row - 1]) if row else 0
            origins[i] = row, int(np.flatnonzero(s.valid[row])[r - before])
    return src.astype(np.int64), origins


def _extract(sources: list[_Source], src: np.ndarray, origins: np.ndarray, size: int) -> np.ndarray:
    first = sources[0].image
    out = np.empty((src.shape[0], size, size, *first.shape[2:]), np.uint8)
    for i in range(src.shape[0]):
        r, c = origins[i]
        out[i] = sources[src[i]].image[r : r + size, c : c + size]
    return out
