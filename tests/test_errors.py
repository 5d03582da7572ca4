"""The InputError family: bad input is told from bugs by its type, not by reading its message."""

import pickle

import numpy as np
import pytest

import ispad_core
from ispad_core import InputError, InputTypeError, InputValueError, InvisibleDefectError, SetupError
from ispad_core._shared.validation import check_array, check_int
from ispad_core.samples import screen_print
from ispad_core.stream import balanced_stream
from ispad_core.synth import DefectParams, synthesize_batch


def test_each_member_is_also_the_builtin_error_it_stands_for():
    assert issubclass(InputValueError, ValueError) and issubclass(InputValueError, InputError)
    assert issubclass(InputTypeError, TypeError) and issubclass(InputTypeError, InputError)
    assert issubclass(InvisibleDefectError, RuntimeError) and issubclass(InvisibleDefectError, InputError)
    assert issubclass(SetupError, RuntimeError) and issubclass(SetupError, InputError)


def test_validation_raises_the_family():
    with pytest.raises(InputTypeError, match="n: expected an int"):
        check_int("seven", "n")
    with pytest.raises(InputValueError, match="n: expected"):
        check_int(-1, "n", minimum=0)
    with pytest.raises(InputTypeError):
        check_array(np.zeros(3, np.complex64), "x", dtypes=(np.uint8,))
    with pytest.raises(InputValueError):
        synthesize_batch(np.zeros((2, 8, 8), np.uint8), "mixed", rng=0)  # patches too small for the preset


def test_an_invisible_defect_is_an_input_error():
    with pytest.raises(InvisibleDefectError, match="no visible defect after 1 patches"):
        list(balanced_stream(screen_print((40, 40), rng=0), 2, size=32, rng=0, max_redraws=0,
                             preset=DefectParams(threshold=1e9, max_attempts=1, margin=2)))


@pytest.mark.parametrize("cls", [InputError, InputValueError, InputTypeError, InvisibleDefectError, SetupError])
def test_public_home_and_pickling(cls):
    assert cls.__module__ == "ispad_core" and getattr(ispad_core, cls.__name__) is cls
    again = pickle.loads(pickle.dumps(cls("x: expected 1, got 2")))  # raised in a worker, sent back
    assert type(again) is cls and str(again) == "x: expected 1, got 2"
