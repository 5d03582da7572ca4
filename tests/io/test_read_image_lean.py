"""The lean PNG path of ``read_image`` gives exactly what imageio's Pillow plugin gives, and
leaves every other file to imageio."""

import io
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ispad_core.io import read_image
from ispad_core.io import _images


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode=mode).save(out, format="PNG")
    return out.getvalue()


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 50), channels=st.sampled_from([1, 2, 3, 4]), seed=st.integers(0, 2**16),
       band=st.sampled_from([1, 7, 1 << 23]))
def test_lean_decode_equals_imageio(h, w, channels, seed, band):
    """Grey, grey + alpha, RGB and RGBA, in bands of one row, a few rows, or all at once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_images, "_LEAN_BAND_BYTES", band)
        _check_lean(h, w, channels, seed)


def _check_lean(h, w, channels, seed):
    shape = (h, w) if channels == 1 else (h, w, channels)
    array = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    data = _png(array)
    stream = io.BytesIO(data)
    got = _images._decode_png_lean(stream)
    assert got is not None and got.flags.writeable and got.flags.c_contiguous
    np.testing.assert_array_equal(got, iio.imread(io.BytesIO(data), plugin="pillow"))
    np.testing.assert_array_equal(got, array)
    assert stream.closed  # the compressed bytes were let go once decoded


@pytest.mark.parametrize("kind", ["palette", "16-bit", "bilevel", "bmp", "animated"])
def test_other_files_are_left_to_imageio(kind, tmp_path):
    rng = np.random.default_rng(0)
    if kind == "palette":
        im = Image.fromarray(rng.integers(0, 256, (9, 8, 3), dtype=np.uint8)).convert("P")
    elif kind == "16-bit":
        im = Image.fromarray(rng.integers(0, 65536, (9, 8), dtype=np.uint16))
    elif kind == "bilevel":
        im = Image.fromarray(rng.integers(0, 2, (9, 8), dtype=np.uint8) * 255).convert("1")
    else:
        im = Image.fromarray(rng.integers(0, 256, (9, 8), dtype=np.uint8))
    out = io.BytesIO()
    if kind == "animated":
        im.save(out, format="PNG", save_all=True, append_images=[im.point(lambda v: 255 - v)])
    else:
        im.save(out, format="BMP" if kind == "bmp" else "PNG")
    assert _images._decode_png_lean(io.BytesIO(out.getvalue())) is None


def test_read_image_of_a_png_scan_is_unchanged(tmp_path: Path):
    """Through the whole reader (checks included): the same array as imageio's, writable."""
    array = np.random.default_rng(1).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    path = tmp_path / "scan.png"
    path.write_bytes(_png(array))
    got = read_image(path)
    np.testing.assert_array_equal(got, iio.imread(path, plugin="pillow"))
    assert got.flags.writeable
