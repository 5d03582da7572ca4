"""Real defects from a folder of images, and labelled validation sets, for training a detector.

Real defects (``ispad train --real real/``)::

    real/points/*.png          one group per sub-folder ("points", "area", or any other name)
    real/area/*.tif
    real/*.png                 or a flat folder: one group, named after the folder

PNG, TIFF, BMP (and JPEG) images, grey or RGB, all of one kind. Images may be larger than the
patch size: the paper labels real defects centrally on 512 x 512 patches and, during training,
augments them (table 8) and then crops the central 256 x 256. :class:`RealTransform` does exactly
that for every draw of a real defect (it is the ``real_transform`` of
:class:`ispad_core.nn.InjectionDataset`, seeded per ``(seed, epoch, item)``), so each injection
of the same defect sees a new augmentation, and the crop keeps the reflected borders of the
rotation out of the patch.

Labelled validation (or test) sets (``ispad train --val``), read by :func:`read_labelled_set`:

- an MVTec-layout folder (``test/good``, ``test/<group>``; ``train/`` and ``ground_truth/`` are
  not needed);
- a folder with ``good/`` and one sub-folder per defect group;
- an HDF5 stream file (``ispad synth``), read lazily.

Images larger than the patch size are centre-cropped to it (no augmentation); smaller ones are
an error that names the file. Orders are deterministic: groups by name, files by name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputValueError
from ispad_core._shared.validation import check_int
from ispad_core.io._images import IMAGE_EXTENSIONS, read_image

__all__ = ["LabelledSet", "RealDefects", "read_labelled_set", "read_real_defects"]

_GOOD = "good"
_STREAM_SUFFIXES = (".h5", ".hdf5", ".hdf")


def _visible(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def _shown(names: Sequence[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def _group_images(folder: Path, name: str) -> list[Path]:
    """The image files of one group folder; a nested folder is an error that names it."""
    entries = _visible(folder)
    nested = [p.name + "/" for p in entries if p.is_dir()]
    if nested:
        raise InputValueError(f"{name}: {folder} holds sub-folders ({_shown(nested)}); a group folder holds images only")
    files = [p for p in entries if _is_image(p)]
    if not files:
        others = [p.name for p in entries]
        held = f"it holds {_shown(others)}" if others else "it is empty"
        raise InputValueError(f"{name}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder}; {held}")
    return files


def _channels(image: np.ndarray) -> int:
    return image.shape[2] if image.ndim == 3 else 1


def _check_kind(images: Sequence[np.ndarray], files: Sequence[Path], name: str) -> None:
    kinds = {_channels(im) for im in images}
    if len(kinds) > 1:
        grey = [str(f) for f, im in zip(files, images) if im.ndim == 2][:2]
        rgb = [str(f) for f, im in zip(files, images) if im.ndim == 3][:2]
        raise InputValueError(f"{name}: mixes grey images ({', '.join(grey)}) and RGB images ({', '.join(rgb)}); expected one kind")


def _check_size(size: Any, name: str = "size") -> int | None:
    return None if size is None else check_int(size, name, minimum=1)


# --------------------------------------------------------------------------- real defects


@dataclass(frozen=True)
class RealDefects:
    """The real defective patches of a folder, with their groups.

    A sequence: ``len(real)`` and ``real[j]`` (the image), so it can be passed as ``real`` to
    :class:`ispad_core.nn.InjectionDataset`.

    Attributes
    ----------
    images : tuple of numpy.ndarray of uint8
        Each ``(H, W)`` or ``(H, W, 3)``; sizes may differ (at least the patch size).
    groups : tuple of str
        The group of each image (its sub-folder, or the folder's name for a flat folder).
    files : tuple of str
        Each image's path relative to ``root`` (``"area/003.png"``).
    root : str
        The folder read.
    """

    images: tuple
    groups: tuple
    files: tuple
    root: str

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, j: int) -> np.ndarray:
        return self.images[j]

    @property
    def group_names(self) -> tuple[str, ...]:
        """The distinct groups, sorted."""
        return tuple(sorted(set(self.groups)))

    def counts(self) -> dict[str, int]:
        """Images per group, groups sorted."""
        return {g: self.groups.count(g) for g in self.group_names}

    def select(self, indices: Any) -> RealDefects:
        """The defects at ``indices`` (in that order), e.g. a selection of ``nested_fractions``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"indices: expected values in [0, {len(self)}), got {idx.min()} .. {idx.max()}")
        pick = idx.tolist()
        return RealDefects(
            images=tuple(self.images[i] for i in pick),
            groups=tuple(self.groups[i] for i in pick),
            files=tuple(self.files[i] for i in pick),
            root=self.root,
        )

    def __repr__(self) -> str:
        counts = ", ".join(f"{g}: {n}" for g, n in self.counts().items())
        return f"RealDefects(root={self.root!r}, {len(self)} images; {counts})"


def read_real_defects(path: str | os.PathLike, *, size: int | None = None, name: str = "real") -> RealDefects:
    """Read a folder of real defective images, the group of each taken from its sub-folder.

    Parameters
    ----------
    path : str or os.PathLike
        A folder of group sub-folders (``points/``, ``area/``, any other name is its own group)
        or a flat folder of images (one group, named after the folder). Names starting with a
        dot are ignored; files that are not images are ignored.
    size : int, optional
        The patch size: every image must be at least ``size`` x ``size``.
    name : str, default "real"
        What the folder is, for error messages (e.g. ``"--real"``).

    Returns
    -------
    RealDefects
        Groups in name order, files in name order inside each group.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a folder, mixes loose images and sub-folders, has a group folder named
        ``good`` (fault-free images), a nested folder, a group without images, an unreadable
        image, an image smaller than ``size``, or mixes grey and RGB images; the message names
        the file or folder.

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile
    >>> from ispad_core.io import write_png
    >>> from ispad_core.io._real import read_real_defects
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for group, n in (("points", 2), ("area", 1)):
    ...     (root / group).mkdir()
    ...     for k in range(n):
    ...         _ = write_png(root / group / f"{k}.png", np.full((48, 48), 200, np.uint8))
    >>> real = read_real_defects(root, size=32)
    >>> real.groups, real.files
    (('area', 'points', 'points'), ('area/0.png', 'points/0.png', 'points/1.png'))
    """
    size = _check_size(size)
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{name}: {root} does not exist")
    if not root.is_dir():
        raise InputValueError(f"{name}: {root} is not a folder (expected a folder of defect images or of group sub-folders)")
    entries = _visible(root)
    folders = [p for p in entries if p.is_dir()]
    loose = [p for p in entries if _is_image(p)]
    if folders and loose:
        raise InputValueError(
            f"{name}: {root} holds both images ({_shown([p.name for p in loose])}) and group sub-folders "
            f"({_shown([p.name + '/' for p in folders])}); move the loose images into a group folder"
        )
    if folders:
        good = [p for p in folders if p.name == _GOOD]
        if good:
            raise InputValueError(f"{name}: {good[0]} is a folder of fault-free images ('good'); {root} must hold real defects only")
        grouped = [(p.name, _group_images(p, name)) for p in folders]
    else:
        grouped = [(root.resolve().name or "real", _group_images(root, name))]
    images, groups, files, paths = [], [], [], []
    for group, group_files in grouped:
        for f in group_files:
            image = read_image(f, name=name)
            if size is not None and (image.shape[0] < size or image.shape[1] < size):
                raise InputValueError(
                    f"{name}: {f} is {image.shape[0]} x {image.shape[1]}, smaller than the patch size {size} x {size}"
                )
            images.append(image)
            groups.append(group)
            files.append(f.relative_to(root).as_posix())
            paths.append(f)
    _check_kind(images, paths, name)
    return RealDefects(images=tuple(images), groups=tuple(groups), files=tuple(files), root=str(root))


# --------------------------------------------------------------------------- labelled sets


@dataclass(frozen=True)
class LabelledSet:
    """A labelled set of patches (validation or test): items ``(image, label)``.

    Attributes
    ----------
    images : numpy.ndarray of uint8, shape (N, H, W[, C]), or ispad_core.io.StreamReader
        The patches (a stream file is read lazily).
    labels : numpy.ndarray of uint8, shape (N,)
        0 fault-free, 1 defective.
    groups : tuple of str
        ``"good"`` or the defect group of each item (``"synthetic"`` for a stream's defects).
    names : tuple of str
        ``"<group>/<file>"`` of each image (``"#i"`` for a stream's items).
    source : str
        The folder or file read.
    kind : {"mvtec", "folders", "stream"}
    """

    images: Any
    labels: np.ndarray
    groups: tuple
    names: tuple
    source: str
    kind: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        image = self.images[i]
        if self.kind == "stream":
            image = image[0]
        return np.asarray(image), int(self.labels[i])

    def __getitems__(self, indices: list) -> list[tuple[np.ndarray, int]]:
        if self.kind != "stream" or not len(indices):
            return [self[i] for i in indices]
        images = self.images[np.asarray(indices, dtype=np.int64)][0]  # one batched read
        return [(images[k], int(self.labels[i])) for k, i in enumerate(indices)]

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.image_shape) if self.kind == "stream" else tuple(self.images.shape[1:])

    def counts(self) -> dict[str, int]:
        """Items per group (``"good"`` first, then defect groups by name)."""
        names = sorted(set(self.groups), key=lambda g: (g != _GOOD, g))
        return {g: self.groups.count(g) for g in names}

    def __repr__(self) -> str:
        counts = ", ".join(f"{g}: {n}" for g, n in self.counts().items())
        return f"LabelledSet({self.kind} {self.source!r}, {len(self)} items; {counts})"


def _crop_to(image: np.ndarray, size: int | None, f: Path, name: str) -> np.ndarray:
    if size is None:
        return image
    h, w = image.shape[:2]
    if h < size or w < size:
        raise InputValueError(f"{name}: {f} is {h} x {w}, smaller than the patch size {size} x {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return image[top:top + size, left:left + size]


def _read_group_folders(folder: Path, kind: str, size: int | None, name: str, source: Path) -> LabelledSet:
    entries = _visible(folder)
    folders = [p for p in entries if p.is_dir()]
    if not any(p.name == _GOOD for p in folders):
        raise InputValueError(f"{name}: {folder} has no good/ folder of fault-free images")
    defect_folders = [p for p in folders if p.name != _GOOD]
    if not defect_folders:
        raise InputValueError(f"{name}: {folder} has good/ but no folder of defective images (e.g. {folder}/defect/)")
    ordered = [folder / _GOOD] + defect_folders
    images, labels, groups, names, paths = [], [], [], [], []
    for sub in ordered:
        for f in _group_images(sub, name):
            image = _crop_to(read_image(f, name=name), size, f, name)
            images.append(image)
            labels.append(0 if sub.name == _GOOD else 1)
            groups.append(sub.name)
            names.append(f"{sub.name}/{f.name}")
            paths.append(f)
    _check_kind(images, paths, name)
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        a = paths[0]
        b = next(p for p, im in zip(paths, images) if im.shape != images[0].shape)
        raise InputValueError(
            f"{name}: images differ in size ({a} is {images[0].shape[:2]}, {b} is "
            f"{images[paths.index(b)].shape[:2]}); give the patch size to centre-crop them"
        )
    return LabelledSet(
        images=np.stack(images), labels=np.asarray(labels, np.uint8), groups=tuple(groups), names=tuple(names),
        source=str(source), kind=kind,
    )


def read_labelled_set(path: str | os.PathLike, *, size: int | None = None, name: str = "val") -> LabelledSet:
    """Read a labelled validation or test set: an MVTec-layout folder, good/ + defect folders, or a stream.

    Parameters
    ----------
    path : str or os.PathLike
        - a folder with ``test/good`` and ``test/<group>`` (the MVTec layout; only ``test`` is
          read, masks are not needed);
        - a folder with ``good/`` and one or more defect sub-folders (each a group);
        - an HDF5 stream file (``.h5``), read lazily; its defects form the group ``"synthetic"``.
    size : int, optional
        The patch size. Larger images are centre-cropped to it, smaller ones are an error; a
        stream's patches must have exactly this size. Without it all images must have one size.
    name : str, default "val"
        What the set is, for error messages (e.g. ``"--val"``).

    Returns
    -------
    LabelledSet
        ``good`` first, then the defect groups by name, files by name.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the folder has neither layout, lacks fault-free or defective images, holds an
        unreadable or too small image, mixes grey and RGB or sizes (without ``size``), or the
        stream's patch size differs from ``size``; the message names the file or folder.

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile
    >>> from ispad_core.io import write_png
    >>> from ispad_core.io._real import read_labelled_set
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for file in ("good/0.png", "good/1.png", "scratch/0.png"):
    ...     (root / file).parent.mkdir(exist_ok=True)
    ...     _ = write_png(root / file, np.zeros((40, 40), np.uint8))
    >>> val = read_labelled_set(root, size=32)
    >>> val.labels.tolist(), val.names, val.images.shape
    ([0, 0, 1], ('good/0.png', 'good/1.png', 'scratch/0.png'), (3, 32, 32))
    """
    size = _check_size(size)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{name}: {p} does not exist")
    if p.is_file():
        return _read_stream_set(p, size, name)
    if (p / "test").is_dir():
        return _read_group_folders(p / "test", "mvtec", size, name, p)
    if (p / _GOOD).is_dir():
        return _read_group_folders(p, "folders", size, name, p)
    held = [q.name + ("/" if q.is_dir() else "") for q in _visible(p)]
    raise InputValueError(
        f"{name}: {p} is neither an MVTec-layout folder (test/good, test/<group>) nor a folder with good/ and "
        f"defect sub-folders, nor a stream file; it holds {_shown(held) if held else 'nothing'}"
    )


def _read_stream_set(p: Path, size: int | None, name: str) -> LabelledSet:
    from ispad_core.io._streamreader import open_stream

    if p.suffix.lower() not in _STREAM_SUFFIXES:
        raise InputValueError(f"{name}: {p} is a file but not an HDF5 stream (.h5); expected a stream file or a folder")
    reader = open_stream(p)
    shape = tuple(reader.image_shape)
    if size is not None and shape[:2] != (size, size):
        raise InputValueError(f"{name}: {p} holds {shape[0]} x {shape[1]} patches, expected the patch size {size} x {size}")
    labels = reader.labels
    groups = tuple("synthetic" if y else _GOOD for y in labels.tolist())
    return LabelledSet(
        images=reader, labels=labels, groups=groups, names=tuple(f"#{i}" for i in range(len(labels))),
        source=str(p), kind="stream",
    )
