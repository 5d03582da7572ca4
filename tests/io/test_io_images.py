"""Single images: damaged PNGs are refused with the file's name, files are never left open."""

from __future__ import annotations

import gc
import struct
import warnings
import zlib

import numpy as np
import pytest

from ispad_core.io import read_image, read_images, read_mvtec, write_mvtec, write_png
from ispad_core.io._images import _png_expected_bytes, check_png_data

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def make_png(image: np.ndarray, *, rows: int | None = None, interlace: bool = False, extra: bytes = b"") -> bytes:
    """An 8-bit grey or RGB PNG written by hand (filter 0 on every row), its data optionally cut
    to the first ``rows`` scanlines (of every Adam7 pass when interlaced) or padded by ``extra``."""
    h, w = image.shape[:2]
    colour = 2 if image.ndim == 3 else 0
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = image[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        lines = [b"\x00" + row.tobytes() for row in sub]
        raw += b"".join(lines if rows is None else lines[:rows])
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, int(interlace))
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw + extra))
        + _chunk(b"IEND", b"")
    )


def _image(shape, seed=0):
    return np.random.default_rng(seed).integers(1, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("shape", [(64, 48), (17, 23, 3), (1, 1)])
@pytest.mark.parametrize("interlace", [False, True])
def test_complete_hand_made_pngs_read_back_exactly(tmp_path, shape, interlace):
    image = _image(shape)
    (tmp_path / "a.png").write_bytes(make_png(image, interlace=interlace))
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), image)


def test_expected_bytes_agree_with_a_decoder_for_interlaced_sizes():
    # Every Adam7 pass is a sub-image of its own: sizes where passes are empty included.
    for h in range(1, 11):
        for w in range(1, 11):
            img = np.zeros((h, w), np.uint8)
            raw_len = sum(
                len(img[y0::dy, x0::dx]) * (1 + img[y0::dy, x0::dx].shape[1])
                for x0, y0, dx, dy in ADAM7
                if img[y0::dy, x0::dx].size
            )
            assert _png_expected_bytes(w, h, 8, 0, 1) == raw_len
    assert _png_expected_bytes(5, 3, 1, 0, 0) == 3 * 2  # 1-bit rows round up to a byte
    assert _png_expected_bytes(5, 3, 16, 6, 0) == 3 * (1 + 40)


@pytest.mark.parametrize("interlace", [False, True])
def test_a_png_with_fewer_rows_than_declared_is_refused_naming_the_file(tmp_path, interlace):
    image = _image((64, 64))
    path = tmp_path / "scan_07.png"
    path.write_bytes(make_png(image, rows=10, interlace=interlace))
    with pytest.raises(ValueError, match="--images: .*scan_07.png is truncated"):
        read_image(path, name="--images")
    with pytest.raises(ValueError, match="scan_07.png is truncated"):
        read_images(tmp_path)


def test_the_truncation_message_says_how_many_rows(tmp_path):
    (tmp_path / "a.png").write_bytes(make_png(_image((64, 30)), rows=10))
    with pytest.raises(ValueError, match="holds data for only 10 of the 64 rows its header declares \\(30 x 64\\)"):
        read_image(tmp_path / "a.png")


def test_extra_data_and_cut_off_files_are_refused(tmp_path):
    image = _image((16, 16))
    (tmp_path / "extra.png").write_bytes(make_png(image, extra=b"\x00" * 17))
    with pytest.raises(ValueError, match="extra.png is a damaged PNG: it holds 289 bytes"):
        read_image(tmp_path / "extra.png")
    full = make_png(image)
    (tmp_path / "cut.png").write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match="cut.png is a damaged PNG \\(chunk 'IDAT' is cut off"):
        read_image(tmp_path / "cut.png")
    # a zlib stream that stops early (no end marker): the decoder's own "truncated" case
    body = zlib.compress(b"".join(b"\x00" + r.tobytes() for r in image))[:-12]
    broken = full[:33] + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")
    (tmp_path / "stream.png").write_bytes(broken)
    with pytest.raises(ValueError, match="stream.png is truncated: its image data ends after"):
        read_image(tmp_path / "stream.png")
    (tmp_path / "garbled.png").write_bytes(full[:33] + _chunk(b"IDAT", b"\xff" * 20) + _chunk(b"IEND", b""))
    with pytest.raises(ValueError, match="garbled.png has corrupt PNG image data"):
        read_image(tmp_path / "garbled.png")


def test_check_png_data_leaves_other_formats_to_the_decoder(tmp_path):
    check_png_data(b"II*\x00 not a png", tmp_path / "x.tif")  # no error: not a PNG


def test_pngs_written_by_the_library_pass(tmp_path):
    for shape in [(5, 7), (40, 33, 3), (9, 9, 4)]:
        image = _image(shape)
        if len(shape) == 3 and shape[2] == 4:
            image[..., 3] = 255
        write_png(tmp_path / "x.png", image, overwrite=True)
        check_png_data((tmp_path / "x.png").read_bytes(), tmp_path / "x.png")
        np.testing.assert_array_equal(read_image(tmp_path / "x.png"), image[..., :3] if image.ndim == 3 else image)


def test_a_truncated_mvtec_mask_is_refused_naming_the_mask(tmp_path):
    images = np.zeros((2, 32, 32), np.uint8)
    masks = np.zeros((2, 32, 32), bool)
    masks[1, 20:30, 4:8] = True  # the defect lies in rows the short file leaves out
    root = write_mvtec(tmp_path / "d", images[:1], images, test_groups=["good", "area"], test_masks=masks)
    mask_file = root / "ground_truth" / "area" / "000_mask.png"
    mask_file.write_bytes(make_png(masks[1].astype(np.uint8) * 255, rows=12))
    with pytest.raises(ValueError, match="root: .*ground_truth/area/000_mask.png is truncated"):
        read_mvtec(root)
    (root / "test" / "good" / "000.png").write_bytes(make_png(images[0], rows=3))
    with pytest.raises(ValueError, match="root: .*test/good/000.png is truncated"):
        read_mvtec(root)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg", ".bmp"])
def test_an_unreadable_file_is_refused_and_left_closed(tmp_path, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b"not an image at all")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ResourceWarning about an unclosed file fails here
        with pytest.raises(ValueError, match=f"^image: cannot read .*bad\\{suffix} as an image"):
            read_image(path)
        gc.collect()


def test_read_images_min_size_names_the_file(tmp_path):
    write_png(tmp_path / "big.png", np.zeros((64, 64), np.uint8))
    write_png(tmp_path / "small.png", np.zeros((64, 20), np.uint8))
    with pytest.raises(ValueError, match="--images: .*small.png is 64 x 20 pixels, smaller than the minimum 32 x 32"):
        read_images(tmp_path, name="--images", min_size=32)
    images, files = read_images(tmp_path, min_size=20)
    assert [f.name for f in files] == ["big.png", "small.png"]
    with pytest.raises(ValueError, match="min_size: expected an int >= 1"):
        read_images(tmp_path, min_size=0)


def test_write_png_refuses_links_and_special_files(tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("keep")
    (tmp_path / "out.png").symlink_to(target)
    with pytest.raises(ValueError, match="symbolic link"):
        write_png(tmp_path / "out.png", np.zeros((4, 4), np.uint8), overwrite=True)
    assert target.read_text() == "keep"
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        write_png(tmp_path / "folder.png", np.zeros((4, 4), np.uint8), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.png", "out.png", "victim.txt"]


def test_16_bit_images_on_request(tmp_path):
    import imageio.v3 as iio

    grey16 = (np.arange(48 * 40, dtype=np.uint16).reshape(48, 40) * 27)
    iio.imwrite(tmp_path / "scan16.png", grey16)
    with pytest.raises(ValueError, match="--images: expected an 8-bit image, got uint16 from .*scan16.png"):
        read_image(tmp_path / "scan16.png", name="--images")
    np.testing.assert_array_equal(read_image(tmp_path / "scan16.png", depth=16), grey16)
    np.testing.assert_array_equal(read_image(tmp_path / "scan16.png", depth=(8, 16)), grey16)
    write_png(tmp_path / "scan8.png", np.zeros((48, 40), np.uint8))
    with pytest.raises(ValueError, match="expected a 16-bit image, got uint8 from .*scan8.png"):
        read_image(tmp_path / "scan8.png", depth=16)
    with pytest.raises(ValueError, match="--images: mixes 8-bit images \\(scan8.png\\) and 16-bit images \\(scan16.png\\)"):
        read_images(tmp_path, name="--images", depth=(8, 16))
    with pytest.raises(ValueError, match="depth: expected 8, 16 or \\(8, 16\\), got 12"):
        read_image(tmp_path / "scan8.png", depth=12)


def test_a_16_bit_colour_png_is_not_cut_to_8_bits(tmp_path):
    rgb16 = (np.arange(6 * 5 * 3, dtype=np.uint16).reshape(6, 5, 3) * 700)
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb16)
    header = struct.pack(">IIBBBBB", 5, 6, 16, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    (tmp_path / "rgb16.png").write_bytes(png)
    assert check_png_data(png, tmp_path / "rgb16.png") == 16
    for depth in (8, 16, (8, 16)):
        with pytest.raises(ValueError, match="rgb16.png is a 16-bit colour PNG, which the decoder would cut to 8 bits"):
            read_image(tmp_path / "rgb16.png", depth=depth)


# --------------------------------------------------------------------------- the decoder's pixel limit


@pytest.fixture
def small_limit(monkeypatch):
    """Pillow's decompression-bomb limit lowered to 1 000 pixels (instead of a 20 000 x 20 000 scan)."""
    from PIL import Image

    monkeypatch.delenv("ISPAD_MAX_IMAGE_PIXELS", raising=False)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    return Image


def _save(path, image):
    from PIL import Image

    if path.suffix == ".png":
        write_png(path, image)
    else:
        Image.fromarray(image).save(path)
    return path


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp", ".jpg"])
@pytest.mark.parametrize("shape", [(30, 40), (100, 120)])  # above the limit; above twice the limit
def test_an_image_over_the_pixel_limit_is_refused_with_its_size_and_how_to_raise_it(tmp_path, small_limit, suffix,
                                                                                   shape):
    path = _save(tmp_path / f"scan{suffix}", np.zeros(shape, np.uint8))
    with pytest.raises(ValueError) as info:
        read_image(path, name="--images")
    message = str(info.value)
    pixels = shape[0] * shape[1]
    assert message.startswith(f"--images: {path} ") and "\n" not in message
    assert f"{pixels:,} pixels" in message and "limit of 1,000 pixels" in message
    assert f"ISPAD_MAX_IMAGE_PIXELS={pixels}" in message and "PIL.Image.MAX_IMAGE_PIXELS" in message
    if suffix == ".png" or shape == (30, 40):
        assert f"is {shape[0]} x {shape[1]} pixels" in message


@pytest.mark.parametrize("value", ["12000", "12_000", "none"])
def test_the_pixel_limit_is_raised_through_the_environment(tmp_path, small_limit, monkeypatch, value):
    image = np.arange(100 * 120, dtype=np.uint32).reshape(100, 120).astype(np.uint8)
    path = _save(tmp_path / "scan.png", image)
    monkeypatch.setenv("ISPAD_MAX_IMAGE_PIXELS", value)
    np.testing.assert_array_equal(read_image(path), image)
    monkeypatch.setenv("ISPAD_MAX_IMAGE_PIXELS", "11999")
    with pytest.raises(ValueError, match="limit of 11,999 pixels"):
        read_image(path)


def test_a_bad_pixel_limit_in_the_environment_is_named(tmp_path, small_limit, monkeypatch):
    path = _save(tmp_path / "scan.png", np.zeros((10, 10), np.uint8))
    monkeypatch.setenv("ISPAD_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match=r"ISPAD_MAX_IMAGE_PIXELS: expected a number of pixels .*, got 'lots'"):
        read_image(path)


def test_cli_a_scan_over_the_pixel_limit_is_one_line(tmp_path, small_limit, capsys):
    from ispad_core.cli import main

    (tmp_path / "scans").mkdir()
    _save(tmp_path / "scans" / "big.png", np.zeros((64, 64), np.uint8))
    rc = main(["synth", "--images", str(tmp_path / "scans"), "--out", str(tmp_path / "s.h5"), "--n", "8",
               "--size", "32", "--seed", "0"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ispad synth: error: ")]
    assert rc == 1 and len(errors) == 1 and "Traceback" not in err, err
    assert "64 x 64 pixels" in errors[0] and "ISPAD_MAX_IMAGE_PIXELS=4096" in errors[0]


def test_write_png_on_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    import errno
    import os
    import pathlib

    from ispad_core._shared.files import OutOfSpaceError

    path = write_png(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    before = path.read_bytes()

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    with pytest.raises(OutOfSpaceError, match=r"path: the disk is full while writing .*a.png \(.* free .*the old a.png is kept"):
        write_png(path, np.full((8, 8), 255, np.uint8), overwrite=True)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["a.png"]
