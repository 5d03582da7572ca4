"""Reading and writing single images (PNG and friends) through imageio, with clear errors."""

from __future__ import annotations

import io
import math
import os
import re
import struct
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from ispad_core._shared.errors import InputValueError
from ispad_core._shared.files import atomic_output
from ispad_core._shared.pil import pil_into_array
from ispad_core._shared.validation import check_array, check_int

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")
"""Extensions :func:`list_images` picks up (compared case-insensitively)."""


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_PIECE = 1 << 22  # decompress at most 4 MiB at a time while counting


def _png_expected_bytes(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    """Bytes of filtered scanlines (a filter byte per row) that a PNG's header promises."""
    bits = _PNG_CHANNELS[colour] * depth
    if not interlace:
        return height * (1 + math.ceil(width * bits / 8))
    total = 0
    for x0, y0, dx, dy in _ADAM7:  # each pass of Adam7 is a small image of its own
        w = (width - x0 + dx - 1) // dx if width > x0 else 0
        h = (height - y0 + dy - 1) // dy if height > y0 else 0
        if w and h:
            total += h * (1 + math.ceil(w * bits / 8))
    return total


def check_png_data(data: bytes, path: str | os.PathLike, *, name: str = "image") -> int | None:
    """Refuse a PNG whose image data does not hold every row its header declares.

    Decoders fill rows missing from a complete but short zlib stream with zeros and say
    nothing; for a mask that silently deletes defects. This walks the chunks, decompresses the
    ``IDAT`` stream (a piece at a time, keeping no image) and compares the number of bytes with
    what the ``IHDR`` header promises. Data that is not a PNG is left to the decoder.

    Parameters
    ----------
    data : bytes
        The file's contents.
    path : str or os.PathLike
        The file, for error messages.
    name : str
        What the image is, for error messages.

    Returns
    -------
    int or None
        The PNG's bit depth per sample (1 to 16), or None for data that is not a PNG.

    Raises
    ------
    ValueError
        If the chunks are cut off, the header is invalid, the compressed stream is broken or
        ends early, or it holds fewer (or more) bytes than the header's rows need.
    """
    if not data.startswith(_PNG_SIGNATURE):
        return None
    pos = len(_PNG_SIGNATURE)
    header = None
    inflater = zlib.decompressobj()
    got = 0
    seen_idat = False
    try:
        while pos + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[pos : pos + 8])
            body = data[pos + 8 : pos + 8 + length]
            if len(body) < length:
                raise InputValueError(f"chunk {kind.decode('latin-1')!r} is cut off after {len(body)} of {length} bytes")
            pos += 12 + length
            if kind == b"IHDR":
                if length != 13:
                    raise InputValueError(f"IHDR chunk of {length} bytes, expected 13")
                header = struct.unpack(">IIBBBBB", body)
            elif kind == b"IDAT":
                seen_idat = True
                piece = inflater.decompress(body, _PIECE)
                got += len(piece)
                while inflater.unconsumed_tail:
                    got += len(inflater.decompress(inflater.unconsumed_tail, _PIECE))
            elif kind == b"IEND":
                break
    except zlib.error as exc:
        raise InputValueError(f"{name}: {path} has corrupt PNG image data ({exc})") from None
    except ValueError as exc:
        raise InputValueError(f"{name}: {path} is a damaged PNG ({exc})") from None
    if header is None or not seen_idat:
        raise InputValueError(f"{name}: {path} is a damaged PNG (no {'IHDR' if header is None else 'IDAT'} chunk)")
    width, height, depth, colour, _, _, interlace = header
    if colour not in _PNG_CHANNELS:
        raise InputValueError(f"{name}: {path} is a damaged PNG (colour type {colour})")
    expected = _png_expected_bytes(width, height, depth, colour, interlace)
    if not inflater.eof:
        got += len(inflater.flush())
        raise InputValueError(
            f"{name}: {path} is truncated: its image data ends after {got} of {expected} bytes "
            f"({width} x {height} declared)"
        )
    if got < expected:
        row = 1 + math.ceil(width * _PNG_CHANNELS[colour] * depth / 8)
        held = f"data for only {got // row} of the {height} rows" if not interlace else f"only {got} of the {expected} bytes"
        raise InputValueError(
            f"{name}: {path} is truncated: it holds {held} its header declares ({width} x {height}); "
            "a decoder would fill the rest with zeros"
        )
    if got > expected:
        raise InputValueError(
            f"{name}: {path} is a damaged PNG: it holds {got} bytes of image data where its header "
            f"({width} x {height}) declares {expected}"
        )
    return depth


MAX_PIXELS_VARIABLE = "ISPAD_MAX_IMAGE_PIXELS"
"""The environment variable that sets the largest image (in pixels) the library decodes."""


def max_image_pixels() -> int | None:
    """The largest image, in pixels, that :func:`read_image` decodes (None: no limit).

    It is Pillow's guard against decompression bombs, ``PIL.Image.MAX_IMAGE_PIXELS`` (89 478 485
    by default, about 9 459 x 9 459). The environment variable ``ISPAD_MAX_IMAGE_PIXELS`` (a number
    of pixels, or ``none``) raises or lowers it for the whole process, the ``ispad`` command
    included; in Python, setting ``PIL.Image.MAX_IMAGE_PIXELS`` does the same.

    Raises
    ------
    ValueError
        If the environment variable holds neither a whole number >= 1 nor ``none``.
    """
    from PIL import Image

    text = os.environ.get(MAX_PIXELS_VARIABLE, "").strip()
    if text:
        if text.lower() == "none":
            value = None
        else:
            try:
                value = int(text)
            except ValueError:
                value = 0
            if value < 1:
                raise InputValueError(
                    f"{MAX_PIXELS_VARIABLE}: expected a number of pixels (a whole number >= 1) or 'none', got {text!r}"
                )
        Image.MAX_IMAGE_PIXELS = value  # the decoder must agree with the limit asked for
    return Image.MAX_IMAGE_PIXELS


def _declared_size(data: bytes) -> tuple[int | None, int | None, int] | None:
    """``(height, width, pixels)`` from the image's header without decoding it (height and width
    None where only the count is known), or None where the header cannot be read here."""
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return height, width, height * width
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                return height, width, height * width
        except Image.DecompressionBombError as exc:  # over twice Pillow's limit: it says only how many pixels
            found = re.search(r"\((\d+) pixels\)", str(exc))
            return (None, None, int(found.group(1))) if found else None
        except Exception:  # not an image Pillow knows: the decoder reports it
            return None


def _check_pixels(data: bytes, path: Path, name: str) -> None:
    limit = max_image_pixels()
    if limit is None:
        return
    size = _declared_size(data)
    if size is None or size[2] <= limit:
        return
    height, width, pixels = size
    what = f"{height} x {width} pixels ({pixels:,} pixels)" if height is not None else f"{pixels:,} pixels"
    raise InputValueError(
        f"{name}: {path} is {what}, more than the limit of {limit:,} pixels that guards against "
        f"decompression bombs; if the image is genuine, raise the limit: set the environment variable "
        f"{MAX_PIXELS_VARIABLE}={pixels} (or 'none'), or PIL.Image.MAX_IMAGE_PIXELS in Python"
    )


def _decode(data: io.BytesIO, path: Path) -> np.ndarray:
    """Decode an image file's bytes (held by ``data``, and released as soon as the pixels are
    decoded) with Pillow (TIFF: any reader imageio has).

    Decoding from memory leaves no file open when a decoder fails, and Pillow first makes the
    result independent of which optional readers are installed. A still grey or colour 8-bit PNG
    (the scans) goes straight to Pillow (:func:`_decode_png_lean`), everything else through
    imageio's Pillow plugin; both give the same array.
    """
    image = _decode_png_lean(data)
    if image is not None:
        return image
    data.seek(0)
    try:
        return iio.imread(data, plugin="pillow")
    except Exception:
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise
    return iio.imread(data.getvalue(), extension=path.suffix.lower())


_LEAN_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
_LEAN_BAND_BYTES = 1 << 23  # converted to the array about 8 MiB at a time


def _decode_png_lean(data: io.BytesIO) -> np.ndarray | None:
    """A still 8-bit grey or colour PNG (mode L, LA, RGB or RGBA) as the array imageio's Pillow
    plugin gives (``np.asarray`` of the decoded image), at a third of its peak memory; None for
    any other file, which is left to imageio.

    imageio holds the file's bytes, Pillow's decoded image, ``tobytes()``'s pieces and their join,
    and then a writable copy of it: on a 13 000 x 13 000 noisy scan 608 MiB for an array of 161
    MiB. Here the file's bytes are released once Pillow has decoded them, and the image is copied
    into the array a band of rows at a time: the decoded image and the array, and one band."""
    from PIL import Image

    if data.read(8) != _PNG_SIGNATURE:  # (read, not getbuffer: that would copy the shared bytes)
        return None
    data.seek(0)
    with Image.open(data, formats=["PNG"]) as im:
        channels = _LEAN_MODES.get(im.mode)
        if channels is None or getattr(im, "is_animated", False):
            return None
        im.load()
        data.close()  # the compressed bytes: not needed any more
        w, h = im.size
        out = np.empty((h, w) if channels == 1 else (h, w, channels), dtype=np.uint8)
        return pil_into_array(im, out, band_bytes=_LEAN_BAND_BYTES)


_DEPTHS = {8: (np.dtype(np.uint8),), 16: (np.dtype(np.uint16),), (8, 16): (np.dtype(np.uint8), np.dtype(np.uint16))}


def _check_depth(depth) -> tuple:
    key = tuple(depth) if isinstance(depth, (tuple, list)) else depth
    if key not in _DEPTHS:
        raise InputValueError(f"depth: expected 8, 16 or (8, 16), got {depth!r}")
    return _DEPTHS[key]


def read_image(path: str | os.PathLike, *, name: str = "image", depth: int | tuple = 8) -> np.ndarray:
    """Read one image as ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB), uint8 (or uint16 on request).

    An alpha channel that is fully opaque is dropped; a grey image stored as RGB stays RGB.

    Parameters
    ----------
    path : str or os.PathLike
    name : str
        What the image is, for error messages (e.g. ``"images"``).
    depth : 8, 16 or (8, 16), default 8
        Bits per sample to accept: 8 gives uint8, 16 uint16 (16-bit scans; the synthesizer
        takes both), ``(8, 16)`` either.

    Returns
    -------
    numpy.ndarray of uint8 or uint16

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it cannot be decoded, is a PNG whose data holds fewer rows than its header declares
        (decoders would fill them with zeros), has another bit depth than ``depth`` allows, or
        has an unsupported channel layout; or if it has more pixels than :func:`max_image_pixels`
        (the message gives the size, the limit and how to raise it). Every message names the file.
    """
    allowed = _check_depth(depth)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: {path} does not exist")
    data = path.read_bytes()
    _check_pixels(data, path, name)  # before the decoder (or check_png_data) touches the pixels
    png_depth = check_png_data(data, path, name=name)
    stream = io.BytesIO(data)  # shares the bytes; once this is their only holder, decoding can release them
    del data
    try:
        image = _decode(stream, path)
    except Exception as exc:
        raise InputValueError(f"{name}: cannot read {path} as an image ({type(exc).__name__}: {exc})") from None
    image = np.asarray(image)
    if png_depth == 16 and image.dtype == np.uint8:
        raise InputValueError(
            f"{name}: {path} is a 16-bit colour PNG, which the decoder would cut to 8 bits; "
            "save it as 16-bit TIFF or as grey"
        )
    if image.dtype not in allowed:
        want = " or ".join(f"{8 * d.itemsize}-bit" for d in allowed)
        article = "an" if want.startswith("8") else "a"
        raise InputValueError(f"{name}: expected {article} {want} image, got {image.dtype} from {path}")
    if image.ndim == 3 and image.shape[2] in (2, 4):
        if not (image[..., -1] == np.iinfo(image.dtype).max).all():
            raise InputValueError(f"{name}: {path} has a transparent alpha channel; expected a grey or RGB image")
        image = image[..., :-1]
        if image.shape[2] == 1:
            image = image[..., 0]
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise InputValueError(f"{name}: expected a grey (H, W) or RGB (H, W, 3) image, got shape {image.shape} from {path}")
    return np.ascontiguousarray(image)


def write_png(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a ``(H, W)`` or ``(H, W, 3|4)`` uint8 image as PNG, through a temporary file.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; written to a fresh temporary file beside it and renamed when complete
        (:func:`ispad_core._shared.files.atomic_output`: never through a link, never over anything but
        a regular file).
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
        If ``image`` is not uint8 or not of one of the shapes above; ValueError also if ``path``
        is a symbolic link or not a regular file.
    ispad_core._shared.files.OutOfSpaceError
        If the disk fills up (one line naming the file and the free space; an old file is kept).

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
        raise InputValueError(f"image: expected (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    data = iio.imwrite("<bytes>", image, extension=".png")  # in memory: a failing write is ours to report
    with atomic_output(path, name="path", overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


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
        raise InputValueError(
            f"{name}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in {path}; {held}"
        )
    return files


def read_images(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    name: str = "images",
    min_size: int | None = None,
    depth: int | tuple = 8,
) -> tuple[list[np.ndarray], list[Path]]:
    """Read every image in the given directories and files (see :func:`list_images`).

    All images must have the same number of channels (all grey or all RGB); sizes may differ.
    Every error about an image names its file; check here what later code would only report by
    index (``images[3]``), such as a minimum size.

    Parameters
    ----------
    paths : path or sequence of paths
        Directories and/or files.
    name : str
        What the images are, for error messages.
    min_size : int, optional
        Refuse an image whose height or width is below this (e.g. the patch size).
    depth : 8, 16 or (8, 16), default 8
        Bits per sample to accept, as in :func:`read_image`; all images must share one.

    Returns
    -------
    images : list of numpy.ndarray of uint8
        Each ``(H, W)`` or ``(H, W, 3)``, in the order of ``files``.
    files : list of pathlib.Path

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`list_images` and :func:`read_image`; ValueError also when grey and RGB images
        are mixed or an image is smaller than ``min_size``.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ispad_core.io import read_images, write_png
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_png(folder / "scan.png", np.zeros((48, 64), np.uint8))
    >>> images, files = read_images(folder, min_size=32)
    >>> images[0].shape, files[0].name
    ((48, 64), 'scan.png')
    >>> read_images(folder, name="--images", min_size=50)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ispad_core.InputValueError: --images: .../scan.png is 48 x 64 pixels, smaller than the minimum 50 x 50
    """
    if min_size is not None:
        min_size = check_int(min_size, "min_size", minimum=1)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in paths:
        files += list_images(p, name=name)
    images = []
    for f in files:
        image = read_image(f, name=name, depth=depth)
        if min_size is not None and min(image.shape[:2]) < min_size:
            raise InputValueError(
                f"{name}: {f} is {image.shape[0]} x {image.shape[1]} pixels, smaller than the minimum "
                f"{min_size} x {min_size}"
            )
        images.append(image)
    dtypes = {im.dtype for im in images}
    if len(dtypes) > 1:
        eight = [f.name for f, im in zip(files, images) if im.dtype == np.uint8][:3]
        sixteen = [f.name for f, im in zip(files, images) if im.dtype == np.uint16][:3]
        raise InputValueError(
            f"{name}: mixes 8-bit images ({', '.join(eight)}) and 16-bit images ({', '.join(sixteen)}); "
            "expected one depth"
        )
    channels = {im.shape[2] if im.ndim == 3 else 1 for im in images}
    if len(channels) > 1:
        grey = [f.name for f, im in zip(files, images) if im.ndim == 2][:3]
        rgb = [f.name for f, im in zip(files, images) if im.ndim == 3][:3]
        raise InputValueError(f"{name}: mixes grey images ({', '.join(grey)}) and RGB images ({', '.join(rgb)}); expected one kind")
    return images, files
