"""The grid's results as files: one row per run in CSV and Markdown, and the MCC figure."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ispad_core._shared.files import atomic_output

__all__ = ["plot_mcc", "rows", "write_csv", "write_md"]


# with calibration sheets: the test set at per-design calibrated thresholds and at its own F1-optimal one
_CAL_COLUMNS = ["target_fpr", "cal_mcc", "cal_recall", "cal_fpr", "cal_fpr_ratio", "opt_threshold", "opt_mcc",
                "cal_vs_opt", "cal_thresholds"]
_COLUMNS = ["run", "strategy", "group", "selection", "n_real", "backbone", "seed", "mcc", "recall", "fpr",
            "tn", "tp", "fn", "fp", "threshold", "auroc", "val_mcc"]


def rows(reports: Sequence[dict]) -> tuple[list[str], list[dict]]:
    groups = sorted({g for r in reports for g in r["test"]["recall_by_group"]})
    cols = _COLUMNS + [f"recall_{g}" for g in groups] + ["real_by_group"]
    calibrated = any(r.get("calibrated") for r in reports)
    if calibrated:
        cols += _CAL_COLUMNS
    rows = []
    for r in reports:
        t = r["test"]
        row = {k: r.get(k, t.get(k)) for k in _COLUMNS}
        for k in ("mcc", "recall", "fpr", "tn", "tp", "fn", "fp", "threshold", "auroc", "val_mcc"):
            row[k] = t[k]
        for g in groups:
            row[f"recall_{g}"] = t["recall_by_group"].get(g, float("nan"))
        row["real_by_group"] = "+".join(f"{g}={n}" for g, n in r["real_by_group"].items())
        if calibrated:
            c = r.get("calibrated") or {}
            for k in _CAL_COLUMNS[:-1]:
                row[k] = c.get(k, float("nan"))
            row["cal_thresholds"] = " ".join(f"{d}={v:.6g}" for d, v in c.get("thresholds", {}).items())
        rows.append(row)
    return cols, rows


def write_csv(path: Path, cols: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    with atomic_output(path, name="results", overwrite=True) as tmp:
        tmp.write_text(buf.getvalue())


def write_md(path: Path, cols: list[str], rows: list[dict]) -> None:
    groups = [c for c in cols if c.startswith("recall_")]
    head = ["Strategy", "Defect group", "#Real defects", "Backbone", "Seed", "MCC", "Recall (%)", "FPR (%)",
            "TN", "TP", "FN", "FP"] + [f"Recall {c[7:]} (%)" for c in groups]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [r["strategy"], r["group"], str(r["n_real"]), r["backbone"], str(r["seed"]), f"{r['mcc']:.2f}",
                f"{r['recall']:.1f}", f"{r['fpr']:.1f}", str(r["tn"]), str(r["tp"]), str(r["fn"]), str(r["fp"])]
        vals += [f"{r[c]:.1f}" for c in groups]
        lines.append("| " + " | ".join(vals) + " |")
    # mean and spread over seeds
    keys: dict[tuple, list[dict]] = {}
    for r in rows:
        keys.setdefault((r["strategy"], r["group"], r["selection"], r["backbone"]), []).append(r)
    lines += ["", "Mean over seeds (min to max):", "",
              "| Strategy | Defect group | #Real defects | Backbone | Seeds | MCC | Recall (%) | FPR (%) |",
              "|---|---|---|---|---|---|---|---|"]
    for (strategy, group, _sel, backbone), rs in keys.items():
        m = np.array([x["mcc"] for x in rs])
        n_real = sorted({x["n_real"] for x in rs})
        lines.append(
            f"| {strategy} | {group} | {'/'.join(map(str, n_real))} | {backbone} | {len(rs)} | "
            f"{m.mean():.2f} ({m.min():.2f} to {m.max():.2f}) | {np.mean([x['recall'] for x in rs]):.1f} | "
            f"{np.mean([x['fpr'] for x in rs]):.1f} |"
        )
    if "cal_mcc" in cols:
        lines += _calibrated_md(rows)
    with atomic_output(path, name="results", overwrite=True) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _goal(r: dict) -> str:
    """calibrated >= 0.9 x test-optimal MCC and the measured window FPR within 2x of R (R/2 to 2R)."""
    ok_mcc = r["cal_vs_opt"] >= 0.9
    ok_fpr = 0.5 <= r["cal_fpr_ratio"] <= 2.0
    return "yes" if ok_mcc and ok_fpr else "no (" + ", ".join(
        w for w, bad in (("MCC", not ok_mcc), ("FPR", not ok_fpr)) if bad) + ")"


def _calibrated_md(rows: list[dict]) -> list[str]:
    rates = sorted({r["target_fpr"] for r in rows if not math.isnan(r["target_fpr"])})
    lines = ["", f"At per-design calibrated thresholds (R = {', '.join(f'{x:g}' for x in rates)} per window; "
             "goal: calibrated MCC >= 0.9 x test-optimal MCC and measured FPR within 2x of R):", "",
             "| Strategy | Defect group | #Real defects | Seed | MCC (validation thr.) | MCC (calibrated) | "
             "Recall calibrated (%) | FPR calibrated (%) | FPR / R | MCC (test-optimal thr.) | Calibrated / test-optimal | Goal met |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if math.isnan(r["cal_mcc"]):
            continue
        lines.append(
            f"| {r['strategy']} | {r['group']} | {r['n_real']} | {r['seed']} | {r['mcc']:.2f} | {r['cal_mcc']:.2f} | "
            f"{r['cal_recall']:.1f} | {r['cal_fpr']:.2f} | {r['cal_fpr_ratio']:.2f} | {r['opt_mcc']:.2f} | "
            f"{r['cal_vs_opt']:.2f} | {_goal(r)} |"
        )
    return lines


_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def plot_mcc(path: Path, rows: list[dict], title: str = "MCC (test set; mean over seeds, band: min to max)") -> None:
    """MCC against #real defects (log(1 + n) axis): a line per (strategy, group) with the seed mean; band = min..max."""
    from PIL import Image, ImageDraw

    series: dict[tuple, dict[int, list[float]]] = {}
    baseline: list[float] = []
    for r in rows:
        if r["strategy"] == "synthetic":
            baseline.append(r["mcc"])
            continue
        series.setdefault((r["strategy"], r["group"], r["backbone"]), {}).setdefault(r["n_real"], []).append(r["mcc"])
    xs = sorted({x for s in series.values() for x in s} | ({0} if baseline else set())) or [0]
    ys = [v for s in series.values() for vals in s.values() for v in vals] + baseline
    lo = min(min(ys, default=0.0), 0.0)
    W, H, L, R, T, B = 760, 480, 70, 230, 30, 60
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    # log(1 + n): the few-shot counts (4, 10, 16) stay apart beside a whole pool (64 and more)
    x0, x1 = math.log1p(min(xs)), math.log1p(max(xs) if max(xs) > min(xs) else min(xs) + 1)

    def px(x: float) -> float:
        return L + (W - L - R) * (math.log1p(x) - x0) / (x1 - x0)

    def py(y: float) -> float:
        return T + (H - T - B) * (1.0 - (y - lo) / (1.0 - lo))

    d.rectangle([L, T, W - R, H - B], outline=(0, 0, 0))
    for k in range(6):
        y = lo + (1.0 - lo) * k / 5
        d.line([L - 4, py(y), L, py(y)], fill=(0, 0, 0))
        d.line([L, py(y), W - R, py(y)], fill=(235, 235, 235))
        d.text((L - 40, py(y) - 6), f"{y:.2f}", fill=(0, 0, 0))
    for x in xs:
        d.line([px(x), H - B, px(x), H - B + 4], fill=(0, 0, 0))
        d.text((px(x) - 6, H - B + 8), str(x), fill=(0, 0, 0))
    d.text((L + (W - L - R) / 2 - 60, H - 25), "number of real defects (log scale)", fill=(0, 0, 0))
    d.text((8, T - 22), title, fill=(0, 0, 0))
    legend_y = T
    if baseline:
        m = float(np.mean(baseline))
        d.line([L, py(m), W - R, py(m)], fill=(90, 90, 90), width=1)
        d.rectangle([px(0) - 3, py(max(baseline)), px(0) + 3, py(min(baseline))], outline=(90, 90, 90))
        d.text((W - R + 10, legend_y), f"synthetic only: {m:.2f}", fill=(90, 90, 90))
        legend_y += 18
    for k, (key, pts) in enumerate(sorted(series.items())):
        color = _PALETTE[k % len(_PALETTE)]
        xk = sorted(pts)
        means = [float(np.mean(pts[x])) for x in xk]
        lows = [float(np.min(pts[x])) for x in xk]
        highs = [float(np.max(pts[x])) for x in xk]
        for x, a, b in zip(xk, lows, highs):
            d.line([px(x), py(a), px(x), py(b)], fill=color, width=1)
            d.line([px(x) - 4, py(a), px(x) + 4, py(a)], fill=color)
            d.line([px(x) - 4, py(b), px(x) + 4, py(b)], fill=color)
        if len(xk) > 1:
            d.line([(px(x), py(m)) for x, m in zip(xk, means)], fill=color, width=2)
        for x, m in zip(xk, means):
            d.ellipse([px(x) - 3, py(m) - 3, px(x) + 3, py(m) + 3], fill=color)
        strategy, group, backbone = key
        d.line([W - R + 10, legend_y + 6, W - R + 30, legend_y + 6], fill=color, width=2)
        d.text((W - R + 34, legend_y), f"{strategy} {group} {backbone}", fill=(0, 0, 0))
        legend_y += 18
    with atomic_output(path, name="figure", overwrite=True) as tmp:
        img.save(tmp, format="PNG")
