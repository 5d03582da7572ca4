"""The one modality table and the presets built from it."""

import json

import pytest

from ispad_core.augment import AUGMENT_PRESETS
from ispad_core.modality import MODALITIES, Modality, get_modality
from ispad_core.preprocess import LSM1_BRIGHTNESS
from ispad_core.synth import PRESETS, DefectMixture, DefectParams


def test_the_table_holds_the_three_modalities_of_the_paper():
    assert list(MODALITIES) == ["lsm1", "lsm2", "asm"]
    # section 4.2: brightness 1.5 for LSM-1 only, weak 3 x 3 smoothing with sigma 1 everywhere
    assert [m.brightness for m in MODALITIES.values()] == [1.5, 1.0, 1.0]
    assert {(m.smoothing_ksize, m.smoothing_sigma) for m in MODALITIES.values()} == {(3, 1.0)}
    # table 8: ASM has no illumination change, the line scans +-25 %
    assert MODALITIES["asm"].augmentation["brightness"] == (1.0, 1.0)
    assert MODALITIES["lsm2"].augmentation["shear"] == 20.0


@pytest.mark.parametrize("name", ["lsm1", "lsm2", "asm"])
def test_every_part_reads_the_table(name):
    m = get_modality(name)
    mix = PRESETS[name]
    assert isinstance(mix, DefectMixture)
    assert dict(zip(mix.names, mix.weights)) == dict(m.defects)
    for component, key in zip(mix.components, mix.names):
        assert isinstance(PRESETS[key], DefectParams) and component is PRESETS[key]
    aug = AUGMENT_PRESETS[name].to_dict()
    for field, value in m.augmentation.items():
        expected = value if not isinstance(value, float) or field in ("vflip", "hflip", "p_affine") else [-value, value]
        assert aug[field] == (list(expected) if isinstance(expected, tuple) else expected), field
    try:
        from ispad_core.nn.preprocessing import PREPROCESS_PRESETS
    except ImportError:  # torch missing
        return
    p = PREPROCESS_PRESETS[name]
    assert (p.brightness, p.ksize, p.sigma) == (m.brightness, m.smoothing_ksize, m.smoothing_sigma)


def test_table_is_read_only_and_serialises():
    with pytest.raises(TypeError):
        MODALITIES["new"] = MODALITIES["asm"]  # type: ignore[index]
    with pytest.raises(TypeError):
        MODALITIES["asm"].defects["scratch"] = 1.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        MODALITIES["asm"].brightness = 2.0  # type: ignore[misc]
    d = json.loads(json.dumps(MODALITIES["lsm1"].to_dict()))
    assert d["augmentation"]["scale"] == [0.9, 1.1] and d["defects"]["inclusion"] == 0.15
    assert isinstance(MODALITIES["lsm1"], Modality) and LSM1_BRIGHTNESS == MODALITIES["lsm1"].brightness


def test_unknown_modality():
    with pytest.raises(ValueError, match="modality: expected one of 'lsm1', 'lsm2', 'asm', got 'lsm3'"):
        get_modality("lsm3")
