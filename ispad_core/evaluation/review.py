"""A review page for the windows that ``ispad inspect`` flagged: a person confirms or rejects each.

``ispad inspect`` writes one JSON report per scan (``flagged: [{row, col, size, score}, ...]``,
the scan's path, the threshold) and an overlay PNG. :func:`write_review_page` turns such a folder
into ONE self-contained HTML file (images embedded as base64 PNG, plain JavaScript, no server, no
network) that lists every flagged window, highest score first, with its crop, its heat-map crop
from the overlay, and a thumbnail of the scan with the window boxed. Each window gets the buttons
"defect" (with a group, the folder name under ``real/``) and "false alarm"; "Export CSV" downloads
``decisions.csv`` with the columns :data:`DECISION_COLUMNS`, which ``ispad crops --at`` reads as
it is: confirmed defects go to ``real/<group>/``, false alarms to a folder of fault-free windows
(``--good-out``) that ``ispad train --negatives`` feeds back as label-0 patches.

In ``decisions.csv`` ``row`` and ``col`` are the window's top-left corner as the inspection
reports it (not a centre), ``scan`` is the scan's file name, ``group`` is empty for false alarms.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputValueError
from ispad_core._shared.validation import check_int

__all__ = ["DECISION_COLUMNS", "FlaggedWindow", "ReviewRun", "read_inspection", "review_page", "write_review_page"]

#: The header of the ``decisions.csv`` the page exports (``decision`` is ``defect`` or ``false_alarm``).
DECISION_COLUMNS = ("scan", "row", "col", "group", "decision", "score", "threshold")

_INSPECTION_FORMAT = "ispad-inspection"  # the "format" of the JSON reports of ``ispad inspect``
_THUMB_SIDE = 200  # longest side of a scan's thumbnail, px
_CROP_SIDE = 384  # windows larger than this are shrunk (by an integer factor) for the page
_DEFAULT_GROUP = "unsorted"


@dataclass(frozen=True)
class FlaggedWindow:
    """One window an inspection flagged.

    Attributes
    ----------
    scan : pathlib.Path
        The scan file (found from the report's ``scan.path`` or the scans folder).
    scan_name : str
        The scan's file name, the ``scan`` column of ``decisions.csv``.
    report : pathlib.Path
        The JSON report that lists the window.
    row, col, size : int
        The window's top-left corner and side in scan pixels.
    score, threshold : float
        The window's score and the threshold it was flagged at.
    scan_shape : tuple of int
        ``(height, width)`` of the scan as the report records it.
    overlay : pathlib.Path or None
        The overlay PNG of the scan, when it exists.
    """

    scan: Path
    scan_name: str
    report: Path
    row: int
    col: int
    size: int
    score: float
    threshold: float
    scan_shape: tuple
    overlay: Path | None


@dataclass(frozen=True)
class ReviewRun:
    """What :func:`read_inspection` found in a results folder.

    Attributes
    ----------
    windows : tuple of FlaggedWindow
        Every flagged window of the run, highest score first (ties: scan name, row, col).
    reports : tuple of pathlib.Path
        The inspection reports read (one per scan inspected).
    model : dict
        The ``model`` record of the first report (path, backbone, patch size, ...), or empty.
    """

    windows: tuple
    reports: tuple
    model: dict


def _find_scan(recorded: str, name: str, report: Path, scans: Path | None) -> Path:
    """The scan file of a report: ``scans/<file name>`` (or ``scans/<name>.*``) with a scans
    folder, else the path the report records."""
    from ispad_core.io import IMAGE_EXTENSIONS

    base = Path(recorded).name
    if scans is not None:
        candidates = [scans / base] + [scans / (name + ext) for ext in IMAGE_EXTENSIONS]
        for c in candidates:
            if c.is_file():
                return c
        raise FileNotFoundError(f"scans: {report.name} was made from {base}, which is not in {scans}")
    path = Path(recorded)
    if path.is_file():
        return path
    raise FileNotFoundError(
        f"scans: {report.name} was made from {recorded}, which does not exist (any more); pass --scans DIR, "
        f"the folder that holds {base}"
    )


def _windows_of(report: Path, payload: dict, scans: Path | None) -> list[FlaggedWindow]:
    """The flagged windows of one JSON report (an empty list when it flagged none)."""
    flagged = payload.get("flagged")
    scan = payload.get("scan")
    if not isinstance(flagged, list) or not isinstance(scan, dict) or "path" not in scan:
        raise InputValueError(f"results: {report} is an inspection report without 'flagged' or 'scan.path'")
    if not flagged:
        return []
    threshold = float(payload.get("threshold", payload.get("model", {}).get("threshold_used", math.nan)))
    name = str(scan.get("name") or Path(scan["path"]).stem)
    file = _find_scan(str(scan["path"]), name, report, scans)
    overlay = report.parent / str(payload.get("overlay") or f"{name}_overlay.png")
    shape = (int(scan.get("height", -1)), int(scan.get("width", -1)))
    out = []
    for k, w in enumerate(flagged):
        try:
            row, col, size, score = int(w["row"]), int(w["col"]), int(w["size"]), float(w["score"])
        except (KeyError, TypeError, ValueError):
            raise InputValueError(f"results: {report}: flagged[{k}] is not a {{row, col, size, score}} record") from None
        out.append(FlaggedWindow(scan=file, scan_name=file.name, report=report, row=row, col=col, size=size,
                                 score=score, threshold=threshold, scan_shape=shape,
                                 overlay=overlay if overlay.is_file() else None))
    return out


def read_inspection(results: str | os.PathLike, *, scans: str | os.PathLike | None = None) -> ReviewRun:
    """The flagged windows of an ``ispad inspect`` output folder, highest score first.

    Parameters
    ----------
    results : path
        The folder ``ispad inspect --out`` wrote: ``<name>.json`` reports (other JSON files
        there are ignored), ``<name>_overlay.png``.
    scans : path, optional
        The folder of the scans; default: the path each report records.

    Returns
    -------
    ReviewRun

    Raises
    ------
    FileNotFoundError
        If ``results`` is not a folder, or the scan of a report with flagged windows is missing.
    ValueError
        If the folder holds no inspection report, or a report cannot be parsed.
    """
    results = Path(os.fspath(results))
    if not results.is_dir():
        raise FileNotFoundError(f"results: no such folder {results}")
    scans_dir = None if scans is None else Path(os.fspath(scans))
    if scans_dir is not None and not scans_dir.is_dir():
        raise FileNotFoundError(f"scans: no such folder {scans_dir}")
    windows: list[FlaggedWindow] = []
    reports, model = [], {}
    for path in sorted(results.glob("*.json")):
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputValueError(f"results: {path} is not a readable JSON file ({exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != _INSPECTION_FORMAT:
            continue
        reports.append(path)
        if not model and isinstance(payload.get("model"), dict):
            model = dict(payload["model"])
        windows += _windows_of(path, payload, scans_dir)
    if not reports:
        raise InputValueError(f"results: {results} holds no inspection report (the <name>.json files of 'ispad inspect')")
    windows.sort(key=lambda w: (-w.score, w.scan_name, w.row, w.col))
    return ReviewRun(windows=tuple(windows), reports=tuple(reports), model=model)


# --------------------------------------------------------------------------- pictures


def _png_uri(image: np.ndarray) -> str:
    """``data:image/png;base64,...`` of a uint8 image (H, W) or (H, W, 3|4)."""
    import imageio.v3 as iio

    data = iio.imwrite("<bytes>", np.ascontiguousarray(image), extension=".png")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` reduced by block means of an integer factor until its longest side is <= max_side
    (one band of block rows at a time, so a large scan needs little memory beyond itself)."""
    step = max(1, math.ceil(max(image.shape[:2]) / max_side))
    if step == 1:
        return image
    h, w = image.shape[0] // step, image.shape[1] // step
    if h == 0 or w == 0:
        return image[::step, ::step]
    out = np.empty((h, w, *image.shape[2:]), dtype=np.uint8)
    for r in range(h):
        band = image[r * step:(r + 1) * step, :w * step].reshape(step, w, step, *image.shape[2:])
        out[r] = np.rint(band.mean(axis=(0, 2), dtype=np.float64))
    return out


def _as_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    top = float(np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else 1.0
    return np.clip(np.rint(image.astype(np.float64) / top * 255.0), 0, 255).astype(np.uint8)


def _overlay_crop(overlay: np.ndarray, w: FlaggedWindow, height: int, width: int) -> np.ndarray:
    """The part of an overlay (possibly shrunk from the scan) around window ``w``: the window with
    half a window of context on each side (clipped at the scan's border), so that the heat map
    around it and the overlay's own box of the window show."""
    sy, sx = overlay.shape[0] / height, overlay.shape[1] / width
    margin = w.size // 2
    top, left = max(0, w.row - margin), max(0, w.col - margin)
    bottom, right = min(height, w.row + w.size + margin), min(width, w.col + w.size + margin)
    r0, c0 = int(math.floor(top * sy)), int(math.floor(left * sx))
    r1 = max(r0 + 1, int(math.ceil(bottom * sy)))
    c1 = max(c0 + 1, int(math.ceil(right * sx)))
    return overlay[r0:r1, c0:c1]


@dataclass
class _Pictures:
    """The embedded pictures of the page: one thumbnail per scan, crops per window."""

    thumbs: dict  # scan path -> (css class, data uri, (height, width) of the scan)
    crops: list  # per window: data uri of the crop
    heats: list  # per window: data uri of the overlay crop, or None


def _pictures(windows: list[FlaggedWindow]) -> _Pictures:
    from ispad_core.io import read_image

    pics = _Pictures(thumbs={}, crops=[None] * len(windows), heats=[None] * len(windows))
    by_scan: dict[Path, list[int]] = {}
    for k, w in enumerate(windows):
        by_scan.setdefault(w.scan, []).append(k)
    for n, (scan, ks) in enumerate(by_scan.items()):
        image = _as_uint8(read_image(scan, name="scans"))
        height, width = image.shape[:2]
        first = windows[ks[0]]
        if first.scan_shape[0] >= 0 and (height, width) != first.scan_shape:
            raise InputValueError(
                f"scans: {scan} is {height} x {width} px but {first.report.name} inspected a "
                f"{first.scan_shape[0]} x {first.scan_shape[1]} scan; is it the same scan?"
            )
        pics.thumbs[scan] = (f"scan{n}", _png_uri(_shrink(image, _THUMB_SIDE)), (height, width))
        overlay = None
        if first.overlay is not None:
            overlay = _as_uint8(read_image(first.overlay, name="overlay"))
        for k in ks:
            w = windows[k]
            crop = image[w.row:w.row + w.size, w.col:w.col + w.size]
            if crop.size == 0:
                raise InputValueError(f"results: {w.report.name}: window ({w.row}, {w.col}) lies outside {scan}")
            pics.crops[k] = _png_uri(_shrink(crop, _CROP_SIDE))
            if overlay is not None:
                heat = _overlay_crop(overlay, w, height, width)
                if heat.size:
                    pics.heats[k] = _png_uri(_shrink(heat, _CROP_SIDE))
    return pics


# --------------------------------------------------------------------------- the page


def _e(value: Any) -> str:
    """Text escaped for HTML, quotes included (safe in element content and attribute values)."""
    return html.escape(str(value), quote=True)


def _card(k: int, w: FlaggedWindow, pics: _Pictures, display: int) -> str:
    """The HTML of one window's card."""
    cls, _, (height, width) = pics.thumbs[w.scan]
    box = (f"left:{100 * w.col / width:.3f}%;top:{100 * w.row / height:.3f}%;"
           f"width:{100 * w.size / width:.3f}%;height:{100 * w.size / height:.3f}%")
    ratio = f"{width} / {height}"
    heat = (f'<img src="{pics.heats[k]}" alt="heat map">' if pics.heats[k] is not None
            else '<div class="missing">no overlay</div>')
    score, threshold = f"{w.score:.6f}", f"{w.threshold:.6f}"
    return (
        f'<section class="win" id="w{k}" tabindex="-1" data-scan="{_e(w.scan_name)}" data-row="{w.row}" '
        f'data-col="{w.col}" data-size="{w.size}" data-score="{score}" data-threshold="{threshold}">\n'
        f'<div class="rank">{display}</div>\n'
        f'<figure><img src="{pics.crops[k]}" alt="window"><figcaption>window</figcaption></figure>\n'
        f'<figure>{heat}<figcaption>heat map (with context)</figcaption></figure>\n'
        f'<figure><div class="thumb {cls}" style="aspect-ratio:{ratio}"><div class="box" style="{box}"></div></div>'
        f'<figcaption>{_e(w.scan_name)}</figcaption></figure>\n'
        f'<div class="info"><div class="score">score <b>{w.score:.3f}</b> '
        f'<span class="thr">threshold {w.threshold:.3f}</span></div>\n'
        f'<div class="where">{_e(w.scan_name)}<br>row {w.row}, col {w.col}, {w.size} x {w.size} px</div>\n'
        f'<div class="buttons"><button type="button" class="bd" title="defect (d)">defect</button> '
        f'<input class="group" value="{_DEFAULT_GROUP}" size="10" aria-label="group" title="group (g)" '
        f'spellcheck="false"> '
        f'<button type="button" class="bf" title="false alarm (f)">false alarm</button></div>\n'
        f'<div class="state"></div></div>\n</section>\n'
    )


def review_page(
    results: str | os.PathLike,
    *,
    scans: str | os.PathLike | None = None,
    max_windows: int | None = 200,
    title: str | None = None,
) -> tuple[str, int, int]:
    """The review page of an inspection output folder, as HTML text.

    Parameters
    ----------
    results, scans : path
        As in :func:`read_inspection`.
    max_windows : int or None, default 200
        Show at most this many windows (the highest scores); None shows all.
    title : str, optional
        The page's title (default: "Review of <results>").

    Returns
    -------
    (html, shown, flagged) : (str, int, int)
        The page, the number of windows on it and the number the run flagged.
    """
    run = read_inspection(results, scans=scans)
    if max_windows is not None:
        max_windows = check_int(max_windows, "max_windows", minimum=1)
    windows = list(run.windows if max_windows is None else run.windows[:max_windows])
    pics = _pictures(windows)
    title = title if title is not None else f"Review of {Path(os.fspath(results)).name or results}"
    css_thumbs = "\n".join(f".{cls}{{background-image:url({uri})}}" for cls, uri, _ in pics.thumbs.values())
    cards = "".join(_card(k, w, pics, k + 1) for k, w in enumerate(windows))
    sizes = sorted({w.size for w in windows})
    head = _header(run, len(windows), Path(os.fspath(results)), scans, sizes)
    body = cards if windows else (
        f'<p class="empty" id="empty">No windows were flagged in this run: {len(run.reports)} scan'
        f'{"" if len(run.reports) == 1 else "s"} inspected, no window scored at or over its threshold. '
        f'Nothing to review.</p>'
    )
    page = (_TEMPLATE.replace("@TITLE@", _e(title)).replace("@THUMBS@", css_thumbs).replace("@HEADER@", head)
            .replace("@CARDS@", body).replace("@COLUMNS@", ",".join(DECISION_COLUMNS))
            .replace("@GROUP@", _DEFAULT_GROUP))
    return page, len(windows), len(run.windows)


def _header(run: ReviewRun, shown: int, results: Path, scans: Any, sizes: list) -> str:
    total = len(run.windows)
    model = run.model.get("path")
    lines = [f'<p>{_e(total)} window{"" if total == 1 else "s"} flagged in {len(run.reports)} scan'
             f'{"" if len(run.reports) == 1 else "s"} of <code>{_e(results)}</code>'
             + ("" if not model else f" (model <code>{_e(model)}</code>)")
             + (f"; the {shown} highest scores are shown." if shown < total else ".") + "</p>"]
    if shown:
        folder = _e(scans) if scans is not None else _e(run.windows[0].scan.parent)
        size = " ".join(str(s) for s in sizes)
        lines.append(
            '<p class="help">Keys: <kbd>d</kbd> defect, <kbd>f</kbd> false alarm, <kbd>x</kbd> undecide, '
            '<kbd>j</kbd>/<kbd>k</kbd> next/previous, <kbd>g</kbd> edit the group (<kbd>Enter</kbd>: defect), '
            '<kbd>e</kbd> export. Then: <code>ispad crops --scans ' + folder + ' --at decisions.csv --size '
            + size + ' --out real/ --good-out good/</code></p>'
        )
    return "\n".join(lines)


def write_review_page(
    results: str | os.PathLike,
    out: str | os.PathLike,
    *,
    scans: str | os.PathLike | None = None,
    max_windows: int | None = 200,
    overwrite: bool = False,
) -> tuple[Path, int, int]:
    """Write the review page of ``results`` to ``out`` (atomically; an existing file only with ``overwrite``).

    Returns
    -------
    (path, shown, flagged) : (pathlib.Path, int, int)
        ``out``, the windows on the page and the windows the run flagged.

    Raises
    ------
    FileExistsError
        If ``out`` exists and ``overwrite`` is False (checked before any work).
    FileNotFoundError, ValueError
        As :func:`read_inspection` and :func:`review_page`.
    """
    from ispad_core._shared.files import atomic_output, check_output_path

    out = Path(os.fspath(out))
    check_output_path(out, "out", overwrite=overwrite)
    page, shown, total = review_page(results, scans=scans, max_windows=max_windows)
    with atomic_output(out, name="out", overwrite=overwrite) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out, shown, total


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@TITLE@</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f4f4;color:#222}
header{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid #ccc;padding:8px 16px}
header h1{font-size:18px;margin:0 0 4px}
header p{margin:2px 0}
#bar{display:flex;gap:16px;align-items:center;margin-top:4px}
#counter{font-weight:bold}
main{padding:8px 16px}
.win{display:grid;grid-template-columns:40px repeat(3,220px) 1fr;gap:12px;align-items:start;background:#fff;
 border:2px solid #ddd;border-radius:6px;margin:8px 0;padding:8px}
.win.current{border-color:#36c}
.win.defect{background:#fde8e8}
.win.false_alarm{background:#e6f4e6}
.rank{font-weight:bold;color:#666}
figure{margin:0}
figure img,.thumb,.missing{width:220px;display:block;image-rendering:pixelated;border:1px solid #bbb}
.missing{height:220px;line-height:220px;text-align:center;color:#888}
.thumb{position:relative;background-size:100% 100%;image-rendering:auto}
.box{position:absolute;border:2px solid #e00;box-sizing:border-box;min-width:4px;min-height:4px}
figcaption{font-size:12px;color:#555;overflow-wrap:anywhere}
.score b{font-size:18px}
.thr{color:#666;margin-left:8px}
.where{color:#444;margin:4px 0;overflow-wrap:anywhere}
.buttons{margin:6px 0}
.group.bad{outline:2px solid #e00}
.state{font-weight:bold}
.empty{font-size:16px;padding:24px}
kbd{border:1px solid #aaa;border-radius:3px;padding:0 3px;background:#f8f8f8}
@THUMBS@
</style></head>
<body>
<header><h1>@TITLE@</h1>
@HEADER@
<div id="bar"><span id="counter"></span><button type="button" id="export">Export CSV</button><span id="note"></span></div>
</header>
<main id="windows">
@CARDS@
</main>
<script>
"use strict";
(function () {
  var COLUMNS = "@COLUMNS@";
  var GROUP_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
  var cards = Array.prototype.slice.call(document.querySelectorAll(".win"));
  var decisions = {};
  var lastGroup = "@GROUP@";
  var current = 0;
  var counter = document.getElementById("counter");
  var note = document.getElementById("note");

  function count() {
    var d = 0, f = 0;
    for (var k in decisions) { if (decisions[k].decision === "defect") d++; else f++; }
    counter.textContent = (d + f) + " of " + cards.length + " decided: " + d + " defect, " + f + " false alarm";
  }
  function select(k, scroll) {
    if (!cards.length) return;
    current = Math.max(0, Math.min(cards.length - 1, k));
    cards.forEach(function (c, i) { c.classList.toggle("current", i === current); });
    if (scroll) { cards[current].scrollIntoView({block: "center"}); cards[current].focus({preventScroll: true}); }
  }
  function nextUndecided(k) {
    for (var i = k + 1; i < cards.length; i++) if (!(i in decisions)) return i;
    return Math.min(k + 1, cards.length - 1);
  }
  function show(k) {
    var c = cards[k], d = decisions[k];
    c.classList.toggle("defect", !!d && d.decision === "defect");
    c.classList.toggle("false_alarm", !!d && d.decision === "false_alarm");
    c.querySelector(".state").textContent = !d ? "" : d.decision === "defect" ? "defect (" + d.group + ")" : "false alarm";
  }
  function mark(k, decision) {
    var input = cards[k].querySelector(".group");
    var group = input.value.trim();
    if (decision === "defect" && !GROUP_RE.test(group)) {
      input.classList.add("bad");
      note.textContent = "group: letters, digits, '_', '-', '.' (it becomes a folder name)";
      input.focus();
      return;
    }
    input.classList.remove("bad");
    note.textContent = "";
    decisions[k] = {decision: decision, group: decision === "defect" ? group : ""};
    show(k); count();
    select(nextUndecided(k), true);
  }
  function clear(k) { delete decisions[k]; show(k); count(); }
  function field(v) {
    v = String(v);
    return /[",\r\n]/.test(v) || v !== v.trim() ? '"' + v.replace(/"/g, '""') + '"' : v;
  }
  function csv() {
    var lines = [COLUMNS];
    cards.forEach(function (c, k) {
      var d = decisions[k];
      if (!d) return;
      var s = c.dataset;
      lines.push([s.scan, s.row, s.col, d.group, d.decision, s.score, s.threshold].map(field).join(","));
    });
    return lines.join("\n") + "\n";
  }
  function exportCsv() {
    var blob = new Blob([csv()], {type: "text/csv"});
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "decisions.csv";
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }
  window.ispadReview = {csv: csv, decisions: decisions};
  cards.forEach(function (c, k) {
    c.querySelector(".bd").addEventListener("click", function () { select(k); mark(k, "defect"); });
    c.querySelector(".bf").addEventListener("click", function () { select(k); mark(k, "false_alarm"); });
    var input = c.querySelector(".group");
    input.addEventListener("input", function () {
      input.dataset.typed = "1";
      lastGroup = input.value.trim();
      cards.forEach(function (o, i) {
        var g = o.querySelector(".group");
        if (i !== k && !(i in decisions) && g.dataset.typed !== "1") g.value = lastGroup;
      });
    });
    input.addEventListener("focus", function () { select(k); });
    c.addEventListener("click", function (ev) { if (ev.target === c || ev.target.tagName === "IMG") select(k); });
  });
  document.getElementById("export").addEventListener("click", exportCsv);
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var t = ev.target;
    if (t && t.classList && t.classList.contains("group")) {
      if (ev.key === "Enter") { ev.preventDefault(); mark(current, "defect"); }
      else if (ev.key === "Escape") { t.blur(); cards[current].focus({preventScroll: true}); }
      return;
    }
    if (!cards.length) return;
    var key = ev.key;
    if (key === "d") mark(current, "defect");
    else if (key === "f") mark(current, "false_alarm");
    else if (key === "x") clear(current);
    else if (key === "j" || key === "ArrowDown") select(current + 1, true);
    else if (key === "k" || key === "ArrowUp") select(current - 1, true);
    else if (key === "g") cards[current].querySelector(".group").focus();
    else if (key === "e") exportCsv();
    else return;
    ev.preventDefault();
  });
  count();
  select(0, false);
})();
</script>
</body></html>
"""
