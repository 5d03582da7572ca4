"""The built-in benchmark with "real" defects the synthesizer cannot draw."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import ispad_core.samples.proxy as proxy
from ispad_core.io import read_image, read_mvtec
from ispad_core.samples.proxy import AREA_CLASSES, POINT_CLASSES, proxy_benchmark, proxy_defect
from ispad_core.samples import screen_print

SMALL = dict(size=32, n_scans=1, scan_side=128, n_points=4, n_area=6, n_val=4, n_test=6, good_per_defective=5)


def test_imports_nothing_from_the_synthesizer():
    tree = ast.parse(Path(proxy.__file__).read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
            names += [f"{node.module}.{a.name}" for a in node.names]
    assert names and not [n for n in names if "synth" in n], names


@pytest.mark.parametrize("kind", POINT_CLASSES + AREA_CLASSES)
def test_each_class_changes_only_its_mask_and_is_deterministic(kind):
    for seed in range(5):
        context = screen_print((80, 80), rng=seed, kind=("dots", "lines", "mesh", "mixed")[seed % 4])
        patch = context[8:72, 8:72]
        image, mask = proxy_defect(context, kind, seed=seed)
        assert image.dtype == np.uint8 and mask.dtype == bool and image.shape == mask.shape == (64, 64)
        np.testing.assert_array_equal(image[~mask], patch[~mask])
        assert (image != patch).sum() > 0.2 * mask.sum()  # the mask is the defect, not a frame around it
        again, mask2 = proxy_defect(context, kind, seed=seed)
        np.testing.assert_array_equal(image, again)
        np.testing.assert_array_equal(mask, mask2)
        other, _ = proxy_defect(context, kind, seed=seed + 100)
        assert not np.array_equal(image, other)


def test_shape_statistics_of_the_groups():
    context = screen_print((80, 80), rng=0)
    area = {}
    for kind in POINT_CLASSES + AREA_CLASSES:
        fractions, parts = [], []
        for seed in range(12):
            _, mask = proxy_defect(context, kind, seed=seed)
            fractions.append(mask.mean())
            parts.append(ndimage.label(mask)[1])
        area[kind] = np.median(fractions)
        if kind == "cluster":
            assert np.median(parts) >= 3  # several specks, unlike one dot
    assert max(area[k] for k in POINT_CLASSES) < 0.03
    assert min(area[k] for k in AREA_CLASSES) > 0.1


def test_streak_runs_along_the_print_direction():
    context = screen_print((80, 80), rng=1)
    for seed in range(6):
        _, mask = proxy_defect(context, "streak", seed=seed)
        rows, cols = np.nonzero(mask)
        assert rows.min() == 0 and rows.max() == 63  # the whole length of the patch
        assert np.ptp(cols) < 48  # a band, not the whole patch


def test_contrast_scales_the_change():
    context = screen_print((80, 80), rng=2)
    patch = context[8:72, 8:72].astype(int)
    weak, m = proxy_defect(context, "streak", seed=3, contrast=0.5)
    strong, _ = proxy_defect(context, "streak", seed=3, contrast=2.0)
    assert np.abs(strong.astype(int) - patch)[m].mean() > 3 * np.abs(weak.astype(int) - patch)[m].mean()


def test_benchmark_is_deterministic_and_balanced():
    a = proxy_benchmark(seed=5, **SMALL)
    b = proxy_benchmark(seed=5, **SMALL)
    c = proxy_benchmark(seed=6, **SMALL)
    for name in ("real_images", "real_masks", "val_images", "test_images", "test_masks"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.real_images, c.real_images)
    assert a.real_groups.count("points") == 4 and a.real_groups.count("area") == 6
    assert set(a.real_classes) == set(POINT_CLASSES + AREA_CLASSES)
    assert a.test_labels.tolist() == [0] * 30 + [1] * 6
    assert a.test_groups.count("points") == 3 and a.test_groups.count("area") == 3
    assert a.val_labels.sum() == 4 and (a.val_labels == 0).sum() == 20
    for split in ("real", "val", "test"):
        masks = getattr(a, f"{split}_masks")
        groups = getattr(a, f"{split}_groups")
        for m, g in zip(masks, groups):
            assert m.any() == (g != "good")


def test_test_patches_do_not_come_from_the_training_scans():
    bench = proxy_benchmark(seed=0, **SMALL)
    scan = bench.scans[0]
    windows = np.lib.stride_tricks.sliding_window_view(scan, (32, 32))
    flat = {w.tobytes() for w in windows.reshape(-1, 32, 32)[::7]}
    good = bench.test_images[bench.test_labels == 0]
    assert not any(g.tobytes() in flat for g in good)
    # the real pool is drawn into patches of the training scans
    image, mask = bench.real_images[0], bench.real_masks[0]
    hits = (windows == np.where(mask, 0, image)[None, None]) | mask[None, None]
    assert hits.all(axis=(2, 3)).any()


def test_written_layout_reads_back(tmp_path):
    out = tmp_path / "proxy"
    bench = proxy_benchmark(out, seed=1, **SMALL)
    meta = json.loads((out / "benchmark.json").read_text())
    assert meta["settings"]["seed"] == 1 and meta["counts"]["test"] == {"good": 30, "points": 3, "area": 3}
    assert sorted(p.name for p in (out / "scans").iterdir()) == ["scan_000.png"]
    np.testing.assert_array_equal(read_image(out / "scans" / "scan_000.png"), bench.scans[0])
    points = sorted((out / "real" / "points").iterdir())
    area = sorted((out / "real" / "area").iterdir())
    assert len(points) == 4 and len(area) == 6
    for f in points + area:
        kind = f.stem.split("_", 1)[1]
        assert kind in (POINT_CLASSES if f.parent.name == "points" else AREA_CLASSES)
        mask = read_image(out / "real_masks" / f.parent.name / f"{f.stem}_mask.png")
        assert set(np.unique(mask)) <= {0, 255} and mask.any()
        assert meta["classes"]["real"][f"{f.parent.name}/{f.name}"] == kind
    for split in ("val", "test"):
        data = read_mvtec(out / split, split="test")
        np.testing.assert_array_equal(data.test_images, getattr(bench, f"{split}_images"))
        np.testing.assert_array_equal(data.test_labels, getattr(bench, f"{split}_labels"))
        np.testing.assert_array_equal(data.test_masks > 0, getattr(bench, f"{split}_masks"))
    with pytest.raises(FileExistsError, match="exists; ask for overwrite"):
        proxy_benchmark(out, seed=1, **SMALL)
    proxy_benchmark(out, seed=2, overwrite=True, **SMALL)
    assert json.loads((out / "benchmark.json").read_text())["settings"]["seed"] == 2
    other = tmp_path / "mine"
    other.mkdir()
    with pytest.raises(FileExistsError, match="not a benchmark folder"):
        proxy_benchmark(other, overwrite=True, **SMALL)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"size": 8}, ValueError, "size: expected an int >= 16, got 8"),
        ({"size": 64, "scan_side": 70}, ValueError, "scan_side: expected an int >= 80, got 70"),
        ({"n_points": 0, "n_area": 0}, ValueError, "n_points, n_area: expected at least one real defect"),
        ({"n_test": 0}, ValueError, "n_test: expected an int >= 1, got 0"),
        ({"contrast": 0.0}, ValueError, "contrast: expected a value in \\(0, 10\\], got 0"),
        ({"seed": -1}, ValueError, "seed: expected an int >= 0, got -1"),
        ({"seed": 1.5}, TypeError, "seed: expected an int, got float"),
        ({"out": 3}, TypeError, "out: expected a folder path, got int"),
    ],
)
def test_benchmark_bad_inputs(kwargs, exc, match):
    out = kwargs.pop("out", None)
    with pytest.raises(exc, match=match):
        proxy_benchmark(out, **kwargs)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((np.zeros((80, 80), np.float32), "blob"), TypeError, "context: expected dtype uint8, got float32"),
        ((np.zeros((80, 70), np.uint8), "blob"), ValueError, "context: expected a square grey image"),
        ((np.zeros((30, 30), np.uint8), "blob"), ValueError, "context: expected a side of at least 32, got 30"),
        ((np.zeros((80, 80), np.uint8), "dot"), ValueError, "kind: expected one of 'blob'"),
        (([[0]], "blob"), TypeError, "context: expected a numpy.ndarray, got list"),
    ],
)
def test_defect_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        proxy_defect(*args, seed=0)


def test_cli_writes_the_benchmark(tmp_path):
    from tests.conftest import run_ispad

    out = tmp_path / "b"
    text = run_ispad(
        "benchmark", "--out", out, "--size", 32, "--scans", 1, "--scan-side", 96, "--n-points", 2,
        "--n-area", 3, "--n-val", 2, "--n-test", 2, "--good-per-defective", 3, "--seed", 4,
    ).stdout
    assert f"wrote {out}/" in text and "2 points, 3 area" in text
    np.testing.assert_array_equal(
        read_mvtec(out / "test", split="test").test_images,
        proxy_benchmark(seed=4, size=32, n_scans=1, scan_side=96, n_points=2, n_area=3, n_val=2, n_test=2,
                        good_per_defective=3).test_images,
    )
    assert "--size" in run_ispad("benchmark", "--out", "x", "--size", 8, expect=2).stderr


# --------------------------------------------------------------------------- designs and calibration sheets

TWO = dict(size=32, n_scans=2, scan_side=96, n_points=2, n_area=3, n_val=2, n_test=4, good_per_defective=3)
# digest of every file of proxy_benchmark(seed=3, **TWO) as written before the calibration sheets
# were added (pixels of the PNGs, benchmark.json without library_version)
_DIGEST_WITHOUT_SHEETS = "f87347666f78ef64cc709b27f8d3bab83c1df1141ff6003ef4041a4c40af20d5"


def _digest(root: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name == "test_designs.csv" or "calibration" in p.relative_to(root).parts:
            continue
        h.update(str(p.relative_to(root)).encode())
        if p.suffix == ".png":
            im = read_image(p)
            h.update(str(im.shape).encode() + im.tobytes())
        else:
            meta = json.loads(p.read_text())
            meta.pop("library_version")
            h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()


def _test_scans(seed: int, n_scans: int, side: int):
    gen = np.random.default_rng(seed)
    proxy._scan_set(gen, n_scans, side)
    proxy._scan_set(gen, n_scans, side)
    return proxy._scan_set(gen, n_scans, side)


def test_the_files_without_the_sheets_are_those_written_before(tmp_path):
    bench = proxy_benchmark(tmp_path / "b", seed=3, **TWO)
    assert _digest(tmp_path / "b") == _DIGEST_WITHOUT_SHEETS
    # the sheets are drawn last: without them every array is the same
    settings = dict(seed=3, **TWO, contrast=1.0)
    bare = proxy._draw_benchmark(None, **settings, n_calibration=0)
    for name in ("real_images", "val_images", "test_images", "test_masks", "test_designs"):
        np.testing.assert_array_equal(getattr(bare, name), getattr(bench, name))
    assert bare.calibration == {} and len(bench.calibration) == 2


def test_every_test_patch_comes_from_its_design():
    bench = proxy_benchmark(seed=2, **TWO)
    scans, _ = _test_scans(2, 2, 96)
    names = proxy._design_names(2)
    assert set(bench.test_designs) == set(names) and len(bench.test_designs) == len(bench.test_images)
    for image, label, design in zip(bench.test_images, bench.test_labels, bench.test_designs):
        if label:
            continue
        found = [n for n, scan in zip(names, scans)
                 if (np.lib.stride_tricks.sliding_window_view(scan, (32, 32)) == image).all(axis=(2, 3)).any()]
        assert found == [design]


def test_calibration_sheets_are_new_sheets_of_the_test_designs():
    from ispad_core._shared.screen_print import _draw_design

    bench = proxy_benchmark(seed=2, **TWO)
    scans, seeds = _test_scans(2, 2, 96)
    good = bench.test_images[bench.test_labels == 0]
    for i, (design, sheets) in enumerate(bench.calibration.items()):
        assert design == proxy._design_names(2)[i] and len(sheets) == proxy.CALIBRATION_SHEETS
        kind = ("dots", "lines", "mesh", "mixed")[i % 4]
        scan_design = _draw_design(np.random.default_rng(int(seeds[i])), kind, 96, 96)
        for k, sheet in enumerate(sheets):
            assert sheet.shape == (96, 96) and sheet.dtype == np.uint8
            # the same design parameters and inks, other fields, cells and noise
            sheet_design = _draw_design(np.random.default_rng(int(seeds[i])), kind, 96, 96 + proxy._SHEET_STEP * (k + 1))
            np.testing.assert_array_equal(sheet_design[0], scan_design[0])
            np.testing.assert_array_equal(sheet_design[1], scan_design[1])
            assert sheet_design[2].shape != scan_design[2].shape
            assert np.mean(sheet == scans[i]) < 0.2
            windows = np.lib.stride_tricks.sliding_window_view(sheet, (32, 32))
            assert not any((windows == g).all(axis=(2, 3)).any() for g in good)  # no test patch is on a sheet
        assert all(np.mean(a == b) < 0.2 for j, a in enumerate(sheets) for b in sheets[j + 1:])


def test_written_designs_and_sheets_read_back(tmp_path):
    out = tmp_path / "b"
    bench = proxy_benchmark(out, seed=1, **TWO)
    lines = (out / "test_designs.csv").read_text().splitlines()
    data = read_mvtec(out / "test", split="test")
    assert lines[0] == "file,design"
    assert [tuple(x.split(",")) for x in lines[1:]] == list(zip(data.test_names, bench.test_designs))
    meta = json.loads((out / "calibration" / "calibration.json").read_text())
    assert meta["n_calibration"] == proxy.CALIBRATION_SHEETS and list(meta["designs"]) == list(bench.calibration)
    for design, sheets in bench.calibration.items():
        files = sorted((out / "calibration" / design).iterdir())
        assert [f"{design}/{f.name}" for f in files] == meta["designs"][design]
        drawn = meta["drawn"][design]
        for k, (f, sheet) in enumerate(zip(files, sheets), start=1):
            np.testing.assert_array_equal(read_image(f), sheet)
            # the recorded seeds make the sheet again
            again = proxy.design_sheet(drawn["seed"], drawn["kind"], 96, k, sheet_seed=drawn["sheet_seeds"][k - 1])
            np.testing.assert_array_equal(again, sheet)


@pytest.mark.parametrize("args, match", [
    ((7, "dot", 96, 1), "kind: expected one of"),
    ((7, "dots", 96, 0), "k: expected"),
    ((-1, "dots", 96, 1), "design_seed: expected"),
])
def test_design_sheet_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        proxy.design_sheet(*args, sheet_seed=0)
