"""Measure the CPU deployment precisions on the built-in benchmark (docs/deploy.md).

A ResNet-18 detector is trained briefly on the built-in benchmark (``ispad benchmark --contrast 3``,
otherwise its defaults: 64 x 64 patches, four 512 x 512 training scans, 64 "real" defects,
validation 16 + 320, test 40 + 800), the paper's way in miniature and as ``ispad demo`` does it: a
balanced synthetic stream made on the fly from the scans (preset ``mixed`` at three times its
contrast, no augmentation: from random initialisation a few hundred steps learn nothing from the
native contrast), the real pool injected at p_inj = 1/16, ``STEPS`` steps of batch 32 (default
1000) with AdamW (``train_detector``'s from-scratch recipe), validation every 100 steps, the
threshold chosen on the validation set. Its model file is exported with ``ispad export`` three
times: fp32, ``--int8 --calibrate-from <benchmark>/scans`` (256 fault-free grid windows) and the
same with ``--quantize-ends``. The held-out test patches are then scored five ways, each with 2
threads:

- torch fp32, torch bf16 (autocast), ONNX fp32 and ONNX int8 (onnxruntime; the export's default
  keeps the first convolution and the last linear layer in fp32), and ONNX int8 with those
  quantized too (``--quantize-ends``);
- windows/s: the forward pass and softmax over the preprocessed test patches in batches of 128,
  the best of 5 passes after one untimed batch, the engines taking turns pass by pass (on a
  shared machine a busy spell then does not fall on one engine only; preprocessing is the same
  code for all of them and is left out);
- the largest |score difference| to torch fp32 over the test patches;
- the test MCC at the model's threshold.

Then the rule of docs/deploy.md: int8 is the recommended CPU default only if it is at least 1.5x
as fast as ONNX fp32 with its MCC within 0.01 of fp32's.

Run from the repository root (about 5 minutes on 2 idle cores)::

    PYTHONPATH=$PWD OMP_WAIT_POLICY=PASSIVE python docs/deploy_precision.py [STEPS]
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ispad_core.metrics import mcc  # noqa: E402
from ispad_core.nn import preprocess_batch, train_detector  # noqa: E402
from ispad_core.nn.export import export_model_file, load_onnx  # noqa: E402
from ispad_core.samples import proxy_benchmark  # noqa: E402
from ispad_core.stream import SyntheticStream  # noqa: E402
from ispad_core.synth import PRESETS  # noqa: E402

THREADS = 2
BATCH = 128
MIN_SPEEDUP, MAX_MCC_LOSS = 1.5, 0.01
CONTRAST = 3.0


def _forward(engine, x: torch.Tensor, bf16: bool = False) -> np.ndarray:
    """P(defective) of every row of ``x``, a batch at a time."""
    out = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(x), BATCH):
            out.append(torch.softmax(engine(x[i : i + BATCH]).float(), 1)[:, 1].double().numpy())
    return np.concatenate(out)


def _best_rates(engines: dict, x: torch.Tensor, rounds: int = 5) -> dict:
    """Windows/s of each engine: best of ``rounds`` passes over ``x``, the engines taking turns."""
    for engine, bf16 in engines.values():
        _forward(engine, x[:BATCH], bf16)
    best = dict.fromkeys(engines, float("inf"))
    for _ in range(rounds):
        for name, (engine, bf16) in engines.items():
            t0 = time.perf_counter()
            _forward(engine, x, bf16)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: len(x) / t for name, t in best.items()}


def main(steps: int) -> None:
    torch.set_num_threads(THREADS)
    work = Path(tempfile.mkdtemp(prefix="ispad-deploy-"))
    t0 = time.perf_counter()
    bench = proxy_benchmark(work / "proxy", seed=0, contrast=CONTRAST)
    stream = SyntheticStream(list(bench.scans), n=steps * 32, size=bench.size, seed=0,
                             preset=PRESETS["mixed"].scale_contrast(CONTRAST), augment=None)
    res = train_detector(stream, out=work / "model.pt", real=bench.real_images, val=(bench.val_images, bench.val_labels),
                         p_inj=1 / 16, batch_size=32, max_steps=steps, val_every=100, workers=0, threads=THREADS,
                         augment=None, verbose=False, seed=0)
    t_train = time.perf_counter() - t0
    print(f"trained {res.train.steps} steps of batch 32 in {t_train:.0f} s ({res.recipe}); validation MCC "
          f"{res.report.mcc:.4f}, threshold {res.threshold:.4f}", flush=True)

    fp32 = export_model_file(work / "model.pt", work / "model.onnx")
    scans = work / "proxy" / "scans"
    int8 = export_model_file(work / "model.pt", work / "model-int8.onnx", int8=True, calibrate_from=scans,
                             tolerance=1.0)  # the measurement wants the figures whatever the difference
    int8_all = export_model_file(work / "model.pt", work / "model-int8-all.onnx", int8=True, calibrate_from=scans,
                                 tolerance=1.0, quantize_ends=True)
    print(f"ispad export: {fp32}")
    for flag, r in (("--int8", int8), ("--int8 --quantize-ends", int8_all)):
        print(f"ispad export {flag}: {r}" + (f"\n  warning: {r.warning}" if r.warning else ""))
    engines = {
        "torch fp32": (res.model.eval(), False),
        "torch bf16": (res.model.eval(), True),
        "ONNX fp32": (load_onnx(work / "model.onnx", threads=THREADS)[0], False),
        "ONNX int8": (load_onnx(work / "model-int8.onnx", threads=THREADS)[0], False),
        "ONNX int8, ends too": (load_onnx(work / "model-int8-all.onnx", threads=THREADS)[0], False),
    }
    x = preprocess_batch(torch.from_numpy(bench.test_images), _preprocess(res.metadata))
    labels = bench.test_labels.astype(bool)
    ref = _forward(res.model, x)
    rates = _best_rates(engines, x)
    rows = {}
    for name, (engine, bf16) in engines.items():
        scores = _forward(engine, x, bf16)
        rows[name] = (rates[name], float(np.abs(scores - ref).max()), mcc(labels, scores >= res.threshold))

    print(f"\n{len(x)} test patches ({int(labels.sum())} defective), {bench.size} x {bench.size}, ResNet-18, "
          f"{THREADS} threads, batch {BATCH}, threshold {res.threshold:.4f}\n")
    print("| engine | windows/s | vs torch fp32 | max abs score diff to torch fp32 | test MCC |")
    print("|---|---|---|---|---|")
    base = rows["torch fp32"][0]
    for name, (rate, diff, m) in rows.items():
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x | {diff:.2e} | {m:.4f} |")
    speedup = rows["ONNX int8"][0] / rows["ONNX fp32"][0]
    loss = rows["ONNX fp32"][2] - rows["ONNX int8"][2]
    keep = speedup >= MIN_SPEEDUP and loss <= MAX_MCC_LOSS
    print(f"\nint8 against ONNX fp32: {speedup:.2f}x the speed, MCC {-loss:+.4f}: "
          f"{'int8 is' if keep else 'int8 is NOT'} the recommended CPU default "
          f"(rule: >= {MIN_SPEEDUP:g}x and MCC within {MAX_MCC_LOSS:g}); total {time.perf_counter() - t0:.0f} s")


def _preprocess(metadata):
    from ispad_core.nn import Preprocess

    pre = metadata["preprocess"]
    return Preprocess(**pre) if isinstance(pre, dict) else pre


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
