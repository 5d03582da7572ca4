"""The README's tour runs as written, so the first code a user copies cannot rot."""

import importlib.util
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _tour_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    tour = text[text.index("## A short tour") : text.index("## Documentation")]
    return re.findall(r"```python\n(.*?)```", tour, flags=re.S)


def _run(blocks, tmp_path, monkeypatch) -> dict:
    monkeypatch.chdir(tmp_path)  # the tour writes files; keep them out of the checkout
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)
    return namespace


def test_readme_core_tour_runs(tmp_path, monkeypatch):
    blocks = [b for b in _tour_blocks() if "ispad_core.nn" not in b]
    assert len(blocks) >= 4, "the tour lost its code blocks"
    ns = _run(blocks, tmp_path, monkeypatch)
    assert ns["res"].accepted.mean() > 0.9
    assert ns["heat"].shape == (2048, 2048)
    assert (tmp_path / "tour.h5").exists()
    assert ns["labels"].shape == (100,)


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs the [torch] extra")
def test_readme_torch_tour_runs(tmp_path, monkeypatch):
    blocks = _tour_blocks()
    assert any("ispad_core.nn" in b for b in blocks), "the tour lost its torch block"
    ns = _run(blocks, tmp_path, monkeypatch)
    assert ns["result"].steps == 1 and len(ns["result"].history) == 1
