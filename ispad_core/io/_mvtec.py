"""The MVTec folder layout used by the unsupervised ISP-AD splits.

::

    root/train/good/*.png
    root/test/good/*.png
    root/test/<group>/*.png                     one folder per defect group ("area", "points", ...)
    root/ground_truth/<group>/<stem>_mask.png   a mask for every image of every defect group

Files at the top of ``root`` (MVTec's ``license.txt``, ``readme.txt``) and other top-level folders
are ignored; names starting with a dot are ignored everywhere.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_array, check_choice
from ispad_core.io._images import read_image, write_png

_GOOD = "good"
_SPLIT_DIRS = ("train", "test", "ground_truth")
_GROUP_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class MVTecDataset:
    """An MVTec-layout dataset in memory.

    Attributes
    ----------
    root : pathlib.Path
    train_images : numpy.ndarray of uint8, shape (N, H, W) or (N, H, W, 3)
        ``train/good`` (empty with ``split="test"``).
    train_names : tuple of str
        File names in ``train/good``.
    test_images : numpy.ndarray of uint8, shape (M, H, W) or (M, H, W, 3)
        ``test/good`` first, then the defect groups in name order (empty with ``split="train"``).
    test_names : tuple of str
        ``"<group>/<file>"`` for each test image.
    test_groups : tuple of str
        ``"good"`` or the defect group of each test image.
    test_labels : numpy.ndarray of uint8, shape (M,)
        0 for ``good``, 1 otherwise.
    test_masks : numpy.ndarray of bool, shape (M, H, W)
        Ground truth, True where defective (any nonzero pixel of the 0/255 mask file); all
        False for good images. Masks are 0/255 only on disk.
    """

    root: Path
    train_images: np.ndarray
    train_names: tuple[str, ...]
    test_images: np.ndarray
    test_names: tuple[str, ...]
    test_groups: tuple[str, ...]
    test_labels: np.ndarray
    test_masks: np.ndarray

    def __repr__(self) -> str:
        groups = sorted(set(self.test_groups))
        return (
            f"MVTecDataset(root={str(self.root)!r}, train={len(self.train_names)}, "
            f"test={len(self.test_names)} in groups {groups})"
        )


def _entries(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if not p.name.startswith("."))


def _png_files(folder: Path, what: str) -> list[Path]:
    files = []
    stray = []
    for p in _entries(folder):
        if p.is_file() and p.suffix.lower() == ".png":
            files.append(p)
        else:
            stray.append(p.name + ("/" if p.is_dir() else ""))
    if stray:
        shown = ", ".join(stray[:5]) + (", ..." if len(stray) > 5 else "")
        raise InputValueError(f"root: {folder} should hold only .png {what}, found {shown}")
    return files


def _stack(images: list[np.ndarray], files: list[Path], what: str) -> np.ndarray:
    if not images:
        return np.zeros((0, 0, 0), np.uint8)
    shape = images[0].shape
    for im, f in zip(images, files):
        if im.shape != shape:
            raise InputValueError(f"root: {what} differ in size: {files[0]} is {shape}, {f} is {im.shape}")
    return np.stack(images)


def _read_test_group(gdir: Path, gt: Path, into: tuple[list, list, list, list, list]) -> None:
    """Append the images, files, names, groups and masks of one folder of ``test/`` to ``into``."""
    test_images, test_files, names, groups, masks = into
    files = _png_files(gdir, "images")
    mask_files: dict[str, Path] = {}
    if gdir.name != _GOOD:
        mdir = gt / gdir.name
        if not mdir.is_dir():
            raise FileNotFoundError(f"root: {mdir} is missing: the masks of {gdir} belong there")
        for m in _png_files(mdir, "masks"):
            if not m.stem.endswith("_mask"):
                raise InputValueError(f"root: {m} is not named <image>_mask.png")
            mask_files[m.stem[: -len("_mask")]] = m
        stems = {f.stem for f in files}
        orphans = sorted(s for s in mask_files if s not in stems)
        if orphans:
            raise InputValueError(
                f"root: masks without an image in {gdir}: "
                + ", ".join(f"{s}_mask.png" for s in orphans[:5])
            )
    for f in files:
        image = read_image(f, name="root")
        if gdir.name == _GOOD:
            mask = np.zeros(image.shape[:2], bool)
        else:
            if f.stem not in mask_files:
                raise FileNotFoundError(f"root: {f} has no mask {gt / gdir.name / (f.stem + '_mask.png')}")
            raw = read_image(mask_files[f.stem], name="root")
            if raw.ndim == 3:
                if not (raw == raw[..., :1]).all():
                    raise InputValueError(f"root: mask {mask_files[f.stem]} is in colour; expected a grey mask")
                raw = raw[..., 0]
            if raw.shape != image.shape[:2]:
                raise InputValueError(
                    f"root: mask {mask_files[f.stem]} is {raw.shape} but its image {f} is {image.shape[:2]}"
                )
            mask = raw > 0
        test_images.append(image)
        test_files.append(f)
        names.append(f"{gdir.name}/{f.name}")
        groups.append(gdir.name)
        masks.append(mask)


def read_mvtec(root: str | os.PathLike, *, split: str = "all") -> MVTecDataset:
    """Read a dataset in the MVTec layout (see the module docstring).

    Parameters
    ----------
    root : str or os.PathLike
        The folder holding ``train``, ``test`` and ``ground_truth``.
    split : {"all", "train", "test"}
        Which part to read; ``"test"`` skips ``train`` (it need not exist).

    Returns
    -------
    MVTecDataset

    Raises
    ------
    FileNotFoundError
        If ``root`` or a folder the split needs is missing, or a defective image has no mask.
    ValueError
        For stray files (non-PNG files, masks without an image, folders where files belong),
        images of different sizes, a mask whose size differs from its image's, or an unreadable
        image.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ispad_core.io import read_mvtec, write_mvtec
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "toy"
    >>> images = np.zeros((3, 8, 8), np.uint8)
    >>> masks = np.zeros((3, 8, 8), np.uint8); masks[2, 1:3, 1:3] = 255
    >>> _ = write_mvtec(root, images[:1], images, test_groups=["good", "good", "points"], test_masks=masks)
    >>> data = read_mvtec(root)
    >>> data.test_names, data.test_labels.tolist(), int(data.test_masks[2].sum()), data.test_masks.dtype
    (('good/000.png', 'good/001.png', 'points/000.png'), [0, 0, 1], 4, dtype('bool'))
    """
    check_choice(split, "split", ("all", "train", "test"))
    if not isinstance(root, (str, os.PathLike)):
        raise InputTypeError(f"root: expected a path, got {type(root).__name__}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root: {root} is not a directory")

    train_images: list[np.ndarray] = []
    train_files: list[Path] = []
    if split in ("all", "train"):
        train = root / "train"
        if not (train / _GOOD).is_dir():
            raise FileNotFoundError(f"root: {train / _GOOD} is missing (MVTec layout: train/good/*.png)")
        extra = [p.name for p in _entries(train) if p.name != _GOOD]
        if extra:
            raise InputValueError(f"root: {train} should hold only the folder 'good', found {', '.join(extra)}")
        train_files = _png_files(train / _GOOD, "images")
        train_images = [read_image(f, name="root") for f in train_files]

    test_images: list[np.ndarray] = []
    test_files: list[Path] = []
    names: list[str] = []
    groups: list[str] = []
    masks: list[np.ndarray] = []
    if split in ("all", "test"):
        test = root / "test"
        if not test.is_dir():
            raise FileNotFoundError(f"root: {test} is missing (MVTec layout: test/good, test/<group>)")
        stray = [p.name for p in _entries(test) if not p.is_dir()]
        if stray:
            raise InputValueError(f"root: {test} should hold only group folders, found files {', '.join(stray[:5])}")
        group_dirs = sorted(_entries(test), key=lambda p: (p.name != _GOOD, p.name))
        gt = root / "ground_truth"
        defect_groups = [p.name for p in group_dirs if p.name != _GOOD]
        if gt.is_dir():
            stray = [p.name for p in _entries(gt) if not p.is_dir() or p.name not in defect_groups]
            if stray:
                raise InputValueError(
                    f"root: {gt} holds {', '.join(stray[:5])}, which match no defect group in {test} "
                    f"(groups: {', '.join(defect_groups) or 'none'})"
                )
        elif defect_groups:
            raise FileNotFoundError(f"root: {gt} is missing but {test} has defect groups {', '.join(defect_groups)}")
        for gdir in group_dirs:
            _read_test_group(gdir, gt, (test_images, test_files, names, groups, masks))

    all_files = train_files + test_files
    stacked = _stack(train_images + test_images, all_files, "images")
    n_train = len(train_images)
    empty = np.zeros((0, *stacked.shape[1:]), np.uint8)
    return MVTecDataset(
        root=root,
        train_images=stacked[:n_train] if n_train else empty,
        train_names=tuple(f.name for f in train_files),
        test_images=stacked[n_train:] if test_images else empty,
        test_names=tuple(names),
        test_groups=tuple(groups),
        test_labels=np.array([g != _GOOD for g in groups], np.uint8),
        test_masks=np.stack(masks) if masks else np.zeros((0, *stacked.shape[1:3]), bool),
    )


def _check_names(names: Sequence[str] | None, n: int, arg: str, default: list[str]) -> list[str]:
    if names is None:
        return default
    names = list(names)
    if len(names) != n:
        raise InputValueError(f"{arg}: expected {n} names, got {len(names)}")
    for name in names:
        if not isinstance(name, str) or not name.endswith(".png") or "/" in name or "\\" in name or name.startswith("."):
            raise InputValueError(f"{arg}: expected plain file names ending in .png, got {name!r}")
    return names


def _write_tree(root: Path, train: tuple, test: tuple) -> None:
    """Write the MVTec tree into a hidden folder beside ``root``, then put it in place (atomically)."""
    train_images, tr_names = train
    test_images, masks, groups, te_names = test
    # A fresh hidden folder beside root holds the new tree (and, while replacing, the old one):
    # fixed names such as root.part or root.old could be a user's folders.
    work = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".part", dir=root.parent))
    tmp = work / "new"
    try:
        (tmp / "train" / _GOOD).mkdir(parents=True)
        for image, name in zip(train_images, tr_names):
            write_png(tmp / "train" / _GOOD / name, image)
        (tmp / "test" / _GOOD).mkdir(parents=True)
        for image, mask, g, name in zip(test_images, masks, groups, te_names):
            (tmp / "test" / g).mkdir(exist_ok=True)
            write_png(tmp / "test" / g / name, image)
            if g != _GOOD:
                (tmp / "ground_truth" / g).mkdir(parents=True, exist_ok=True)
                write_png(
                    tmp / "ground_truth" / g / (name[: -len(".png")] + "_mask.png"),
                    np.where(mask != 0, np.uint8(255), np.uint8(0)),
                )
        if root.exists():
            os.replace(root, work / "old")
        os.replace(tmp, root)
    except BaseException:
        if (work / "old").exists() and not root.exists():
            os.replace(work / "old", root)  # put the old tree back
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)


def write_mvtec(
    root: str | os.PathLike,
    train_images: np.ndarray,
    test_images: np.ndarray,
    *,
    test_groups: Sequence[str],
    test_masks: np.ndarray | None = None,
    train_names: Sequence[str] | None = None,
    test_names: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a dataset in the MVTec layout (the inverse of :func:`read_mvtec`).

    The tree is written to a fresh hidden folder beside ``root`` and moved into place when
    complete; nothing else beside ``root`` is touched.

    Parameters
    ----------
    root : str or os.PathLike
        Folder to create.
    train_images : numpy.ndarray of uint8, shape (N, H, W[, 3])
        Fault-free training images (``train/good``); N may be 0.
    test_images : numpy.ndarray of uint8, shape (M, H, W[, 3])
    test_groups : sequence of str, length M
        ``"good"`` or the defect group of each test image (a folder name).
    test_masks : numpy.ndarray, shape (M, H, W), optional
        Ground truth, bool or 0/1 (any nonzero = defect), required when any group is not
        ``"good"``; must be empty for good images. Written as 0/255 PNG.
    train_names, test_names : sequence of str, optional
        File names (``"xyz.png"``); by default ``000.png``, ``001.png``, ... counted per group.
    overwrite : bool
        Replace an existing ``root``. Only a folder that holds nothing but ``train``, ``test`` and
        ``ground_truth`` is replaced; anything else in it makes the call fail untouched.

    Returns
    -------
    pathlib.Path
        ``root``.

    Raises
    ------
    FileExistsError
        If ``root`` exists and ``overwrite`` is False, or holds other things.
    ValueError
        For mismatched lengths or sizes, a bad group name, duplicate names, or a good image with a
        non-empty mask.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise InputTypeError(f"root: expected a path, got {type(root).__name__}")
    root = Path(root)
    train_images = check_array(train_images, "train_images", ndim=(3, 4), dtypes=(np.uint8,), allow_empty=True)
    test_images = check_array(test_images, "test_images", ndim=(3, 4), dtypes=(np.uint8,), allow_empty=True)
    for arg, arr in (("train_images", train_images), ("test_images", test_images)):
        if arr.ndim == 4 and arr.shape[3] != 3:
            raise InputValueError(f"{arg}: expected grey (N, H, W) or RGB (N, H, W, 3) images, got shape {arr.shape}")
    m = test_images.shape[0]
    if isinstance(test_groups, str):
        raise InputTypeError("test_groups: expected a sequence of group names, got a str")
    groups = list(test_groups)
    if len(groups) != m:
        raise InputValueError(f"test_groups: expected {m} group names like test_images, got {len(groups)}")
    for g in groups:
        if not isinstance(g, str) or not _GROUP_RE.match(g):
            raise InputValueError(f"test_groups: expected folder names (letters, digits, _ . -), got {g!r}")
    if test_masks is None:
        if any(g != _GOOD for g in groups):
            raise InputValueError("test_masks: required when test_groups has defect groups")
        masks = np.zeros(test_images.shape[:3], np.uint8)
    else:
        masks = check_array(test_masks, "test_masks", ndim=3, kinds="biuf", allow_empty=True)
        if masks.shape != test_images.shape[:3]:
            raise InputValueError(f"test_masks: expected shape {test_images.shape[:3]} like test_images, got {masks.shape}")
    for i, g in enumerate(groups):
        if g == _GOOD and masks[i].any():
            raise InputValueError(f"test_masks: test image {i} is in group 'good' but its mask is not empty")
    counters: dict[str, int] = {}
    default_test = []
    for g in groups:
        default_test.append(f"{counters.get(g, 0):03d}.png")
        counters[g] = counters.get(g, 0) + 1
    tr_names = _check_names(train_names, train_images.shape[0], "train_names", [f"{i:03d}.png" for i in range(train_images.shape[0])])
    te_names = _check_names(test_names, m, "test_names", default_test)
    if len(set(tr_names)) != len(tr_names):
        raise InputValueError("train_names: names must be unique")
    if len(set(zip(groups, te_names))) != m:
        raise InputValueError("test_names: names must be unique within each group")

    if root.exists():
        if not overwrite:
            raise FileExistsError(f"{root} exists; pass overwrite=True (ispad: --overwrite) to replace it")
        if not root.is_dir():
            raise FileExistsError(f"{root} exists and is not a folder; refusing to replace it")
        others = [p.name for p in root.iterdir() if p.name not in _SPLIT_DIRS]
        if others:
            raise FileExistsError(
                f"{root} holds other things ({', '.join(sorted(others)[:5])}); refusing to replace it"
            )
    if not root.parent.is_dir():
        raise FileNotFoundError(f"root: the parent folder {root.parent} does not exist")
    _write_tree(root, (train_images, tr_names), (test_images, masks, groups, te_names))
    return root
