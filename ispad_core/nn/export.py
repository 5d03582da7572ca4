"""Deployment export: the classifier as an ONNX graph, and an onnxruntime engine for inspection.

Needs the ``[deploy]`` extra (``pip install "ispad-core[deploy]"``: onnx and onnxruntime).

What the graph holds: the network alone, ``input`` float32 ``(batch, C, S, S)`` (the batch axis
is dynamic, ``S`` is the model's patch size) to ``logits`` float32 ``(batch, 2)``. The paper's
preprocessing (brightness factor with saturation, 3 x 3 Gaussian smoothing, both rounded to grey
levels, then normalisation) stays outside, in :func:`ispad_core.nn.preprocess_batch`, which both
engines share: the same code prepares the same batch for torch and for onnxruntime, so the two
can be compared window by window, and the rounding steps of the preprocessing do not have to be
re-expressed in ONNX operators. A program that runs the graph without this library must apply
the preprocessing recorded in the file's metadata (``preprocess`` in the ``ispad_metadata``
entry, a JSON copy of the model file's metadata, threshold and patch size included) and take
``softmax(logits)[:, 1]`` as P(defective).

The exporter is torch's TorchScript-based ``torch.onnx.export(..., dynamo=False)``: it needs
only ``onnx``, while the newer exporter also needs ``onnxscript``. :func:`export_onnx` checks every
file it writes: onnxruntime and torch (fp32) score the same random windows, and the export fails
if any score differs by more than ``tolerance`` (1e-4).

int8 (:func:`export_int8`, ``ispad export --int8``): onnxruntime's static quantization of that
fp32 graph (QDQ format, per-channel int8 weights, uint8 activations with MinMax ranges; the first
convolution and the last linear layer stay fp32) calibrated on fault-free windows cut on the model's grid from scans
(:func:`calibration_windows`). The file's metadata says ``"precision": "int8"``. After
quantizing, both graphs score the calibration windows: the export fails if a score differs by
more than ``tolerance``, and the result reports the largest difference, how many windows changed
side of the model's threshold, and both graphs' windows/s on this machine. Whether int8 is worth
it depends on the CPU and the model (docs/deploy.md has a measurement); the result's ``warning``
says when this export's own figures speak against it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ispad_core._shared.errors import InputTypeError, InputValueError, SetupError
from ispad_core._shared.files import atomic_output, check_output_path
from ispad_core._shared.validation import check_float, check_int
from ispad_core.nn.preprocessing import Preprocess, preprocess_batch, resolve_preprocess

__all__ = [
    "ExportResult",
    "Int8Result",
    "OnnxRuntimeModel",
    "WindowCalibrationReader",
    "calibration_windows",
    "export_int8",
    "export_model_file",
    "export_onnx",
    "load_onnx",
    "onnx_from_model_file",
]

METADATA_KEY = "ispad_metadata"
"""Key of the ONNX ``metadata_props`` entry holding the model file's metadata as JSON."""

_INSTALL = 'pip install "ispad-core[deploy]"'

INT8_MIN_SPEEDUP = 1.5
"""int8 is worth keeping only at least this much faster than fp32 (and as accurate; docs/deploy.md)."""


def _require(name: str):
    try:
        return __import__(name)
    except ImportError as exc:
        raise ImportError(f"the ONNX export and engine need {name}, an optional extra: {_INSTALL}") from exc


def _in_channels(model: nn.Module, metadata: Mapping) -> int:
    from ispad_core.nn.backbones import in_channels as probe

    value = metadata.get("in_channels")
    return int(value) if value is not None else probe(model)


def _preprocess_of(metadata: Mapping) -> Preprocess:
    pre = metadata.get("preprocess")
    return Preprocess(**pre) if isinstance(pre, Mapping) else resolve_preprocess(pre if pre is not None else "lsm2")


def _to_onnx_bytes(model: nn.Module, metadata: Mapping, *, patch_size: int, in_channels: int, opset: int) -> bytes:
    onnx = _require("onnx")
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros(2, in_channels, patch_size, patch_size, device=device)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # the TorchScript exporter announces its deprecation, and tracing warns about Python
            # control flow that a fixed-size classifier does not have
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", UserWarning)
            torch.onnx.export(
                model, (x,), buf, input_names=["input"], output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset, dynamo=False,
            )
    finally:
        model.train(was_training)
    proto = onnx.load_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(dict(metadata), sort_keys=True)
    proto.producer_name = "ispad_core"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


class OnnxRuntimeModel:
    """An exported classifier run by onnxruntime, usable wherever inspection takes a model.

    Calling it with a float32 batch ``(B, C, S, S)`` (a torch tensor, as
    :func:`~ispad_core.nn.preprocess_batch` makes it) returns the ``(B, 2)`` logits as a torch
    tensor on the CPU.

    Parameters
    ----------
    source : path or bytes
        An ``.onnx`` file written by :func:`export_onnx`, or its bytes.
    threads : int, optional
        onnxruntime's intra-op threads (default: its own choice, the physical cores).

    Attributes
    ----------
    metadata : dict
        The model file's metadata stored in the graph (empty if none).
    in_channels, patch_size : int
        From the graph's input shape.
    source : str
        The file, or ``"<memory>"``.
    """

    ispad_engine = "onnxruntime"
    training = False

    def __init__(self, source: str | os.PathLike | bytes, *, threads: int | None = None) -> None:
        ort = _require("onnxruntime")
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = check_int(threads, "threads", minimum=1)
        if isinstance(source, (bytes, bytearray)):
            self.source = "<memory>"
            data = bytes(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"model: {path} does not exist")
            self.source = str(path)
            data = path.read_bytes()
        try:
            self._session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InputValueError(f"model: {self.source} is not a loadable ONNX model ({type(exc).__name__}: {exc})") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise InputValueError(f"model: {self.source} must have one (batch, C, S, S) input, got {[i.shape for i in inputs]}")
        self._input = inputs[0].name
        _, c, h, w = inputs[0].shape
        self.in_channels = int(c)
        self.patch_size = int(h) if isinstance(h, int) and h == w else None
        props = self._session.get_modelmeta().custom_metadata_map
        self.metadata = json.loads(props[METADATA_KEY]) if METADATA_KEY in props else {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.detach().to("cpu", torch.float32).contiguous().numpy()
        (logits,) = self._session.run(None, {self._input: batch})
        return torch.from_numpy(np.asarray(logits, dtype=np.float32))

    def eval(self) -> "OnnxRuntimeModel":
        """No-op (an exported graph is always in inference mode); returns self."""
        return self

    def __repr__(self) -> str:
        return f"OnnxRuntimeModel({self.source!r}, in_channels={self.in_channels}, patch_size={self.patch_size})"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote and how closely onnxruntime matches torch.

    Attributes
    ----------
    path : pathlib.Path or None
        The ONNX file (None when exported to memory only).
    bytes : int
        Size of the graph.
    opset : int
    checked_windows : int
        Random windows scored by both engines.
    max_score_diff : float
        Largest ``|P_onnxruntime - P_torch|`` over them (fp32 torch).
    max_logit_diff : float
    """

    path: Path | None
    bytes: int
    opset: int
    checked_windows: int
    max_score_diff: float
    max_logit_diff: float

    def __str__(self) -> str:
        where = self.path if self.path is not None else "memory"
        return (f"wrote {where} ({self.bytes / 2**20:.1f} MiB, opset {self.opset}); onnxruntime matches torch fp32 on "
                f"{self.checked_windows} random windows: max |score difference| {self.max_score_diff:.2e}, "
                f"max |logit difference| {self.max_logit_diff:.2e}")


def _compare(model: nn.Module, engine: OnnxRuntimeModel, params: Preprocess, *, in_channels: int, patch_size: int,
             n: int, seed: int) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(seed)
    shape = (n, patch_size, patch_size) if in_channels == 1 else (n, patch_size, patch_size, in_channels)
    raw = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    x = preprocess_batch(raw, params)
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with torch.inference_mode():
            ref = model(x.to(device)).float().cpu()
    finally:
        model.train(was_training)
    got = engine(x)
    logit = float((got - ref).abs().max())
    score = float((torch.softmax(got.double(), 1)[:, 1] - torch.softmax(ref.double(), 1)[:, 1]).abs().max())
    return score, logit


def _checked_fp32(model: nn.Module, metadata: Mapping, *, patch_size: int, opset: int, tolerance: float,
                  check_windows: int) -> tuple[bytes, OnnxRuntimeModel, float, float]:
    """The fp32 graph's bytes and engine, checked against torch on random windows."""
    in_channels = _in_channels(model, metadata)
    data = _to_onnx_bytes(model, metadata, patch_size=patch_size, in_channels=in_channels, opset=opset)
    engine = OnnxRuntimeModel(data)
    score, logit = _compare(model, engine, _preprocess_of(metadata), in_channels=in_channels, patch_size=patch_size,
                            n=check_windows, seed=0)
    if not score <= tolerance:
        raise SetupError(
            f"onnx: onnxruntime and torch fp32 differ by up to {score:.3g} in P(defective) on {check_windows} random "
            f"windows (tolerance {tolerance:g}); the graph was not written"
        )
    return data, engine, score, logit


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike | None,
    *,
    metadata: Mapping[str, Any],
    opset: int = 17,
    tolerance: float = 1e-4,
    check_windows: int = 8,
    overwrite: bool = False,
) -> tuple[ExportResult, OnnxRuntimeModel]:
    """Export a classifier to ONNX (dynamic batch) with its metadata, checked against torch.

    Parameters
    ----------
    model : torch.nn.Module
        ``(B, C, S, S)`` float32 -> ``(B, 2)`` logits; exported in eval mode (its mode is restored).
    path : path or None
        The ``.onnx`` file to write atomically; None keeps the graph in memory only.
    metadata : dict
        The model file's metadata (``patch_size`` is required; ``in_channels`` and
        ``preprocess`` are used if present); stored in the graph as JSON under
        :data:`METADATA_KEY`.
    opset : int, default 17
        ONNX opset.
    tolerance : float, default 1e-4
        Largest accepted difference of P(defective) between onnxruntime and torch fp32.
    check_windows : int, default 8
        Random uint8 windows, preprocessed as the metadata says, scored by both.
    overwrite : bool, default False

    Returns
    -------
    (ExportResult, OnnxRuntimeModel)
        The export's summary and the loaded engine.

    Raises
    ------
    ImportError
        Without onnx or onnxruntime (the message names the extra).
    ValueError
        Without ``patch_size`` in ``metadata``, or for a bad argument.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    RuntimeError
        If onnxruntime and torch disagree by more than ``tolerance``.

    Examples
    --------
    >>> import torch
    >>> from ispad_core.nn import resnet18_classifier
    >>> from ispad_core.nn.export import export_onnx
    >>> _ = torch.manual_seed(0)
    >>> result, engine = export_onnx(resnet18_classifier(), None, metadata={"patch_size": 32, "in_channels": 1})
    >>> result.max_score_diff < 1e-4, engine(torch.zeros(3, 1, 32, 32)).shape
    (True, torch.Size([3, 2]))
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(metadata, Mapping):
        raise InputTypeError(f"metadata: expected a dict, got {type(metadata).__name__}")
    if metadata.get("patch_size") is None:
        raise InputValueError("metadata: expected a patch_size (the side of the model's square input), got none")
    patch_size = check_int(metadata["patch_size"], "metadata['patch_size']", minimum=1)
    opset = check_int(opset, "opset", minimum=7)
    tolerance = check_float(tolerance, "tolerance", minimum=0.0)
    check_windows = check_int(check_windows, "check_windows", minimum=1)
    if path is not None:
        check_output_path(path, "onnx", overwrite=overwrite)
    metadata = {**dict(metadata), "precision": "fp32"}
    data, engine, score, logit = _checked_fp32(model, metadata, patch_size=patch_size, opset=opset, tolerance=tolerance,
                                               check_windows=check_windows)
    out = None
    if path is not None:
        out = Path(path)
        with atomic_output(out, name="onnx", overwrite=overwrite) as tmp:
            tmp.write_bytes(data)
        engine.source = str(out)
    return ExportResult(out, len(data), opset, check_windows, score, logit), engine


# --------------------------------------------------------------------------- int8


def _as_scan_list(scans: Any, size: int) -> list[np.ndarray]:
    """Scans as a list of uint8 arrays: read from a folder, file or list of paths, or given as arrays."""
    if isinstance(scans, np.ndarray):
        scans = [scans]
    if isinstance(scans, (str, os.PathLike)) or (
        isinstance(scans, (list, tuple)) and scans and all(isinstance(s, (str, os.PathLike)) for s in scans)
    ):
        from ispad_core.io import read_scans

        return list(read_scans(scans, name="calibrate_from", min_size=size).images)
    if not isinstance(scans, (list, tuple)) or not scans:
        raise InputTypeError(f"scans: expected a folder, files or a list of uint8 arrays, got {type(scans).__name__}")
    out = []
    for k, image in enumerate(scans):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise InputTypeError(f"scans[{k}]: expected a uint8 array (H, W) or (H, W, 3)")
        if min(image.shape[:2]) < size:
            raise InputValueError(f"scans[{k}]: {image.shape[0]} x {image.shape[1]} is smaller than a {size} px window")
        out.append(image)
    return out


# The inspection's grid and colour rule, restated: nn.inference imports this module (to load .onnx
# files), so this module cannot import nn.inference; tests check both equal the inspection's own.


def _grid_stride(size: int) -> int:
    """The inspection's default stride (:func:`ispad_core.nn.inference.default_stride`): 5/8 of the side."""
    return max(1, int(math.floor(size * 5 / 8 + 0.5)))


def _luma(rgb: np.ndarray) -> np.ndarray:
    """The inspection's RGB-to-grey rule (:func:`ispad_core.nn.inference.rgb_to_grey`), on uint8."""
    r, g, b = (rgb[..., k].astype(np.uint32) for k in range(3))
    return ((299 * r + 587 * g + 114 * b + 500) // 1000).astype(np.uint8)


def calibration_windows(
    scans: Any,
    *,
    size: int,
    stride: int | None = None,
    in_channels: int = 1,
    limit: int = 256,
    seed: int = 0,
) -> np.ndarray:
    """Windows cut on the model's grid from fault-free scans, to calibrate int8 quantization.

    Every scan is cut as inspection cuts it (:func:`ispad_core.tiling.sliding_windows` with
    ``size`` and ``stride``); of all windows, ``limit`` are drawn without replacement (all if
    there are fewer), in scan and grid order. Grey scans give a model of 3 channels the grey
    repeated, RGB scans give a grey model their luma, as inspection does.

    Parameters
    ----------
    scans : path, sequence of paths, or sequence of numpy.ndarray of uint8
        A folder of scans (PNG, TIFF, ...), image files, or the images ``(H, W)`` / ``(H, W, 3)``.
    size : int
        The model's patch size.
    stride : int, optional
        Step of the grid; default the inspection's (:func:`ispad_core.nn.inference.default_stride`).
    in_channels : {1, 3}, default 1
        The model's input channels.
    limit : int, default 256
        Most windows returned.
    seed : int, default 0
        Which windows are drawn when there are more than ``limit``.

    Returns
    -------
    numpy.ndarray of uint8, shape (N, size, size) or (N, size, size, 3)

    Raises
    ------
    TypeError, ValueError
        For bad arguments, an unreadable folder or a scan smaller than a window.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.nn.export import calibration_windows
    >>> scan = np.random.default_rng(0).integers(0, 256, (100, 120), dtype=np.uint8)
    >>> calibration_windows([scan], size=32, limit=20).shape
    (20, 32, 32)
    """
    from ispad_core.tiling import sliding_windows

    size = check_int(size, "size", minimum=1)
    stride = _grid_stride(size) if stride is None else check_int(stride, "stride", minimum=1, maximum=size)
    in_channels = check_int(in_channels, "in_channels", minimum=1, maximum=3)
    limit = check_int(limit, "limit", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if in_channels == 2:
        raise InputValueError("in_channels: expected 1 or 3, got 2")
    grids = [sliding_windows(image, size, stride)[0] for image in _as_scan_list(scans, size)]
    counts = np.array([len(g) for g in grids])
    total = int(counts.sum())
    pick = np.arange(total) if total <= limit else np.sort(np.random.default_rng(seed).choice(total, limit, replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)])
    which = np.searchsorted(starts, pick, side="right") - 1
    windows = np.stack([np.asarray(grids[k][int(i - starts[k])]) for k, i in zip(which, pick)])
    if windows.ndim == 4 and in_channels == 1:
        windows = _luma(windows)
    elif windows.ndim == 3 and in_channels == 3:
        windows = np.repeat(windows[..., None], 3, axis=-1)
    return np.ascontiguousarray(windows)


class WindowCalibrationReader:
    """onnxruntime's ``CalibrationDataReader`` over preprocessed windows, a batch at a time.

    Parameters
    ----------
    windows : numpy.ndarray of uint8, shape (N, S, S) or (N, S, S, C)
        From :func:`calibration_windows`.
    preprocess : Preprocess or preset name
        The model's preprocessing.
    batch_size : int, default 32
    input_name : str, default "input"
        The graph's input.
    """

    def __init__(self, windows: np.ndarray, preprocess: Preprocess | str, *, batch_size: int = 32,
                 input_name: str = "input") -> None:
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.input_name = input_name
        self.inputs = preprocess_batch(torch.from_numpy(np.ascontiguousarray(windows)), preprocess).numpy()
        self.rewind()

    def rewind(self) -> None:
        """Start again at the first batch."""
        self._next = 0

    def get_next(self) -> dict | None:
        """The next ``{input_name: float32 batch}``, or None after the last."""
        if self._next >= len(self.inputs):
            return None
        batch = self.inputs[self._next : self._next + self.batch_size]
        self._next += self.batch_size
        return {self.input_name: batch}

    def __iter__(self):
        return iter(self.get_next, None)

    def __len__(self) -> int:
        return -(-len(self.inputs) // self.batch_size)


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime's quantizer logs advice on the root logger; keep it off the user's terminal."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _ends(proto: Any) -> list[str]:
    """Names of the graph's first convolution and last linear layer (the nodes kept in fp32)."""
    convs = [n.name for n in proto.graph.node if n.op_type == "Conv"]
    linear = [n.name for n in proto.graph.node if n.op_type in ("Gemm", "MatMul")]
    return convs[:1] + linear[-1:]


def _quantize(fp32: bytes, reader: WindowCalibrationReader, metadata: Mapping, *, quantize_ends: bool) -> bytes:
    """onnxruntime static quantization of the fp32 graph: QDQ, per-channel int8 weights, uint8 activations."""
    onnx = _require("onnx")
    _require("onnxruntime")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="ispad-int8-") as tmp, _quiet_root_logger(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src, pre, out = (os.path.join(tmp, f) for f in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        Path(src).write_bytes(fp32)
        quant_pre_process(src, pre, skip_symbolic_shape=True)  # the quantizer's advice: fold and fuse first
        kept = [] if quantize_ends else _ends(onnx.load(pre))
        quantize_static(pre, out, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=kept)
        proto = onnx.load(out)
    quantization = {"format": "QDQ", "weights": "int8, per channel", "activations": "uint8", "calibration": "MinMax",
                    "calibration_windows": len(reader.inputs), "fp32_nodes": kept}
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({**dict(metadata), "precision": "int8", "quantization": quantization}, sort_keys=True)
    proto.producer_name = "ispad_core"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _scores(engine: OnnxRuntimeModel, x: torch.Tensor, batch_size: int) -> np.ndarray:
    parts = [torch.softmax(engine(x[i : i + batch_size]).double(), 1)[:, 1].numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(parts)


def _best_rates(engines: Sequence[OnnxRuntimeModel], x: torch.Tensor, batch_size: int, rounds: int = 3) -> list[float]:
    """Windows/s of each engine over ``x``: the best of ``rounds`` passes, the engines taking turns
    (so that a busy spell of the machine does not fall on one engine only)."""
    for engine in engines:
        engine(x[:batch_size])  # untimed: onnxruntime allocates on the first run
    best = [math.inf] * len(engines)
    for _ in range(rounds):
        for k, engine in enumerate(engines):
            t0 = time.perf_counter()
            _scores(engine, x, batch_size)
            best[k] = min(best[k], time.perf_counter() - t0)
    return [len(x) / b for b in best]


@dataclass(frozen=True)
class Int8Result:
    """What :func:`export_int8` wrote and how the int8 graph compares with the fp32 graph.

    Attributes
    ----------
    path : pathlib.Path or None
        The int8 ONNX file (None when kept in memory).
    bytes, fp32_bytes : int
        Sizes of the int8 and the fp32 graph.
    opset : int
    calibration_windows : int
        Fault-free windows the ranges were calibrated on, and both graphs scored.
    max_score_diff : float
        Largest ``|P_int8 - P_fp32|`` over them (fp32: the onnxruntime graph, itself within 1e-4 of torch).
    tolerance : float
    threshold : float or None
        The model's threshold (from the metadata).
    flips : int
        Calibration windows on different sides of ``threshold`` in the two graphs (0 without one).
    fp32_windows_per_s, int8_windows_per_s : float
        Both graphs scoring (up to 128 of) the calibration windows on this machine, best of three
        passes taken in turns.
    """

    path: Path | None
    bytes: int
    fp32_bytes: int
    opset: int
    calibration_windows: int
    max_score_diff: float
    tolerance: float
    threshold: float | None
    flips: int
    fp32_windows_per_s: float
    int8_windows_per_s: float

    @property
    def speedup(self) -> float:
        """int8 windows/s over fp32 windows/s."""
        return self.int8_windows_per_s / self.fp32_windows_per_s

    @property
    def warning(self) -> str | None:
        """One line when this export's own figures speak against int8 (too little speed-up or changed decisions)."""
        reasons = []
        if self.speedup < INT8_MIN_SPEEDUP:
            reasons.append(f"only {self.speedup:.2f}x the speed of fp32 here ({self.int8_windows_per_s:,.0f} vs "
                           f"{self.fp32_windows_per_s:,.0f} windows/s; worth it from {INT8_MIN_SPEEDUP:g}x)")
        if self.flips:
            reasons.append(f"{self.flips} of {self.calibration_windows} fault-free windows change side of the "
                           f"threshold {self.threshold:g}")
        if not reasons:
            return None
        return "int8: " + "; ".join(reasons) + "; measure its MCC before deploying it, or keep the fp32 graph"

    def __str__(self) -> str:
        where = self.path if self.path is not None else "memory"
        flips = f", {self.flips} change side of the threshold" if self.threshold is not None else ""
        return (f"wrote {where} (int8, {self.bytes / 2**20:.1f} MiB, fp32 {self.fp32_bytes / 2**20:.1f} MiB, opset "
                f"{self.opset}); on {self.calibration_windows} calibration windows: max |score difference| to fp32 "
                f"{self.max_score_diff:.2e} (tolerance {self.tolerance:g}){flips}; {self.int8_windows_per_s:,.0f} vs "
                f"{self.fp32_windows_per_s:,.0f} windows/s ({self.speedup:.2f}x)")


def export_int8(
    model: nn.Module,
    path: str | os.PathLike | None,
    *,
    metadata: Mapping[str, Any],
    calibration: np.ndarray,
    tolerance: float = 0.05,
    opset: int = 17,
    batch_size: int = 32,
    threads: int | None = None,
    quantize_ends: bool = False,
    overwrite: bool = False,
) -> tuple[Int8Result, OnnxRuntimeModel]:
    """Export a classifier as an int8 ONNX graph (onnxruntime static quantization), checked against fp32.

    The fp32 graph is made and checked as by :func:`export_onnx`, then quantized (QDQ format,
    per-channel int8 weights, uint8 activations, MinMax ranges over ``calibration``). The first
    convolution and the last linear layer stay in fp32 unless ``quantize_ends``: measured on the
    built-in benchmark (docs/deploy.md), quantizing them too tripled the largest score difference
    for a fifth more speed. Both graphs
    score the calibration windows: the export fails if a score differs by more than
    ``tolerance``, and the result reports the largest difference, the windows that change side of
    the metadata's threshold, and both graphs' windows/s.

    Parameters
    ----------
    model : torch.nn.Module
        As in :func:`export_onnx`.
    path : path or None
        The ``.onnx`` file to write atomically; None keeps the graph in memory only.
    metadata : dict
        As in :func:`export_onnx`; stored with ``"precision": "int8"``.
    calibration : numpy.ndarray of uint8, shape (N, S, S) or (N, S, S, C)
        Fault-free windows of the model's size (:func:`calibration_windows`), preprocessed as the
        metadata says.
    tolerance : float, default 0.05
        Largest accepted difference of P(defective) between the int8 and the fp32 graph.
    opset : int, default 17
    batch_size : int, default 32
        Windows per run when calibrating, checking and timing.
    threads : int, optional
        onnxruntime's intra-op threads for the check and the timing (default: its own choice).
    quantize_ends : bool, default False
        Quantize the first convolution and the last linear layer too.
    overwrite : bool, default False

    Returns
    -------
    (Int8Result, OnnxRuntimeModel)

    Raises
    ------
    ImportError
        Without onnx or onnxruntime.
    TypeError, ValueError
        For bad arguments, e.g. calibration windows of another size than the model's.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    RuntimeError
        If the int8 graph differs from the fp32 graph by more than ``tolerance`` (nothing is written).
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(metadata, Mapping) or metadata.get("patch_size") is None:
        raise InputValueError("metadata: expected a dict with a patch_size (the side of the model's square input)")
    patch_size = check_int(metadata["patch_size"], "metadata['patch_size']", minimum=1)
    tolerance = check_float(tolerance, "tolerance", minimum=0.0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if not isinstance(quantize_ends, bool):
        raise InputTypeError(f"quantize_ends: expected a bool, got {type(quantize_ends).__name__}")
    in_channels = _in_channels(model, metadata)
    want = (patch_size, patch_size) if in_channels == 1 else (patch_size, patch_size, in_channels)
    if not isinstance(calibration, np.ndarray) or calibration.dtype != np.uint8:
        raise InputTypeError("calibration: expected a uint8 array of windows (calibration_windows)")
    if calibration.ndim != len(want) + 1 or calibration.shape[1:] != want or len(calibration) == 0:
        raise InputValueError(f"calibration: expected windows of shape (N, {', '.join(map(str, want))}), "
                              f"got {calibration.shape}")
    if path is not None:
        check_output_path(path, "onnx", overwrite=overwrite)
    meta = {**dict(metadata), "precision": "fp32"}
    fp32, _, _, _ = _checked_fp32(model, meta, patch_size=patch_size, opset=opset, tolerance=1e-4, check_windows=8)
    reader = WindowCalibrationReader(calibration, _preprocess_of(metadata), batch_size=batch_size)
    data = _quantize(fp32, reader, metadata, quantize_ends=quantize_ends)
    ref, engine = OnnxRuntimeModel(fp32, threads=threads), OnnxRuntimeModel(data, threads=threads)
    x = torch.from_numpy(reader.inputs)
    p32, p8 = _scores(ref, x, batch_size), _scores(engine, x, batch_size)
    diff = float(np.abs(p8 - p32).max())
    if not diff <= tolerance:
        raise SetupError(
            f"onnx: the int8 graph differs from fp32 by up to {diff:.3g} in P(defective) on {len(x)} calibration "
            f"windows (tolerance {tolerance:g}); the graph was not written"
        )
    threshold = metadata.get("threshold")
    flips = 0 if threshold is None else int(((p8 >= threshold) != (p32 >= threshold)).sum())
    timing = x[: max(batch_size, min(len(x), 128))]
    rate32, rate8 = _best_rates([ref, engine], timing, batch_size)
    out = None
    if path is not None:
        out = Path(path)
        with atomic_output(out, name="onnx", overwrite=overwrite) as tmp:
            tmp.write_bytes(data)
        engine.source = str(out)
    result = Int8Result(out, len(data), len(fp32), opset, len(x), diff, tolerance,
                        None if threshold is None else float(threshold), flips, rate32, rate8)
    return result, engine


def export_model_file(
    model_path: str | os.PathLike,
    onnx_path: str | os.PathLike,
    *,
    allow_factory: Any = None,
    opset: int = 17,
    overwrite: bool = False,
    int8: bool = False,
    calibrate_from: Any = None,
    tolerance: float | None = None,
    calibration_limit: int = 256,
    quantize_ends: bool = False,
) -> ExportResult | Int8Result:
    """``ispad export``: a model file (``load_model``) to an ONNX file with the same metadata.

    Parameters
    ----------
    model_path : path
        The model file.
    onnx_path : path
        The ``.onnx`` file to write.
    allow_factory : str or list of str, optional
        As in ``load_model``.
    opset : int, default 17
    overwrite : bool, default False
    int8 : bool, default False
        Write the int8 graph of :func:`export_int8` instead of the fp32 one.
    calibrate_from : path or sequence of paths
        With ``int8`` (and only then): fault-free scans to cut the calibration windows from, on
        the model's grid (:func:`calibration_windows`).
    tolerance : float, optional
        Largest accepted score difference to torch fp32 (fp32 export, default 1e-4) or to the
        fp32 graph (int8 export, default 0.05).
    calibration_limit : int, default 256
        Most calibration windows.
    quantize_ends : bool, default False
        With ``int8``: quantize the first convolution and the last linear layer too.

    Returns
    -------
    ExportResult, or Int8Result with ``int8``

    Raises
    ------
    As :func:`export_onnx`, :func:`export_int8` and ``load_model``; ValueError for
    ``calibrate_from`` without ``int8`` or the other way round.
    """
    from ispad_core.nn.modelfile import load_model

    if not isinstance(int8, bool):
        raise InputTypeError(f"int8: expected a bool, got {type(int8).__name__}")
    if int8 != (calibrate_from is not None):
        raise InputValueError("calibrate_from: an int8 export needs fault-free scans to calibrate on, and only it takes them")
    check_output_path(onnx_path, "onnx", overwrite=overwrite)  # before the (slow) load
    model, meta = load_model(model_path, device="cpu", allow_factory=allow_factory)
    if not int8:
        result, _ = export_onnx(model, onnx_path, metadata=meta, opset=opset, overwrite=overwrite,
                                tolerance=1e-4 if tolerance is None else tolerance)
        return result
    size = check_int(meta.get("patch_size"), "metadata['patch_size']", minimum=1)
    windows = calibration_windows(calibrate_from, size=size, stride=meta.get("stride"),
                                  in_channels=_in_channels(model, meta), limit=calibration_limit)
    result, _ = export_int8(model, onnx_path, metadata=meta, calibration=windows, opset=opset, overwrite=overwrite,
                            tolerance=0.05 if tolerance is None else tolerance, quantize_ends=quantize_ends)
    return result


def load_onnx(path: str | os.PathLike, *, threads: int | None = None) -> tuple[OnnxRuntimeModel, dict]:
    """An exported ``.onnx`` file as an engine for inspection, and the metadata stored in it.

    Returns
    -------
    (OnnxRuntimeModel, dict)

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not a loadable ONNX model or holds no ``ispad_core`` metadata.
    """
    engine = OnnxRuntimeModel(path, threads=threads)
    if not engine.metadata:
        raise InputValueError(
            f"model: {path} holds no {METADATA_KEY} entry (patch size, preprocessing, threshold); "
            "export it with 'ispad export' or ispad_core.nn.export.export_onnx"
        )
    return engine, dict(engine.metadata)


def onnx_from_model_file(path: str | os.PathLike, *, allow_factory: Any = None) -> tuple[OnnxRuntimeModel, dict]:
    """A model file exported to ONNX in memory (checked like :func:`export_onnx`), and its metadata."""
    from ispad_core.nn.modelfile import load_model

    model, meta = load_model(path, device="cpu", allow_factory=allow_factory)
    _, engine = export_onnx(model, None, metadata=meta)
    engine.source = f"{path} (exported in memory)"
    return engine, dict(meta)
