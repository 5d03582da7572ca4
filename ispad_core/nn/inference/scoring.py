"""Sliding-window inspection of whole scans: window scores, a heat map, a verdict, files.

The last step of the paper's system (sections 3.2 and 5.2.1): a new scan is cut into the test
grid of :func:`ispad_core.tiling.sliding_windows` (windows of the model's patch size, stride 5/8
of it -- 160 for 256 -- and the last row and column moved back to touch the border), each window
gets the paper's preprocessing and the classifier's softmax probability of "defective", and the
probabilities are stitched into a heat map (maximum over overlapping windows). The scan is
defective when any window's probability reaches the threshold.

- :func:`predict_windows` -- ``(scores, origins)`` of every inspected window.
- :func:`inspect` -- an :class:`Inspection`: scores, heat map, verdict, flagged windows, timings.
- :func:`inspect_files` -- a model file and scan files in, ``<name>.json``,
  ``<name>_overlay.png`` and ``summary.csv`` out; one bad scan does not stop the others.
- :func:`overlay` -- the scan with the heat map blended in colour and flagged windows outlined.

Memory: windows are copied out of the image one batch at a time (``batch_size`` windows), so a
13 000 x 13 000 scan needs the image, the float32 heat map and a few batches, never all of its
~6 500 windows at once.

Colour: a model with one input channel inspecting an RGB scan sees its ITU-R BT.601 luma,
``Y = round(0.299 R + 0.587 G + 0.114 B)`` computed in integers as
``(299 R + 587 G + 114 B + 500) // 1000`` (the rule of :data:`LUMA_RULE`); a three-channel model
inspecting a grey scan sees the grey value in all three channels. Either is said in the result's
``notes`` and ``colour`` field.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.files import atomic_output, check_output_path
from ispad_core._shared.progress import progress
from ispad_core._shared.validation import check_array, check_choice, check_float, check_int
from ispad_core._shared.version import __version__
from ispad_core.nn.preprocessing import Preprocess, preprocess_batch, resolve_preprocess
from ispad_core.tiling import sliding_windows, stitch

__all__ = [
    "LUMA_RULE",
    "Inspection",
    "InspectionReport",
    "ScanOutcome",
    "default_stride",
    "inspect",
    "inspect_files",
    "overlay",
    "predict_windows",
    "resolve_precision",
    "rgb_to_grey",
]

LUMA_RULE = "ITU-R BT.601 luma, Y = (299 R + 587 G + 114 B + 500) // 1000 (rounded half up)"
"""How an RGB scan becomes the grey input of a one-channel model."""

GREY_TO_RGB_RULE = "grey scan repeated in the R, G and B channels of a three-channel model"
"""How a grey scan becomes the input of a three-channel model."""

JSON_FORMAT = "ispad-inspection"
JSON_FORMAT_VERSION = 1

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# Grey levels of the overlay's colour map at heat 0, 0.25, 0.5, 0.75 and 1 (blue -> yellow -> red,
# ColorBrewer's RdYlBu reversed: readable on grey print and for the common colour deficiencies).
_OVERLAY_STOPS = np.array(
    [[49, 54, 149], [116, 173, 209], [254, 224, 144], [244, 109, 67], [165, 0, 38]], dtype=np.float64
)
_OUTLINE = np.array([0, 255, 255], dtype=np.uint8)  # flagged windows: cyan, apart from every heat colour


# --------------------------------------------------------------------------- small helpers


def default_stride(size: int) -> int:
    """The paper's stride for a window side: 5/8 of it, rounded (160 for 256).

    Examples
    --------
    >>> from ispad_core.nn.inference import default_stride
    >>> default_stride(256), default_stride(64), default_stride(1)
    (160, 40, 1)
    """
    size = check_int(size, "size", minimum=1)
    return max(1, int(math.floor(size * 5 / 8 + 0.5)))


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of uint8 RGB pixels, rounded half up (:data:`LUMA_RULE`).

    Parameters
    ----------
    rgb : numpy.ndarray of uint8, shape (..., 3)

    Returns
    -------
    numpy.ndarray of uint8, shape (...)

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.nn.inference import rgb_to_grey
    >>> rgb_to_grey(np.array([[255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], np.uint8))
    array([255,  76, 150,  29,  18], dtype=uint8)
    """
    rgb = check_array(rgb, "rgb", dtypes=(np.uint8,))
    if rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise InputValueError(f"rgb: expected a trailing axis of 3 channels, got shape {rgb.shape}")
    r, g, b = (rgb[..., k].astype(np.uint32) for k in range(3))
    return ((299 * r + 587 * g + 114 * b + 500) // 1000).astype(np.uint8)


def _cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), as oneDNN sees it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - older or unusual torch builds
        caps = getattr(torch._C._cpu, "_get_cpu_capability", dict)()
        return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def resolve_precision(precision: str, channels_last: Any, device: Any) -> tuple[str, bool]:
    """The precision and memory layout that ``"auto"`` stands for on ``device``.

    ``precision="auto"``: on CUDA fp16 autocast (the paper's inference setting); on a CPU that
    computes bf16 natively (AVX-512 BF16 or AMX) bf16 autocast, on other CPUs fp32.
    ``channels_last="auto"`` (or None): True. Measured with ``bench/test_bench_inspect.py`` on an
    AMD EPYC with AVX-512 BF16 (ResNet-18, 256 x 256, batch 32, one thread): fp32 contiguous 5.1,
    fp32 channels-last 6.4, bf16 contiguous 11.5, bf16 channels-last 25.1 windows/s. bf16 rounds
    activations to 8 significant bits, so scores can differ from an fp32 run (the validation
    that set the threshold) by about 1e-3 to 1e-2; pass ``precision="fp32"`` for fp32 scores.

    Returns
    -------
    (str, bool)
        ``"fp32"``, ``"bf16"`` or ``"fp16"``, and whether to run channels-last.

    Examples
    --------
    >>> from ispad_core.nn.inference import resolve_precision
    >>> resolve_precision("auto", "auto", "cpu") in (("bf16", True), ("fp32", True))
    True
    >>> resolve_precision("fp32", False, "cpu")
    ('fp32', False)
    """
    precision = check_choice(precision, "precision", PRECISIONS)
    device = torch.device(device)
    if channels_last is None or (isinstance(channels_last, str) and channels_last == "auto"):
        channels_last = True
    elif not isinstance(channels_last, bool):
        raise InputTypeError(f"channels_last: expected True, False, 'auto' or None, got {channels_last!r}")
    if precision == "auto":
        if device.type == "cuda":
            precision = "fp16"
        else:
            precision = "bf16" if device.type == "cpu" and _cpu_has_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise InputValueError(f"precision: fp16 autocast needs a CUDA device, got {device}; use 'bf16' or 'fp32'")
    return precision, channels_last


def _in_channels(model: Any) -> int:
    value = getattr(model, "in_channels", None)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(model, nn.Module):
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                return m.in_channels
    raise InputValueError("model: cannot tell the number of input channels (no in_channels attribute, no Conv2d)")


def _is_onnx(model: Any) -> bool:
    return getattr(model, "ispad_engine", None) == "onnxruntime"


def _check_model(model: Any) -> None:
    if not (isinstance(model, nn.Module) or _is_onnx(model)):
        raise InputTypeError(
            f"model: expected a torch.nn.Module or an onnxruntime model of ispad_core.nn.export, got {type(model).__name__}"
        )


def _window_roi_counts(roi: np.ndarray, row_starts: np.ndarray, col_starts: np.ndarray, size: int) -> np.ndarray:
    """ROI pixels inside each window of the grid, ``(rows, cols)`` int64, in O(rows * size * W).

    One band of ``size`` image rows per grid row: column sums, then a running sum along the
    columns gives every window of the band by a difference. Memory is one row of counts, not an
    integral image of the whole scan.
    """
    counts = np.empty((row_starts.size, col_starts.size), dtype=np.int64)
    run = np.zeros(roi.shape[1] + 1, dtype=np.int64)
    for i, r in enumerate(row_starts):
        np.cumsum(roi[r : r + size].sum(axis=0, dtype=np.int64), out=run[1:])
        counts[i] = run[col_starts + size] - run[col_starts]
    return counts


@dataclass(frozen=True)
class _Scored:
    scores: np.ndarray
    origins: np.ndarray
    grid_total: int
    colour: str | None
    precision: str
    channels_last: bool
    device: str
    timings: dict


def _score_windows(
    model: Any,
    image: Any,
    *,
    size: int,
    stride: int | None,
    batch_size: int,
    preprocess: Preprocess | str | None,
    device: Any,
    roi: Any,
    min_roi_fraction: float | None,
    precision: str,
    channels_last: Any,
    show_progress: bool | None,
) -> _Scored:
    _check_model(model)
    image = check_array(image, "image", ndim=(2, 3))
    if image.dtype != np.uint8:
        raise InputTypeError(f"image: expected dtype uint8 (an 8-bit scan), got {image.dtype}")
    if image.ndim == 3 and image.shape[2] != 3:
        raise InputValueError(f"image: expected a grey (H, W) or RGB (H, W, 3) scan, got shape {image.shape}")
    size = check_int(size, "size", minimum=1)
    stride = default_stride(size) if stride is None else check_int(stride, "stride", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    params = resolve_preprocess(preprocess)
    H, W = image.shape[:2]
    if H < size or W < size:
        raise InputValueError(f"image: the scan is {H} x {W} px, smaller than the {size} x {size} window")

    onnx = _is_onnx(model)
    if onnx:
        if device is not None and torch.device(device).type != "cpu":
            raise InputValueError(f"device: the onnxruntime engine runs on the CPU here, got {device}")
        if precision not in ("auto", "fp32"):
            raise InputValueError(f"precision: the onnxruntime engine runs the exported fp32 graph, got {precision!r}")
        dev, prec, cl = torch.device("cpu"), "fp32", False
    else:
        if device is None:
            dev = next((p.device for p in model.parameters()), torch.device("cpu"))
        else:
            dev = torch.device(device)
        prec, cl = resolve_precision(precision, channels_last, dev)

    # the colour rule
    channels = _in_channels(model)
    colour = None
    if channels == 1 and image.ndim == 3:
        colour = LUMA_RULE
    elif channels == 3 and image.ndim == 2:
        colour = GREY_TO_RGB_RULE
    elif channels not in (1, 3):
        raise InputValueError(f"model: expected 1 or 3 input channels, got {channels}")

    tiles, origins = sliding_windows(image, size=size, stride=stride)
    rows_n, cols_n = tiles.grid
    grid_total = len(tiles)
    if roi is None:
        keep = np.arange(grid_total)
    else:
        roi = check_array(roi, "roi", ndim=2, kinds="biu")
        if roi.shape != (H, W):
            raise InputValueError(f"roi: expected shape {(H, W)} like the scan, got {roi.shape}")
        need = 1
        if min_roi_fraction is not None:
            f = check_float(min_roi_fraction, "min_roi_fraction", minimum=0.0, maximum=1.0, min_inclusive=False)
            need = max(1, math.ceil(f * size * size - 1e-9))
        counts = _window_roi_counts(roi != 0, origins[::cols_n, 0], origins[:cols_n, 1], size)
        keep = np.flatnonzero(counts.ravel() >= need)
        if keep.size == 0:
            what = "any pixel" if min_roi_fraction is None else f"at least {min_roi_fraction:.0%} of its pixels"
            raise InputValueError(
                f"roi: none of the {grid_total} windows of {size} x {size} has {what} inside the region "
                f"of interest ({int(np.count_nonzero(roi))} ROI pixels in a scan of {H} x {W})"
            )
    kept_origins = origins[keep]
    scores = np.empty(keep.size, dtype=np.float64)
    amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[prec]

    timings = {"gather_s": 0.0, "preprocess_s": 0.0, "wait_s": 0.0, "forward_s": 0.0}

    def prepare(start: int):
        # runs in the prefetch thread: copy this batch's windows only, convert, preprocess
        with torch.inference_mode():
            t0 = time.perf_counter()
            batch = tiles[keep[start : start + batch_size]]
            if colour == LUMA_RULE:
                batch = rgb_to_grey(batch)
            elif colour == GREY_TO_RGB_RULE:
                batch = np.repeat(batch[..., None], 3, axis=-1)
            t1 = time.perf_counter()
            x = preprocess_batch(torch.from_numpy(batch), params, device=dev, channels_last=cl)
            return x, t1 - t0, time.perf_counter() - t1

    was_training = None
    if not onnx:
        was_training = model.training
        model.eval()
        model.to(dev)
        if cl:
            model.to(memory_format=torch.channels_last)
    starts = list(range(0, keep.size, batch_size))
    # Batch k + 1 is read and preprocessed in a second thread while the network runs batch k (torch
    # releases the GIL), so the pipeline adds little beyond the forward pass; two batches are in
    # memory at most.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ispad-windows")
    pending = None
    try:
        with torch.inference_mode(), progress(
            total=int(keep.size), desc="windows", unit="win", disable=show_progress if show_progress is None else not show_progress
        ) as bar:
            pending = pool.submit(prepare, starts[0])
            for k, start in enumerate(starts):
                t0 = time.perf_counter()
                x, gather_s, preprocess_s = pending.result()
                pending = pool.submit(prepare, starts[k + 1]) if k + 1 < len(starts) else None
                t1 = time.perf_counter()
                if onnx:
                    logits = model(x)
                else:
                    with torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                        logits = model(x)
                logits = logits.float()
                if logits.ndim != 2 or logits.shape[0] != x.shape[0] or logits.shape[1] < 2:
                    raise InputValueError(
                        f"model: expected (B, 2) logits of a binary classifier for a batch of {x.shape[0]}, "
                        f"got shape {tuple(logits.shape)}"
                    )
                p = torch.softmax(logits, dim=1)[:, 1].double().cpu().numpy()
                scores[start : start + p.size] = p
                t2 = time.perf_counter()
                timings["gather_s"] += gather_s
                timings["preprocess_s"] += preprocess_s
                timings["wait_s"] += t1 - t0
                timings["forward_s"] += t2 - t1
                bar.update(p.size)
    finally:
        if pending is not None:
            pending.cancel()
        pool.shutdown(wait=True)
        if not onnx:
            model.train(was_training)
            if cl:
                model.to(memory_format=torch.contiguous_format)
    bad = ~np.isfinite(scores)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise RuntimeError(
            f"model: non-finite scores for {int(bad.sum())} windows, the first at {tuple(int(v) for v in kept_origins[k])}"
        )
    return _Scored(scores, kept_origins, grid_total, colour, prec, bool(cl), str(dev), timings)


# --------------------------------------------------------------------------- window scores


def predict_windows(
    model: Any,
    image: Any,
    *,
    size: int,
    stride: int | None = None,
    batch_size: int = 128,
    preprocess: Preprocess | str | None = "lsm2",
    device: Any = None,
    roi: Any = None,
    min_roi_fraction: float | None = None,
    precision: str = "auto",
    channels_last: Any = "auto",
    show_progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Defect probability of every window of a scan, read from the scan one batch at a time.

    The windows are those of :func:`ispad_core.tiling.sliding_windows` (row by row; the last row
    and column touch the border). Each batch of ``batch_size`` windows is copied out of the image,
    converted to the model's channels (see the module notes), preprocessed with
    :func:`~ispad_core.nn.preprocess_batch` and scored as the softmax probability of class 1.
    The next batch is read and preprocessed in a second thread while the network runs the
    current one, so at most two batches are in memory.

    Parameters
    ----------
    model : torch.nn.Module or onnxruntime model
        A binary classifier: ``(B, C, size, size)`` float32 -> ``(B, 2)`` logits, C = 1 or 3. A
        torch model is put in eval mode and moved to ``device`` (its training mode and memory
        format are restored afterwards); an onnxruntime model comes from
        :func:`ispad_core.nn.export.load_onnx`.
    image : numpy.ndarray of uint8, shape (H, W) or (H, W, 3)
        The scan; ``H, W >= size``.
    size : int
        Window side (the model's patch size).
    stride : int, optional
        Step between windows, ``1 <= stride <= size``; default :func:`default_stride` (160 for 256).
    batch_size : int, default 128
        Windows per forward pass (and the most windows held in memory at once).
    preprocess : Preprocess, preset name or None, default "lsm2"
        The preprocessing the model was trained with.
    device : torch.device or str, optional
        Where to run; default the device of the model's parameters.
    roi : numpy.ndarray of bool or int, shape (H, W), optional
        Region of interest (nonzero inside). A window is scored when at least one of its pixels
        lies in the ROI (so every ROI pixel is inspected), or, with ``min_roi_fraction``, when at
        least that fraction of its ``size * size`` pixels does. The others are skipped.
    min_roi_fraction : float in (0, 1], optional
        See ``roi``; ignored without ``roi``.
    precision : {"auto", "fp32", "bf16", "fp16"}, default "auto"
        fp32, or autocast to bf16/fp16; ``"auto"`` as :func:`resolve_precision`.
    channels_last : bool or "auto", default "auto"
        Run in ``torch.channels_last`` memory format; ``"auto"`` as :func:`resolve_precision`.
    show_progress : bool, optional
        A progress bar over windows; None shows it only when stderr is a terminal.

    Returns
    -------
    scores : numpy.ndarray of float64, shape (K,)
        P(defective) of each scored window.
    origins : numpy.ndarray of int64, shape (K, 2)
        ``(row, col)`` of each scored window's top-left pixel, in grid order (row by row). K is
        the number of grid windows, less those skipped outside the ROI.

    Raises
    ------
    TypeError
        If ``model`` is not a torch module or onnxruntime model, or ``image`` is not uint8.
    ValueError
        If the scan is smaller than a window, ``roi`` has another shape or keeps no window, the
        model's output is not ``(B, 2)``, or an argument is out of range.
    RuntimeError
        If the model gives non-finite scores.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from ispad_core.nn.inference import predict_windows
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten())
    >>> image = np.random.default_rng(0).integers(0, 256, (100, 120), dtype=np.uint8)
    >>> scores, origins = predict_windows(model, image, size=32)  # stride 20
    >>> scores.shape, origins[:7].tolist()
    ((30,), [[0, 0], [0, 20], [0, 40], [0, 60], [0, 80], [0, 88], [20, 0]])
    >>> bool(((scores > 0) & (scores < 1)).all())
    True
    """
    s = _score_windows(
        model, image, size=size, stride=stride, batch_size=batch_size, preprocess=preprocess, device=device,
        roi=roi, min_roi_fraction=min_roi_fraction, precision=precision, channels_last=channels_last,
        show_progress=show_progress,
    )
    return s.scores, s.origins


# --------------------------------------------------------------------------- one scan


@dataclass(frozen=True)
class Inspection:
    """The result of :func:`inspect` on one scan.

    Attributes
    ----------
    scores : numpy.ndarray of float64, shape (K,)
        P(defective) of each inspected window (read-only).
    origins : numpy.ndarray of int64, shape (K, 2)
        ``(row, col)`` of each inspected window's top-left pixel, in grid order (read-only).
    heatmap : numpy.ndarray of float32, shape (H, W)
        Per pixel the highest score of the inspected windows covering it; 0 where no inspected
        window covers it (outside the ROI). Read-only.
    threshold : float
        The decision threshold on P(defective).
    defective : bool
        Whether any window's score is ``>= threshold``.
    flagged : numpy.ndarray of int64, shape (F,)
        Indices into ``scores``/``origins`` of the windows at or over the threshold, highest
        score first (ties in grid order).
    size, stride : int
        Window side and step.
    shape : tuple of int
        ``(H, W)`` of the scan.
    grid_windows : int
        Windows of the full grid; ``grid_windows - len(scores)`` were skipped outside the ROI.
    colour : str or None
        The colour conversion applied (:data:`LUMA_RULE` or the grey-to-RGB rule), None if none.
    precision : str
        ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    channels_last : bool
    device : str
    timings : dict of str to float
        Seconds: ``gather_s`` (copying windows out of the scan, colour conversion) and
        ``preprocess_s``, both spent in the prefetch thread while the network runs the previous
        batch; ``wait_s`` (the network waiting for a prepared batch: the part of reading and
        preprocessing that was not hidden), ``forward_s`` (network, softmax, transfer back),
        ``stitch_s``, ``total_s``.
    notes : tuple of str
        What a reader of the result should know (colour conversion, skipped windows).
    """

    scores: np.ndarray
    origins: np.ndarray
    heatmap: np.ndarray
    threshold: float
    defective: bool
    flagged: np.ndarray
    size: int
    stride: int
    shape: tuple
    grid_windows: int
    colour: str | None
    precision: str
    channels_last: bool
    device: str
    timings: dict = field(repr=False)
    notes: tuple = ()

    @property
    def max_score(self) -> float:
        """The highest window score."""
        return float(self.scores.max())

    @property
    def flagged_origins(self) -> np.ndarray:
        """``(F, 2)`` origins of the flagged windows, highest score first."""
        return self.origins[self.flagged]

    @property
    def flagged_scores(self) -> np.ndarray:
        """``(F,)`` scores of the flagged windows, highest first."""
        return self.scores[self.flagged]

    @property
    def windows_per_s(self) -> float:
        """Inspected windows per second of ``timings["total_s"]``."""
        return float(self.scores.size / max(self.timings["total_s"], 1e-12))

    def to_dict(self) -> dict:
        """JSON-serialisable summary (everything but the per-window arrays and the heat map)."""
        top = int(np.argmax(self.scores))
        return {
            "decision": "defective" if self.defective else "good",
            "defective": bool(self.defective),
            "threshold": float(self.threshold),
            "max_score": self.max_score,
            "hottest_window": {"row": int(self.origins[top, 0]), "col": int(self.origins[top, 1]),
                               "size": self.size, "score": float(self.scores[top])},
            "flagged": [
                {"row": int(r), "col": int(c), "size": self.size, "score": float(s)}
                for (r, c), s in zip(self.flagged_origins, self.flagged_scores)
            ],
            "windows": {
                "size": self.size,
                "stride": self.stride,
                "grid": int(self.grid_windows),
                "inspected": int(self.scores.size),
                "skipped_outside_roi": int(self.grid_windows - self.scores.size),
                "flagged": int(self.flagged.size),
            },
            "scan": {"height": int(self.shape[0]), "width": int(self.shape[1]), "colour_conversion": self.colour},
            "inference": {"precision": self.precision, "channels_last": self.channels_last, "device": self.device},
            "timings": {k: round(float(v), 6) for k, v in self.timings.items()} | {"windows_per_s": round(self.windows_per_s, 3)},
            "notes": list(self.notes),
        }


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def inspect(
    model: Any,
    image: Any,
    *,
    threshold: float,
    size: int,
    stride: int | None = None,
    preprocess: Preprocess | str | None = "lsm2",
    roi: Any = None,
    min_roi_fraction: float | None = None,
    batch_size: int = 128,
    device: Any = None,
    precision: str = "auto",
    channels_last: Any = "auto",
    show_progress: bool | None = None,
) -> Inspection:
    """Inspect one scan: window scores, a heat map and the verdict.

    :func:`predict_windows` scores the windows; the heat map is
    ``stitch(scores, origins, (H, W), reduce="max", size=size)`` in float32 (the highest score of
    the windows covering each pixel); the scan is defective when any score is ``>= threshold``.

    Parameters
    ----------
    model, image, size, stride, preprocess, roi, min_roi_fraction, batch_size, device, precision, channels_last, show_progress
        As in :func:`predict_windows`.
    threshold : float in [0, 1]
        Decision threshold on P(defective) (the model file's ``threshold``).

    Returns
    -------
    Inspection

    Raises
    ------
    TypeError, ValueError, RuntimeError
        As :func:`predict_windows`; ValueError also for a threshold outside [0, 1].

    Examples
    --------
    >>> import numpy as np, torch
    >>> from ispad_core.nn.inference import inspect
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten())
    >>> image = np.random.default_rng(0).integers(0, 256, (100, 120), dtype=np.uint8)
    >>> result = inspect(model, image, threshold=0.5, size=32)
    >>> result.heatmap.shape, result.heatmap.dtype, result.grid_windows
    ((100, 120), dtype('float32'), 30)
    >>> result.defective == bool((result.scores >= 0.5).any())
    True
    >>> bool((np.diff(result.flagged_scores) <= 0).all())
    True
    """
    threshold = check_float(threshold, "threshold", minimum=0.0, maximum=1.0)
    t0 = time.perf_counter()
    s = _score_windows(
        model, image, size=size, stride=stride, batch_size=batch_size, preprocess=preprocess, device=device,
        roi=roi, min_roi_fraction=min_roi_fraction, precision=precision, channels_last=channels_last,
        show_progress=show_progress,
    )
    image = np.asarray(image)
    size = int(size)
    stride = default_stride(size) if stride is None else int(stride)
    t1 = time.perf_counter()
    threads = torch.get_num_threads()
    heat = stitch(s.scores.astype(np.float32), s.origins, image.shape[:2], reduce="max", size=size)
    # Numba's OpenMP layer sets the process's OpenMP thread count that torch shares: put torch's back
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    t2 = time.perf_counter()
    over = np.flatnonzero(s.scores >= threshold)
    flagged = over[np.argsort(-s.scores[over], kind="stable")].astype(np.int64)
    timings = dict(s.timings)
    timings["stitch_s"] = t2 - t1
    timings["total_s"] = t2 - t0
    notes = []
    if s.colour is not None:
        notes.append(f"colour: {s.colour}")
    skipped = s.grid_total - s.scores.size
    if skipped:
        notes.append(f"{skipped} of {s.grid_total} windows lie outside the region of interest and were not inspected")
    return Inspection(
        scores=_readonly(s.scores),
        origins=_readonly(s.origins),
        heatmap=_readonly(heat),
        threshold=threshold,
        defective=bool(over.size > 0),
        flagged=_readonly(flagged),
        size=size,
        stride=stride,
        shape=tuple(int(v) for v in image.shape[:2]),
        grid_windows=int(s.grid_total),
        colour=s.colour,
        precision=s.precision,
        channels_last=s.channels_last,
        device=s.device,
        timings=timings,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- the overlay picture


def _downsample_mean(image: np.ndarray, f: int) -> np.ndarray:
    """Block means of ``f x f`` pixels (edge blocks padded by repetition), a strip at a time."""
    if f == 1:
        return image
    H, W = image.shape[:2]
    h2, w2 = -(-H // f), -(-W // f)
    out = np.empty((h2, w2) + image.shape[2:], dtype=np.uint8)
    cols = np.minimum(np.arange(w2 * f), W - 1)
    for i in range(h2):
        rows = np.minimum(np.arange(i * f, (i + 1) * f), H - 1)
        strip = image[rows][:, cols].astype(np.float32)
        strip = strip.reshape((f, w2, f) + image.shape[2:]).mean(axis=(0, 2))
        out[i] = np.floor(strip + 0.5).astype(np.uint8)
    return out


def _colour_map(heat: np.ndarray) -> np.ndarray:
    x = np.clip(heat, 0.0, 1.0) * (len(_OVERLAY_STOPS) - 1)
    lo = np.minimum(np.floor(x).astype(np.int64), len(_OVERLAY_STOPS) - 2)
    t = (x - lo)[..., None]
    return _OVERLAY_STOPS[lo] * (1.0 - t) + _OVERLAY_STOPS[lo + 1] * t


def _font(px: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=px)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def overlay(
    image: Any,
    result: Inspection,
    *,
    roi: Any = None,
    max_side: int = 4096,
    title: str | None = None,
    max_outlined: int = 20,
) -> np.ndarray:
    """The scan with the heat map blended in colour and the flagged windows outlined.

    Inspected pixels are tinted from blue (score 0, faint) through yellow to red (score 1,
    strong: opacity ``0.15 + 0.55 * score``); pixels outside every inspected window (outside the
    ROI) keep the scan, darkened when a ``roi`` is given. Flagged windows are outlined in cyan and
    numbered by rank with their score, the hottest one with a thicker line; a banner states the
    verdict. Scans
    larger than ``max_side`` are shrunk by an integer factor (block means) first.

    Parameters
    ----------
    image : numpy.ndarray of uint8, shape (H, W) or (H, W, 3)
        The scan that was inspected.
    result : Inspection
        Its inspection.
    roi : numpy.ndarray, shape (H, W), optional
        The region of interest used, to darken what lies outside it.
    max_side : int, default 4096
        Longest side of the picture.
    title : str, optional
        First words of the banner (e.g. the file name).
    max_outlined : int, default 20
        Outline at most this many flagged windows (the highest scores); labels that would
        cover an earlier one are left out.

    Returns
    -------
    numpy.ndarray of uint8, shape (h, w, 3)

    Examples
    --------
    >>> import numpy as np, torch
    >>> from ispad_core.nn.inference import inspect
    >>> from ispad_core.nn.inference import overlay
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten())
    >>> image = np.random.default_rng(0).integers(0, 256, (100, 120), dtype=np.uint8)
    >>> picture = overlay(image, inspect(model, image, threshold=0.5, size=32))
    >>> picture.shape, picture.dtype
    ((100, 120, 3), dtype('uint8'))
    """
    from PIL import Image, ImageDraw

    if not isinstance(result, Inspection):
        raise InputTypeError(f"result: expected an Inspection, got {type(result).__name__}")
    image = check_array(image, "image", ndim=(2, 3), dtypes=(np.uint8,))
    if image.shape[:2] != result.shape:
        raise InputValueError(f"image: expected shape {result.shape} like the inspection, got {image.shape[:2]}")
    max_side = check_int(max_side, "max_side", minimum=16)
    max_outlined = check_int(max_outlined, "max_outlined", minimum=0)
    f = max(1, -(-max(result.shape) // max_side))
    small = _downsample_mean(image, f)
    if small.ndim == 2:
        small = np.repeat(small[..., None], 3, axis=2)
    # picture pixel (i, j) samples scan pixel (i * f + f // 2, j * f + f // 2), clipped to the scan
    at = np.ix_(np.minimum(np.arange(small.shape[0]) * f + f // 2, result.shape[0] - 1),
                np.minimum(np.arange(small.shape[1]) * f + f // 2, result.shape[1] - 1))
    heat = result.heatmap[at].astype(np.float64)
    # which picture pixels an inspected window covers
    covered = np.zeros(small.shape[:2], dtype=bool)
    lo = -(-(result.origins - f // 2) // f)
    hi = -(-(result.origins + result.size - f // 2) // f)
    hi[result.origins + result.size >= np.array(result.shape)] = max(small.shape[:2])  # windows at the border
    for (r0, c0), (r1, c1) in zip(lo.tolist(), hi.tolist()):  # K slice assignments: cheap next to inference
        covered[max(r0, 0) : r1, max(c0, 0) : c1] = True
    alpha = np.where(covered, 0.15 + 0.55 * np.clip(heat, 0.0, 1.0), 0.0)[..., None]
    base = small.astype(np.float64)
    if roi is not None:
        roi = check_array(roi, "roi", ndim=2, kinds="biu")
        if roi.shape != result.shape:
            raise InputValueError(f"roi: expected shape {result.shape} like the inspection, got {roi.shape}")
        inside = roi[at] != 0
        base = np.where(inside[..., None], base, 0.45 * base)
    rgb = np.clip(np.floor(base * (1.0 - alpha) + _colour_map(heat) * alpha + 0.5), 0, 255).astype(np.uint8)

    picture = Image.fromarray(rgb)
    draw = ImageDraw.Draw(picture)
    h, w = rgb.shape[:2]
    line = max(1, round(min(h, w) / 400))
    font = _font(max(10, min(h, w) // 45))
    side = result.size / f
    cyan = tuple(int(v) for v in _OUTLINE)
    shown = result.flagged[:max_outlined].tolist()
    for rank in range(len(shown) - 1, -1, -1):  # the hottest drawn last, on top
        r, c = result.origins[shown[rank]] / f
        width = 2 * line if rank == 0 else line
        draw.rectangle([c, r, c + side - 1, r + side - 1], outline=cyan, width=width)
    labels: list[tuple] = []
    for rank, k in enumerate(shown):  # labels in rank order, none over an earlier one
        r, c = result.origins[k] / f
        width = 2 * line if rank == 0 else line
        text = f"{rank + 1}: {result.scores[k]:.2f}"
        box = draw.textbbox((c + width + 2, r + width + 1), text, font=font, stroke_width=max(1, line // 2))
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in labels):
            continue
        labels.append(box)
        draw.text((c + width + 2, r + width + 1), text, fill=cyan, font=font, stroke_width=max(1, line // 2),
                  stroke_fill=(0, 0, 0))
    verdict = "DEFECTIVE" if result.defective else "good"
    more = f" (the top {len(shown)} outlined)" if len(shown) < result.flagged.size else ""
    banner = (f"{title + ': ' if title else ''}{verdict}  max {result.max_score:.3f} "
              f"{'>=' if result.defective else '<'} threshold {result.threshold:.3f}  "
              f"{result.flagged.size} of {result.scores.size} windows flagged{more}")
    pad = max(2, line * 2)
    if draw.textbbox((0, 0), banner, font=font)[2] > w - 2 * pad:  # too wide: verdict, then the counts
        banner = banner.replace("  ", "\n", 1) if title else banner.replace("  ", "\n", 2).replace("\n", "  ", 1)
    box = draw.multiline_textbbox((0, 0), banner, font=font)
    draw.rectangle([0, 0, box[2] + 2 * pad, box[3] + 2 * pad], fill=(0, 0, 0))
    draw.multiline_text((pad, pad), banner, fill=(255, 80, 80) if result.defective else (120, 255, 120), font=font)
    return np.asarray(picture, dtype=np.uint8).copy()


# --------------------------------------------------------------------------- scan files


@dataclass(frozen=True)
class ScanOutcome:
    """What :func:`inspect_files` did with one scan.

    Attributes
    ----------
    name : str
        The output name (the file's stem).
    path : pathlib.Path
        The scan file.
    ok : bool
        Whether it was inspected; if not, ``error`` says why.
    defective : bool or None
    max_score : float or None
    flagged : int or None
        Windows at or over the threshold.
    windows : int or None
        Windows inspected.
    json, overlay : pathlib.Path or None
        The files written.
    seconds : float
        Wall time for this scan (reading to writing).
    colour : str or None
        The colour conversion applied.
    error : str or None
        One line naming the file and what is wrong.
    """

    name: str
    path: Path
    ok: bool
    defective: bool | None = None
    max_score: float | None = None
    flagged: int | None = None
    windows: int | None = None
    json: Path | None = None
    overlay: Path | None = None
    seconds: float = 0.0
    colour: str | None = None
    error: str | None = None

    def __str__(self) -> str:
        if not self.ok:
            return f"{self.path}: FAILED: {self.error}"
        verdict = "DEFECTIVE" if self.defective else "good"
        return (f"{self.path}: {verdict} (max score {self.max_score:.3f}, {self.flagged} of {self.windows} windows "
                f"flagged, {self.seconds:.1f} s) -> {self.json}, {self.overlay}")


@dataclass(frozen=True)
class InspectionReport:
    """The result of :func:`inspect_files`.

    Attributes
    ----------
    scans : tuple of ScanOutcome
        One per scan, in the order given.
    out : pathlib.Path
        The output folder.
    summary : pathlib.Path
        ``out/summary.csv``.
    model : dict
        What the JSON files say about the model (path, backbone, patch size, threshold, ...).
    """

    scans: tuple
    out: Path
    summary: Path
    model: dict

    @property
    def failed(self) -> tuple:
        """The scans that could not be inspected."""
        return tuple(s for s in self.scans if not s.ok)

    @property
    def defective(self) -> tuple:
        """The scans found defective."""
        return tuple(s for s in self.scans if s.ok and s.defective)


SUMMARY_COLUMNS = (
    "name", "path", "status", "decision", "max_score", "threshold", "flagged", "windows",
    "hottest_row", "hottest_col", "seconds", "json", "overlay", "error",
)
"""Columns of ``summary.csv``."""


def _model_info(model: Any, metadata: Mapping, path: Path | None, engine: str) -> dict:
    keys = ("backbone", "backbone_kwargs", "in_channels", "num_classes", "patch_size", "preprocess", "threshold",
            "library_version", "created", "format", "format_version")
    info = {"path": None if path is None else str(path), "engine": engine}
    info.update({k: metadata[k] for k in keys if k in metadata})
    return info


def _load_model(model: Any, *, engine: str | None, device: Any, allow_factory: Any):
    """(model, metadata, path, engine) from a model file path or a (model, metadata) pair."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"model: {path} does not exist")
        is_onnx = path.suffix.lower() == ".onnx"
        engine = engine or ("onnxruntime" if is_onnx else "torch")
        if engine == "onnxruntime":
            from ispad_core.nn.export import load_onnx, onnx_from_model_file

            if is_onnx:
                net, meta = load_onnx(path)
            else:
                net, meta = onnx_from_model_file(path, allow_factory=allow_factory)
            return net, meta, path, engine
        if is_onnx:
            raise InputValueError(f"model: {path} is an ONNX file; inspect it with engine='onnxruntime' (--engine onnxruntime)")
        from ispad_core.nn.modelfile import load_model

        net, meta = load_model(path, device="cpu" if device is None else device, allow_factory=allow_factory)
        return net, meta, path, engine
    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[1], Mapping):
        net, meta = model
        _check_model(net)
        eng = "onnxruntime" if _is_onnx(net) else "torch"
        if engine is not None and engine != eng:
            raise InputValueError(f"engine: {engine!r} does not match the given {eng} model")
        return net, dict(meta), None, eng
    raise InputTypeError(f"model: expected a model file path or a (model, metadata) pair, got {type(model).__name__}")


def _roi_for(rois: Any, name: str, scan: Path) -> tuple[np.ndarray | None, str | None]:
    """The ROI of one scan: from a folder (a file with the scan's stem) or a mapping of name -> array/path."""
    from ispad_core.io import IMAGE_EXTENSIONS, read_image

    if rois is None:
        return None, None
    if isinstance(rois, Mapping):
        if name not in rois:
            raise InputValueError(f"rois: no region of interest for {scan} (expected the key {name!r})")
        value = rois[name]
        if isinstance(value, (str, os.PathLike)):
            roi = read_image(value, name="rois")
            source = str(value)
        else:
            return np.asarray(value), "array"
    else:
        folder = Path(rois)
        if not folder.is_dir():
            raise NotADirectoryError(f"rois: {folder} is not a folder")
        found = [folder / (name + ext) for ext in IMAGE_EXTENSIONS if (folder / (name + ext)).is_file()]
        if not found:
            raise InputValueError(f"rois: no region of interest for {scan} in {folder} (expected {name}.png)")
        roi = read_image(found[0], name="rois")
        source = str(found[0])
    if roi.ndim == 3:
        roi = roi.max(axis=2)
    return roi, source


def _read_scan(path: Path) -> tuple[np.ndarray | None, str]:
    """``(image, "")`` or ``(None, why)``. When decoding fails, imageio's plugins leave the file
    open in reference cycles; they are collected here with their ResourceWarnings silenced, so
    they do not surface later in unrelated code (or fail a test run with warnings as errors)."""
    import gc
    import warnings

    from ispad_core.io import read_image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            return read_image(path, name="scans"), ""
        except (OSError, ValueError) as exc:
            msg = str(exc)
        gc.collect()
    return None, msg


def _write_json(path: Path, payload: dict, overwrite: bool) -> None:
    with atomic_output(path, name="out", overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")


def _write_png(path: Path, image: np.ndarray, overwrite: bool) -> None:
    import imageio.v3 as iio

    with atomic_output(path, name="out", overwrite=overwrite) as tmp:
        iio.imwrite(tmp, image, extension=".png")


def inspect_files(
    scans: Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    model: Any,
    out: str | os.PathLike,
    rois: Any = None,
    min_roi_fraction: float | None = None,
    threshold: float | None = None,
    size: int | None = None,
    stride: int | None = None,
    batch_size: int = 128,
    device: Any = None,
    engine: str | None = None,
    precision: str = "auto",
    channels_last: Any = "auto",
    allow_factory: Any = None,
    overwrite: bool = False,
    overlay_max_side: int = 4096,
    show_progress: bool | None = None,
    on_scan: Any = None,
) -> InspectionReport:
    """Inspect scan files with a model file; write a JSON report and an overlay per scan and a summary.

    For each scan (in the order given): read it, :func:`inspect` it with the model's patch size,
    preprocessing and threshold, and write ``out/<name>.json`` and ``out/<name>_overlay.png``
    (``<name>`` is the file's stem); at the end ``out/summary.csv`` has one row per scan
    (:data:`SUMMARY_COLUMNS`). A scan that cannot be read, is smaller than a window, or whose ROI
    is missing or of another size is reported (``ScanOutcome.error`` names the file and the sizes)
    and the others are still inspected. Every file is written atomically.

    JSON schema (``format`` "ispad-inspection", ``format_version`` 1)::

        format, format_version, library_version, created (ISO 8601 UTC)
        scan: {path, name, height, width, channels, colour_conversion (str or null)}
        roi: path of the ROI file or null, min_roi_fraction (null: any ROI pixel)
        model: {path, engine, backbone, in_channels, patch_size, preprocess, threshold, ...}
        decision: "defective" | "good", defective: bool, threshold, max_score
        hottest_window: {row, col, size, score}
        flagged: [{row, col, size, score}, ...]   every window with score >= threshold, highest first
        windows: {size, stride, grid, inspected, skipped_outside_roi, flagged}
        inference: {precision, channels_last, device}
        timings: {read_s, gather_s, preprocess_s, wait_s, forward_s, stitch_s, total_s, windows_per_s,
                  overlay_s, write_s}
        notes: [str, ...]
        overlay: file name of the overlay PNG

    Parameters
    ----------
    scans : path or sequence of paths
        Scan files, or folders of them (:func:`ispad_core.io.list_images`).
    model : path or (model, metadata)
        A model file (``load_model``; an ``.onnx`` file of :func:`ispad_core.nn.export.export_onnx`
        runs on onnxruntime), or a loaded model with its metadata dict (``patch_size``,
        ``threshold``, ``preprocess`` are used).
    out : path
        Output folder (created if missing).
    rois : folder or mapping, optional
        Regions of interest: a folder with one image per scan named like it (``<name>.png``,
        nonzero inside), or a mapping of scan name to an array or a file.
    min_roi_fraction : float, optional
        As in :func:`predict_windows`.
    threshold : float, optional
        Override the model's threshold.
    size : int, optional
        Window side; must equal the model's ``patch_size`` if both are known.
    stride, batch_size, device, precision, channels_last, show_progress
        As in :func:`predict_windows`.
    engine : {"torch", "onnxruntime"}, optional
        Default: onnxruntime for an ``.onnx`` file, torch otherwise. onnxruntime with a ``.pt``
        model file exports it in memory first.
    allow_factory : str or sequence of str, optional
        Passed to ``load_model``: the backbone factories (``"pkg.mod:fn"``) you allow it to import.
    overwrite : bool, default False
        Replace existing output files (otherwise nothing is done when any exists).
    overlay_max_side : int, default 4096
        Longest side of the overlay PNGs (larger scans are shrunk).
    on_scan : callable, optional
        Called with each :class:`ScanOutcome` as soon as it is done (the CLI prints it).

    Returns
    -------
    InspectionReport

    Raises
    ------
    ValueError
        Before any scan is inspected: two scans with the same name, an explicit ``size`` other
        than the model's patch size, no threshold; FileExistsError when an output exists and
        ``overwrite`` is False. Per-scan problems are reported in the result instead.
    """
    from ispad_core.io import list_images

    if isinstance(scans, (str, os.PathLike)):
        scans = [scans]
    files: list[Path] = []
    for s in scans:
        p = Path(s)
        files += list_images(p, name="scans") if p.is_dir() else [p]
    if not files:
        raise InputValueError("scans: expected at least one scan file, got none")
    names = [f.stem for f in files]
    seen: dict[str, Path] = {}
    for f, n in zip(files, names):
        if n in seen:
            raise InputValueError(f"scans: {seen[n]} and {f} would both write {n}.json; rename one of them")
        seen[n] = f
    if engine is not None:
        check_choice(engine, "engine", ("torch", "onnxruntime"))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    net, meta, model_path, engine = _load_model(model, engine=engine, device=device, allow_factory=allow_factory)
    model_name = str(model_path) if model_path is not None else "the model"
    patch = meta.get("patch_size")
    if size is None:
        if patch is None:
            raise InputValueError(f"size: {model_name} records no patch_size; pass size=")
        size = patch
    size = check_int(size, "size", minimum=1)
    if patch is not None and int(patch) != size:
        raise InputValueError(
            f"size: {model_name} was trained on {patch} x {patch} patches, but windows of {size} x {size} were asked for"
        )
    if threshold is None:
        threshold = meta.get("threshold")
        if threshold is None:
            raise InputValueError(f"threshold: {model_name} records no threshold; pass threshold=")
    threshold = check_float(threshold, "threshold", minimum=0.0, maximum=1.0)
    pre = meta.get("preprocess")
    params = Preprocess(**pre) if isinstance(pre, Mapping) else resolve_preprocess(pre if pre is not None else "lsm2")
    stride = default_stride(size) if stride is None else check_int(stride, "stride", minimum=1)
    model_info = _model_info(net, meta, model_path, engine)
    model_info["threshold_used"] = threshold

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.csv"
    for n in names:  # refuse before any work rather than after an hour of inspection
        check_output_path(out / f"{n}.json", "out", overwrite=overwrite)
        check_output_path(out / f"{n}_overlay.png", "out", overwrite=overwrite)
    check_output_path(summary_path, "out", overwrite=overwrite)

    outcomes = []
    rows = []
    for f, name in zip(files, names):
        t0 = time.perf_counter()
        hottest = (None, None)
        try:
            image, msg = _read_scan(f)
            if image is None:
                raise InputValueError(msg if str(f) in msg else f"{f}: {msg}")
            t_read = time.perf_counter() - t0
            H, W = image.shape[:2]
            if H < size or W < size:
                raise InputValueError(f"{f}: the scan is {H} x {W} px, smaller than the model's {size} x {size} window")
            roi, roi_source = _roi_for(rois, name, f)
            if roi is not None and roi.shape != (H, W):
                raise InputValueError(f"{f}: the scan is {H} x {W} px but its ROI {roi_source} is {roi.shape[0]} x {roi.shape[1]}")
            try:
                result = inspect(
                    net, image, threshold=threshold, size=size, stride=stride, preprocess=params, roi=roi,
                    min_roi_fraction=min_roi_fraction, batch_size=batch_size, device=device, precision=precision,
                    channels_last=channels_last, show_progress=show_progress,
                )
            except ValueError as exc:
                raise InputValueError(f"{f}: {exc}") from None
            t1 = time.perf_counter()
            picture = overlay(image, result, roi=roi, max_side=overlay_max_side, title=f.name)
            t2 = time.perf_counter()
            payload = {"format": JSON_FORMAT, "format_version": JSON_FORMAT_VERSION, "library_version": __version__,
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            body = result.to_dict()
            payload["scan"] = {"path": str(f), "name": name, **body.pop("scan"),
                               "channels": 1 if image.ndim == 2 else int(image.shape[2])}
            payload["roi"] = roi_source
            payload["min_roi_fraction"] = min_roi_fraction
            payload["model"] = model_info
            payload.update(body)
            payload["timings"] = {"read_s": round(t_read, 6), **payload["timings"], "overlay_s": round(t2 - t1, 6)}
            payload["overlay"] = f"{name}_overlay.png"
            json_path, png_path = out / f"{name}.json", out / f"{name}_overlay.png"
            _write_png(png_path, picture, overwrite)
            payload["timings"]["write_s"] = round(time.perf_counter() - t2, 6)
            _write_json(json_path, payload, overwrite)
            top = int(np.argmax(result.scores))
            hottest = (int(result.origins[top, 0]), int(result.origins[top, 1]))
            outcome = ScanOutcome(
                name=name, path=f, ok=True, defective=result.defective, max_score=result.max_score,
                flagged=int(result.flagged.size), windows=int(result.scores.size), json=json_path, overlay=png_path,
                seconds=time.perf_counter() - t0, colour=result.colour,
            )
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            msg = str(exc)
            if str(f) not in msg:
                msg = f"{f}: {msg}"
            outcome = ScanOutcome(name=name, path=f, ok=False, seconds=time.perf_counter() - t0, error=msg)
        outcomes.append(outcome)
        rows.append({
            "name": name, "path": str(f), "status": "ok" if outcome.ok else "error",
            "decision": "" if not outcome.ok else ("defective" if outcome.defective else "good"),
            "max_score": "" if not outcome.ok else f"{outcome.max_score:.6f}", "threshold": f"{threshold:.6f}",
            "flagged": "" if not outcome.ok else outcome.flagged, "windows": "" if not outcome.ok else outcome.windows,
            "hottest_row": "" if hottest[0] is None else hottest[0], "hottest_col": "" if hottest[1] is None else hottest[1],
            "seconds": f"{outcome.seconds:.3f}", "json": "" if outcome.json is None else outcome.json.name,
            "overlay": "" if outcome.overlay is None else outcome.overlay.name, "error": outcome.error or "",
        })
        if on_scan is not None:
            on_scan(outcome)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_output(summary_path, name="out", overwrite=overwrite) as tmp:
        tmp.write_text(text.getvalue())
    return InspectionReport(scans=tuple(outcomes), out=out, summary=summary_path, model=model_info)
