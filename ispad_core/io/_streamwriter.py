"""Writing stream files: the crash-safe, resumable :class:`StreamWriter` and :func:`write_stream`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError, SetupError
from ispad_core._shared.files import current_umask, check_output_path, exclusive_lock, fsync_dir, remove_stale_temporaries
from ispad_core._shared.validation import check_array, check_choice, check_int, warn_renamed
from ispad_core._shared.version import __version__
from ispad_core.io._codec import (
    COMPRESSIONS,
    LEGACY_COMPRESSIONS,
    check_chunk,
    compress_rows,
    dataset_filter,
)
from ispad_core.io._streamformat import (
    FIELDS,
    FORMAT,
    FORMAT_VERSION,
    IMAGES,
    LABELS,
    MASKS,
    _coalesce,
    _encode_attrs,
    _old_part_path,
    _older_part_path,
    _punch,
    part_path,
)

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
        raise InputTypeError(f"{name}: expected a path, got {type(path).__name__}")
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
        raise InputValueError(f"{name}: {path} is a symbolic link; refusing to write or read through it (remove the link first)")
    if not stat.S_ISREG(st.st_mode):
        raise InputValueError(f"{name}: {path} exists and is not a regular file; refusing to use or replace it")


def _part_job(candidate: Path, output: Path) -> tuple[str, int]:
    """The job and the finished item count of an unfinished file this library wrote.

    Raises
    ------
    FileExistsError
        If ``candidate`` is not recognisably such a file (not HDF5, or no stream job attribute):
        it is the user's, and is neither deleted nor resumed.
    """
    try:
        with h5py.File(candidate, "r") as f:
            job = f.attrs.get("job")
            done = f.attrs.get("n_done")
    except Exception as exc:
        why = f"not readable as HDF5: {(str(exc).splitlines() or [type(exc).__name__])[0]}"
    else:
        if isinstance(job, bytes):
            job = job.decode("utf-8", "replace")
        try:
            parsed = json.loads(job) if isinstance(job, str) else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("format") == FORMAT and np.ndim(done) == 0:
            try:
                return job, int(done)
            except (TypeError, ValueError):
                pass
        why = "it holds no stream job of this library"
    raise FileExistsError(
        f"{candidate}: not an unfinished stream file of this library ({why}), yet it has the name the "
        f"writer of {output.name} uses; it is neither deleted nor resumed: remove or rename it "
        "(an unfinished file that a crash damaged is not recognisable either)"
    )


def _identity(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_dev, st.st_ino


class StreamWriter:
    """Crash-safe, resumable writer of an HDF5 stream file (the low-level half of :func:`write_stream`).

    Items are appended in batches of exactly ``batch_size`` (the last may be shorter) to
    ``path + ".part"``; :meth:`commit` renames the part to ``path`` once all ``n`` items are in.
    The writer holds the lock of ``path`` from construction to commit or close: a second writer
    raises :class:`ispad_core._shared.files.OutputBusyError` at once.
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
    verbose : bool
        Show a progress bar on stderr while a resume checks and copies the finished items (a
        large part takes a while); default False. (``show_progress``, its old name, still works
        and warns.)

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False, if an unfinished part of a different job
        is in the way (with ``resume`` True or False), or if a file this library did not write
        (no stream job attribute) is at ``path + ".part"`` (with ``overwrite`` too: only the
        library's own unfinished files are ever deleted or resumed).
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
        verbose: bool = False,
        show_progress: bool | None = None,
    ) -> None:
        if show_progress is not None:
            warn_renamed("StreamWriter", "show_progress", "verbose")
            verbose = show_progress
        self._verbose = bool(verbose)
        self.path = _check_out_path(path, "path")
        self.n = check_int(n, "n", minimum=1)
        shape = tuple(check_int(s, "image_shape", minimum=1) for s in image_shape)
        if len(shape) not in (2, 3):
            raise InputValueError(f"image_shape: expected (H, W) or (H, W, C), got {shape}")
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
        # what a writer killed between creating its new part and renaming it left (exact names only)
        remove_stale_temporaries(self.path.parent, names=re.escape(self.path.name), suffix=".new")
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
        another job with ``overwrite``, or all with ``resume=False``) are removed. A file at one of
        these names that this library did not write (no stream job attribute, or not readable
        as HDF5) is refused by name, before anything is removed.
        """
        names = (self.part, _old_part_path(self.path), _older_part_path(self.path))
        jobs = {}
        for candidate in names:  # all checked first: nothing is removed when one is the user's
            _check_part_path(candidate, "path")
            if candidate.exists():
                jobs[candidate] = _part_job(candidate, self.path)
        found: list[tuple[int, Path]] = []
        for candidate, (job, done) in jobs.items():
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
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 would outlive the rename: a normal file's mode
        os.close(fd)
        try:
            f = h5py.File(tmp_name, "w")
        except BaseException:
            os.unlink(tmp_name)
            raise
        try:
            # layout and job first, then the rename: a file at FILE.part always carries its job,
            # which is how a later writer knows it is ours to resume or discard
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
            self._identity = _identity(Path(tmp_name))
            os.replace(tmp_name, self.part)
        except BaseException:
            f.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        self._file = f

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
            from ispad_core._shared.progress import progress

            bar = stack.enter_context(progress(
                total=max(dones), desc=f"resuming {self.path.name}: checking and copying", unit="patch",
                disable=not getattr(self, "_verbose", False),
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
            raise InputValueError(f"{self.part}: the writer is closed")
        if self.compression not in COMPRESSIONS:
            raise InputValueError(
                f"compression: {self.compression!r} chunks can be copied but no longer written; expected one of "
                f"{', '.join(map(repr, COMPRESSIONS))}"
            )
        images = check_array(images, "images", ndim=len(self.image_shape) + 1, dtypes=(np.uint8,))
        b = images.shape[0]
        remaining = self.n - self._n_done
        expected = min(self.batch_size, remaining)
        if b != expected:
            raise InputValueError(f"images: expected a batch of {expected} items (batch_size {self.batch_size}, {remaining} to go), got {b}")
        if images.shape[1:] != self.image_shape:
            raise InputValueError(f"images: expected items of shape {self.image_shape}, got {images.shape[1:]}")
        masks = check_array(masks, "masks", ndim=3, kinds="biu")
        if masks.shape != (b, *self.image_shape[:2]):
            raise InputValueError(f"masks: expected shape {(b, *self.image_shape[:2])}, got {masks.shape}")
        labels = check_array(labels, "labels", ndim=1, kinds="biu")
        if labels.shape != (b,):
            raise InputValueError(f"labels: expected shape ({b},), got {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 1):
            raise InputValueError(f"labels: expected 0/1 values, got values in [{labels.min()}, {labels.max()}]")
        if set(fields) != set(self.fields):
            raise InputValueError(f"fields: expected {sorted(self.fields)}, got {sorted(fields)}")
        extra = {}
        for name in self.fields:
            dtype, item_shape = FIELDS[name]
            floating = np.dtype(dtype).kind == "f"
            arr = check_array(fields[name], name, kinds="iuf" if floating else "iu")
            if arr.shape != (b, *item_shape):
                raise InputValueError(f"{name}: expected shape {(b, *item_shape)}, got {arr.shape}")
            if floating:
                if arr.size and not np.isfinite(arr).all():
                    raise InputValueError(f"{name}: expected finite values, got {arr[~np.isfinite(arr)][0]}")
            else:
                info = np.iinfo(dtype)
                if arr.size and (arr.min() < info.min or arr.max() > info.max):
                    raise InputValueError(f"{name}: values must fit {np.dtype(dtype)}, got [{arr.min()}, {arr.max()}]")
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
            raise InputValueError(f"{self.part}: the writer is closed")
        if self._n_done != self.n:
            raise InputValueError(f"{self.path}: only {self._n_done} of {self.n} items written; cannot commit")
        self._file.attrs.modify("complete", True)
        self._file.close()
        self._file = None
        try:
            fd = os.open(self.part, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise SetupError(f"{self.part}: the file this writer wrote is gone ({exc}); not committing") from None
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self._identity:
                raise SetupError(
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
            raise SetupError(f"{self.part} was replaced by another process; not committing it to {self.path}")
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
        raise InputValueError(f"masks: expected shape {images.shape[:3]} like images, got {masks.shape}")
    labels = check_array(labels, "labels", ndim=1, kinds="biu")
    if labels.shape != (n,):
        raise InputValueError(f"labels: expected shape ({n},) like images, got {labels.shape}")
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
