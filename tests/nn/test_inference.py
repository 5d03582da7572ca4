"""Sliding-window inspection: window scores against a one-window-at-a-time reference, ROI skipping,
the colour rule, bounded memory, the Inspection result, and inspect_files with bad scans."""

import csv
import json
import math
import tracemalloc

import imageio.v3 as iio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from ispad_core.nn.inference import (  # noqa: E402
    GREY_TO_RGB_RULE,
    LUMA_RULE,
    SUMMARY_COLUMNS,
    Inspection,
    default_stride,
    inspect,
    inspect_files,
    overlay,
    predict_windows,
    resolve_precision,
    rgb_to_grey,
)
from ispad_core.nn.preprocessing import preprocess_batch  # noqa: E402
from ispad_core.tiling import sliding_windows, stitch  # noqa: E402
from tests.nn._helpers import TinyNet  # noqa: E402

FP32 = dict(precision="fp32", channels_last=False)


class Counting(torch.nn.Module):
    """Wraps a model and records the batch size of every call."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.in_channels = getattr(inner, "in_channels", 1)
        self.batches = []

    def forward(self, x):
        self.batches.append(int(x.shape[0]))
        return self.inner(x)


class MaxDeviation(torch.nn.Module):
    """A hand-made detector: P(defective) grows with the window's largest deviation from its mean."""

    in_channels = 1

    def __init__(self, scale=30.0, offset=0.15):
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x):
        dev = (x - x.mean(dim=(2, 3), keepdim=True)).abs().amax(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(dev), self.scale * (dev - self.offset)], dim=1)


class Constant(torch.nn.Module):
    in_channels = 1

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float32)
        self.conv = torch.nn.Conv2d(1, 1, 1)  # a parameter, so the model has a device

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1).clone()


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TinyNet().eval()


def _scan(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _reference_scores(model, image, size, stride, preprocess="lsm2"):
    """Score the windows of sliding_windows one at a time (the slow obvious way)."""
    tiles, origins = sliding_windows(image, size=size, stride=stride)
    out = []
    with torch.no_grad():
        for k in range(len(tiles)):
            x = preprocess_batch(torch.from_numpy(np.ascontiguousarray(tiles[k])[None]), preprocess)
            out.append(float(torch.softmax(model(x).float(), dim=1)[0, 1]))
    return np.array(out), origins


# --------------------------------------------------------------------------- window scores


def test_default_stride_is_five_eighths():
    assert default_stride(256) == 160
    assert default_stride(64) == 40
    assert default_stride(3) == 2


@pytest.mark.parametrize("shape, size, stride", [((100, 130), 32, None), ((64, 64), 32, 32), ((70, 90), 16, 5)])
def test_predict_windows_equals_one_window_at_a_time(model, shape, size, stride):
    image = _scan(shape)
    ref, ref_origins = _reference_scores(model, image, size, stride or default_stride(size))
    scores, origins = predict_windows(model, image, size=size, stride=stride, batch_size=7, **FP32)
    assert scores.dtype == np.float64 and origins.dtype == np.int64
    np.testing.assert_array_equal(origins, ref_origins)
    np.testing.assert_allclose(scores, ref, rtol=0, atol=1e-6)
    # the last row and column of windows touch the border
    assert origins[:, 0].max() == shape[0] - size and origins[:, 1].max() == shape[1] - size


def test_batch_size_and_layout_do_not_change_scores(model):
    image = _scan((90, 110), seed=1)
    a, _ = predict_windows(model, image, size=32, batch_size=1, **FP32)
    b, _ = predict_windows(model, image, size=32, batch_size=128, **FP32)
    c, _ = predict_windows(model, image, size=32, batch_size=5, precision="fp32", channels_last=True)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a, c, rtol=0, atol=1e-5)


def test_model_state_is_restored(model):
    model.train()
    predict_windows(model, _scan((40, 40)), size=32, precision="fp32", channels_last=True)
    assert model.training
    assert model.conv.weight.is_contiguous()


def test_batches_never_exceed_batch_size():
    image = _scan((200, 230), seed=2)
    counting = Counting(TinyNet().eval())
    scores, origins = predict_windows(counting, image, size=32, stride=8, batch_size=16, **FP32)
    assert max(counting.batches) == 16
    assert sum(counting.batches) == scores.size == origins.shape[0] == len(sliding_windows(image, 32, 8)[0])


def test_windows_are_not_materialised():
    # 1 200 windows of 64 x 64 would be 4.9 MB as one array; a batch of 16 is 64 kB
    image = _scan((1000, 1000), seed=3)
    n = len(sliding_windows(image, 64, 24)[0])
    all_windows = n * 64 * 64
    tracemalloc.start()
    try:
        predict_windows(Constant([0.0, 0.0]), image, size=64, stride=24, batch_size=16, **FP32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n > 1000
    assert peak < all_windows / 4, (peak, all_windows)


# --------------------------------------------------------------------------- ROI


def test_roi_skips_windows_outside(model):
    image = _scan((120, 150), seed=4)
    roi = np.zeros(image.shape, bool)
    roi[40:80, 10:60] = True
    full, full_origins = predict_windows(model, image, size=32, stride=16, **FP32)
    scores, origins = predict_windows(model, image, size=32, stride=16, roi=roi, **FP32)
    counts = np.array([roi[r:r + 32, c:c + 32].sum() for r, c in full_origins])
    keep = counts >= 1
    np.testing.assert_array_equal(origins, full_origins[keep])
    np.testing.assert_allclose(scores, full[keep], rtol=0, atol=1e-6)
    # every ROI pixel is covered by a scored window
    covered = np.zeros(image.shape, bool)
    for r, c in origins:
        covered[r:r + 32, c:c + 32] = True
    assert covered[roi].all()
    # with a fraction: at least ceil(f * 32 * 32) ROI pixels
    for f in (0.25, 0.5, 1.0):
        _, o = predict_windows(model, image, size=32, stride=16, roi=roi.astype(np.uint8) * 255, min_roi_fraction=f, **FP32)
        np.testing.assert_array_equal(o, full_origins[counts >= math.ceil(f * 32 * 32)])


def test_roi_that_keeps_no_window(model):
    image = _scan((64, 64))
    with pytest.raises(ValueError, match="none of the 9 windows"):
        predict_windows(model, image, size=32, stride=16, roi=np.zeros((64, 64), bool))
    roi = np.zeros((64, 64), bool)
    roi[0, 0] = True
    with pytest.raises(ValueError, match="at least 50%"):
        predict_windows(model, image, size=32, stride=16, roi=roi, min_roi_fraction=0.5)


def test_inspection_of_roi_notes_skipped_windows(model):
    image = _scan((96, 96))
    roi = np.zeros(image.shape, bool)
    roi[:20, :20] = True
    result = inspect(model, image, threshold=0.5, size=32, roi=roi, **FP32)
    assert result.scores.size == 1 and result.grid_windows == 25  # starts 0, 20, 40, 60, 64
    assert any("24 of 25 windows" in n for n in result.notes)
    assert (result.heatmap[40:, 40:] == 0).all()


# --------------------------------------------------------------------------- colour


def test_rgb_to_grey_is_bt601_rounded():
    rgb = np.random.default_rng(0).integers(0, 256, (5000, 3), dtype=np.uint8)
    r, g, b = rgb.astype(np.float64).T
    np.testing.assert_array_equal(rgb_to_grey(rgb), np.floor((299 * r + 587 * g + 114 * b) / 1000 + 0.5))
    assert rgb_to_grey(np.array([255, 255, 255], np.uint8)) == 255


def test_rgb_scan_with_grey_model_uses_luma(model):
    rgb = np.random.default_rng(5).integers(0, 256, (80, 90, 3), dtype=np.uint8)
    a = inspect(model, rgb, threshold=0.5, size=32, **FP32)
    b = inspect(model, rgb_to_grey(rgb), threshold=0.5, size=32, **FP32)
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-6)
    assert a.colour == LUMA_RULE and b.colour is None
    assert any("BT.601" in n for n in a.notes)


def test_grey_scan_with_rgb_model_repeats_channels():
    torch.manual_seed(0)
    model = TinyNet(in_channels=3).eval()
    grey = _scan((64, 80), seed=6)
    a = inspect(model, grey, threshold=0.5, size=32, **FP32)
    b = inspect(model, np.repeat(grey[..., None], 3, axis=2), threshold=0.5, size=32, **FP32)
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-6)
    assert a.colour == GREY_TO_RGB_RULE


# --------------------------------------------------------------------------- the Inspection


def test_inspect_keeps_torch_thread_count(model):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        inspect(model, _scan((64, 64)), threshold=0.5, size=32).heatmap  # stitch runs Numba's parallel kernels
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_inspection_fields(model):
    image = _scan((100, 140), seed=7)
    result = inspect(model, image, threshold=0.5, size=32, **FP32)
    assert isinstance(result, Inspection)
    np.testing.assert_array_equal(
        result.heatmap, stitch(result.scores.astype(np.float32), result.origins, image.shape, reduce="max", size=32)
    )
    assert result.heatmap.dtype == np.float32
    over = result.scores >= 0.5
    assert result.defective == bool(over.any())
    assert sorted(result.flagged.tolist()) == np.flatnonzero(over).tolist()
    assert (np.diff(result.flagged_scores) <= 0).all()
    assert set(result.timings) == {"gather_s", "preprocess_s", "wait_s", "forward_s", "total_s"}
    d = result.to_dict()
    json.dumps(d)
    assert d["windows"]["inspected"] == result.scores.size and len(d["flagged"]) == result.flagged.size
    with pytest.raises(ValueError):
        result.scores[0] = 1.0  # read-only


@pytest.mark.parametrize("threshold, defective", [(0.7, True), (0.8, False)])
def test_decision_is_any_window_at_threshold(threshold, defective):
    # constant logits [0, log(3)] give P = 0.75 in every window
    result = inspect(Constant([0.0, math.log(3.0)]), _scan((64, 64)), threshold=threshold, size=32, **FP32)
    np.testing.assert_allclose(result.scores, 0.75, atol=1e-7)
    assert result.defective is defective
    assert result.flagged.size == (result.scores.size if defective else 0)


def test_hottest_window_covers_the_planted_defect():
    from ispad_core.synth import synthesize

    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(140, 3, (400, 460)), 0, 255).astype(np.uint8)
    r, c = 230, 300
    res = synthesize(image[r:r + 64, c:c + 64], "dot-dark", rng=1)
    assert res.accepted
    image[r:r + 64, c:c + 64] = res.image
    rows, cols = np.nonzero(res.mask)
    box = (r + rows.min(), c + cols.min(), r + rows.max() + 1, c + cols.max() + 1)
    result = inspect(MaxDeviation(), image, threshold=0.5, size=64, preprocess="lsm2", **FP32)
    top_r, top_c = result.origins[np.argmax(result.scores)]
    assert top_r <= box[0] and top_c <= box[1] and box[2] <= top_r + 64 and box[3] <= top_c + 64
    assert result.defective
    hot = result.heatmap >= result.max_score
    assert hot[box[0]:box[2], box[1]:box[3]].all()


def test_inspection_scan_sample_is_planted_where_it_says():
    from ispad_core.samples import inspection_scan

    scan = inspection_scan((600, 640), rng=3, n_defects=3, strength=2.0, region=96)
    clean = inspection_scan((600, 640), rng=3, n_defects=0, region=96)
    changed = scan.image != clean.image
    assert not scan.mask[~changed].any()  # the masks mark changed pixels only
    near = np.zeros(changed.shape, bool)  # and faint tails stay inside each defect's drawing area
    for r0, c0, r1, c1 in scan.boxes:
        near[max(r0 - 96, 0):r1 + 96, max(c0 - 96, 0):c1 + 96] = True
    assert changed.any() and not changed[~near].any()
    for r0, c0, r1, c1 in scan.boxes:
        assert scan.mask[r0:r1, c0:c1].any()
    assert scan.mask.sum() == sum(scan.mask[r0:r1, c0:c1].sum() for r0, c0, r1, c1 in scan.boxes)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(image=np.zeros((20, 40), np.uint8)), ValueError, "20 x 40 px, smaller than the 32 x 32 window"),
        (dict(image=np.zeros((64, 64), np.float32)), TypeError, "expected dtype uint8"),
        (dict(image=np.zeros((64, 64, 4), np.uint8)), ValueError, "grey .* or RGB"),
        (dict(stride=33), ValueError, "stride"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(roi=np.ones((10, 10), bool)), ValueError, r"roi: expected shape \(64, 64\)"),
        (dict(precision="fp16"), ValueError, "fp16 autocast needs a CUDA device"),
        (dict(precision="fp8"), ValueError, "precision"),
        (dict(channels_last="yes"), TypeError, "channels_last"),
        (dict(model=object()), TypeError, "model: expected a torch.nn.Module"),
        (dict(model=Constant([0.0])), ValueError, r"model: expected \(B, 2\) logits"),
        (dict(model=Constant([0.0, float("nan")])), RuntimeError, "non-finite scores"),
    ],
)
def test_bad_inputs(model, kwargs, exc, match):
    args = dict(model=model, image=np.zeros((64, 64), np.uint8), size=32)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        predict_windows(args.pop("model"), args.pop("image"), **args)


def test_bad_threshold(model):
    with pytest.raises(ValueError, match="threshold"):
        inspect(model, np.zeros((64, 64), np.uint8), threshold=1.5, size=32)


def test_auto_precision():
    from ispad_core.nn.runtime import cpu_has_bf16

    assert resolve_precision("auto", "auto", "cpu") == ("bf16" if cpu_has_bf16() else "fp32", True)
    assert resolve_precision("auto", None, "cuda") == ("fp16", True)
    assert resolve_precision("bf16", False, "cpu") == ("bf16", False)


# --------------------------------------------------------------------------- files


def _meta(size=32, threshold=0.5):
    return {"backbone": "test:tiny", "in_channels": 1, "num_classes": 2, "patch_size": size,
            "preprocess": {"brightness": 1.0, "ksize": 3, "sigma": 1.0, "mean": 0.449, "std": 0.226},
            "threshold": threshold}


def _write_scans(folder):
    folder.mkdir()
    iio.imwrite(folder / "a.png", _scan((96, 120), seed=10))
    iio.imwrite(folder / "b.png", _scan((20, 200), seed=11))  # smaller than a window
    (folder / "c.png").write_bytes(b"this is not a PNG")        # unreadable
    iio.imwrite(folder / "d.png", np.random.default_rng(12).integers(0, 256, (80, 70, 3), dtype=np.uint8))
    return folder


def test_inspect_files_reports_bad_scans_and_inspects_the_rest(tmp_path, model):
    scans = _write_scans(tmp_path / "scans")
    seen = []
    report = inspect_files(scans, model=(model, _meta()), out=tmp_path / "out", on_scan=seen.append, **FP32)
    assert [s.name for s in report.scans] == ["a", "b", "c", "d"] == [s.name for s in seen]
    ok = {s.name: s for s in report.scans}
    assert ok["a"].ok and ok["d"].ok and not ok["b"].ok and not ok["c"].ok
    assert {s.name for s in report.failed} == {"b", "c"}
    assert str(scans / "b.png") in ok["b"].error and "20 x 200 px, smaller than the model's 32 x 32 window" in ok["b"].error
    assert str(scans / "c.png") in ok["c"].error and "cannot read" in ok["c"].error
    assert ok["d"].colour == LUMA_RULE
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "a.json", "a_overlay.png", "d.json", "d_overlay.png", "summary.csv"]
    with open(report.summary, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == SUMMARY_COLUMNS
    assert [r["status"] for r in rows] == ["ok", "error", "error", "ok"]
    assert "smaller than" in rows[1]["error"]
    assert rows[0]["decision"] in ("good", "defective")


def test_json_and_overlay_agree_with_the_inspection(tmp_path):
    image = _scan((96, 120), seed=10)
    image[40:44, 70:74] = 255
    iio.imwrite(tmp_path / "s.png", image)
    model = MaxDeviation(scale=6.0, offset=2.0)
    report = inspect_files([tmp_path / "s.png"], model=(model, _meta(threshold=0.4)), out=tmp_path / "out", **FP32)
    result = inspect(model, image, threshold=0.4, size=32, preprocess="lsm2", **FP32)
    payload = json.loads((tmp_path / "out" / "s.json").read_text())
    assert payload["format"] == "ispad-inspection" and payload["format_version"] == 1
    assert payload["defective"] == result.defective and payload["decision"] == ("defective" if result.defective else "good")
    assert payload["threshold"] == 0.4 and payload["model"]["patch_size"] == 32
    assert [(f["row"], f["col"]) for f in payload["flagged"]] == [tuple(o) for o in result.flagged_origins.tolist()]
    np.testing.assert_allclose([f["score"] for f in payload["flagged"]], result.flagged_scores)
    assert payload["windows"]["inspected"] == result.scores.size
    assert payload["scan"]["height"] == 96 and payload["scan"]["colour_conversion"] is None
    assert result.flagged.size > 0
    picture = iio.imread(tmp_path / "out" / payload["overlay"])
    assert picture.shape == (96, 120, 3)
    np.testing.assert_array_equal(picture, overlay(image, result, title="s.png"))
    # the hottest window's outline is drawn (cyan) on its bottom edge
    r, c = result.flagged_origins[0]
    assert (picture[r + 31, c + 8:c + 24] == [0, 255, 255]).all()
    assert report.scans[0].ok and report.scans[0].json.name == "s.json"


def test_inspect_files_with_rois(tmp_path, model):
    iio.imwrite(tmp_path / "s.png", _scan((96, 96), seed=1))
    iio.imwrite(tmp_path / "t.png", _scan((96, 96), seed=2))
    (tmp_path / "rois").mkdir()
    roi = np.zeros((96, 96), np.uint8)
    roi[:30, :30] = 255
    iio.imwrite(tmp_path / "rois" / "s.png", roi)
    iio.imwrite(tmp_path / "rois" / "t.png", roi[:50])
    report = inspect_files([tmp_path / "s.png", tmp_path / "t.png"], model=(model, _meta()), out=tmp_path / "o",
                           rois=tmp_path / "rois", **FP32)
    s, t = report.scans
    assert s.ok and s.windows == 4  # window starts 0 and 20 reach into rows and columns < 30
    assert not t.ok and "96 x 96 px but its ROI" in t.error and "50 x 96" in t.error


def test_inspect_files_refuses_before_work(tmp_path, model):
    iio.imwrite(tmp_path / "s.png", _scan((64, 64)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "s.json").write_text("{}")
    with pytest.raises(FileExistsError, match="s.json"):
        inspect_files([tmp_path / "s.png"], model=(model, _meta()), out=out)
    assert sorted(p.name for p in out.iterdir()) == ["s.json"]
    report = inspect_files([tmp_path / "s.png"], model=(model, _meta()), out=out, overwrite=True, **FP32)
    assert report.scans[0].ok and json.loads((out / "s.json").read_text())["format"] == "ispad-inspection"
    with pytest.raises(ValueError, match="trained on 32 x 32 patches, but windows of 48 x 48"):
        inspect_files([tmp_path / "s.png"], model=(model, _meta()), out=out, size=48, overwrite=True)
    (tmp_path / "x").mkdir()
    iio.imwrite(tmp_path / "x" / "s.png", _scan((64, 64)))
    with pytest.raises(ValueError, match="would both write s.json"):
        inspect_files([tmp_path / "s.png", tmp_path / "x" / "s.png"], model=(model, _meta()), out=out, overwrite=True)


def test_inspect_files_with_a_model_file(tmp_path):
    from ispad_core.nn import classifier, save_model

    torch.manual_seed(0)
    net = classifier("resnet18", in_channels=1, num_classes=2, dropout=0.1, weights=None)
    meta = {"backbone": "resnet18", "backbone_kwargs": {}, "in_channels": 1, "num_classes": 2, "dropout": 0.1,
            "patch_size": 32, "preprocess": {"brightness": 1.5, "ksize": 3, "sigma": 1.0, "mean": 0.449, "std": 0.226},
            "threshold": 0.5}
    path = save_model(tmp_path / "model.pt", net, metadata=meta)
    image = _scan((64, 80))
    iio.imwrite(tmp_path / "s.png", image)
    report = inspect_files([tmp_path / "s.png"], model=path, out=tmp_path / "out", **FP32)
    assert report.scans[0].ok, report.scans[0].error
    assert report.model["path"] == str(path) and report.model["backbone"] == "resnet18"
    payload = json.loads((tmp_path / "out" / "s.json").read_text())
    expected = inspect(net.eval(), image, threshold=0.5, size=32, preprocess="lsm1", **FP32)
    assert payload["max_score"] == pytest.approx(expected.max_score, abs=1e-6)


# --------------------------------------------------------------------------- the command line


def _parse(module, argv):
    import argparse

    parser = argparse.ArgumentParser(prog="ispad")
    module.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args([module.__name__.rsplit(".", 1)[-1], *argv])


def test_cli_inspect_exit_status_and_lines(tmp_path, capsys):
    from ispad_core.cli import inspect as _cli_inspect
    from ispad_core.nn import classifier, save_model

    torch.manual_seed(0)
    net = classifier("resnet18", in_channels=1, num_classes=2, dropout=0.1, weights=None)
    meta = {"backbone": "resnet18", "backbone_kwargs": {}, "in_channels": 1, "num_classes": 2, "dropout": 0.1,
            "patch_size": 32, "preprocess": {"brightness": 1.0, "ksize": 3, "sigma": 1.0, "mean": 0.449, "std": 0.226},
            "threshold": 0.5}
    model = save_model(tmp_path / "model.pt", net, metadata=meta)
    iio.imwrite(tmp_path / "good.png", _scan((64, 80)))
    iio.imwrite(tmp_path / "tiny.png", _scan((16, 16)))
    args = _parse(_cli_inspect, [str(tmp_path / "good.png"), "--model", str(model), "--out", str(tmp_path / "r"), "--quiet"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "good.png: " in out and "1 of 1 scans inspected" in out and str(tmp_path / "r") in out
    args = _parse(_cli_inspect, [str(tmp_path / "good.png"), str(tmp_path / "tiny.png"), "--model", str(model),
                                 "--out", str(tmp_path / "r"), "--overwrite", "--quiet", "--precision", "fp32"])
    assert args.func(args) == 1
    captured = capsys.readouterr()
    assert "tiny.png: FAILED" in captured.out and "16 x 16 px, smaller than the model's 32 x 32 window" in captured.out
    assert "could not be inspected" in captured.err
    with open(tmp_path / "r" / "summary.csv") as fh:
        assert len(fh.read().strip().splitlines()) == 3


def test_settings_and_keywords_score_alike_and_old_names_warn(model):
    from ispad_core.nn.inference import InferenceSettings

    image = _scan((80, 96))
    run = InferenceSettings(batch_size=5, precision="fp32", channels_last=False, verbose=False)
    a = predict_windows(model, image, size=32, settings=run)
    b = predict_windows(model, image, size=32, batch_size=5, precision="fp32", channels_last=False, verbose=False)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = inspect(model, image, threshold=0.5, size=32, settings=run, batch_size=7)  # keywords over the settings
    np.testing.assert_allclose(c.scores, a[0], rtol=0, atol=1e-6)
    with pytest.warns(DeprecationWarning, match="predict_windows: show_progress= is now called verbose="):
        predict_windows(model, image, size=32, show_progress=False)
    with pytest.raises(TypeError, match="inspect\\(\\) got an unexpected keyword argument 'batchsize'"):
        inspect(model, image, threshold=0.5, size=32, batchsize=4)
    with pytest.raises(ValueError, match="precision: expected one of"):
        InferenceSettings(precision="fp64")


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_heat_at_equals_the_heat_map_sampled(data):
    """heat_at(rows, cols) is heatmap[np.ix_(rows, cols)] exactly, for any stride, ROI and sampling."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten()).eval()
    shape = (data.draw(st.integers(32, 90)), data.draw(st.integers(32, 90)))
    stride = data.draw(st.integers(4, 32))
    image = _scan(shape, seed=data.draw(st.integers(0, 3)))
    roi = None
    if data.draw(st.booleans()):
        roi = np.zeros(shape, np.uint8)
        roi[: shape[0] // 2] = 1
    result = inspect(model, image, threshold=0.5, size=32, stride=stride, roi=roi, **FP32)
    rows = np.sort(np.array(data.draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=20)), dtype=np.int64))
    cols = np.sort(np.array(data.draw(st.lists(st.integers(0, shape[1] - 1), min_size=1, max_size=20)), dtype=np.int64))
    got = result.heat_at(rows, cols)
    assert got.dtype == np.float32 and got.shape == (rows.size, cols.size)
    np.testing.assert_array_equal(got, result.heatmap[np.ix_(rows, cols)])


def test_heat_at_rejects_bad_indices(model):
    result = inspect(model, _scan((64, 64)), threshold=0.5, size=32, **FP32)
    with pytest.raises(ValueError, match="rows"):
        result.heat_at([5, 3], [0])
    with pytest.raises(ValueError, match="cols"):
        result.heat_at([0], [64])
    with pytest.raises(TypeError, match="rows"):
        result.heat_at([0.5], [0])
