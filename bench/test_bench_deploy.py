"""ONNX fp32 against ONNX int8 (``ispad export --int8``): scoring the same windows on the CPU.

Workload: an untrained ResNet-18 of patch 64 (with randomised batch-norm statistics), exported to
fp32 and to int8 (onnxruntime static quantization, calibrated on 256 grid windows of four
built-in screen prints), both with 2 onnxruntime threads, scoring the same 256 preprocessed
windows in batches of 128 (forward pass and softmax). Both lines print windows/s and the ratio
int8 / fp32 measured in the same run; docs/deploy.md says when int8 is worth it (>= 1.5x with the
MCC within 0.01, measured on a trained detector by ``docs/deploy_precision.py``).

Run:  python -m pytest bench/test_bench_deploy.py -s
(with ``--benchmark-disable``, as CI runs it, a 32 x 32 model scores 16 windows once.)
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from ispad_core.nn import classifier, preprocess_batch  # noqa: E402
from ispad_core.nn.export import OnnxRuntimeModel, calibration_windows, export_int8, export_onnx  # noqa: E402
from ispad_core.samples import screen_print  # noqa: E402

THREADS = 2
BATCH = 128
FULL = {"size": 64, "windows": 256}
SMALL = {"size": 32, "windows": 16}

_rates: dict = {}


@pytest.fixture(scope="module")
def setup(benchmarks_disabled, tmp_path_factory):
    work = SMALL if benchmarks_disabled else FULL
    size = work["size"]
    torch.manual_seed(0)
    net = classifier("resnet18", in_channels=1).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    meta = {"patch_size": size, "in_channels": 1, "preprocess": None, "threshold": 0.5}
    scans = [screen_print((8 * size, 8 * size), rng=k) for k in range(4)]
    windows = calibration_windows(scans, size=size, limit=work["windows"])
    path = tmp_path_factory.mktemp("deploy") / "fp32.onnx"
    export_onnx(net, path, metadata=meta)
    _, int8 = export_int8(net, None, metadata=meta, calibration=windows, tolerance=1.0, threads=THREADS)
    engines = {"fp32": OnnxRuntimeModel(path, threads=THREADS), "int8": int8}
    x = preprocess_batch(torch.from_numpy(windows), "lsm2")
    yield engines, x
    if len(_rates) == 2:
        print(f"\nONNX on the CPU, {THREADS} threads, ResNet-18 {size} x {size}, {len(x)} windows, batch {BATCH}")
        print("| graph | windows/s | vs fp32 |\n|---|---|---|")
        for name in ("fp32", "int8"):
            print(f"| {name} | {_rates[name]:,.0f} | {_rates[name] / _rates['fp32']:.2f}x |")


def _score(engine, x: torch.Tensor) -> np.ndarray:
    return np.concatenate([torch.softmax(engine(x[i : i + BATCH]), 1)[:, 1].numpy() for i in range(0, len(x), BATCH)])


@pytest.mark.parametrize("graph", ["fp32", "int8"])
def test_onnx_scoring(benchmark, setup, graph):
    engines, x = setup
    engine = engines[graph]
    engine(x[:BATCH])  # untimed: onnxruntime allocates on the first run
    scores = benchmark.pedantic(_score, args=(engine, x), rounds=1 if benchmark.disabled else 5, iterations=1)
    assert scores.shape == (len(x),) and np.isfinite(scores).all()
    if not benchmark.disabled:
        _rates[graph] = len(x) / benchmark.stats.stats.min
        benchmark.extra_info["windows_per_s"] = _rates[graph]
        print(f"\n{graph}: {_rates[graph]:,.0f} windows/s")
    reference = _score(engines["fp32"], x)
    assert np.abs(scores - reference).max() <= (1e-6 if graph == "fp32" else 0.2)
