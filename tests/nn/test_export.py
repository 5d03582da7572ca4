"""ONNX export: onnxruntime scores the same windows as torch fp32 within 1e-4, the metadata travels
in the graph, the batch axis is dynamic, and inspect_files runs on the onnxruntime engine."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx", reason='the ONNX export needs the [deploy] extra: pip install "ispad-core[deploy]"')
pytest.importorskip("onnxruntime", reason='the onnxruntime engine needs the [deploy] extra: pip install "ispad-core[deploy]"')

from ispad_core.nn import classifier, save_model  # noqa: E402
from ispad_core.nn.export import (  # noqa: E402
    METADATA_KEY,
    OnnxRuntimeModel,
    export_model_file,
    export_onnx,
    load_onnx,
)
from ispad_core.nn.inference import inspect_files, predict_windows  # noqa: E402

PRE = {"brightness": 1.5, "ksize": 3, "sigma": 1.0, "mean": 0.449, "std": 0.226}


def _meta(size=32, channels=1):
    return {"backbone": "resnet18", "backbone_kwargs": {}, "in_channels": channels, "num_classes": 2, "dropout": 0.1,
            "patch_size": size, "preprocess": PRE, "threshold": 0.5}


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = classifier("resnet18", in_channels=1, num_classes=2, dropout=0.1, weights=None)
    # non-trivial BN statistics, so the exported graph has something to get wrong
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_onnxruntime_scores_equal_torch_fp32_on_the_same_windows(tmp_path, net):
    result, engine = export_onnx(net, tmp_path / "m.onnx", metadata=_meta())
    assert result.path == tmp_path / "m.onnx" and result.max_score_diff <= 1e-4
    image = np.random.default_rng(0).integers(0, 256, (120, 150), dtype=np.uint8)
    a, oa = predict_windows(net, image, size=32, preprocess="lsm1", batch_size=16, precision="fp32", channels_last=False)
    b, ob = predict_windows(engine, image, size=32, preprocess="lsm1", batch_size=16)
    np.testing.assert_array_equal(oa, ob)
    assert np.abs(a - b).max() <= 1e-4, np.abs(a - b).max()
    assert a.std() > 0  # the scores vary, so agreement is not trivial


def test_batch_axis_is_dynamic_and_metadata_travels(tmp_path, net):
    export_onnx(net, tmp_path / "m.onnx", metadata=_meta())
    engine, meta = load_onnx(tmp_path / "m.onnx")
    assert meta["patch_size"] == 32 and meta["preprocess"] == PRE and meta["threshold"] == 0.5
    assert engine.in_channels == 1 and engine.patch_size == 32
    x = torch.randn(5, 1, 32, 32)
    with torch.no_grad():
        ref = net(x)
    for n in (1, 5):
        torch.testing.assert_close(engine(x[:n]), ref[:n], atol=1e-4, rtol=1e-4)
    import onnx

    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(props[METADATA_KEY])["backbone"] == "resnet18"


@pytest.mark.slow
def test_model_file_export_and_inspection_on_both_engines(tmp_path, net):
    model_path = save_model(tmp_path / "model.pt", net, metadata=_meta())
    result = export_model_file(model_path, tmp_path / "model.onnx")
    assert result.max_score_diff <= 1e-4 and "onnxruntime matches torch fp32" in str(result)
    image = np.random.default_rng(1).integers(0, 256, (70, 90), dtype=np.uint8)
    iio.imwrite(tmp_path / "scan.png", image)
    runs = {}
    for name, kwargs in {
        "torch": dict(model=model_path, precision="fp32", channels_last=False),
        "onnx": dict(model=tmp_path / "model.onnx"),
        "pt-on-ort": dict(model=model_path, engine="onnxruntime"),
    }.items():
        report = inspect_files([tmp_path / "scan.png"], out=tmp_path / name, **kwargs)
        assert report.scans[0].ok, report.scans[0].error
        runs[name] = json.loads((tmp_path / name / "scan.json").read_text())
    assert runs["onnx"]["model"]["engine"] == "onnxruntime" and runs["torch"]["model"]["engine"] == "torch"
    for name in ("onnx", "pt-on-ort"):
        assert abs(runs[name]["max_score"] - runs["torch"]["max_score"]) <= 1e-4
        assert runs[name]["decision"] == runs["torch"]["decision"]


def test_export_refusals(tmp_path, net):
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="m.onnx"):
        export_onnx(net, tmp_path / "m.onnx", metadata=_meta())
    assert (tmp_path / "m.onnx").read_bytes() == b"x"
    with pytest.raises(ValueError, match="patch_size"):
        export_onnx(net, None, metadata={"in_channels": 1})
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        OnnxRuntimeModel(tmp_path / "m.onnx")
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        load_onnx(tmp_path / "nope.onnx")
    with pytest.raises(ValueError, match="runs on the CPU"):
        _, engine = export_onnx(net, None, metadata=_meta())
        predict_windows(engine, np.zeros((32, 32), np.uint8), size=32, device="cuda")
    with pytest.raises(ValueError, match="is an ONNX file"):
        export_onnx(net, tmp_path / "n.onnx", metadata=_meta())
        inspect_files([tmp_path / "n.onnx"], model=tmp_path / "n.onnx", engine="torch", out=tmp_path / "o")


def test_cli_export(tmp_path, net):
    from tests.conftest import run_ispad

    model_path = save_model(tmp_path / "model.pt", net, metadata=_meta())
    argv = ["export", "--model", model_path, "--onnx", tmp_path / "m.onnx"]
    out = run_ispad(*argv).stdout
    assert "onnxruntime matches torch fp32" in out and "ispad inspect" in out
    assert load_onnx(tmp_path / "m.onnx")[1]["patch_size"] == 32
    assert "exists" in run_ispad(*argv, expect=1).stderr  # FileExistsError: one line, exit 1
