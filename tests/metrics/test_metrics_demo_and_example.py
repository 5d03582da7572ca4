"""The synthetic demo data (benchmarks, docs, example script) and the example script itself."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
from scipy import ndimage

from ispad_core.metrics import au_pro, classification_report
from ispad_core.metrics._demo import demo_maps

ROOT = Path(__file__).resolve().parents[2]


def test_demo_maps_are_deterministic_and_match_their_spec():
    a = demo_maps(30, (48, 40), 7, region_size=(5, 120), rng=3)
    b = demo_maps(30, (48, 40), 7, region_size=(5, 120), rng=3)
    assert a.anomaly_maps.tobytes() == b.anomaly_maps.tobytes() and np.array_equal(a.masks, b.masks)
    assert a.anomaly_maps.shape == (30, 48, 40) and a.anomaly_maps.dtype == np.float32
    assert a.masks.dtype == bool and a.labels.tolist() == a.masks.any(axis=(1, 2)).astype(int).tolist()
    assert int(a.labels.sum()) == 7
    sizes = []
    for i in np.flatnonzero(a.labels):
        labels, n = ndimage.label(a.masks[i], structure=np.ones((3, 3)))
        sizes.extend(np.bincount(labels.ravel())[1:])
    # regions of one map may merge (fewer, larger components), so each component has >= 5 pixels
    assert 7 <= len(sizes) and min(sizes) >= 5
    c = demo_maps(30, (48, 40), 7, region_size=(5, 120), rng=4)
    assert not np.array_equal(a.anomaly_maps, c.anomaly_maps)


def test_demo_maps_are_scoreable():
    d = demo_maps(40, (32, 32), 6, region_size=(5, 60), rng=0)
    assert 0.0 < au_pro(d.anomaly_maps, d.masks) < 1.0
    r = classification_report(d.labels, d.image_scores)
    assert r.tp + r.fn == 6 and r.tn + r.fp == 34


def test_example_script_prints_report_and_au_pro(capsys, monkeypatch):
    script = ROOT / "examples" / "score_example.py"
    monkeypatch.setattr("sys.argv", [str(script), "--json"])
    runpy.run_path(str(script), run_name="__main__")
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"image", "au_pro_0.3", "pixel_auroc"}
    assert set(out["image"]) >= {"mcc", "recall", "fpr", "precision", "tn", "tp", "fn", "fp", "threshold", "auroc"}
    assert out["image"]["tp"] + out["image"]["fn"] == 25
    assert 0.0 < out["au_pro_0.3"] < 1.0
