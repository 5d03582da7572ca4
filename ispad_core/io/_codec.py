"""Chunk compression for HDF5 streams: every chunk is a standard zlib stream (HDF5 gzip filter).

We compress chunks ourselves and hand them to HDF5 with ``write_direct_chunk``, for two reasons:
speed (see :mod:`ispad_core.io._deflate_kernels`) and a file layout that depends only on the order
of our writes, never on HDF5's chunk-cache evictions, so an interrupted-and-resumed write and a
merged set of shards reproduce the bytes of an uninterrupted single run.
"""

from __future__ import annotations

import zlib

import numpy as np

from ispad_core.io._deflate_kernels import _compress_masks, _compress_rows, stored_size

COMPRESSIONS = ("fast", "zlib", "none")
"""``"fast"``: our Numba deflate encoders (Huffman-only for images, run-length for masks), about
six times zlib level 1's speed on noisy patches at nearly zlib's ratio; ``"zlib"``: zlib level 1
(slower; smaller files for smooth, noise-free images); ``"none"``: uncompressed chunks."""


def is_filtered(compression: str) -> bool:
    """Whether chunks of this compression go through the gzip filter."""
    return compression != "none"


def compress_rows(rows: np.ndarray, compression: str, *, mask: bool) -> list:
    """Compress each row of a C-contiguous ``(N, n)`` uint8 array into one chunk (bytes-like).

    With ``mask=True`` the rows are binary masks: any nonzero byte is stored as 255. ``"fast"``
    codes them with the run-length encoder straight from their values (masks are nearly all
    zero); the other compressions reuse one encoding of zeros for all-zero rows and convert and
    encode only rows with a defect.
    """
    n_rows, n = rows.shape
    if mask and compression == "fast":
        return _compress_masks_fast(rows)
    if mask:
        todo = np.flatnonzero(rows.any(axis=1))
        chunks = [_zero_chunk(n, compression)] * n_rows
        if todo.size:
            marked = rows[todo]  # a copy
            if marked.max() <= 1:
                marked *= np.uint8(255)  # 0/1 masks (the synthesizer's): one pass
            else:
                marked = np.where(marked != 0, np.uint8(255), np.uint8(0))
            for k, chunk in zip(todo.tolist(), _compress(marked, compression, rle=True)):
                chunks[k] = chunk
        return chunks
    return _compress(rows, compression, rle=False)


def _compress(rows: np.ndarray, compression: str, *, rle: bool) -> list:
    """One bytes-like object per row (views into a fresh buffer: HDF5 takes any buffer)."""
    if compression == "none":
        return [rows[i] for i in range(rows.shape[0])]
    if compression == "zlib":
        return [zlib.compress(rows[i], 1) for i in range(rows.shape[0])]
    return _compress_fast(rows, rle=rle)


def _compress_fast(rows: np.ndarray, *, rle: bool) -> list[bytes]:
    out = np.empty((rows.shape[0], stored_size(rows.shape[1])), np.uint8)
    lengths = np.empty(rows.shape[0], np.int64)
    if rle:
        adlers = np.zeros(rows.shape[0], np.int64)  # the run-length encoder computes its own
    else:
        adlers = np.array([zlib.adler32(rows[i]) for i in range(rows.shape[0])], np.int64)
    _compress_rows(rows, out, lengths, rle, adlers)
    return [out[i, : lengths[i]] for i in range(rows.shape[0])]


def _compress_masks_fast(rows: np.ndarray) -> list:
    """Masks straight from their 0/1 (or any nonzero) values, one kernel call for the batch."""
    out = np.empty((rows.shape[0], stored_size(rows.shape[1])), np.uint8)
    lengths = np.empty(rows.shape[0], np.int64)
    _compress_masks(rows, out, lengths)
    return [out[i, : lengths[i]] for i in range(rows.shape[0])]


_ZERO_CHUNKS: dict[tuple[int, str], bytes] = {}


def _zero_chunk(n: int, compression: str) -> bytes:
    key = (n, compression)
    chunk = _ZERO_CHUNKS.get(key)
    if chunk is None:
        chunk = bytes(_compress(np.zeros((1, n), np.uint8), compression, rle=True)[0])
        _ZERO_CHUNKS[key] = chunk
    return chunk


def check_chunk(data, n: int, compression: str) -> bool:
    """Whether a stored chunk decodes to ``n`` bytes (zlib's Adler-32 checks its content)."""
    if compression == "none":
        return len(data) == n
    try:
        return len(zlib.decompress(data)) == n
    except zlib.error:
        return False
