"""HDF5 stream files: the format and the helpers that the writer, the reader and merging share.

The writer is :mod:`ispad_core.io._streamwriter`, the reader :mod:`ispad_core.io._streamreader`,
merging :mod:`ispad_core.io._streammerge`.

Layout::

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

One writer per file. A writer holds an OS lock on ``FILE.lock`` (:func:`ispad_core._shared.files.exclusive_lock`)
from its start to its commit, so a second writer of the same file fails at once instead of
touching the first one's part; the part is created under a unique name and renamed to
``FILE.part`` (never opened through a link there), and the commit renames only the file this
writer wrote (same inode) and only over a regular file.

Reading. :class:`StreamReader` checks on open (:func:`check_stream_objects`) that each object the
format names is a dataset stored in the file itself: reached by hard links only (no soft or
external link, no group where a dataset belongs), with no HDF5 external storage (raw bytes of some
other file), and virtual only as a merge writes it (whole datasets of the same name in other stream
files, each checked the same way). It then checks dtypes, channels and labels and reads batches by
slicing the memory-mapped file at the offsets of HDF5's chunk index, decoding each chunk itself
(ISA-L or zlib for deflate, zstandard for Zstd) and checking its checksum and size. A file is
replaced by a rename, never rewritten in place, so the mapping stays valid; a file truncated in
place by another program while it is mapped would end the reading process (SIGBUS).
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError


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

_MAX_VIRTUAL_DEPTH = 8
"""How deep merged streams may nest (a merge of merges); deeper, or a cycle, is refused."""


def _object_error(path: Path, name: str, what: str) -> ValueError:
    return ValueError(
        f"path: {path}: {name} {what}; a stream file holds its datasets itself "
        "(write it with ispad synth or merge it with ispad merge)"
    )


def _linked_dataset(f: h5py.File, name: str, path: Path) -> h5py.Dataset | None:
    """The dataset at ``name``, reached through hard links only; None when the name is missing.

    Every component of ``name`` is looked up with ``getlink=True`` before it is opened, so a soft
    or external link anywhere on the way (``syn_stream`` itself included) is refused by name
    instead of being followed.
    """
    node: h5py.Group = f
    parts = name.split("/")
    for k, part in enumerate(parts):
        where = "/".join(parts[: k + 1])
        link = node.get(part, getlink=True)
        if link is None:
            return None
        last = k == len(parts) - 1
        noun = "a dataset" if last else "a group"
        if isinstance(link, h5py.SoftLink):
            raise _object_error(path, where, f"is a soft link (to {link.path}), not {noun}")
        if isinstance(link, h5py.ExternalLink):
            raise _object_error(path, where, f"is an external link (to {link.path} in {link.filename}), not {noun}")
        if not isinstance(link, h5py.HardLink):
            raise _object_error(path, where, f"is a {type(link).__name__}, not {noun}")
        obj = node.get(part)
        if last and not isinstance(obj, h5py.Dataset):
            kind = "a group" if isinstance(obj, h5py.Group) else f"a {type(obj).__name__}"
            raise _object_error(path, where, f"is {kind}, not a dataset")
        if not last and not isinstance(obj, h5py.Group):
            raise _object_error(path, where, f"is a {type(obj).__name__}, not a group")
        node = obj
    return node


def check_stream_objects(
    f: h5py.File, path: Path, names: tuple[str, ...], *, _seen: tuple[Path, ...] = ()
) -> dict[str, h5py.Dataset]:
    """Check that each of ``names`` in a stream file is a dataset the file itself holds.

    Refused, with a ValueError that names the file and the object: a soft or external link where
    a dataset (or the group ``syn_stream``) belongs, a group or named datatype instead of a
    dataset, a dataset with HDF5 external storage (its bytes in some other, arbitrary file), and a
    virtual dataset that is not what a merge writes: whole datasets of the same name in other
    files, each of which passes this check too (merges of merges up to a depth of 8, no cycles).
    A part of a merge that is missing raises FileNotFoundError naming it.

    Returns the datasets found, by name (a missing name is left out; the caller says what it needs).
    """
    found: dict[str, h5py.Dataset] = {}
    for name in names:
        dset = _linked_dataset(f, name, path)
        if dset is None:
            continue
        if dset.external:
            files = ", ".join(sorted({str(entry[0]) for entry in dset.external}))
            raise _object_error(path, name, f"stores its data outside the file (HDF5 external storage in {files})")
        if dset.is_virtual:
            _check_virtual(dset, name, path, _seen + (path.resolve(),))
        found[name] = dset
    return found


def _check_virtual(dset: h5py.Dataset, name: str, path: Path, seen: tuple[Path, ...]) -> None:
    if len(seen) > _MAX_VIRTUAL_DEPTH:
        raise _object_error(path, name, f"is virtual and nests merged streams deeper than {_MAX_VIRTUAL_DEPTH} levels")
    for source in dset.virtual_sources():
        if source.file_name == ".":
            raise _object_error(path, name, f"is virtual and maps {source.dset_name} of the same file")
        if source.dset_name.lstrip("/") != name:
            raise _object_error(
                path, name, f"is virtual and maps {source.dset_name} of {source.file_name} (a merge maps {name})"
            )
        if source.src_space.get_select_type() != h5py.h5s.SEL_ALL:
            raise _object_error(
                path, name, f"is virtual and maps a selection of {source.file_name} (a merge maps whole parts)"
            )
        src = Path(source.file_name)
        if not src.is_absolute():
            src = path.parent / src
        if not src.exists():
            raise FileNotFoundError(
                f"path: {path} is a merged stream whose part {source.file_name} is "
                f"missing (expected at {src}); keep the parts beside it or merge with --copy"
            )
        if src.resolve() in seen:
            raise _object_error(path, name, f"is virtual and maps {source.file_name}, which maps it back (a cycle)")
        try:
            part = h5py.File(src, "r")
        except OSError as exc:
            raise InputValueError(f"path: {path}: its part {source.file_name} cannot be read ({exc})") from None
        with part:
            try:
                found = check_stream_objects(part, src, (name,), _seen=seen)
            except ValueError as exc:
                inner = str(exc).removeprefix("path: ")
                raise InputValueError(
                    f"path: {path}: {name} maps the part {source.file_name}, which is refused: {inner}"
                ) from None
            if name not in found:
                raise _object_error(path, name, f"is virtual and maps {name} of {source.file_name}, which has none")
            if found[name].shape[1:] != dset.shape[1:]:
                raise _object_error(
                    path, name, f"is virtual and maps {name} of {source.file_name} of shape {found[name].shape} "
                    f"into items of shape {dset.shape[1:]}"
                )


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
        raise InputTypeError(f"{name}: expected a mapping of attribute names to values, got {type(attrs).__name__}")
    encoded: dict[str, Any] = {}
    as_json: list[str] = []
    for key, value in attrs.items():
        if not isinstance(key, str) or not key:
            raise InputTypeError(f"{name}: attribute names must be non-empty strings, got {key!r}")
        if key in _WRITER_ATTRS:
            raise InputValueError(f"{name}: attribute name {key!r} is reserved for the writer")
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
                raise InputTypeError(
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
