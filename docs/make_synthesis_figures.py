"""Make the figures of docs/synthesis.md with the public API (run from the repository root).

    python docs/make_synthesis_figures.py [--out docs/figures]

Every figure is deterministic (fixed seeds); only NumPy, ispad_core and Pillow (via imageio) are used.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw

from ispad_core.samples import KINDS, screen_print
from ispad_core.synth import PRESETS, gallery, synthesize_steps

BG = 40  # sheet grey
FG = (235, 235, 235)


def _label(img: np.ndarray, text: str, xy=(4, 2), fill=FG) -> np.ndarray:
    pil = Image.fromarray(img)
    ImageDraw.Draw(pil).text(xy, text, fill=fill)
    return np.asarray(pil)


def _rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x


def _zoom(x: np.ndarray, k: int) -> np.ndarray:
    return x.repeat(k, axis=0).repeat(k, axis=1)


def _row(tiles, sep=4, top=14):
    """Tiles side by side with a caption strip on top of each (caption, image) pair."""
    h = max(t.shape[0] for _, t in tiles)
    out = []
    for caption, t in tiles:
        panel = np.full((h + top, t.shape[1], 3), BG, np.uint8)
        panel[top : top + t.shape[0]] = _rgb(t)
        out.append(_label(panel, caption))
        out.append(np.full((h + top, sep, 3), BG, np.uint8))
    return np.concatenate(out[:-1], axis=1)


def _stack(rows, sep=4):
    w = max(r.shape[1] for r in rows)
    padded = []
    for r in rows:
        p = np.full((r.shape[0], w, 3), BG, np.uint8)
        p[:, : r.shape[1]] = r
        padded += [p, np.full((sep, w, 3), BG, np.uint8)]
    return np.concatenate(padded[:-1], axis=0)


def _frame(img, pad=4):
    h, w = img.shape[:2]
    out = np.full((h + 2 * pad, w + 2 * pad, 3), BG, np.uint8)
    out[pad : pad + h, pad : pad + w] = _rgb(img)
    return out


def fig_samples(out: Path) -> None:
    rows = []
    for channels in (1, 3):
        tiles = [(kind, screen_print((128, 128), rng=3 + i, kind=kind, channels=channels)) for i, kind in enumerate(KINDS)]
        rows.append(_row(tiles))
    iio.imwrite(out / "samples.png", _frame(_stack(rows)))


def _crop_box(mask_or_tex: np.ndarray, size: int):
    ys, xs = np.nonzero(mask_or_tex)
    h, w = mask_or_tex.shape
    cy, cx = int(ys.mean()), int(xs.mean())
    y0 = min(max(cy - size // 2, 0), h - size)
    x0 = min(max(cx - size // 2, 0), w - size)
    return slice(y0, y0 + size), slice(x0, x0 + size)


def _outline(img_rgb: np.ndarray, mask: np.ndarray, colour=(255, 48, 48)) -> np.ndarray:
    m = mask.astype(bool)
    g = m.copy()
    g[1:] |= m[:-1]
    g[:-1] |= m[1:]
    g2 = g.copy()
    g2[:, 1:] |= g[:, :-1]
    g2[:, :-1] |= g[:, 1:]
    out = img_rgb.copy()
    out[g2 & ~m] = colour
    return out


def fig_steps(out: Path) -> None:
    """One row per defect: patch, skeleton, texture, modified patch, residual, mask."""
    cases = [
        ("fiber-bright", "mesh", 2, 5),
        ("scratch", "lines", 7, 2),
        ("inclusion", "dots", 4, 1),
        ("pinhole", "mixed", 5, 3),
    ]
    rows = []
    zoom = 2
    for name, kind, bg_seed, seed in cases:
        patch = screen_print((256, 256), rng=bg_seed, kind=kind)
        st = synthesize_steps(patch, name, rng=seed)
        size = 112 if name in ("fiber-bright", "scratch") else 48
        ys, xs = _crop_box(st.texture > 0, size)
        z = zoom * (2 if size == 48 else 1)
        sk = st.skeleton
        skel_rgb = _rgb(np.clip(sk.raster / max(sk.raster.max(), 1e-9) * 255, 0, 255).astype(np.uint8))
        tex = (st.texture * 255).astype(np.uint8)
        resid = st.image.astype(int) - patch.astype(int)
        amp = max(int(np.abs(resid).max()), 1)
        res_img = np.clip(128 + resid * (127 / amp), 0, 255).astype(np.uint8)
        marked = _outline(_rgb(_zoom(st.image[ys, xs], z)), _zoom(st.mask[ys, xs], z))
        tiles = [
            (f"{name}: patch", _zoom(patch[ys, xs], z)),
            ("1 skeleton", _zoom(skel_rgb[ys, xs], z)),
            ("2 texture", _zoom(tex[ys, xs], z)),
            ("3 modified", _zoom(st.image[ys, xs], z)),
            (f"residual +-{amp}", _zoom(res_img[ys, xs], z)),
            (f"4 cnr {st.cnr:.2f}", marked),
        ]
        rows.append(_row(tiles))
    iio.imwrite(out / "steps.png", _frame(_stack(rows)))


def _scatter(points, colours, *, xlabel, ylabel, xlog=False, hlines=(), vlines=(), size=(420, 300)):
    """A minimal scatter plot drawn with Pillow."""
    w, h = size
    left, bottom, right, top = 48, 30, 10, 10
    img = Image.new("RGB", (w, h), (250, 250, 250))
    d = ImageDraw.Draw(img)
    xs = np.log10(points[:, 0]) if xlog else points[:, 0]
    ys = points[:, 1]
    x0, x1 = np.floor(xs.min()), np.ceil(xs.max())
    y0, y1 = 0.0, math.ceil(ys.max() * 2) / 2
    y1 += (-y1) % 1.0  # whole numbers, ticks every 0.5

    def px(x, y):
        return (left + (x - x0) / (x1 - x0) * (w - left - right), h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom))

    d.rectangle([left, top, w - right, h - bottom], outline=(80, 80, 80))
    for k in range(int(x0), int(x1) + 1) if xlog else np.linspace(x0, x1, 5):
        x, _ = px(k, y0)
        d.line([x, h - bottom, x, h - bottom + 3], fill=(80, 80, 80))
        d.text((x - 10, h - bottom + 5), f"1e{k}" if xlog else f"{k:g}", fill=(40, 40, 40))
    for k in np.arange(y0, y1 + 1e-9, 0.5):
        _, y = px(x0, k)
        d.line([left - 3, y, left, y], fill=(80, 80, 80))
        d.text((4, y - 5), f"{k:.1f}", fill=(40, 40, 40))
    for v in hlines:
        (xa, ya), (xb, _) = px(x0, v), px(x1, v)
        d.line([xa, ya, xb, ya], fill=(120, 120, 120))
    for v in vlines:
        (xa, ya), (_, yb) = px(np.log10(v) if xlog else v, y0), px(x0, y1)
        d.line([xa, ya, xa, yb], fill=(120, 120, 120))
    for (x, y), c in zip(np.stack([xs, ys], 1), colours):
        cx, cy = px(x, y)
        d.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=c)
    d.text((w // 2 - 60, h - 14), xlabel, fill=(20, 20, 20))
    d.text((left + 4, top + 2), ylabel, fill=(20, 20, 20))
    return np.asarray(img)


def fig_visibility(out: Path) -> None:
    """Both measures of the same defects (threshold 0): the sum of squares grows with area."""
    kinds = {"dot-dark": (40, 90, 200), "fiber-bright": (220, 60, 40), "scratch": (40, 160, 60)}
    pts, cols = [], []
    for k, (name, colour) in enumerate(kinds.items()):
        params = dataclasses.replace(PRESETS[name], threshold=0.0, max_attempts=1)
        for i in range(90):
            patch = screen_print((128, 128), rng=500 + i, kind=KINDS[i % 4])
            st = synthesize_steps(patch, params, rng=10_000 * k + i)
            if st.mask.any():
                pts.append((max(st.ssr, 1.0), st.cnr))
                cols.append(colour)
    plot = _scatter(np.array(pts), cols, xlabel="sum of squared residuals", ylabel="contrast-to-noise",
                    xlog=True, hlines=(PRESETS["fiber-bright"].threshold,))
    legend = np.full((18, plot.shape[1], 3), 250, np.uint8)
    pil = Image.fromarray(legend)
    d = ImageDraw.Draw(pil)
    x = 50
    for name, colour in kinds.items():
        d.ellipse([x, 6, x + 6, 12], fill=colour)
        d.text((x + 10, 3), name, fill=(20, 20, 20))
        x += 120
    iio.imwrite(out / "visibility.png", np.concatenate([np.asarray(pil), plot], axis=0))


def fig_galleries(out: Path) -> None:
    for name in PRESETS:
        sheet = gallery(name, n=4, size=96, columns=2, zoom=2, rng=0)
        iio.imwrite(out / f"gallery_{name}.png", sheet)


def fig_rejection(out: Path) -> None:
    """The same faint fibre drawn on a calm and on a busy background: accepted versus redrawn."""
    params = dataclasses.replace(PRESETS["fiber-dark"], contrast=(16.0, 16.0), max_attempts=1)
    tiles = []
    for kind, seed in (("mesh", 2), ("dots", 1000)):
        patch = screen_print((128, 128), rng=seed, kind=kind)
        st = synthesize_steps(patch, params, rng=4)
        shown = _outline(_rgb(st.image), st.mask) if st.accepted else _rgb(st.image)
        tiles.append((f"{kind}: cnr {st.cnr:.2f} {'ok' if st.accepted else 'redraw'}", shown))
    iio.imwrite(out / "rejection.png", _frame(_row(tiles)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "figures"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig_samples(out)
    fig_steps(out)
    fig_visibility(out)
    fig_rejection(out)
    fig_galleries(out)
    for p in sorted(out.glob("*.png")):
        print(f"{p}  {p.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
