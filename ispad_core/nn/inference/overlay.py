"""The overlay picture of an inspection: the scan with its heat map blended in colour and the
flagged windows outlined."""

from __future__ import annotations

from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.pil import pil_into_array
from ispad_core._shared.validation import check_array, check_int
from ispad_core.nn.inference.scoring import Inspection

__all__ = ["overlay"]


# Grey levels of the overlay's colour map at heat 0, 0.25, 0.5, 0.75 and 1 (blue -> yellow -> red,
# ColorBrewer's RdYlBu reversed: readable on grey print and for the common colour deficiencies).
_OVERLAY_STOPS = np.array(
    [[49, 54, 149], [116, 173, 209], [254, 224, 144], [244, 109, 67], [165, 0, 38]], dtype=np.float64
)


_OUTLINE = np.array([0, 255, 255], dtype=np.uint8)  # flagged windows: cyan, apart from every heat colour


def _downsample_mean(image: np.ndarray, f: int) -> np.ndarray:
    """Block means of ``f x f`` pixels (edge blocks padded by repetition), a strip at a time."""
    if f == 1:
        return image
    H, W = image.shape[:2]
    h2, w2 = -(-H // f), -(-W // f)
    out = np.empty((h2, w2) + image.shape[2:], dtype=np.uint8)
    cols = np.minimum(np.arange(w2 * f), W - 1)
    for i in range(h2):
        rows = np.minimum(np.arange(i * f, (i + 1) * f), H - 1)
        strip = image[rows][:, cols].astype(np.float32)
        strip = strip.reshape((f, w2, f) + image.shape[2:]).mean(axis=(0, 2))
        out[i] = np.floor(strip + 0.5).astype(np.uint8)
    return out


def _colour_map(heat: np.ndarray) -> np.ndarray:
    x = np.clip(heat, 0.0, 1.0) * (len(_OVERLAY_STOPS) - 1)
    lo = np.minimum(np.floor(x).astype(np.int64), len(_OVERLAY_STOPS) - 2)
    t = (x - lo)[..., None]
    return _OVERLAY_STOPS[lo] * (1.0 - t) + _OVERLAY_STOPS[lo + 1] * t


def _covered(result: Inspection, f: int, picture: tuple[int, int]) -> np.ndarray:
    """Which pixels of a picture downsampled by ``f`` an inspected window covers, ``(h, w)`` bool."""
    covered = np.zeros(picture, dtype=bool)
    lo = -(-(result.origins - f // 2) // f)
    hi = -(-(result.origins + result.size - f // 2) // f)
    hi[result.origins + result.size >= np.array(result.shape)] = max(picture)  # windows at the border
    for (r0, c0), (r1, c1) in zip(lo.tolist(), hi.tolist()):  # K slice assignments: cheap next to inference
        covered[max(r0, 0) : r1, max(c0, 0) : c1] = True
    return covered


def _key_colours(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per colour key ``2 k + covered`` (window ``k`` of ``scores``, ``k = K`` for none, heat 0):
    ``keep = 1 - alpha`` ``(2K + 2, 1)`` and ``tint = colour * alpha`` ``(2K + 2, 3)`` in float64.

    A picture pixel's colour is ``base * keep + tint`` of its key: the per-pixel formula
    ``base * (1 - alpha) + colour(heat) * alpha`` with ``alpha = 0.15 + 0.55 * heat`` where an
    inspected window covers the pixel (0 elsewhere), the same float64 operations in the same
    order, done once per window instead of once per pixel."""
    heat = np.append(scores.astype(np.float32), np.float32(0.0)).astype(np.float64)
    heat = np.repeat(heat, 2)
    covered = np.tile(np.array([False, True]), heat.size // 2)
    alpha = np.where(covered, 0.15 + 0.55 * np.clip(heat, 0.0, 1.0), 0.0)[:, None]
    return 1.0 - alpha, _colour_map(heat) * alpha


def _rounded(blend: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(blend + 0.5), 0, 255).astype(np.uint8)


def _blend(small: np.ndarray, keys: np.ndarray, keep: np.ndarray, tint: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """The heat colours over the picture ``small`` (grey or RGB uint8), ``(h, w, 3)`` uint8.

    ``keys`` ``(h, w)`` selects each pixel's row of ``keep`` and ``tint`` (:func:`_key_colours`);
    pixels outside ``inside`` (the ROI) blend over ``0.45 * base``. When the picture has many
    pixels per key (a few thousand windows on a picture of millions of pixels), the result of
    every key in use and grey level in use is tabulated once and each pixel is one look-up;
    otherwise the formula runs per pixel, a strip of about a million pixels at a time (its float64
    working arrays some tens of MB for any scan)."""
    h, w = small.shape[:2]
    used = np.flatnonzero(np.bincount(keys.ravel(), minlength=keep.shape[0]))
    lo, hi = int(small.min()), int(small.max())
    if used.size * (hi - lo + 1) * (1 if inside is None else 2) <= h * w:
        return _blend_table(small, keys, used, (lo, hi), keep, tint, inside)
    rgb = np.empty((h, w, 3), dtype=np.uint8)
    step = max(1, (1 << 20) // w)
    for i in range(0, h, step):
        band = slice(i, i + step)
        k = keys[band]
        base = small[band].astype(np.float64)
        if base.ndim == 2:
            base = np.repeat(base[..., None], 3, axis=2)
        if inside is not None:
            base = np.where(inside[band][..., None], base, 0.45 * base)
        rgb[band] = _rounded(base * keep[k] + tint[k])
    return rgb


def _blend_table(small: np.ndarray, keys: np.ndarray, used: np.ndarray, levels: tuple[int, int], keep: np.ndarray,
                 tint: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """:func:`_blend` by a table of ``(key, grey level, channel)`` -> uint8, filled for the keys
    ``used`` and the grey levels ``lo..hi`` of ``small`` (a block of keys at a time), bright for the
    ROI and darkened outside it."""
    h, w = small.shape[:2]
    nkeys = keep.shape[0]
    lo, hi = levels
    n = hi - lo + 1
    grey = np.arange(lo, hi + 1, dtype=np.float64)[None, :, None]
    shades = (grey,) if inside is None else (grey, 0.45 * grey)
    table = np.empty((len(shades), nkeys, n, 3), dtype=np.uint8)  # rows of unused keys stay unset, never read
    for s, base in enumerate(shades):
        for j in range(0, used.size, 4096):
            part = used[j : j + 4096]
            table[s, part] = _rounded(base * keep[part, None, :] + tint[part, None, :])
    # int32 indices where the table allows (half the memory traffic of int64)
    itype = np.int32 if table.size < 2**31 else np.int64
    index = keys.astype(itype)  # then key * n - lo (+ the darkened half outside the ROI) + grey, in place
    index *= itype(n)
    index -= itype(lo)
    if inside is not None:
        np.add(index, itype(nkeys * n), out=index, where=~inside)
    rgb = np.empty((h, w, 3), dtype=np.uint8)
    if small.ndim == 2:
        index += small
        np.take(table.reshape(-1, 3), index, axis=0, out=rgb)
        return rgb
    for ch in range(3):
        rgb[..., ch] = table[..., ch].reshape(-1)[index + small[..., ch]]
    return rgb


def _font(px: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=px)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def overlay(
    image: Any,
    result: Inspection,
    *,
    roi: Any = None,
    max_side: int = 4096,
    title: str | None = None,
    max_outlined: int = 20,
) -> np.ndarray:
    """The scan with the heat map blended in colour and the flagged windows outlined.

    Inspected pixels are tinted from blue (score 0, faint) through yellow to red (score 1,
    strong: opacity ``0.15 + 0.55 * score``); pixels outside every inspected window (outside the
    ROI) keep the scan, darkened when a ``roi`` is given. Flagged windows are outlined in cyan and
    numbered by rank with their score, the hottest one with a thicker line; a banner states the
    verdict. Scans
    larger than ``max_side`` are shrunk by an integer factor (block means) first.

    Parameters
    ----------
    image : numpy.ndarray of uint8, shape (H, W) or (H, W, 3)
        The scan that was inspected.
    result : Inspection
        Its inspection.
    roi : numpy.ndarray, shape (H, W), optional
        The region of interest used, to darken what lies outside it.
    max_side : int, default 4096
        Longest side of the picture.
    title : str, optional
        First words of the banner (e.g. the file name).
    max_outlined : int, default 20
        Outline at most this many flagged windows (the highest scores); labels that would
        cover an earlier one are left out.

    Returns
    -------
    numpy.ndarray of uint8, shape (h, w, 3)

    Examples
    --------
    >>> import numpy as np, torch
    >>> from ispad_core.nn.inference import inspect
    >>> from ispad_core.nn.inference import overlay
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten())
    >>> image = np.random.default_rng(0).integers(0, 256, (100, 120), dtype=np.uint8)
    >>> picture = overlay(image, inspect(model, image, threshold=0.5, size=32))
    >>> picture.shape, picture.dtype
    ((100, 120, 3), dtype('uint8'))
    """
    from PIL import Image, ImageDraw

    if not isinstance(result, Inspection):
        raise InputTypeError(f"result: expected an Inspection, got {type(result).__name__}")
    image = check_array(image, "image", ndim=(2, 3), dtypes=(np.uint8,))
    if image.shape[:2] != result.shape:
        raise InputValueError(f"image: expected shape {result.shape} like the inspection, got {image.shape[:2]}")
    max_side = check_int(max_side, "max_side", minimum=16)
    max_outlined = check_int(max_outlined, "max_outlined", minimum=0)
    f = max(1, -(-max(result.shape) // max_side))
    small = _downsample_mean(image, f)
    h, w = small.shape[:2]
    # picture pixel (i, j) samples scan pixel (i * f + f // 2, j * f + f // 2), clipped to the scan
    rows = np.minimum(np.arange(h) * f + f // 2, result.shape[0] - 1)
    cols = np.minimum(np.arange(w) * f + f // 2, result.shape[1] - 1)
    # each pixel's window (never the whole-scan heat map: 4x a uint8 scan) and whether one covers it
    window = result.window_at(rows, cols)
    # at full resolution a pixel is covered exactly where it has a window (the same runs of rows
    # and columns); a shrunk picture's pixel stands for a block, which a window may cover in part
    covered = window >= 0 if f == 1 else _covered(result, f, (h, w))
    keys = window  # becomes 2 * window + covered, window K (heat 0) where none: in place, a scan-sized array less
    np.copyto(keys, result.scores.size, where=keys < 0)
    keys *= 2
    keys += covered
    inside = None
    if roi is not None:
        roi = check_array(roi, "roi", ndim=2, kinds="biu")
        if roi.shape != result.shape:
            raise InputValueError(f"roi: expected shape {result.shape} like the inspection, got {roi.shape}")
        inside = roi[np.ix_(rows, cols)] != 0
    rgb = _blend(small, keys, *_key_colours(result.scores), inside)
    del window, keys, covered, inside  # picture-sized: not held while Pillow draws (which copies the picture)

    picture = Image.fromarray(rgb)
    draw = ImageDraw.Draw(picture)
    line = max(1, round(min(h, w) / 400))
    font = _font(max(10, min(h, w) // 45))
    side = result.size / f
    cyan = tuple(int(v) for v in _OUTLINE)
    shown = result.flagged[:max_outlined].tolist()
    for rank in range(len(shown) - 1, -1, -1):  # the hottest drawn last, on top
        r, c = result.origins[shown[rank]] / f
        width = 2 * line if rank == 0 else line
        draw.rectangle([c, r, c + side - 1, r + side - 1], outline=cyan, width=width)
    labels: list[tuple] = []
    for rank, k in enumerate(shown):  # labels in rank order, none over an earlier one
        r, c = result.origins[k] / f
        width = 2 * line if rank == 0 else line
        text = f"{rank + 1}: {result.scores[k]:.2f}"
        box = draw.textbbox((c + width + 2, r + width + 1), text, font=font, stroke_width=max(1, line // 2))
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in labels):
            continue
        labels.append(box)
        draw.text((c + width + 2, r + width + 1), text, fill=cyan, font=font, stroke_width=max(1, line // 2),
                  stroke_fill=(0, 0, 0))
    verdict = "DEFECTIVE" if result.defective else "good"
    more = f" (the top {len(shown)} outlined)" if len(shown) < result.flagged.size else ""
    banner = (f"{title + ': ' if title else ''}{verdict}  max {result.max_score:.3f} "
              f"{'>=' if result.defective else '<'} threshold {result.threshold:.3f}  "
              f"{result.flagged.size} of {result.scores.size} windows flagged{more}")
    pad = max(2, line * 2)
    if draw.textbbox((0, 0), banner, font=font)[2] > w - 2 * pad:  # too wide: verdict, then the counts
        banner = banner.replace("  ", "\n", 1) if title else banner.replace("  ", "\n", 2).replace("\n", "  ", 1)
    box = draw.multiline_textbbox((0, 0), banner, font=font)
    draw.rectangle([0, 0, box[2] + 2 * pad, box[3] + 2 * pad], fill=(0, 0, 0))
    draw.multiline_text((pad, pad), banner, fill=(255, 80, 80) if result.defective else (120, 255, 120), font=font)
    return pil_into_array(picture, rgb)  # back into the blended array: no 3x-the-picture np.asarray
