"""The Numba zlib encoders: every stream decodes with zlib to the input, codes are optimal."""

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ispad_core.io import _codec
from ispad_core.io._deflate_kernels import (
    _adler_runs,
    _canonical_codes,
    _compress_masks,
    _compress_rows,
    _deflate_huffman,
    _deflate_rle,
    _deflate_stored,
    _huffman_lengths,
    stored_size,
)
from tests.reference import io_ref

ENCODERS = [_deflate_huffman, _deflate_rle, _deflate_stored]


def encode(fn, data: np.ndarray) -> bytes:
    out = np.zeros(stored_size(data.size), np.uint8)
    n = fn(data, out) if fn is _deflate_rle else fn(data, out, zlib.adler32(data))
    assert 0 < n <= out.size
    return out[:n].tobytes()


def _cases():
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:64, 0:64]
    pattern = (128 + 60 * np.sin(xx / 3.0) * np.sin(yy / 3.0) + rng.normal(0, 6, (64, 64))).clip(0, 255)
    return {
        "zeros": np.zeros(65536, np.uint8),
        "constant": np.full(4096, 7, np.uint8),
        "ramp": np.arange(65536).astype(np.uint8),
        "sparse mask": ((rng.random(65536) < 0.001) * 255).astype(np.uint8),
        "uniform noise": rng.integers(0, 256, 65536, dtype=np.uint8),
        "geometric": rng.geometric(0.5, 65536).clip(0, 255).astype(np.uint8),
        "one byte": np.array([5], np.uint8),
        "two bytes": np.array([5, 200], np.uint8),
        "three bytes": np.array([0, 0, 0], np.uint8),
        "over one stored block": rng.integers(0, 256, 200_000, dtype=np.uint8),
        "long zeros": np.zeros(200_000, np.uint8),
        "runs": np.repeat(rng.integers(0, 3, 3000), rng.integers(1, 600, 3000)).astype(np.uint8),
        "noisy pattern": pattern.astype(np.uint8).ravel(),
    }


CASES = _cases()


@pytest.mark.parametrize("fn", ENCODERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", list(CASES))
def test_zlib_decodes_to_the_input(fn, case):
    data = CASES[case]
    assert zlib.decompress(encode(fn, data)) == data.tobytes()


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=3000),
    repeat=st.integers(1, 40),
    fn=st.sampled_from(ENCODERS),
)
def test_round_trip_property(data, repeat, fn):
    arr = np.frombuffer(data * repeat, np.uint8).copy()
    encoded = encode(fn, arr)
    assert zlib.decompress(encoded) == arr.tobytes()
    assert len(encoded) <= stored_size(arr.size)


# SHA-256 of the Huffman and run-length encodings of every case above, as the encoders of the
# first release wrote them. Speed work on the kernels must not change a byte: streams written by
# different versions of the same settings stay identical, and so do resumed and merged files.
GOLDEN_SHA256 = "cbcf7681df9b23886167878a4f7ec6bb793c86c64135c66ed78ecce9a48cea26"


def test_encodings_are_byte_for_byte_those_of_the_first_release():
    import hashlib

    h = hashlib.sha256()
    for name in sorted(CASES):
        for fn in (_deflate_huffman, _deflate_rle):
            h.update(encode(fn, CASES[name]))
    assert h.hexdigest() == GOLDEN_SHA256


def test_huffman_beats_zlib_huffman_only_within_a_percent():
    data = CASES["noisy pattern"]
    ours = len(encode(_deflate_huffman, data))
    c = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_HUFFMAN_ONLY)
    theirs = len(c.compress(data.tobytes()) + c.flush())
    assert ours <= 1.01 * theirs


def test_incompressible_data_falls_back_to_stored_blocks():
    data = CASES["uniform noise"]
    assert len(encode(_deflate_huffman, data)) == stored_size(data.size)


@settings(max_examples=80, deadline=None)
@given(freq=st.lists(st.integers(0, 10_000), min_size=2, max_size=286))
def test_lengths_are_optimal_when_the_limit_does_not_bind(freq):
    f = np.array(freq, np.int64)
    lens = np.zeros(f.size, np.int64)
    _huffman_lengths(f, 15, lens)
    used = lens.tolist()
    assert io_ref.kraft_complete(used)
    assert all(L > 0 for L, x in zip(used, freq) if x > 0)
    if sum(x > 0 for x in freq) >= 2 and max(used) < 15:
        assert int((f * lens).sum()) == io_ref.huffman_cost(freq)


@settings(max_examples=60, deadline=None)
@given(
    freq=st.lists(st.integers(0, 2**40), min_size=2, max_size=286),
    limit=st.sampled_from([7, 9, 15]),
)
def test_lengths_respect_the_limit_and_stay_complete(freq, limit):
    if sum(x > 0 for x in freq) > 2**limit:
        return
    f = np.array(freq, np.int64)
    lens = np.zeros(f.size, np.int64)
    _huffman_lengths(f, limit, lens)
    assert lens.max() <= limit
    assert io_ref.kraft_complete(lens.tolist())


def test_fibonacci_frequencies_need_the_limit():
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    f = np.array(fib, np.int64)
    lens = np.zeros(f.size, np.int64)
    _huffman_lengths(f, 15, lens)
    assert lens.max() == 15 and io_ref.kraft_complete(lens.tolist())


@settings(max_examples=50, deadline=None)
@given(lengths=st.lists(st.integers(0, 15), min_size=2, max_size=60))
def test_canonical_codes_match_the_rfc(lengths):
    if not io_ref.kraft_complete(lengths):
        return
    lens = np.array(lengths, np.int64)
    codes = np.zeros(lens.size, np.int64)
    _canonical_codes(lens, codes)
    expected = io_ref.canonical_codes(lengths)
    for sym, L in enumerate(lengths):
        if L:
            assert format(int(codes[sym]), f"0{L}b")[::-1] == expected[sym]  # stored bit-reversed
    assert io_ref.is_prefix_free(expected)


def test_reference_adler32_is_zlibs():
    data = np.random.default_rng(1).integers(0, 256, 6000, dtype=np.uint8).tobytes()
    assert io_ref.adler32(data) == zlib.adler32(data)


@pytest.mark.parametrize("case", list(CASES))
def test_run_wise_adler32_matches_the_definition(case):
    data = CASES[case]
    words = data[: data.size - data.size % 8].view(np.uint64)
    assert _adler_runs(data, words) == zlib.adler32(data)
    if data.size <= 6000:
        assert _adler_runs(data, words) == io_ref.adler32(data.tobytes())


def test_batch_kernel_equals_single_calls():
    rows = np.stack([CASES["noisy pattern"][:4096], CASES["sparse mask"][:4096], CASES["ramp"][:4096]])
    out = np.zeros((3, stored_size(4096)), np.uint8)
    lengths = np.zeros(3, np.int64)
    adlers = np.array([zlib.adler32(r) for r in rows], np.int64)
    for rle, fn in ((False, _deflate_huffman), (True, _deflate_rle)):
        _compress_rows(rows, out, lengths, rle, adlers)
        for i in range(3):
            assert out[i, : lengths[i]].tobytes() == encode(fn, rows[i])


@pytest.mark.parametrize("n", [1, 7, 8, 9, 63, 64, 65, 1000, 4099, 65536, 70001])
def test_mask_kernel_equals_coding_the_converted_masks(n):
    # _compress_masks codes nonzero as 255 without converting first: the bytes must be those of
    # the run-length coder on the converted 0/255 rows, whatever the nonzero values are.
    rng = np.random.default_rng(n)
    rows = np.zeros((7, n), np.uint8)
    rows[1] = rng.random(n) < 0.01
    rows[2] = (rng.random(n) < 0.3) * rng.integers(1, 256, n)
    rows[3] = np.repeat(rng.integers(0, 2, n // 9 + 1), 9)[:n] * 3
    rows[4] = (rng.random(n) < 0.5) * 255  # noise: run-length coding loses, stored blocks
    rows[5] = rng.integers(1, 256, n)  # all nonzero, mixed values
    rows[6] = (rng.random(n) < 0.5) * rng.integers(1, 256, n)
    out = np.zeros((7, stored_size(n)), np.uint8)
    lengths = np.zeros(7, np.int64)
    _compress_masks(rows, out, lengths)
    for i in range(7):
        converted = np.where(rows[i] != 0, np.uint8(255), np.uint8(0))
        chunk = out[i, : lengths[i]].tobytes()
        assert chunk == encode(_deflate_rle, converted)
        assert zlib.decompress(chunk) == converted.tobytes()


@pytest.mark.parametrize("compression", ["fast", "zlib", "none"])
def test_codec_chunks_decode(compression):
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, (4, 1024), dtype=np.uint8)
    masks = np.zeros((4, 1024), np.uint8)
    masks[1, 10:20] = 255
    for arr, is_mask in ((rows, False), (masks, True)):
        chunks = _codec.compress_rows(arr, compression, mask=is_mask)
        for chunk, row in zip(chunks, arr):
            raw = bytes(chunk) if compression == "none" else zlib.decompress(chunk)
            assert raw == row.tobytes()
            assert _codec.check_chunk(chunk, row.size, compression)
    assert not _codec.check_chunk(b"garbage", 1024, "fast")


BOUNDS_SCRIPT = """
import zlib
import numpy as np
from ispad_core.io._deflate_kernels import _compress_masks, _compress_rows, _deflate_huffman, _deflate_rle, _deflate_stored, stored_size
rng = np.random.default_rng(0)
sizes = list(range(0, 300)) + [511, 512, 4096, 65535, 65536, 65537, 70000]
for n in sizes:
    for data in (rng.integers(0, 256, n, dtype=np.uint8), (rng.random(n) < 0.02).astype(np.uint8) * 255,
                 rng.geometric(0.3, n).clip(0, 255).astype(np.uint8), np.zeros(n, np.uint8)):
        for fn in (_deflate_huffman, _deflate_rle, _deflate_stored):
            out = np.zeros(stored_size(n), np.uint8)
            k = fn(data, out) if fn is _deflate_rle else fn(data, out, zlib.adler32(data))
            assert zlib.decompress(out[:k].tobytes()) == data.tobytes(), (fn, n)
rows = rng.integers(0, 4, (3, 1000), dtype=np.uint8)
out = np.zeros((3, stored_size(1000)), np.uint8)
lengths = np.zeros(3, np.int64)
_compress_rows(rows, out, lengths, False, np.array([zlib.adler32(r) for r in rows], np.int64))
for n in sizes:
    masks = np.stack([np.zeros(n, np.uint8), (rng.random(n) < 0.02) * rng.integers(1, 256, n),
                      (rng.random(n) < 0.5).astype(np.uint8), np.full(n, 3, np.uint8)]).astype(np.uint8)
    out = np.zeros((4, stored_size(n)), np.uint8)
    lengths = np.zeros(4, np.int64)
    _compress_masks(masks, out, lengths)
    for i in range(4):
        assert zlib.decompress(out[i, :lengths[i]].tobytes()) == np.where(masks[i] != 0, 255, 0).astype(np.uint8).tobytes(), n
print("ok")
"""


def test_kernels_stay_in_bounds(tmp_path):
    """Numba does not check indices: run every encoder with NUMBA_BOUNDSCHECK=1 on edge sizes."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", BOUNDS_SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
