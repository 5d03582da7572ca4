"""int8 export: calibration windows are the model's grid windows of the scans, the int8 graph is a
QDQ graph with per-channel weights and ``precision: int8`` in its metadata, its scores are checked
against the fp32 graph (the reported largest difference is the true one; over the tolerance nothing
is written), and the warning says when int8 speaks against itself."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx", reason='the ONNX export needs the [deploy] extra: pip install "ispad-core[deploy]"')
pytest.importorskip("onnxruntime", reason='the onnxruntime engine needs the [deploy] extra: pip install "ispad-core[deploy]"')

import onnx  # noqa: E402

from ispad_core.io import write_png  # noqa: E402
from ispad_core.nn import Preprocess, classifier, preprocess_batch, save_model  # noqa: E402
from ispad_core.nn.export import (  # noqa: E402
    METADATA_KEY,
    Int8Result,
    OnnxRuntimeModel,
    WindowCalibrationReader,
    calibration_windows,
    export_int8,
    export_onnx,
    load_onnx,
)
from ispad_core.nn.inference import predict_windows  # noqa: E402
from ispad_core.samples import screen_print  # noqa: E402
from ispad_core.tiling import sliding_windows  # noqa: E402
from tests.nn._helpers import TinyNet  # noqa: E402

PRE = {"brightness": 1.5, "ksize": 3, "sigma": 1.0, "mean": 0.449, "std": 0.226}
PARAMS = Preprocess(**PRE)
SIZE = 16


def _meta(threshold=0.5):
    return {"backbone": "tiny", "in_channels": 1, "num_classes": 2, "patch_size": SIZE, "preprocess": PRE,
            "threshold": threshold}


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = TinyNet()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def scans():
    return [screen_print((64, 80), rng=k) for k in range(2)]


def _scores(engine, windows):
    logits = engine(preprocess_batch(torch.from_numpy(windows), PARAMS)).double()
    return torch.softmax(logits, 1)[:, 1].numpy()


# --------------------------------------------------------------------------- calibration windows


def test_calibration_windows_are_grid_windows_of_the_scans(scans):
    everything = calibration_windows(scans, size=SIZE, limit=10_000)
    grids = [np.asarray(sliding_windows(s, SIZE, 10)[0]) for s in scans]  # default stride of 16 is 10
    np.testing.assert_array_equal(everything, np.concatenate(grids))
    some = calibration_windows(scans, size=SIZE, limit=7, seed=3)
    assert some.shape == (7, SIZE, SIZE) and some.dtype == np.uint8
    rows = {w.tobytes() for w in everything}
    assert all(w.tobytes() in rows for w in some)
    np.testing.assert_array_equal(some, calibration_windows(scans, size=SIZE, limit=7, seed=3))
    assert not np.array_equal(some, calibration_windows(scans, size=SIZE, limit=7, seed=4))


def test_grid_and_colour_rule_are_the_inspections(scans):
    from ispad_core.nn.export import _grid_stride, _luma
    from ispad_core.nn.inference import default_stride, rgb_to_grey

    assert all(_grid_stride(s) == default_stride(s) for s in range(1, 600))
    rgb = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_luma(rgb), rgb_to_grey(rgb))
    colour = np.stack([scans[0], scans[0][::-1], scans[0][:, ::-1]], axis=-1)
    np.testing.assert_array_equal(calibration_windows([colour], size=SIZE, limit=6),
                                  calibration_windows([rgb_to_grey(colour)], size=SIZE, limit=6))


def test_calibration_windows_colour_and_folders(tmp_path, scans):
    rgb = np.repeat(scans[0][..., None], 3, axis=-1)
    np.testing.assert_array_equal(calibration_windows([rgb], size=SIZE, limit=5),
                                  calibration_windows([scans[0]], size=SIZE, limit=5))  # luma of equal channels
    three = calibration_windows([scans[0]], size=SIZE, in_channels=3, limit=5)
    assert three.shape == (5, SIZE, SIZE, 3) and (three == three[..., :1]).all()
    for k, s in enumerate(scans):
        write_png(tmp_path / f"scan_{k}.png", s)
    np.testing.assert_array_equal(calibration_windows(tmp_path, size=SIZE, limit=9),
                                  calibration_windows(scans, size=SIZE, limit=9))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(scans=[np.zeros((8, 40), np.uint8)], size=SIZE), ValueError, "scans\\[0\\]"),
    (dict(scans=[np.zeros((40, 40), np.float32)], size=SIZE), TypeError, "scans\\[0\\]"),
    (dict(scans=[np.zeros((40, 40), np.uint8)], size=SIZE, stride=17), ValueError, "stride"),
    (dict(scans=[np.zeros((40, 40), np.uint8)], size=SIZE, limit=0), ValueError, "limit"),
    (dict(scans=[np.zeros((40, 40), np.uint8)], size=SIZE, in_channels=2), ValueError, "in_channels"),
    (dict(scans=42, size=SIZE), TypeError, "scans"),
])
def test_calibration_windows_refusals(kwargs, error, match):
    scans = kwargs.pop("scans")
    with pytest.raises(error, match=match):
        calibration_windows(scans, **kwargs)


def test_reader_gives_the_preprocessed_windows_in_batches(scans):
    windows = calibration_windows(scans, size=SIZE, limit=10)
    reader = WindowCalibrationReader(windows, PARAMS, batch_size=4)
    batches = list(reader)
    assert [b["input"].shape[0] for b in batches] == [4, 4, 2] and len(reader) == 3
    np.testing.assert_array_equal(np.concatenate([b["input"] for b in batches]),
                                  preprocess_batch(torch.from_numpy(windows), PARAMS).numpy())
    from onnxruntime.quantization import CalibrationDataReader

    assert isinstance(reader, CalibrationDataReader) and reader.get_next() is None
    reader.rewind()
    assert reader.get_next()["input"].shape == (4, 1, SIZE, SIZE)


# --------------------------------------------------------------------------- the int8 graph


def _weight_dequantizers(proto, channels):
    """DequantizeLinear nodes with one scale per output channel (per-channel weights)."""
    scales = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    return [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and scales.get(n.input[1]) is not None
            and scales[n.input[1]].size == channels]


def test_int8_graph_is_quantized_checked_and_labelled(tmp_path, net, scans):
    windows = calibration_windows(scans, size=SIZE, limit=64)
    result, engine = export_int8(net, tmp_path / "m8.onnx", metadata=_meta(), calibration=windows, tolerance=0.2,
                                 quantize_ends=True)
    proto = onnx.load(str(tmp_path / "m8.onnx"))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in proto.graph.node}
    assert _weight_dequantizers(proto, 8)  # the conv's 8 output channels, one scale each
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert meta["precision"] == "int8" and meta["patch_size"] == SIZE and meta["threshold"] == 0.5
    assert meta["quantization"]["fp32_nodes"] == [] and meta["quantization"]["calibration_windows"] == 64
    loaded, loaded_meta = load_onnx(tmp_path / "m8.onnx")
    assert loaded_meta["precision"] == "int8" and loaded.patch_size == SIZE

    # the reported difference is the largest over the calibration windows, against the fp32 graph
    _, fp32 = export_onnx(net, None, metadata=_meta())
    assert fp32.metadata["precision"] == "fp32"
    diff = np.abs(_scores(loaded, windows) - _scores(fp32, windows))
    assert result.max_score_diff == pytest.approx(diff.max(), abs=1e-6)
    assert 0 < result.max_score_diff <= 0.2 and result.calibration_windows == 64
    flips = ((_scores(loaded, windows) >= 0.5) != (_scores(fp32, windows) >= 0.5)).sum()
    assert result.flips == flips
    assert result.fp32_windows_per_s > 0 and result.int8_windows_per_s > 0 and result.bytes > 0
    assert "int8" in str(result) and "windows/s" in str(result)

    # and inspection runs on it
    scores, _ = predict_windows(engine, scans[0], size=SIZE, preprocess=PARAMS, batch_size=8)
    assert scores.shape == (len(sliding_windows(scans[0], SIZE, 10)[0]),) and np.isfinite(scores).all()


def test_first_conv_and_last_linear_stay_fp32_by_default(net, scans):
    windows = calibration_windows(scans, size=SIZE, limit=32)
    ends, engine = export_int8(net, None, metadata=_meta(), calibration=windows, tolerance=0.2)
    everything, _ = export_int8(net, None, metadata=_meta(), calibration=windows, tolerance=0.2, quantize_ends=True)
    kept = engine.metadata["quantization"]["fp32_nodes"]
    assert len(kept) == 2 and "Conv" in kept[0] and "Gemm" in kept[1]
    assert ends.max_score_diff <= everything.max_score_diff


def test_over_the_tolerance_nothing_is_written(tmp_path, net, scans):
    windows = calibration_windows(scans, size=SIZE, limit=16)
    with pytest.raises(RuntimeError, match="int8 graph differs from fp32 by up to .* not written"):
        export_int8(net, tmp_path / "m8.onnx", metadata=_meta(), calibration=windows, tolerance=0.0)
    assert list(tmp_path.iterdir()) == []


def test_int8_refusals(tmp_path, net, scans):
    windows = calibration_windows(scans, size=SIZE, limit=4)
    with pytest.raises(ValueError, match="calibration"):
        export_int8(net, None, metadata=_meta(), calibration=windows[:, :8, :8])
    with pytest.raises(TypeError, match="calibration"):
        export_int8(net, None, metadata=_meta(), calibration=windows.astype(np.float32))
    with pytest.raises(ValueError, match="patch_size"):
        export_int8(net, None, metadata={"in_channels": 1}, calibration=windows)
    with pytest.raises(TypeError, match="quantize_ends"):
        export_int8(net, None, metadata=_meta(), calibration=windows, quantize_ends="yes")
    (tmp_path / "m8.onnx").write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        export_int8(net, tmp_path / "m8.onnx", metadata=_meta(), calibration=windows)
    assert (tmp_path / "m8.onnx").read_bytes() == b"mine"


@pytest.mark.parametrize("rates, flips, expect", [
    ((100.0, 200.0), 0, None),
    ((100.0, 120.0), 0, "only 1.20x the speed of fp32"),
    ((100.0, 300.0), 3, "3 of 64 fault-free windows change side"),
])
def test_warning_says_when_int8_speaks_against_itself(rates, flips, expect):
    r = Int8Result(None, 10, 40, 17, 64, 0.01, 0.05, 0.5, flips, *rates)
    assert r.speedup == pytest.approx(rates[1] / rates[0])
    if expect is None:
        assert r.warning is None
    else:
        assert expect in r.warning and "keep the fp32 graph" in r.warning


@pytest.mark.slow
def test_cli_export_int8(tmp_path, scans):
    from tests.conftest import run_ispad

    torch.manual_seed(0)
    resnet = classifier("resnet18", in_channels=1, num_classes=2, dropout=0.1, weights=None).eval()
    meta = {**_meta(), "backbone": "resnet18", "backbone_kwargs": {}, "dropout": 0.1}
    model_path = save_model(tmp_path / "model.pt", resnet, metadata=meta)
    for k, s in enumerate(scans):
        write_png(tmp_path / f"scan_{k}.png", s)
    bad = run_ispad("export", "--model", model_path, "--onnx", tmp_path / "m8.onnx", "--int8", expect=1)
    assert "--calibrate-from" in bad.stderr and not (tmp_path / "m8.onnx").exists()
    bad = run_ispad("export", "--model", model_path, "--onnx", tmp_path / "m8.onnx", "--calibrate-from", tmp_path, expect=1)
    assert "--int8" in bad.stderr and not (tmp_path / "m8.onnx").exists()
    run = run_ispad("export", "--model", model_path, "--onnx", tmp_path / "m8.onnx", "--int8", "--calibrate-from",
                    tmp_path, "--tolerance", "0.2", "--calibration-windows", "32")
    assert "int8" in run.stdout and "max |score difference| to fp32" in run.stdout
    assert "on 32 calibration windows" in run.stdout
    assert ("warning: int8: " in run.stderr) == (run.stderr.strip() != "")
    assert load_onnx(tmp_path / "m8.onnx")[1]["precision"] == "int8"
    assert isinstance(OnnxRuntimeModel(tmp_path / "m8.onnx"), OnnxRuntimeModel)
