"""calibrate(): a per-design threshold from fault-free windows, kept in the model file; inspect
with --design: the threshold's source in every output, and the drift test of a run."""

import csv
import json
import math
import warnings

import imageio.v3 as iio
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core.metrics import UnsupportedRateError, UnsupportedRateWarning, score_drift  # noqa: E402
from ispad_core.nn import Calibration, Preprocess, calibrate, classifier, inspect_files, load_model, save_model  # noqa: E402
from ispad_core.nn.inference import predict_windows  # noqa: E402
from ispad_core.nn.modelfile import ModelFileError, read_model_file, write_calibration  # noqa: E402
from ispad_core.preprocess import adjust_brightness, gaussian_smooth  # noqa: E402
from ispad_core.samples import screen_print  # noqa: E402
from tests.reference.calibration_ref import fpr_threshold_ref  # noqa: E402

FACTORY = "tests.nn._factory:small_cnn"
FP32 = dict(precision="fp32", channels_last=False)
PRE = Preprocess()


def _meta(backbone=FACTORY):
    return {"backbone": backbone, "backbone_kwargs": {"width": 4} if backbone == FACTORY else {}, "in_channels": 1,
            "num_classes": 2, "dropout": 0.1, "patch_size": 32, "preprocess": PRE.to_dict(), "threshold": 0.5}


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    net = classifier(FACTORY, in_channels=1, num_classes=2, dropout=0.1, width=4)
    return save_model(tmp_path / "model.pt", net, metadata=_meta())


def _tiles(kind="dots", n=36, seed=0, side=192):
    """Scans of one design: tiles of one large print (it shades and varies its ink across the sheet)."""
    k = int(np.ceil(np.sqrt(n)))
    big = screen_print((k * side, k * side), rng=seed, kind=kind)
    return [big[r:r + side, c:c + side] for r in range(0, k * side, side) for c in range(0, k * side, side)][:n]


@pytest.fixture
def good(tmp_path):
    folder = tmp_path / "good_dots"
    folder.mkdir()
    for i, t in enumerate(_tiles("dots", 4, side=160)):
        iio.imwrite(folder / f"g{i}.png", t)
    return folder


def _calibrate(model_file, good, **kw):
    kw = {"design": "dots", "target_fpr": 0.02, "verbose": False, "allow_factory": FACTORY, **FP32, **kw}
    return calibrate(model_file, good, **kw)


# --------------------------------------------------------------------------- the threshold and the file


def test_calibrate_takes_the_order_statistic_of_the_windows_inspect_scores(tmp_path, model_file, good):
    out = tmp_path / "calibrated.pt"
    cal = _calibrate(model_file, good, out=out)
    net, meta = load_model(model_file, allow_factory=FACTORY)
    scores = np.concatenate([predict_windows(net, iio.imread(f), size=32, preprocess=PRE, **FP32)[0]
                             for f in sorted(good.iterdir())])
    assert cal.n_windows == scores.size == 4 * 64 and cal.n_scans == 4 and cal.windows_per_scan == 64
    assert cal.threshold == pytest.approx(fpr_threshold_ref(scores, 0.02), abs=1e-6)  # fp32 scores, same windows
    assert cal.expected_false_alarms_per_scan == pytest.approx(0.02 * 64)
    assert cal.smallest_supported_fpr == pytest.approx(1 / 257) and cal.supported and cal.path == out
    _, meta = read_model_file(out)
    entry = meta["calibrations"]["dots"]
    assert entry == json.loads(json.dumps(cal.to_entry()))
    assert len(entry["sample"]) == 256 and entry["sample"] == sorted(entry["sample"])
    assert Calibration.from_entry("dots", entry).threshold == cal.threshold
    assert not (tmp_path / "model.pt").read_bytes() == out.read_bytes()  # the input is untouched
    assert "calibrations" not in read_model_file(model_file)[1]


def test_two_designs_stay_apart_and_a_recalibration_replaces_only_its_own(tmp_path, model_file, good):
    lines = tmp_path / "good_lines"
    lines.mkdir()
    for i, t in enumerate(_tiles("lines", 3, side=160)):
        iio.imwrite(lines / f"l{i}.png", t)
    a = _calibrate(model_file, good, out=tmp_path / "m.pt")
    b = _calibrate(tmp_path / "m.pt", lines, design="lines", target_fpr=0.05, out=tmp_path / "m.pt", overwrite=True)
    _, meta = read_model_file(tmp_path / "m.pt")
    assert sorted(meta["calibrations"]) == ["dots", "lines"]
    assert meta["calibrations"]["dots"]["threshold"] == a.threshold and meta["calibrations"]["lines"]["threshold"] == b.threshold
    assert meta["calibrations"]["lines"]["n_scans"] == 3 and meta["calibrations"]["dots"]["n_scans"] == 4
    again = _calibrate(tmp_path / "m.pt", good, target_fpr=0.1, out=tmp_path / "m.pt", overwrite=True)
    _, meta = read_model_file(tmp_path / "m.pt")
    assert meta["calibrations"]["dots"]["target_fpr"] == 0.1 and meta["calibrations"]["dots"]["threshold"] == again.threshold
    assert meta["calibrations"]["lines"] == json.loads(json.dumps(b.to_entry()))


def test_the_digest_refuses_an_edited_calibration(tmp_path, model_file, good):
    path = tmp_path / "m.pt"
    _calibrate(model_file, good, out=path)
    payload = torch.load(path, weights_only=True)
    payload["metadata"]["calibrations"]["dots"]["threshold"] = 0.999  # fewer alarms, by hand
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(ModelFileError, match="edited or is corrupt"):
        read_model_file(tmp_path / "edited.pt")
    with pytest.raises(ModelFileError, match="edited or is corrupt"):
        inspect_files(good, model=tmp_path / "edited.pt", design="dots", out=tmp_path / "r", allow_factory=FACTORY)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda e: e.pop("sample"), r"\['calibrations'\]\['dots'\]: missing keys \['sample'\]"),
        (lambda e: e.update(threshold=1.5), r"\['calibrations'\]\['dots'\]\['threshold'\]: expected a number in \[0, 1"),
        (lambda e: e.update(target_fpr=0.0), r"\['target_fpr'\]: expected a rate in \(0, 1\)"),
        (lambda e: e.update(method="mean"), r"\['method'\]: expected one of order, quantile, gpd"),
        (lambda e: e.update(n_windows=0), r"\['n_windows'\]: expected an int in \[1, inf\]"),
        (lambda e: e.update(sample=[0.3, 0.1]), r"\['sample'\]: expected an ascending list"),
        (lambda e: e.update(supported="yes"), r"\['supported'\]: expected a bool"),
        (lambda e: e.update(design_effect=0.5), r"\['design_effect'\]: expected a number in \[1, inf\]"),
    ],
)
def test_the_model_file_checker_validates_each_calibration(tmp_path, model_file, good, edit, match):
    entry = _calibrate(model_file, good).to_entry()
    edit(entry)
    with pytest.raises((TypeError, ValueError), match=match):
        write_calibration(model_file, "dots", entry, out=tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
    net, _ = load_model(model_file, allow_factory=FACTORY)
    with pytest.raises((TypeError, ValueError), match=match):
        save_model(tmp_path / "m.pt", net, metadata={**_meta(), "calibrations": {"dots": entry}})
    assert not (tmp_path / "m.pt").exists()


def test_out_is_checked_before_any_scoring_and_the_input_needs_overwrite(tmp_path, model_file, good, monkeypatch):
    from ispad_core.nn import calibration as module

    monkeypatch.setattr(module, "predict_windows", lambda *a, **k: pytest.fail("scored before refusing out"))
    with pytest.raises(FileExistsError, match="out: .*model.pt exists; ask for overwrite"):
        _calibrate(model_file, good, out=model_file)
    monkeypatch.undo()
    before = model_file.read_bytes()
    _calibrate(model_file, good, out=model_file, overwrite=True)
    assert model_file.read_bytes() != before and "dots" in read_model_file(model_file)[1]["calibrations"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good_dots", "model.pt"]  # no temporary left


def test_rois_are_honoured_as_inspect_does(tmp_path, model_file, good):
    rois = tmp_path / "rois"
    rois.mkdir()
    for f in sorted(good.iterdir()):
        roi = np.zeros((160, 160), np.uint8)
        roi[:, :70] = 255
        iio.imwrite(rois / f.name, roi)
    cal = _calibrate(model_file, good, rois=rois)
    report = inspect_files(good, model=model_file, rois=rois, out=tmp_path / "r", allow_factory=FACTORY, verbose=False, **FP32)
    assert cal.n_windows == sum(s.windows for s in report.scans) < 4 * 64
    empty = tmp_path / "no_rois"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"rois: no region of interest for .*g0.png"):
        _calibrate(model_file, good, rois=empty)


def test_patches_of_the_window_size_are_windows_as_they_are(model_file):
    net, meta = load_model(model_file, allow_factory=FACTORY)
    tiles = _tiles("mesh", 4, side=160)
    patches = [t[r:r + 32, c:c + 32] for t in tiles for r in (0, 64) for c in (0, 32, 96)]
    cal = calibrate((net, meta), patches, design="mesh", target_fpr=0.05, verbose=False, **FP32)
    singles = np.array([predict_windows(net, p, size=32, preprocess=PRE, **FP32)[0][0] for p in patches])
    assert cal.n_windows == 24 and cal.n_scans == 0 and cal.windows_per_scan is None
    assert cal.threshold == pytest.approx(fpr_threshold_ref(singles, 0.05), abs=1e-6)
    np.testing.assert_allclose(np.sort(cal.sample), np.sort(singles).astype(np.float32), atol=1e-6)


def test_too_few_windows_name_the_rate_and_the_windows_it_needs(model_file, good):
    with pytest.raises(UnsupportedRateError, match=r"target_fpr: 0\.001 .* 256 fault-free windows .* at least 999 windows"):
        _calibrate(model_file, good, target_fpr=0.001)
    with pytest.warns(UnsupportedRateWarning, match="at least 999 windows"):
        cal = _calibrate(model_file, good, target_fpr=0.001, allow_unsupported=True)
    assert not cal.supported and "R IS BELOW IT" in str(cal)


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        ({"design": ""}, ValueError, "design: expected a non-empty name"),
        ({"design": 3}, TypeError, "design: expected a str"),
        ({"target_fpr": 1.0}, ValueError, r"target_fpr: expected a value in \(0, 1\)"),
        ({"method": "mean"}, ValueError, "method: expected one of 'order'"),
        ({"stride": 64}, ValueError, "stride: expected an int <= the model's patch size"),
        ({"batch": 3}, TypeError, "unexpected keyword argument 'batch'"),
    ],
)
def test_bad_arguments(model_file, good, kw, exc, match):
    with pytest.raises(exc, match=match):
        _calibrate(model_file, good, **kw)


def test_an_onnx_model_file_is_refused_before_any_scoring(tmp_path, good):
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match=r"model: .*m.onnx is an ONNX file; calibrate the model file \(.pt\)"):
        calibrate(tmp_path / "m.onnx", good, design="d", target_fpr=0.1, out=tmp_path / "o.pt")


def test_bad_images_are_named(tmp_path, model_file, good):
    small = tmp_path / "small"
    small.mkdir()
    iio.imwrite(small / "tiny.png", np.zeros((20, 40), np.uint8))
    with pytest.raises(ValueError, match=r"good: .*tiny.png is 20 x 40 px, smaller than the model's 32 x 32 window"):
        _calibrate(model_file, small)
    (small / "tiny.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="tiny.png"):
        _calibrate(model_file, small)
    with pytest.raises(TypeError, match="good: expected a folder"):
        _calibrate(model_file, 3)


def test_the_calibration_reads_as_a_summary(model_file, good):
    text = str(_calibrate(model_file, good))
    for part in ("design 'dots'", "256 fault-free windows from 4 scans", "R = 0.02 (conformal order statistic)",
                 "threshold: defective when P(defective) >=", "1/(n+1) = 0.00389",
                 "expected false alarms per fault-free scan: 1.28 (64 windows per scan)"):
        assert part in text, (part, text)


# --------------------------------------------------------------------------- inspect with a design


def test_inspect_names_the_threshold_and_its_source(tmp_path, model_file, good):
    path = tmp_path / "m.pt"
    cal = _calibrate(model_file, good, out=path)
    common = dict(model=path, allow_factory=FACTORY, verbose=False, **FP32)
    by_design = inspect_files(good, out=tmp_path / "a", design="dots", **common)
    doc = json.loads((tmp_path / "a" / "g0.json").read_text())
    assert doc["model"]["threshold_used"] == cal.threshold == doc["threshold"]
    assert doc["model"]["threshold_source"] == "design dots (calibrated on 256 windows at R=0.02)"
    assert doc["model"]["design"] == "dots" and doc["model"]["calibrated_designs"] == ["dots"]
    rows = list(csv.DictReader((tmp_path / "a" / "summary.csv").read_text().splitlines()))
    assert {r["threshold_source"] for r in rows} == {"design dots (calibrated on 256 windows at R=0.02)"}
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run == json.loads(json.dumps(by_design.run))
    assert run["windows"] == 256 and run["calibrated_fpr"] == 0.02
    assert run["windows_over_threshold"] == sum(s.flagged for s in by_design.scans) <= 0.02 * 257  # the same windows
    assert run["drift"]["drift"] is False and run["drift"]["n_ref"] == 256  # the calibration scans themselves
    assert run["notes"] == []
    other = inspect_files(good, out=tmp_path / "s", design="dots", stride=16, **common)
    assert "calibrated on windows at stride 20 and this run inspects at stride 16" in other.run["notes"][0]
    other = inspect_files(good, out=tmp_path / "p", design="dots", **{**common, "precision": "bf16"})
    assert "calibrated on fp32 scores and this run scored in bf16" in other.run["notes"][0]
    plain = inspect_files(good, out=tmp_path / "b", **common)
    assert plain.model["threshold_source"] == "validation" and plain.model["threshold_used"] == 0.5
    assert not (tmp_path / "b" / "run.json").exists() and plain.run["drift"] is None
    user = inspect_files(good, out=tmp_path / "c", threshold=0.7, design="dots", **common)
    assert user.model["threshold_source"] == "user" and user.model["threshold_used"] == 0.7
    assert user.run["drift"] is not None  # the design's sample still tests the run
    with pytest.raises(ValueError, match=r"design: .*m.pt has no calibration for design 'lines'; calibrated designs: 'dots'"):
        inspect_files(good, out=tmp_path / "d", design="lines", **common)
    with pytest.raises(ValueError, match=r"calibrated designs: none \(calibrate one with ispad calibrate\)"):
        inspect_files(good, out=tmp_path / "d", design="dots", model=model_file, allow_factory=FACTORY)


class Contrast(torch.nn.Module):
    """A texture-sensitive stand-in for a trained detector: logit = (mean |Laplacian| - centre) / scale."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, bias=False)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
        self.register_buffer("centre", torch.tensor(0.0))
        self.register_buffer("scale", torch.tensor(1.0))

    def forward(self, x):
        z = (self.conv(x).abs().mean(dim=(1, 2, 3)) - self.centre) / self.scale
        return torch.stack([torch.zeros_like(z), z], dim=1)


@pytest.fixture(scope="module")
def contrast_design():
    """The stand-in calibrated on 30 scans of one dotted design; 30 further scans of it to test."""
    tiles = _tiles("dots", 60, seed=5)
    order = np.random.default_rng(0).permutation(60)
    good, test = [tiles[i] for i in order[:30]], [tiles[i] for i in order[30:]]
    net = Contrast().eval()
    p = np.concatenate([predict_windows(net, t, size=32, preprocess=PRE, **FP32)[0] for t in good[:4]])
    f = np.log(p / (1 - p))
    net.centre.fill_(float(f.mean()))
    net.scale.fill_(float(2 * f.std()))
    meta = {**_meta("contrast"), "threshold": 0.5}
    cal = calibrate((net, meta), good, design="dots", target_fpr=0.01, verbose=False, **FP32)
    return net, {**meta, "calibrations": {"dots": cal.to_entry()}}, cal, test


def test_drift_is_flagged_for_brighter_and_blurred_scans_and_not_for_unchanged_ones(tmp_path, contrast_design):
    net, meta, cal, test = contrast_design
    assert cal.design_effect > 5  # the scans of one sheet vary (shading, ink)
    folders = {"same": lambda im: im, "bright": lambda im: adjust_brightness(im, 1.2),
               "blur": lambda im: gaussian_smooth(im, sigma=1.0, ksize=3)}
    drift = {}
    for name, change in folders.items():
        folder = tmp_path / name
        folder.mkdir()
        for i, im in enumerate(test[:3]):
            iio.imwrite(folder / f"s{i}.png", change(im))
        report = inspect_files(folder, model=(net, meta), design="dots", out=tmp_path / f"out_{name}", verbose=False, **FP32)
        drift[name] = json.loads((tmp_path / f"out_{name}" / "run.json").read_text())["drift"]
        assert report.run["drift"] == drift[name]
    assert drift["bright"]["drift"] and drift["blur"]["drift"] and not drift["same"]["drift"]
    assert drift["same"]["design_effect"] == cal.design_effect and drift["same"]["n_ref"] == cal.n_windows


def test_drift_false_alarms_on_unchanged_scans_stay_at_about_the_stated_rate(contrast_design):
    net, _, cal, test = contrast_design
    alpha = 0.1
    deff = cal.design_effect
    flagged = plain = 0
    for im in test:
        s = predict_windows(net, im, size=32, preprocess=PRE, **FP32)[0]
        flagged += score_drift(cal.sample, s, alpha=alpha, n_ref=cal.n_windows, design_effect=deff).drift
        plain += score_drift(cal.sample, s, alpha=alpha, n_ref=cal.n_windows).drift
    # at most alpha, within the sampling bound of 30 scans; without the design effect most are flagged
    assert flagged / len(test) <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / len(test))
    assert plain / len(test) > 0.5


class _FakeOnnx:
    """Stands in for an onnxruntime model of ispad_core.nn.export (same calling convention)."""

    ispad_engine = "onnxruntime"

    def __init__(self):
        self.net = Contrast().eval()
        self.in_channels = 1

    def __call__(self, x):
        with torch.no_grad():
            return self.net(x)


def test_the_json_takes_an_onnx_model_s_precision_from_its_metadata(tmp_path, good):
    fake = _FakeOnnx()
    meta = _meta("contrast")
    plain = inspect_files(good, model=(fake, meta), out=tmp_path / "a", verbose=False)
    assert plain.model["engine"] == "onnxruntime" and plain.model["precision"] == "fp32"
    half = inspect_files(good, model=(fake, {**meta, "precision": "fp16"}), out=tmp_path / "b", verbose=False)
    assert json.loads((tmp_path / "b" / "g0.json").read_text())["model"]["precision"] == "fp16" == half.model["precision"]


# --------------------------------------------------------------------------- scans that move together


def _stored(**kw):
    """A calibration as a model file would hold it: 4 scans of 169 windows at R = 0.01."""
    base = dict(design="mesh", threshold=0.5, target_fpr=0.01, method="order", n_windows=676, n_scans=4,
                windows_per_scan=169.0, expected_false_alarms_per_scan=1.69, quantiles={}, smallest_supported_fpr=1 / 677,
                supported=True, fpr_upper_bound_95=0.0164, created="2026-01-01T00:00:00+00:00",
                sample=np.zeros(3, np.float32), design_effect=1.0)
    return Calibration(**{**base, **kw})


def test_scans_that_move_together_count_as_fewer_windows_and_the_summary_asks_for_more_scans():
    alike = _stored(design_effect=1.2)
    assert alike.effective_windows == pytest.approx(676 / 1.2) and alike.sheets_support_target
    assert "TOO FEW SCANS" not in str(alike) and "count as about 563 independent ones" in str(alike)
    assert "stays under 0.0164 with 95 % confidence" in str(alike)
    apart = _stored(design_effect=14.0)  # 676 / 14 = 48 windows' worth: under the 99 that R = 0.01 needs
    assert apart.effective_windows == pytest.approx(676 / 14) and not apart.sheets_support_target
    assert apart.scans_needed == math.ceil(99 / (169 / 14)) == 9
    text = str(apart)
    assert "TOO FEW SCANS FOR R" in text and "calibrate on about 9 scans like these" in text and "95 %" not in text
    # patches count as they are beside the scans' windows; one scan says nothing of the scan-to-scan variation
    assert _stored(n_windows=776, design_effect=4.0).effective_windows == pytest.approx(100 + 676 / 4)
    one = _stored(n_windows=169, n_scans=1, design_effect=1.0)
    assert one.effective_windows == 169 and one.scans_needed is None and "scan-to-scan" not in str(one)
    assert "TOO FEW SCANS" not in str(_stored(n_scans=0, windows_per_scan=None, design_effect=1.0))


def test_calibrating_on_tiles_of_one_shaded_print_reports_their_design_effect(model_file):
    cal = _calibrate(model_file, _tiles("mesh", 6, side=160), design="mesh", target_fpr=0.05)
    assert cal.n_scans == 6 and cal.design_effect > 5  # the tiles of one print shade and vary together
    assert cal.effective_windows == pytest.approx(cal.n_windows / cal.design_effect)
    assert not cal.sheets_support_target and cal.scans_needed > cal.n_scans  # R = 0.05 needs 19 windows' worth
    assert f"design effect {cal.design_effect:.1f}" in str(cal) and "TOO FEW SCANS FOR R" in str(cal)
