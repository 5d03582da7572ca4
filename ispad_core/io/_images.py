"""Reading and writing single images (PNG and friends) through imageio, with clear errors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from ispad_core._validation import check_array

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")
"""Extensions :func:`list_images` picks up (compared case-insensitively)."""


def read_image(path: str | os.PathLike, *, name: str = "image") -> np.ndarray:
    """Read one 8-bit image as ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB) uint8.

    An alpha channel that is fully opaque is dropped; a grey image stored as RGB stays RGB.

    Parameters
    ----------
    path : str or os.PathLike
    name : str
        What the image is, for error messages (e.g. ``"images"``).

    Returns
    -------
    numpy.ndarray of uint8

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it cannot be decoded, is not 8-bit, or has an unsupported channel layout.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: {path} does not exist")
    try:
        image = iio.imread(path)
    except Exception as exc:
        raise ValueError(f"{name}: cannot read {path} as an image ({type(exc).__name__}: {exc})") from None
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected an 8-bit image, got {image.dtype} from {path}")
    if image.ndim == 3 and image.shape[2] in (2, 4):
        if not (image[..., -1] == 255).all():
            raise ValueError(f"{name}: {path} has a transparent alpha channel; expected a grey or RGB image")
        image = image[..., :-1]
        if image.shape[2] == 1:
            image = image[..., 0]
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{name}: expected a grey (H, W) or RGB (H, W, 3) image, got shape {image.shape} from {path}")
    return np.ascontiguousarray(image)


def write_png(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a ``(H, W)`` or ``(H, W, 3|4)`` uint8 image as PNG, through a temporary file.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; written as ``path + ".part"`` and renamed when complete.
    image : numpy.ndarray of uint8, shape (H, W), (H, W, 3) or (H, W, 4)
        Grey, RGB or RGBA.
    overwrite : bool
        Replace an existing ``path``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False (the file is left untouched).
    TypeError, ValueError
        If ``image`` is not uint8 or not of one of the shapes above.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ispad_core.io import read_image, write_png
    >>> path = write_png(pathlib.Path(tempfile.mkdtemp()) / "a.png", np.eye(4, dtype=np.uint8) * 255)
    >>> read_image(path).tolist()[0]
    [255, 0, 0, 0]
    """
    image = check_array(image, "image", ndim=(2, 3), dtypes=(np.uint8,))
    if image.ndim == 3 and image.shape[2] not in (3, 4):
        raise ValueError(f"image: expected (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (ispad: --overwrite) to replace it")
    tmp = path.with_name(path.name + ".part")
    try:
        iio.imwrite(tmp, image, extension=".png")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half-written PNG left behind
        raise
    return path


def list_images(path: str | os.PathLike, *, name: str = "images") -> list[Path]:
    """Image files in a directory (sorted by name), or ``[path]`` for a file.

    Parameters
    ----------
    path : str or os.PathLike
        A directory (its files with an extension of :data:`IMAGE_EXTENSIONS`, not recursive) or
        one file.
    name : str
        What the images are, for error messages (e.g. ``"--images"``).

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If a directory holds no image files (names the directory and what it holds instead).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{name}: {path} does not exist")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        others = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        held = f"it holds {shown}" if others else "it is empty"
        raise ValueError(
            f"{name}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in {path}; {held}"
        )
    return files


def read_images(
    paths: str | os.PathLike | Sequence[str | os.PathLike], *, name: str = "images"
) -> tuple[list[np.ndarray], list[Path]]:
    """Read every image in the given directories and files (see :func:`list_images`).

    All images must have the same number of channels (all grey or all RGB); sizes may differ.

    Parameters
    ----------
    paths : path or sequence of paths
        Directories and/or files.
    name : str
        What the images are, for error messages.

    Returns
    -------
    images : list of numpy.ndarray of uint8
        Each ``(H, W)`` or ``(H, W, 3)``, in the order of ``files``.
    files : list of pathlib.Path

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`list_images` and :func:`read_image`; ValueError also when grey and RGB images
        are mixed.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in paths:
        files += list_images(p, name=name)
    images = [read_image(f, name=name) for f in files]
    channels = {im.shape[2] if im.ndim == 3 else 1 for im in images}
    if len(channels) > 1:
        grey = [f.name for f, im in zip(files, images) if im.ndim == 2][:3]
        rgb = [f.name for f, im in zip(files, images) if im.ndim == 3][:3]
        raise ValueError(f"{name}: mixes grey images ({', '.join(grey)}) and RGB images ({', '.join(rgb)}); expected one kind")
    return images, files
