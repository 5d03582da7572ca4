"""Scoring a detector from files: image scores (CSV) and anomaly maps against a test set.

What ``ispad evaluate`` does, as functions that take paths and return plain values:
:func:`read_scores` reads a ``name,score,label`` CSV, :func:`read_maps` the anomaly maps named
like the test images, :func:`evaluate_scores` checks the scores against an MVTec-layout test set
and computes the paper's table-3 row (and AU-PRO with maps), and :func:`format_row` prints it.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputValueError
from ispad_core._shared.validation import check_float

__all__ = ["MAP_EXTENSIONS", "ScoreTable", "evaluate_scores", "format_row", "read_maps", "read_scores"]

#: Anomaly-map file types :func:`read_maps` looks for, in this order.
MAP_EXTENSIONS = (".npy", ".tiff", ".tif", ".png")


@dataclass(frozen=True)
class ScoreTable:
    """Image scores read by :func:`read_scores`.

    Attributes
    ----------
    names : tuple of str
        Test-image names as in the MVTec layout (``area/001.png``), unique.
    scores : numpy.ndarray of int64, uint64 or float64, shape (N,)
        Finite scores, higher = more likely defective: int64 (uint64 beyond its range) when every
        score in the file is written as an integer, so that integer scores stay exact (float64
        holds integers exactly only up to 2**53), float64 otherwise.
    labels : numpy.ndarray of uint8, shape (N,)
        0 good, 1 defective.
    """

    names: tuple
    scores: np.ndarray
    labels: np.ndarray


def read_scores(path: str | os.PathLike, *, name: str = "scores") -> ScoreTable:
    """Read a CSV of image scores with the columns ``name``, ``score`` and ``label``.

    Column names are matched without case and surrounding spaces; other columns are ignored.
    When every score is written as an integer (``123``, ``-4``) the scores are read as 64-bit
    integers, exactly, as :mod:`ispad_core.metrics` takes integer arrays; otherwise as float64.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.
    name : str
        What the argument is called in error messages (``ispad evaluate`` passes ``"--scores"``).

    Returns
    -------
    ScoreTable

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    ValueError
        If a column is missing, a score is not a finite number, a label is not 0 or 1, a name
        appears twice or there are no rows; if integer scores go beyond 64 bits, or an integer
        score beyond 2**53 (which float64 cannot hold exactly) shares the column with fractional
        scores; the message names the file and the line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "scores.csv"
    >>> _ = f.write_text("name,score,label\\ngood/000.png,0.1,0\\narea/000.png,0.9,1\\n")
    >>> t = read_scores(f)
    >>> t.names, t.scores.tolist(), t.labels.tolist()
    (('good/000.png', 'area/000.png'), [0.1, 0.9], [0, 1])
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{name}: {p} does not exist")
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = {key.strip().lower(): key for key in (reader.fieldnames or [])}
        missing = [c for c in ("name", "score", "label") if c not in fields]
        if missing:
            raise InputValueError(f"{name}: {p} needs the columns name, score, label; missing {', '.join(missing)}")
        names, scores, labels, integers, fraction_line = [], [], [], [], None
        for row_no, row in enumerate(reader, start=2):
            item = (row[fields["name"]] or "").strip()
            text = (row[fields["score"]] or "").strip()
            if _INTEGER.fullmatch(text):
                score: int | float = int(text)
                integers.append((row_no, score))
            else:
                try:
                    score = float(text)
                except ValueError:
                    shown = row[fields["score"]]
                    raise InputValueError(f"{name}: {p} line {row_no}: score {shown!r} is not a number") from None
                if not math.isfinite(score):
                    raise InputValueError(f"{name}: {p} line {row_no}: score {score} is not finite")
                fraction_line = fraction_line or (row_no, text)
            label = (row[fields["label"]] or "").strip()
            if label not in ("0", "1"):
                raise InputValueError(f"{name}: {p} line {row_no}: label {label!r} is not 0 or 1")
            names.append(item)
            scores.append(score)
            labels.append(int(label))
    if not names:
        raise InputValueError(f"{name}: {p} has no rows")
    score_array = _score_array(scores, integers, fraction_line, where=f"{name}: {p}")
    if len(set(names)) != len(names):
        seen, dup = set(), []
        for item in names:
            if item in seen and item not in dup:
                dup.append(item)
            seen.add(item)
        raise InputValueError(f"{name}: {p} lists {', '.join(sorted(dup)[:3])} more than once")
    return ScoreTable(tuple(names), score_array, np.array(labels, np.uint8))


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _score_array(
    scores: list, integers: list[tuple[int, int]], fraction_line: tuple[int, str] | None, *, where: str
) -> np.ndarray:
    """The scores as int64 (uint64 past its range) when all are integers, float64 otherwise; never rounded silently."""
    if fraction_line is None:  # all integers: exact, as the metrics take them
        lo, hi = min(scores), max(scores)
        if -(2**63) <= lo and hi < 2**63:
            return np.array(scores, np.int64)
        if lo >= 0 and hi < 2**64:
            return np.array(scores, np.uint64)
        row_no, value = next((r, v) for r, v in integers if not -(2**63) <= v < 2**64)
        raise InputValueError(f"{where} line {row_no}: score {value} does not fit in 64 bits; rescale the scores")
    for row_no, value in integers:
        if abs(value) > 2**53:
            raise InputValueError(
                f"{where} line {row_no}: score {value} is an integer beyond 2**53, which float64 cannot hold exactly, "
                f"and other scores are fractions (line {fraction_line[0]}: {fraction_line[1]}), so all would be "
                "float64; write every score as an integer, or rescale them"
            )
    return np.array(scores, np.float64)


def read_maps(
    folder: str | os.PathLike, names: Sequence[str], shapes: Sequence[tuple], *, name: str = "maps"
) -> list[np.ndarray]:
    """Read the anomaly map of each test image: ``folder/<group>/<stem>{.npy,.tiff,.tif,.png}``.

    Maps may also lie under ``folder/test/``. The first extension of :data:`MAP_EXTENSIONS` found
    is read; a map may carry singleton axes (they are squeezed).

    Parameters
    ----------
    folder : str or os.PathLike
    names : sequence of str
        Test-image names (``area/001.png``).
    shapes : sequence of tuple
        The expected ``(H, W)`` of each map (its ground truth's).
    name : str
        What the argument is called in error messages.

    Returns
    -------
    list of numpy.ndarray, each of shape ``shapes[i]``

    Raises
    ------
    NotADirectoryError
        If ``folder`` is not a folder.
    FileNotFoundError
        If an image has no map (the message lists where it looked).
    ValueError
        If a map's shape differs from its ground truth's, or a file cannot be decoded.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "area").mkdir()
    >>> np.save(d / "area" / "000.npy", np.zeros((1, 4, 5)))
    >>> [m.shape for m in read_maps(d, ["area/000.png"], [(4, 5)])]
    [(4, 5)]
    """
    from ispad_core.io import read_image

    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{name}: {root} is not a directory")
    if (root / "test").is_dir():
        root = root / "test"
    if len(names) != len(shapes):
        raise InputValueError(f"shapes: expected {len(names)} shapes like names, got {len(shapes)}")
    maps = []
    for item, shape in zip(names, shapes):
        stem = Path(item).with_suffix("")
        found = [c for c in (root / stem.with_suffix(ext) for ext in MAP_EXTENSIONS) if c.is_file()]
        if not found:
            raise FileNotFoundError(
                f"{name}: no anomaly map for {item} (looked for {stem}{{{','.join(MAP_EXTENSIONS)}}} in {root})"
            )
        f = found[0]
        if f.suffix == ".npy":
            try:
                amap = np.load(f, allow_pickle=False)
            except ValueError as exc:
                raise InputValueError(f"{name}: {f} is not a plain .npy array ({exc})") from None
        elif f.suffix == ".png":
            amap = read_image(f, name=name, depth=(8, 16))
        else:
            import imageio.v3 as iio

            amap = np.asarray(iio.imread(f))
        amap = np.squeeze(amap)
        if amap.shape != tuple(shape):
            raise InputValueError(f"{name}: {f} is {amap.shape} but the ground truth of {item} is {tuple(shape)}")
        maps.append(amap)
    return maps


def evaluate_scores(
    scores: str | os.PathLike,
    *,
    maps: str | os.PathLike | None = None,
    dataset: str | os.PathLike | None = None,
    threshold: float | None = None,
    fpr_limit: float = 0.3,
    names: Mapping[str, str] | None = None,
) -> dict:
    """Score a detector from files: the paper's table-3 row, and AU-PRO with anomaly maps.

    Parameters
    ----------
    scores : str or os.PathLike
        A CSV read by :func:`read_scores`.
    maps : str or os.PathLike, optional
        A folder read by :func:`read_maps`; needs ``dataset`` (for the masks).
    dataset : str or os.PathLike, optional
        The MVTec-layout dataset (:func:`ispad_core.io.read_mvtec`) the scores belong to: every
        name must be one of its test images, with the same label, and every test image must have
        a score.
    threshold : float, optional
        Predict defective when ``score >= threshold``; default the F1-optimal one.
    fpr_limit : float
        The false-positive-rate limit of AU-PRO, in (0, 1] (default 0.3).
    names : mapping, optional
        What ``"scores"``, ``"maps"`` and ``"dataset"`` are called in error messages (the
        ``ispad`` command passes its option names).

    Returns
    -------
    dict
        JSON-serialisable: ``n``, ``n_defective``, ``image`` (the
        :class:`ispad_core.metrics.ClassificationReport` as a dict), ``au_pro`` and
        ``pixel_auroc`` (None without maps) and ``fpr_limit``.

    Raises
    ------
    FileNotFoundError, NotADirectoryError, ValueError
        As :func:`read_scores` and :func:`read_maps`; for names or labels that disagree with
        ``dataset`` or test images without a score; for ``maps`` without ``dataset``; and from the
        metrics (e.g. only one class).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "scores.csv"
    >>> _ = f.write_text("name,score,label\\na.png,0.1,0\\nb.png,0.4,0\\nc.png,0.35,1\\nd.png,0.8,1\\n")
    >>> r = evaluate_scores(f, threshold=0.3)
    >>> r["n"], r["image"]["tp"], r["image"]["fp"], r["au_pro"]
    (4, 2, 1, None)
    """
    from ispad_core import metrics

    label = {"scores": "scores", "maps": "maps", "dataset": "dataset", **(names or {})}
    fpr_limit = check_float(fpr_limit, "fpr_limit", minimum=0.0, maximum=1.0, min_inclusive=False)
    if threshold is not None:
        threshold = check_float(threshold, "threshold")
    if maps is not None and dataset is None:
        raise InputValueError(f"{label['maps']} needs {label['dataset']} (the MVTec folder with ground_truth/)")
    table = read_scores(scores, name=label["scores"])
    data = None
    if dataset is not None:
        from ispad_core.io import read_mvtec

        data = read_mvtec(dataset, split="test")
        known = dict(zip(data.test_names, data.test_labels.tolist()))
        unknown = [n for n in table.names if n not in known]
        if unknown:
            raise InputValueError(
                f"{label['scores']}: {', '.join(unknown[:3])} are not test images of {dataset} "
                f"(names look like {data.test_names[0]})"
            )
        wrong = [n for n, lab in zip(table.names, table.labels.tolist()) if known[n] != lab]
        if wrong:
            raise InputValueError(f"{label['scores']}: the labels of {', '.join(wrong[:3])} disagree with {dataset}")
        scored = set(table.names)
        unscored = [n for n in data.test_names if n not in scored]
        if unscored:
            raise InputValueError(
                f"{label['scores']}: {len(unscored)} of the {len(data.test_names)} test images of {dataset} have no "
                f"score, e.g. {', '.join(unscored[:3])}"
            )
    try:
        report = metrics.classification_report(table.labels, table.scores, threshold=threshold)
    except ValueError as exc:
        s = table.scores
        big = s.dtype.kind in "iu" and (int(s.max()) > 2**53 or int(s.min()) < -(2**53))
        hint = " (or pass a threshold)" if threshold is None and big else ""
        raise InputValueError(f"{label['scores']}: {scores}: {exc}{hint}") from None
    result: dict[str, Any] = {
        "n": int(table.labels.size),
        "n_defective": int(table.labels.sum()),
        "image": report.to_dict(),
        "au_pro": None,
        "pixel_auroc": None,
        "fpr_limit": fpr_limit,
    }
    if maps is not None:
        index = {n: i for i, n in enumerate(data.test_names)}
        masks = [data.test_masks[index[n]] for n in table.names]
        amaps = read_maps(maps, table.names, [m.shape for m in masks], name=label["maps"])
        result["au_pro"] = float(metrics.au_pro(amaps, masks, fpr_limit=fpr_limit))
        result["pixel_auroc"] = float(metrics.pixel_roc_auc(amaps, masks))
    return result


def format_row(result: Mapping) -> str:
    """The paper's table-3 columns, then precision, AUROC and (with maps) AU-PRO, as two lines.

    Parameters
    ----------
    result : mapping
        What :func:`evaluate_scores` returns.

    Returns
    -------
    str
        A header line and a value line, columns right-aligned.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "scores.csv"
    >>> _ = f.write_text("name,score,label\\na.png,0.1,0\\nb.png,0.4,0\\nc.png,0.35,1\\nd.png,0.8,1\\n")
    >>> print(format_row(evaluate_scores(f, threshold=0.3)))
     MCC  Recall (%)  FPR (%)  TN  TP  FN  FP  Precision (%)  AUROC (%)  Threshold
    0.58       100.0     50.0   1   2   0   1           66.7       75.0        0.3
    """
    r = result["image"]
    header = ["MCC", "Recall (%)", "FPR (%)", "TN", "TP", "FN", "FP", "Precision (%)", "AUROC (%)", "Threshold"]
    cells = [f"{r['mcc']:.2f}", f"{r['recall_percent']:.1f}", f"{r['fpr_percent']:.1f}", str(r["tn"]), str(r["tp"]),
             str(r["fn"]), str(r["fp"]), f"{r['precision_percent']:.1f}", f"{r['auroc_percent']:.1f}", f"{r['threshold']:.6g}"]
    if result.get("au_pro") is not None:
        header += [f"AU-PRO@{result['fpr_limit']:g} (%)", "Pixel AUROC (%)"]
        cells += [f"{100 * result['au_pro']:.1f}", f"{100 * result['pixel_auroc']:.1f}"]
    widths = [max(len(h), len(c)) for h, c in zip(header, cells)]
    return "  ".join(h.rjust(w) for h, w in zip(header, widths)) + "\n" + "  ".join(c.rjust(w) for c, w in zip(cells, widths))

