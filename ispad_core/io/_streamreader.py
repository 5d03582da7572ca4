"""Reading stream files: the lazy, checked :class:`StreamReader` and :func:`open_stream`."""

from __future__ import annotations

import contextlib
import json
import mmap
import numbers
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_choice, check_int
from ispad_core.io._codec import (
    INFLATE_ERRORS,
    UNZSTD_ERRORS,
    ZSTD_FILTER,
    _zstandard,
    inflate,
    unzstd,
)
from ispad_core.io._streamformat import (
    FIELDS,
    IMAGES,
    LABELS,
    MASKS,
    _decode_attrs,
    _part_fingerprint,
    check_stream_objects,
)

# --------------------------------------------------------------------------- reader


@dataclass(frozen=True)
class _Segments:
    """Item ranges of a dataset and the (part) dataset whose chunk ``i - start`` holds item ``i``.

    ``index[j]`` is None or ``(offsets, sizes, filter_masks)`` of the chunks of segment ``j`` in
    its file (offset -1: never written), read from HDF5's chunk index once, so that a read is a
    slice of the memory-mapped file handed straight to the decoder.
    """

    starts: np.ndarray
    ids: list
    codecs: list
    paths: list
    index: list


def _dataset_filters(dset: h5py.Dataset) -> dict:
    """The dataset's filter pipeline, by name (h5py's own view of it, third-party filters by id)."""
    return dset._filters


_ZSTD_KEY = str(ZSTD_FILTER)


def _chunk_codec(dset: h5py.Dataset) -> str:
    """The codec of the dataset's chunks: "gzip", "zstd" or "" (stored as they are)."""
    filters = _dataset_filters(dset)
    return "gzip" if "gzip" in filters else "zstd" if _ZSTD_KEY in filters else ""


def _direct_readable(dset: h5py.Dataset) -> bool:
    """One item per chunk, uint8, and at most one filter, deflate or Zstandard: chunks we decode ourselves."""
    filters = set(_dataset_filters(dset))
    return (
        dset.dtype == np.uint8
        and dset.chunks == (1, *dset.shape[1:])
        and (filters <= {"gzip"} or (filters == {_ZSTD_KEY} and _zstandard is not None))
    )


def _chunk_index(dset: h5py.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Byte offset, size and filter mask of each item's chunk (None where HDF5 cannot list them)."""
    n = dset.shape[0]
    offsets = np.full(n, -1, np.int64)
    sizes = np.zeros(n, np.int64)
    masks = np.zeros(n, np.uint32)

    def visit(info) -> None:
        i = info.chunk_offset[0]
        offsets[i] = info.byte_offset
        sizes[i] = info.size
        masks[i] = info.filter_mask

    try:
        dset.id.chunk_iter(visit)
    except (AttributeError, NotImplementedError, RuntimeError):  # HDF5 before 1.12.3 (or 1.14.0-1)
        return None
    return offsets, sizes, masks


def _check_stream_types(f: h5py.File, path: Path) -> None:
    """Dtypes and channels a stream file may hold (images uint8 (N, H, W[, 1 or 3]), masks uint8)."""
    images, masks, labels = f[IMAGES], f[MASKS], f[LABELS]
    if images.dtype != np.uint8:
        raise InputValueError(f"path: {path}: {IMAGES} must be uint8, got {images.dtype}")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise InputValueError(f"path: {path}: {IMAGES} must be (N, H, W) or (N, H, W, 1 or 3), got shape {images.shape}")
    if masks.dtype != np.uint8:
        raise InputValueError(f"path: {path}: {MASKS} must be uint8 (0/255), got {masks.dtype}")
    if labels.dtype.kind not in "biu":
        raise InputValueError(f"path: {path}: {LABELS} must hold integers 0/1, got dtype {labels.dtype}")
    n = images.shape[0]
    for field, (dtype, item_shape) in FIELDS.items():
        name = f"syn_stream/{field}"
        if name not in f:
            continue
        dset = f[name]
        if dset.dtype != np.dtype(dtype):
            raise InputValueError(f"path: {path}: {name} must be {np.dtype(dtype)}, got {dset.dtype}")
        if dset.shape != (n, *item_shape):
            raise InputValueError(
                f"path: {path}: {name} must have shape {(n, *item_shape)} (one per item), got {dset.shape}"
            )


class StreamReader:
    """Read access to an HDF5 stream file without loading it (see :func:`open_stream`).

    ``len(reader)`` items; ``reader[i]`` is ``(image, mask, label)`` with image
    ``(H, W[, C])`` uint8, mask ``(H, W)`` bool (0/255 on disk), label an int;
    ``reader[a:b]`` (or an integer array) gives ``(images, masks, labels)`` arrays;
    :meth:`read_batch` reads any batch of indices and ``__getitems__`` serves a torch
    ``DataLoader`` a whole batch per call; :meth:`iter_chunks` walks the file in blocks.
    ``attrs`` holds the root attributes with JSON values decoded. Readers can be pickled (they
    reopen the file by path), so a torch ``DataLoader`` with worker processes can use one.

    Opening checks the file: labels other than 0/1, images that are not uint8 ``(N, H, W)`` or
    ``(N, H, W, 1 or 3)``, masks that are not uint8, per-item fields of another dtype or shape,
    (for a virtual merge) parts that changed since the merge, and any object of the format that
    the file does not hold itself (a soft or external link, a group where a dataset belongs, HDF5
    external storage, a virtual dataset other than a merge's) raise ValueError naming the file
    and the object.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InputTypeError(f"path: expected a path, got {type(path).__name__}")
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._closed = False
        self._segments: dict[str, _Segments | None] = {}
        self._part_files: list[h5py.File] = []
        self._maps: dict[Path, memoryview] = {}
        self._mmaps: list[mmap.mmap] = []
        f = self._h5()
        try:
            self._validate(f)
        except Exception:
            self.close()
            raise

    def _h5(self) -> h5py.File:
        if self._closed:
            raise InputValueError(f"{self.path}: the stream is closed")
        if self._file is None or self._pid != os.getpid():
            if not self.path.exists():
                raise FileNotFoundError(f"path: {self.path} does not exist")
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise InputValueError(f"path: {self.path} is not a readable HDF5 file ({exc})") from None
            self._pid = os.getpid()
            self._segments = {}  # dataset ids do not survive a fork
            self._part_files = []
            self._maps = {}
            self._mmaps = []
        return self._file

    def _validate(self, f: h5py.File) -> None:
        names = (IMAGES, LABELS, MASKS) + tuple(f"syn_stream/{field}" for field in FIELDS)
        found = check_stream_objects(f, self.path, names)
        for name in (IMAGES, LABELS, MASKS):
            if name not in found:
                raise InputValueError(f"path: {self.path} is not a stream file: it has no dataset {name!r}")
        n = f[IMAGES].shape[0]
        if f[LABELS].shape != (n,) or f[MASKS].shape != f[IMAGES].shape[:3]:
            raise InputValueError(
                f"path: {self.path}: inconsistent shapes images {f[IMAGES].shape}, labels "
                f"{f[LABELS].shape}, ground_truth {f[MASKS].shape}"
            )
        _check_stream_types(f, self.path)
        if any(_ZSTD_KEY in _dataset_filters(f[name]) for name in (IMAGES, MASKS)):
            with contextlib.suppress(ImportError):  # lets h5py itself (reader.images, slices) decode Zstd
                import hdf5plugin  # noqa: F401
        if "complete" in f.attrs and not bool(f.attrs["complete"]):
            done = int(f.attrs.get("n_done", 0))
            raise InputValueError(
                f"path: {self.path} is an unfinished stream ({done} of {n} items); rerun the write "
                f"with the same settings to complete it"
            )
        if "part_fingerprints" in f.attrs:
            self._check_parts(json.loads(f.attrs["part_fingerprints"]))
        self._n = n
        self._attrs = _decode_attrs(f.attrs)
        labels = f[LABELS][()]
        bad = np.flatnonzero((labels != 0) & (labels != 1))
        if bad.size:
            raise InputValueError(
                f"path: {self.path}: labels must be 0 (good) or 1 (defective); item {int(bad[0])} has "
                f"{labels[bad[0]].item()!r} ({bad.size} bad labels in all)"
            )
        self._labels = labels.astype(np.uint8)

    def _check_parts(self, recorded: list) -> None:
        for rel, fingerprint in recorded:
            src = self.path.parent / rel
            try:
                with h5py.File(src, "r") as part:
                    found = check_stream_objects(part, src, (IMAGES, LABELS, MASKS, "syn_stream/seeds"))
                    now = _part_fingerprint(part) if IMAGES in found and MASKS in found else None
            except OSError as exc:
                raise InputValueError(f"path: {self.path}: its part {rel} cannot be read ({exc})") from None
            if now != fingerprint:
                raise InputValueError(
                    f"path: {self.path} is a merged stream whose part {rel} has changed since the merge "
                    f"(regenerated or replaced: its fingerprint differs); merge the parts again"
                )

    # -- sizes and metadata --------------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes (a copy), with JSON values decoded."""
        return json.loads(json.dumps(self._attrs))

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(H, W)`` or ``(H, W, C)``."""
        return tuple(self._h5()[IMAGES].shape[1:])

    @property
    def labels(self) -> np.ndarray:
        """All labels, ``(N,)`` uint8 (a copy)."""
        return self._labels.copy()

    @property
    def images(self) -> h5py.Dataset:
        """The images dataset itself, for direct h5py access."""
        return self._h5()[IMAGES]

    @property
    def masks(self) -> h5py.Dataset:
        """The ground-truth dataset itself (0/255), for direct h5py access."""
        return self._h5()[MASKS]

    def field(self, name: str) -> np.ndarray | None:
        """A per-item array of :data:`FIELDS` (provenance: ``"seeds"``, ``"sources"``, ``"origins"``,
        ``"attempts"``; visibility: ``"accepted"``, ``"ssr"``, ``"cnr"``, ``"contrast"``), or None
        when the file has none (files written before the visibility figures existed lack them)."""
        check_choice(name, "name", tuple(FIELDS))
        key = f"syn_stream/{name}"
        f = self._h5()
        return f[key][()] if key in f else None

    # -- access --------------------------------------------------------------------------

    def __getitem__(self, key: Any):
        if isinstance(key, (numbers.Integral, np.integer)) and not isinstance(key, bool):
            i = int(key)
            if i < -self._n or i >= self._n:
                raise IndexError(f"index {i} is out of range for a stream of {self._n} items")
            images, masks, labels = self.read_batch([i % self._n])
            return images[0], masks[0], int(labels[0])
        if isinstance(key, slice):
            return self.read_batch(np.arange(*key.indices(self._n)))
        idx = np.asarray(key)
        if idx.ndim == 1 and (idx.dtype.kind in "iu" or idx.size == 0):
            return self.read_batch(idx)
        raise InputTypeError(f"index: expected an int, a slice or a 1-D integer array, got {type(key).__name__}")

    def read_batch(self, indices: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items ``indices`` (any order, repeats allowed) as arrays ``(images, masks, labels)``.

        The stored chunks are read as they are (``read_direct_chunk``) and inflated here, with
        ISA-L when python-isal is installed: a shuffled batch costs about what inflating its chunks
        costs, without HDF5's per-selection overhead. Every chunk is checked (its zlib checksum and
        its size); a damaged one raises an error that names the file and the item.

        Parameters
        ----------
        indices : array_like of int, shape (B,)
            Item indices; negative ones count from the end.

        Returns
        -------
        images : numpy.ndarray of uint8, shape (B, H, W[, C])
        masks : numpy.ndarray of bool, shape (B, H, W)
            True on the defect (stored as 0/255 in the file)
        labels : numpy.ndarray of uint8, shape (B,)

        Raises
        ------
        IndexError
            If an index is out of range.
        ValueError
            If a chunk is damaged (the message names the file and the item).
        """
        idx = np.asarray(indices)
        if idx.ndim != 1 or not (idx.dtype.kind in "iu" or idx.size == 0):
            raise InputTypeError(f"indices: expected a 1-D integer array, got {type(indices).__name__} of shape {idx.shape}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -self._n or idx.max() >= self._n):
            raise IndexError(f"indices out of range for a stream of {self._n} items")
        idx %= max(self._n, 1)
        shape = self.image_shape
        images = np.empty((idx.size, *shape), np.uint8)
        masks = np.empty((idx.size, *shape[:2]), np.uint8)
        self._read_into(IMAGES, idx, images)
        self._read_into(MASKS, idx, masks)
        # 0/255 on disk, bool in memory (the library's one mask convention); in place, no copy
        np.minimum(masks, 1, out=masks)
        return images, masks.view(np.bool_), self._labels[idx]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """Items ``indices`` as a list of ``(image, mask, label)``, read as one batch.

        A torch ``DataLoader`` calls this with the indices of a whole batch when the dataset has
        it, instead of one ``__getitem__`` per item.
        """
        images, masks, labels = self.read_batch(np.asarray(list(indices), np.int64))
        return [(images[k], masks[k], int(labels[k])) for k in range(labels.shape[0])]

    def _read_into(self, name: str, idx: np.ndarray, out: np.ndarray) -> None:
        if idx.size == 0:
            return
        segments = self._chunk_segments(name)
        if segments is None:  # a layout we do not read ourselves: let HDF5 do it
            uniq, inverse = np.unique(idx, return_inverse=True)
            out[...] = self._h5()[name][uniq][inverse]
            return
        flat = out.reshape(idx.size, -1)
        nbytes = flat.shape[1]
        what = "image" if name == IMAGES else "mask"
        which = np.searchsorted(segments.starts, idx, side="right") - 1
        local = idx - segments.starts[which]
        zeros = (0,) * (out.ndim - 1)
        for k in range(idx.size):
            i = int(idx[k])
            seg = int(which[k])
            j = int(local[k])
            index = segments.index[seg]
            if index is not None:  # a slice of the mapped file, no copy before the decoder
                offset, size, filter_mask = int(index[0][j]), int(index[1][j]), int(index[2][j])
                if offset < 0:  # never written: HDF5's fill value
                    flat[k] = self._h5()[name][i].reshape(-1)
                    continue
                mapped = self._mapped(segments.paths[seg])
                if offset + size > len(mapped):
                    raise InputValueError(f"{self._where(segments, seg, i)}: the {what} chunk lies beyond the end of the file (truncated?)")
                data = mapped[offset : offset + size]
            else:
                try:
                    filter_mask, data = segments.ids[seg].read_direct_chunk((j, *zeros))
                except (KeyError, OSError, RuntimeError, ValueError):  # never written: HDF5's fill value
                    flat[k] = self._h5()[name][i].reshape(-1)
                    continue
            codec = segments.codecs[seg]
            if codec and not filter_mask & 1:
                try:
                    data = inflate(data) if codec == "gzip" else unzstd(data, nbytes)
                except INFLATE_ERRORS + UNZSTD_ERRORS as exc:
                    raise InputValueError(f"{self._where(segments, seg, i)}: the {what} chunk is damaged ({exc})") from None
            if len(data) != nbytes:
                raise InputValueError(
                    f"{self._where(segments, seg, i)}: the {what} chunk holds {len(data)} bytes, expected {nbytes}"
                )
            flat[k] = np.frombuffer(data, np.uint8)

    def _mapped(self, path: Path) -> memoryview:
        """The file, memory-mapped read-only (once per process)."""
        view = self._maps.get(path)
        if view is None:
            with open(path, "rb") as fh:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            view = memoryview(mm)
            self._maps[path] = view
            self._mmaps.append(mm)
        return view

    def _where(self, segments: _Segments, seg: int, i: int) -> str:
        path = segments.paths[seg]
        if path == self.path:
            return f"{path}: item {i}"
        return f"{path}: item {i - int(segments.starts[seg])} (item {i} of the merged {self.path})"

    def _chunk_segments(self, name: str) -> _Segments | None:
        """Where the chunks of item ranges of ``name`` live (this file or the parts of a merge)."""
        f = self._h5()
        if name in self._segments:
            return self._segments[name]
        dset = f[name]
        segments = None
        if not dset.is_virtual:
            if _direct_readable(dset):
                segments = _Segments(
                    np.array([0], np.int64), [dset.id], [_chunk_codec(dset)], [self.path], [_chunk_index(dset)]
                )
        else:
            starts, ids, codecs, paths, index = [], [], [], [], []
            ok = True
            for source in dset.virtual_sources():
                (lo, *_), (hi, *_) = source.vspace.get_select_bounds()
                src_path = Path(source.file_name)
                if not src_path.is_absolute():
                    src_path = self.path.parent / src_path
                part = h5py.File(src_path, "r")
                self._part_files.append(part)
                src = part[source.dset_name] if source.dset_name in part else None
                if (
                    src is None
                    or src.is_virtual
                    or not _direct_readable(src)
                    or source.src_space.get_select_type() != h5py.h5s.SEL_ALL
                    or hi - lo + 1 != src.shape[0]
                ):
                    ok = False
                    break
                starts.append(lo)
                ids.append(src.id)
                codecs.append(_chunk_codec(src))
                paths.append(src_path)
                index.append(_chunk_index(src))
            order = np.argsort(starts)
            if ok and starts:
                segments = _Segments(
                    np.asarray(starts, np.int64)[order],
                    [ids[j] for j in order],
                    [codecs[j] for j in order],
                    [paths[j] for j in order],
                    [index[j] for j in order],
                )
        self._segments[name] = segments
        return segments

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        for images, masks, labels in self.iter_chunks():
            for k in range(labels.shape[0]):
                yield images[k], masks[k], int(labels[k])

    def iter_chunks(
        self, size: int = 256, *, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``(images, masks, labels)`` for consecutive blocks of ``size`` items.

        Only one block is in memory at a time.

        Parameters
        ----------
        size : int
            Items per block (the last block may be shorter).
        start, stop : int
            Item range to walk (default: the whole file).
        """
        size = check_int(size, "size", minimum=1)
        start = check_int(start, "start", minimum=0, maximum=self._n)
        stop = self._n if stop is None else check_int(stop, "stop", minimum=start, maximum=self._n)
        for a in range(start, stop, size):
            yield self[a : min(a + size, stop)]

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file; further access raises ValueError."""
        if self._pid == os.getpid():
            for part in self._part_files:
                part.close()
            if self._file is not None:
                self._file.close()
            for view in self._maps.values():
                with contextlib.suppress(BufferError):  # a caller still holds a slice: the GC unmaps it
                    view.release()
            for mm in self._mmaps:
                with contextlib.suppress(BufferError):
                    mm.close()
        self._part_files = []
        self._segments = {}
        self._maps = {}
        self._mmaps = []
        self._file = None
        self._closed = True

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __getstate__(self) -> dict:
        if self._closed:
            raise InputValueError(f"{self.path}: cannot pickle a closed stream")
        return {"path": str(self.path)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        if self._closed:
            return f"StreamReader({str(self.path)!r}, closed)"
        n_def = int(self._labels.sum())
        return f"StreamReader({str(self.path)!r}, {self._n} items of {self.image_shape}, {n_def} defective)"


def open_stream(path: str | os.PathLike) -> StreamReader:
    """Open an HDF5 stream file for reading (see :class:`StreamReader`).

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`write_stream`, ``ispad synth`` or ``ispad merge``.

    Returns
    -------
    StreamReader

    Raises
    ------
    FileNotFoundError
        If the file (or, for a merged file, one of its parts) does not exist.
    ValueError
        If it is not a stream file or is unfinished.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ispad_core.io import write_stream, open_stream
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.h5"
    >>> _ = write_stream(path, np.zeros((3, 4, 4), np.uint8), np.zeros((3, 4, 4)), [0, 0, 0])
    >>> with open_stream(path) as s:
    ...     print([labels.tolist() for _, _, labels in s.iter_chunks(2)])
    [[0, 0], [0]]
    """
    return StreamReader(path)
