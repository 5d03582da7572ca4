"""Real-defect patches cut from full scans around known positions.

The paper collects its real defects as 512 x 512 patches centred on each defect, with weak labels
(a position, no mask). :func:`crop_at` cuts such patches from one image; :func:`read_positions`
reads a position table (``scan,row,col,group``) and :func:`write_crops` cuts every listed
position from its scan and writes ``OUT/<group>/<scan>_r<row>_c<col>.png``, the folder layout
that real-defect training reads (``real/points/``, ``real/area/``, ...).
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

__all__ = ["CropPosition", "crop_at", "read_positions", "write_crops"]

_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    """One row of a position table: a defect at ``(row, col)`` of ``scan``, in ``group``."""

    scan: str
    row: int
    col: int
    group: str
    line: int


def read_positions(path: str | os.PathLike) -> list[CropPosition]:
    """Read a position table: a CSV with the header ``scan,row,col,group``.

    ``scan`` is a file name relative to the scan folder, ``row`` and ``col`` the defect's centre in
    pixels (0-based), ``group`` the defect group (a folder name such as ``points`` or ``area``).

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
        for rec in reader:
            line = reader.line_num
            scan = (rec["scan"] or "").strip()
            group = (rec["group"] or "").strip()
            try:
                row, col = int(rec["row"]), int(rec["col"])
            except (TypeError, ValueError):
                raise InputValueError(f"{path}:{line}: row and col must be integers, got {rec['row']!r}, {rec['col']!r}") from None
            if row < 0 or col < 0:
                raise InputValueError(f"{path}:{line}: row and col must be >= 0, got {row}, {col}")
            if not scan:
                raise InputValueError(f"{path}:{line}: empty scan name")
            if not _GROUP.match(group):
                raise InputValueError(
                    f"{path}:{line}: group {group!r} is not a plain folder name (letters, digits, '_', '-', '.')"
                )
            key = (scan, row, col)
            if key in seen:
                raise InputValueError(f"{path}:{line}: position ({row}, {col}) of {scan} is listed twice")
            seen.add(key)
            rows.append(CropPosition(scan=scan, row=row, col=col, group=group, line=line))
    if not rows:
        raise InputValueError(f"{path}: no positions listed")
    return rows


def write_crops(
    positions: str | os.PathLike | list[CropPosition],
    *,
    scans: str | os.PathLike,
    out: str | os.PathLike,
    size: int = 512,
    pad: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Cut the listed defects from their scans and write them as ``OUT/<group>/<name>.png``.

    Every position is checked (scan readable, patch inside the scan unless ``pad``, output file
    free unless ``overwrite``) before the first file is written, so a bad row leaves nothing
    behind. File names are ``<scan stem>_r<row>_c<col>.png``.

    Parameters
    ----------
    positions : path or list of CropPosition
        The table (see :func:`read_positions`) or its rows.
    scans : path
        Folder the ``scan`` names are relative to.
    out : path
        Output folder (created if missing); one sub-folder per group.
    size : int, default 512
        Patch side, as the paper's 512 x 512 real-defect patches.
    pad : bool, default False
        Mirror the scan's border for patches that leave it instead of refusing them.
    overwrite : bool, default False
        Replace existing patch files.

    Returns
    -------
    list of pathlib.Path
        The files written, in table order.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_positions` and :func:`crop_at`, naming the table line.
    """
    from ispad_core._shared.files import check_output_path
    from ispad_core.io import read_image, write_png

    rows = read_positions(positions) if isinstance(positions, (str, os.PathLike)) else list(positions)
    size = check_int(size, "size", minimum=1)
    scans = Path(os.fspath(scans))
    if not scans.is_dir():
        raise FileNotFoundError(f"scans: no such folder {scans}")
    out = Path(os.fspath(out))
    by_scan: dict[str, list[CropPosition]] = {}
    for p in rows:
        by_scan.setdefault(p.scan, []).append(p)
    patches: dict[int, np.ndarray] = {}
    targets: dict[int, Path] = {}
    for scan, group_rows in by_scan.items():
        file = (scans / scan)
        if not file.resolve().is_relative_to(scans.resolve()):
            raise InputValueError(f"line {group_rows[0].line}: scan {scan!r} lies outside {scans}")
        if not file.is_file():
            raise FileNotFoundError(f"line {group_rows[0].line}: no scan {file}")
        image = read_image(file, name=str(file))
        for p in group_rows:
            try:
                patches[p.line] = crop_at(image, [(p.row, p.col)], size, pad=pad)[0]
            except ValueError as exc:
                raise InputValueError(f"line {p.line} ({scan}): {str(exc).split(': ', 1)[1]}") from None
            target = out / p.group / f"{Path(scan).stem}_r{p.row}_c{p.col}.png"
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
