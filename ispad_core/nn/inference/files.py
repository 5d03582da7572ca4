"""Inspecting scan files with a model file: a JSON report and an overlay per scan, a summary CSV, a run.json.

The threshold comes from one of three sources, named in every output (``threshold_source``):
``validation`` (the model file's threshold, chosen on the validation prints of the designs it was
trained on), ``design NAME (calibrated on N windows at R=...)`` (the model file's calibration of
that design, :func:`ispad_core.nn.calibrate`), or ``user`` (an explicit threshold).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import struct
import time
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:  # python-isal (a dependency): ISA-L's deflate, the same streams as zlib's about 3.5x faster
    from isal import isal_zlib as _deflater
except ImportError:  # pragma: no cover - exercised by a test that hides isal
    _deflater = zlib

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.files import (
    OutOfSpaceError,
    atomic_output,
    check_output_path,
    exclusive_lock,
    remove_stale_temporaries,
)
from ispad_core._shared.validation import check_float, check_int
from ispad_core._shared.version import __version__
from ispad_core._shared.warmup import start_warm_up
from ispad_core.nn.inference.overlay import overlay
from ispad_core.nn.inference.scoring import (
    JSON_FORMAT,
    JSON_FORMAT_VERSION,
    THRESHOLD_MAX,
    InferenceSettings,
    check_model,
    check_stride,
    _runtime,
    default_stride,
    in_channels_last,
    inspect,
    is_onnx,
)
from ispad_core.nn.preprocessing import Preprocess, resolve_preprocess

__all__ = ["INSPECT_LOCK", "RUN_FILE", "SUMMARY_COLUMNS", "InspectionReport", "ScanOutcome", "inspect_files"]

INSPECT_LOCK = ".ispad-inspect.lock"
"""The writer lock that :func:`inspect_files` holds inside its output folder while it runs."""

RUN_FILE = "run.json"
"""The run-level report :func:`inspect_files` writes beside ``summary.csv``."""

_OUTPUT_NAMES = r".+\.json|.+_overlay\.png|summary\.csv"  # what inspect_files writes into its folder (run.json included)


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
        What the JSON files say about the model (path, backbone, patch size, threshold, ...,
        ``threshold_used``, ``threshold_source``, ``design``).
    run : dict
        The run's figures (written to ``out/run.json`` when a design was given): the windows
        inspected, the share at or over the threshold beside the calibrated rate, and ``drift``
        (the drift test of the run's window scores against the design's calibration sample,
        :func:`ispad_core.metrics.score_drift`; None without a design).
    """

    scans: tuple
    out: Path
    summary: Path
    model: dict
    run: dict = field(default_factory=dict)

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
    "hottest_row", "hottest_col", "seconds", "json", "overlay", "error", "threshold_source",
)
"""Columns of ``summary.csv``."""


def _model_info(model: Any, metadata: Mapping, path: Path | None, engine: str) -> dict:
    keys = ("backbone", "backbone_kwargs", "in_channels", "num_classes", "patch_size", "preprocess", "threshold",
            "library_version", "created", "format", "format_version", "precision")
    info = {"path": None if path is None else str(path), "engine": engine}
    info.update({k: metadata[k] for k in keys if k in metadata})
    if engine == "onnxruntime" and "precision" not in info:
        info["precision"] = "fp32"  # the exported graph's, when its metadata does not say
    info["calibrated_designs"] = sorted(metadata.get("calibrations") or {})
    return info


def _load_model(model: Any, *, engine: str | None, device: Any, allow_factory: Any):
    """(model, metadata, path, engine) from a model file path or a (model, metadata) pair."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"model: {path} does not exist")
        onnx_file = path.suffix.lower() == ".onnx"
        engine = engine or ("onnxruntime" if onnx_file else "torch")
        if engine == "onnxruntime":
            from ispad_core.nn.export import load_onnx, onnx_from_model_file

            if onnx_file:
                net, meta = load_onnx(path)
            else:
                net, meta = onnx_from_model_file(path, allow_factory=allow_factory)
            return net, meta, path, engine
        if onnx_file:
            raise InputValueError(f"model: {path} is an ONNX file; inspect it with engine='onnxruntime' (--engine onnxruntime)")
        from ispad_core.nn.modelfile import load_model

        net, meta = load_model(path, device="cpu" if device is None else device, allow_factory=allow_factory)
        return net, meta, path, engine
    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[1], Mapping):
        net, meta = model
        check_model(net)
        eng = "onnxruntime" if is_onnx(net) else "torch"
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


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _deflate(data: memoryview, last: bool) -> bytes:
    """Raw deflate of ``data`` (ISA-L level 2, else zlib level 1: on overlays the same size), ending
    on a byte boundary (sync flush) unless ``last``."""
    c = _deflater.compressobj(2 if _deflater is not zlib else 1, _deflater.DEFLATED, -15)
    return c.compress(data) + c.flush(_deflater.Z_FINISH if last else _deflater.Z_SYNC_FLUSH)


def _png_bytes(image: np.ndarray) -> bytes:
    """A grey ``(H, W)`` or RGB ``(H, W, 3)`` uint8 image as the bytes of a PNG file.

    Every row unfiltered (filter type 0), deflated by ISA-L at level 2 (python-isal; zlib level 1
    without it): on the overlay of a noisy 1 536 x 1 536 scan 3.6x faster than zlib level 1 at the
    same size, which is itself 2.5x faster than Pillow's encoder at level 1, and smaller (Pillow
    filters the rows adaptively, which costs time and here no space). Large images are compressed in parts
    on several threads (both deflaters release the GIL), each part a deflate stream flushed to a byte
    boundary, so that the parts concatenate into one valid stream (as pigz does). Any PNG reader
    gives back ``image``."""
    h, w = image.shape[:2]
    colour = 0 if image.ndim == 2 else 2
    rows = np.empty((h, 1 + w * (1 if colour == 0 else 3)), dtype=np.uint8)
    rows[:, 0] = 0
    rows[:, 1:] = image.reshape(h, -1)
    raw = memoryview(rows.reshape(-1))
    parts = max(1, min(os.cpu_count() or 1, 4, raw.nbytes >> 21))  # parts of at least 2 MB
    bounds = [raw.nbytes * i // parts for i in range(parts + 1)]
    pieces = [raw[a:b] for a, b in zip(bounds, bounds[1:])]
    if parts == 1:
        body = [_deflate(pieces[0], True)]
    else:
        with ThreadPoolExecutor(max_workers=parts) as pool:
            body = list(pool.map(_deflate, pieces, [False] * (parts - 1) + [True]))
    stream = b"\x78\x01" + b"".join(body) + struct.pack(">I", _deflater.adler32(raw))
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", stream) + _png_chunk(b"IEND", b"")


def _write_png(path: Path, image: np.ndarray, overwrite: bool) -> None:
    data = _png_bytes(image)  # encoded in memory: a failing write is ours to report
    with atomic_output(path, name="out", overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def inspect_files(
    scans: Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    model: Any,
    out: str | os.PathLike,
    rois: Any = None,
    min_roi_fraction: float | None = None,
    threshold: float | None = None,
    design: str | None = None,
    size: int | None = None,
    stride: int | None = None,
    overwrite: bool = False,
    settings: InferenceSettings | None = None,
    **options: Any,
) -> InspectionReport:
    """Inspect scan files with a model file; write a JSON report and an overlay per scan and a summary.

    For each scan (in the order given): read it, :func:`inspect` it with the model's patch size,
    preprocessing and threshold, and write ``out/<name>.json`` and ``out/<name>_overlay.png``
    (``<name>`` is the file's stem); at the end ``out/summary.csv`` has one row per scan
    (:data:`SUMMARY_COLUMNS`); with a ``design``, ``out/run.json`` (:data:`RUN_FILE`) has the
    run's figures: windows inspected and the share at or over the threshold beside the calibrated
    rate, and the drift test of all the run's window scores against the design's calibration
    sample (``InspectionReport.run`` has them in every case). A scan that cannot be read, is smaller than a window, or whose ROI
    is missing or of another size is reported (``ScanOutcome.error`` names the file and the sizes)
    and the others are still inspected. Every file is written atomically. One run at a time fills a
    folder: the run holds the lock ``out/.ispad-inspect.lock`` (:data:`INSPECT_LOCK`) and first
    removes the temporary files that a killed run of this library left there (only names it
    creates itself; nothing else in the folder is touched).

    JSON schema (``format`` "ispad-inspection", ``format_version`` 1)::

        format, format_version, library_version, created (ISO 8601 UTC)
        scan: {path, name, height, width, channels, colour_conversion (str or null)}
        roi: path of the ROI file or null, min_roi_fraction (null: any ROI pixel)
        model: {path, engine, backbone, in_channels, patch_size, preprocess, threshold, precision, ...,
                threshold_used, threshold_source, design, calibrated_designs}
        decision: "defective" | "good", defective: bool, threshold, max_score
        hottest_window: {row, col, size, score}
        flagged: [{row, col, size, score}, ...]   every window with score >= threshold, highest first
        windows: {size, stride, grid, inspected, skipped_outside_roi, flagged}
        inference: {precision, channels_last, device}
        timings: {read_s, gather_s, preprocess_s, wait_s, forward_s, total_s, windows_per_s,
                  overlay_s, write_s}
        notes: [str, ...]
        overlay: file name of the overlay PNG

    ``run.json``: ``format`` "ispad-inspection-run", ``model`` (as above), ``scans``, ``inspected``,
    ``windows``, ``windows_over_threshold``, ``share_over_threshold``, ``calibrated_fpr`` (R or
    null), ``drift`` (:meth:`~ispad_core.metrics.DriftResult.to_dict` or null), ``notes``.

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
        Override the model's threshold (its source is then ``user``).
    design : str, optional
        Use the model file's calibration of this design (:func:`ispad_core.nn.calibrate`): its
        threshold, and its sample for the drift test. Unknown names are refused, listing the
        calibrated ones. Without it the threshold is the model's own (source ``validation``).
    size : int, optional
        Window side; must equal the model's ``patch_size`` if both are known.
    stride : int, optional
        As in :func:`~ispad_core.nn.inference.predict_windows`.
    overwrite : bool, default False
        Replace existing output files (otherwise nothing is done when any exists).
    settings : InferenceSettings, optional
        How the windows are scored (``batch_size``, ``device``, ``precision``, ``channels_last``,
        ``verbose``) and ``engine`` ({"torch", "onnxruntime"}; default onnxruntime for an
        ``.onnx`` file, torch otherwise; onnxruntime with a ``.pt`` model file exports it in
        memory first).
    **options
        Fields of :class:`~ispad_core.nn.inference.InferenceSettings` as keywords, over
        ``settings``; ``allow_factory`` (str or sequence of str: passed to ``load_model``, the
        backbone factories ``"pkg.mod:fn"`` you allow it to import); ``drift_alpha`` (float,
        default 0.01: the drift test's false-alarm rate); ``overlay_max_side`` (int, default 4096: the longest side of the
        overlay PNGs; larger scans are shrunk) and ``on_scan`` (callable, called with each
        :class:`ScanOutcome` as soon as it is done; the CLI prints it).

    Returns
    -------
    InspectionReport

    Raises
    ------
    ValueError
        Before any scan is inspected: two scans with the same name, an explicit ``size`` other
        than the model's patch size, a ``stride`` larger than it, no threshold; FileExistsError
        when an output exists and ``overwrite`` is False. Per-scan problems are reported in the
        result instead.
    ispad_core._shared.files.OutputBusyError
        At once, when another run is writing into ``out``.
    ispad_core._shared.files.OutOfSpaceError
        When the disk fills up: the run stops there (the files written so far and the older
        ones are whole; the message names the file and the free space).
    """
    on_scan, overlay_max_side, allow_factory, drift_alpha = _file_options(options)
    run = InferenceSettings.build(settings, options, "inspect_files")
    files, names = _scan_files(scans)
    job = _job(model, run, size=size, stride=stride, threshold=threshold, allow_factory=allow_factory, design=design)
    job = dataclasses.replace(job, rois=rois, min_roi_fraction=min_roi_fraction, overlay_max_side=overlay_max_side,
                              drift_alpha=drift_alpha)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # one run per folder: a second one is refused at once, before it writes or checks anything
    with exclusive_lock(out, name="out", lock=out / INSPECT_LOCK), _channels_last(job):
        remove_stale_temporaries(out, names=_OUTPUT_NAMES)  # what a killed run of ours left
        return _inspect_into(out, files, names, job, overwrite=overwrite, on_scan=on_scan)


@contextlib.contextmanager
def _channels_last(job: _Job):
    """The job's torch model in channels-last for all its scans, when it runs so, and as it was after.

    ``inspect`` converts a model per call (a copy of every weight each way); converted here once,
    it finds the model converted and leaves it."""
    if is_onnx(job.net):
        yield
        return
    _, _, cl = _runtime(job.net, dataclasses.replace(job.run, engine=None))
    convert = cl and not in_channels_last(job.net)
    if convert:
        job.net.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if convert:
            job.net.to(memory_format=torch.contiguous_format)


def _file_options(options: dict) -> tuple:
    """``on_scan``, ``overlay_max_side``, ``allow_factory``, ``drift_alpha`` taken out of ``options``."""
    drift_alpha = check_float(options.pop("drift_alpha", 0.01), "drift_alpha", minimum=0.0, maximum=1.0,
                              min_inclusive=False, max_inclusive=False)
    return options.pop("on_scan", None), options.pop("overlay_max_side", 4096), options.pop("allow_factory", None), drift_alpha


def _inspect_into(out: Path, files: list, names: list, job: _Job, *, overwrite: bool, on_scan: Any) -> InspectionReport:
    """The work of :func:`inspect_files` once its arguments are checked and its folder is locked."""
    summary_path = out / "summary.csv"
    for n in names:  # refuse before any work rather than after an hour of inspection
        check_output_path(out / f"{n}.json", "out", overwrite=overwrite)
        check_output_path(out / f"{n}_overlay.png", "out", overwrite=overwrite)
    check_output_path(summary_path, "out", overwrite=overwrite)
    if job.calibration is not None:
        check_output_path(out / RUN_FILE, "out", overwrite=overwrite)
    outcomes, rows, scores, precisions = [], [], [], set()
    for f, name in zip(files, names):
        outcome, hottest, scored = _inspect_one(f, name, job, out, overwrite)
        outcomes.append(outcome)
        if scored is not None:
            scores.append(scored[0])
            precisions.add(scored[1])
        rows.append(_summary_row(outcome, hottest, job))
        if on_scan is not None:
            on_scan(outcome)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_output(summary_path, name="out", overwrite=overwrite) as tmp:
        tmp.write_text(text.getvalue())
    run_report = _run_report(job, outcomes, scores, precisions)
    if job.calibration is not None:  # the design's figures: the calibrated rate and the drift test
        _write_json(out / RUN_FILE, run_report, overwrite)
    return InspectionReport(scans=tuple(outcomes), out=out, summary=summary_path, model=job.model_info, run=run_report)


def _run_report(job: _Job, outcomes: list, scores: list, precisions: set) -> dict:
    """run.json: the windows of the whole run against the threshold, and the drift test."""
    from ispad_core.metrics import score_drift

    allscores = np.concatenate(scores) if scores else np.zeros(0)
    over = int(np.count_nonzero(allscores >= job.threshold))
    cal = job.calibration
    notes = []
    if cal is not None and cal.get("stride") not in (None, job.stride):
        notes.append(f"the design was calibrated on windows at stride {cal['stride']} and this run inspects at stride "
                     f"{job.stride}: its windows are not those the calibrated rate was measured on; calibrate and "
                     "inspect with one stride")
    if cal is not None and cal.get("precision") is not None and precisions - {cal["precision"]}:
        notes.append(f"the design was calibrated on {cal['precision']} scores and this run scored in "
                     f"{', '.join(sorted(precisions))}: scores differ in the last digits, so the rate over the threshold "
                     "may differ a little from the calibrated one; calibrate and inspect with one precision")
    drift = None
    if cal is not None and allscores.size:
        drift = score_drift(cal["sample"], allscores, alpha=job.drift_alpha, n_ref=cal["n_windows"],
                            design_effect=float(cal.get("design_effect", 1.0))).to_dict()
    return {
        "format": "ispad-inspection-run", "format_version": 1, "library_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model": job.model_info,
        "scans": len(outcomes), "inspected": sum(1 for o in outcomes if o.ok), "windows": int(allscores.size),
        "windows_over_threshold": over, "share_over_threshold": over / allscores.size if allscores.size else None,
        "calibrated_fpr": None if cal is None else cal["target_fpr"], "drift": drift, "notes": notes,
    }


def _scan_files(scans: Any) -> tuple[list[Path], list[str]]:
    """The scan files (folders listed) and their names; two scans of one name are refused."""
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
        if n + ".json" == RUN_FILE:  # refused in every run, so a name's meaning does not depend on --design
            raise InputValueError(f"scans: {f} would write {RUN_FILE}, the run's own report; rename it")
        if n in seen:
            raise InputValueError(f"scans: {seen[n]} and {f} would both write {n}.json; rename one of them")
        seen[n] = f
    return files, names


@dataclass(frozen=True)
class _Job:
    """What every scan of one call is inspected with."""

    net: Any
    model_info: dict
    size: int
    stride: int
    threshold: float
    preprocess: Preprocess
    run: InferenceSettings
    rois: Any = None
    min_roi_fraction: float | None = None
    overlay_max_side: int = 4096
    calibration: dict | None = None
    drift_alpha: float = 0.01


def _threshold_source(meta: Mapping, model_name: str, threshold: Any, design: Any) -> tuple[Any, str, dict | None]:
    """``(threshold, source, calibration)``: the user's, the design's calibration or the model's own."""
    calibration = None
    if design is not None:
        if not isinstance(design, str):
            raise InputTypeError(f"design: expected a str, got {type(design).__name__}")
        known = meta.get("calibrations") or {}
        if design not in known:
            listed = ", ".join(repr(k) for k in sorted(known)) if known else "none (calibrate one with ispad calibrate)"
            raise InputValueError(f"design: {model_name} has no calibration for design {design!r}; calibrated designs: {listed}")
        calibration = known[design]
    if threshold is not None:
        return threshold, "user", calibration
    if calibration is not None:
        source = (f"design {design} (calibrated on {calibration['n_windows']} windows at "
                  f"R={calibration['target_fpr']:g})")
        return calibration["threshold"], source, calibration
    threshold = meta.get("threshold")
    if threshold is None:
        raise InputValueError(f"threshold: {model_name} records no threshold; pass threshold=")
    return threshold, "validation", None


def _job(
    model: Any, run: InferenceSettings, *, size: Any, stride: Any, threshold: Any, allow_factory: Any, design: Any = None
) -> _Job:
    """Load the model and settle the window size, stride, threshold and preprocessing from its metadata."""
    start_warm_up()  # beside the model's loading (at once when the command line started it)
    net, meta, model_path, engine = _load_model(model, engine=run.engine, device=run.device, allow_factory=allow_factory)
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
    threshold, source, calibration = _threshold_source(meta, model_name, threshold, design)
    threshold = check_float(threshold, "threshold", minimum=0.0, maximum=1.0 if source == "user" else THRESHOLD_MAX)
    pre = meta.get("preprocess")
    params = Preprocess(**pre) if isinstance(pre, Mapping) else resolve_preprocess(pre if pre is not None else "lsm2")
    stride = default_stride(size) if stride is None else check_stride(stride, size, "the model's patch size")
    model_info = _model_info(net, meta, model_path, engine)
    model_info["threshold_used"] = threshold
    model_info["threshold_source"] = source
    model_info["design"] = design
    return _Job(net, model_info, size, stride, threshold, params, run, calibration=calibration)


def _inspect_one(f: Path, name: str, job: _Job, out: Path, overwrite: bool) -> tuple[ScanOutcome, tuple, Any]:
    """Inspect one scan and write its files; a problem with this scan is its outcome, not an error."""
    t0 = time.perf_counter()
    try:
        image, msg = _read_scan(f)
        if image is None:
            raise InputValueError(msg if str(f) in msg else f"{f}: {msg}")
        t_read = time.perf_counter() - t0
        H, W = image.shape[:2]
        if H < job.size or W < job.size:
            raise InputValueError(f"{f}: the scan is {H} x {W} px, smaller than the model's {job.size} x {job.size} window")
        roi, roi_source = _roi_for(job.rois, name, f)
        if roi is not None and roi.shape != (H, W):
            raise InputValueError(f"{f}: the scan is {H} x {W} px but its ROI {roi_source} is {roi.shape[0]} x {roi.shape[1]}")
        try:
            result = inspect(
                job.net, image, threshold=job.threshold, size=job.size, stride=job.stride, preprocess=job.preprocess,
                roi=roi, min_roi_fraction=job.min_roi_fraction, settings=dataclasses.replace(job.run, engine=None),
            )
        except ValueError as exc:
            raise InputValueError(f"{f}: {exc}") from None
        t1 = time.perf_counter()
        picture = overlay(image, result, roi=roi, max_side=job.overlay_max_side, title=f.name)
        t2 = time.perf_counter()
        payload = _payload(f, name, image, result, job, roi_source)
        payload["timings"] = {"read_s": round(t_read, 6), **payload["timings"], "overlay_s": round(t2 - t1, 6)}
        json_path, png_path = out / f"{name}.json", out / f"{name}_overlay.png"
        _write_png(png_path, picture, overwrite)
        payload["timings"]["write_s"] = round(time.perf_counter() - t2, 6)
        _write_json(json_path, payload, overwrite)
        top = int(np.argmax(result.scores))
        hottest = (int(result.origins[top, 0]), int(result.origins[top, 1]))
        return ScanOutcome(
            name=name, path=f, ok=True, defective=result.defective, max_score=result.max_score,
            flagged=int(result.flagged.size), windows=int(result.scores.size), json=json_path, overlay=png_path,
            seconds=time.perf_counter() - t0, colour=result.colour,
        ), hottest, (result.scores, result.precision)
    except OutOfSpaceError:
        raise  # not this scan's fault: the run stops, the files written so far stay whole
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        msg = str(exc)
        if str(f) not in msg:
            msg = f"{f}: {msg}"
        return ScanOutcome(name=name, path=f, ok=False, seconds=time.perf_counter() - t0, error=msg), (None, None), None


def _payload(f: Path, name: str, image: np.ndarray, result: Any, job: _Job, roi_source: Any) -> dict:
    """The JSON report of one scan (its timings completed by the caller)."""
    payload = {"format": JSON_FORMAT, "format_version": JSON_FORMAT_VERSION, "library_version": __version__,
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    body = result.to_dict()
    payload["scan"] = {"path": str(f), "name": name, **body.pop("scan"),
                       "channels": 1 if image.ndim == 2 else int(image.shape[2])}
    payload["roi"] = roi_source
    payload["min_roi_fraction"] = job.min_roi_fraction
    payload["model"] = job.model_info
    payload.update(body)
    payload["overlay"] = f"{name}_overlay.png"
    return payload


def _summary_row(outcome: ScanOutcome, hottest: tuple, job: _Job) -> dict:
    threshold = job.threshold
    return {
        "threshold_source": job.model_info["threshold_source"],
        "name": outcome.name, "path": str(outcome.path), "status": "ok" if outcome.ok else "error",
        "decision": "" if not outcome.ok else ("defective" if outcome.defective else "good"),
        "max_score": "" if not outcome.ok else f"{outcome.max_score:.6f}", "threshold": f"{threshold:.6f}",
        "flagged": "" if not outcome.ok else outcome.flagged, "windows": "" if not outcome.ok else outcome.windows,
        "hottest_row": "" if hottest[0] is None else hottest[0], "hottest_col": "" if hottest[1] is None else hottest[1],
        "seconds": f"{outcome.seconds:.3f}", "json": "" if outcome.json is None else outcome.json.name,
        "overlay": "" if outcome.overlay is None else outcome.overlay.name, "error": outcome.error or "",
    }
