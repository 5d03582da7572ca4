"""HDF5 stream files: a crash-safe, resumable writer, a lazy reader and merging of parts.

Layout (DESIGN.md, "Files")::

    /syn_stream/images     (N, H, W[, 1 or 3]) uint8, one patch per chunk, gzip-filter (or Zstd) chunks
    /syn_stream/labels     (N,) uint8, 0 good, 1 defective
    /syn_stream/<field>    optional per-item provenance: seeds (uint32), sources (uint16),
                           origins (N, 2) int32, attempts (uint16), and the visibility figures
                           of each defect: accepted (uint8), ssr, cnr, contrast (float64)
    /ground_truth          (N, H, W) uint8, 0 or 255, one mask per chunk
    attributes on /        format, format_version, ispad_core_version, compression, batch_size,
                           the caller's attributes (dicts and lists as JSON), job, n_done, complete

How a write survives an interruption. Items are written in batches of ``batch_size`` to
``FILE.part`` beside the final name; after each batch the attribute ``n_done`` is updated and the
file flushed, so the file on disk always holds a consistent checkpoint. On success the part is
flushed, fsynced and renamed to ``FILE`` (``os.replace``): there is never a half-written file under
the final name. A new writer for the same ``FILE`` and the same job (the attribute ``job``: every
setting that decides the bytes) finds the part, copies its first ``n_done`` items into a fresh
part (each chunk checked by its zlib or zstd checksum on the way, and the labels) and continues
from there. Copying instead of appending in place is what makes a resumed file byte-identical to
an uninterrupted one: all chunks are written with ``write_direct_chunk`` in the same order, so
HDF5 allocates the same addresses. The copy gives the old file's disk blocks back batch by batch
(holes punched where the copied chunks were, on Linux), so a resume needs room for about one batch
more than the part, and a resume interrupted while copying takes each batch from the new part or,
beyond it, from the old one.

One writer per file. A writer holds an OS lock on ``FILE.lock`` (:func:`ispad_core._files.exclusive_lock`)
from its start to its commit, so a second writer of the same file fails at once instead of
touching the first one's part; the part is created under a unique name and renamed to
``FILE.part`` (never opened through a link there), and the commit renames only the file this
writer wrote (same inode) and only over a regular file.

Reading. :class:`StreamReader` checks dtypes, channels and labels on open and reads batches by
slicing the memory-mapped file at the offsets of HDF5's chunk index, decoding each chunk itself
(ISA-L or zlib for deflate, zstandard for Zstd) and checking its checksum and size. A file is
replaced by a rename, never rewritten in place, so the mapping stays valid; a file truncated in
place by another program while it is mapped would end the reading process (SIGBUS).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import numbers
import os
import stat
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ispad_core._files import _umask, check_output_path, exclusive_lock, fsync_dir
from ispad_core._validation import check_array, check_choice, check_int
from ispad_core._version import __version__
from ispad_core.io._codec import (
    COMPRESSIONS,
    INFLATE_ERRORS,
    LEGACY_COMPRESSIONS,
    UNZSTD_ERRORS,
    ZSTD_FILTER,
    _zstandard,
    check_chunk,
    compress_rows,
    dataset_filter,
    inflate,
    unzstd,
)

FORMAT = "ispad-stream"
FORMAT_VERSION = 1
IMAGES = "syn_stream/images"
LABELS = "syn_stream/labels"
MASKS = "ground_truth"
FIELDS: dict[str, tuple[type, tuple[int, ...]]] = {
    "seeds": (np.uint32, ()),
    "sources": (np.uint16, ()),
    "origins": (np.int32, (2,)),
    "attempts": (np.uint16, ()),
    "accepted": (np.uint8, ()),
    "ssr": (np.float64, ()),
    "cnr": (np.float64, ()),
    "contrast": (np.float64, ()),
}
"""Optional per-item datasets under ``syn_stream/``: dtype and per-item shape.

``accepted``, ``ssr``, ``cnr`` and ``contrast`` are the visibility figures of each item's defect
(0 for good items): whether it passed the synthesizer's test, the sum of squared residuals
(8-bit grey levels squared), the contrast-to-noise ratio, and the mean absolute change of the
mask's pixels in 8-bit grey levels. Files written before they existed lack them and stay readable.
"""

_WRITER_ATTRS = (
    "format",
    "format_version",
    "ispad_core_version",
    "compression",
    "batch_size",
    "json_attrs",
    "job",
    "n_done",
    "complete",
    "part_fingerprints",
)
_HIDDEN_ATTRS = ("json_attrs", "job", "n_done", "complete", "part_fingerprints")


def part_path(path: Path) -> Path:
    """The temporary file a write of ``path`` goes to until it is complete."""
    return path.with_name(path.name + ".part")


def _old_part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part.old")


def _older_part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part.older")


_PUNCH_HOLE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE (Linux)
_fallocate = None


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Byte ranges ``[a, b)`` joined where they touch or overlap."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _punch(fd: int, offset: int, size: int) -> bool:
    """Give the disk blocks of ``[offset, offset + size)`` of a file back (Linux; False elsewhere).

    The bytes read as zeros afterwards; the file keeps its size and every other byte.
    """
    global _fallocate
    if _fallocate is None:
        try:
            import ctypes
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            _fallocate = libc.fallocate
        except (OSError, AttributeError, TypeError):
            _fallocate = False
    if not _fallocate or size <= 0:
        return False
    return _fallocate(fd, _PUNCH_HOLE, offset, size) == 0


# --------------------------------------------------------------------------- attributes


def _encode_attrs(attrs: Mapping[str, Any], name: str) -> tuple[dict[str, Any], list[str]]:
    """HDF5-storable values: str, int, float and bool as they are, anything else as JSON."""
    if not isinstance(attrs, Mapping):
        raise TypeError(f"{name}: expected a mapping of attribute names to values, got {type(attrs).__name__}")
    encoded: dict[str, Any] = {}
    as_json: list[str] = []
    for key, value in attrs.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{name}: attribute names must be non-empty strings, got {key!r}")
        if key in _WRITER_ATTRS:
            raise ValueError(f"{name}: attribute name {key!r} is reserved for the writer")
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, (bool, str)) or (isinstance(value, numbers.Integral) and abs(int(value)) < 2**63):
            encoded[key] = value
        elif isinstance(value, float):
            encoded[key] = value
        else:
            try:
                encoded[key] = json.dumps(value, sort_keys=True, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"{name}[{key!r}]: expected a str, number, bool or JSON-serialisable value, got "
                    f"{type(value).__name__} ({exc})"
                ) from None
            as_json.append(key)
    return encoded, sorted(as_json)


def _decode_attrs(h5attrs: h5py.AttributeManager) -> dict[str, Any]:
    json_keys = set(json.loads(h5attrs["json_attrs"])) if "json_attrs" in h5attrs else set()
    out: dict[str, Any] = {}
    for key in sorted(h5attrs.keys()):
        if key in _HIDDEN_ATTRS:
            continue
        value = h5attrs[key]
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, np.generic):
            value = value.item()
        if key in json_keys:
            value = json.loads(value)
        out[key] = value
    return out


# --------------------------------------------------------------------------- writer


def _job(
    *, n: int, image_shape: tuple, fields: tuple, compression: str, batch_size: int, encoded: dict
) -> str:
    return json.dumps(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "ispad_core_version": __version__,
            "n": n,
            "image_shape": list(image_shape),
            "fields": list(fields),
            "compression": compression,
            "batch_size": batch_size,
            "attrs": encoded,
        },
        sort_keys=True,
    )


def _check_out_path(path: Any, name: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a path, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(f"{name}: {path} is a directory; expected a file name such as stream.h5")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{name}: the directory of {path} does not exist")
    check_output_path(path, name, overwrite=True)  # a link or a non-regular file: refused, overwrite or not
    return path


def _check_part_path(path: Path, name: str) -> None:
    """Refuse a symbolic link or a non-regular file where the writer keeps its unfinished file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise ValueError(f"{name}: {path} is a symbolic link; refusing to write or read through it (remove the link first)")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{name}: {path} exists and is not a regular file; refusing to use or replace it")


def _identity(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_dev, st.st_ino


class StreamWriter:
    """Crash-safe, resumable writer of an HDF5 stream file (the low-level half of :func:`write_stream`).

    Items are appended in batches of exactly ``batch_size`` (the last may be shorter) to
    ``path + ".part"``; :meth:`commit` renames the part to ``path`` once all ``n`` items are in.
    The writer holds the lock of ``path`` from construction to commit or close: a second writer
    raises :class:`ispad_core._files.OutputBusyError` at once.
    Used as a context manager it commits on a clean exit when complete and otherwise keeps the part
    file, so that a new writer with the same settings resumes it (see :attr:`n_done`).

    Parameters
    ----------
    path : str or os.PathLike
        Final file name.
    n : int
        Number of items the file will hold (>= 1).
    image_shape : tuple of int
        ``(H, W)`` or ``(H, W, C)`` of each image; masks are ``(H, W)``.
    attrs : mapping, optional
        Attributes stored on the file's root: str, int, float and bool as they are, dicts and
        lists as JSON (decoded again by :func:`open_stream`).
    fields : sequence of str
        Optional per-item datasets to create, from ``"seeds"``, ``"sources"``, ``"origins"``,
        ``"attempts"``, ``"accepted"``, ``"ssr"``, ``"cnr"``, ``"contrast"`` (see :data:`FIELDS`).
    compression : {"isal", "zlib", "zstd", "none"}
        Chunk compression. ``"isal"`` (default): ISA-L deflate level 1 through python-isal;
        ``"zlib"``: zlib level 1; both are standard zlib streams that HDF5's built-in gzip filter
        reads. ``"zstd"``: Zstandard level 1 for HDF5's registered Zstd filter (32015): reads about
        four times faster, but other HDF5 readers need the filter plugin (``import hdf5plugin``). (``"fast"``, the compression of files written by earlier
        versions, is accepted only to copy their chunks, as :func:`merge_streams` does.)
    batch_size : int
        Items per append and per checkpoint.
    overwrite : bool
        Replace an existing file at ``path`` (only when the new one is complete), and discard an
        unfinished part that belongs to a different job.
    resume : bool
        Continue an unfinished part of the same job (default); False discards it (a part of a
        different job still needs ``overwrite``).
    show_progress : bool
        Show a progress bar on stderr while a resume checks and copies the finished items (a
        large part takes a while); default False.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False, or if an unfinished part of a different job
        is in the way (with ``resume`` True or False).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n: int,
        image_shape: Sequence[int],
        attrs: Mapping[str, Any] | None = None,
        fields: Sequence[str] = (),
        compression: str = "isal",
        batch_size: int = 256,
        overwrite: bool = False,
        resume: bool = True,
        show_progress: bool = False,
    ) -> None:
        self._show_progress = bool(show_progress)
        self.path = _check_out_path(path, "path")
        self.n = check_int(n, "n", minimum=1)
        shape = tuple(check_int(s, "image_shape", minimum=1) for s in image_shape)
        if len(shape) not in (2, 3):
            raise ValueError(f"image_shape: expected (H, W) or (H, W, C), got {shape}")
        self.image_shape = shape
        self.compression = check_choice(compression, "compression", COMPRESSIONS + LEGACY_COMPRESSIONS)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        fields = tuple(fields)
        for f in fields:
            check_choice(f, "fields", tuple(FIELDS))
        self.fields = tuple(f for f in FIELDS if f in fields)
        encoded, as_json = _encode_attrs(attrs or {}, "attrs")
        self._attrs = encoded
        self._json_keys = as_json
        self.job = _job(
            n=self.n,
            image_shape=shape,
            fields=self.fields,
            compression=self.compression,
            batch_size=self.batch_size,
            encoded=encoded,
        )
        self.overwrite = bool(overwrite)
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path} exists; pass overwrite=True (ispad: --overwrite) to replace it")
        self.part = part_path(self.path)
        self._file: h5py.File | None = None
        self._lock = contextlib.ExitStack()
        # Held until commit or close: a second writer of the same file fails here, at once, before
        # it looks at (let alone discards or renames) the unfinished file of this one.
        self._lock.enter_context(exclusive_lock(self.path, name="path"))
        try:
            self._setup(resume)
        except BaseException:
            self._lock.close()
            raise

    def _setup(self, resume: bool) -> None:
        self._n_done = 0
        self.resumed_from = 0
        """Items taken over from an unfinished part (0 for a fresh write)."""
        self.timings = {"compress": 0.0, "write": 0.0}
        """Seconds spent compressing chunks and handing them to HDF5 (including flushes)."""
        sources = self._find_resumable(resume)
        self._create()
        if sources:
            try:
                self._replay(sources)
            except BaseException:
                self.close()
                raise
            for source in sources:
                source.unlink()

    # -- setup ---------------------------------------------------------------------------

    def _find_resumable(self, resume: bool) -> list[Path]:
        """The unfinished files of this job (the part, and copies a resume was replacing), most items first.

        Each is moved off ``FILE.part`` so that the new part can take that name; the others (of
        another job with ``overwrite``, unreadable ones, or all with ``resume=False``) are removed.
        """
        names = (self.part, _old_part_path(self.path), _older_part_path(self.path))
        found: list[tuple[int, Path]] = []
        for candidate in names:
            _check_part_path(candidate, "path")
            if not candidate.exists():
                continue
            try:
                with h5py.File(candidate, "r") as f:
                    job = f.attrs["job"]
                    done = int(f.attrs["n_done"])
            except Exception as exc:  # a part damaged by a crash: ours to discard
                warnings.warn(f"discarding unreadable unfinished file {candidate} ({exc})", RuntimeWarning, stacklevel=4)
                candidate.unlink()
                continue
            if isinstance(job, bytes):
                job = job.decode()
            if job != self.job:
                if not self.overwrite:
                    raise FileExistsError(
                        f"{candidate} holds an unfinished write with different settings "
                        f"({_job_difference(job, self.job)}); rerun with the same settings to resume "
                        f"it, or pass overwrite=True (ispad: --overwrite) to discard it"
                    )
                candidate.unlink()
                continue
            if not resume or done == 0:  # nothing to take over (or the caller asked to start over)
                candidate.unlink()
                continue
            found.append((done, candidate))
        found.sort(key=lambda dc: -dc[0])
        if len(found) == len(names):  # all three names taken: the least complete goes
            _, dropped = found.pop()
            dropped.unlink()
        sources = []
        for done, candidate in found:
            if candidate == self.part:
                free = next(p for p in names[1:] if not p.exists())
                os.replace(self.part, free)
                candidate = free
            sources.append(candidate)
        return sources

    def _create(self) -> None:
        _check_part_path(self.part, "path")
        # A fresh file of our own (O_CREAT | O_EXCL under a unique name), renamed to FILE.part: a
        # rename replaces a link at that name instead of writing through it.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".new", dir=self.path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would outlive the rename: a normal file's mode
        os.close(fd)
        try:
            f = h5py.File(tmp_name, "w")
        except BaseException:
            os.unlink(tmp_name)
            raise
        self._identity = _identity(Path(tmp_name))
        try:
            os.replace(tmp_name, self.part)
        except BaseException:
            f.close()
            os.unlink(tmp_name)
            raise
        self._file = f
        n, shape = self.n, self.image_shape
        filt = dataset_filter(self.compression)
        f.create_dataset(IMAGES, shape=(n, *shape), dtype=np.uint8, chunks=(1, *shape), **filt)
        f.create_dataset(LABELS, shape=(n,), dtype=np.uint8)
        for name in self.fields:
            dtype, item_shape = FIELDS[name]
            f.create_dataset(f"syn_stream/{name}", shape=(n, *item_shape), dtype=dtype)
        f.create_dataset(MASKS, shape=(n, *shape[:2]), dtype=np.uint8, chunks=(1, *shape[:2]), **filt)
        _write_root_attrs(f, self, n_done=0, complete=False)
        f.flush()

    def _replay(self, sources: list[Path]) -> None:
        """Copy the checkpointed items of the unfinished files batch by batch, as the original
        writes did, each batch from the first file that holds it intact.

        The disk blocks of every chunk copied are given back at once (a hole punched in the old
        file), so a resume needs room for about one batch more than the part, not for the part
        twice; a resume that is itself interrupted finds each batch in the new part or, beyond
        it, in the old file.
        """
        image_bytes = int(np.prod(self.image_shape))
        mask_bytes = int(np.prod(self.image_shape[:2]))
        zeros = (0,) * len(self.image_shape)
        with contextlib.ExitStack() as stack:
            files = [stack.enter_context(h5py.File(src, "r")) for src in sources]
            fds = []
            for src in sources:
                fd = os.open(src, os.O_RDWR | os.O_NOFOLLOW)
                stack.callback(os.close, fd)
                fds.append(fd)
            dones = [int(f.attrs["n_done"]) for f in files]
            from ispad_core._progress import progress

            bar = stack.enter_context(progress(
                total=max(dones), desc=f"resuming {self.path.name}: checking and copying", unit="patch",
                disable=not getattr(self, "_show_progress", False),
            ))
            for start in range(0, max(dones), self.batch_size):
                stop = min(start + self.batch_size, max(dones))
                if stop - start != self.batch_size and stop != self.n:
                    break  # not a checkpoint this job makes; cannot happen unless tampered
                batch = None
                for src, f, fd, done in zip(sources, files, fds, dones):
                    if done >= stop:
                        batch = self._read_checked(f, start, stop, image_bytes, mask_bytes, zeros)
                        if batch is not None:
                            break
                if batch is None:
                    warnings.warn(
                        f"{sources[0]}: items from {start} on are damaged; regenerating them",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                    break
                img, msk, labels, extra = batch
                self._write_raw(img, msk, labels, extra)
                ranges = []  # copied and checkpointed: the old blocks can go
                for name in (IMAGES, MASKS):
                    dsid = f[name].id
                    for i in range(start, stop):
                        info = dsid.get_chunk_info_by_coord((i, *zeros) if name == IMAGES else (i, 0, 0))
                        ranges.append((info.byte_offset, info.byte_offset + info.size))
                for a, b in _coalesce(ranges):  # whole runs: a chunk rarely fills whole disk blocks
                    _punch(fd, a, b - a)
                bar.update(stop - start)
        self.resumed_from = self._n_done

    def _read_checked(self, f: h5py.File, start: int, stop: int, image_bytes: int, mask_bytes: int, zeros: tuple):
        """Items ``[start, stop)`` of an unfinished file as stored, or None if any of them is damaged."""
        try:
            images, masks = f[IMAGES].id, f[MASKS].id
            img = [images.read_direct_chunk((i, *zeros))[1] for i in range(start, stop)]
            msk = [masks.read_direct_chunk((i, 0, 0))[1] for i in range(start, stop)]
            if not all(check_chunk(c, image_bytes, self.compression) for c in img):
                return None
            if not all(check_chunk(c, mask_bytes, self.compression) for c in msk):
                return None
            labels = f[LABELS][start:stop]
            if labels.size and (labels.min() < 0 or labels.max() > 1):
                return None  # labels are checked like chunks: a resumed file holds only 0/1
            extra = {name: f[f"syn_stream/{name}"][start:stop] for name in self.fields}
        except Exception:
            return None
        return img, msk, labels, extra

    # -- writing -------------------------------------------------------------------------

    @property
    def n_done(self) -> int:
        """Items written so far (after resuming, the first item :meth:`append` must supply)."""
        return self._n_done

    def append(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        labels: np.ndarray,
        **fields: np.ndarray,
    ) -> None:
        """Write the next batch.

        Parameters
        ----------
        images : numpy.ndarray of uint8, shape (B, H, W[, C])
        masks : numpy.ndarray, shape (B, H, W)
            Any nonzero value counts as defective; stored as 0/255.
        labels : numpy.ndarray, shape (B,)
            0/1 (or bool).
        **fields : numpy.ndarray
            One array per field given at construction, e.g. ``seeds=...`` with shape ``(B,)``.

        Raises
        ------
        ValueError
            If ``B`` is not ``batch_size`` (the last batch: the remaining count), or a shape is
            wrong. TypeError for a wrong dtype.
        """
        if self._file is None:
            raise ValueError(f"{self.part}: the writer is closed")
        if self.compression not in COMPRESSIONS:
            raise ValueError(
                f"compression: {self.compression!r} chunks can be copied but no longer written; expected one of "
                f"{', '.join(map(repr, COMPRESSIONS))}"
            )
        images = check_array(images, "images", ndim=len(self.image_shape) + 1, dtypes=(np.uint8,))
        b = images.shape[0]
        remaining = self.n - self._n_done
        expected = min(self.batch_size, remaining)
        if b != expected:
            raise ValueError(f"images: expected a batch of {expected} items (batch_size {self.batch_size}, {remaining} to go), got {b}")
        if images.shape[1:] != self.image_shape:
            raise ValueError(f"images: expected items of shape {self.image_shape}, got {images.shape[1:]}")
        masks = check_array(masks, "masks", ndim=3, kinds="biu")
        if masks.shape != (b, *self.image_shape[:2]):
            raise ValueError(f"masks: expected shape {(b, *self.image_shape[:2])}, got {masks.shape}")
        labels = check_array(labels, "labels", ndim=1, kinds="biu")
        if labels.shape != (b,):
            raise ValueError(f"labels: expected shape ({b},), got {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 1):
            raise ValueError(f"labels: expected 0/1 values, got values in [{labels.min()}, {labels.max()}]")
        if set(fields) != set(self.fields):
            raise ValueError(f"fields: expected {sorted(self.fields)}, got {sorted(fields)}")
        extra = {}
        for name in self.fields:
            dtype, item_shape = FIELDS[name]
            floating = np.dtype(dtype).kind == "f"
            arr = check_array(fields[name], name, kinds="iuf" if floating else "iu")
            if arr.shape != (b, *item_shape):
                raise ValueError(f"{name}: expected shape {(b, *item_shape)}, got {arr.shape}")
            if floating:
                if arr.size and not np.isfinite(arr).all():
                    raise ValueError(f"{name}: expected finite values, got {arr[~np.isfinite(arr)][0]}")
            else:
                info = np.iinfo(dtype)
                if arr.size and (arr.min() < info.min or arr.max() > info.max):
                    raise ValueError(f"{name}: values must fit {np.dtype(dtype)}, got [{arr.min()}, {arr.max()}]")
            extra[name] = arr.astype(dtype)
        flat = np.ascontiguousarray(images).reshape(b, -1)
        mask_flat = np.ascontiguousarray(masks).reshape(b, -1)
        if mask_flat.dtype != np.uint8:
            mask_flat = mask_flat.view(np.uint8) if mask_flat.dtype == np.bool_ else (mask_flat != 0).view(np.uint8)
        t0 = time.perf_counter()
        img_chunks = compress_rows(flat, self.compression, mask=False)
        mask_chunks = compress_rows(mask_flat, self.compression, mask=True)
        t1 = time.perf_counter()
        self._write_raw(img_chunks, mask_chunks, labels.astype(np.uint8), extra)
        self.timings["compress"] += t1 - t0
        self.timings["write"] += time.perf_counter() - t1

    def _write_raw(self, img_chunks: list, mask_chunks: list, labels: np.ndarray, extra: dict) -> None:
        f = self._file
        start = self._n_done
        stop = start + len(img_chunks)
        images, masks = f[IMAGES].id, f[MASKS].id
        zeros = (0,) * len(self.image_shape)
        for k, chunk in enumerate(img_chunks):
            images.write_direct_chunk((start + k, *zeros), chunk)
        for k, chunk in enumerate(mask_chunks):
            masks.write_direct_chunk((start + k, 0, 0), chunk)
        f[LABELS][start:stop] = labels
        for name, arr in extra.items():
            f[f"syn_stream/{name}"][start:stop] = arr
        f.attrs.modify("n_done", np.int64(stop))
        f.flush()
        self._n_done = stop

    def commit(self) -> Path:
        """Finish the file and move it to its final name; returns that path.

        Raises
        ------
        ValueError
            If fewer than ``n`` items were written.
        """
        if self._file is None:
            raise ValueError(f"{self.part}: the writer is closed")
        if self._n_done != self.n:
            raise ValueError(f"{self.path}: only {self._n_done} of {self.n} items written; cannot commit")
        self._file.attrs.modify("complete", True)
        self._file.close()
        self._file = None
        try:
            fd = os.open(self.part, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise RuntimeError(f"{self.part}: the file this writer wrote is gone ({exc}); not committing") from None
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self._identity:
                raise RuntimeError(
                    f"{self.part} is no longer the file this writer wrote (another process replaced it); "
                    f"not committing it to {self.path}"
                )
            os.fsync(fd)
        finally:
            os.close(fd)
        if self.path.exists() and not self.overwrite:  # appeared while we were writing
            raise FileExistsError(f"{self.path} appeared during the write; the stream is kept in {self.part}")
        check_output_path(self.path, "path", overwrite=True)
        if _identity(self.part) != self._identity:  # checked again right before the rename
            raise RuntimeError(f"{self.part} was replaced by another process; not committing it to {self.path}")
        os.replace(self.part, self.path)
        fsync_dir(self.path.parent)
        self._lock.close()
        return self.path

    def close(self) -> None:
        """Close without committing; the part file stays for a later resume."""
        if self._file is not None:
            self._file.close()
            self._file = None
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.close()

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self._file is not None and self._n_done == self.n:
            self.commit()
            return
        self.close()
        if exc_type is None and self._n_done != self.n:
            warnings.warn(
                f"{self.path}: {self._n_done} of {self.n} items written; the unfinished file "
                f"{self.part} is kept so the same write can resume",
                RuntimeWarning,
                stacklevel=2,
            )

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter shutdown
        try:
            self.close()
        except Exception:
            pass


def _write_root_attrs(f: h5py.File, spec: StreamWriter, *, n_done: int, complete: bool) -> None:
    attrs = f.attrs
    attrs["format"] = FORMAT
    attrs["format_version"] = FORMAT_VERSION
    attrs["ispad_core_version"] = __version__
    attrs["compression"] = spec.compression
    attrs["batch_size"] = spec.batch_size
    attrs["json_attrs"] = json.dumps(spec._json_keys)
    for key in sorted(spec._attrs):  # sorted: the bytes must not depend on dict order
        attrs[key] = spec._attrs[key]
    attrs["job"] = spec.job
    attrs["n_done"] = np.int64(n_done)
    attrs["complete"] = complete


def _job_difference(old: str, new: str) -> str:
    try:
        a, b = json.loads(old), json.loads(new)
    except ValueError:
        return "unreadable settings"
    diff = []
    for key in sorted(set(a) | set(b)):
        if key == "attrs":
            aa, ba = a.get(key, {}), b.get(key, {})
            diff += [k for k in sorted(set(aa) | set(ba)) if aa.get(k) != ba.get(k)]
        elif a.get(key) != b.get(key):
            diff.append(key)
    return "differs in " + ", ".join(diff) if diff else "same settings"


def write_stream(
    path: str | os.PathLike,
    images: np.ndarray,
    masks: np.ndarray,
    labels: np.ndarray,
    *,
    attrs: Mapping[str, Any] | None = None,
    fields: Mapping[str, np.ndarray] | None = None,
    compression: str = "isal",
    batch_size: int = 256,
    overwrite: bool = False,
) -> Path:
    """Write images, masks and labels held in memory to an HDF5 stream file.

    The file is written to ``path + ".part"`` and renamed to ``path`` when complete (see
    :class:`StreamWriter`, which also writes batches produced on the fly, e.g. by
    :func:`ispad_core.stream.write_balanced_stream`).

    Parameters
    ----------
    path : str or os.PathLike
        Output file, conventionally ``*.h5``.
    images : numpy.ndarray of uint8, shape (N, H, W) or (N, H, W, C)
    masks : numpy.ndarray, shape (N, H, W)
        Ground truth, any nonzero value counts (bool, 0/1 or 0/255); stored as 0/255 uint8.
    labels : numpy.ndarray, shape (N,)
        0 good, 1 defective (bool or integers).
    attrs : mapping, optional
        Root attributes; dicts and lists are stored as JSON and decoded by :func:`open_stream`.
    fields : mapping, optional
        Optional per-item arrays among ``seeds`` (N,), ``sources`` (N,), ``origins`` (N, 2),
        ``attempts`` (N,).
    compression : {"isal", "zlib", "zstd", "none"}
        See :class:`StreamWriter`.
    batch_size : int
        Items per write and checkpoint.
    overwrite : bool
        Replace an existing ``path``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False (the file is left untouched).
    TypeError, ValueError
        For arrays of the wrong dtype or shape.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from ispad_core.io import write_stream, open_stream
    >>> images = np.random.default_rng(0).integers(0, 256, (4, 8, 8), dtype=np.uint8)
    >>> masks = np.zeros((4, 8, 8), np.uint8); masks[1, 2:4, 2:4] = 1
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.h5"
    >>> _ = write_stream(path, images, masks, [0, 1, 0, 0], attrs={"seed": 0})
    >>> with open_stream(path) as s:
    ...     image, mask, label = s[1]
    ...     print(len(s), label, mask.dtype, int(mask.sum()), s.attrs["seed"], (s[0:4][0] == images).all())
    4 1 bool 4 0 True
    """
    check_choice(compression, "compression", COMPRESSIONS)
    images = check_array(images, "images", ndim=(3, 4), dtypes=(np.uint8,))
    n = images.shape[0]
    masks = check_array(masks, "masks", ndim=3, kinds="biuf")
    if masks.shape != images.shape[:3]:
        raise ValueError(f"masks: expected shape {images.shape[:3]} like images, got {masks.shape}")
    labels = check_array(labels, "labels", ndim=1, kinds="biu")
    if labels.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},) like images, got {labels.shape}")
    fields = dict(fields or {})
    with StreamWriter(
        path,
        n=n,
        image_shape=images.shape[1:],
        attrs=attrs,
        fields=tuple(fields),
        compression=compression,
        batch_size=batch_size,
        overwrite=overwrite,
        resume=False,
    ) as writer:
        for start in range(0, n, writer.batch_size):
            sl = slice(start, start + writer.batch_size)
            batch_masks = masks[sl] if masks.dtype.kind in "bu" else masks[sl] != 0
            writer.append(images[sl], batch_masks, labels[sl], **{k: np.asarray(v)[sl] for k, v in fields.items()})
    return writer.path


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
        raise ValueError(f"path: {path}: {IMAGES} must be uint8, got {images.dtype}")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise ValueError(f"path: {path}: {IMAGES} must be (N, H, W) or (N, H, W, 1 or 3), got shape {images.shape}")
    if masks.dtype != np.uint8:
        raise ValueError(f"path: {path}: {MASKS} must be uint8 (0/255), got {masks.dtype}")
    if labels.dtype.kind not in "biu":
        raise ValueError(f"path: {path}: {LABELS} must hold integers 0/1, got dtype {labels.dtype}")


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
    ``(N, H, W, 1 or 3)``, masks that are not uint8 and (for a virtual merge) parts that changed
    since the merge raise ValueError naming the file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path: expected a path, got {type(path).__name__}")
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
            raise ValueError(f"{self.path}: the stream is closed")
        if self._file is None or self._pid != os.getpid():
            if not self.path.exists():
                raise FileNotFoundError(f"path: {self.path} does not exist")
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise ValueError(f"path: {self.path} is not a readable HDF5 file ({exc})") from None
            self._pid = os.getpid()
            self._segments = {}  # dataset ids do not survive a fork
            self._part_files = []
            self._maps = {}
            self._mmaps = []
        return self._file

    def _validate(self, f: h5py.File) -> None:
        for name in (IMAGES, LABELS, MASKS):
            if name not in f:
                raise ValueError(f"path: {self.path} is not a stream file: it has no dataset {name!r}")
        n = f[IMAGES].shape[0]
        if f[LABELS].shape != (n,) or f[MASKS].shape != f[IMAGES].shape[:3]:
            raise ValueError(
                f"path: {self.path}: inconsistent shapes images {f[IMAGES].shape}, labels "
                f"{f[LABELS].shape}, ground_truth {f[MASKS].shape}"
            )
        _check_stream_types(f, self.path)
        if any(_ZSTD_KEY in _dataset_filters(f[name]) for name in (IMAGES, MASKS)):
            with contextlib.suppress(ImportError):  # lets h5py itself (reader.images, slices) decode Zstd
                import hdf5plugin  # noqa: F401
        if "complete" in f.attrs and not bool(f.attrs["complete"]):
            done = int(f.attrs.get("n_done", 0))
            raise ValueError(
                f"path: {self.path} is an unfinished stream ({done} of {n} items); rerun the write "
                f"with the same settings to complete it"
            )
        for name in (IMAGES, MASKS, LABELS):
            dset = f[name]
            if dset.is_virtual:
                for source in dset.virtual_sources():
                    src = Path(source.file_name)
                    if not src.is_absolute():
                        src = self.path.parent / src
                    if not src.exists():
                        raise FileNotFoundError(
                            f"path: {self.path} is a merged stream whose part {source.file_name} is "
                            f"missing (expected at {src}); keep the parts beside it or merge with --copy"
                        )
        if "part_fingerprints" in f.attrs:
            self._check_parts(json.loads(f.attrs["part_fingerprints"]))
        self._n = n
        self._attrs = _decode_attrs(f.attrs)
        labels = f[LABELS][()]
        bad = np.flatnonzero((labels != 0) & (labels != 1))
        if bad.size:
            raise ValueError(
                f"path: {self.path}: labels must be 0 (good) or 1 (defective); item {int(bad[0])} has "
                f"{labels[bad[0]].item()!r} ({bad.size} bad labels in all)"
            )
        self._labels = labels.astype(np.uint8)

    def _check_parts(self, recorded: list) -> None:
        for rel, fingerprint in recorded:
            src = self.path.parent / rel
            try:
                with h5py.File(src, "r") as part:
                    now = _part_fingerprint(part)
            except OSError as exc:
                raise ValueError(f"path: {self.path}: its part {rel} cannot be read ({exc})") from None
            if now != fingerprint:
                raise ValueError(
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
        raise TypeError(f"index: expected an int, a slice or a 1-D integer array, got {type(key).__name__}")

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
            raise TypeError(f"indices: expected a 1-D integer array, got {type(indices).__name__} of shape {idx.shape}")
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
                    raise ValueError(f"{self._where(segments, seg, i)}: the {what} chunk lies beyond the end of the file (truncated?)")
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
                    raise ValueError(f"{self._where(segments, seg, i)}: the {what} chunk is damaged ({exc})") from None
            if len(data) != nbytes:
                raise ValueError(
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
            raise ValueError(f"{self.path}: cannot pickle a closed stream")
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


# --------------------------------------------------------------------------- merging

_RANGE_ATTRS = ("item_start", "item_stop", "shard")


def merge_streams(
    parts: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    copy: bool = False,
    overwrite: bool = False,
    partial: bool = False,
) -> Path:
    """Join stream files into one: parts written by ``ispad synth --shard K/N``, or any streams.

    Parts that carry an item range (the attributes ``item_start`` and ``item_stop`` that
    ``ispad synth`` writes) are put in order of their ranges, which must be contiguous and agree in
    every other setting; the result then carries the joined range and, when it covers the whole
    stream, is the file one uninterrupted run would have written (with ``copy=True``, byte for
    byte). Parts without ranges are joined in the order given and must agree in all attributes.

    Parameters
    ----------
    parts : sequence of path
        Stream files, at least one.
    out : path
        The merged file.
    copy : bool
        False (default): ``out`` holds HDF5 virtual datasets that read from the parts, which must
        stay where they are relative to ``out`` (paths are stored relative to its directory).
        True: copy the compressed chunks into a self-contained file (no recompression).
    overwrite : bool
        Replace an existing ``out`` (a regular file; links and other files are always refused).
    partial : bool
        Allow ranged parts that do not cover their whole stream (the first or last part missing);
        by default such a merge is refused, since it would silently be a part of the stream.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        If the parts have different image shapes, fields or settings, their ranges overlap or
        leave a gap, they miss the start or end of their stream (unless ``partial``), a part is
        not a valid stream file (labels other than 0/1, wrong dtypes or channels) or, with
        ``copy=True``, a chunk of a part is damaged.
    FileExistsError
        If ``out`` exists and ``overwrite`` is False.
    OutputBusyError
        If another process is writing ``out``.

    Notes
    -----
    A virtual merge records a fingerprint of each part (its labels, provenance and the size of its
    stored chunks); :func:`open_stream` refuses the merged file once a part has been regenerated
    or replaced, instead of serving another stream's items under the old attributes.
    """
    if isinstance(parts, (str, os.PathLike)) or not isinstance(parts, Sequence) or not parts:
        raise TypeError("parts: expected a non-empty sequence of paths")
    out = _check_out_path(out, "out")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (ispad: --overwrite) to replace it")
    if copy:  # the writer of the copy holds the lock of ``out``
        return _merge_locked(parts, out, copy=copy, overwrite=overwrite, partial=partial)
    with exclusive_lock(out, name="out"):
        return _merge_locked(parts, out, copy=copy, overwrite=overwrite, partial=partial)


def _merge_locked(parts, out: Path, *, copy: bool, overwrite: bool, partial: bool) -> Path:
    readers = []
    try:
        for p in parts:
            readers.append(open_stream(p))
        resolved = {r.path.resolve() for r in readers}
        if len(resolved) != len(readers):
            raise ValueError("parts: the same file is given more than once")
        if out.resolve() in resolved:
            raise ValueError(f"out: {out} is one of the parts")
        spec_attrs, readers = _merge_plan(readers, partial=partial)
        first = readers[0]
        f0 = first._h5()
        fields = tuple(name for name in FIELDS if f"syn_stream/{name}" in f0)
        compression = first._attrs.get("compression", "zlib")
        batch_size = int(first._attrs.get("batch_size", 256))
        for r in readers[1:]:
            f = r._h5()
            other = tuple(name for name in FIELDS if f"syn_stream/{name}" in f)
            if r.image_shape != first.image_shape:
                raise ValueError(f"parts: {r.path} holds images of shape {r.image_shape}, {first.path} of {first.image_shape}")
            if other != fields:
                raise ValueError(f"parts: {r.path} has per-item fields {list(other)}, {first.path} has {list(fields)}")
        total = sum(len(r) for r in readers)
        user_attrs = {k: v for k, v in spec_attrs.items() if k not in _WRITER_ATTRS}
        if copy:
            _merge_copy(readers, out, total, user_attrs, fields, compression, batch_size, overwrite)
        else:
            _merge_virtual(readers, out, total, user_attrs, fields, compression, batch_size, overwrite)
    finally:
        for r in readers:
            r.close()
    return out


def _merge_plan(readers: list[StreamReader], *, partial: bool = False) -> tuple[dict, list[StreamReader]]:
    """Order the parts and compute the merged attributes."""
    ranged = ["item_start" in r._attrs and "item_stop" in r._attrs for r in readers]
    if any(ranged) and not all(ranged):
        raise ValueError("parts: some parts carry item ranges (ispad synth --shard) and some do not")

    def comparable(r: StreamReader) -> dict:
        return {k: v for k, v in r._attrs.items() if k not in _RANGE_ATTRS}

    base = comparable(readers[0])
    for r in readers[1:]:
        other = comparable(r)
        keys = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
        if keys:
            raise ValueError(
                f"parts: {r.path} and {readers[0].path} come from different streams (they differ in "
                f"{', '.join(keys)})"
            )
    attrs = dict(readers[0]._attrs)
    if not all(ranged):
        return attrs, readers
    readers = sorted(readers, key=lambda r: int(r._attrs["item_start"]))
    for r in readers:
        a, b = int(r._attrs["item_start"]), int(r._attrs["item_stop"])
        if b - a != len(r):
            raise ValueError(f"parts: {r.path} claims items [{a}, {b}) but holds {len(r)}")
    for left, right in zip(readers, readers[1:]):
        b, a = int(left._attrs["item_stop"]), int(right._attrs["item_start"])
        if a < b:
            raise ValueError(f"parts: {left.path} and {right.path} overlap (items [{a}, {b}))")
        if a > b:
            raise ValueError(f"parts: items [{b}, {a}) are missing between {left.path} and {right.path}")
    start, stop = int(readers[0]._attrs["item_start"]), int(readers[-1]._attrs["item_stop"])
    n_total = attrs.get("n_total")
    if isinstance(n_total, int) and (start, stop) != (0, n_total) and not partial:
        missing = [f"[{a}, {b})" for a, b in ((0, start), (stop, n_total)) if b > a]
        raise ValueError(
            f"parts: they hold items [{start}, {stop}) of a {n_total}-item stream; items "
            f"{' and '.join(missing)} are missing (the first or last part?); pass partial=True "
            f"(ispad merge --partial) to merge only these"
        )
    attrs["item_start"] = start
    attrs["item_stop"] = stop
    attrs["shard"] = "0/1" if start == 0 and stop == n_total else f"items {start}-{stop}"
    return attrs, readers


_FINGERPRINT_SAMPLE = 32


def _part_fingerprint(f: h5py.File) -> str:
    """What a part looked like when merged: labels, provenance, the size of its stored chunks and
    the stored bytes of up to 32 evenly spaced items (a regenerated part differs in all of them)."""
    h = hashlib.sha256()
    for name in (LABELS, "syn_stream/seeds"):
        if name in f:
            h.update(np.ascontiguousarray(f[name][()]).tobytes())
    for name in (IMAGES, MASKS):
        dset = f[name]
        h.update(f"{dset.shape}:{dset.id.get_storage_size()};".encode())
        n = dset.shape[0]
        sample = np.unique(np.linspace(0, n - 1, min(n, _FINGERPRINT_SAMPLE)).astype(np.int64)) if n else []
        zeros = (0,) * (dset.ndim - 1)
        for i in sample:
            try:
                h.update(bytes(dset.id.read_direct_chunk((int(i), *zeros))[1]))
            except Exception:  # not chunked per item, or never written: its values stand in
                h.update(np.ascontiguousarray(dset[int(i)]).tobytes())
    job = f.attrs.get("job", b"")
    h.update(job if isinstance(job, bytes) else str(job).encode())
    return h.hexdigest()[:32]


def _merge_copy(readers, out, total, attrs, fields, compression, batch_size, overwrite) -> None:
    shape = readers[0].image_shape
    offsets = np.cumsum([0] + [len(r) for r in readers])
    raw = all(
        r._attrs.get("compression") == compression and not r._h5()[IMAGES].is_virtual and not r._h5()[MASKS].is_virtual
        for r in readers
    )
    if not raw and compression not in COMPRESSIONS:  # chunks to re-encode, in a compression still written
        compression = COMPRESSIONS[0]
    image_bytes, mask_bytes = int(np.prod(shape)), int(np.prod(shape[:2]))
    writer = StreamWriter(
        out,
        n=total,
        image_shape=shape,
        attrs=attrs,
        fields=fields,
        compression=compression,
        batch_size=batch_size,
        overwrite=overwrite,
        resume=True,
    )
    try:
        zeros = (0,) * len(shape)
        for start in range(writer.n_done, total, batch_size):
            stop = min(start + batch_size, total)
            img, msk, labels = [], [], []
            extra: dict[str, list] = {name: [] for name in fields}
            for k, r in enumerate(readers):
                a, b = max(start, offsets[k]), min(stop, offsets[k + 1])
                if a >= b:
                    continue
                la, lb = int(a - offsets[k]), int(b - offsets[k])
                f = r._h5()
                if raw:  # the stored chunks as they are, each checked as a resume checks them
                    ids, mids = f[IMAGES].id, f[MASKS].id
                    for i in range(la, lb):
                        chunk, mchunk = ids.read_direct_chunk((i, *zeros))[1], mids.read_direct_chunk((i, 0, 0))[1]
                        for what, data, nbytes in (("image", chunk, image_bytes), ("mask", mchunk, mask_bytes)):
                            if not check_chunk(data, nbytes, compression):
                                raise ValueError(
                                    f"parts: {r.path}: item {i}: the {what} chunk is damaged (its checksum or size "
                                    f"is wrong); regenerate this part"
                                )
                        img.append(chunk)
                        msk.append(mchunk)
                else:
                    ims, ms, _ = r[la:lb]
                    img += compress_rows(np.ascontiguousarray(ims).reshape(lb - la, -1), compression, mask=False)
                    msk += compress_rows(np.ascontiguousarray(ms).reshape(lb - la, -1), compression, mask=True)
                labels.append(r._labels[la:lb])
                for name in fields:
                    extra[name].append(f[f"syn_stream/{name}"][la:lb])
            writer._write_raw(img, msk, np.concatenate(labels), {n: np.concatenate(v) for n, v in extra.items()})
        writer.commit()
    finally:
        writer.close()


def _merge_virtual(readers, out, total, attrs, fields, compression, batch_size, overwrite) -> None:
    shape = readers[0].image_shape
    spec = StreamWriter.__new__(StreamWriter)  # only the attribute bookkeeping, no file
    encoded, as_json = _encode_attrs(attrs, "attrs")
    spec._attrs, spec._json_keys = encoded, as_json
    spec.compression, spec.batch_size = compression, batch_size
    spec.job = _job(n=total, image_shape=shape, fields=fields, compression=compression, batch_size=batch_size, encoded=encoded)
    # A fresh, uniquely named file: a virtual merge is quick to redo, so it never resumes, and an
    # existing OUT.part (another job's unfinished write, or a user's file) is left alone.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".merge", dir=out.resolve().parent)
    os.close(fd)
    tmp = Path(tmp_name)
    names = [IMAGES, MASKS, LABELS] + [f"syn_stream/{name}" for name in fields]
    try:
        with h5py.File(tmp, "w", libver=("v110", "latest")) as f:
            for name in names:
                first = readers[0]._h5()[name]
                layout = h5py.VirtualLayout(shape=(total, *first.shape[1:]), dtype=first.dtype)
                offset = 0
                for r in readers:
                    src = r._h5()[name]
                    rel = os.path.relpath(r.path.resolve(), out.resolve().parent)
                    layout[offset : offset + src.shape[0]] = h5py.VirtualSource(rel, name, shape=src.shape, dtype=src.dtype)
                    offset += src.shape[0]
                f.create_virtual_dataset(name, layout, fillvalue=0)
            _write_root_attrs(f, spec, n_done=total, complete=True)
            f.attrs["part_fingerprints"] = json.dumps(
                [[os.path.relpath(r.path.resolve(), out.resolve().parent), _part_fingerprint(r._h5())] for r in readers]
            )
        os.chmod(tmp, 0o666 & ~_umask())
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} appeared during the merge")
        check_output_path(out, "out", overwrite=True)
        os.replace(tmp, out)
        fsync_dir(out.resolve().parent)
    finally:
        if tmp.exists():
            tmp.unlink()
