"""Sliding-window tiling, stitching, centre crops and random ROI patches.

Everything between a large inspection image and the 256 x 256 patches that the synthesizer and
the classifier see (ISP-AD, sections 3.2 and 4.2):

- :func:`sliding_windows` is the paper's test grid (256 x 256 windows, stride 160), with the last
  row and column of windows moved back to touch the border so every pixel is covered;
- :func:`stitch` puts per-window anomaly maps or scores back into the full image;
- :func:`center_crop` is the 512 -> 256 crop of the real defect patches;
- :func:`random_patches` draws training patches at random positions inside a region of interest.

Images are ``(H, W)`` or ``(H, W, C)``; windows are ``(n, size, size[, C])``; origins are the
``(row, col)`` of each window's top-left pixel as int64 ``(n, 2)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core.tiling import _kernels as K
from ispad_core._shared.validation import (
    RNGLike,
    as_generator,
    check_array,
    check_choice,
    check_float,
    check_int,
)

__all__ = ["WindowStack", "sliding_windows", "stitch", "center_crop", "random_patches"]

_BLOCK_BYTES = 2 * 2**20


# ----------------------------------------------------------------------------- helpers


def _check_image(image: Any, name: str = "image") -> np.ndarray:
    return check_array(image, name, ndim=(2, 3), kinds="biuf")


def _grid_starts(length: int, size: int, stride: int) -> np.ndarray:
    """Window starts along one axis: ``0, stride, 2 * stride, ...`` and, when the last of these
    leaves pixels uncovered, one more window moved back to end exactly at ``length``."""
    starts = np.arange(0, length - size + 1, stride, dtype=np.int64)
    if starts[-1] != length - size:
        starts = np.append(starts, np.int64(length - size))
    return starts


class WindowStack(Sequence):
    """The windows of :func:`sliding_windows`: a read-only, zero-copy stack ``(n, h, w[, C])``.

    A single ndarray cannot hold this grid without copying: its windows start at
    ``0, stride, 2 * stride, ...`` plus one window moved back to touch the border, and an ndarray
    axis has one stride. So the stack is a thin sequence over the image instead: ``stack[i]`` is a
    read-only view of window ``i`` of the image (no pixel is copied), while a slice, an index
    array or ``np.asarray(stack)`` builds a new C-contiguous ndarray of the selected windows
    (a copy, as fancy indexing of an ndarray would).

    Attributes
    ----------
    shape : tuple of int
        ``(n, h, w)`` or ``(n, h, w, C)``.
    dtype : numpy.dtype
        The image's dtype.
    origins : numpy.ndarray of int64, shape (n, 2)
        ``(row, col)`` of each window's top-left pixel (read-only).
    grid : tuple of int
        ``(rows, cols)`` of the window grid; ``n == rows * cols``.
    """

    __slots__ = ("_windows", "origins", "grid", "shape", "dtype")

    def __init__(self, image: np.ndarray, row_starts: np.ndarray, col_starts: np.ndarray, size: int):
        view = sliding_window_view(image, (size, size), axis=(0, 1))  # read-only, zero-copy
        if image.ndim == 3:  # (H', W', C, h, w) -> (H', W', h, w, C), still a view
            view = np.moveaxis(view, 2, -1)
        self._windows = view
        rr, cc = np.meshgrid(row_starts, col_starts, indexing="ij")
        origins = np.stack([rr.ravel(), cc.ravel()], axis=1).astype(np.int64)
        origins.flags.writeable = False
        self.origins = origins
        self.grid = (int(row_starts.size), int(col_starts.size))
        self.shape = (int(origins.shape[0]), size, size, *image.shape[2:])
        self.dtype = image.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions of the stack (3 for grey, 4 for colour)."""
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes that ``np.asarray(stack)`` would allocate."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        if isinstance(index, numbers.Integral) and not isinstance(index, bool):
            i = int(index)
            n = self.shape[0]
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for {n} windows")
            r, c = self.origins[i]
            return self._windows[r, c]
        selected = self.origins[index]
        if selected.ndim != 2:
            raise IndexError(f"windows: unsupported index {index!r}")
        return np.ascontiguousarray(self._windows[selected[:, 0], selected[:, 1]])

    def __iter__(self):
        for r, c in self.origins:
            yield self._windows[r, c]

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise InputValueError("a WindowStack cannot be converted to an ndarray without a copy")
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"WindowStack(shape={self.shape}, dtype={self.dtype}, grid={self.grid})"


# ----------------------------------------------------------------------------- public API


def sliding_windows(image: Any, size: int = 256, stride: int = 160) -> tuple[WindowStack, np.ndarray]:
    """Overlapping square windows on a regular grid that covers every pixel of ``image``.

    Window starts along each axis are ``0, stride, 2 * stride, ...``; when the last of them leaves
    pixels uncovered, one more row (column) of windows is moved back to end exactly at the border.
    The paper's test grid is ``size=256, stride=160``: a 2048 x 2048 image gives 13 x 13 windows.

    Parameters
    ----------
    image : numpy.ndarray, shape (H, W) or (H, W, C)
        Any numeric or bool dtype; ``H`` and ``W`` must be at least ``size``.
    size : int
        Window side in pixels, >= 1.
    stride : int
        Step between window starts, ``1 <= stride <= size`` (a larger stride would leave gaps).

    Returns
    -------
    tiles : WindowStack, shape (n, size, size[, C])
        Read-only and zero-copy: ``tiles[i]`` is a read-only view of the image; a slice or
        ``np.asarray(tiles)`` gives an ndarray copy (see :class:`WindowStack` for why a single
        ndarray view of this grid does not exist).
    origins : numpy.ndarray of int64, shape (n, 2)
        ``(row, col)`` of each window's top-left pixel, row by row.

    Raises
    ------
    TypeError
        If ``image`` is not numeric or ``size``/``stride`` are not ints.
    ValueError
        If ``image`` is not 2-D or 3-D, is smaller than ``size``, ``size < 1``, or ``stride`` is
        outside ``[1, size]``.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.tiling import sliding_windows, stitch
    >>> image = np.random.default_rng(0).integers(0, 256, (2048, 2048), dtype=np.uint8)
    >>> tiles, origins = sliding_windows(image)
    >>> tiles.shape, tiles.grid
    ((169, 256, 256), (13, 13))
    >>> origins[12], origins[-1]
    (array([   0, 1792]), array([1792, 1792]))
    >>> np.shares_memory(tiles[5], image), tiles[5].flags.writeable
    (True, False)
    >>> bool((stitch(tiles, origins, image.shape) == image).all())
    True
    """
    image = _check_image(image)
    size = check_int(size, "size", minimum=1)
    stride = check_int(stride, "stride", minimum=1)
    if stride > size:
        raise InputValueError(
            f"stride: expected an int <= size ({size}) so that windows leave no gaps, got {stride}"
        )
    h, w = image.shape[:2]
    if h < size or w < size:
        raise InputValueError(
            f"image: expected height and width >= size ({size}), got shape {image.shape}"
        )
    tiles = WindowStack(image, _grid_starts(h, size, stride), _grid_starts(w, size, stride), size)
    return tiles, tiles.origins.copy()


def _check_origins(origins: Any, n: int) -> np.ndarray:
    origins = check_array(origins, "origins", ndim=2, kinds="iu")
    if origins.shape != (n, 2):
        raise InputValueError(f"origins: expected shape ({n}, 2) like tiles, got {origins.shape}")
    return origins.astype(np.int64, copy=False)


def _window_size(size: Any) -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        s = check_int(size, "size", minimum=1)
        return s, s
    if isinstance(size, Sequence) and not isinstance(size, (str, bytes)) and len(size) == 2:
        return check_int(size[0], "size[0]", minimum=1), check_int(size[1], "size[1]", minimum=1)
    raise InputTypeError(f"size: expected an int or an (h, w) pair of ints, got {size!r}")


def _stitch_geometry(tiles: np.ndarray, origins: np.ndarray, shape: Any, size: Any) -> tuple[int, int, int, int, int]:
    """``(H, W, h, w, channels)`` of :func:`stitch`'s output and windows, checked against each other."""
    if isinstance(shape, np.ndarray):
        shape = tuple(shape.tolist())
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) not in (2, 3):
        raise InputValueError(f"shape: expected (H, W) or (H, W, C), got {shape!r}")
    H = check_int(shape[0], "shape[0]", minimum=1)
    W = check_int(shape[1], "shape[1]", minimum=1)
    if tiles.ndim == 1:
        if size is None:
            raise InputValueError("size: expected the window size for per-window scalar scores, got None")
        h, w = _window_size(size)
        channels = 1
    else:
        h, w = tiles.shape[1:3]
        if size is not None and _window_size(size) != (h, w):
            raise InputValueError(f"size: expected {(h, w)} like tiles, got {size!r}")
        channels = tiles.shape[3] if tiles.ndim == 4 else 1
        if tiles.ndim == 4 and len(shape) == 3 and shape[2] != channels:
            raise InputValueError(f"shape: expected {channels} channels like tiles, got {tuple(shape)}")
    if h > H or w > W:
        raise InputValueError(f"tiles: window size {(h, w)} does not fit into shape {(H, W)}")
    outside = (origins < 0).any(axis=1) | (origins[:, 0] > H - h) | (origins[:, 1] > W - w)
    if outside.any():
        bad = int(np.flatnonzero(outside)[0])
        raise InputValueError(
            f"origins: window {bad} at {tuple(int(v) for v in origins[bad])} of size {(h, w)} "
            f"is not inside shape {(H, W)}"
        )
    return H, W, h, w, channels


def stitch(
    tiles: Any,
    origins: Any,
    shape: Sequence[int],
    *,
    reduce: str = "mean",
    size: int | tuple[int, int] | None = None,
) -> np.ndarray:
    """Put per-window maps or scores back into an image of the given shape.

    Every output pixel is the mean (or maximum) of the values that the windows covering it give
    it; pixels no window covers are 0. ``stitch(*sliding_windows(x), x.shape)`` reproduces ``x``
    exactly (with ``reduce="max"`` even in dtype; the mean of an integer image is float64).

    Parameters
    ----------
    tiles : array_like, shape (n, h, w), (n, h, w, C) or (n,)
        Per-window maps (e.g. anomaly maps), multi-channel windows, or one scalar score per
        window that fills its whole window (then ``size`` is required). A :class:`WindowStack`
        is accepted. Numeric or bool dtype.
    origins : array_like of int, shape (n, 2)
        ``(row, col)`` of each window's top-left pixel; every window must lie inside ``shape``.
    shape : sequence of int
        ``(H, W)`` or ``(H, W, C)`` (e.g. ``image.shape``). Only ``H, W`` set the output size;
        the output is ``(H, W)`` plus the trailing channel axis of ``tiles``, if any, whose
        length must then match ``C``.
    reduce : {"mean", "max"}
        How overlapping windows combine.
    size : int or (int, int), optional
        Window size for scalar scores; for maps it is read from ``tiles`` (and, if given, must
        agree with it).

    Returns
    -------
    numpy.ndarray, shape (H, W) or (H, W, C)
        ``reduce="max"``: the dtype of ``tiles``. ``reduce="mean"``: the dtype of floating
        ``tiles``, float64 for integer or bool ``tiles``.

    Raises
    ------
    TypeError
        If ``tiles`` or ``origins`` have a wrong dtype.
    ValueError
        On wrong shapes, windows outside ``shape``, a channel mismatch, a missing ``size`` for
        scalar scores, or an unknown ``reduce``.

    Notes
    -----
    Blocks of output rows are reduced in private float64 buffers, each pixel from the windows
    covering it taken in origin-row order, so results do not depend on the number of threads.
    Tiles are read once, a block's rows of each tile as one contiguous stretch, which keeps the
    cost close to a memory copy of ``tiles``. A NaN propagates through the mean
    and is ignored by the maximum (like ``numpy.fmax``: a pixel is NaN only where every window
    covering it gives NaN).

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.tiling import stitch
    >>> scores = np.array([1.0, 3.0])
    >>> origins = np.array([[0, 0], [0, 2]])
    >>> stitch(scores, origins, (2, 6), size=(2, 4))
    array([[1., 1., 2., 2., 3., 3.],
           [1., 1., 2., 2., 3., 3.]])
    >>> stitch(scores, origins, (2, 6), size=(2, 4), reduce="max")
    array([[1., 1., 3., 3., 3., 3.],
           [1., 1., 3., 3., 3., 3.]])
    """
    reduce = check_choice(reduce, "reduce", ("mean", "max"))
    if isinstance(tiles, WindowStack):
        tiles = np.asarray(tiles)
    tiles = check_array(tiles, "tiles", ndim=(1, 3, 4), kinds="biuf")
    n = tiles.shape[0]
    origins = _check_origins(origins, n)
    H, W, h, w, channels = _stitch_geometry(tiles, origins, shape, size)

    is_bool = tiles.dtype == np.bool_
    is_half = tiles.dtype == np.float16  # Numba has no float16: work in float32, cast back
    work = tiles.view(np.uint8) if is_bool else tiles.astype(np.float32) if is_half else tiles
    if reduce == "max":
        out_dtype = work.dtype
        # NaN for floats: a running fmax started at -inf would turn an all-NaN pixel into -inf
        lowest = np.nan if out_dtype.kind == "f" else np.iinfo(out_dtype).min
    else:
        out_dtype = work.dtype if work.dtype.kind == "f" else np.dtype(np.float64)
        lowest = 0
    lowest = np.array(lowest, dtype=out_dtype)[()]
    rows = np.ascontiguousarray(origins[:, 0])
    cols = np.ascontiguousarray(origins[:, 1])
    order = np.argsort(rows, kind="stable").astype(np.int64)
    out = np.empty((H, W * channels), dtype=out_dtype)
    # Output rows per parallel block: the mean's float64 buffer of a block stays near 2 MB (about
    # a core's share of cache), and a block spans many rows of each tile, which are then read as
    # long contiguous stretches (128 rows measured 1.4x faster than one row at a time).
    block = int(min(max(_BLOCK_BYTES // (8 * W * channels), 8), 256))
    if tiles.ndim == 1:
        K.stitch_scores(np.ascontiguousarray(work), rows, cols, order, h, w, reduce == "max", lowest, block, out)
    else:
        flat = np.ascontiguousarray(work).reshape(n, h, w * channels)
        if reduce == "max":
            K.stitch_max(flat, rows, cols, order, w, channels, lowest, block, out)
        else:
            K.stitch_mean(flat, rows, cols, order, w, channels, out_dtype == np.float32, block, out)
    out = out.reshape((H, W, channels) if tiles.ndim == 4 else (H, W))
    if is_bool and reduce == "max":
        out = out.view(np.bool_)
    if is_half:
        out = out.astype(np.float16)
    return out


def center_crop(patch: Any, size: int | tuple[int, int], *, batch: bool = False) -> np.ndarray:
    """The central ``size x size`` region of a patch (a view, no copy).

    The paper labels real defects centrally on 512 x 512 patches and crops them to 256 x 256
    during training, after augmentation. The crop starts at ``(H - h) // 2, (W - w) // 2``.

    Parameters
    ----------
    patch : numpy.ndarray, shape (H, W) or (H, W, C); with ``batch=True`` (N, H, W[, C])
        Any dtype.
    size : int or (int, int)
        Output height and width, ``1 <= size <= (H, W)``.
    batch : bool
        Whether the first axis indexes patches (then all of them are cropped).

    Returns
    -------
    numpy.ndarray
        A view of ``patch`` with the spatial axes cropped to ``size``.

    Raises
    ------
    TypeError
        If ``size`` is not an int or a pair of ints.
    ValueError
        If ``patch`` has the wrong number of dimensions or is smaller than ``size``.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.tiling import center_crop
    >>> patch = np.arange(36).reshape(6, 6)
    >>> center_crop(patch, 2)
    array([[14, 15],
           [20, 21]])
    >>> center_crop(np.zeros((4, 512, 512, 3), np.uint8), 256, batch=True).shape
    (4, 256, 256, 3)
    """
    offset = 1 if batch else 0
    patch = check_array(patch, "patch", ndim=(2 + offset, 3 + offset))
    h, w = _window_size(size)
    H, W = patch.shape[offset : offset + 2]
    if h > H or w > W:
        raise InputValueError(f"size: expected at most the patch size {(H, W)}, got {(h, w)}")
    top = (H - h) // 2
    left = (W - w) // 2
    index = (slice(None),) * offset + (slice(top, top + h), slice(left, left + w))
    return patch[index]


def random_patches(
    image: Any,
    n: int,
    size: int,
    *,
    roi: Any = None,
    min_roi_fraction: float = 1.0,
    rng: RNGLike = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Patches at uniformly random positions whose window lies in a region of interest.

    A window position is valid when at least ``min_roi_fraction`` of its ``size * size`` pixels
    lie inside ``roi``; the counts come from an integral image (summed-area table) of the ROI, so
    the cost is O(H * W) whatever ``size`` is. Positions are drawn uniformly, with replacement,
    from all valid ones (the paper's random patch extraction inside the ROI, section 3.2).

    Parameters
    ----------
    image : numpy.ndarray, shape (H, W) or (H, W, C)
        Any numeric dtype.
    n : int
        Number of patches, >= 0.
    size : int
        Patch side, ``1 <= size <= min(H, W)``.
    roi : numpy.ndarray of bool or int, shape (H, W), optional
        Region of interest (nonzero = inside). None means the whole image.
    min_roi_fraction : float
        Minimum fraction of a window's pixels inside the ROI, in ``(0, 1]``.
    rng : None, int or numpy.random.Generator
        Source of the positions.

    Returns
    -------
    patches : numpy.ndarray, shape (n, size, size[, C])
        A new C-contiguous array of ``image``'s dtype.
    origins : numpy.ndarray of int64, shape (n, 2)
        ``(row, col)`` of each patch's top-left pixel in ``image``.

    Raises
    ------
    TypeError
        On wrong argument types or dtypes.
    ValueError
        On wrong shapes (``roi`` must match ``image``'s ``(H, W)``), an image smaller than
        ``size``, a ``min_roi_fraction`` outside ``(0, 1]``, or a ROI that holds no valid window.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.tiling import random_patches
    >>> image = np.arange(100 * 120, dtype=np.uint16).reshape(100, 120)
    >>> roi = np.zeros((100, 120), bool); roi[10:60, 20:90] = True
    >>> patches, origins = random_patches(image, 5, 32, roi=roi, rng=0)
    >>> patches.shape, patches.dtype
    ((5, 32, 32), dtype('uint16'))
    >>> bool(all(roi[r:r + 32, c:c + 32].all() for r, c in origins))
    True
    >>> bool((patches[0] == image[origins[0, 0]:origins[0, 0] + 32, origins[0, 1]:origins[0, 1] + 32]).all())
    True
    """
    image = check_array(image, "image", ndim=(2, 3), kinds="biuf")
    n = check_int(n, "n", minimum=0)
    size = check_int(size, "size", minimum=1)
    min_roi_fraction = check_float(
        min_roi_fraction, "min_roi_fraction", minimum=0.0, maximum=1.0, min_inclusive=False
    )
    gen = as_generator(rng)
    H, W = image.shape[:2]
    if H < size or W < size:
        raise InputValueError(f"image: expected height and width >= size ({size}), got shape {image.shape}")
    nr, nc = H - size + 1, W - size + 1
    if roi is None:
        rows = gen.integers(0, nr, size=n, dtype=np.int64)
        cols = gen.integers(0, nc, size=n, dtype=np.int64)
        origins = np.stack([rows, cols], axis=1)
    else:
        roi = check_array(roi, "roi", ndim=2, kinds="biu")
        if roi.shape != (H, W):
            raise InputValueError(f"roi: expected shape {(H, W)} like image, got {roi.shape}")
        roi_u8 = roi.view(np.uint8) if roi.dtype == np.bool_ else roi
        sat_dtype = np.int32 if H * W < 2**31 else np.int64
        sat = np.empty((H + 1, W + 1), dtype=sat_dtype)
        K.summed_area_table(roi_u8, sat)
        need = max(1, math.ceil(min_roi_fraction * size * size - 1e-9))
        valid = np.empty((nr, nc), dtype=np.bool_)
        total = int(K.valid_origins(sat, size, size, need, valid))
        if total == 0:
            raise InputValueError(
                f"roi: no {size} x {size} window has at least {min_roi_fraction:.0%} of its pixels "
                f"inside the region of interest ({int(sat[-1, -1])} ROI pixels in an image of "
                f"shape {(H, W)})"
            )
        ranks = gen.integers(0, total, size=n, dtype=np.int64)
        sorter = np.argsort(ranks, kind="stable")
        picked = np.empty((n, 2), dtype=np.int64)
        K.pick_origins(valid, ranks[sorter], picked)
        origins = np.empty_like(picked)
        origins[sorter] = picked
    # copied as raw bytes: one compiled kernel serves every dtype (float16 and bool included)
    pixel_bytes = (image.shape[2] if image.ndim == 3 else 1) * image.dtype.itemsize
    src = np.ascontiguousarray(image).reshape(H, W, -1).view(np.uint8).reshape(H, W * pixel_bytes)
    out = np.empty((n, size, size * pixel_bytes), dtype=np.uint8)
    if n:
        K.gather_windows(src, origins[:, 0].copy(), origins[:, 1].copy(), pixel_bytes, out)
    out = out.view(image.dtype).reshape((n, size, size) + image.shape[2:])
    return out, origins
