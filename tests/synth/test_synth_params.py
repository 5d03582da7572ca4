"""DefectParams, DefectMixture and the presets: validation, serialisation, encoding."""

import dataclasses
import json

import numpy as np
import pytest

from ispad_core.synth import PRESETS, DefectMixture, DefectParams, params_from_dict
from ispad_core.synth import _synth_kernels as K
from ispad_core.synth._params import _RANGES, encode, resolve_params

BASIC = ["dot-bright", "dot-dark", "pinhole", "inclusion", "fiber-bright", "fiber-dark", "scratch"]
MIXTURES = ["mixed", "lsm1", "lsm2", "asm"]


def test_required_presets_exist():
    for name in BASIC:
        assert isinstance(PRESETS[name], DefectParams)
    for name in MIXTURES:
        assert isinstance(PRESETS[name], DefectMixture)
    assert set(PRESETS["mixed"].names) >= set(BASIC)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    p = PRESETS[name]
    text = json.dumps(p.to_dict())
    back = params_from_dict(json.loads(text))
    assert back == p
    assert type(back) is type(p)


def test_polarities_of_presets():
    assert PRESETS["dot-bright"].bright_probability == 1.0
    assert PRESETS["dot-dark"].bright_probability == 0.0
    assert PRESETS["fiber-bright"].bright_probability == 1.0
    assert PRESETS["fiber-dark"].bright_probability == 0.0


def test_mixture_probabilities_and_cumulative():
    mix = PRESETS["lsm2"]
    assert abs(sum(mix.probabilities) - 1.0) < 1e-12
    table, cum = encode(mix)
    assert table.shape == (len(mix.components), K.N_COLUMNS)
    assert cum[-1] == 1.0 and np.all(np.diff(cum) > 0)


def test_encoding_layout_matches_the_kernel_columns():
    p = DefectParams(
        steps=(3, 9), contrast=(0.1, 0.2), contrast_mode="relative", blend="multiplicative",
        visibility="ssr", threshold=7.5, max_attempts=4, margin=5, mask_level=0.4, ring=3, branches=(1, 2),
    )
    row = encode(p)[0][0]
    assert row.shape == (K.N_COLUMNS,)
    assert tuple(row[K.T_STEPS : K.T_STEPS + 2]) == (3, 9)
    assert tuple(row[K.T_CONTRAST : K.T_CONTRAST + 2]) == (0.1, 0.2)
    assert row[K.T_RELATIVE] == 1 and row[K.T_MULTIPLICATIVE] == 1 and row[K.T_CNR] == 0
    assert row[K.T_THRESHOLD] == 7.5 and row[K.T_MAX_ATTEMPTS] == 4 and row[K.T_MARGIN] == 5
    assert row[K.T_MASK_LEVEL] == 0.4 and row[K.T_RING] == 3
    assert row[K.T_MAX_POINTS] == (1 + 2) * (9 + 1)
    assert K.T_CHANNEL_GAIN == 2 * (len(_RANGES) - 1)


def test_replace_revalidates():
    with pytest.raises(ValueError, match="width: expected low <= high"):
        dataclasses.replace(PRESETS["dot-dark"], width=(2.0, 1.0))


def test_resolve_params():
    assert resolve_params("scratch") is PRESETS["scratch"]
    with pytest.raises(ValueError, match="params: expected a preset name"):
        resolve_params("nope")
    with pytest.raises(TypeError, match="params: expected a DefectParams, DefectMixture or preset name, got int"):
        resolve_params(3)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"steps": (5, 2)}, ValueError, r"steps: expected low <= high, got \(5, 2\)"),
        ({"steps": (0, 2)}, ValueError, r"steps\[0\]: expected an int >= 1, got 0"),
        ({"steps": (1.5, 2)}, TypeError, r"steps\[0\]: expected an int, got float"),
        ({"steps": 3}, TypeError, r"steps: expected a \(low, high\) pair, got int"),
        ({"steps": (1, 2, 3)}, ValueError, r"steps: expected a \(low, high\) pair, got 3 values"),
        ({"width": (-1.0, 1.0)}, ValueError, r"width\[0\]: expected a value in \[0.25, 32\], got -1"),
        ({"step_length": (0.0, 1.0)}, ValueError, r"step_length\[0\]: expected a value in \[0.05, 64\], got 0"),
        ({"momentum": (0.5, 1.5)}, ValueError, r"momentum\[1\]: expected a value in \[0, 1\], got 1.5"),
        ({"noise_amplitude": (0.0, np.nan)}, ValueError, r"noise_amplitude\[1\]: expected a finite number"),
        ({"contrast": (10.0, 300.0)}, ValueError, r"contrast\[1\]: expected a value in \[0, 255\], got 300"),
        ({"branches": (0, 17)}, ValueError, r"branches\[1\]: expected an int <= 16, got 17"),
        ({"contrast_mode": "percent"}, ValueError, "contrast_mode: expected one of 'absolute', 'relative', got 'percent'"),
        ({"blend": "screen"}, ValueError, "blend: expected one of 'additive', 'multiplicative', got 'screen'"),
        ({"visibility": "psnr"}, ValueError, "visibility: expected one of 'cnr', 'ssr', got 'psnr'"),
        ({"bright_probability": 1.5}, ValueError, r"bright_probability: expected a value in \[0, 1\], got 1.5"),
        ({"threshold": -1.0}, ValueError, r"threshold: expected a value in \[0, inf\), got -1"),
        ({"threshold": "high"}, TypeError, "threshold: expected a real number, got str"),
        ({"max_attempts": 0}, ValueError, "max_attempts: expected an int >= 1, got 0"),
        ({"max_attempts": 2.0}, TypeError, "max_attempts: expected an int, got float"),
        ({"margin": -1}, ValueError, "margin: expected an int >= 0, got -1"),
        ({"mask_level": 0.0}, ValueError, r"mask_level: expected a value in \(0, 1\], got 0"),
        ({"ring": 0}, ValueError, "ring: expected an int >= 1, got 0"),
    ],
)
def test_defect_params_rejects(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        DefectParams(**kwargs)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (((), ()), ValueError, "components: expected at least one DefectParams, got none"),
        (((DefectParams(),), (1.0, 2.0)), ValueError, "weights: expected 1 weights like components, got 2"),
        (((DefectParams(),), (0.0,)), ValueError, r"weights\[0\]: expected a value in \(0, inf\), got 0"),
        (((DefectParams(), "dot"), (1.0, 1.0)), TypeError, r"components\[1\]: expected DefectParams, got str"),
        ((DefectParams(), (1.0,)), TypeError, "components: expected a tuple of DefectParams, got DefectParams"),
        (((DefectParams(),), 1.0), TypeError, "weights: expected a tuple of numbers, got float"),
        (((DefectParams(),), (1.0,), ("a", "b")), ValueError, "names: expected 1 names like components, got 2"),
        (((DefectParams(),), (1.0,), (3,)), TypeError, r"names\[0\]: expected a str, got int"),
    ],
)
def test_defect_mixture_rejects(args, exc, match):
    with pytest.raises(exc, match=match):
        DefectMixture(*args)


@pytest.mark.parametrize(
    "data, exc, match",
    [
        ([1, 2], TypeError, "data: expected a dict, got list"),
        ({"kind": "defect", "colour": 3}, ValueError, r"data: unknown DefectParams fields \['colour'\]"),
        ({"kind": "mixture"}, ValueError, "data: expected a list under 'components'"),
        ({"kind": "defect", "steps": [4, 1]}, ValueError, "steps: expected low <= high"),
    ],
)
def test_from_dict_rejects(data, exc, match):
    with pytest.raises(exc, match=match):
        params_from_dict(data)


def test_from_dict_wrong_kind():
    with pytest.raises(ValueError, match="data: expected kind 'defect', got 'mixture'"):
        DefectParams.from_dict({"kind": "mixture"})
    with pytest.raises(ValueError, match="data: expected kind 'mixture', got 'defect'"):
        DefectMixture.from_dict(DefectParams().to_dict())


# --------------------------------------------------------------------------- contrast scaling


def test_scale_contrast_multiplies_the_range_and_keeps_the_rest():
    p = PRESETS["scratch"]
    q = p.scale_contrast(2.5)
    assert q.contrast == (p.contrast[0] * 2.5, p.contrast[1] * 2.5)
    assert dataclasses.replace(q, contrast=p.contrast) == p
    assert p.contrast == (14.0, 40.0)  # the preset itself is untouched


def test_scale_contrast_clips_at_the_bound_and_scales_the_threshold_on_request():
    p = DefectParams(contrast=(100.0, 200.0), visibility="cnr", threshold=2.0)
    assert p.scale_contrast(2.0).contrast == (200.0, 255.0)
    assert p.scale_contrast(0.5).threshold == 2.0
    assert p.scale_contrast(0.5, scale_threshold=True).threshold == 1.0
    ssr = dataclasses.replace(p, visibility="ssr", threshold=400.0)
    assert ssr.scale_contrast(0.5, scale_threshold=True).threshold == 100.0


def test_scale_contrast_of_a_mixture_scales_every_component():
    mix = PRESETS["lsm2"]
    strong = mix.scale_contrast(3.0)
    assert strong.names == mix.names and strong.weights == mix.weights
    for a, b in zip(mix.components, strong.components):
        assert b.contrast == (min(a.contrast[0] * 3, 255.0), min(a.contrast[1] * 3, 255.0))
    assert params_from_dict(json.loads(json.dumps(strong.to_dict()))) == strong


@pytest.mark.parametrize("factor, exc", [(0.0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
                                         (float("inf"), ValueError), ("2", TypeError), (True, TypeError)])
def test_scale_contrast_refuses_bad_factors(factor, exc):
    with pytest.raises(exc, match="factor"):
        PRESETS["dot-dark"].scale_contrast(factor)
    with pytest.raises(exc, match="factor"):
        PRESETS["asm"].scale_contrast(factor)


def test_scaled_contrast_scales_the_modification_of_the_same_draws():
    from ispad_core.synth import synthesize_steps

    patch = np.full((64, 64), 100, np.uint8)
    p = DefectParams(contrast=(10.0, 10.0), bright_probability=1.0, noise_amplitude=(0.0, 0.0), threshold=0.0)
    a = synthesize_steps(patch, p, rng=4)
    b = synthesize_steps(patch, p.scale_contrast(3.0), rng=4)
    np.testing.assert_array_equal(a.texture, b.texture)  # same skeleton and texture
    da = a.image.astype(int) - 100
    db = b.image.astype(int) - 100
    assert da.max() == 10 and db.max() == 30
    # rounding aside, the residual triples pixel by pixel
    assert np.abs(db - 3 * da).max() <= 2
