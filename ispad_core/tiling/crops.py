"""Real-defect patches cut from full scans around known positions.

The paper collects its real defects as 512 x 512 patches centred on each defect, with weak labels
(a position, no mask). :func:`crop_at` cuts such patches from one image; :func:`read_positions`
reads a position table (``scan,row,col,group``) and :func:`write_crops` cuts every listed
position from its scan and writes ``OUT/<group>/<scan>_r<row>_c<col>.png``, the folder layout
that real-defect training reads (``real/points/``, ``real/area/``, ...).

The ``decisions.csv`` of a review page (``ispad review``; columns
``scan,row,col,group,decision,score,threshold``) is a position table too: with a ``decision``
column each row is a reviewed inspection window, ``row, col`` its top-left corner and ``size`` its
side; ``defect`` rows go to ``OUT/<group>/`` and ``false_alarm`` rows to a folder of fault-free
windows (``good_out``), which ``ispad train --negatives`` reads.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_int

__all__ = ["DECISIONS", "CropPosition", "crop_at", "read_positions", "write_crops"]

_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

#: The values of the ``decision`` column of a review table: a confirmed defect, a false alarm.
DECISIONS = ("defect", "false_alarm")


def crop_at(image: Any, centers: Any, size: int, *, pad: bool = False) -> np.ndarray:
    """Square patches of side ``size`` centred on ``centers``.

    The patch for centre ``(r, c)`` covers rows ``r - size // 2`` to ``r - size // 2 + size - 1``
    (and likewise columns), so for an even ``size`` the centre is the lower-right of the four
    middle pixels.

    Parameters
    ----------
    image : numpy.ndarray, shape (H, W) or (H, W, C)
        The scan.
    centers : array-like of int, shape (K, 2)
        ``(row, col)`` of each defect, inside the image.
    size : int
        Side of the patches in pixels.
    pad : bool, default False
        If False a patch that leaves the image is an error. If True the image is mirrored at its
        border (``numpy.pad(mode="symmetric")``) to fill the patch.

    Returns
    -------
    numpy.ndarray, shape (K, size, size[, C]), dtype of ``image``

    Raises
    ------
    TypeError
        If ``image`` is not a numpy array or ``centers`` is not integral.
    ValueError
        If a shape is wrong, a centre lies outside the image, or (without ``pad``) a patch leaves
        the image; the message names the position's index.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.tiling.crops import crop_at
    >>> image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    >>> crop_at(image, [(5, 5)], 4)[0]
    array([[33, 34, 35, 36],
           [43, 44, 45, 46],
           [53, 54, 55, 56],
           [63, 64, 65, 66]], dtype=uint8)
    """
    if not isinstance(image, np.ndarray):
        raise InputTypeError(f"image: expected a numpy array, got {type(image).__name__}")
    if image.ndim not in (2, 3):
        raise InputValueError(f"image: expected shape (H, W) or (H, W, C), got {image.shape}")
    size = check_int(size, "size", minimum=1)
    centers = np.asarray(centers)
    if centers.size == 0:
        centers = centers.reshape(0, 2)
    if centers.ndim != 2 or centers.shape[1] != 2:
        raise InputValueError(f"centers: expected shape (K, 2) of (row, col), got {centers.shape}")
    if not np.issubdtype(centers.dtype, np.integer):
        raise InputTypeError(f"centers: expected integer positions, got dtype {centers.dtype}")
    h, w = image.shape[:2]
    half = size // 2
    out = np.empty((len(centers), size, size, *image.shape[2:]), dtype=image.dtype)
    padded = None
    for k, (r, c) in enumerate(centers.tolist()):
        if not (0 <= r < h and 0 <= c < w):
            raise InputValueError(f"centers[{k}]: ({r}, {c}) lies outside the {h} x {w} image")
        r0, c0 = r - half, c - half
        if 0 <= r0 and r0 + size <= h and 0 <= c0 and c0 + size <= w:
            out[k] = image[r0:r0 + size, c0:c0 + size]
        elif not pad:
            raise InputValueError(
                f"centers[{k}]: the {size} x {size} patch around ({r}, {c}) leaves the {h} x {w} image "
                f"(rows {r0}..{r0 + size - 1}, columns {c0}..{c0 + size - 1}); ask for padding to mirror the border"
            )
        else:
            if padded is None:
                if size > min(h, w):
                    # symmetric padding wider than the image repeats it; refuse, it would be a made-up patch
                    raise InputValueError(f"size: {size} exceeds the {h} x {w} image; cannot pad a patch larger than the scan")
                widths = ((size, size), (size, size)) + ((0, 0),) * (image.ndim - 2)
                padded = np.pad(image, widths, mode="symmetric")
            out[k] = padded[r0 + size:r0 + 2 * size, c0 + size:c0 + 2 * size]
    return out


@dataclass(frozen=True)
class CropPosition:
    """One row of a position table: a defect at ``(row, col)`` of ``scan``, in ``group``.

    ``decision`` is None for a plain position table (``row, col`` is the defect's centre) and
    ``"defect"`` or ``"false_alarm"`` for a review table (``row, col`` is the window's top-left
    corner; ``group`` is empty for a false alarm).
    """

    scan: str
    row: int
    col: int
    group: str
    line: int
    decision: str | None = None

    @property
    def is_window(self) -> bool:
        """True for a row of a review table, whose ``row, col`` is a window's top-left corner."""
        return self.decision is not None


def read_positions(path: str | os.PathLike) -> list[CropPosition]:
    """Read a position table: a CSV with the header ``scan,row,col,group`` (more columns allowed).

    ``scan`` is a file name relative to the scan folder, ``row`` and ``col`` the defect's centre in
    pixels (0-based), ``group`` the defect group (a folder name such as ``points`` or ``area``).

    A review table (the ``decisions.csv`` of ``ispad review``: ``scan,row,col,group,decision,
    score,threshold``) has a ``decision`` column: ``defect`` or ``false_alarm``. Its ``row`` and
    ``col`` are then the top-left corner of the inspection window, and ``group`` may be empty on
    ``false_alarm`` rows (it is not used for them). ``score`` and ``threshold`` are not used.

    Returns
    -------
    list of CropPosition
        In file order; ``line`` is the 1-based line number, for messages.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For a missing column, a non-integer or negative position, an empty or unsafe group name
        (it becomes a folder name) or a repeated position; the message names the line.
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"positions: no such file {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("scan", "row", "col", "group") if c not in (reader.fieldnames or [])]
        if missing:
            raise InputValueError(f"{path}: expected the columns scan,row,col,group, missing {', '.join(missing)}")
        rows, seen = [], set()
        reviewed = "decision" in (reader.fieldnames or [])
        for rec in reader:
            line = reader.line_num
            scan = (rec["scan"] or "").strip()
            group = (rec["group"] or "").strip()
            decision = (rec["decision"] or "").strip() if reviewed else None
            if reviewed and decision not in DECISIONS:
                raise InputValueError(f"{path}:{line}: decision must be defect or false_alarm, got {decision!r}")
            try:
                row, col = int(rec["row"]), int(rec["col"])
            except (TypeError, ValueError):
                raise InputValueError(f"{path}:{line}: row and col must be integers, got {rec['row']!r}, {rec['col']!r}") from None
            if row < 0 or col < 0:
                raise InputValueError(f"{path}:{line}: row and col must be >= 0, got {row}, {col}")
            if not scan:
                raise InputValueError(f"{path}:{line}: empty scan name")
            if decision != "false_alarm" and not _GROUP.match(group):
                raise InputValueError(
                    f"{path}:{line}: group {group!r} is not a plain folder name (letters, digits, '_', '-', '.')"
                )
            key = (scan, row, col)
            if key in seen:
                raise InputValueError(f"{path}:{line}: position ({row}, {col}) of {scan} is listed twice")
            seen.add(key)
            rows.append(CropPosition(scan=scan, row=row, col=col, group=group, line=line, decision=decision))
    if not rows:
        raise InputValueError(f"{path}: no positions listed")
    return rows


def write_crops(
    positions: str | os.PathLike | list[CropPosition],
    *,
    scans: str | os.PathLike,
    out: str | os.PathLike | None,
    size: int | None = None,
    pad: bool = False,
    overwrite: bool = False,
    good_out: str | os.PathLike | None = None,
) -> list[Path]:
    """Cut the listed defects from their scans and write them as ``OUT/<group>/<name>.png``.

    Every position is checked (scan readable, patch inside the scan unless ``pad``, output file
    free unless ``overwrite``) before the first file is written, so a bad row leaves nothing
    behind. File names are ``<scan stem>_r<row>_c<col>.png``.

    A review table (see :func:`read_positions`) lists inspection windows by their top-left
    corner: each is cut as the window ``rows row .. row + size - 1`` (likewise columns), so
    ``size`` must be the window side the inspection used (its model's patch size; the review page
    prints it) and has no default there. Its ``defect`` rows go to ``out/<group>/``, its
    ``false_alarm`` rows to ``good_out/`` (a flat folder of fault-free windows).

    Parameters
    ----------
    positions : path or list of CropPosition
        The table (see :func:`read_positions`) or its rows.
    scans : path
        Folder the ``scan`` names are relative to.
    out : path or None
        Output folder (created if missing); one sub-folder per group. Needed when the table lists
        defects.
    size : int, optional
        Patch side: default 512 (the paper's real-defect patches) for a position table; required
        for a review table (the window side).
    pad : bool, default False
        Mirror the scan's border for patches that leave it instead of refusing them.
    overwrite : bool, default False
        Replace existing patch files.
    good_out : path, optional
        Folder for the ``false_alarm`` windows of a review table; required when it has any.

    Returns
    -------
    list of pathlib.Path
        The files written, in table order.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_positions` and :func:`crop_at`, naming the table line; ValueError also
        for a missing ``size``, ``out`` or ``good_out`` that the table needs.
    """
    from ispad_core._shared.files import check_output_path
    from ispad_core.io import read_image, write_png

    rows = read_positions(positions) if isinstance(positions, (str, os.PathLike)) else list(positions)
    size, folders = _crop_targets(rows, size, out, good_out)
    scans = Path(os.fspath(scans))
    if not scans.is_dir():
        raise FileNotFoundError(f"scans: no such folder {scans}")
    by_scan: dict[str, list[CropPosition]] = {}
    for p in rows:
        by_scan.setdefault(p.scan, []).append(p)
    patches: dict[int, np.ndarray] = {}
    targets: dict[int, Path] = {}
    half = size // 2
    for scan, group_rows in by_scan.items():
        file = (scans / scan)
        if not file.resolve().is_relative_to(scans.resolve()):
            raise InputValueError(f"line {group_rows[0].line}: scan {scan!r} lies outside {scans}")
        if not file.is_file():
            raise FileNotFoundError(f"line {group_rows[0].line}: no scan {file}")
        image = read_image(file, name=str(file))
        for p in group_rows:
            centre = (p.row + half, p.col + half) if p.is_window else (p.row, p.col)
            try:
                patches[p.line] = crop_at(image, [centre], size, pad=pad)[0]
            except ValueError as exc:
                what = f"the window at ({p.row}, {p.col}): " if p.is_window else ""
                raise InputValueError(f"line {p.line} ({scan}): {what}{str(exc).split(': ', 1)[1]}") from None
            folder = folders["good"] if p.decision == "false_alarm" else folders["real"] / p.group
            target = folder / f"{Path(scan).stem}_r{p.row}_c{p.col}.png"
            if target in targets.values():
                raise InputValueError(f"line {p.line}: two positions would write {target}")
            targets[p.line] = target
            if target.parent.is_dir():
                check_output_path(target, f"line {p.line}", overwrite=overwrite)
    written = []
    for p in rows:
        target = targets[p.line]
        target.parent.mkdir(parents=True, exist_ok=True)
        written.append(write_png(target, patches[p.line], overwrite=overwrite))
    return written


def _crop_targets(rows: list[CropPosition], size: Any, out: Any, good_out: Any) -> tuple[int, dict]:
    """The patch side and the output folders (``real``, ``good``) a table needs, checked."""
    windows = any(p.is_window for p in rows)
    if windows and any(not p.is_window for p in rows):
        raise InputValueError("positions: mixes rows with and without a decision; give one kind of table")
    if size is None:
        if windows:
            raise InputValueError(
                "size: a review table (decisions.csv) lists inspection windows by their top-left corner; give their "
                "side, the model's patch size that the inspection used (--size; the review page prints it)"
            )
        size = 512
    size = check_int(size, "size", minimum=1)
    defects = sum(p.decision != "false_alarm" for p in rows)
    alarms = len(rows) - defects
    if defects and out is None:
        raise InputValueError(f"out: the table lists {defects} defects; give the folder for them (--out DIR)")
    if alarms and good_out is None:
        raise InputValueError(
            f"good_out: the table lists {alarms} false alarm{'' if alarms == 1 else 's'} (decision false_alarm); give a "
            f"folder for these fault-free windows (--good-out DIR)"
        )
    folders = {"real": None if out is None else Path(os.fspath(out)),
               "good": None if good_out is None else Path(os.fspath(good_out))}
    return size, folders
