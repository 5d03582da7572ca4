"""Chunk codecs: every chunk is a zlib stream HDF5's gzip filter reads; files of earlier versions stay readable."""

import shutil
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from ispad_core.io import _codec, merge_streams, open_stream, write_stream

DATA = Path(__file__).parent / "data"


def legacy_items():
    """The arrays the files in tests/io/data were written from (by version 1's "fast" encoder)."""
    rng = np.random.default_rng(2024)
    images = rng.normal(128, 20, (6, 24, 20, 3)).clip(0, 255).astype(np.uint8)
    masks = np.zeros((6, 24, 20), np.uint8)
    masks[1, 3:9, 4:7] = 255
    masks[4, 10:12, :] = 255
    return images, masks, np.array([0, 1, 0, 0, 1, 0], np.uint8)


def needs(compression):
    if compression == "zstd":
        pytest.importorskip("zstandard")


@pytest.mark.parametrize("compression", ["isal", "zlib", "zstd", "none"])
def test_codec_chunks_decode(compression):
    needs(compression)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, (4, 1024), dtype=np.uint8)
    masks = np.zeros((4, 1024), np.uint8)
    masks[1, 10:20] = 1
    masks[3, 5] = 7  # any nonzero value is stored as 255
    for arr, is_mask in ((rows, False), (masks, True)):
        chunks = _codec.compress_rows(arr, compression, mask=is_mask)
        expected = np.where(arr != 0, 255, 0).astype(np.uint8) if is_mask else arr
        for chunk, row in zip(chunks, expected):
            if compression in ("isal", "zlib"):
                assert zlib.decompress(chunk) == row.tobytes()  # plain zlib reads it
            assert bytes(_codec.decode(chunk, row.size, compression)) == row.tobytes()
            assert _codec.check_chunk(chunk, row.size, compression)
            assert not _codec.check_chunk(chunk, row.size + 1, compression)
    if compression != "none":
        assert not _codec.check_chunk(b"garbage", 1024, compression)
        damaged = bytearray(_codec.compress_rows(rows[:1], compression, mask=False)[0])
        damaged[len(damaged) // 2] ^= 0xFF
        assert not _codec.check_chunk(bytes(damaged), 1024, compression)


def test_compress_rows_refuses_the_removed_encoder():
    with pytest.raises(ValueError, match="compression: expected one of 'isal', 'zlib', 'zstd', 'none', got 'fast'"):
        _codec.compress_rows(np.zeros((1, 4), np.uint8), "fast", mask=False)


@pytest.mark.parametrize("compression", ["isal", "zlib"])
def test_h5py_reads_our_chunks_through_its_gzip_filter(tmp_path, compression):
    images, masks, labels = legacy_items()
    path = write_stream(tmp_path / "s.h5", images, masks, labels, compression=compression)
    with h5py.File(path, "r") as f:  # HDF5's own gzip filter, not our reader
        assert f["syn_stream/images"].compression == "gzip"
        np.testing.assert_array_equal(f["syn_stream/images"][()], images)
        np.testing.assert_array_equal(f["ground_truth"][()], masks)


def test_files_of_the_removed_encoder_stay_readable():
    images, masks, labels = legacy_items()
    with open_stream(DATA / "stream_fast_v1.h5") as s:
        assert s.attrs["compression"] == "fast"
        got = s[:]
        shuffled = s.read_batch([5, 0, 3, 3])
        np.testing.assert_array_equal(shuffled[0], images[[5, 0, 3, 3]])
    for a, b in zip(got, (images, masks != 0, labels)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("copy", [True, False])
def test_parts_of_the_removed_encoder_still_merge(tmp_path, copy):
    images, masks, labels = legacy_items()
    parts = [shutil.copy(DATA / f"stream_fast_v1_part{k}.h5", tmp_path) for k in (0, 1)]
    out = merge_streams(parts, tmp_path / "merged.h5", copy=copy)
    with open_stream(out) as s:
        assert s.attrs["compression"] == "fast" and (s.attrs["item_start"], s.attrs["item_stop"]) == (0, 6)
        for a, b in zip(s[:], (images, masks != 0, labels)):
            np.testing.assert_array_equal(a, b)


def test_zstd_chunks_are_what_the_registered_hdf5_filter_reads(tmp_path):
    pytest.importorskip("zstandard")
    hdf5plugin = pytest.importorskip("hdf5plugin")
    images, masks, labels = legacy_items()
    path = write_stream(tmp_path / "s.h5", images, masks, labels, compression="zstd", batch_size=4)
    assert hdf5plugin.Zstd.filter_id == _codec.ZSTD_FILTER
    with h5py.File(path, "r") as f:  # HDF5 with the plugin decodes our chunks itself
        np.testing.assert_array_equal(f["syn_stream/images"][()], images)
        np.testing.assert_array_equal(f["ground_truth"][()], masks)
    with open_stream(path) as s:
        np.testing.assert_array_equal(s.read_batch([5, 1])[0], images[[5, 1]])
        assert s._chunk_segments("syn_stream/images").codecs == ["zstd"]
