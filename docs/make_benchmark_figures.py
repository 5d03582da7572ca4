"""Make the figures of docs/benchmark.md from the library itself.

    python docs/make_benchmark_figures.py            # writes docs/figures/benchmark_*.png

- ``benchmark_<class>.png`` for each "real" defect class of ``ispad_core.proxy`` (blob, cluster,
  streak, misalignment, grid): four defects drawn by ``proxy_defect`` into 64 x 64 patches of the
  built-in screen print (``screen_print``), each shown three times: the defective patch, its mask
  and the patch with the mask's outline in red, at 3x zoom.
- ``benchmark_vs_synth.png``: top row, eight defects of the synthesizer's ``mixed`` preset
  (``synthesize``); bottom row, eight "real" defects of the benchmark, on the same patches.

Needs Pillow (installed with imageio).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ispad_core.samples.proxy import AREA_CLASSES, POINT_CLASSES, proxy_defect
from ispad_core.samples import screen_print

OUT = Path(__file__).resolve().parent / "figures"
ZOOM = 3
GAP = 4


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


def _outline(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = _rgb(image).copy()
    edge = mask & ~ndimage.binary_erosion(mask)
    rgb[edge] = (230, 30, 30)
    return rgb


def _tile(panels: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of equally sized RGB panels, white gaps, zoomed."""
    h, w = panels[0][0].shape[:2]
    rows, cols = len(panels), max(len(r) for r in panels)
    sheet = np.full((rows * (h + GAP) - GAP, cols * (w + GAP) - GAP, 3), 255, np.uint8)
    for i, row in enumerate(panels):
        for j, p in enumerate(row):
            sheet[i * (h + GAP) : i * (h + GAP) + h, j * (w + GAP) : j * (w + GAP) + w] = p
    return np.kron(sheet, np.ones((ZOOM, ZOOM, 1), np.uint8))


def _contexts(n: int, seed: int) -> list[np.ndarray]:
    kinds = ("dots", "lines", "mesh", "mixed")
    return [screen_print((80, 80), rng=seed + k, kind=kinds[k % 4]) for k in range(n)]


def class_figure(kind: str) -> Path:
    rows = []
    for k, context in enumerate(_contexts(4, 10)):
        image, mask = proxy_defect(context, kind, seed=100 + k)
        rows.append([_rgb(image), _rgb(np.where(mask, 255, 0).astype(np.uint8)), _outline(image, mask)])
    # four defects side by side: patch / mask / outline stacked per defect
    columns = [[r[i] for r in rows] for i in range(3)]
    path = OUT / f"benchmark_{kind}.png"
    Image.fromarray(_tile(columns)).save(path)
    return path


def comparison_figure() -> Path:
    from ispad_core.synth import PRESETS, synthesize

    contexts = _contexts(8, 40)
    synth_row, real_row = [], []
    kinds = POINT_CLASSES + AREA_CLASSES
    for k, context in enumerate(contexts):
        patch = np.ascontiguousarray(context[8:72, 8:72])
        res = synthesize(patch, PRESETS["mixed"], rng=k)
        synth_row.append(_outline(res.image, np.asarray(res.mask) > 0))
        image, mask = proxy_defect(context, kinds[k % len(kinds)], seed=200 + k)
        real_row.append(_outline(image, mask))
    path = OUT / "benchmark_vs_synth.png"
    Image.fromarray(_tile([synth_row, real_row])).save(path)
    return path


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for kind in POINT_CLASSES + AREA_CLASSES:
        print(class_figure(kind))
    print(comparison_figure())


if __name__ == "__main__":
    main()
