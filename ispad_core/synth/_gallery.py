"""Contact sheets of synthesized defects: each defect beside the same patch with its mask outlined."""

from __future__ import annotations

from typing import Any

import numpy as np

from ispad_core._validation import check_int, item_seeds
from ispad_core.samples import KINDS, screen_print
from ispad_core.synth._params import ParamsLike
from ispad_core.synth._synth import _check_patches, synthesize_batch

__all__ = ["gallery"]

_SEPARATOR = 4
_SHEET_GREY = 40
_REJECTED = np.array([230, 190, 0], np.uint8)


def _to_rgb8(images: np.ndarray) -> np.ndarray:
    """(N, H, W[, C]) uint8/uint16 -> (N, H, W, 3) uint8."""
    x = images
    if x.dtype == np.uint16:
        x = (x >> 8).astype(np.uint8)
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] == 2:
        x = np.concatenate([x, x[..., :1]], axis=-1)
    return np.ascontiguousarray(x[..., :3])


def _outer_contour(mask: np.ndarray) -> np.ndarray:
    """Pixels 8-adjacent to the mask but outside it, so the outline never covers the defect."""
    m = mask.astype(bool)
    grown = m.copy()
    grown[1:, :] |= m[:-1, :]
    grown[:-1, :] |= m[1:, :]
    g2 = grown.copy()
    g2[:, 1:] |= grown[:, :-1]
    g2[:, :-1] |= grown[:, 1:]
    return g2 & ~m


def gallery(
    params: ParamsLike = "mixed",
    *,
    backgrounds: Any = None,
    n: int = 8,
    size: int = 128,
    columns: int = 2,
    zoom: int = 1,
    rng: Any = None,
    outline: tuple = (255, 48, 48),
) -> np.ndarray:
    """An RGB contact sheet: each synthesized defect, and beside it the same with its mask outlined.

    Parameters
    ----------
    params : DefectParams, DefectMixture or str, optional
        What to synthesize (default the ``"mixed"`` preset).
    backgrounds : array_like of uint8 or uint16, shape (N, H, W) or (N, H, W, C), optional
        Fault-free patches; the first ``n`` are used. Default: ``n`` built-in
        :func:`ispad_core.samples.screen_print` grey patches of ``size`` px, cycling through
        the designs.
    n : int, optional
        Number of defects (pairs of tiles), at least 1.
    size : int, optional
        Side of the built-in backgrounds, at least 17 (unused with ``backgrounds``).
    columns : int, optional
        Pairs per row of the sheet.
    zoom : int, optional
        Integer nearest-neighbour magnification (1 to 8); the outline is drawn after zooming, one
        pixel wide, just outside the mask.
    rng : None, int, SeedSequence, BitGenerator or Generator, optional
        Seeds the backgrounds and the defects.
    outline : tuple of three ints, optional
        RGB colour of the mask outline.

    Returns
    -------
    numpy.ndarray of uint8, shape (rows * (H * zoom + 4) + 4, columns * 2 * (W * zoom + 4) + 4, 3)
        A defect not accepted after ``max_attempts`` leaves its patch unchanged; its second tile
        gets a one-pixel yellow frame instead of an outline.

    Raises
    ------
    TypeError, ValueError
        For invalid ``backgrounds`` (as :func:`synthesize_batch`) or out-of-range ints.

    Examples
    --------
    >>> from ispad_core.synth import gallery
    >>> sheet = gallery("dot-dark", n=4, size=64, columns=2, rng=0)
    >>> sheet.shape, sheet.dtype
    ((140, 276, 3), dtype('uint8'))
    """
    n = check_int(n, "n", minimum=1)
    columns = check_int(columns, "columns", minimum=1)
    zoom = check_int(zoom, "zoom", minimum=1, maximum=8)
    colour = np.asarray(outline)
    if colour.shape != (3,) or colour.dtype.kind not in "iu" or colour.min() < 0 or colour.max() > 255:
        raise ValueError(f"outline: expected three ints in [0, 255], got {outline!r}")
    seeds = item_seeds(rng, 2)
    if backgrounds is None:
        size = check_int(size, "size", minimum=17)
        bg_seeds = item_seeds(int(seeds[0]), n)
        patches = np.stack(
            [screen_print((size, size), rng=int(s), kind=KINDS[i % len(KINDS)]) for i, s in enumerate(bg_seeds)]
        )
    else:
        patches = _check_patches(backgrounds, "backgrounds", batch=True)
        if patches.shape[0] == 0:
            raise ValueError(f"backgrounds: expected a non-empty array, got shape {patches.shape}")
        patches = patches[:n]
    res = synthesize_batch(patches, params, rng=int(seeds[1]), warn=False)
    tiles = _to_rgb8(res.images)
    if zoom > 1:
        tiles = tiles.repeat(zoom, axis=1).repeat(zoom, axis=2)
    masks = res.masks.repeat(zoom, axis=1).repeat(zoom, axis=2) if zoom > 1 else res.masks
    count, th, tw = tiles.shape[:3]
    cols = min(columns, count)
    rows = -(-count // cols)
    sep = _SEPARATOR
    sheet = np.full((rows * (th + sep) + sep, cols * 2 * (tw + sep) + sep, 3), _SHEET_GREY, np.uint8)
    for i in range(count):
        r, c = divmod(i, cols)
        y = sep + r * (th + sep)
        x = sep + 2 * c * (tw + sep)
        sheet[y : y + th, x : x + tw] = tiles[i]
        marked = tiles[i].copy()
        if res.accepted[i]:
            marked[_outer_contour(masks[i])] = colour.astype(np.uint8)
        else:  # stayed invisible after max_attempts: the patch, framed
            marked[[0, -1], :] = _REJECTED
            marked[:, [0, -1]] = _REJECTED
        sheet[y : y + th, x + tw + sep : x + 2 * tw + sep] = marked
    return sheet
