"""The review page in a real browser: Playwright drives Chromium on the page opened from disk,
decides windows with buttons and keys, exports decisions.csv (the real download), and
``ispad crops --at`` turns it into real/<group>/ and good/ folders.

Needs the ``playwright`` package and a Chromium (Debian's ``/usr/bin/chromium``, or the one
``ISPAD_CHROMIUM`` names); ``playwright install`` is not used. Without them the tests skip, except
under CI (``CI`` set), where a missing browser is a failure.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

from ispad_core.evaluation import DECISION_COLUMNS
from tests.conftest import run_ispad
from tests.test_review import ODD, check_crops, make_results

pytestmark = pytest.mark.slow


def _chromium() -> str | None:
    for candidate in (os.environ.get("ISPAD_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing; CI must run the browser test (see .ci/run)")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package (pip install playwright)")
    executable = _chromium()
    if executable is None:
        _missing("Chromium (apt-get install chromium)")

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page_of(browser):
    """Open a page file in a fresh context; JavaScript errors fail the test."""
    opened = []

    def open_page(path: Path):
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        errors: list = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(path.resolve().as_uri())
        opened.append((context, errors))
        return page

    yield open_page
    for context, errors in opened:
        context.close()
        assert errors == [], errors


def test_decide_export_and_crop_in_a_browser(tmp_path, page_of):
    images = make_results(tmp_path, {
        "a": [(0, 0, 32, 0.61), (32, 64, 32, 0.97)],
        ODD: [(64, 96, 32, 0.83), (0, 32, 32, 0.72)],
    })
    run_ispad("review", tmp_path / "results", "--out", tmp_path / "review.html")
    page = page_of(tmp_path / "review.html")
    wins = page.locator(".win")
    assert wins.count() == 4
    assert page.inner_text("#counter") == "0 of 4 decided: 0 defect, 0 false alarm"

    page.keyboard.press("d")  # the first (current) window: a defect of the default group
    assert "defect (unsorted)" in wins.nth(0).inner_text()
    group = wins.nth(1).locator(".group")  # the second became current; name its group, Enter = defect
    assert "current" in wins.nth(1).get_attribute("class")
    group.fill("scratch")
    group.press("Enter")
    assert wins.nth(2).locator(".group").input_value() == "scratch"  # the last group typed is remembered
    bad = wins.nth(2).locator(".group")
    bad.fill("../up")
    wins.nth(2).locator(".bd").click()  # refused: not a folder name
    assert page.inner_text("#counter") == "2 of 4 decided: 2 defect, 0 false alarm"
    bad.press("Escape")
    page.keyboard.press("f")  # the third window is still current: a false alarm
    assert page.inner_text("#counter") == "3 of 4 decided: 2 defect, 1 false alarm"
    page.keyboard.press("x")  # undecide the current (fourth) one: nothing changes
    page.keyboard.press("k")
    page.keyboard.press("k")
    page.keyboard.press("x")  # undecide the second and decide it again by its button
    assert page.inner_text("#counter") == "2 of 4 decided: 1 defect, 1 false alarm"
    wins.nth(1).locator(".group").fill("dent")
    wins.nth(1).locator(".bd").click()

    with page.expect_download() as info:
        page.click("#export")
    download = info.value
    assert download.suggested_filename == "decisions.csv"
    target = tmp_path / "decisions.csv"
    download.save_as(target)
    with open(target, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == DECISION_COLUMNS
        rows = list(reader)
    assert [(r["scan"], r["row"], r["col"], r["group"], r["decision"]) for r in rows] == [
        ("a.png", "32", "64", "unsorted", "defect"),
        (ODD + ".png", "64", "96", "dent", "defect"),
        (ODD + ".png", "0", "32", "", "false_alarm"),
    ]
    assert [float(r["score"]) for r in rows] == [0.97, 0.83, 0.72] and {r["threshold"] for r in rows} == {"0.500000"}

    run_ispad("crops", "--scans", tmp_path / "scans", "--at", target, "--size", "32", "--out", tmp_path / "real",
              "--good-out", tmp_path / "good")
    check_crops(tmp_path, images, rows, tmp_path / "real", tmp_path / "good", 32)


def test_an_empty_run_opens_and_says_so(tmp_path, page_of):
    make_results(tmp_path, {"x": []})
    run_ispad("review", tmp_path / "results", "--out", tmp_path / "review.html")
    page = page_of(tmp_path / "review.html")
    assert "No windows were flagged" in page.inner_text("#empty")
    assert page.inner_text("#counter") == "0 of 0 decided: 0 defect, 0 false alarm"
    page.keyboard.press("d")  # nothing to decide: no error
