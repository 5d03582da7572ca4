"""Sliding-window inspection of whole scans: window scores, a heat map, a verdict.

The last step of the paper's system (sections 3.2 and 5.2.1): a new scan is cut into the test
grid of :func:`ispad_core.tiling.sliding_windows` (windows of the model's patch size, stride 5/8
of it -- 160 for 256 -- and the last row and column moved back to touch the border), each window
gets the paper's preprocessing and the classifier's softmax probability of "defective", and the
probabilities are stitched into a heat map (maximum over overlapping windows). The scan is
defective when any window's probability reaches the threshold.

- :func:`predict_windows` -- ``(scores, origins)`` of every inspected window.
- :func:`inspect` -- an :class:`Inspection`: scores, heat map, verdict, flagged windows, timings.
- :class:`InferenceSettings` -- how windows are scored (batch, device, precision, memory
  format, engine, progress), shared by every function of :mod:`ispad_core.nn.inference`.
- :func:`ispad_core.nn.inference.inspect_files` (:mod:`~ispad_core.nn.inference.files`) -- a
  model file and scan files in, ``<name>.json``, ``<name>_overlay.png`` and ``summary.csv`` out;
  one bad scan does not stop the others.
- :func:`ispad_core.nn.inference.overlay` (:mod:`~ispad_core.nn.inference.overlay`) -- the scan
  with the heat map blended in colour and flagged windows outlined.

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

import dataclasses
import functools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.progress import progress
from ispad_core._shared.validation import check_array, check_choice, check_float, check_int, take_renamed
from ispad_core.nn.backbones import in_channels
from ispad_core.nn.preprocessing import Preprocess, preprocess_batch, resolve_preprocess
from ispad_core.nn.runtime import cpu_has_bf16
from ispad_core.tiling import sliding_windows, stitch

__all__ = [
    "LUMA_RULE",
    "InferenceSettings",
    "Inspection",
    "default_stride",
    "inspect",
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

THRESHOLD_MAX = float(np.nextafter(1.0, 2.0))
"""The largest threshold: a calibrated order statistic of 1.0, nudged up (flags no score)."""


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
            precision = "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise InputValueError(f"precision: fp16 autocast needs a CUDA device, got {device}; use 'bf16' or 'fp32'")
    return precision, channels_last


def is_onnx(model: Any) -> bool:
    """Whether ``model`` is an onnxruntime model of :mod:`ispad_core.nn.export`."""
    return getattr(model, "ispad_engine", None) == "onnxruntime"


def check_model(model: Any) -> None:
    """Refuse anything but a torch module or an onnxruntime model of :mod:`ispad_core.nn.export`."""
    if not (isinstance(model, nn.Module) or is_onnx(model)):
        raise InputTypeError(
            f"model: expected a torch.nn.Module or an onnxruntime model of ispad_core.nn.export, got {type(model).__name__}"
        )


def check_stride(stride: Any, size: int, window: str) -> int:
    """A stride of at most the window ``size`` (named ``window`` in the message), so that windows leave no gaps."""
    stride = check_int(stride, "stride", minimum=1)
    if stride > size:
        raise InputValueError(f"stride: expected an int <= {window} ({size}) so that windows leave no gaps, got {stride}")
    return stride


def in_channels_last(model: nn.Module) -> bool:
    """Whether every 4-D weight of ``model`` is stored channels-last (as ``model.to(memory_format=
    torch.channels_last)`` leaves it)."""
    return all(p.ndim != 4 or p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters())


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
class InferenceSettings:
    """How the windows of a scan are scored: shared by :func:`predict_windows`, :func:`inspect`
    and :func:`~ispad_core.nn.inference.inspect_files` (as ``settings=``, or as keywords).

    Attributes
    ----------
    batch_size : int, default 128
        Windows per forward pass (and the most windows held in memory at once).
    device : torch.device or str, optional
        Where to run; default the device of the model's parameters.
    precision : {"auto", "fp32", "bf16", "fp16"}, default "auto"
        fp32, or autocast to bf16/fp16; ``"auto"`` as :func:`resolve_precision`.
    channels_last : bool or "auto", default "auto"
        Run in ``torch.channels_last`` memory format; ``"auto"`` as :func:`resolve_precision`.
    engine : {"torch", "onnxruntime"}, optional
        For model files (:func:`~ispad_core.nn.inference.inspect_files`): default onnxruntime for
        an ``.onnx`` file, torch otherwise; a loaded model runs on its own engine.
    verbose : bool, optional
        A progress bar over windows; None shows it only when stderr is a terminal
        (``show_progress``, its old name, still works and warns).
    """

    batch_size: int = 128
    device: Any = None
    precision: str = "auto"
    channels_last: Any = "auto"
    engine: str | None = None
    verbose: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_size", check_int(self.batch_size, "batch_size", minimum=1))
        check_choice(self.precision, "precision", PRECISIONS)
        if self.engine is not None:
            check_choice(self.engine, "engine", ("torch", "onnxruntime"))

    @classmethod
    def build(cls, settings: InferenceSettings | None, options: dict, caller: str) -> InferenceSettings:
        """``settings`` (default: all defaults) with the keyword ``options`` of ``caller`` on top."""
        take_renamed(options, caller, "show_progress", "verbose")
        if settings is not None and not isinstance(settings, InferenceSettings):
            raise InputTypeError(f"settings: expected an InferenceSettings, got {type(settings).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        for key in options:
            if key not in fields:
                raise InputTypeError(f"{caller}() got an unexpected keyword argument {key!r}")
        base = settings if settings is not None else cls()
        return dataclasses.replace(base, **options) if options else base


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


def _check_scan(image: Any) -> np.ndarray:
    image = check_array(image, "image", ndim=(2, 3))
    if image.dtype != np.uint8:
        raise InputTypeError(f"image: expected dtype uint8 (an 8-bit scan), got {image.dtype}")
    if image.ndim == 3 and image.shape[2] != 3:
        raise InputValueError(f"image: expected a grey (H, W) or RGB (H, W, 3) scan, got shape {image.shape}")
    return image


def _runtime(model: Any, run: InferenceSettings) -> tuple[torch.device, str, bool]:
    """``(device, precision, channels_last)`` the model runs with."""
    if is_onnx(model):
        if run.device is not None and torch.device(run.device).type != "cpu":
            raise InputValueError(f"device: the onnxruntime engine runs on the CPU here, got {run.device}")
        if run.precision not in ("auto", "fp32"):
            raise InputValueError(f"precision: the onnxruntime engine runs the exported fp32 graph, got {run.precision!r}")
        return torch.device("cpu"), "fp32", False
    if run.device is None:
        dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    else:
        dev = torch.device(run.device)
    prec, cl = resolve_precision(run.precision, run.channels_last, dev)
    return dev, prec, cl


def _colour_rule(model: Any, image: np.ndarray) -> str | None:
    """How the scan's colour is converted to the model's channels (None: as it is)."""
    channels = in_channels(model)
    if channels == 1 and image.ndim == 3:
        return LUMA_RULE
    if channels == 3 and image.ndim == 2:
        return GREY_TO_RGB_RULE
    if channels not in (1, 3):
        raise InputValueError(f"model: expected 1 or 3 input channels, got {channels}")
    return None


def _windows_in_roi(roi: Any, min_roi_fraction: float | None, origins: np.ndarray, grid: tuple, shape: tuple, size: int):
    """Indices of the grid windows to score: all, or those with enough pixels in the ROI."""
    H, W = shape
    if roi is None:
        return np.arange(origins.shape[0])
    roi = check_array(roi, "roi", ndim=2, kinds="biu")
    if roi.shape != (H, W):
        raise InputValueError(f"roi: expected shape {(H, W)} like the scan, got {roi.shape}")
    need = 1
    if min_roi_fraction is not None:
        f = check_float(min_roi_fraction, "min_roi_fraction", minimum=0.0, maximum=1.0, min_inclusive=False)
        need = max(1, math.ceil(f * size * size - 1e-9))
    cols_n = grid[1]
    counts = _window_roi_counts(roi != 0, origins[::cols_n, 0], origins[:cols_n, 1], size)
    keep = np.flatnonzero(counts.ravel() >= need)
    if keep.size == 0:
        what = "any pixel" if min_roi_fraction is None else f"at least {min_roi_fraction:.0%} of its pixels"
        raise InputValueError(
            f"roi: none of the {origins.shape[0]} windows of {size} x {size} has {what} inside the region "
            f"of interest ({int(np.count_nonzero(roi))} ROI pixels in a scan of {H} x {W})"
        )
    return keep


def _score_windows(
    model: Any,
    image: Any,
    *,
    size: int,
    stride: int | None,
    preprocess: Preprocess | str | None,
    roi: Any,
    min_roi_fraction: float | None,
    run: InferenceSettings,
) -> _Scored:
    check_model(model)
    image = _check_scan(image)
    size = check_int(size, "size", minimum=1)
    stride = default_stride(size) if stride is None else check_stride(stride, size, "the window size")
    params = resolve_preprocess(preprocess)
    H, W = image.shape[:2]
    if H < size or W < size:
        raise InputValueError(f"image: the scan is {H} x {W} px, smaller than the {size} x {size} window")
    dev, prec, cl = _runtime(model, run)
    colour = _colour_rule(model, image)
    tiles, origins = sliding_windows(image, size=size, stride=stride)
    keep = _windows_in_roi(roi, min_roi_fraction, origins, tiles.grid, (H, W), size)
    kept_origins = origins[keep]
    scores, timings = _Forward(model, tiles, keep, colour, params, dev, prec, cl).run(run.batch_size, run.verbose)
    bad = ~np.isfinite(scores)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise RuntimeError(
            f"model: non-finite scores for {int(bad.sum())} windows, the first at {tuple(int(v) for v in kept_origins[k])}"
        )
    return _Scored(scores, kept_origins, len(tiles), colour, prec, bool(cl), str(dev), timings)


class _Forward:
    """The windows ``keep`` of ``tiles`` through the model, a batch at a time.

    Batch k + 1 is read and preprocessed in a second thread while the network runs batch k (torch
    releases the GIL), so the pipeline adds little beyond the forward pass; two batches are in
    memory at most.
    """

    def __init__(self, model, tiles, keep, colour, params, dev, prec, cl) -> None:
        self.model, self.tiles, self.keep, self.colour, self.params = model, tiles, keep, colour, params
        self.dev, self.cl, self.onnx = dev, cl, is_onnx(model)
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[prec]

    def prepare(self, start: int, batch_size: int):
        """Runs in the prefetch thread: copy this batch's windows only, convert, preprocess."""
        with torch.inference_mode():
            t0 = time.perf_counter()
            batch = self.tiles[self.keep[start : start + batch_size]]
            if self.colour == LUMA_RULE:
                batch = rgb_to_grey(batch)
            elif self.colour == GREY_TO_RGB_RULE:
                batch = np.repeat(batch[..., None], 3, axis=-1)
            t1 = time.perf_counter()
            x = preprocess_batch(torch.from_numpy(batch), self.params, device=self.dev, channels_last=self.cl)
            return x, t1 - t0, time.perf_counter() - t1

    def forward(self, x: torch.Tensor) -> np.ndarray:
        if self.onnx:
            logits = self.model(x)
        else:
            with torch.autocast(self.dev.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                logits = self.model(x)
        logits = logits.float()
        if logits.ndim != 2 or logits.shape[0] != x.shape[0] or logits.shape[1] < 2:
            raise InputValueError(
                f"model: expected (B, 2) logits of a binary classifier for a batch of {x.shape[0]}, "
                f"got shape {tuple(logits.shape)}"
            )
        return torch.softmax(logits, dim=1)[:, 1].double().cpu().numpy()

    def run(self, batch_size: int, verbose: bool | None) -> tuple[np.ndarray, dict]:
        scores = np.empty(self.keep.size, dtype=np.float64)
        timings = {"gather_s": 0.0, "preprocess_s": 0.0, "wait_s": 0.0, "forward_s": 0.0}
        model, was_training, convert = self.model, None, False
        if not self.onnx:
            was_training = model.training
            model.eval()
            model.to(self.dev)
            # a copy of every weight each way: skipped when the model is in channels-last already
            # (inspect_files converts its model once for all scans)
            convert = self.cl and not in_channels_last(model)
            if convert:
                model.to(memory_format=torch.channels_last)
        starts = list(range(0, self.keep.size, batch_size))
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ispad-windows")
        pending = None
        try:
            with torch.inference_mode(), progress(
                total=int(self.keep.size), desc="windows", unit="win", disable=verbose if verbose is None else not verbose
            ) as bar:
                pending = pool.submit(self.prepare, starts[0], batch_size)
                for k, start in enumerate(starts):
                    t0 = time.perf_counter()
                    x, gather_s, preprocess_s = pending.result()
                    pending = pool.submit(self.prepare, starts[k + 1], batch_size) if k + 1 < len(starts) else None
                    t1 = time.perf_counter()
                    p = self.forward(x)
                    scores[start : start + p.size] = p
                    timings["gather_s"] += gather_s
                    timings["preprocess_s"] += preprocess_s
                    timings["wait_s"] += t1 - t0
                    timings["forward_s"] += time.perf_counter() - t1
                    bar.update(p.size)
        finally:
            if pending is not None:
                pending.cancel()
            pool.shutdown(wait=True)
            if not self.onnx:
                model.train(was_training)
                if convert:
                    model.to(memory_format=torch.contiguous_format)
        return scores, timings


# --------------------------------------------------------------------------- window scores


def predict_windows(
    model: Any,
    image: Any,
    *,
    size: int,
    stride: int | None = None,
    preprocess: Preprocess | str | None = "lsm2",
    roi: Any = None,
    min_roi_fraction: float | None = None,
    settings: InferenceSettings | None = None,
    **options: Any,
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
    preprocess : Preprocess, preset name or None, default "lsm2"
        The preprocessing the model was trained with.
    roi : numpy.ndarray of bool or int, shape (H, W), optional
        Region of interest (nonzero inside). A window is scored when at least one of its pixels
        lies in the ROI (so every ROI pixel is inspected), or, with ``min_roi_fraction``, when at
        least that fraction of its ``size * size`` pixels does. The others are skipped.
    min_roi_fraction : float in (0, 1], optional
        See ``roi``; ignored without ``roi``.
    settings : InferenceSettings, optional
        How the windows are scored: ``batch_size`` (default 128), ``device``, ``precision``,
        ``channels_last``, ``verbose``.
    **options
        Fields of :class:`InferenceSettings` as keywords (``batch_size=64``), over ``settings``.

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
    run = InferenceSettings.build(settings, options, "predict_windows")
    s = _score_windows(
        model, image, size=size, stride=stride, preprocess=preprocess, roi=roi, min_roi_fraction=min_roi_fraction, run=run
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
        window covers it (outside the ROI). Read-only. Computed from ``scores`` and ``origins`` on
        first access (it is four times the size of a uint8 scan, and a batch inspection that only
        draws the overlay never needs it whole: see :meth:`heat_at`).
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
        ``total_s``.
    notes : tuple of str
        What a reader of the result should know (colour conversion, skipped windows).
    """

    scores: np.ndarray
    origins: np.ndarray
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

    @functools.cached_property
    def heatmap(self) -> np.ndarray:
        """The ``(H, W)`` float32 heat map (see the class docstring), stitched on first access."""
        threads = torch.get_num_threads()
        heat = stitch(self.scores.astype(np.float32), self.origins, self.shape, reduce="max", size=self.size)
        # Numba's OpenMP layer sets the process's OpenMP thread count that torch shares: put torch's back
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return _readonly(heat)

    def heat_at(self, rows: Any, cols: Any) -> np.ndarray:
        """The heat map at the pixels ``rows x cols`` of the scan, without the whole map.

        ``heat_at(rows, cols)`` equals ``heatmap[np.ix_(rows, cols)]`` exactly, in time and
        memory of the output plus one slice assignment per window (how the overlay samples the
        heat map of a large scan).

        Parameters
        ----------
        rows, cols : array_like of int, shape (h,) and (w,)
            Pixel rows and columns, each non-decreasing and inside the scan.

        Returns
        -------
        numpy.ndarray of float32, shape (h, w)
        """
        scores = self.scores.astype(np.float32)
        index = self.window_at(rows, cols)
        # a trailing 0 for the pixels no inspected window covers (index -1)
        return np.append(scores, np.float32(0.0))[index]

    def window_at(self, rows: Any, cols: Any) -> np.ndarray:
        """Which window gives the heat map its value at the pixels ``rows x cols``.

        ``heat_at(rows, cols)`` is ``scores[window_at(rows, cols)]`` in float32, 0 where the index
        is -1 (no inspected window covers the pixel): of the windows covering a pixel, the one of
        the highest float32 score (among equal scores, the last in grid order). The overlay
        colours a picture by it, with one colour per window instead of one per pixel.

        Parameters
        ----------
        rows, cols : array_like of int, shape (h,) and (w,)
            Pixel rows and columns, each non-decreasing and inside the scan.

        Returns
        -------
        numpy.ndarray of int32, shape (h, w)
            Indices into ``scores`` and ``origins``, or -1.
        """
        rows = check_array(rows, "rows", ndim=1, kinds="iu").astype(np.int64)
        cols = check_array(cols, "cols", ndim=1, kinds="iu").astype(np.int64)
        for name, idx, n in (("rows", rows, self.shape[0]), ("cols", cols, self.shape[1])):
            if idx.size and (idx.min() < 0 or idx.max() >= n or (np.diff(idx) < 0).any()):
                raise InputValueError(f"{name}: expected non-decreasing pixel indices in [0, {n})")
        out = np.full((rows.size, cols.size), -1, dtype=np.int32)
        # the sampled rows (columns) a window covers are one run: [first >= origin, first >= origin + size)
        r0 = np.searchsorted(rows, self.origins[:, 0], side="left")
        r1 = np.searchsorted(rows, self.origins[:, 0] + self.size, side="left")
        c0 = np.searchsorted(cols, self.origins[:, 1], side="left")
        c1 = np.searchsorted(cols, self.origins[:, 1] + self.size, side="left")
        scores = self.scores.astype(np.float32)
        # in ascending score order each window overwrites the lower ones: the maximum
        for k in np.argsort(scores, kind="stable").tolist():
            if r0[k] < r1[k] and c0[k] < c1[k]:
                out[r0[k] : r1[k], c0[k] : c1[k]] = k
        return out

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
    settings: InferenceSettings | None = None,
    **options: Any,
) -> Inspection:
    """Inspect one scan: window scores, a heat map and the verdict.

    :func:`predict_windows` scores the windows; the heat map is
    ``stitch(scores, origins, (H, W), reduce="max", size=size)`` in float32 (the highest score of
    the windows covering each pixel); the scan is defective when any score is ``>= threshold``.

    Parameters
    ----------
    model, image, size, stride, preprocess, roi, min_roi_fraction, settings, **options
        As in :func:`predict_windows`.
    threshold : float in [0, 1]
        Decision threshold on P(defective) (the model file's ``threshold``, or a design's
        calibrated one, which may be :data:`THRESHOLD_MAX`, the float just above 1).

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
    run = InferenceSettings.build(settings, options, "inspect")
    threshold = check_float(threshold, "threshold", minimum=0.0, maximum=THRESHOLD_MAX)
    t0 = time.perf_counter()
    s = _score_windows(
        model, image, size=size, stride=stride, preprocess=preprocess, roi=roi, min_roi_fraction=min_roi_fraction, run=run
    )
    image = np.asarray(image)
    size = int(size)
    stride = default_stride(size) if stride is None else int(stride)
    t2 = time.perf_counter()
    over = np.flatnonzero(s.scores >= threshold)
    flagged = over[np.argsort(-s.scores[over], kind="stable")].astype(np.int64)
    timings = dict(s.timings)
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


# --------------------------------------------------------------------------- scan files

