"""Make docs/figures/review_page.png, the review page of docs/review.md, from the library itself.

    python docs/make_review_figure.py          # needs torch, playwright and a Chromium (/usr/bin/chromium)

How (a few seconds):

1. Scan: the built-in sample, ``inspection_scan((768, 768), rng=0, n_defects=3, strength=4)``
   (a screen print with three defects planted by the synthesizer), saved as a PNG.
2. Detector: a hand-made window scorer stands in for a trained model so that the figure needs no
   training: P(defective) grows with the fraction of a window's pixels outside the grey levels
   of the fault-free print (``OutOfGamut`` below), threshold 0.5.
3. ``inspect_files`` writes the JSON reports and the overlay as ``ispad inspect`` does (64 px
   windows); ``write_review_page`` writes the page as ``ispad review`` does.
4. Playwright opens the page from disk in Chromium (1 280 x 900), marks the first window a
   defect of the group "fiber" (typed once, Enter) and the second one too (key d: the group
   typed last is remembered), and takes a screenshot of the viewport.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from ispad_core.evaluation import write_review_page
from ispad_core.io import write_png
from ispad_core.nn.inference import inspect_files
from ispad_core.samples import inspection_scan

OUT = Path(__file__).resolve().parent / "figures" / "review_page.png"
CHROMIUM = os.environ.get("ISPAD_CHROMIUM", "/usr/bin/chromium")


class OutOfGamut(torch.nn.Module):
    """Logits (0, scale * (f - offset)) per window, f the fraction of its pixels outside the grey
    levels the fault-free print uses (its 0.1 and 99.9 percentiles are 104 and 216; below ``low``
    or above ``high`` counts): a hand-made rule, not a trained model."""

    in_channels = 1

    def __init__(self, low: float = 95.0, high: float = 235.0, scale: float = 300.0, offset: float = 0.002):
        super().__init__()
        self.low, self.high, self.scale, self.offset = low, high, scale, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = (x * 0.226 + 0.449) * 255.0  # undo the preprocessing's normalisation (preset "none")
        f = ((grey < self.low) | (grey > self.high)).float().flatten(1).mean(dim=1)
        return torch.stack([torch.zeros_like(f), self.scale * (f - self.offset)], dim=1)


def main() -> None:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="review_figure_"))
    here = Path.cwd()
    os.chdir(work)  # relative paths, so that the page shows "results" and "scans" as a user would see them
    try:
        scan = inspection_scan((768, 768), rng=0, n_defects=3, strength=4.0)
        Path("scans").mkdir()
        write_png(Path("scans") / "sheet_0001.png", scan.image)
        meta = {"patch_size": 64, "threshold": 0.5, "preprocess": None}
        inspect_files([Path("scans") / "sheet_0001.png"], model=(OutOfGamut().eval(), meta), out="results",
                      precision="fp32", channels_last=False, verbose=False)
        page, shown, total = write_review_page("results", "review.html")
        print(f"{total} windows flagged, {shown} on the page")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.goto(page.resolve().as_uri())
            first = tab.locator(".win").nth(0).locator(".group")
            first.fill("fiber")
            first.press("Enter")
            tab.keyboard.press("d")  # the second window: a defect of the group typed last
            tab.evaluate("window.scrollTo(0, 0)")
            tab.screenshot(path=str(OUT))
            browser.close()
        print(f"wrote {OUT}")
    finally:
        os.chdir(here)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
