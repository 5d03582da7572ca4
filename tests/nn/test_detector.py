"""train_detector and ispad train on tiny data: model file, nested selection, resume, modes, errors."""

import argparse
import os
import signal

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core.fractions import nested_fractions  # noqa: E402
from ispad_core.io import write_png, write_stream  # noqa: E402
from ispad_core.nn import load_model, train_detector  # noqa: E402
from ispad_core.nn.detector import recipe, select_real  # noqa: E402

pytestmark = pytest.mark.torch

SIZE = 16
TINY = "tests.nn.test_detector:tiny_net"


def tiny_net(in_channels=1, num_classes=2, dropout=0.1):
    """A factory backbone: conv -> BN -> ReLU -> max+mean pooling -> dropout -> linear."""
    from tests.nn._helpers import TinyNet

    net = TinyNet(in_channels=in_channels)
    net.drop.p = dropout
    return net


def _patches(rng, n, defective):
    images = rng.normal(100, 8, (n, SIZE, SIZE)).clip(0, 255).astype(np.uint8)
    masks = np.zeros((n, SIZE, SIZE), np.uint8)
    for k in np.flatnonzero(defective):
        r, c = rng.integers(1, SIZE - 4, 2)
        images[k, r:r + 3, c:c + 3] = 220
        masks[k, r:r + 3, c:c + 3] = 1
    return images, masks


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("detector")
    rng = np.random.default_rng(0)
    labels = np.arange(192) % 2
    images, masks = _patches(rng, 192, labels == 1)
    write_stream(root / "stream.h5", images, masks, labels)
    images, masks = _patches(rng, 64, np.zeros(64, bool))
    write_stream(root / "fault_free.h5", images, masks, np.zeros(64, np.uint8))
    for group, n in (("points", 6), ("area", 10)):
        for k in range(n):
            image = rng.normal(100, 8, (24, 24)).clip(0, 255).astype(np.uint8)
            image[8:16, 10:14] = 30
            (root / "real" / group).mkdir(parents=True, exist_ok=True)
            write_png(root / "real" / group / f"{k:02d}.png", image)
    flags = np.r_[np.zeros(24, bool), np.ones(8, bool)]
    images, _ = _patches(rng, 32, flags)
    for k, (image, bad) in enumerate(zip(images, flags)):
        folder = root / "val" / ("bright" if bad else "good")
        folder.mkdir(parents=True, exist_ok=True)
        write_png(folder / f"{k:02d}.png", image)
    return root


def _run(data, out, **kw):
    options = dict(real=data / "real", val=data / "val", backbone=TINY, batch_size=16, max_steps=4, workers=0,
                   threads=1, verbose=False, p_inj=1 / 16)
    options.update(kw)
    return train_detector(data / "stream.h5", out=out, **options)


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_tiny_run_writes_a_loadable_model_file(data, tmp_path):
    out = tmp_path / "model.pt"
    res = _run(data, out, fraction=1 / 2, val_every=2)
    assert res.path == out and out.is_file() and not (tmp_path / "model.pt.ckpt").exists()
    model, meta = load_model(out, allow_factory=TINY)
    assert not model.training
    assert meta["backbone"] == TINY and meta["patch_size"] == SIZE and meta["in_channels"] == 1
    assert meta["threshold"] == res.threshold == res.report.threshold and 0.0 <= res.threshold <= 1.0
    assert meta["validation"]["tp"] + meta["validation"]["fn"] == 8 and meta["validation"]["n"] == 32
    assert set(meta["validation"]["group_recall"]) == {"bright"}
    training = meta["training"]
    assert training["steps"] == 4 and len(training["history"]) == 2 and training["recipe"]["name"] == "from-scratch"
    assert training["recipe"]["optimizer"] == "adamw" and training["p_inj"] == 1 / 16 and not training["interrupted"]
    real = meta["provenance"]["real"]
    assert real["selected"] == 8 and real["fraction_text"] == "1/2" and real["selection_seed"] == 0
    assert meta["provenance"]["stream"]["items"] == 192 and meta["provenance"]["validation"]["kind"] == "folders"
    # the file's weights are the returned model's, and they score the validation set as reported
    for key, value in model.state_dict().items():
        assert torch.equal(value, res.model.state_dict()[key])
    assert "model:" in str(res) and "MCC" in str(res)


def test_nested_fractions_are_recorded_and_nested(data, tmp_path):
    files = {}
    for f in (1, 1 / 2, 1 / 4):
        res = _run(data, tmp_path / f"m{f}.pt", fraction=f, max_steps=1, val=(np.zeros((2, SIZE, SIZE), np.uint8),
                                                                                np.array([0, 1])))
        files[f] = res.metadata["provenance"]["real"]["files"]
    assert [len(files[f]) for f in (1, 1 / 2, 1 / 4)] == [16, 8, 4]
    assert files[1][:8] == files[1 / 2] and files[1 / 2][:4] == files[1 / 4]
    # exactly nested_fractions with the recorded seed (groups sorted: area before points)
    groups = ["area"] * 10 + ["points"] * 6
    expected = nested_fractions(16, (1 / 2,), rng=0)[1 / 2]
    assert [f"{groups[i]}/{i if i < 10 else i - 10:02d}.png" for i in expected] == files[1 / 2]


def test_select_real_by_group_uses_the_same_shuffle():
    groups = ["area"] * 20 + ["points"] * 12
    by_group = nested_fractions(32, (1 / 4,), rng=3, groups=groups)
    assert np.array_equal(select_real(groups, fraction=1 / 4, group="points", seed=3), by_group["points"][1 / 4])
    both = select_real(groups, fraction=1 / 4, group=["points", "area"], seed=3)
    assert np.array_equal(both, nested_fractions(32, (1 / 4,), rng=3)[1 / 4])
    assert len(select_real(groups, fraction=1 / 2, group="points", seed=3)) == 12  # capped at the group's size
    with pytest.raises(ValueError, match=r"groups: expected some of the real defects' groups \['area', 'points'\]"):
        select_real(groups, group="scratch")
    with pytest.raises(ValueError, match="fraction: 1/64 of 32 real defects selects none"):
        select_real(groups, fraction=1 / 64)


class _InterruptingStream(torch.utils.data.Dataset):
    """The stream's items; reading item ``at`` (counted over all reads) sends this process a Ctrl-C."""

    def __init__(self, path, at):
        from ispad_core.io import open_stream

        self.reader = open_stream(path)
        self.labels = self.reader.labels
        self.reads, self.at = 0, at

    def __len__(self):
        return len(self.reader)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads == self.at:
            signal.raise_signal(signal.SIGINT)
        return self.reader[i]


def test_resume_after_ctrl_c_gives_the_weights_of_an_uninterrupted_run(data, tmp_path):
    kw = dict(max_steps=8, val_every=2, p_inj=1 / 8, real=data / "real")
    full = _run(data, tmp_path / "full.pt", **kw)
    out = tmp_path / "cut.pt"
    # a Ctrl-C while batch 4 is read: training stops after step 4 (a validation step) with a checkpoint
    stream = _InterruptingStream(data / "stream.h5", at=3 * 16 + 1)
    cut = train_detector(stream, out=out, val=data / "val", backbone=TINY, batch_size=16, workers=0, threads=1,
                         verbose=False, **kw)
    assert cut.interrupted and cut.train.steps == 4 and out.is_file() and (tmp_path / "cut.pt.ckpt" / "last.pt").is_file()
    assert load_model(out, allow_factory=TINY)[1]["training"]["interrupted"]
    with pytest.raises(FileExistsError, match="holds the checkpoints of an unfinished run; pass resume=True"):
        train_detector(data / "stream.h5", out=out, val=data / "val", backbone=TINY, batch_size=16, workers=0,
                       verbose=False, **kw)
    resumed = train_detector(stream, out=out, val=data / "val", backbone=TINY, batch_size=16, workers=0, threads=1,
                             verbose=False, resume=True, **kw)
    assert not resumed.interrupted and resumed.train.steps == 8 and not (tmp_path / "cut.pt.ckpt").exists()
    assert [r.val_loss for r in resumed.train.history] == [r.val_loss for r in full.train.history]
    a, b = _weights(full.path), _weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_settings(data, tmp_path):
    stream = _InterruptingStream(data / "stream.h5", at=17)
    out = tmp_path / "m.pt"
    res = train_detector(stream, out=out, real=data / "real", val=data / "val", backbone=TINY, batch_size=16,
                         workers=0, max_steps=6, verbose=False, p_inj=1 / 16)
    assert res.interrupted
    with pytest.raises(ValueError, match=r"resume: the run in .* was started with other settings \(batch_size\)"):
        train_detector(stream, out=out, real=data / "real", val=data / "val", backbone=TINY,
                       batch_size=32, workers=0, max_steps=6, verbose=False, resume=True, p_inj=1 / 16)


def test_synthetic_only_run_holds_out_the_stream_tail(data, tmp_path):
    res = _run(data, tmp_path / "m.pt", real=None, val=None, p_inj=None, max_steps=2, workers=1)
    meta = res.metadata
    assert meta["provenance"]["real"]["selected"] == 0 and meta["training"]["p_inj"] is None
    assert meta["provenance"]["validation"]["kind"] == "stream-tail" and meta["validation"]["n"] == 19
    assert set(meta["validation"]["group_recall"]) == {"synthetic"}


def test_oversampling_over_a_fault_free_stream(data, tmp_path):
    res = train_detector(data / "fault_free.h5", out=tmp_path / "m.pt", real=data / "real", val=data / "val",
                         mode="oversampling", backbone=TINY, batch_size=16, max_steps=2, workers=0, verbose=False)
    assert res.metadata["training"]["p_inj"] == 0.5 and res.metadata["training"]["mode"] == "oversampling"


def test_oversampling_over_a_balanced_stream_says_what_to_do(data, tmp_path):
    with pytest.raises(ValueError, match=r"pure fault-free stream .* holds 96 defective of 192 items .* "
                                         r"'ispad synth --defect-fraction 0"):
        _run(data, tmp_path / "m.pt", mode="oversampling", p_inj=None)
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "m.pt.ckpt").exists()


def test_recipes():
    assert recipe(pretrained=True).optimizer == "sgd" and recipe(pretrained=True).lr == 5e-4
    scratch = recipe(pretrained=False, max_steps=300)
    assert (scratch.optimizer, scratch.lr, scratch.t_0, scratch.t_mult) == ("adamw", 1e-3, 300, 1)
    custom = recipe(pretrained=False, optimizer="sgd")
    assert custom.lr == 5e-4 and custom.name == "from-scratch (custom lr/optimizer)"
    assert recipe(pretrained=True, lr=1e-3).name == "fine-tune (custom lr/optimizer)"
    # a warm-up leaves the from-scratch anneal the steps after it; files without one read as before
    warm = recipe(pretrained=False, max_steps=300, warmup=50)
    assert (warm.warmup, warm.t_0) == (50, 250) and warm.to_dict()["warmup"] == 50
    assert "warmup" not in scratch.to_dict() and scratch.warmup == 0
    with pytest.raises(ValueError, match=r"warmup: 300 steps of warm-up leave none of the run's 300 \(max_steps\)"):
        recipe(pretrained=False, max_steps=300, warmup=300)


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(groups="scratch"), ValueError, r"groups: expected some of the real defects' groups \['area', 'points'\]"),
        (dict(fraction=1 / 32), ValueError, "fraction: 1/32 of 16 real defects selects none"),
        (dict(real=None), ValueError, r"p_inj: injection needs real defects"),
        (dict(real=None, p_inj=None, mode="oversampling"), ValueError, "real: mode='oversampling' trains on real defects"),
        (dict(p_inj=0.5), ValueError, r"p_inj: expected a value in \[1/B, 0.25\]"),
        (dict(mode="both"), ValueError, "mode: expected one of 'mixed', 'oversampling', got 'both'"),
        (dict(val=(np.zeros((2, 8, 8), np.uint8), np.array([0, 1]))), ValueError,
         r"val: expected patches like the stream's \(16 x 16, 1 channel\(s\)\), got shape \(8, 8\)"),
        (dict(real=np.zeros((3, 8, 8), np.uint8)), ValueError, r"real: #0 has shape \(8, 8\); expected at least 16 x 16"),
        (dict(optimizer="adam"), ValueError, "optimizer: expected one of 'sgd', 'adamw', got 'adam'"),
        (dict(backbone="resnet19"), ValueError, "resnet19"),
        (dict(workers=-1), ValueError, "workers: expected an int >= 0, got -1"),
        (dict(out=3), TypeError, "out: expected a file path, got int"),
    ],
)
def test_bad_inputs(data, tmp_path, kw, exc, match):
    kw.setdefault("out", tmp_path / "m.pt")
    out = kw.pop("out")
    with pytest.raises(exc, match=match):
        _run(data, out, **kw)


def test_existing_output_needs_overwrite(data, tmp_path):
    out = tmp_path / "m.pt"
    out.write_text("precious")
    with pytest.raises(FileExistsError, match="out: .*m.pt exists"):
        _run(data, out)
    assert out.read_text() == "precious"


# --------------------------------------------------------------------------- the command


def _parser():
    from ispad_core.cli.train import add_parser

    parser = argparse.ArgumentParser(prog="ispad")
    add_parser(parser.add_subparsers(dest="command"))
    return parser


def test_cli_parses_exact_fractions_and_runs(data, tmp_path, capsys):
    out = tmp_path / "model.pt"
    args = _parser().parse_args([
        "train", "--stream", str(data / "stream.h5"), "--real", str(data / "real"), "--val", str(data / "val"),
        "--out", str(out), "--p-inj", "1/16", "--fraction", "1/2", "--groups", "area", "--backbone", TINY,
        "--allow-factory", "--max-steps", "2", "--batch-size", "16", "--workers", "0", "--threads", "1", "--quiet",
    ])
    assert args.p_inj == 0.0625 and args.fraction == 0.5
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "MCC" in printed and f"model: {out}" in printed
    meta = load_model(out, allow_factory=TINY)[1]
    assert meta["provenance"]["real"]["selected_counts"] == {"area": 8}


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--backbone", TINY], "add --allow-factory to confirm"),
        (["--backbone", TINY, "--allow-factory", "other.mod:fn"], "--allow-factory: names other.mod:fn"),
        (["--allow-factory"], "--allow-factory: --backbone resnet18 is built in"),
        (["--groups", "area"], "--groups needs --real"),
        (["--p-inj", "1/32"], "--p-inj needs --real"),
    ],
)
def test_cli_errors(tmp_path, argv, match):
    from ispad_core.cli import CLIError

    args = _parser().parse_args(["train", "--stream", "s.h5", "--out", str(tmp_path / "m.pt"), *argv])
    with pytest.raises(CLIError, match=match):
        args.func(args)


@pytest.mark.parametrize("text", ["0", "3/2", "x", "1/0", "-1/4"])
def test_cli_refuses_bad_fractions(text, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["train", "--stream", "s", "--out", "m", "--p-inj", text])
    assert "--p-inj" in capsys.readouterr().err


def test_a_short_run_learns_the_defects(data, tmp_path):
    # the from-scratch recipe (AdamW, annealed over the run; 1e-2 for this tiny net) on bright spots: the selected
    # model separates the held-out validation set
    res = _run(data, tmp_path / "m.pt", max_steps=48, val_every=8, lr=1e-2, seed=0)
    assert res.report.mcc >= 0.8, "\n".join(map(str, res.train.history))
    assert res.group_recall["bright"] >= 75.0


def test_loader_workers_after_parallel_kernels_ran_in_this_process(data, tmp_path):
    # forked workers run the serial twin of the augmentation kernel (tests/nn/test_training_workers.py)
    from ispad_core.augment import augment_batch

    augment_batch(np.zeros((4, 24, 24), np.uint8), "lsm1", rng=0)
    res = _run(data, tmp_path / "m.pt", max_steps=3, workers=1, p_inj=1 / 4)
    assert res.train.steps == 3


def _ddp_worker(rank, root, out):
    from pathlib import Path

    root = Path(root)
    res = train_detector(root / "stream.h5", out=out, real=root / "real", val=root / "val", backbone=TINY,
                         batch_size=8, p_inj=1 / 8, max_steps=3, workers=0, verbose=False)
    torch.save({"threshold": res.threshold, "world": res.metadata["training"]["world_size"],
                "weights": res.model.state_dict()}, f"{out}.rank{rank}")


@pytest.mark.slow
def test_train_detector_under_ddp_rank0_writes(data, tmp_path):
    dist = pytest.importorskip("torch.distributed")
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("needs torch.distributed with gloo")
    import torch.multiprocessing as mp

    out = tmp_path / "model.pt"
    from tests.nn._helpers import gloo_worker

    mp.spawn(gloo_worker, args=(_ddp_worker, str(tmp_path / "init"), 2, str(data), str(out)), nprocs=2, join=True)
    ranks = [torch.load(f"{out}.rank{r}", weights_only=True) for r in range(2)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2 and ranks[0]["threshold"] == ranks[1]["threshold"]
    meta = load_model(out, allow_factory=TINY)[1]
    assert meta["threshold"] == ranks[0]["threshold"] and not (tmp_path / "model.pt.ckpt").exists()
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key])


def test_pretrained_weights_switch_to_the_fine_tuning_recipe(data, tmp_path):
    from ispad_core.nn import classifier

    torch.manual_seed(0)
    weights = tmp_path / "resnet18_imagenet_layout.pth"
    torch.save(classifier("resnet18", in_channels=3, num_classes=1000).state_dict(), weights)
    res = _run(data, tmp_path / "m.pt", backbone="resnet18", weights=weights, max_steps=1)
    training = res.metadata["training"]
    assert res.recipe.name == "fine-tune" and training["recipe"]["optimizer"] == "sgd"
    assert training["recipe"]["lr"] == 5e-4 and training["weights"] == str(weights)


def test_one_trainer_per_model_file(data, tmp_path):
    from ispad_core._shared.files import OutputBusyError, exclusive_lock

    out = tmp_path / "m.pt"
    with exclusive_lock(out, name="out"):
        with pytest.raises(OutputBusyError, match="out: another process is writing .*m.pt"):
            _run(data, out)
    assert not out.exists()
    with pytest.raises(FileNotFoundError, match="out: the folder .*missing of .*m.pt does not exist"):
        _run(data, tmp_path / "missing" / "m.pt")


def test_cli_images_builds_the_on_the_fly_stream(tmp_path):
    """ispad train --images draws the stream on the fly; oversampling gets a fault-free one."""
    import argparse

    from ispad_core.cli.train import _stream_source, add_parser
    from ispad_core.io import write_png
    from ispad_core.samples import screen_print
    from ispad_core.stream import SyntheticStream

    for k in range(2):
        write_png(tmp_path / f"s{k}.png", screen_print((96, 96), rng=k))
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    common = ["train", "--images", str(tmp_path), "--out", str(tmp_path / "m.pt"), "--n", "8", "--size", "32"]
    mixed = _stream_source(parser.parse_args(common + ["--seed", "3"]))
    assert isinstance(mixed, SyntheticStream) and len(mixed) == 8
    assert int(sum(mixed[i][2] for i in range(8))) == 4
    over = _stream_source(parser.parse_args(common + ["--mode", "oversampling"]))
    assert int(sum(over[i][2] for i in range(8))) == 0
    with pytest.raises(SystemExit):
        parser.parse_args(common + ["--stream", "x.h5"])


# --------------------------------------------------------------------------- hostile outputs


@pytest.mark.parametrize("kind", ["link", "file"])
def test_a_link_or_a_file_at_the_checkpoint_folder_is_refused(data, tmp_path, kind):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "m.pt"
    ckpt = tmp_path / "m.pt.ckpt"
    if kind == "link":
        ckpt.symlink_to(elsewhere, target_is_directory=True)
        match = r"out: the checkpoint folder .*m.pt.ckpt is a symbolic link"
    else:
        ckpt.write_text("mine")
        match = r"out: .*m.pt.ckpt is where the checkpoints of m.pt go, but it is not a folder"
    for kw in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(ValueError, match=match):
            _run(data, out, **kw)
    assert list(elsewhere.iterdir()) == [] and not out.exists()
    assert ckpt.is_symlink() if kind == "link" else ckpt.read_text() == "mine"


def _disk_full_at_the_second_checkpoint(monkeypatch):
    """torch.save as on a disk that fills up after the first checkpoint: the real failure of each
    kind of target (a path: torch's RuntimeError; a file object: OSError ENOSPC), from /dev/full."""
    real_save = torch.save
    saves = []

    def save(obj, f, *args, **kwargs):
        name = os.fspath(f) if isinstance(f, (str, os.PathLike)) else getattr(f, "name", "")
        saves.append(os.path.basename(name))
        if sum(".last.pt." in s for s in saves) < 2:
            return real_save(obj, f, *args, **kwargs)
        if isinstance(f, (str, os.PathLike)):
            return real_save(obj, "/dev/full", *args, **kwargs)
        with open("/dev/full", "wb") as full:
            return real_save(obj, full, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_last_checkpoint(data, tmp_path, monkeypatch):
    from ispad_core._shared.files import OutOfSpaceError

    out = tmp_path / "m.pt"
    _disk_full_at_the_second_checkpoint(monkeypatch)
    with pytest.raises(OutOfSpaceError) as info:
        _run(data, out, max_steps=4, val_every=2)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "m.pt.ckpt" / "last.pt") in message and " free " in message
    assert "the old last.pt is kept" in message
    monkeypatch.undo()
    ckpt = tmp_path / "m.pt.ckpt"
    assert sorted(os.listdir(ckpt)) == ["best.pt", "last.pt", "settings.json"]  # no temporary left
    assert torch.load(ckpt / "last.pt", weights_only=True)["steps"] == 2  # the checkpoint before the full disk
    assert not out.exists() and not (tmp_path / "m.pt.lock").exists()
    resumed = _run(data, out, max_steps=4, val_every=2, resume=True)  # room again: the run goes on
    assert resumed.train.steps == 4 and out.is_file()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_cli_train_full_disk_is_one_line_exit_1(data, tmp_path, monkeypatch, capsys):
    from ispad_core.cli import main

    _disk_full_at_the_second_checkpoint(monkeypatch)
    rc = main(["train", "--stream", str(data / "stream.h5"), "--real", str(data / "real"), "--val", str(data / "val"),
               "--out", str(tmp_path / "m.pt"), "--p-inj", "1/16", "--backbone", TINY, "--allow-factory",
               "--max-steps", "4", "--val-every", "2", "--batch-size", "16", "--workers", "0", "--threads", "1",
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("ispad train: error: ") and "last.pt" in errors[0]
    assert "free on its file system" in errors[0]


def test_a_rerun_removes_what_a_killed_run_left(data, tmp_path):
    out = tmp_path / "m.pt"
    ckpt = tmp_path / "m.pt.ckpt"
    ckpt.mkdir()
    left = [tmp_path / ".m.pt.abcd_123.part", ckpt / ".last.pt.x1y2z3w4.part", ckpt / ".best.pt.q1w2e3r4.part"]
    users = [tmp_path / ".m.pt.part", tmp_path / ".n.pt.abcd_123.part", tmp_path / "notes.txt"]
    for p in left + users:
        p.write_bytes(b"x")
    _run(data, out)
    assert not any(p.exists() for p in left) and all(p.exists() for p in users)


class _LockHolders(torch.utils.data.Dataset):
    """Item i: whether the process that reads it has a descriptor open on ``lock``."""

    def __init__(self, lock):
        self.lock = str(lock)

    def __len__(self):
        return 2

    def __getitem__(self, i):
        fds = os.listdir("/proc/self/fd")
        held = []
        for fd in fds:
            try:
                held.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return torch.tensor(int(self.lock in held))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_forked_loader_worker_holds_no_descriptor_of_the_writer_lock(tmp_path):
    # a worker that outlives a killed trainer must not keep its output locked
    from ispad_core._shared.files import exclusive_lock

    with exclusive_lock(tmp_path / "m.pt", name="out") as lock:
        assert _LockHolders(lock)[0] == 1  # this process holds it
        loader = torch.utils.data.DataLoader(_LockHolders(lock), batch_size=1, num_workers=1,
                                             multiprocessing_context="fork")
        assert [int(b) for b in loader] == [0, 0]


def test_cli_train_a_link_at_the_checkpoint_folder_is_one_line(data, tmp_path, capsys):
    from ispad_core.cli import main

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "m.pt.ckpt").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    rc = main(["train", "--stream", str(data / "stream.h5"), "--val", str(data / "val"), "--out", str(tmp_path / "m.pt"),
               "--backbone", TINY, "--allow-factory", "--max-steps", "2", "--workers", "0", "--quiet", "--resume"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "m.pt.ckpt is a symbolic link" in err, err
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("amp, precision", [("on", "bf16"), ("off", "fp32"), ("auto", None)])
def test_cli_amp_sets_the_training_precision_and_the_threshold_stays_full_precision(data, tmp_path, amp, precision):
    from ispad_core.metrics import f1_optimal_threshold
    from ispad_core.nn import predict
    from ispad_core.nn.runtime import cpu_has_bf16

    if precision is None:  # auto: bf16 where the CPU computes it natively
        precision = "bf16" if cpu_has_bf16() else "fp32"

    out = tmp_path / "model.pt"
    args = _parser().parse_args([
        "train", "--stream", str(data / "stream.h5"), "--val", str(data / "val"), "--out", str(out),
        "--backbone", TINY, "--allow-factory", "--max-steps", "2", "--batch-size", "16", "--workers", "0",
        "--threads", "1", "--amp", amp, "--quiet",
    ])
    assert args.func(args) == 0
    model, meta = load_model(out, allow_factory=TINY)
    assert meta["training"]["precision"] == precision
    # the stored threshold is the F1-optimal one of the scores predict computes (full precision)
    from ispad_core.io import read_labelled_set
    from ispad_core.nn import Preprocess

    val = read_labelled_set(data / "val", size=SIZE)
    scores = predict(model, (np.asarray(val.images), val.labels), preprocess=Preprocess(**meta["preprocess"]),
                     batch_size=64).scores
    assert meta["threshold"] == pytest.approx(float(f1_optimal_threshold(val.labels, scores)))
