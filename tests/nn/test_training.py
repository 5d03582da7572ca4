"""train / evaluate / predict on tiny models: recipe, checkpoints, resume, repeatability, errors."""

import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core.nn import (  # noqa: E402
    EpochRecord,
    InjectionDataset,
    TrainResult,
    evaluate,
    predict,
    resnet18_classifier,
    train,
)
from tests.nn._helpers import TinyNet, bright_spot_data  # noqa: E402

pytestmark = pytest.mark.torch

FAST = dict(batch_size=16, lr=0.05, lr_min=1e-4, t_0=20, optimizer="sgd", verbose=False, preprocess=None)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _equal(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_train_learns_and_keeps_best_checkpoint(tmp_path, tiny_model):
    tr, va = bright_spot_data(256, seed=0), bright_spot_data(96, seed=1)
    records = []
    res = train(tiny_model, tr, va, max_epochs=6, checkpoint_dir=tmp_path, callback=records.append, **FAST)
    assert isinstance(res, TrainResult) and res.model is tiny_model
    assert len(res.history) == 6 and records == list(res.history)
    assert all(isinstance(r, EpochRecord) for r in res.history)
    assert res.steps == 6 * (256 // 16) == res.history[-1].steps
    losses = [r.val_loss for r in res.history]
    assert res.best_epoch == int(np.argmin(losses)) and res.best_val_loss == min(losses)
    assert [r.improved for r in res.history] == [losses[i] < min(losses[:i], default=math.inf) for i in range(6)]
    assert res.history[-1].val_mcc > 0.5 and all(r.patches_per_s > 0 for r in res.history)
    # the model holds the best epoch's weights, which best.pt holds too
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == res.best_epoch and _equal(best["model"], tiny_model.state_dict())
    # predictions of the returned model reproduce the best validation loss
    assert predict(tiny_model, va, preprocess=None).loss == pytest.approx(res.best_val_loss, rel=1e-6)
    report = evaluate(tiny_model, va, preprocess=None)
    assert report.mcc > 0.5 and report.tp + report.fn == int(va[1].sum())
    d = res.to_dict()
    assert d["best_epoch"] == res.best_epoch and len(d["history"]) == 6 and "model" not in d


def test_evaluate_threshold_is_passed_through(tiny_model):
    va = bright_spot_data(64, seed=2)
    report = evaluate(tiny_model, va, threshold=0.3, preprocess=None)
    assert report.threshold == 0.3
    scores = predict(tiny_model, va, preprocess=None).scores
    assert report.tp + report.fp == int((scores >= 0.3).sum())


def test_scheduler_defaults_are_the_papers():
    tr, va = bright_spot_data(64, seed=0), bright_spot_data(32, seed=1)
    torch.manual_seed(0)
    model = TinyNet()
    res = train(model, tr, va, max_epochs=1, batch_size=16, verbose=False)
    # cosine annealing from 5e-4 towards 1e-5 over T_0 = 7813 iterations: the 4th step used T_cur = 3
    expected = 1e-5 + (5e-4 - 1e-5) * (1 + math.cos(math.pi * 3 / 7813)) / 2
    assert res.history[0].lr == pytest.approx(expected, rel=1e-9)


def test_warm_restart_after_t0_iterations(tiny_model):
    tr, va = bright_spot_data(64, seed=0), bright_spot_data(32, seed=1)
    lrs = []
    res = train(tiny_model, tr, va, max_epochs=3, batch_size=16, lr=0.1, lr_min=0.0, t_0=4, t_mult=2,
                verbose=False, callback=lambda r: lrs.append(r.lr))
    # the rates of steps 4, 8 and 12: the 4th step is the last of the first period (T_cur = 3 of 4),
    # the 5th starts a period of 8 iterations (the 8th at T_cur = 3, the 12th at 7, its last)
    assert res.steps == 12
    assert lrs[0] == pytest.approx(0.1 * (1 + math.cos(math.pi * 3 / 4)) / 2)
    assert lrs[1] == pytest.approx(0.1 * (1 + math.cos(math.pi * 3 / 8)) / 2)
    assert lrs[2] == pytest.approx(0.1 * (1 + math.cos(math.pi * 7 / 8)) / 2)


def test_warmup_rises_linearly_then_the_cosine_starts_at_full_rate(tiny_model):
    tr, va = bright_spot_data(64, seed=0), bright_spot_data(32, seed=1)
    lr, warmup, t_0 = 0.1, 4, 6
    res = train(tiny_model, tr, va, max_steps=warmup + t_0, val_every=1, batch_size=16, lr=lr, lr_min=0.0, t_0=t_0,
                t_mult=1, warmup=warmup, optimizer="sgd", verbose=False)

    def rate(s):  # step s (from 0), from the definition: linear from lr / warmup, then the cosine from lr
        if s < warmup:
            return lr * (1 / warmup + (1 - 1 / warmup) * s / warmup)
        return lr * (1 + math.cos(math.pi * (s - warmup) / t_0)) / 2

    assert [r.lr for r in res.history] == pytest.approx([rate(s) for s in range(warmup + t_0)], rel=1e-9)


def test_resume_inside_the_warmup_ends_where_an_uninterrupted_run_ends(tmp_path):
    tr, va = bright_spot_data(96, seed=0), bright_spot_data(32, seed=1)
    kw = {**FAST, "warmup": 8}  # 6 steps an epoch: the first epoch ends inside the warm-up
    torch.manual_seed(0)
    straight = TinyNet()
    full = train(straight, tr, va, max_epochs=3, checkpoint_dir=tmp_path / "a", **kw)
    torch.manual_seed(0)
    train(TinyNet(), tr, va, max_epochs=1, checkpoint_dir=tmp_path / "b", **kw)
    resumed_model = TinyNet()
    resumed = train(resumed_model, tr, va, max_epochs=3, checkpoint_dir=tmp_path / "b", resume=True, **kw)
    assert [r.lr for r in resumed.history] == [r.lr for r in full.history]
    assert [r.val_loss for r in resumed.history] == [r.val_loss for r in full.history]
    assert _equal(_weights(straight), _weights(resumed_model))


def test_the_last_validation_shows_the_rate_of_the_last_step(tiny_model, capsys):
    # a run annealed over exactly its length ends near lr_min; the scheduler's rate after the
    # last step is the restart (the start rate), which the printed line used to show
    tr, va = bright_spot_data(64, seed=0), bright_spot_data(32, seed=1)
    steps, lr, lr_min = 8, 1e-2, 1e-4
    res = train(tiny_model, tr, va, max_steps=steps, val_every=4, batch_size=16, lr=lr, lr_min=lr_min, t_0=steps,
                optimizer="adamw", verbose=True, interruptible=False)
    at = [lr_min + (lr - lr_min) * (1 + math.cos(math.pi * (k - 1) / steps)) / 2 for k in (4, steps)]
    assert [r.lr for r in res.history] == pytest.approx(at, rel=1e-9)
    assert res.history[-1].lr < 0.05 * lr  # not the start rate
    last_line = [line for line in capsys.readouterr().err.splitlines() if f"step {steps:6d}" in line][-1]
    assert f"lr {at[-1]:.2e}" in last_line


@pytest.mark.slow
def test_same_seed_repeats_a_cpu_run_and_leaves_global_rng(tiny_model):
    tr, va = bright_spot_data(128, seed=0), bright_spot_data(32, seed=1)
    state = torch.get_rng_state()
    train(tiny_model, tr, va, max_epochs=2, seed=5, **FAST)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(0)
    again = TinyNet()
    train(again, tr, va, max_epochs=2, seed=5, **FAST)
    assert _equal(_weights(tiny_model), _weights(again))
    torch.manual_seed(0)
    other = TinyNet()
    train(other, tr, va, max_epochs=2, seed=6, **FAST)
    assert not _equal(_weights(tiny_model), _weights(other))


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    tr, va = bright_spot_data(96, seed=0), bright_spot_data(32, seed=1)
    ds = InjectionDataset(list(zip(*tr)), bright_spot_data(8, seed=3, defect_fraction=1.0)[0], p_inj=0.25,
                          batch_size=16, seed=1)
    torch.manual_seed(0)
    straight = TinyNet()
    full = train(straight, ds, va, max_epochs=3, checkpoint_dir=tmp_path / "a", **FAST)
    torch.manual_seed(0)
    first = TinyNet()
    train(first, ds, va, max_epochs=1, checkpoint_dir=tmp_path / "b", **FAST)
    torch.manual_seed(123)  # a different init and RNG state must not matter after resuming
    resumed_model = TinyNet()
    resumed = train(resumed_model, ds, va, max_epochs=3, checkpoint_dir=tmp_path / "b", resume=True, **FAST)
    assert [r.val_loss for r in resumed.history] == [r.val_loss for r in full.history]
    assert resumed.best_epoch == full.best_epoch and resumed.steps == full.steps
    assert _equal(_weights(straight), _weights(resumed_model))
    last_a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    last_b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert _equal(last_a, last_b)


def test_resume_without_checkpoint_starts_fresh(tmp_path, tiny_model):
    tr, va = bright_spot_data(32, seed=0), bright_spot_data(16, seed=1)
    res = train(tiny_model, tr, va, max_epochs=1, checkpoint_dir=tmp_path, resume=True, **FAST)
    assert len(res.history) == 1 and os.path.exists(tmp_path / "last.pt")


def test_early_stopping_after_patience_epochs_without_improvement():
    tr, va = bright_spot_data(64, seed=0), bright_spot_data(32, seed=1)
    torch.manual_seed(0)
    model = TinyNet(bn=False)
    # a learning rate far below float32 resolution: the weights, hence the val loss, never change
    res = train(model, tr, va, max_epochs=50, patience=3, batch_size=16, lr=1e-30, lr_min=0.0, verbose=False)
    assert res.stopped_early and len(res.history) == 4 and res.best_epoch == 0
    assert [r.improved for r in res.history] == [True, False, False, False]


def test_max_steps_stops_mid_epoch(tiny_model):
    tr, va = bright_spot_data(160, seed=0), bright_spot_data(16, seed=1)
    res = train(tiny_model, tr, va, max_steps=13, **FAST)
    assert res.steps == 13 and len(res.history) == 2 and not res.stopped_early


def test_injection_dataset_epoch_is_set_each_epoch(tiny_model):
    tr, va = bright_spot_data(64, seed=0), bright_spot_data(16, seed=1)
    ds = InjectionDataset(list(zip(*tr)), tr[0][:4], p_inj=0.25, batch_size=16, seed=0)
    seen = []
    train(tiny_model, ds, va, max_epochs=3, callback=lambda r: seen.append(ds.epoch), **FAST)
    assert seen == [0, 1, 2]


@pytest.mark.parametrize("options", [
    {"amp": True},  # bf16 autocast on the CPU
    {"channels_last": True},
    {"optimizer": "adamw", "lr": 1e-3},
    {"preprocess": "lsm1"},
    {"workers": 1},
])
def test_training_options_run(tiny_model, options):
    tr, va = bright_spot_data(64, seed=0), bright_spot_data(16, seed=1)
    res = train(tiny_model, tr, va, max_epochs=1, **{**FAST, **options})
    assert math.isfinite(res.history[0].train_loss) and math.isfinite(res.history[0].val_loss)


def test_colour_patches_and_items_with_masks():
    images, labels = bright_spot_data(48, seed=0)
    rgb = np.repeat(images[..., None], 3, axis=-1)
    items = [(im, np.zeros(im.shape[:2], np.uint8), int(y)) for im, y in zip(rgb, labels)]
    torch.manual_seed(0)
    res = train(TinyNet(in_channels=3), items, (rgb[:16], labels[:16]), max_epochs=1, **FAST)
    assert len(res.history) == 1


def test_resnet18_runs_a_step():
    tr, va = bright_spot_data(8, seed=0, size=32), bright_spot_data(8, seed=1, size=32)
    torch.manual_seed(0)
    res = train(resnet18_classifier(), tr, va, max_steps=1, batch_size=4, verbose=False)
    assert res.steps == 1


def test_verbose_prints_one_line_per_epoch(tiny_model, capsys):
    tr, va = bright_spot_data(32, seed=0), bright_spot_data(16, seed=1)
    train(tiny_model, tr, va, max_epochs=2, **{**FAST, "verbose": True})
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch")]
    assert len(lines) == 2 and "val MCC" in lines[0] and "patches/s" in lines[0]


class ThreeWay(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(1, 3)

    def forward(self, x):
        return self.fc(x.mean(dim=(1, 2, 3))[:, None])


TR = bright_spot_data(32, seed=0)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda m: train("net", TR, TR), TypeError, "model: expected a torch.nn.Module, got str"),
        (lambda m: train(m, 5, TR), TypeError, "train_data: expected a Dataset of \\(image, ..., label\\) items"),
        (lambda m: train(m, TR, []), ValueError, "val_data: expected a non-empty dataset, got length 0"),
        (lambda m: train(m, (TR[0].astype(np.float32), TR[1]), TR), TypeError,
         "train_data\\[0\\]: expected dtype uint8, got float32"),
        (lambda m: train(m, (TR[0], TR[1][:5]), TR), ValueError, "train_data\\[1\\]: expected 32 labels like train_data\\[0\\], got 5"),
        (lambda m: train(m, (TR[0], TR[1] + 1), TR), ValueError, "train_data\\[1\\]: expected binary labels 0/1"),
        (lambda m: train(m, TR, TR, optimizer="adam"), ValueError, "optimizer: expected one of 'sgd', 'adamw', got 'adam'"),
        (lambda m: train(m, TR, TR, lr=0.0), ValueError, r"lr: expected a value in \(0, inf\), got 0"),
        (lambda m: train(m, TR, TR, lr_min=1.0), ValueError, r"lr_min: expected a value in \[0, 0.0005\], got 1"),
        (lambda m: train(m, TR, TR, patience=0), ValueError, "patience: expected an int >= 1, got 0"),
        (lambda m: train(m, TR, TR, batch_size=0), ValueError, "batch_size: expected an int >= 1, got 0"),
        (lambda m: train(m, TR, TR, warmup=-1), ValueError, "warmup: expected an int >= 0, got -1"),
        (lambda m: train(m, TR, TR, resume=True), ValueError, "resume: resuming needs a checkpoint_dir, got None"),
        (lambda m: train(m, TR, TR, amp="bf16"), TypeError, "amp: expected a bool or None, got str"),
        (lambda m: train(m, TR, TR, seed=-3), ValueError, "seed: expected an int >= 0, got -3"),
        (lambda m: train(m, TR, TR, callback=3), TypeError, "callback: expected a callable or None, got int"),
        (lambda m: train(ThreeWay(), TR, TR, max_epochs=1, verbose=False), ValueError,
         r"model: expected \(B, 2\) logits of a binary classifier, got shape \(32, 3\)"),
        (lambda m: evaluate(m, 3), TypeError, "data: expected a Dataset"),
        (lambda m: predict(m, TR, batch_size=0), ValueError, "batch_size: expected an int >= 1, got 0"),
    ],
)
def test_bad_inputs(tiny_model, call, exc, match):
    with pytest.raises(exc, match=match):
        call(tiny_model)


# --------------------------------------------------------------------------- val_every, progress, Ctrl-C, bare images


def test_val_every_validates_on_the_step_grid_and_at_the_end(tiny_model, tmp_path):
    tr, va = bright_spot_data(160, seed=0), bright_spot_data(32, seed=1)  # 10 batches per epoch
    res = train(tiny_model, tr, va, max_steps=25, val_every=4, checkpoint_dir=tmp_path, **FAST)
    assert [r.steps for r in res.history] == [4, 8, 12, 16, 20, 24, 25]
    assert [r.epoch for r in res.history] == [0, 0, 1, 1, 1, 2, 2]  # step 20 ends epoch 1
    best = int(np.argmin([r.val_loss for r in res.history]))
    assert res.best_step == res.history[best].steps and res.best_epoch == res.history[best].epoch
    assert torch.load(tmp_path / "best.pt", weights_only=True)["step"] == res.best_step


def test_val_every_counts_patience_in_validations():
    tr, va = bright_spot_data(160, seed=0), bright_spot_data(32, seed=1)
    torch.manual_seed(0)
    res = train(TinyNet(bn=False), tr, va, max_epochs=5, val_every=3, patience=2, batch_size=16, lr=1e-30,
                lr_min=0.0, verbose=False)
    assert res.stopped_early and [r.steps for r in res.history] == [3, 6, 9] and res.steps == 9


def test_resume_mid_epoch_ends_where_an_uninterrupted_run_ends(tmp_path):
    tr, va = bright_spot_data(160, seed=0), bright_spot_data(32, seed=1)
    ds = InjectionDataset(list(zip(*tr)), bright_spot_data(8, seed=3, defect_fraction=1.0)[0], p_inj=0.25,
                          batch_size=16, seed=1)
    torch.manual_seed(0)
    straight = TinyNet()
    full = train(straight, ds, va, max_steps=24, val_every=6, checkpoint_dir=tmp_path / "a", **FAST)
    torch.manual_seed(0)
    first = TinyNet()
    part = train(first, ds, va, max_steps=6, val_every=6, checkpoint_dir=tmp_path / "b", **FAST)
    assert part.steps == 6 and torch.load(tmp_path / "b" / "last.pt", weights_only=True)["batches_done"] == 6
    torch.manual_seed(99)
    resumed_model = TinyNet()
    resumed = train(resumed_model, ds, va, max_steps=24, val_every=6, checkpoint_dir=tmp_path / "b", resume=True, **FAST)
    assert [r.val_loss for r in resumed.history] == [r.val_loss for r in full.history]
    assert _equal(_weights(straight), _weights(resumed_model))


def test_epoch_order_is_what_a_shuffling_dataloader_gives(tiny_model):
    # splitting train() into pieces kept the data order: the explicit order equals DataLoader(shuffle=True)
    from torch.utils.data import DataLoader

    from ispad_core.nn.training import _generator

    tr = bright_spot_data(50, seed=0)
    seen = []

    class Recording(torch.utils.data.Dataset):
        def __len__(self):
            return 50

        def __getitem__(self, i):
            seen.append(i)
            return tr[0][i], int(tr[1][i])

    train(tiny_model, Recording(), tr, max_epochs=1, **FAST)
    reference = [int(i) for batch in DataLoader(range(50), batch_size=16, shuffle=True, drop_last=True,
                                                generator=_generator(0, 1, 0)) for i in batch]
    assert seen[:48] == reference


def test_progress_lines_in_a_log(tiny_model, capsys):
    tr, va = bright_spot_data(96, seed=0), bright_spot_data(16, seed=1)
    train(tiny_model, tr, va, max_steps=9, val_every=6, log_every=2, **{**FAST, "verbose": True})
    err = capsys.readouterr().err.splitlines()  # captured: stderr is not a terminal
    steps = [ln for ln in err if ln.startswith("step ")]
    assert [ln.split()[1] for ln in steps] == ["2/9", "4/9", "6/9", "8/9"]
    assert all("loss" in ln and "patches/s" in ln and "left" in ln for ln in steps)
    records = [ln for ln in err if ln.startswith("epoch")]
    assert len(records) == 2 and all("val MCC" in ln and " left" in ln for ln in records)


def test_ctrl_c_stops_after_the_step_with_a_checkpoint(tiny_model, tmp_path):
    import signal

    tr, va = bright_spot_data(160, seed=0), bright_spot_data(32, seed=1)
    reads = []

    class Interrupting(torch.utils.data.Dataset):
        def __len__(self):
            return 160

        def __getitem__(self, i):
            reads.append(i)
            if len(reads) == 16 * 2 + 3:  # while batch 3 is read
                signal.raise_signal(signal.SIGINT)
            return tr[0][i], int(tr[1][i])

    # the caller's handler, whatever it is (a shell's background job starts with SIGINT ignored)
    before = signal.getsignal(signal.SIGINT)
    res = train(tiny_model, Interrupting(), va, max_epochs=3, checkpoint_dir=tmp_path, **FAST)
    assert res.interrupted and res.steps == 3 and len(res.history) == 1 and res.history[0].steps == 3
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["steps"] == 3 and last["next_epoch"] == 0 and last["batches_done"] == 3
    assert signal.getsignal(signal.SIGINT) is before
    # resuming finishes the run
    res2 = train(tiny_model, tr, va, max_epochs=3, checkpoint_dir=tmp_path, resume=True, **FAST)
    assert not res2.interrupted and res2.steps == 30 and [r.steps for r in res2.history] == [3, 10, 20, 30]


def test_checkpoints_are_written_atomically(tiny_model, tmp_path):
    tr, va = bright_spot_data(32, seed=0), bright_spot_data(16, seed=1)
    train(tiny_model, tr, va, max_epochs=1, checkpoint_dir=tmp_path, **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]
    (tmp_path / "elsewhere").write_text("x")
    (tmp_path / "last.pt").unlink()
    os.symlink(tmp_path / "elsewhere", tmp_path / "last.pt")
    with pytest.raises(ValueError, match="symbolic link"):
        train(tiny_model, tr, va, max_epochs=1, checkpoint_dir=tmp_path, **FAST)
    assert (tmp_path / "elsewhere").read_text() == "x"


def test_predict_takes_bare_images_and_evaluate_labels(tiny_model):
    images, labels = bright_spot_data(40, seed=2)
    pred = predict(tiny_model, images, preprocess=None, batch_size=16)
    assert pred.labels is None and math.isnan(pred.loss) and pred.scores.shape == (40,)
    labelled = predict(tiny_model, (images, labels), preprocess=None, batch_size=16)
    # model outputs: equal up to the last bits, which differ between batch sizes and CPUs (AVX-512 or not)
    np.testing.assert_allclose(labelled.scores, pred.scores, rtol=0, atol=1e-6)
    default_batch = predict(tiny_model, list(images), preprocess=None)
    np.testing.assert_allclose(default_batch.scores, pred.scores, rtol=0, atol=1e-6)
    report = evaluate(tiny_model, images, labels=labels, preprocess=None)
    other = evaluate(tiny_model, (images, labels), preprocess=None)
    assert (report.tn, report.fp, report.fn, report.tp) == (other.tn, other.fp, other.fn, other.tp)
    assert report.threshold == pytest.approx(other.threshold, abs=1e-6)
    assert report.auroc == pytest.approx(other.auroc, abs=1e-9) and report.mcc == pytest.approx(other.mcc, abs=1e-9)
    with pytest.raises(ValueError, match="data: evaluate needs labels"):
        evaluate(tiny_model, images, preprocess=None)
    with pytest.raises(TypeError, match="train_data: expected labelled data"):
        train(tiny_model, images, (images, labels), max_epochs=1, **FAST)
    with pytest.raises(ValueError, match="train_data: expected .* items, got items without a label"):
        train(tiny_model, list(images), (images, labels), max_epochs=1, **FAST)


def test_settings_and_keywords_train_alike_and_num_workers_is_the_old_name(tiny_model):
    import copy

    from ispad_core.nn import TrainSettings, predict

    tr, va = bright_spot_data(32, seed=0), bright_spot_data(16, seed=1)
    other = copy.deepcopy(tiny_model)
    a = train(tiny_model, tr, va, settings=TrainSettings(batch_size=8, max_steps=3, verbose=False, optimizer="adamw"))
    b = train(other, tr, va, batch_size=8, max_steps=3, verbose=False, optimizer="adamw")
    assert a.steps == b.steps == 3
    for p, q in zip(tiny_model.parameters(), other.parameters()):
        torch.testing.assert_close(p, q)
    with pytest.warns(DeprecationWarning, match="train: num_workers= is now called workers="):
        train(copy.deepcopy(other), tr, va, batch_size=8, max_steps=1, verbose=False, num_workers=0)
    with pytest.warns(DeprecationWarning, match="predict: num_workers= is now called workers="):
        predict(other, va, num_workers=0)
    with pytest.raises(TypeError, match="train\\(\\) got an unexpected keyword argument 'epochs'"):
        train(other, tr, va, epochs=1)
    with pytest.raises(TypeError, match="settings: expected a TrainSettings, got dict"):
        train(other, tr, va, settings={"batch_size": 8})
