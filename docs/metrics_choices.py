"""Measure how much the definitional choices move AU-PRO, and draw the PRO-curve figure.

Usage (from the repository root; about a minute, memory under 1 GB)::

    python docs/metrics_choices.py            # the benchmark workload (bench/test_bench_metrics.py)
    python docs/metrics_choices.py --small    # the small CI workload

Prints a Markdown table for ``docs/metrics.md`` and writes ``docs/figures/metrics_pro_curve.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ispad_core.metrics import _metrics_kernels as K  # noqa: E402
from ispad_core.metrics import _pro, au_pro, pixel_roc_auc, pro_curve  # noqa: E402
from ispad_core.metrics._demo import demo_maps  # noqa: E402
from tests.reference.metrics_ref import trapezoid_ref  # noqa: E402

ISSUE_WORKLOAD = {"n_maps": 1565, "shape": (256, 256), "n_defective": 95, "region_size": (5, 2000), "rng": 0}
SMALL_WORKLOAD = {"n_maps": 40, "shape": (64, 64), "n_defective": 6, "region_size": (5, 300), "rng": 0}


def tie_bounds(maps, masks, fpr_limit):
    """AU-PRO if tied pixels were ordered defective-first (upper) or anomaly-free-first (lower).

    A curve with one point per *pixel* instead of per distinct score depends on the order of
    tied pixels; these are its extremes. With one point per distinct score each defective pixel's
    contribution ramps across its ties (the trapezoid), which lies between them.
    """
    px = _pro._prepare(maps, masks)
    scan = _pro._scan(px)
    pos, ids, sizes = _pro._regions(px, scan.pos_counts, _pro.STRUCTURE_8)
    levels, level_of = np.unique(pos, return_inverse=True)
    below, equal = _pro._rank_among_levels(px, levels)
    above = np.cumsum((below + np.append(equal, 0))[::-1])[::-1]
    greater = above[level_of + 1]
    e = equal[level_of]
    limit = fpr_limit * scan.n_neg
    zero = np.zeros_like(e)
    upper = K.pro_area(greater, zero, ids, sizes, limit) / (sizes.size * limit)
    lower = K.pro_area(greater + e, zero, ids, sizes, limit) / (sizes.size * limit)
    tied = int(np.count_nonzero(e))
    return lower, upper, tied, pos.size


def draw_curves(curves, path, fpr_limit):
    """A small line plot of PRO against FPR (PIL only, no plotting library needed)."""
    w, h, m = 640, 420, 56
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = m, h - m, w - 16, 16

    def to_px(fx, fy):
        return x0 + (x1 - x0) * fx / fpr_limit, y0 - (y0 - y1) * fy

    d.rectangle([x0, y1, x1, y0], outline="black")
    for k in range(7):
        fx = fpr_limit * k / 6
        X, _ = to_px(fx, 0)
        d.line([X, y0, X, y0 + 4], fill="black")
        d.text((X - 12, y0 + 8), f"{fx:.2f}", fill="black")
    for k in range(6):
        fy = k / 5
        _, Y = to_px(0, fy)
        d.line([x0 - 4, Y, x0, Y], fill="black")
        d.text((x0 - 30, Y - 6), f"{fy:.1f}", fill="black")
    d.text(((x0 + x1) // 2 - 40, h - 22), "pixel FPR", fill="black")
    d.text((6, 4), "PRO", fill="black")
    for k, (label, color, fpr, pro) in enumerate(curves):
        keep = fpr <= fpr_limit * 1.0001
        step = max(1, int(keep.sum()) // 4000)
        pts = [to_px(a, b) for a, b in zip(fpr[keep][::step], pro[keep][::step])]
        if len(pts) > 1:
            d.line(pts, fill=color, width=2)
        d.line([x0 + 16, y1 + 16 + 16 * k, x0 + 40, y1 + 16 + 16 * k], fill=color, width=2)
        d.text((x0 + 46, y1 + 10 + 16 * k), label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="use the small CI workload")
    args = parser.parse_args()
    spec = SMALL_WORKLOAD if args.small else ISSUE_WORKLOAD
    data = demo_maps(**spec)
    maps, masks = data.anomaly_maps, data.masks
    limit = 0.3
    base = au_pro(maps, masks, fpr_limit=limit)
    rows = [("AU-PRO as defined (8-connected, ties grouped, interpolated at 0.3, float64)", base)]

    four = _pro._au_pro(maps, masks, fpr_limit=limit, structure=_pro.STRUCTURE_4)
    rows.append(("4-connected regions instead of 8", four))

    lower, upper, tied, n_pos = tie_bounds(maps, masks, limit)
    rows.append((f"one point per pixel, ties anomaly-free first ({tied} of {n_pos} defective pixels tied)", lower))
    rows.append(("one point per pixel, ties defective first", upper))

    fpr, pro, _ = pro_curve(maps, masks, fpr_limit=limit)
    rows.append(("no interpolation: stop at the last point with FPR <= 0.3", trapezoid_ref(fpr, pro, limit, interpolate=False) / limit))
    x_next = float(fpr[-1])
    rows.append(("no interpolation: run to the first point past 0.3, divide by its FPR", trapezoid_ref(fpr, pro, x_next) / x_next))
    rows.append(("FPR accumulated in float32 (as the MVTec AD script does)", trapezoid_ref(fpr.astype(np.float32), pro, limit) / limit))

    q = np.floor(maps / maps.max() * 255).astype(np.uint8)
    q_base = au_pro(q, masks, fpr_limit=limit)
    q_lower, q_upper, q_tied, _ = tie_bounds(q, masks, limit)
    rows.append(("scores quantised to 8 bits (as in a saved PNG heat map)", q_base))
    rows.append((f"8-bit scores, one point per pixel, ties anomaly-free first ({q_tied} tied)", q_lower))
    rows.append(("8-bit scores, one point per pixel, ties defective first", q_upper))
    rows.append(("fpr_limit 0.05", au_pro(maps, masks, fpr_limit=0.05)))
    rows.append(("fpr_limit 1.0", au_pro(maps, masks, fpr_limit=1.0)))
    rows.append(("pixel AUROC (for comparison)", pixel_roc_auc(maps, masks)))

    print(f"workload: {spec}, {maps.size / 1e6:.1f} M scores, {int(masks.sum())} defective pixels\n")
    print("| variant | value | change |")
    print("|---|---:|---:|")
    for name, value in rows:
        print(f"| {name} | {value:.6f} | {value - base:+.2e} |")

    if not args.small:
        f4, p4, _ = _pro._pro_curve(maps, masks, fpr_limit=limit, structure=_pro.STRUCTURE_4)
        draw_curves(
            [("8-connected (defined)", (31, 119, 180), fpr, pro), ("4-connected", (214, 39, 40), f4, p4)],
            ROOT / "docs" / "figures" / "metrics_pro_curve.png",
            limit,
        )


if __name__ == "__main__":
    main()
