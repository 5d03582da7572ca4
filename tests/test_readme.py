"""The README's tour runs as written, so the first code a user copies cannot rot."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs(tmp_path, monkeypatch):
    text = README.read_text(encoding="utf-8")
    tour = text[text.index("## A short tour") : text.index("## Documentation")]
    blocks = re.findall(r"```python\n(.*?)```", tour, flags=re.S)
    assert len(blocks) >= 4, "the tour lost its code blocks"
    monkeypatch.chdir(tmp_path)  # the tour writes files; keep them out of the checkout
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)
    assert namespace["res"].accepted.mean() > 0.9
    assert namespace["heat"].shape == (2048, 2048)
    assert (tmp_path / "tour.h5").exists()
    assert namespace["labels"].shape == (100,)
