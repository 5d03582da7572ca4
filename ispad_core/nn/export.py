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
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Mapping
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

__all__ = ["ExportResult", "OnnxRuntimeModel", "export_model_file", "export_onnx", "load_onnx", "onnx_from_model_file"]

METADATA_KEY = "ispad_metadata"
"""Key of the ONNX ``metadata_props`` entry holding the model file's metadata as JSON."""

_INSTALL = 'pip install "ispad-core[deploy]"'


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
    out = None
    if path is not None:
        out = Path(path)
        with atomic_output(out, name="onnx", overwrite=overwrite) as tmp:
            tmp.write_bytes(data)
        engine.source = str(out)
    return ExportResult(out, len(data), opset, check_windows, score, logit), engine


def export_model_file(
    model_path: str | os.PathLike,
    onnx_path: str | os.PathLike,
    *,
    allow_factory: Any = None,
    opset: int = 17,
    overwrite: bool = False,
) -> ExportResult:
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

    Returns
    -------
    ExportResult

    Raises
    ------
    As :func:`export_onnx` and ``load_model``.
    """
    from ispad_core.nn.modelfile import load_model

    check_output_path(onnx_path, "onnx", overwrite=overwrite)  # before the (slow) load
    model, meta = load_model(model_path, device="cpu", allow_factory=allow_factory)
    result, _ = export_onnx(model, onnx_path, metadata=meta, opset=opset, overwrite=overwrite)
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
