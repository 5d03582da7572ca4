"""A per-design threshold from fault-free sheets of that design, stored in the model file.

The threshold a model file carries was chosen on the validation prints of the designs it was
trained on; on a new design the false-alarm rate it gives can be anything. :func:`calibrate`
scores every window of fault-free scans of the new design on the model's own grid (the windows
that ``inspect`` scores, ROIs honoured), takes the threshold with
:func:`ispad_core.metrics.fpr_threshold` at a stated false-alarm rate per window, and keeps it in
the model file under ``calibrations[design]`` together with a compact sample of the scores for the
drift test of ``inspect``. ``docs/calibration.md`` has the method and its measurements.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.files import check_output_path
from ispad_core._shared.validation import check_float
from ispad_core.metrics import (
    UnsupportedRateError,
    UnsupportedRateWarning,
    calibration_sample,
    design_effect,
    fpr_threshold,
    min_calibration_windows,
)
from ispad_core.nn.inference.files import _job, _read_scan, _roi_for
from ispad_core.nn.inference.scoring import InferenceSettings, is_onnx, predict_windows, resolve_precision

__all__ = ["Calibration", "UnsupportedRateError", "UnsupportedRateWarning", "calibrate"]

_THRESHOLD_MAX = float(np.nextafter(1.0, 2.0))
_PATCHES_PER_STRIP = 256
_METHOD_WORDS = {"order": "conformal order statistic", "quantile": "empirical quantile", "gpd": "generalized Pareto tail"}


@dataclass(frozen=True)
class Calibration:
    """A design's threshold, calibrated on fault-free windows (the result of :func:`calibrate`).

    Attributes
    ----------
    design : str
    threshold : float
        Defective when ``P(defective) >= threshold``.
    target_fpr : float
        The false-alarm rate per fault-free window it was calibrated for, R.
    method : str
        ``"order"``, ``"quantile"`` or ``"gpd"`` (:func:`ispad_core.metrics.fpr_threshold`).
    n_windows : int
        Fault-free windows scored.
    n_scans : int
        Scans (images larger than a window) they came from; patches of the window size count as
        windows only.
    windows_per_scan : float or None
        Mean windows per scan (None without scans).
    expected_false_alarms_per_scan : float or None
        ``R * windows_per_scan``: the false alarms a fault-free scan of this design gives on average.
    quantiles : dict of str to float
        Of the window scores: ``"0.5"``, ``"0.9"``, ``"0.99"``, ``"max"``.
    smallest_supported_fpr : float
        ``1 / (n_windows + 1)``.
    supported : bool
        Whether the sample supports ``target_fpr`` (False only with ``allow_unsupported``).
    fpr_upper_bound_95 : float or None
        The rate this calibration stays under with 95 % confidence (order statistic only).
    created : str
        ISO 8601 UTC time.
    sample : numpy.ndarray of float32, shape (m,)
        :func:`ispad_core.metrics.calibration_sample` of the scores (m <= 2048), for the drift test.
    design_effect : float
        :func:`ispad_core.metrics.design_effect` of the scans' scores (1.0 with fewer than two
        scans), for the drift test.
    stride : int or None
        The stride the windows were cut with (inspect with the same).
    precision : str or None
        The precision the windows were scored in (``"fp32"``, ``"bf16"``, ``"fp16"``).
    min_roi_fraction : float or None
    path : pathlib.Path or None
        The model file it was written to (None when not written).
    extra : dict
        Further keys of a model file's entry, kept as they are.
    """

    design: str
    threshold: float
    target_fpr: float
    method: str
    n_windows: int
    n_scans: int
    windows_per_scan: float | None
    expected_false_alarms_per_scan: float | None
    quantiles: dict
    smallest_supported_fpr: float
    supported: bool
    fpr_upper_bound_95: float | None
    created: str
    sample: np.ndarray = field(repr=False, compare=False)
    design_effect: float = 1.0
    stride: int | None = None
    precision: str | None = None
    min_roi_fraction: float | None = None
    path: Path | None = None
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    def to_entry(self) -> dict:
        """The model file's ``calibrations[design]`` entry (JSON values)."""
        entry = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("design", "path", "extra")}
        entry["quantiles"] = dict(self.quantiles)
        entry["sample"] = [float(v) for v in self.sample]
        entry.update(self.extra)
        return entry

    @classmethod
    def from_entry(cls, design: str, entry: Mapping[str, Any], path: Path | None = None) -> Calibration:
        """The calibration of ``design`` from a model file's (checked) entry."""
        names = {f.name for f in dataclasses.fields(cls)} - {"design", "path", "extra", "sample"}
        known = {k: entry.get(k) for k in names}
        extra = {k: v for k, v in entry.items() if k not in names and k != "sample"}
        return cls(design=design, sample=np.asarray(entry["sample"], dtype=np.float32), path=path, extra=extra, **known)

    @property
    def effective_windows(self) -> float:
        """How many independent windows the sample is worth: the scans' windows divided by the
        :attr:`design_effect` (windows of one scan move together), the patches counted as they are
        (``n_windows`` with fewer than two scans, where the scan-to-scan variation is unknown)."""
        if self.n_scans < 2 or self.windows_per_scan is None:
            return float(self.n_windows)
        in_scans = self.n_scans * self.windows_per_scan
        return float(self.n_windows - in_scans + in_scans / max(1.0, self.design_effect))

    @property
    def sheets_support_target(self) -> bool:
        """Whether :attr:`effective_windows` support ``target_fpr`` (at least
        :func:`ispad_core.metrics.min_calibration_windows`): if not, the rate on new scans of this
        design can be several times the target, and more scans are needed."""
        return self.effective_windows >= min_calibration_windows(self.target_fpr)

    @property
    def scans_needed(self) -> int | None:
        """About how many scans like these would support ``target_fpr`` with this design effect
        (None without scans)."""
        if self.n_scans < 2 or not self.windows_per_scan:
            return None
        per_scan = self.windows_per_scan / max(1.0, self.design_effect)
        return max(self.n_scans, math.ceil(min_calibration_windows(self.target_fpr) / per_scan))

    def __str__(self) -> str:
        where = f" in {self.path}" if self.path is not None else ""
        scans = f"{self.n_windows} fault-free windows from {self.n_scans} scan{'s' if self.n_scans != 1 else ''}"
        lines = [
            f"calibration of design {self.design!r}{where}: {scans}",
            f"  target false-alarm rate per window R = {self.target_fpr:g} ({_METHOD_WORDS.get(self.method, self.method)})",
            f"  threshold: defective when P(defective) >= {self.threshold:.6g}",
            f"  smallest rate {self.n_windows} windows support: 1/(n+1) = {self.smallest_supported_fpr:.3g}"
            + ("" if self.supported else "  -- R IS BELOW IT: the rate is not guaranteed"),
        ]
        if self.fpr_upper_bound_95 is not None and self.sheets_support_target:
            lines.append(f"  this calibration's rate stays under {self.fpr_upper_bound_95:.3g} with 95 % confidence")
        if self.n_scans >= 2:
            lines.append(f"  scan-to-scan variation: design effect {self.design_effect:.1f}, so the {self.n_windows} "
                         f"windows count as about {self.effective_windows:.0f} independent ones")
            if not self.sheets_support_target:
                lines.append(f"  -- TOO FEW SCANS FOR R: on new scans of this design the rate can be several times R; "
                             f"calibrate on about {self.scans_needed} scans like these")
        if self.windows_per_scan is not None:
            lines.append(f"  expected false alarms per fault-free scan: {self.expected_false_alarms_per_scan:.3g} "
                         f"({self.windows_per_scan:.0f} windows per scan)")
        return "\n".join(lines)


def _good_items(good: Any) -> list[tuple[str, Path | None, np.ndarray | None]]:
    """``(name, path, array)`` of every fault-free image: folders listed, arrays named ``good[i]``."""
    from ispad_core.io import list_images

    if isinstance(good, (str, os.PathLike)):
        good = [good]
    elif isinstance(good, np.ndarray):
        good = [good] if good.ndim in (2, 3) and good.dtype == np.uint8 and not (good.ndim == 3 and good.shape[2] > 4) else list(good)
    if not isinstance(good, Sequence) or isinstance(good, (str, bytes)):
        raise InputTypeError(f"good: expected a folder, a list of image paths or a list of uint8 arrays, got {type(good).__name__}")
    items: list = []
    for i, g in enumerate(good):
        if isinstance(g, (str, os.PathLike)):
            p = Path(g)
            items += [(f.stem, f, None) for f in (list_images(p, name="good") if p.is_dir() else [p])]
        elif isinstance(g, np.ndarray):
            items.append((f"good[{i}]", None, g))
        else:
            raise InputTypeError(f"good[{i}]: expected an image path or a uint8 array, got {type(g).__name__}")
    if not items:
        raise InputValueError("good: expected at least one fault-free image, got none")
    return items


def _roi(rois: Any, k: int, name: str, path: Path | None) -> np.ndarray | None:
    if rois is None:
        return None
    if isinstance(rois, Sequence) and not isinstance(rois, (str, bytes)):
        value = rois[k] if k < len(rois) else None
        if isinstance(value, (str, os.PathLike)):
            return _roi_for({name: value}, name, path or Path(name))[0]
        return None if value is None else np.asarray(value)
    return _roi_for(rois, name, path or Path(name))[0]


def _score_all(items: list, rois: Any, job: Any, min_roi_fraction: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """Scores of every window (scans on the grid, patches as they are) and the scores of each scan."""
    run = dataclasses.replace(job.run, engine=None)
    parts, per_scan, patches = [], [], []
    for k, (name, path, array) in enumerate(items):
        where = str(path) if path is not None else name
        if array is None:
            array, msg = _read_scan(path)
            if array is None:
                raise InputValueError(msg if str(path) in msg else f"good: {path}: {msg}")
        roi = _roi(rois, k, name, path)
        if array.ndim < 2:
            raise InputValueError(f"good: {where}: expected an image (H, W) or (H, W, 3), got shape {array.shape}")
        H, W = array.shape[:2]
        if (H, W) == (job.size, job.size):
            patches.append((array, roi, where))
            continue
        if H < job.size or W < job.size:
            raise InputValueError(f"good: {where} is {H} x {W} px, smaller than the model's {job.size} x {job.size} window")
        try:
            s, _ = predict_windows(job.net, array, size=job.size, stride=job.stride, preprocess=job.preprocess, roi=roi,
                                   min_roi_fraction=min_roi_fraction, settings=run)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"good: {where}: {exc}") from None
        parts.append(s)
        per_scan.append(s)
    for start in range(0, len(patches), _PATCHES_PER_STRIP):
        parts.append(_score_patches(patches[start:start + _PATCHES_PER_STRIP], job, run, min_roi_fraction))
    return np.concatenate(parts), per_scan


def _score_patches(chunk: list, job: Any, run: InferenceSettings, min_roi_fraction: Any) -> np.ndarray:
    """Patches of the window size side by side in one strip, scored with stride = size: each its own window."""
    shapes = {a.shape for a, _, _ in chunk}
    if len(shapes) > 1:
        raise InputValueError(f"good: patches of the window size mix grey and colour images ({sorted(shapes)}); use one kind")
    strip = np.concatenate([np.asarray(a) for a, _, _ in chunk], axis=1)
    roi = None
    if any(r is not None for _, r, _ in chunk):
        roi = np.concatenate([np.ones((job.size, job.size), bool) if r is None else np.asarray(r) != 0 for _, r, _ in chunk], axis=1)
    try:
        s, _ = predict_windows(job.net, strip, size=job.size, stride=job.size, preprocess=job.preprocess, roi=roi,
                               min_roi_fraction=min_roi_fraction, settings=run)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"good: patches {chunk[0][2]} .. {chunk[-1][2]}: {exc}") from None
    return s


def calibrate(
    model: Any,
    good: Any,
    *,
    design: str,
    target_fpr: float,
    rois: Any = None,
    stride: int | None = None,
    method: str = "order",
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    verbose: bool | None = True,
    allow_unsupported: bool = False,
    **options: Any,
) -> Calibration:
    """Calibrate a model's threshold for one design on fault-free images of it, and store it.

    Every window that ``inspect`` would score on the fault-free scans in ``good`` (the model's
    patch size, the model's preprocessing, the grid of
    :func:`~ispad_core.nn.inference.predict_windows` with ``stride``, the ROI honoured as
    ``inspect`` does) is scored; an image of exactly the patch size is one window as it is. The
    threshold is :func:`ispad_core.metrics.fpr_threshold` of all the scores at ``target_fpr``: with
    ``method="order"`` a new fault-free window of this design is flagged (``score >= threshold``)
    with probability at most ``target_fpr``, provided the new windows are like the calibration
    windows (exchangeable). With ``out`` the model file is written there with the calibration as
    ``calibrations[design]`` (one per design; an older one of the same design is replaced).

    Parameters
    ----------
    model : path or (model, metadata)
        A model file (``.pt``), or a loaded model with its metadata dict.
    good : folder, path, uint8 array or a list of them
        Fault-free images of the design: scans (larger than a window) or patches of the window size
        (an ``(N, S, S)`` uint8 stack is N patches).
    design : str
        The design's name (non-empty), the key ``inspect --design`` uses.
    target_fpr : float in (0, 1)
        The false-alarm rate per window, R.
    rois : folder, mapping or sequence, optional
        Regions of interest: a folder with one image per scan named like it, a mapping of scan
        name (file stem, or ``good[i]`` for an array) to an array or file, or a sequence aligned
        with ``good`` (None for no ROI).
    stride : int, optional
        Step between windows (default 5/8 of the patch size, as ``inspect``). Inspect with the
        same stride.
    method : {"order", "quantile", "gpd"}, default "order"
    out : path, optional
        The model file to write. It may be the input model file only with ``overwrite``. With a
        (model, metadata) pair the model is saved there with ``save_model``. None: nothing written.
    overwrite : bool, default False
    verbose : bool or None, default True
        A progress bar over windows (None: only on a terminal).
    allow_unsupported : bool, default False
        As in :func:`ispad_core.metrics.fpr_threshold`: warn instead of raising when the windows
        are too few for ``target_fpr``.
    **options
        ``min_roi_fraction`` (as in ``inspect``), ``allow_factory`` (as in ``load_model``),
        ``settings`` (:class:`~ispad_core.nn.inference.InferenceSettings`) and its fields
        (``batch_size``, ``device``, ``precision``, ...). Calibrate with the precision you inspect
        with.

    Returns
    -------
    Calibration

    Raises
    ------
    ValueError
        For a ``target_fpr`` the windows do not support (the message says how many windows it
        needs), an unreadable or too small image (named), a bad ROI, or bad arguments.
    FileExistsError
        If ``out`` exists (or is the input) and ``overwrite`` is False; checked before scoring.

    Examples
    --------
    >>> import torch
    >>> from ispad_core.nn import Preprocess, calibrate
    >>> from ispad_core.samples import screen_print
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten())
    >>> meta = {"patch_size": 32, "preprocess": Preprocess().to_dict(), "threshold": 0.5}
    >>> scans = [screen_print((160, 160), rng=0)[r:r + 80] for r in (0, 80)]  # two sheets of one design
    >>> cal = calibrate((net, meta), scans, design="demo", target_fpr=0.05, verbose=False, precision="fp32")
    >>> cal.n_windows, cal.n_scans, cal.windows_per_scan, round(cal.smallest_supported_fpr, 4)
    (64, 2, 32.0, 0.0154)
    """
    min_roi_fraction = options.pop("min_roi_fraction", None)
    allow_factory = options.pop("allow_factory", None)
    settings = options.pop("settings", None)
    options.setdefault("verbose", verbose)
    run = InferenceSettings.build(settings, options, "calibrate")
    if not isinstance(design, str):
        raise InputTypeError(f"design: expected a str, got {type(design).__name__}")
    if not design.strip():
        raise InputValueError(f"design: expected a non-empty name, got {design!r}")
    rate = check_float(target_fpr, "target_fpr", minimum=0.0, maximum=1.0, min_inclusive=False, max_inclusive=False)
    if out is not None:
        check_output_path(out, "out", overwrite=overwrite)
        if isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".onnx":
            raise InputValueError(f"model: {model} is an ONNX file; calibrate the model file (.pt) and export it again")
    items = _good_items(good)
    job = _job(model, run, size=None, stride=stride, threshold=None, allow_factory=allow_factory)
    scores, per_scan = _score_all(items, rois, job, min_roi_fraction)
    t = fpr_threshold(scores, rate, method=method, allow_unsupported=allow_unsupported)
    wps = float(np.mean([s.size for s in per_scan])) if per_scan else None
    # scan-to-scan variation for the drift test; patches are taken as independent windows
    deff = design_effect(per_scan) if len(per_scan) >= 2 else 1.0
    cal = Calibration(
        design=design, threshold=min(float(t.threshold), _THRESHOLD_MAX), target_fpr=rate, method=t.method,
        n_windows=int(scores.size), n_scans=len(per_scan), windows_per_scan=wps,
        expected_false_alarms_per_scan=None if wps is None else rate * wps, quantiles=dict(t.quantiles),
        smallest_supported_fpr=t.smallest_supported_fpr, supported=t.supported,
        fpr_upper_bound_95=t.fpr_upper_bound(0.95), created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        sample=calibration_sample(scores), design_effect=deff, stride=job.stride, precision=_precision(job.net, run),
        min_roi_fraction=min_roi_fraction,
    )
    if out is None:
        return cal
    return dataclasses.replace(cal, path=_store(model, job, cal, out, overwrite))


def _precision(net: Any, run: InferenceSettings) -> str:
    """The precision ``"auto"`` resolves to for this model, as inspect resolves it."""
    if is_onnx(net):
        return "fp32"
    import torch

    dev = run.device if run.device is not None else next((p.device for p in net.parameters()), torch.device("cpu"))
    return resolve_precision(run.precision, run.channels_last, dev)[0]


def _store(model: Any, job: Any, cal: Calibration, out: Any, overwrite: bool) -> Path:
    """Write the model file with ``cal`` as its calibration of ``cal.design``."""
    from ispad_core.nn.modelfile import save_model, write_calibration

    path = job.model_info.get("path")
    if path is not None:
        return write_calibration(path, cal.design, cal.to_entry(), out=out, overwrite=overwrite)
    net, meta = model
    meta = dict(meta)
    meta["calibrations"] = {**dict(meta.get("calibrations") or {}), cal.design: cal.to_entry()}
    return save_model(out, net, metadata=meta, overwrite=overwrite)
