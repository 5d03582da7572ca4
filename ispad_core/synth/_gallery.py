"""Contact sheets of synthesized defects: each defect beside the same patch with its mask outlined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_int, item_seeds
from ispad_core._shared.screen_print import KINDS, screen_print
from ispad_core.synth import _synth_kernels as K
from ispad_core.synth._params import ParamsLike, resolve_params
from ispad_core.synth._synth import _check_patches, check_room, _component_names, _run, _scale

__all__ = ["DefectFigures", "GallerySheet", "annotated_gallery", "gallery"]

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


@dataclass(frozen=True)
class DefectFigures:
    """The visibility figures of one defect of a contact sheet (its last attempt).

    Attributes
    ----------
    index : int
        Position on the sheet (row-major, from 0).
    component : str
        The mixture component drawn (the name of the single component for a DefectParams).
    accepted : bool
        Whether it passed the synthesizer's visibility test.
    attempts : int
        Attempts drawn.
    ssr : float
        Sum of squared residuals (8-bit grey levels squared, averaged over channels).
    cnr : float
        Contrast-to-noise ratio (0 for an empty mask).
    contrast : float
        Mean absolute change of the mask's pixels, in 8-bit grey levels (0 for an empty mask).
    """

    index: int
    component: str
    accepted: bool
    attempts: int
    ssr: float
    cnr: float
    contrast: float

    def __str__(self) -> str:
        state = "accepted" if self.accepted else "NOT accepted"
        return (
            f"{self.index}: {self.component}, {state} after {self.attempts} attempt(s), contrast "
            f"{self.contrast:.1f} grey levels, cnr {self.cnr:.2f}, ssr {self.ssr:.0f}"
        )

    def caption(self) -> str:
        """A short caption for the sheet."""
        mark = "" if self.accepted else " REJ"
        return f"{self.index}: {self.contrast:.1f} gl  cnr {self.cnr:.2f}  ssr {self.ssr:.0f}{mark}"


@dataclass(frozen=True)
class GallerySheet:
    """A contact sheet and the visibility figures of its defects (:func:`annotated_gallery`).

    Attributes
    ----------
    sheet : numpy.ndarray of uint8, shape (rows, columns, 3)
    figures : tuple of DefectFigures
        One per defect, in sheet order.
    """

    sheet: np.ndarray
    figures: tuple


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
    return _gallery(params, backgrounds, n, size, columns, zoom, rng, outline, False).sheet


def annotated_gallery(
    params: ParamsLike = "mixed",
    *,
    backgrounds: Any = None,
    n: int = 8,
    size: int = 128,
    columns: int = 2,
    zoom: int = 1,
    rng: Any = None,
    outline: tuple = (255, 48, 48),
    captions: bool = True,
) -> GallerySheet:
    """:func:`gallery` with each defect's visibility figures, returned and drawn beside it.

    The same arguments give the same defects as :func:`gallery`. With ``captions`` a strip under
    each pair of tiles carries the defect's number, its contrast (mean absolute change of the
    mask's pixels, 8-bit grey levels), contrast-to-noise ratio and sum of squared residuals
    ("REJ" marks one not accepted); without, the sheet is :func:`gallery`'s.

    Parameters
    ----------
    params, backgrounds, n, size, columns, zoom, rng, outline
        As :func:`gallery`.
    captions : bool
        Draw the figures under each pair (default True).

    Returns
    -------
    GallerySheet

    Examples
    --------
    >>> from ispad_core.synth import gallery
    >>> from ispad_core.synth import annotated_gallery
    >>> g = annotated_gallery("dot-dark", n=2, size=64, rng=0, captions=False)
    >>> bool((g.sheet == gallery("dot-dark", n=2, size=64, rng=0)).all()), len(g.figures)
    (True, 2)
    >>> g.figures[0].accepted, g.figures[0].contrast >= 1.0
    (True, True)
    """
    if not isinstance(captions, bool):
        raise InputTypeError(f"captions: expected a bool, got {type(captions).__name__}")
    return _gallery(params, backgrounds, n, size, columns, zoom, rng, outline, captions)


_CAPTION = 14  # px of the caption strip under each row of pairs


def _draw_captions(sheet: np.ndarray, texts: list, boxes: list) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(sheet)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for text, (x, y, width) in zip(texts, boxes):
        if draw.textlength(text, font=font) > width:  # shorten to the pair's width
            while len(text) > 1 and draw.textlength(text + "..", font=font) > width:
                text = text[:-1]
            text += ".."
        draw.text((x, y), text, fill=(235, 235, 235), font=font)
    return np.asarray(img).copy()


def _gallery(params, backgrounds, n, size, columns, zoom, rng, outline, captions) -> GallerySheet:
    n = check_int(n, "n", minimum=1)
    columns = check_int(columns, "columns", minimum=1)
    zoom = check_int(zoom, "zoom", minimum=1, maximum=8)
    colour = np.asarray(outline)
    if colour.shape != (3,) or colour.dtype.kind not in "iu" or colour.min() < 0 or colour.max() > 255:
        raise InputValueError(f"outline: expected three ints in [0, 255], got {outline!r}")
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
            raise InputValueError(f"backgrounds: expected a non-empty array, got shape {patches.shape}")
        patches = patches[:n]
    # what synthesize_batch(patches, params, rng=int(seeds[1]), warn=False) does, keeping both measures
    params = resolve_params(params)
    check_room(patches.shape[1], patches.shape[2], params, "backgrounds")
    count = patches.shape[0]
    images, res_masks, _, accepted, attempts, info, *_ = _run(
        patches, params, item_seeds(int(seeds[1]), count), np.ones(count, bool), False
    )
    names = _component_names(params)
    scale = _scale(patches.dtype)[1]
    figures = []
    for i in range(count):
        m = res_masks[i].astype(bool)
        change = np.abs(images[i].astype(np.float64) - patches[i])
        if change.ndim == 3:
            change = change.mean(axis=2)
        figures.append(DefectFigures(
            index=i,
            component=names[int(info[i, K.I_COMPONENT])],
            accepted=bool(accepted[i]),
            attempts=int(attempts[i]),
            ssr=float(info[i, K.I_SSR]),
            cnr=float(info[i, K.I_CNR]),
            contrast=float(change[m].mean() / scale) if m.any() else 0.0,
        ))
    tiles = _to_rgb8(images)
    if zoom > 1:
        tiles = tiles.repeat(zoom, axis=1).repeat(zoom, axis=2)
    masks = res_masks.repeat(zoom, axis=1).repeat(zoom, axis=2) if zoom > 1 else res_masks
    th, tw = tiles.shape[1:3]
    cols = min(columns, count)
    rows = -(-count // cols)
    sep = _SEPARATOR
    cap = _CAPTION if captions else 0
    sheet = np.full((rows * (th + cap + sep) + sep, cols * 2 * (tw + sep) + sep, 3), _SHEET_GREY, np.uint8)
    boxes = []
    for i in range(count):
        r, c = divmod(i, cols)
        y = sep + r * (th + cap + sep)
        x = sep + 2 * c * (tw + sep)
        boxes.append((x, y + th + 1, 2 * tw + sep))
        sheet[y : y + th, x : x + tw] = tiles[i]
        marked = tiles[i].copy()
        if accepted[i]:
            marked[_outer_contour(masks[i])] = colour.astype(np.uint8)
        else:  # stayed invisible after max_attempts: the patch, framed
            marked[[0, -1], :] = _REJECTED
            marked[:, [0, -1]] = _REJECTED
        sheet[y : y + th, x + tw + sep : x + 2 * tw + sep] = marked
    if captions:
        sheet = _draw_captions(sheet, [f.caption() for f in figures], boxes)
    return GallerySheet(sheet, tuple(figures))
