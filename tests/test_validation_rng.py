"""rng follows SPEC 7; per-item seeds are their own argument."""

import numpy as np
import pytest

from ispad_core._shared import validation as v


@pytest.mark.parametrize(
    "make",
    [lambda: 7, lambda: np.random.SeedSequence(7), lambda: np.random.PCG64(7), lambda: np.random.default_rng(7)],
    ids=["int", "SeedSequence", "BitGenerator", "Generator"],
)
def test_as_generator_takes_what_default_rng_takes(make):
    expected = np.random.default_rng(7).integers(0, 2**32, 5)
    np.testing.assert_array_equal(v.as_generator(make()).integers(0, 2**32, 5), expected)


def test_a_sequence_is_not_an_rng():
    with pytest.raises(TypeError, match="rng: expected None, a non-negative int or a numpy.random.Generator, got list"):
        v.as_generator([1, 2, 3])


def test_item_seeds_from_seeds_or_rng_but_not_both():
    np.testing.assert_array_equal(v.item_seeds(None, 3, seeds=[4, 5, 6]), [4, 5, 6])
    with pytest.warns(FutureWarning, match="pass it as seeds="):
        np.testing.assert_array_equal(v.item_seeds([4, 5, 6], 3), [4, 5, 6])  # deprecated form, same meaning
    np.testing.assert_array_equal(v.item_seeds(np.random.SeedSequence(3), 4), v.item_seeds(3, 4))
    with pytest.raises(ValueError, match="seeds: pass either rng or seeds, not both"):
        v.item_seeds(0, 3, seeds=[4, 5, 6])
    with pytest.raises(ValueError, match=r"seeds: expected 3 per-item seeds, got an array of shape \(2,\)"):
        v.item_seeds(None, 3, seeds=[4, 5])
    with pytest.raises(TypeError, match="seeds: expected an array of 3 integer seeds, got int"):
        v.item_seeds(None, 3, seeds=4)


def test_one_seed():
    assert v.one_seed(None, 2**32 - 1).tolist() == [2**32 - 1]
    np.testing.assert_array_equal(v.one_seed(5, None), v.item_seeds(5, 1))
    with pytest.warns(FutureWarning):
        np.testing.assert_array_equal(v.one_seed(np.array([9]), None), [9])  # deprecated form
    with pytest.raises(ValueError, match="seed: pass either rng or seed, not both"):
        v.one_seed(1, 2)
    with pytest.raises(ValueError, match="seed: expected an int <= 4294967295"):
        v.one_seed(None, 2**32)
    with pytest.raises(TypeError, match="seed: expected an int in"):
        v.one_seed(None, True)


def test_the_deprecated_array_rng_warns_at_the_callers_line():
    """The warning points at the user's call, not into the library (it says where to change the code)."""
    from ispad_core.samples import screen_print
    from ispad_core.synth import synthesize_batch

    patches = np.stack([screen_print((48, 48), rng=i) for i in range(2)])
    with pytest.warns(FutureWarning, match="pass it as seeds=") as caught:
        old = synthesize_batch(patches, "dot-dark", rng=np.array([3, 4]), warn=False)
    assert caught[0].filename == __file__
    new = synthesize_batch(patches, "dot-dark", seeds=np.array([3, 4]), warn=False)
    np.testing.assert_array_equal(old.images, new.images)
