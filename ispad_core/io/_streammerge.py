"""Merging stream parts written with ``shard=`` into one stream (copied or virtual)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.files import current_umask, check_output_path, exclusive_lock, fsync_dir
from ispad_core.io._codec import (
    COMPRESSIONS,
    check_chunk,
    compress_rows,
)
from ispad_core.io._streamformat import FIELDS, IMAGES, LABELS, MASKS, _WRITER_ATTRS, _encode_attrs, _part_fingerprint
from ispad_core.io._streamreader import StreamReader, open_stream
from ispad_core.io._streamwriter import StreamWriter, _check_out_path, _job, _write_root_attrs

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
        raise InputTypeError("parts: expected a non-empty sequence of paths")
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
            raise InputValueError("parts: the same file is given more than once")
        if out.resolve() in resolved:
            raise InputValueError(f"out: {out} is one of the parts")
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
                raise InputValueError(f"parts: {r.path} holds images of shape {r.image_shape}, {first.path} of {first.image_shape}")
            if other != fields:
                raise InputValueError(f"parts: {r.path} has per-item fields {list(other)}, {first.path} has {list(fields)}")
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
        raise InputValueError("parts: some parts carry item ranges (ispad synth --shard) and some do not")

    def comparable(r: StreamReader) -> dict:
        return {k: v for k, v in r._attrs.items() if k not in _RANGE_ATTRS}

    base = comparable(readers[0])
    for r in readers[1:]:
        other = comparable(r)
        keys = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
        if keys:
            raise InputValueError(
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
            raise InputValueError(f"parts: {r.path} claims items [{a}, {b}) but holds {len(r)}")
    for left, right in zip(readers, readers[1:]):
        b, a = int(left._attrs["item_stop"]), int(right._attrs["item_start"])
        if a < b:
            raise InputValueError(f"parts: {left.path} and {right.path} overlap (items [{a}, {b}))")
        if a > b:
            raise InputValueError(f"parts: items [{b}, {a}) are missing between {left.path} and {right.path}")
    start, stop = int(readers[0]._attrs["item_start"]), int(readers[-1]._attrs["item_stop"])
    n_total = attrs.get("n_total")
    if isinstance(n_total, int) and (start, stop) != (0, n_total) and not partial:
        missing = [f"[{a}, {b})" for a, b in ((0, start), (stop, n_total)) if b > a]
        raise InputValueError(
            f"parts: they hold items [{start}, {stop}) of a {n_total}-item stream; items "
            f"{' and '.join(missing)} are missing (the first or last part?); pass partial=True "
            f"(ispad merge --partial) to merge only these"
        )
    attrs["item_start"] = start
    attrs["item_stop"] = stop
    attrs["shard"] = "0/1" if start == 0 and stop == n_total else f"items {start}-{stop}"
    return attrs, readers




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
                                raise InputValueError(
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
        os.chmod(tmp, 0o666 & ~current_umask())
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} appeared during the merge")
        check_output_path(out, "out", overwrite=True)
        os.replace(tmp, out)
        fsync_dir(out.resolve().parent)
    finally:
        if tmp.exists():
            tmp.unlink()
