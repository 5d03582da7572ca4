"""fit_preset: measurements against their slow reference, recovery of known ranges, bad inputs."""

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ispad_core import InputTypeError, InputValueError
from ispad_core.samples import builtin_images
from ispad_core.synth import (
    PRESETS,
    DefectMixture,
    DefectParams,
    FitReport,
    fit_preset,
    measure_defects,
    read_params,
    synthesize_batch,
)
from ispad_core.synth.fit import MEASURES, ridge
from ispad_core.tiling import random_patches
from tests.reference import fit_ref as ref

# Narrow ranges the recovery test draws from (the walk fits a 96-px patch: steps x step length
# stays under 96 - 2 x margin, or the synthesizer would cut it short).
TRUE = {
    "fiber-thin": dataclasses.replace(PRESETS["fiber-dark"], width=(0.9, 1.0), steps=(40, 45), contrast=(30.0, 34.0)),
    "fiber-wide": dataclasses.replace(PRESETS["fiber-dark"], width=(1.8, 2.0), steps=(25, 30), contrast=(60.0, 66.0)),
    "scratch": dataclasses.replace(PRESETS["scratch"], width=(0.7, 0.8), steps=(28, 32), contrast=(20.0, 24.0)),
    "dot": dataclasses.replace(PRESETS["dot-dark"], width=(1.5, 1.7), contrast=(30.0, 34.0)),
    "inclusion": dataclasses.replace(PRESETS["inclusion"], width=(2.0, 2.2), contrast=(0.25, 0.3)),
}
#: The stated tolerance: the median of the mapped values lies within this fraction of the true
#: range's middle (plus one step for steps), and the fitted range overlaps the true one.
TOLERANCE = 0.3


@pytest.fixture(scope="module")
def patches():
    images, _ = builtin_images(0)
    rng = np.random.default_rng(0)
    return np.concatenate([random_patches(im, 50, 96, rng=rng)[0] for im in images])  # 200 x 96 x 96


def _draw(patches, params, seed=1):
    res = synthesize_batch(patches, params, rng=seed, warn=False)
    ok = res.accepted
    assert ok.sum() >= 0.75 * len(patches)
    return res.images[ok], res.masks[ok]


@pytest.mark.parametrize("name", sorted(TRUE))
def test_fit_recovers_the_ranges_it_was_drawn_from(patches, name):
    true = TRUE[name]
    images, masks = _draw(patches, true)
    report = fit_preset(images, masks, base=true)
    assert isinstance(report, FitReport) and isinstance(report.params, DefectParams)
    rows = {r.parameter: r for r in report.rows}
    # The length shows the steps only where the walk runs straight (high momentum); a curly
    # inclusion folds its walk into a blob, a dot has almost no length.
    fields = ("width", "steps", "contrast") if true.momentum[0] >= 0.5 else ("width", "contrast")
    for field in fields:
        lo, hi = getattr(true, field)
        flo, fhi = getattr(report.params, field)
        mid = 0.5 * (lo + hi)
        slack = 1.0 if field == "steps" else 0.0
        assert flo <= hi * (1 + TOLERANCE) and fhi >= lo * (1 - TOLERANCE), (field, (flo, fhi), (lo, hi))
        assert abs(rows[field].median - mid) <= TOLERANCE * mid + slack, (field, rows[field].median, (lo, hi))
    # What masks cannot show is the base's, and the report says so.
    assert report.params.momentum == true.momentum and "kept" in rows["momentum"].status


def test_fit_tells_two_presets_apart(patches):
    thin = fit_preset(*_draw(patches, TRUE["fiber-thin"]), base="fiber-dark")
    wide = fit_preset(*_draw(patches, TRUE["fiber-wide"]), base="fiber-dark")
    assert thin.params.width[1] < wide.params.width[0]  # disjoint width ranges
    med = {r.parameter: r.median for r in thin.rows}, {r.parameter: r.median for r in wide.rows}
    assert med[0]["contrast"] * 1.5 < med[1]["contrast"]
    assert med[0]["steps"] > med[1]["steps"]


def test_mixture_base_assigns_each_defect_and_weights_by_count(patches):
    fibres = _draw(patches[:100], TRUE["fiber-wide"])
    dots = synthesize_batch(patches[100:], dataclasses.replace(PRESETS["dot-bright"], width=(1.5, 1.7)), rng=2, warn=False)
    ok = dots.accepted
    images = np.concatenate([fibres[0], dots.images[ok]])
    masks = np.concatenate([fibres[1], dots.masks[ok]])
    report = fit_preset(images, masks, base="mixed")
    assert isinstance(report.params, DefectMixture)
    n_fib = len(fibres[0])
    fib_names = set(report.assigned[:n_fib])
    dot_names = set(report.assigned[n_fib:])
    assert np.mean([a == "dot-bright" for a in report.assigned[n_fib:]]) > 0.8, dot_names
    assert np.mean([a in ("fiber-dark", "scratch", "inclusion") for a in report.assigned[:n_fib]]) > 0.8, fib_names
    assert "pinhole" not in report.params.names or "pinhole" in report.assigned
    counts = {n: report.assigned.count(n) for n in report.params.names}
    assert report.params.weights == tuple(float(counts[n]) for n in report.params.names)
    assert "dot-bright" in report.table() and "fitted" in report.table()
    compact, full = report.table(), report.table(kept=True)
    def momentum_rows(text):
        return sum(line.split()[1:2] == ["momentum"] for line in text.splitlines())

    assert momentum_rows(compact) == 0 and "\n  momentum: " in compact
    fitted = sum(r.parameter == "width" and r.status.startswith("fitted") for r in report.rows)
    assert momentum_rows(full) == fitted and "\n  momentum: " not in full


def test_a_fitted_mixture_round_trips_through_a_params_file(patches, tmp_path):
    report = fit_preset(*_draw(patches, TRUE["dot"]), base="mixed")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(report.params.to_dict()))
    assert read_params(path) == report.params


def test_too_few_defects_keep_the_base_ranges(patches):
    images, masks = _draw(patches, TRUE["dot"])
    report = fit_preset(images[:2], masks[:2], base="dot-dark")
    assert report.params == PRESETS["dot-dark"]
    assert all("kept" in r.status for r in report.rows)


# --------------------------------------------------------------------------- measurements vs reference

masks_st = arrays(np.bool_, st.tuples(st.integers(3, 14), st.integers(3, 14)), elements=st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mask=masks_st)
def test_ridge_matches_the_reference(mask):
    dist, top = ridge(mask)
    rdist, rtop = ref.ridge(mask)
    np.testing.assert_allclose(dist, rdist, atol=1e-9)
    assert (top == rtop).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    core=arrays(np.bool_, st.tuples(st.integers(1, 10), st.integers(1, 10)), elements=st.booleans()),
    seed=st.integers(0, 2**16),
    colour=st.booleans(),
    deep=st.booleans(),
)
def test_measurements_match_the_reference(core, seed, colour, deep):
    if not core.any():
        core[0, 0] = True
    mask = np.pad(core, 8)
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if deep else np.uint8
    top = 65535 if deep else 255
    shape = mask.shape + ((3,) if colour else ())
    image = rng.integers(0, top + 1, shape).astype(dtype)
    fast = measure_defects([image], [mask])
    slow = ref.measure(image, mask)
    for name, value in zip(MEASURES, slow):
        np.testing.assert_allclose(getattr(fast, name)[0], value, rtol=1e-9, atol=1e-9, err_msg=name)


@settings(max_examples=30, deadline=None)
@given(shift=st.integers(-40, 40), contrast=st.integers(1, 60))
def test_contrast_and_polarity_of_a_flat_defect(shift, contrast):
    image = np.full((40, 40), 120 + shift, np.uint8)
    mask = np.zeros((40, 40), bool)
    mask[15:25, 12:17] = True  # 10 x 5: the ridge distance 3 gives a width of 2 x 3 - 0.5
    sign = 1 if contrast % 2 else -1
    image[mask] = 120 + shift + sign * contrast
    m = measure_defects([image], [mask])
    assert m.contrast[0] == contrast and m.polarity[0] == sign
    assert m.length[0] == 10 and m.width[0] == 5.5 and m.roughness[0] == 0.0


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_name_the_argument():
    img = np.zeros((32, 32), np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[10:12, 10:20] = True
    with pytest.raises(InputValueError, match=r"masks\[0\]: the mask is empty"):
        measure_defects([img], [np.zeros((32, 32), bool)])
    with pytest.raises(InputValueError, match=r"masks\[0\]: expected shape \(32, 32\)"):
        measure_defects([img], [mask[:, :31]])
    with pytest.raises(InputValueError, match="masks: expected 1 masks"):
        fit_preset([img], [mask, mask])
    with pytest.raises(InputValueError, match="images: expected at least one"):
        fit_preset([], [])
    with pytest.raises(InputTypeError, match=r"images\[0\]: expected dtype"):
        measure_defects([img.astype(np.float32)], [mask])
    with pytest.raises(InputValueError, match=r"masks\[0\]: no background"):
        measure_defects([img], [np.ones((32, 32), bool)])
    with pytest.raises(InputValueError, match="base"):
        fit_preset([img], [mask], base="nope")
    with pytest.raises(InputValueError, match="quantiles"):
        fit_preset([img], [mask], quantiles=(0.9, 0.1))


# --------------------------------------------------------------------------- the command


def _real_folder(root, patches, params, n, group="points"):
    """REAL/<group>/<k>.png and REAL_masks/<group>/<k>_mask.png as `ispad benchmark` writes them."""
    from ispad_core.io import write_png

    images, masks = _draw(patches[:n], params)
    (root / "real" / group).mkdir(parents=True, exist_ok=True)
    (root / "real_masks" / group).mkdir(parents=True, exist_ok=True)
    for k, (im, m) in enumerate(zip(images, masks)):
        write_png(root / "real" / group / f"{k:03d}.png", im)
        write_png(root / "real_masks" / group / f"{k:03d}_mask.png", np.where(m, np.uint8(255), np.uint8(0)))
    return images, masks


def test_cli_writes_a_params_file_that_synth_and_gallery_read(patches, tmp_path, capsys):
    from ispad_core.cli import main

    images, masks = _real_folder(tmp_path, patches, TRUE["fiber-wide"], 40)
    _real_folder(tmp_path, patches[100:], TRUE["dot"], 20, group="area")
    out = tmp_path / "fitted.json"
    assert main(["fit-preset", str(tmp_path / "real"), "--out", str(out), "--group", "points", "--base", "fiber-dark"]) == 0
    text = capsys.readouterr().out
    assert "width" in text and "(0.7, 1.2)" in text and f"wrote {out}" in text and "40 defects of points" in text
    params = read_params(out)
    assert params == fit_preset(images, masks, base="fiber-dark").params
    sheet = tmp_path / "sheet.png"
    assert main(["gallery", "--params", str(out), "--out", str(sheet), "--n", "2", "--size", "96"]) == 0
    assert sheet.is_file()
    # Never over a user's file without --overwrite; both groups with the mixture base.
    assert main(["fit-preset", str(tmp_path / "real"), "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["fit-preset", str(tmp_path / "real"), "--out", str(out), "--overwrite"]) == 0
    assert isinstance(read_params(out), DefectMixture)


def test_cli_names_a_missing_mask_and_an_unknown_group(patches, tmp_path, capsys):
    from ispad_core.cli import main

    _real_folder(tmp_path, patches, TRUE["dot"], 4)
    (tmp_path / "real_masks" / "points" / "002_mask.png").unlink()
    out = tmp_path / "p.json"
    assert main(["fit-preset", str(tmp_path / "real"), "--out", str(out)]) == 1
    assert "002_mask.png is missing" in capsys.readouterr().err
    assert main(["fit-preset", str(tmp_path / "real"), "--out", str(out), "--group", "area"]) == 1
    assert "--group: area not in" in capsys.readouterr().err
    assert not out.exists()
