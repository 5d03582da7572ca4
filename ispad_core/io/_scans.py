"""Fault-free scans and their regions of interest, read from folders (what ``ispad synth --images`` takes)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ispad_core._shared.errors import InputValueError
from ispad_core.io._images import list_images, read_image, read_images


@dataclass(frozen=True)
class Scans:
    """Fault-free scans and their ROIs, ready for :class:`ispad_core.stream.SyntheticStream` or
    :func:`ispad_core.stream.write_balanced_stream`.

    Attributes
    ----------
    images : list of numpy.ndarray of uint8
        Each ``(H, W)`` or ``(H, W, 3)`` (all alike).
    names : list of str
        File names of the images (for the stream's provenance).
    rois : list of numpy.ndarray of bool or None
        One ``(H, W)`` mask per image (True = inside), or None without ROIs.
    roi_names : list of str or None
        File names of the ROIs.
    """

    images: list
    names: list
    rois: list | None = None
    roi_names: list | None = None


def read_scans(
    images: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    rois: str | os.PathLike | None = None,
    name: str = "images",
    rois_name: str = "rois",
    depth: int | tuple = 8,
    min_size: int | None = None,
) -> Scans:
    """Read fault-free scans from folders and files, and their ROIs from a folder, matched by name.

    Parameters
    ----------
    images : path or sequence of paths
        Folders and/or image files (PNG, TIFF, BMP, JPEG; 8-bit grey or RGB, all alike).
    rois : path, optional
        A folder with one mask per image, named like the image (``scan.png`` for ``scan.tif``);
        nonzero = inside. An RGB mask counts where any channel is nonzero.
    name, rois_name : str
        What the arguments are called, for error messages (e.g. ``"--images"``).
    depth : int or tuple of int, default 8
        Accepted bits per sample of the scans, as in :func:`read_images` (``(8, 16)`` also takes
        16-bit grey scans).
    min_size : int, optional
        Refuse a scan with a side shorter than this, naming the file (e.g. the patch size).

    Returns
    -------
    Scans

    Raises
    ------
    FileNotFoundError, ValueError
        For missing or unreadable files, an image without its ROI, a ROI without its image, or a
        ROI whose size differs from its image's (the message names the file).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from ispad_core.io import write_png
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("scans", "rois"):
    ...     (folder / sub).mkdir()
    >>> _ = write_png(folder / "scans" / "a.png", np.full((40, 50), 128, np.uint8))
    >>> roi = np.zeros((40, 50), np.uint8); roi[5:35, 5:45] = 255
    >>> _ = write_png(folder / "rois" / "a.png", roi)
    >>> scans = read_scans(folder / "scans", rois=folder / "rois")
    >>> scans.names, scans.rois[0].dtype, int(scans.rois[0].sum())
    (['a.png'], dtype('bool'), 1200)
    """
    images_list, files = read_images(images, name=name, depth=depth, min_size=min_size)
    names = [f.name for f in files]
    if rois is None:
        return Scans(images_list, names)
    roi_files = list_images(rois, name=rois_name)
    by_stem: dict[str, Path] = {}
    for f in roi_files:
        by_stem.setdefault(f.stem, f)
    stems = [Path(n).stem for n in names]
    stray = sorted(set(by_stem) - set(stems))
    if stray:
        raise InputValueError(
            f"{rois_name}: {', '.join(stray[:5])} in {rois} match no image of {name} (ROIs are matched by file name)"
        )
    masks, roi_names = [], []
    for stem, image in zip(stems, images_list):
        f = by_stem.get(stem)
        if f is None:
            raise InputValueError(f"{rois_name}: no ROI for image {stem} in {rois} (expected a file named {stem}.png)")
        roi = read_image(f, name=rois_name)
        if roi.ndim == 3:
            roi = roi.max(axis=2)
        if roi.shape != image.shape[:2]:
            raise InputValueError(
                f"{rois_name}: {f} is {roi.shape[0]} x {roi.shape[1]} but its image is {image.shape[0]} x {image.shape[1]}"
            )
        masks.append(np.asarray(roi != 0))
        roi_names.append(f.name)
    return Scans(images_list, names, masks, roi_names)
