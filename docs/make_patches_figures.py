"""Make the figures of docs/patches.md from the library itself.

    python docs/make_patches_figures.py            # writes docs/figures/patches_*.png

- ``patches_tiling.png``: the paper's test grid (256 x 256 windows, stride 160, 13 x 13 windows
  on a 2048 x 2048 image; the last row and column moved back to the border, drawn in orange)
  and random training patches drawn inside a region of interest.
- ``patches_augment.png``: one patch with a drawn-in defect and its mask, augmented with the
  table-8 presets (LSM-1 with the mask outlined in red to show it stays aligned, LSM-2, ASM).

The sample image is the built-in ``ispad_core.samples.screen_print``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
from PIL import Image, ImageDraw

from ispad_core.augment import augment_batch, augment_batch_with_masks
from ispad_core.samples import screen_print
from ispad_core.tiling import random_patches, sliding_windows

OUT = Path(__file__).resolve().parent / "figures"
SEED = 0
RED, GREEN, BLUE, ORANGE = (255, 0, 0), (0, 200, 0), (30, 144, 255), (255, 140, 0)


def _palette() -> Image.Image:
    """40 grey levels and the pure overlay colours: an indexed PNG of the noisy print textures
    stays under the 300 KB budget of docs/, and the overlays keep their colour."""
    colours = [(int(g),) * 3 for g in np.linspace(0, 255, 40).round()]
    colours += [RED, GREEN, BLUE, ORANGE]
    flat = [v for rgb in colours for v in rgb]
    flat += flat[-3:] * (256 - len(colours))
    pal = Image.new("P", (1, 1))
    pal.putpalette(flat)
    return pal


def sample_image(shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    return screen_print(shape, rng=np.random.default_rng(SEED), kind="mixed", channels=1), "ispad_core.samples.screen_print"


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def _downsample(img: np.ndarray, f: int) -> np.ndarray:
    h, w = img.shape[0] // f * f, img.shape[1] // f * f
    x = img[:h, :w].astype(np.float64)
    x = x.reshape(h // f, f, w // f, f, *img.shape[2:]).mean(axis=(1, 3))
    return np.round(x).astype(np.uint8)


def tiling_figure(image: np.ndarray, label: str) -> Image.Image:
    f = 4
    tiles, origins = sliding_windows(image, 256, 160)
    last_r, last_c = origins[:, 0].max(), origins[:, 1].max()
    left = Image.fromarray(_rgb(_downsample(image, f)))
    draw = ImageDraw.Draw(left, "RGBA")

    def box(r, c):
        return [c / f, r / f, (c + 256) / f - 1, (r + 256) / f - 1]

    for r, c in origins:
        moved = r == last_r or c == last_c
        draw.rectangle(box(r, c), outline=ORANGE if moved else BLUE, width=1)
    # three neighbouring windows drawn thick, to show the 96-pixel overlaps, and the corner window
    for (r, c), colour in [((0, 0), RED), ((0, 160), GREEN), ((160, 0), (0, 0, 0)), ((last_r, last_c), RED)]:
        draw.rectangle(box(r, c), outline=colour, width=3)
    left_title = f"sliding_windows(image, 256, 160): {tiles.grid[0]} x {tiles.grid[1]} windows (orange: moved back)"

    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w]
    roi = ((yy - h / 2) / (0.42 * h)) ** 2 + ((xx - w / 2) / (0.46 * w)) ** 4 < 1.0
    _, picked = random_patches(image, 40, 256, roi=roi, rng=SEED)
    shaded = _rgb(image).astype(np.float64)
    shaded[~roi] *= 0.45
    right = Image.fromarray(_downsample(shaded.astype(np.uint8), f))
    draw = ImageDraw.Draw(right, "RGBA")
    for r, c in picked:
        draw.rectangle([c / f, r / f, (c + 256) / f - 1, (r + 256) / f - 1], outline=GREEN, width=1)
    right_title = "random_patches(image, 40, 256, roi=roi): windows inside the ROI (dark: outside)"

    sheet = Image.new("RGB", (left.width + right.width + 8, left.height + 34), "white")
    sheet.paste(left, (0, 0))
    sheet.paste(right, (left.width + 8, 0))
    draw = ImageDraw.Draw(sheet)
    draw.text((4, left.height + 3), left_title, fill=(0, 0, 0))
    draw.text((left.width + 12, left.height + 3), right_title, fill=(0, 0, 0))
    draw.text((4, left.height + 19), f"2048 x 2048 sample, shown at 1/4 scale: {label}", fill=(0, 0, 0))
    return sheet


def _defect(patch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw a dark curved fibre into the patch; return the patch and its 0/1 mask."""
    yy, xx = np.mgrid[0 : patch.shape[0], 0 : patch.shape[1]]
    path = 70 + 0.004 * (xx - 40) ** 2
    mask = (np.abs(yy - path) < 2.5) & (xx > 40) & (xx < 200)
    out = patch.copy()
    out[mask] = (out[mask] * 0.35).astype(np.uint8)
    return out, mask.astype(np.uint8)


def augment_figure(image: np.ndarray) -> Image.Image:
    patches, _ = random_patches(image, 1, 256, rng=SEED + 1)
    patch, mask = _defect(patches[0])
    n = 7
    batch = np.repeat(patch[None], n, axis=0)
    masks = np.repeat(mask[None], n, axis=0)
    seeds = np.arange(1, n + 1, dtype=np.uint32)
    rows = []
    lsm1, lsm1_masks = augment_batch_with_masks(batch, masks, "lsm1", seeds=seeds)
    rows.append(("LSM-1", [patch] + list(lsm1), None))
    rows.append(("LSM-1 + mask", [patch] + list(lsm1), [mask] + list(lsm1_masks)))
    rows.append(("LSM-2", [patch] + list(augment_batch(batch, "lsm2", seeds=seeds)), None))
    rows.append(("ASM", [patch] + list(augment_batch(batch, "asm", seeds=seeds)), None))
    thumb = 128
    pad = 4
    label_w = 90
    sheet = Image.new("RGB", (label_w + (n + 1) * (thumb + pad), len(rows) * (thumb + pad) + 16), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((label_w, 2), "original", fill=(0, 0, 0))
    draw.text((label_w + thumb + pad, 2), "augment_batch(..., seeds=seeds)  (same seeds in every row)", fill=(0, 0, 0))
    for i, (name, images, row_masks) in enumerate(rows):
        y = 16 + i * (thumb + pad)
        draw.text((4, y + thumb // 2 - 6), name, fill=(0, 0, 0))
        for j, img in enumerate(images):
            rgb = _rgb(_downsample(img, 2))
            if row_masks is not None:  # outline drawn after downsampling, so it stays pure red
                m = _downsample(row_masks[j] * 255, 2) > 64
                edge = ndi.binary_dilation(m) & ~m
                rgb[edge] = RED
            sheet.paste(Image.fromarray(rgb), (label_w + j * (thumb + pad), y))
    return sheet


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    image, label = sample_image((2048, 2048))
    print(f"sample image: {label}")
    for name, fig in [("patches_tiling.png", tiling_figure(image, label)), ("patches_augment.png", augment_figure(image))]:
        path = OUT / name
        fig.quantize(palette=_palette(), dither=Image.Dither.NONE).save(path, optimize=True)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
