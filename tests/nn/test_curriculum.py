"""The contrast curriculum: its schedule, how the trainer hands it to the stream (and to worker
processes), its determinism, its record in the model file, and its errors."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from ispad_core._shared.errors import InputError  # noqa: E402
from ispad_core.nn import TrainSettings, train  # noqa: E402
from ispad_core.nn.settings import ContrastCurriculum  # noqa: E402
from ispad_core.nn.training import contrast_target, curriculum_gains  # noqa: E402
from ispad_core.samples import screen_print  # noqa: E402
from ispad_core.stream import SyntheticStream  # noqa: E402
from tests.nn._helpers import TinyNet  # noqa: E402

pytestmark = pytest.mark.torch


# -- the schedule ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(start=st.floats(1.0, 10.0), fraction=st.floats(0.01, 1.0), total=st.integers(1, 5000),
       shape=st.sampled_from(["linear", "cosine"]))
def test_schedule_starts_at_start_anneals_monotonically_and_ends_native(start, fraction, total, shape):
    c = ContrastCurriculum(start, fraction, shape)
    steps = np.arange(total + 3)
    g = c.gains(steps, total)
    assert g.shape == steps.shape and g.dtype == np.float64
    assert g[0] == pytest.approx(start)
    assert np.all(np.diff(g) <= 1e-12)
    assert np.all((g >= 1.0 - 1e-12) & (g <= start + 1e-12))
    assert np.all(g[steps >= fraction * total] == 1.0)


@settings(max_examples=40, deadline=None)
@given(start=st.floats(1.0, 10.0), fraction=st.floats(0.01, 1.0), total=st.integers(1, 5000), s=st.integers(0, 6000))
def test_linear_and_cosine_formulas(start, fraction, total, s):
    t = min(s / (fraction * total), 1.0)
    lin = ContrastCurriculum(start, fraction).gains([s], total)[0]
    cos = ContrastCurriculum(start, fraction, "cosine").gains([s], total)[0]
    assert lin == pytest.approx(1 + (start - 1) * (1 - t), abs=1e-9)
    assert cos == pytest.approx(1 + (start - 1) * 0.5 * (1 + np.cos(np.pi * t)), abs=1e-9)


def test_parse_and_of():
    assert ContrastCurriculum.parse("3:0.5") == ContrastCurriculum(3.0, 0.5, "linear")
    assert ContrastCurriculum.parse(" 2.5:1:cosine ") == ContrastCurriculum(2.5, 1.0, "cosine")
    assert ContrastCurriculum.of((3, 0.5)) == ContrastCurriculum.of({"start": 3, "fraction": 0.5})
    assert ContrastCurriculum.of(None) is None
    assert TrainSettings(curriculum="3:0.5").curriculum == ContrastCurriculum(3.0, 0.5)
    assert ContrastCurriculum(3, 0.5).to_dict() == {"start": 3.0, "fraction": 0.5, "shape": "linear"}


@pytest.mark.parametrize("bad", ["3", "3:0.5:steep", "x:0.5", "0.5:0.5", "3:0", "3:1.5", "11:0.5", "1:2:3:4"])
def test_bad_curriculum_text_is_refused(bad):
    with pytest.raises(InputError, match="curriculum"):
        ContrastCurriculum.parse(bad)


def test_bad_curriculum_type_is_refused():
    with pytest.raises(TypeError, match="curriculum"):
        TrainSettings(curriculum=3.0)


# -- from the trainer's order to the items -------------------------------------------------------


def test_each_item_gets_the_gain_of_the_step_that_trains_it():
    c = ContrastCurriculum(3.0, 0.5)
    order = np.array([5, 0, 3, 1, 4, 2, 7, 6])
    g = curriculum_gains(order[2:], 10, first_step=1, batch_size=2, total_steps=4, curriculum=c)
    # order[2:4] at step 1, order[4:6] at step 2, order[6:8] at step 3; items 5, 0 (done), 8, 9: 1
    want = np.ones(10)
    want[[3, 1]] = c.gains([1], 4)[0]
    want[[4, 2]] = c.gains([2], 4)[0]
    want[[7, 6]] = c.gains([3], 4)[0]
    np.testing.assert_array_equal(g, want)
    assert g[3] == pytest.approx(2.0)


def _stream(n=16, seed=0, **kw):
    return SyntheticStream(screen_print((192, 192), rng=1), n=n, size=48, seed=seed, preset="scratch", **kw)


def test_contrast_target_looks_through_subsets_and_wrappers():
    stream = _stream()
    assert contrast_target(stream) == (stream, None)
    sub = torch.utils.data.Subset(torch.utils.data.Subset(stream, [3, 4, 5, 6]), [2, 0])
    target, index = contrast_target(sub)
    assert target is stream and index.tolist() == [5, 3]

    class Wrapper:
        def __init__(self, stream):
            self.stream = stream

    assert contrast_target(Wrapper(stream))[0] is stream
    with pytest.raises(InputError, match="on the fly"):
        contrast_target((np.zeros((4, 48, 48), np.uint8), np.zeros(4)))


def _val(stream):
    images, _, labels = stream[:]
    return images, labels.astype(np.int64)


def _trained(curriculum, *, workers=0, seed=0, steps=4):
    torch.manual_seed(0)
    model = TinyNet()
    stream = _stream(n=steps * 4, seed=seed)
    train(model, stream, _val(_stream(n=8, seed=99)), batch_size=4, max_steps=steps, curriculum=curriculum,
          optimizer="adamw", lr=1e-2, workers=workers, seed=seed, verbose=False, interruptible=False, threads=1)
    return {k: v.clone() for k, v in model.state_dict().items()}, stream


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_training_with_a_curriculum_is_deterministic_and_differs_from_native():
    a, stream = _trained("3:1")
    b, _ = _trained("3:1")
    native, _ = _trained(None)
    assert _same(a, b)
    assert not _same(a, native)
    # the stream was told the gains of the last epoch: the items trained at step 0 at x 3
    gains = stream.contrast_gains
    assert gains.max() == pytest.approx(3.0) and gains.min() >= 1.0


def test_curriculum_needs_a_length_and_a_stream_drawn_on_the_fly():
    stream = _stream(n=8)
    with pytest.raises(InputError, match="max_steps or max_epochs"):
        train(TinyNet(), stream, _val(stream), batch_size=4, curriculum="3:0.5", verbose=False)
    images, labels = _val(stream)
    with pytest.raises(InputError, match="on the fly"):
        train(TinyNet(), (images, labels), (images, labels), batch_size=4, max_steps=2, curriculum="3:0.5",
              verbose=False)


@pytest.mark.slow
def test_workers_draw_with_the_same_schedule():
    """Worker processes get the gains with the pickled stream: the same weights as in-process."""
    a, _ = _trained("3:1", workers=0)
    b, _ = _trained("3:1", workers=2)
    assert _same(a, b)


def test_model_file_records_the_curriculum(tmp_path):
    from ispad_core.nn import train_detector

    stream = _stream(n=16)
    res = train_detector(stream, out=tmp_path / "m.pt", val=_val(_stream(n=8, seed=5)), batch_size=4, max_steps=2,
                         curriculum="3:0.5:cosine", workers=0, verbose=False,
                         backbone="tests.nn.test_training_workers:tiny_net")
    assert res.metadata["training"]["curriculum"] == {"start": 3.0, "fraction": 0.5, "shape": "cosine"}
    from ispad_core.nn.modelfile import read_model_file

    _, meta = read_model_file(tmp_path / "m.pt")
    assert json.loads(json.dumps(meta["training"]["curriculum"]))["start"] == 3.0


# -- ispad train --curriculum -------------------------------------------------------------------


def test_cli_curriculum_is_recorded_and_checked(tmp_path, image_dir):
    from ispad_core.nn.modelfile import read_model_file
    from tests.conftest import run_ispad as ispad

    # validation: the stream's held-out tail (a Subset of the stream, which the curriculum looks through)
    common = ("--images", image_dir, "--size", 32, "--n", 40, "--preset", "dot-dark", "--batch-size", 4, "--workers", 0, "--quiet", "--backbone", "tests.nn.test_training_workers:tiny_net",
              "--allow-factory")
    ispad("train", *common, "--out", tmp_path / "m.pt", "--max-steps", 2, "--curriculum", "3:0.5")
    _, meta = read_model_file(tmp_path / "m.pt")
    assert meta["training"]["curriculum"] == {"start": 3.0, "fraction": 0.5, "shape": "linear"}
    err = ispad("train", *common, "--out", tmp_path / "n.pt", "--curriculum", "3:0.5", expect=1).stderr
    assert "--max-steps" in err
    err = ispad("train", *common, "--out", tmp_path / "n.pt", "--max-steps", 2, "--curriculum", "3:x", expect=1).stderr
    assert "curriculum" in err
    assert "--curriculum START:FRACTION[:SHAPE]" in ispad("train", "--help").stdout


# -- selection at native contrast ---------------------------------------------------------------


def test_native_selection_parses_and_round_trips():
    c = ContrastCurriculum.parse("6:0.5:native")
    assert (c.start, c.fraction, c.shape, c.selection) == (6.0, 0.5, "linear", "native")
    assert ContrastCurriculum.parse("6:0.5:cosine:native").shape == "cosine"
    assert ContrastCurriculum.of(c.to_dict()) == c
    assert "selection" not in ContrastCurriculum.parse("6:0.5").to_dict()  # files of earlier runs unchanged
    assert c.native_from(1200) == 600.0
    with pytest.raises(InputError, match="selection"):
        ContrastCurriculum(3, 0.5, selection="best")
    with pytest.raises(InputError, match="START:FRACTION"):
        ContrastCurriculum.parse("6:0.5:cosine:native:x")


def _history(curriculum, tmp_path, steps=8):
    from ispad_core.nn import train_detector

    res = train_detector(_stream(n=steps * 4), out=tmp_path / f"{curriculum.replace(':', '_')}.pt", val=_val(_stream(n=8, seed=5)), batch_size=4,
                         max_steps=steps, val_every=1, patience=100, curriculum=curriculum, workers=0, verbose=False,
                         optimizer="adamw", lr=1e-2, backbone="tests.nn.test_training_workers:tiny_net")
    return res


def test_native_selection_keeps_a_model_of_the_native_phase_only(tmp_path):
    """With ``:native`` no validation before step S = fraction * T selects the model; the same
    run without it may (and here does) select earlier."""
    native = _history("6:0.5:native", tmp_path)
    history = native.metadata["training"]["history"]
    assert native.train.best_step >= 4
    assert not any(h["improved"] for h in history if h["steps"] < 4)
    assert any(h["improved"] for h in history if h["steps"] >= 4)
    every = _history("6:0.5", tmp_path)
    assert any(h["improved"] for h in every.metadata["training"]["history"] if h["steps"] < 4)


def test_cli_from_scratch_on_the_fly_gets_the_native_curriculum(tmp_path, image_dir):
    """``ispad train --images`` from scratch with a set length: 6:0.75:native unless told otherwise;
    ``--curriculum none`` turns it off; a stream of fixed length without --max-steps gets none."""
    from ispad_core.nn.modelfile import read_model_file
    from tests.conftest import run_ispad as ispad

    common = ("--images", image_dir, "--size", 32, "--n", 40, "--preset", "dot-dark", "--batch-size", 4, "--workers", 0,
              "--backbone", "tests.nn.test_training_workers:tiny_net", "--allow-factory")
    out = ispad("train", *common, "--out", tmp_path / "a.pt", "--max-steps", 2).stdout
    assert "contrast curriculum 6:0.75:native" in out
    assert read_model_file(tmp_path / "a.pt")[1]["training"]["curriculum"] == {
        "start": 6.0, "fraction": 0.75, "shape": "linear", "selection": "native"}
    ispad("train", *common, "--out", tmp_path / "b.pt", "--max-steps", 2, "--curriculum", "none", "--quiet")
    assert read_model_file(tmp_path / "b.pt")[1]["training"]["curriculum"] is None
    ispad("train", *common, "--out", tmp_path / "c.pt", "--max-epochs", 1, "--curriculum", "3:0.5", "--quiet")
    assert read_model_file(tmp_path / "c.pt")[1]["training"]["curriculum"]["start"] == 3.0
