"""Retraining from the review loop: ``train --from`` (the network starts as the model file's, the
file is recorded, a different network is refused), ``--negatives`` (confirmed false alarms replace
fault-free items at rate p_neg, labelled 0) and the warning about few fault-free validation patches."""

import hashlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core.io import write_png, write_stream  # noqa: E402
from ispad_core.nn import InjectionDataset, load_model, train_detector  # noqa: E402
from ispad_core.nn import detector as detector_module  # noqa: E402
from ispad_core.nn.detector import DEFAULT_P_NEG, few_validation_note  # noqa: E402
from ispad_core.nn.injection import NegativeDataset  # noqa: E402
from tests.conftest import run_ispad  # noqa: E402
from tests.nn.test_detector import SIZE, TINY, _patches  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fine_tune")
    rng = np.random.default_rng(1)
    labels = np.arange(160) % 2
    images, masks = _patches(rng, 160, labels == 1)
    write_stream(root / "stream.h5", images, masks, labels)
    for k in range(6):
        image = rng.normal(100, 8, (24, 24)).clip(0, 255).astype(np.uint8)
        image[8:16, 10:14] = 30
        (root / "real" / "area").mkdir(parents=True, exist_ok=True)
        write_png(root / "real" / "area" / f"{k:02d}.png", image)
    (root / "good").mkdir()
    for k in range(4):  # confirmed false alarms: window-sized, fault-free, with a harmless bright edge
        image = rng.normal(100, 8, (SIZE, SIZE)).clip(0, 255).astype(np.uint8)
        image[:, 0] = 200
        write_png(root / "good" / f"scan_r{k}_c0.png", image)
    flags = np.r_[np.zeros(20, bool), np.ones(8, bool)]
    images, _ = _patches(rng, 28, flags)
    for k, (image, bad) in enumerate(zip(images, flags)):
        folder = root / "val" / ("bright" if bad else "good")
        folder.mkdir(parents=True, exist_ok=True)
        write_png(folder / f"{k:02d}.png", image)
    return root


def _run(data, out, **kw):
    options = dict(real=data / "real", val=data / "val", backbone=TINY, batch_size=16, max_steps=3, workers=0,
                   threads=1, verbose=False, p_inj=1 / 16, augment=None)
    options.update(kw)
    return train_detector(data / "stream.h5", out=out, **options)


# --------------------------------------------------------------------------- NegativeDataset


def test_negatives_replace_fault_free_items_at_the_stated_rate():
    n = 40000
    stream = [(np.full((4, 4), 10 + (i % 2), np.uint8), i % 2) for i in range(n)]
    negatives = np.stack([np.full((4, 4), 200 + k, np.uint8) for k in range(5)])
    ds = NegativeDataset(stream, negatives, p_neg=1 / 16, seed=3)
    items = ds.__getitems__(list(range(n)))
    replaced = [k for k, (im, _) in enumerate(items) if im[0, 0] >= 200]
    assert all(items[k][1] == 0 and k % 2 == 0 for k in replaced)  # only fault-free items, still label 0
    good = n // 2
    sigma = np.sqrt(good * (1 / 16) * (15 / 16))
    assert abs(len(replaced) - good / 16) < 4 * sigma
    counts = np.bincount([items[k][0][0, 0] - 200 for k in replaced], minlength=5)
    assert counts.min() > 0.7 * len(replaced) / 5  # every negative is drawn, about uniformly
    # reproducible per (seed, epoch, i), one by one as in a batch; another epoch draws anew
    assert all(np.array_equal(ds[k][0], items[k][0]) for k in replaced[:50])
    ds.set_epoch(1)
    again = [k for k, (im, _) in enumerate(ds.__getitems__(list(range(2000)))) if im[0, 0] >= 200]
    assert again != [k for k in replaced if k < 2000]


def test_negatives_leave_injected_real_defects_alone():
    stream = [(np.full((4, 4), 10, np.uint8), 0) for _ in range(4000)]
    real = np.full((2, 4, 4), 99, np.uint8)
    inner = InjectionDataset(stream, real, p_inj=1 / 4, batch_size=16, seed=0)
    ds = NegativeDataset(inner, np.full((1, 4, 4), 200, np.uint8), p_neg=0.5, seed=0)
    items = ds.__getitems__(list(range(4000)))
    injected = inner.plan().injected
    assert all(items[k][1] == 1 and items[k][0][0, 0] == 99 for k in np.flatnonzero(injected))
    rate = np.mean([items[k][0][0, 0] == 200 for k in np.flatnonzero(~injected)])
    assert abs(rate - 0.5) < 0.05


@pytest.mark.parametrize("p_neg", [0.0, 0.75, -1])
def test_bad_p_neg(p_neg):
    with pytest.raises(ValueError, match="p_neg"):
        NegativeDataset([(np.zeros((2, 2), np.uint8), 0)], np.zeros((1, 2, 2), np.uint8), p_neg=p_neg, seed=0)


def test_few_validation_note():
    assert few_validation_note([0] * 10).startswith("the threshold rests on 10 fault-free validation patches")
    assert "1/(n+1) = 0.091" in few_validation_note([0] * 10 + [1] * 3)
    assert few_validation_note(np.zeros(1000)) is None


# --------------------------------------------------------------------------- train_detector


def test_from_starts_with_the_source_weights_and_records_the_file(data, tmp_path, monkeypatch):
    source = _run(data, tmp_path / "a.pt", seed=1).path
    reference, _ = load_model(source, allow_factory=TINY)
    batch = torch.from_numpy(np.random.default_rng(0).normal(0, 1, (4, 1, SIZE, SIZE)).astype(np.float32))
    first = {}
    fit = detector_module._fit

    def record_then_fit(model, *args, **kwargs):
        model.eval()
        with torch.no_grad():
            first["logits"] = model(batch).clone()
        return fit(model, *args, **kwargs)

    monkeypatch.setattr(detector_module, "_fit", record_then_fit)
    res = _run(data, tmp_path / "b.pt", seed=7, init_from=source)
    with torch.no_grad():
        torch.testing.assert_close(first["logits"], reference.eval()(batch), rtol=0, atol=0)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    assert res.metadata["provenance"]["from"] == {"path": str(source.resolve()), "sha256": sha}
    assert res.metadata["training"]["init_from"] == str(source.resolve())
    assert res.recipe.optimizer == "sgd"  # the fine-tuning recipe
    _, meta = load_model(res.path, allow_factory=TINY)
    assert meta["provenance"]["from"]["sha256"] == sha


def test_from_a_different_network_is_refused(data, tmp_path):
    source = _run(data, tmp_path / "a.pt").path
    with pytest.raises(ValueError, match=r"init_from \(--from\).*small_cnn.*same backbone"):
        _run(data, tmp_path / "b.pt", init_from=source, backbone="tests.nn._factory:small_cnn")
    with pytest.raises(FileNotFoundError, match="--from"):
        _run(data, tmp_path / "c.pt", init_from=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="weights"):
        _run(data, tmp_path / "d.pt", init_from=source, weights=source)
    assert not (tmp_path / "b.pt").exists() and not (tmp_path / "c.pt").exists()


def test_negatives_enter_the_run_and_the_model_file(data, tmp_path, monkeypatch):
    seen = {}
    fit = detector_module._fit

    def record_then_fit(model, data_, *args, **kwargs):
        seen["train_set"] = data_.train_set
        return fit(model, data_, *args, **kwargs)

    monkeypatch.setattr(detector_module, "_fit", record_then_fit)
    res = _run(data, tmp_path / "m.pt", negatives=data / "good", p_neg=1 / 4)
    ds = seen["train_set"]
    assert isinstance(ds, NegativeDataset) and isinstance(ds.dataset, InjectionDataset) and ds.p_neg == 0.25
    items = ds.__getitems__(list(range(len(ds))))
    negatives = [k for k, (im, _) in enumerate(items) if (im[:, 0] == 200).all()]
    assert negatives and all(items[k][1] == 0 for k in negatives)
    prov = res.metadata["provenance"]["negatives"]
    assert prov["count"] == 4 and prov["p_neg"] == 0.25 and len(prov["files"]) == 4
    assert DEFAULT_P_NEG == 1 / 16
    with pytest.raises(ValueError, match="p_neg"):
        _run(data, tmp_path / "x.pt", p_neg=1 / 8)


def test_few_validation_patches_are_reported(data, tmp_path):
    res = _run(data, tmp_path / "m.pt")
    assert len(res.notes) == 1 and "20 fault-free validation patches" in res.notes[0]
    assert "warning: the threshold rests on 20" in str(res)
    assert res.metadata["validation"]["notes"] == list(res.notes)


def test_cli_from_negatives_and_warning(data, tmp_path):
    source = _run(data, tmp_path / "a.pt").path
    base = ["train", "--stream", data / "stream.h5", "--real", data / "real", "--val", data / "val",
            "--batch-size", 16, "--max-steps", 2, "--workers", 0,
              "--threads", 1, "--p-inj", "1/16", "--augment", "none", "--quiet"]
    common = base + ["--backbone", TINY, "--allow-factory"]
    ran = run_ispad(*common, "--from", source, "--negatives", data / "good", "--p-neg", "1/8",
                    "--out", tmp_path / "b.pt")
    assert "warning: the threshold rests on 20 fault-free validation patches" in ran.stdout
    _, meta = load_model(tmp_path / "b.pt", allow_factory=TINY)
    assert meta["provenance"]["negatives"]["p_neg"] == 0.125 and meta["provenance"]["from"]["path"] == str(source.resolve())
    ran = run_ispad(*common, "--p-neg", "1/8", "--out", tmp_path / "c.pt", expect=1)
    assert "--p-neg needs --negatives" in ran.stderr
    ran = run_ispad(*common, "--negatives", data / "good", "--p-neg", "3/4", "--out", tmp_path / "c.pt", expect=1)
    assert "--p-neg" in ran.stderr
    ran = run_ispad(*base, "--from", source, "--backbone", "resnet18", "--out", tmp_path / "c.pt", expect=1)
    assert "--from" in ran.stderr
