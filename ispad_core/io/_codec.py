"""Chunk compression for HDF5 streams: every chunk is a standard zlib stream (HDF5 gzip filter).

We compress chunks ourselves and hand them to HDF5 with ``write_direct_chunk``, and read them
back with ``read_direct_chunk`` and inflate them ourselves, for two reasons: speed (ISA-L's deflate
through python-isal, several times zlib's on both sides, with no HDF5 per-selection overhead) and
a file layout that depends only on the order of our writes, never on HDF5's chunk-cache evictions,
so an interrupted-and-resumed write and a merged set of shards reproduce the bytes of an
uninterrupted single run. Any HDF5 reader (h5py, MATLAB, HDFView, C) decodes the chunks with its
built-in gzip filter; nothing extra is needed to read the files.

How the encoder was chosen: the write side runs once, the read side every epoch. Measured on
the built-in sample (noisy 256 x 256 patches), ``isal`` level 1 writes chunks 5 % smaller than the
library's earlier hand-written Huffman-only encoder (``"fast"``, removed) at 0.8 to 1.0 x its
end-to-end ``ispad synth`` rate, and reads them at the same rate; a maintained encoder that is as
fast end to end replaces our own. Files written with ``"fast"`` stay readable (their chunks are
plain zlib streams) and mergeable (their chunks are copied as they are).
"""

from __future__ import annotations

import zlib

import numpy as np

from ispad_core._shared.errors import InputValueError

try:  # python-isal: Intel's ISA-L deflate, the same zlib streams several times faster than zlib
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - isal is a dependency; files stay readable without it
    _isal_zlib = None

try:  # optional (extra [zstd]): Zstandard chunks for HDF5's registered Zstd filter (32015)
    import zstandard as _zstandard
except ImportError:
    _zstandard = None

COMPRESSIONS = ("isal", "zlib", "zstd", "none")
"""``"isal"`` (default): ISA-L deflate level 1 (python-isal), about four times zlib level 1's speed
at nearly its ratio; ``"zlib"``: zlib level 1 (what h5py's ``gzip`` filter does); ``"zstd"``:
Zstandard level 1 frames with checksums for the registered HDF5 Zstd filter (32015), which decode
about four times faster than deflate (other HDF5 readers need the filter plugin, e.g.
``import hdf5plugin``); ``"none"``: uncompressed chunks."""

ZSTD_FILTER = 32015
"""The HDF5 filter id registered for Zstandard."""

LEGACY_COMPRESSIONS = ("fast",)
"""Compressions of files written by earlier versions: readable and copyable, no longer written."""


def is_filtered(compression: str) -> bool:
    """Whether chunks of this compression go through a filter."""
    return compression != "none"


def dataset_filter(compression: str) -> dict:
    """The ``create_dataset`` arguments that declare the filter of this compression's chunks."""
    if compression == "none":
        return {}
    if compression == "zstd":
        return {"compression": ZSTD_FILTER, "allow_unknown_filter": True}
    return {"compression": "gzip"}


def _zstd():
    if _zstandard is None:
        raise ImportError('compression="zstd" needs zstandard: pip install "ispad-core[zstd]"')
    return _zstandard


_ZSTD_LEVEL = 1


def compress_rows(rows: np.ndarray, compression: str, *, mask: bool) -> list:
    """Compress each row of a C-contiguous ``(N, n)`` uint8 array into one chunk (bytes-like).

    With ``mask=True`` the rows are binary masks: any nonzero byte is stored as 255. One encoding
    of zeros serves all all-zero rows; only rows with a defect are converted and encoded.
    """
    if compression not in COMPRESSIONS:
        raise InputValueError(f"compression: expected one of {', '.join(map(repr, COMPRESSIONS))}, got {compression!r}")
    n_rows, n = rows.shape
    if mask:
        todo = np.flatnonzero(rows.any(axis=1))
        chunks = [_zero_chunk(n, compression)] * n_rows
        if todo.size:
            marked = rows[todo]  # a copy
            if marked.max() <= 1:
                marked *= np.uint8(255)  # 0/1 masks (the synthesizer's): one pass
            else:
                marked = np.where(marked != 0, np.uint8(255), np.uint8(0))
            for k, chunk in zip(todo.tolist(), _compress(marked, compression)):
                chunks[k] = chunk
        return chunks
    return _compress(rows, compression)


def _compress(rows: np.ndarray, compression: str) -> list:
    """One bytes-like object per row (HDF5 takes any buffer)."""
    if compression == "none":
        return [rows[i] for i in range(rows.shape[0])]
    if compression == "zlib":
        return [zlib.compress(rows[i], 1) for i in range(rows.shape[0])]
    if compression == "zstd":
        encoder = _zstd().ZstdCompressor(level=_ZSTD_LEVEL, write_checksum=True, write_content_size=True)
        return [encoder.compress(rows[i]) for i in range(rows.shape[0])]
    if _isal_zlib is None:
        raise ImportError('compression="isal" needs python-isal (pip install isal), or use compression="zlib"')
    return [_isal_zlib.compress(rows[i], 1) for i in range(rows.shape[0])]


_ZERO_CHUNKS: dict[tuple[int, str], bytes] = {}


def _zero_chunk(n: int, compression: str) -> bytes:
    key = (n, compression)
    chunk = _ZERO_CHUNKS.get(key)
    if chunk is None:
        chunk = bytes(_compress(np.zeros((1, n), np.uint8), compression)[0])
        _ZERO_CHUNKS[key] = chunk
    return chunk


def inflate(data) -> bytes:
    """Decode one zlib stream (a gzip-filter chunk), with ISA-L when installed, else zlib.

    Raises one of :data:`INFLATE_ERRORS` for a damaged stream; the Adler-32 at its end checks the
    content.
    """
    if _isal_zlib is not None:
        return _isal_zlib.decompress(data)
    return zlib.decompress(data)


INFLATE_ERRORS: tuple = (zlib.error,) if _isal_zlib is None else (zlib.error, _isal_zlib.error)
"""What :func:`inflate` raises for a damaged chunk."""


def unzstd(data, n: int) -> bytes:
    """Decode one Zstandard frame of ``n`` bytes (its checksum checks the content).

    Raises one of :data:`UNZSTD_ERRORS` for a damaged frame.
    """
    return _zstd().ZstdDecompressor().decompress(data, max_output_size=n)


UNZSTD_ERRORS: tuple = (ValueError,) if _zstandard is None else (_zstandard.ZstdError, ValueError)
"""What :func:`unzstd` raises for a damaged frame."""


def decode(data, n: int, compression: str) -> bytes:
    """The ``n`` bytes a stored chunk of this compression holds (raises for a damaged chunk)."""
    if compression == "none":
        return data
    if compression == "zstd":
        return unzstd(data, n)
    return inflate(data)


def check_chunk(data, n: int, compression: str) -> bool:
    """Whether a stored chunk decodes to ``n`` bytes (the zlib or zstd checksum checks its content)."""
    if compression == "none":
        return len(data) == n
    try:
        return len(decode(data, n, compression)) == n
    except INFLATE_ERRORS + UNZSTD_ERRORS:
        return False
