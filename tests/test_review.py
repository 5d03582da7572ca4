"""``ispad review``: the page's content (order, counts, escaping, embedded pictures, an empty run)
and its decisions.csv read as it is by ``ispad crops --at`` (defects to real/<group>/, false alarms
to --good-out), all in process through ``ispad_core.cli.main``."""

from __future__ import annotations

import base64
import csv
import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

from ispad_core.evaluation import DECISION_COLUMNS, read_inspection
from ispad_core.io import read_image, write_png
from tests.conftest import run_ispad

ODD = 'odd <img src=x onerror=alert(1)>&"name\''  # a scan name that needs escaping in HTML and quoting in CSV


def make_results(root: Path, flagged: dict, *, threshold: float = 0.5, shape=(96, 128), seed: int = 0) -> dict:
    """Scans and an ``ispad inspect``-style results folder: ``flagged`` maps a scan name to its
    ``[(row, col, size, score), ...]``. Returns the scans as arrays by name."""
    rng = np.random.default_rng(seed)
    (root / "scans").mkdir(parents=True, exist_ok=True)
    (root / "results").mkdir(exist_ok=True)
    images = {}
    for name, windows in flagged.items():
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        images[name] = image
        write_png(root / "scans" / f"{name}.png", image)
        write_png(root / "results" / f"{name}_overlay.png", np.stack([image] * 3, axis=-1)[::2, ::2].copy())
        payload = {
            "format": "ispad-inspection", "format_version": 1,
            "scan": {"path": str(root / "scans" / f"{name}.png"), "name": name, "height": shape[0],
                     "width": shape[1], "channels": 1},
            "model": {"path": "model.pt", "threshold": threshold}, "threshold": threshold,
            "flagged": [{"row": r, "col": c, "size": s, "score": sc} for r, c, s, sc in windows],
            "overlay": f"{name}_overlay.png",
        }
        (root / "results" / f"{name}.json").write_text(json.dumps(payload))
    return images


def cards(page: str) -> list[dict]:
    """The windows on a page, in page order, from their data attributes."""
    out = []
    for m in re.finditer(r'<section class="win"[^>]*>', page):
        attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', m.group(0)))
        out.append({k: html.unescape(v) for k, v in attrs.items()})
    return out


@pytest.fixture
def run(tmp_path):
    images = make_results(tmp_path, {
        "a": [(0, 0, 32, 0.71), (32, 64, 32, 0.97)],
        ODD: [(64, 96, 32, 0.83)],
        "good": [],
    })
    return tmp_path, images


def test_page_lists_the_windows_highest_score_first_with_counts(run):
    root, _ = run
    ran = run_ispad("review", root / "results", "--out", root / "review.html")
    assert "3 flagged windows" in ran.stdout
    page = (root / "review.html").read_text(encoding="utf-8")
    found = cards(page)
    assert [float(c["score"]) for c in found] == [0.97, 0.83, 0.71]
    assert [(c["scan"], int(c["row"]), int(c["col"])) for c in found] == [("a.png", 32, 64), (ODD + ".png", 64, 96),
                                                                           ("a.png", 0, 0)]
    assert all(float(c["threshold"]) == 0.5 for c in found)
    assert "3 windows flagged in 3 scans" in page
    assert 'id="counter"' in page and 'id="export"' in page
    assert ",".join(DECISION_COLUMNS) in page  # the CSV header the page exports


def test_page_escapes_text_and_embeds_every_picture(run):
    root, images = run
    run_ispad("review", root / "results", "--out", root / "review.html")
    page = (root / "review.html").read_text(encoding="utf-8")
    assert "<img src=x" not in page and ODD not in page
    assert html.escape(ODD, quote=True) in page
    # self-contained: no network, no outside file
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page)
    assert "<script src" not in page and "@import" not in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 6  # window and heat map per card
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # the window crop is the scan's pixels at (row, col, size)
    import imageio.v3 as iio

    first = iio.imread(base64.b64decode(sources[0].split(",", 1)[1]))
    np.testing.assert_array_equal(first, images["a"][32:64, 64:96])
    assert page.count("background-image:url(data:image/png;base64,") == 2  # one thumbnail per scan with windows


def test_max_shows_the_highest_scores(run):
    root, _ = run
    ran = run_ispad("review", root / "results", "--out", root / "top.html", "--max", "2")
    assert "the 2 highest of 3" in ran.stdout
    page = (root / "top.html").read_text(encoding="utf-8")
    assert [float(c["score"]) for c in cards(page)] == [0.97, 0.83]


def test_an_empty_run_gives_a_page_that_says_so(tmp_path):
    make_results(tmp_path, {"x": [], "y": []})
    ran = run_ispad("review", tmp_path / "results", "--out", tmp_path / "review.html")
    assert "no windows were flagged" in ran.stdout
    page = (tmp_path / "review.html").read_text(encoding="utf-8")
    assert cards(page) == []
    assert "No windows were flagged in this run: 2 scans inspected" in page


def test_existing_page_kept_without_overwrite_and_bad_folders(run, tmp_path):
    root, _ = run
    (root / "review.html").write_text("mine")
    ran = run_ispad("review", root / "results", "--out", root / "review.html", expect=1)
    assert "exists" in ran.stderr and (root / "review.html").read_text() == "mine"
    run_ispad("review", root / "results", "--out", root / "review.html", "--overwrite")
    assert (root / "review.html").read_text() != "mine"
    empty = tmp_path / "nothing"
    empty.mkdir()
    ran = run_ispad("review", empty, "--out", root / "n.html", expect=1)
    assert "no inspection report" in ran.stderr and not (root / "n.html").exists()


def test_scans_found_with_scans_when_moved(run):
    root, _ = run
    (root / "scans").rename(root / "moved")
    ran = run_ispad("review", root / "results", "--out", root / "review.html", expect=1)
    assert "--scans" in ran.stderr
    run_ispad("review", root / "results", "--out", root / "review.html", "--scans", root / "moved")
    assert len(cards((root / "review.html").read_text(encoding="utf-8"))) == 3
    (root / "moved" / "a.png").unlink()
    write_png(root / "moved" / "a.png", np.zeros((10, 10), np.uint8))
    ran = run_ispad("review", root / "results", "--out", root / "r2.html", "--scans", root / "moved", expect=1)
    assert "10 x 10" in ran.stderr and "same scan" in ran.stderr


def write_decisions(path: Path, page: str, choices: list) -> list[dict]:
    """A decisions.csv as the page exports it: ``choices[k]`` is ``(decision, group)`` or None."""
    rows = []
    for c, choice in zip(cards(page), choices):
        if choice is None:
            continue
        decision, group = choice
        rows.append({"scan": c["scan"], "row": c["row"], "col": c["col"], "group": group if decision == "defect" else "",
                     "decision": decision, "score": c["score"], "threshold": c["threshold"]})
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=DECISION_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def check_crops(root: Path, images: dict, rows: list, real: Path, good: Path, size: int) -> None:
    """Every decided window is its scan's pixels, in real/<group>/ or good/; nothing else is there."""
    expected = set()
    for r in rows:
        folder = real / r["group"] if r["decision"] == "defect" else good
        path = folder / f"{Path(r['scan']).stem}_r{r['row']}_c{r['col']}.png"
        row, col = int(r["row"]), int(r["col"])
        np.testing.assert_array_equal(read_image(path), images[Path(r["scan"]).stem][row:row + size, col:col + size])
        expected.add(path)
    found = {p for d in (real, good) if d.exists() for p in d.rglob("*.png")}
    assert found == expected


def test_decisions_round_trip_through_crops(run):
    root, images = run
    run_ispad("review", root / "results", "--out", root / "review.html")
    page = (root / "review.html").read_text(encoding="utf-8")
    rows = write_decisions(root / "decisions.csv", page, [("defect", "scratch"), ("false_alarm", ""), None])
    with open(root / "decisions.csv", newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == list(DECISION_COLUMNS)
    args = ["crops", "--scans", root / "scans", "--at", root / "decisions.csv", "--out", root / "real"]
    ran = run_ispad(*args, "--size", "32", expect=1)
    assert "--good-out" in ran.stderr and not (root / "real").exists()
    ran = run_ispad(*args, "--good-out", root / "good", expect=1)
    assert "--size" in ran.stderr
    ran = run_ispad(*args, "--size", "32", "--good-out", root / "good")
    assert "1 false-alarm windows" in ran.stdout
    check_crops(root, images, rows, root / "real", root / "good", 32)


def test_decisions_of_defects_only_need_no_good_folder(run):
    root, images = run
    run_ispad("review", root / "results", "--out", root / "review.html")
    page = (root / "review.html").read_text(encoding="utf-8")
    rows = write_decisions(root / "d.csv", page, [("defect", "points"), ("defect", "area"), ("defect", "area")])
    run_ispad("crops", "--scans", root / "scans", "--at", root / "d.csv", "--out", root / "real", "--size", "32")
    check_crops(root, images, rows, root / "real", root / "none", 32)


def test_decisions_with_a_bad_decision_or_group_are_refused(run):
    root, _ = run
    bad = root / "bad.csv"
    bad.write_text(",".join(DECISION_COLUMNS) + "\na.png,0,0,x,maybe,0.7,0.5\n")
    ran = run_ispad("crops", "--scans", root / "scans", "--at", bad, "--out", root / "real", "--size", "32", expect=1)
    assert "defect or false_alarm" in ran.stderr
    bad.write_text(",".join(DECISION_COLUMNS) + "\na.png,0,0,../up,defect,0.7,0.5\n")
    ran = run_ispad("crops", "--scans", root / "scans", "--at", bad, "--out", root / "real", "--size", "32", expect=1)
    assert "plain folder name" in ran.stderr and not (root / "real").exists()


def test_review_of_a_real_inspection(tmp_path):
    """The page of what inspect_files wrote: every flagged window of its JSON, in its order."""
    torch = pytest.importorskip("torch")
    from ispad_core.nn.inference import inspect_files

    class Brightness(torch.nn.Module):
        """P(defective) grows with a window's mean: the bright corner is flagged."""

        in_channels = 1

        def forward(self, x):
            m = x.mean(dim=(1, 2, 3))
            return torch.stack([torch.zeros_like(m), 20 * m], dim=1)

    scan = np.full((96, 96), 40, np.uint8)
    scan[:40, :40] = 250
    write_png(tmp_path / "s.png", scan)
    meta = {"patch_size": 32, "threshold": 0.9, "preprocess": None}
    inspect_files([tmp_path / "s.png"], model=(Brightness(), meta), out=tmp_path / "res", precision="fp32",
                  channels_last=False)
    report = json.loads((tmp_path / "res" / "s.json").read_text())
    assert report["flagged"], report
    run_ispad("review", tmp_path / "res", "--out", tmp_path / "review.html")
    found = cards((tmp_path / "review.html").read_text(encoding="utf-8"))
    got = [(int(c["row"]), int(c["col"]), int(c["size"]), float(c["score"])) for c in found]
    assert sorted(got) == sorted((w["row"], w["col"], w["size"], round(w["score"], 6)) for w in report["flagged"])
    assert [g[3] for g in got] == sorted((g[3] for g in got), reverse=True)
    assert [(w.row, w.col) for w in read_inspection(tmp_path / "res").windows] == [g[:2] for g in got]


def test_plain_position_tables_still_cut_centred_patches_and_need_out(run):
    root, images = run
    table = root / "plain.csv"
    table.write_text("scan,row,col,group\na.png,40,50,points\n")
    ran = run_ispad("crops", "--scans", root / "scans", "--at", table, "--size", "16", expect=1)
    assert "--out" in ran.stderr
    run_ispad("crops", "--scans", root / "scans", "--at", table, "--size", "16", "--out", root / "real")
    np.testing.assert_array_equal(read_image(root / "real" / "points" / "a_r40_c50.png"), images["a"][32:48, 42:58])


@pytest.mark.parametrize("shape", [(100, 130), (999, 701, 3), (37, 5), (20, 20)])
def test_pictures_are_shrunk_by_block_means(shape):
    """The page's shrinking against a slow reference: the mean of each full step x step block."""
    from ispad_core.evaluation.review import _shrink

    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    out = _shrink(image, 30)
    step = max(1, -(-max(shape[:2]) // 30))
    assert max(out.shape[:2]) <= 30 and out.shape[:2] == (shape[0] // step, shape[1] // step)
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            block = image[r * step:(r + 1) * step, c * step:(c + 1) * step].astype(np.float64)
            assert np.all(np.abs(out[r, c].astype(np.float64) - block.mean(axis=(0, 1))) <= 0.5 + 1e-9)
