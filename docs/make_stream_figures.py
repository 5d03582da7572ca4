"""Figures of docs/cli.md: what ``ispad synth`` writes (run ``python docs/make_stream_figures.py``).

The stream is written by the command itself (``ispad_core.cli.main``, as ``ispad synth`` on the
built-in sample) and read back with ``ispad_core.io.open_stream``; the sheet shows its first good
patches and its first defective ones with the ground truth outlined.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ispad_core.cli import main
from ispad_core.io import open_stream, write_png

FIGURES = Path(__file__).parent / "figures"
SIZE = 128
PER_ROW = 5


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels just outside the mask (8-neighbourhood), where a red contour is drawn."""
    m = mask > 0
    grown = m.copy()
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            grown |= np.roll(np.roll(m, dr, 0), dc, 1)
    return grown & ~m


def main_figure() -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stream.h5"
        rc = main(["synth", "--out", str(out), "--n", "64", "--seed", "0", "--size", str(SIZE), "--quiet"])
        assert rc == 0
        with open_stream(out) as s:
            images, masks, labels = s[:]
    good = np.flatnonzero(labels == 0)[:PER_ROW]
    bad = np.flatnonzero(labels == 1)[:PER_ROW]
    gap = 4
    rows = [images[good], images[bad], images[bad]]
    sheet = np.full((3 * SIZE + 2 * gap, PER_ROW * SIZE + (PER_ROW - 1) * gap, 3), 255, np.uint8)
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            rgb = np.repeat(tile[..., None], 3, axis=2)
            if r == 2:
                rgb[outline(masks[bad[c]])] = (255, 40, 40)
            y, x = r * (SIZE + gap), c * (SIZE + gap)
            sheet[y : y + SIZE, x : x + SIZE] = rgb
    FIGURES.mkdir(exist_ok=True)
    return write_png(FIGURES / "stream.png", sheet, overwrite=True)


if __name__ == "__main__":
    path = main_figure()
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
