"""A run's test set at per-design calibrated thresholds, beside the validation and the test-optimal one.

The paper's threshold is F1-optimal on the validation set; in production a threshold is
calibrated per design on fault-free sheets of that design (:func:`ispad_core.nn.calibrate`) at a
stated false-alarm rate per window R. When the benchmark holds calibration sheets of the test
designs (``calibration/<design>/*.png``) and the design of every test patch
(``test_designs.csv``), :func:`calibrated_scores` calibrates the run's model on each design's
sheets at R and scores every test patch at its own design's threshold. Beside it: the measured
window false-alarm rate on the test set's fault-free patches (against R), and the MCC at the test
set's own F1-optimal threshold, the best a single threshold could do on this test set (it looks
at the test labels, so it is a ceiling, not a method).
"""

from __future__ import annotations

import csv
import hashlib
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputValueError
from ispad_core._shared.files import hash_file

__all__ = ["calibrated_scores", "read_test_designs", "sheets_digest"]


def read_test_designs(path: str | Path, names: Sequence[str]) -> tuple[str, ...]:
    """The design of every test patch, in the order of ``names`` (``group/file`` as ``read_mvtec`` gives).

    Parameters
    ----------
    path : path
        A CSV with the columns ``file`` and ``design`` (``test_designs.csv`` of a benchmark).
    names : sequence of str
        The test patches' names.

    Returns
    -------
    tuple of str

    Raises
    ------
    ValueError
        If the file lacks a column or a test patch (named).
    """
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"file", "design"} <= set(reader.fieldnames):
            raise InputValueError(f"test_designs: {path} needs the columns file and design, got {reader.fieldnames}")
        table = {row["file"]: row["design"] for row in reader}
    missing = [n for n in names if n not in table]
    if missing:
        raise InputValueError(f"test_designs: {path} has no design for {len(missing)} test patches, such as {missing[0]!r}")
    return tuple(table[n] for n in names)


def sheets_digest(calibration: str | Path, test_designs: Sequence[str]) -> str:
    """SHA-256 of what a run's calibration depends on besides its model: every file under the
    folders of the designs in ``test_designs`` (names and bytes, in sorted order) and the design
    of every test patch.

    A finished run's calibration is reused only while this digest is unchanged, so sheets
    written again into the same folder (another benchmark, other sheets) are calibrated on again.

    Parameters
    ----------
    calibration : path
        A folder with one sub-folder of fault-free sheets per design.
    test_designs : sequence of str
        The design of every test patch, in the test set's order.

    Returns
    -------
    str
        64 hexadecimal digits.

    Raises
    ------
    ValueError
        If a test design has no folder in ``calibration``.
    """
    folders = _design_folders(Path(calibration), test_designs)
    h = hashlib.sha256()
    h.update("\n".join(test_designs).encode())
    for d in sorted(folders):
        for f in sorted(p for p in folders[d].rglob("*") if p.is_file()):
            h.update(b"\0" + f.relative_to(calibration).as_posix().encode() + b"\0")
            hash_file(h, f)
    return h.hexdigest()


def _design_folders(calibration: Path, designs: Sequence[str]) -> dict[str, Path]:
    """The folder of each of ``designs`` in ``calibration`` (sorted by design), or a clear error."""
    folders = {p.name: p for p in sorted(Path(calibration).iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if not folders:
        raise InputValueError(f"calibration: {calibration} holds no design folder")
    needed = sorted(set(designs))
    absent = [d for d in needed if d not in folders]
    if absent:
        raise InputValueError(f"calibration: no folder for the test design {absent[0]!r} in {calibration}")
    return {d: folders[d] for d in needed}


def _mcc(labels: np.ndarray, pred: np.ndarray) -> tuple[float, dict]:
    from ispad_core.metrics import confusion_counts

    c = confusion_counts(labels, pred.astype(np.int64))
    counts = {"tn": int(c.tn), "fp": int(c.fp), "fn": int(c.fn), "tp": int(c.tp)}
    return float(c.mcc), counts


def calibrated_scores(
    model: Any,
    calibration: str | Path,
    test_designs: Sequence[str],
    test_labels: Any,
    test_scores: Any,
    *,
    target_fpr: float,
    threads: int | None = None,
) -> dict:
    """Calibrate ``model`` per test design and score the test set at those thresholds.

    Parameters
    ----------
    model : path or (model, metadata)
        The run's model file (what :func:`ispad_core.nn.calibrate` takes).
    calibration : path
        A folder with one sub-folder of fault-free sheets per design.
    test_designs : sequence of str
        The design of every test patch; each must have a folder in ``calibration``.
    test_labels, test_scores : array_like of shape (m,)
        The test set's labels (0/1) and the model's scores of it (as the run scored them).
    target_fpr : float in (0, 1)
        The false-alarm rate per window R.
    threads : int, optional
        Torch CPU threads while scoring the sheets (the run's).

    Returns
    -------
    dict
        ``target_fpr``; ``thresholds`` (``{design: threshold}``), ``n_windows`` and
        ``supported`` (whether the windows support R, see :func:`ispad_core.metrics.fpr_threshold`)
        per design;
        ``cal_mcc``, ``cal_recall`` and ``cal_fpr`` (percent) with the counts ``cal_tn``, ...,
        at each patch's own design's threshold; ``cal_fpr_by_design`` (percent);
        ``cal_fpr_ratio`` (the measured rate over R); ``opt_threshold`` and ``opt_mcc`` (the
        test set's own F1-optimal threshold); ``cal_vs_opt`` (``cal_mcc / opt_mcc``, NaN when
        ``opt_mcc <= 0``).

    Raises
    ------
    ValueError
        If a test design has no calibration folder, or the lengths differ.
    """
    from ispad_core.metrics import UnsupportedRateWarning, f1_optimal_threshold
    from ispad_core.nn import calibrate
    from ispad_core.nn.detector import torch_threads

    labels = np.asarray(test_labels).astype(np.int64)
    scores = np.asarray(test_scores, dtype=np.float64)
    designs = np.asarray(list(test_designs))
    if not (labels.shape == scores.shape == designs.shape):
        raise InputValueError(f"test_designs: expected {scores.size} designs, labels and scores, got "
                              f"{designs.size}, {labels.size} and {scores.size}")
    folders = _design_folders(Path(calibration), designs.tolist())
    needed = list(folders)
    thresholds, windows, supported = {}, {}, {}
    with torch_threads(threads), warnings.catch_warnings():
        # too few windows for R: the calibration says so (``supported``) instead of a warning per run
        warnings.simplefilter("ignore", UnsupportedRateWarning)
        for d in needed:
            cal = calibrate(model, folders[d], design=d, target_fpr=target_fpr, verbose=False, precision="fp32",
                            allow_unsupported=True)
            thresholds[d], windows[d], supported[d] = float(cal.threshold), int(cal.n_windows), bool(cal.supported)
    per_patch = np.array([thresholds[d] for d in designs.tolist()], dtype=np.float64)
    pred = scores >= per_patch
    cal_mcc, counts = _mcc(labels, pred)
    good = labels == 0
    fpr = float(pred[good].mean()) if good.any() else float("nan")
    by_design = {d: float(100.0 * pred[good & (designs == d)].mean()) for d in needed if (good & (designs == d)).any()}
    opt = float(f1_optimal_threshold(labels, scores))
    opt_mcc, _ = _mcc(labels, scores >= opt)
    return {
        "target_fpr": float(target_fpr),
        "thresholds": thresholds,
        "n_windows": windows,
        "supported": supported,
        "cal_mcc": cal_mcc,
        "cal_recall": float(100.0 * pred[~good].mean()) if (~good).any() else float("nan"),
        "cal_fpr": 100.0 * fpr,
        **{f"cal_{k}": v for k, v in counts.items()},
        "cal_fpr_by_design": by_design,
        "cal_fpr_ratio": fpr / float(target_fpr),
        "opt_threshold": opt,
        "opt_mcc": opt_mcc,
        "cal_vs_opt": cal_mcc / opt_mcc if opt_mcc > 0 else math.nan,
    }
