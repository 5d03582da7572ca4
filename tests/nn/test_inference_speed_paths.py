"""The inspection's fast paths give what the plain ways give: the overlay's blend by colour keys
(table and per-pixel) against the per-pixel reference, ``window_at`` against the heat map, the
PNG encoder against a PNG decoder, and the model's memory format kept across ``inspect`` and
``inspect_files``."""

import importlib
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from ispad_core.nn.inference import inspect, inspect_files  # noqa: E402
from ispad_core.nn.inference.files import _png_bytes  # noqa: E402
from ispad_core.nn.inference.scoring import in_channels_last  # noqa: E402
from tests.reference.overlay_ref import blend_ref  # noqa: E402

overlay_module = importlib.import_module("ispad_core.nn.inference.overlay")
files_module = importlib.import_module("ispad_core.nn.inference.files")
FP32 = dict(precision="fp32", channels_last=False)


def _tiny_conv():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten()).eval()


def _inspection(shape, stride, seed, roi):
    image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return image, inspect(_tiny_conv(), image, threshold=0.5, size=16, stride=stride, roi=roi, **FP32)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_blend_by_keys_equals_the_per_pixel_reference(data):
    """Both ways of _blend (a table per key and grey level, or the formula per pixel) give the
    reference's bytes, for grey and RGB pictures, with and without an ROI, any stride."""
    shape = (data.draw(st.integers(16, 60)), data.draw(st.integers(16, 60)))
    roi = None
    if data.draw(st.booleans()):
        roi = np.zeros(shape, np.uint8)
        roi[: shape[0] // 2 + 1, : data.draw(st.integers(1, shape[1]))] = 1
    image, result = _inspection(shape, data.draw(st.integers(2, 16)), data.draw(st.integers(0, 9)), roi)
    rgb = data.draw(st.booleans())
    small = np.random.default_rng(1).integers(0, 256, shape + ((3,) if rgb else ()), dtype=np.uint8)
    if data.draw(st.booleans()):  # a narrow range of grey levels, as in a flat scan
        small = (small // 32 + 100).astype(np.uint8)
    rows, cols = np.arange(shape[0]), np.arange(shape[1])
    covered = overlay_module._covered(result, 1, shape)
    inside = None if roi is None else roi != 0
    expected = blend_ref(small, result.heat_at(rows, cols), covered, inside)
    window = result.window_at(rows, cols)
    window[window < 0] = result.scores.size
    keys = 2 * window + covered
    keep, tint = overlay_module._key_colours(result.scores)
    used = np.flatnonzero(np.bincount(keys.ravel(), minlength=keep.shape[0]))
    lo, hi = int(small.min()), int(small.max())
    by_table = overlay_module._blend_table(small, keys, used, (lo, hi), keep, tint, inside)
    np.testing.assert_array_equal(by_table, expected)
    np.testing.assert_array_equal(overlay_module._blend(small, keys, keep, tint, inside), expected)


def test_blend_takes_both_ways_on_the_overlay(monkeypatch):
    """A large picture with few windows takes the table, a small one with many the per-pixel way;
    both overlays equal the reference blend (the drawing on top aside: no window is flagged)."""
    tables = []
    real = overlay_module._blend_table
    monkeypatch.setattr(overlay_module, "_blend_table", lambda *a: tables.append(1) or real(*a))
    for shape, stride, table in (((400, 400), 16, True), ((160, 160), 2, False)):
        image, result = _inspection(shape, stride, 3, None)
        result = type(result)(**{**{f: getattr(result, f) for f in result.__dataclass_fields__},
                                 "threshold": 1.0, "defective": False, "flagged": np.zeros(0, np.int64)})
        tables.clear()
        picture = overlay_module.overlay(image, result)
        assert bool(tables) == table
        rows, cols = np.arange(shape[0]), np.arange(shape[1])
        expected = blend_ref(image, result.heat_at(rows, cols), overlay_module._covered(result, 1, shape), None)
        top = picture.shape[0] // 2  # below the banner
        np.testing.assert_array_equal(picture[top:], expected[top:])


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_window_at_names_the_window_of_the_heat_map(data):
    shape = (data.draw(st.integers(16, 50)), data.draw(st.integers(16, 50)))
    roi = None
    if data.draw(st.booleans()):
        roi = np.zeros(shape, np.uint8)
        roi[: shape[0] // 3 + 1] = 1
    _, result = _inspection(shape, data.draw(st.integers(2, 16)), data.draw(st.integers(0, 5)), roi)
    rows = np.sort(np.array(data.draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=12))))
    cols = np.sort(np.array(data.draw(st.lists(st.integers(0, shape[1] - 1), min_size=1, max_size=12))))
    window = result.window_at(rows, cols)
    heat = result.heatmap[np.ix_(rows, cols)]
    assert window.dtype == np.int32 and ((window >= -1) & (window < result.scores.size)).all()
    np.testing.assert_array_equal(np.where(window < 0, 0, result.scores.astype(np.float32)[window]), heat)
    r, c = np.nonzero(window >= 0)  # the named window covers the pixel
    o = result.origins[window[r, c]]
    assert ((o[:, 0] <= rows[r]) & (rows[r] < o[:, 0] + 16) & (o[:, 1] <= cols[c]) & (cols[c] < o[:, 1] + 16)).all()


@pytest.mark.parametrize("deflater", ["default", "zlib"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (1, 9, 3), (64, 48, 3), (1200, 1000, 3), (2100, 1100)])
def test_png_bytes_decode_to_the_image(shape, deflater, monkeypatch):
    """With ISA-L's deflate and with zlib's (without python-isal), in one part and in several."""
    if deflater == "zlib":
        monkeypatch.setattr(files_module, "_deflater", zlib)
    image = np.random.default_rng(len(shape)).integers(0, 256, shape, dtype=np.uint8)
    image[: shape[0] // 2] //= 16  # a compressible half and a noisy half
    data = _png_bytes(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(iio.imread(data, extension=".png"), image)


def _two_convs():
    """A model whose second convolution's weights differ between the two memory formats."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3),
                               torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten()).eval()


@pytest.mark.parametrize("start_channels_last", [False, True])
def test_inspect_leaves_the_models_memory_format_and_scores_alike(start_channels_last):
    net = _two_convs()
    image = np.random.default_rng(0).integers(0, 256, (70, 90), dtype=np.uint8)
    plain = inspect(net, image, threshold=0.5, size=32, **FP32)
    if start_channels_last:
        net.to(memory_format=torch.channels_last)
    assert in_channels_last(net) == start_channels_last
    fast = inspect(net, image, threshold=0.5, size=32, precision="fp32", channels_last=True)
    assert in_channels_last(net) == start_channels_last
    np.testing.assert_allclose(fast.scores, plain.scores, rtol=0, atol=1e-6)


def test_inspect_files_converts_the_model_once_and_restores_it(tmp_path, monkeypatch):
    net = _two_convs()
    for k in range(3):
        iio.imwrite(tmp_path / f"s{k}.png", np.random.default_rng(k).integers(0, 256, (64, 80), dtype=np.uint8))
    seen = []
    original = torch.nn.Module.to

    def to(self, *args, **kwargs):
        if self is net and "memory_format" in kwargs:
            seen.append(kwargs["memory_format"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    meta = {"patch_size": 32, "threshold": 0.5, "preprocess": "lsm2"}
    report = inspect_files(sorted(tmp_path.glob("s*.png")), model=(net, meta), out=tmp_path / "out",
                           precision="fp32", channels_last=True, verbose=False)
    assert all(s.ok for s in report.scans)
    assert seen == [torch.channels_last, torch.contiguous_format]  # once for the three scans, then back
    assert not in_channels_last(net)
