"""The model file: round trips, safe loading, clear errors for files that are not usable."""

import builtins
import os
import pickle
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core.nn import Preprocess, classifier, load_model, save_model  # noqa: E402
from ispad_core.nn import modelfile  # noqa: E402
from ispad_core.nn.modelfile import FORMAT, FORMAT_VERSION, ModelFileError, read_model_file  # noqa: E402
from tests.nn import _factory  # noqa: E402

pytestmark = pytest.mark.torch

FACTORY = "tests.nn._factory:counting_factory"


def _meta(**over):
    meta = {
        "backbone": "resnet18",
        "backbone_kwargs": {},
        "in_channels": 1,
        "num_classes": 2,
        "dropout": 0.1,
        "patch_size": 64,
        "preprocess": Preprocess(brightness=1.5).to_dict(),
        "threshold": 0.37,
        "validation": {"mcc": 0.9, "tp": 10, "fp": 1, "tn": 80, "fn": 2, "threshold": 0.37},
        "training": {"lr": 5e-4, "optimizer": "sgd", "steps": 100},
        "provenance": {"stream": "stream.h5", "seed": 3, "fractions": [1, 0.5]},
    }
    meta.update(over)
    return meta


def _perturb_bn(model):
    """Non-trivial batch-norm statistics, so buffers are checked too."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(11)
    return model


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return _perturb_bn(classifier("resnet18", in_channels=1))


@pytest.fixture(scope="module")
def saved(resnet, tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("m") / "model.pt", resnet, metadata=_meta())


def _small(**kw):
    torch.manual_seed(0)
    return _perturb_bn(classifier(FACTORY, in_channels=1, **kw))


# --------------------------------------------------------------------------- round trip


def test_round_trip_weights_bit_equal_and_metadata(resnet, saved):
    model, meta = load_model(saved)
    assert not model.training
    ours, theirs = model.state_dict(), resnet.state_dict()
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].dtype == theirs[key].dtype
        assert torch.equal(ours[key], theirs[key]), key
    want = _meta()
    for key, value in want.items():
        assert meta[key] == value, key
    assert meta["threshold"] == 0.37
    assert meta["format"] == FORMAT and meta["format_version"] == FORMAT_VERSION
    assert isinstance(meta["library_version"], str) and meta["created"].endswith("+00:00")
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():  # bit-equal weights; outputs within float32 rounding (kernels may differ per call)
        torch.testing.assert_close(model(x), resnet.eval()(x), rtol=1e-5, atol=1e-6)
    resnet.train()


def _plain(value):
    """Whether ``value`` is made only of tensors and JSON values."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return False


def test_file_is_a_plain_dict_readable_with_weights_only(saved):
    obj = torch.load(saved, map_location="cpu", weights_only=True)
    assert set(obj) == {"format", "format_version", "state_dict", "sha256", "metadata"}
    assert obj["format"] == "ispad_core.model" and obj["format_version"] == 2
    assert _plain(obj)
    assert all(t.device.type == "cpu" for t in obj["state_dict"].values())


def test_metadata_is_stored_as_json_values(tmp_path):
    meta = _meta(provenance={"fractions": (1, 0.5), "n": np.int64(3), "x": np.float32(0.25), "ok": np.bool_(True)},
                 note="free-form keys are kept", validation=None)
    meta.pop("training")
    path = save_model(tmp_path / "m.pt", _small(), metadata={**meta, "backbone": FACTORY})
    _, got = read_model_file(path)
    assert got["provenance"] == {"fractions": [1, 0.5], "n": 3, "x": 0.25, "ok": True}
    assert type(got["provenance"]["n"]) is int and type(got["provenance"]["ok"]) is bool
    assert got["note"] == "free-form keys are kept"
    assert got["training"] == {} and got["validation"] is None


def test_added_keys_are_replaced(tmp_path):
    path = save_model(tmp_path / "m.pt", _small(), metadata=_meta(backbone=FACTORY, format_version=99, created="x"))
    _, meta = read_model_file(path)
    assert meta["format_version"] == FORMAT_VERSION and meta["created"] != "x"


def test_other_backbone_with_kwargs_round_trips(tmp_path):
    torch.manual_seed(1)
    model = classifier("efficientnet_b0", in_channels=3, stochastic_depth_prob=0.3)
    path = save_model(tmp_path / "e.pt", model,
                      metadata=_meta(backbone="efficientnet_b0", in_channels=3,
                                     backbone_kwargs={"stochastic_depth_prob": 0.3}))
    loaded, meta = load_model(path)
    assert meta["backbone_kwargs"] == {"stochastic_depth_prob": 0.3}
    assert loaded.features[7][0].stochastic_depth.p == model.features[7][0].stochastic_depth.p > 0
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_wrapped_model_is_unwrapped(tmp_path):
    model = _small()
    path = save_model(tmp_path / "m.pt", torch.nn.DataParallel(model), metadata=_meta(backbone=FACTORY))
    state, _ = read_model_file(path)
    assert list(state) == list(model.state_dict())


def test_overwrite_refused_unless_asked(tmp_path):
    path = tmp_path / "m.pt"
    save_model(path, _small(), metadata=_meta(backbone=FACTORY, threshold=0.1))
    with pytest.raises(FileExistsError, match="m.pt exists"):
        save_model(path, _small(), metadata=_meta(backbone=FACTORY, threshold=0.2))
    assert read_model_file(path)[1]["threshold"] == 0.1
    save_model(path, _small(), metadata=_meta(backbone=FACTORY, threshold=0.2), overwrite=True)
    assert read_model_file(path)[1]["threshold"] == 0.2
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]  # no temporary file left behind


def test_symlink_target_refused(tmp_path):
    real = tmp_path / "real.pt"
    real.write_bytes(b"keep")
    (tmp_path / "link.pt").symlink_to(real)
    with pytest.raises(ValueError, match="symbolic link"):
        save_model(tmp_path / "link.pt", _small(), metadata=_meta(backbone=FACTORY), overwrite=True)
    assert real.read_bytes() == b"keep"


def test_device_argument(saved):
    model, _ = load_model(saved, device=torch.device("cpu"))
    assert next(model.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="device: expected a torch device"):
        load_model(saved, device="gpu7")


# --------------------------------------------------------------------------- factories


def test_factory_needs_explicit_opt_in(tmp_path):
    model = _small(width=4)
    path = save_model(tmp_path / "f.pt", model, metadata=_meta(backbone=FACTORY, backbone_kwargs={"width": 4}))
    calls = len(_factory.CALLS)
    with pytest.raises(ModelFileError, match=(
        r"f\.pt: the model's backbone is the factory 'tests\.nn\._factory:counting_factory'.*"
        r"allow_factory='tests\.nn\._factory:counting_factory'.*--allow-factory tests\.nn\._factory:counting_factory"
    )):
        load_model(path)
    with pytest.raises(ModelFileError, match="explicit opt-in"):
        load_model(path, allow_factory="tests.nn._factory:small_cnn")  # another factory is not this one
    assert len(_factory.CALLS) == calls  # refused before anything ran
    state, meta = read_model_file(path)  # looking needs no opt-in and runs nothing
    assert meta["backbone"] == FACTORY and len(_factory.CALLS) == calls
    loaded, meta = load_model(path, allow_factory=[FACTORY, "tests.nn._factory:small_cnn"])
    assert _factory.CALLS[-1] == {"in_channels": 1, "num_classes": 2, "dropout": 0.1, "width": 4}
    assert isinstance(loaded, _factory.SmallCNN) and not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    with pytest.raises(TypeError, match="allow_factory: expected None, a factory name or a list"):
        load_model(path, allow_factory=3)


# --------------------------------------------------------------------------- bad files


def _assert_names_file(exc_info, path):
    assert str(path) in str(exc_info.value)


@pytest.mark.parametrize("cut", ["half", "tail", "empty"])
def test_truncated_file(saved, tmp_path, cut):
    data = saved.read_bytes()
    n = {"half": len(data) // 2, "tail": len(data) - 10, "empty": 0}[cut]
    path = tmp_path / "cut.pt"
    path.write_bytes(data[:n])
    match = "it is empty" if cut == "empty" else "truncated or corrupt"
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path)
    _assert_names_file(info, path)


def test_flipped_weight_byte_is_caught(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:  # a byte in the middle of the largest tensor record
        info = max(zf.infolist(), key=lambda i: i.file_size)
        offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.file_size // 2
    data[offset] ^= 0x10
    path = tmp_path / "flipped.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupt") as exc:
        load_model(path)
    _assert_names_file(exc, path)


@pytest.mark.parametrize(
    "content, match",
    [
        (lambda: {"conv1.weight": torch.zeros(2)}, "not an ispad_core model file: it holds a plain state dict"),
        (lambda: {"format": "something.else", "x": 1}, "no format tag 'ispad_core.model' \\(got 'something.else'\\)"),
        (lambda: [1, 2, 3], "not an ispad_core model file: it holds a list"),
        (lambda: {"format": FORMAT, "format_version": "1"}, "no valid format_version"),
        (lambda: {"format": FORMAT, "format_version": 1, "state_dict": [1]}, "state_dict is missing"),
    ],
)
def test_wrong_torch_files(tmp_path, content, match):
    path = tmp_path / "other.pt"
    torch.save(content(), path)
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path)
    _assert_names_file(info, path)


def test_files_of_other_kinds(tmp_path):
    png = tmp_path / "scan.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(ModelFileError, match=r"scan\.png: not an ispad_core model file: it does not start like"):
        load_model(png)
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_model(tmp_path)
    with pytest.raises(TypeError, match="path: expected a file path, got int"):
        load_model(3)


def _payload(state, meta, **over):
    """A model file's dict with a valid digest of ``state`` and ``meta`` (unless ``over`` replaces it)."""
    obj = {"format": FORMAT, "format_version": FORMAT_VERSION, "state_dict": state,
           "sha256": modelfile._digest(state, meta), "metadata": meta}
    obj.update(over)
    return obj


def test_newer_format_version(saved, tmp_path):
    state, meta = read_model_file(saved)
    path = tmp_path / "future.pt"
    torch.save(_payload(state, meta, format_version=FORMAT_VERSION + 1), path)
    with pytest.raises(ModelFileError, match=(
        rf"future\.pt: the model file has format version {FORMAT_VERSION + 1}, written by a newer ispad_core.*"
        rf"reads up to format version {FORMAT_VERSION}: upgrade ispad-core"
    )):
        load_model(path)


def test_bad_checksum(saved, tmp_path):
    state, meta = read_model_file(saved)
    path = tmp_path / "sum.pt"
    torch.save(_payload(state, meta, sha256="0" * 64), path)
    with pytest.raises(ModelFileError, match=r"sum\.pt: refused: the model file was edited or is corrupt"):
        load_model(path)


def _edit_in_place(path, edit):
    """Change a saved model file as a user with torch.load/torch.save would: the digest is kept as it was."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    edit(obj)
    torch.save(obj, path)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda o: o["metadata"].update(threshold=0.05), id="threshold"),
        pytest.param(lambda o: o["metadata"].update(patch_size=128), id="patch_size"),
        pytest.param(lambda o: o["metadata"]["validation"].update(mcc=0.99), id="nested-validation"),
        pytest.param(lambda o: o["metadata"].update(note="added later"), id="added-key"),
        pytest.param(lambda o: o["metadata"].pop("provenance"), id="removed-key"),
        pytest.param(lambda o: o["metadata"].update(threshold=0.05, format_version=1) or o.update(format_version=1),
                     id="threshold-and-downgraded-to-version-1"),
        pytest.param(lambda o: o["state_dict"]["fc.bias"].add_(1e-3), id="weights"),
    ],
)
@pytest.mark.parametrize("reader", [read_model_file, load_model])
def test_edited_file_is_refused_by_name(saved, tmp_path, edit, reader):
    path = tmp_path / "edited.pt"
    path.write_bytes(saved.read_bytes())
    reader(path)  # the copy itself is fine
    _edit_in_place(path, edit)
    with pytest.raises(ModelFileError, match=r"edited\.pt: refused: the model file was edited or is "
                                             r"corrupt: its weights (or metadata )?do not match its SHA-256 checksum") as info:
        reader(path)
    _assert_names_file(info, path)


def test_digest_covers_canonical_metadata_not_its_order(saved, tmp_path):
    state, meta = read_model_file(saved)
    obj = torch.load(saved, map_location="cpu", weights_only=True)
    reordered = {key: obj["metadata"][key] for key in reversed(list(obj["metadata"]))}
    assert list(reordered) != list(obj["metadata"])
    obj["metadata"] = reordered
    path = tmp_path / "reordered.pt"
    torch.save(obj, path)
    state2, meta2 = read_model_file(path)
    assert meta2 == meta
    assert modelfile._digest(state, meta) == modelfile._digest(state, reordered)
    assert modelfile._digest(state, meta) != modelfile._digest(state, {**meta, "threshold": 0.38})
    assert modelfile._digest(state, meta) != modelfile._digest(state)  # the version-1 digest: tensors only


def test_metadata_that_is_not_json_is_refused(saved, tmp_path):
    state, meta = read_model_file(saved)
    meta["training"]["lr"] = torch.ones(1)  # weights_only loads a tensor anywhere, JSON has none
    path = tmp_path / "tensor.pt"
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "state_dict": state, "sha256": "0" * 64,
                "metadata": meta}, path)
    with pytest.raises(ModelFileError, match=r"tensor\.pt: the model file's metadata is not JSON"):
        read_model_file(path)


def test_format_version_1_is_read_with_a_warning_and_saved_as_the_current_one(saved, tmp_path):
    state, meta = read_model_file(saved)
    meta["format_version"] = 1
    path = tmp_path / "old.pt"
    torch.save(_payload(state, meta, format_version=1, sha256=modelfile._digest(state)), path)
    with pytest.warns(modelfile.ModelFileWarning, match=r"old\.pt: model file of format version 1, whose SHA-256 "
                                                        r"covers the weights only.*Save it again"):
        model, got = load_model(path)
    assert got["threshold"] == meta["threshold"] and got["format_version"] == 1
    # its weights are still checked
    bad = tmp_path / "old_bad.pt"
    state_bad = {k: v.clone() for k, v in state.items()}
    state_bad["fc.bias"].add_(1.0)
    torch.save(_payload(state_bad, meta, format_version=1, sha256=modelfile._digest(state)), bad)
    with pytest.raises(ModelFileError, match=r"old_bad\.pt: refused: the model file was edited or is corrupt: its weights do"):
        read_model_file(bad)
    # saving the loaded model again writes the current version, which covers the metadata
    new = save_model(tmp_path / "new.pt", model, metadata=got)
    _, got2 = read_model_file(new)
    assert got2["format_version"] == FORMAT_VERSION == 2
    _edit_in_place(new, lambda o: o["metadata"].update(threshold=0.9))
    with pytest.raises(ModelFileError, match=r"new\.pt: refused"):
        read_model_file(new)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.pop("threshold"), r"metadata: missing required keys \['threshold'\]"),
        (lambda m: m.pop("patch_size") and m.pop("backbone"), r"missing required keys \['backbone', 'patch_size'\]"),
        (lambda m: m.update(in_channels="1"), r"metadata\['in_channels'\]: expected an int, got str"),
        (lambda m: m.update(backbone="resnet34"), r"metadata\['backbone'\]: expected one of resnet18"),
    ],
)
def test_bad_metadata_in_file(saved, tmp_path, edit, match):
    state, meta = read_model_file(saved)
    edit(meta)
    path = tmp_path / "meta.pt"
    torch.save(_payload(state, meta), path)
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path)
    _assert_names_file(info, path)


def test_backbone_kwargs_that_do_not_build(saved, tmp_path):
    state, meta = read_model_file(saved)
    meta["backbone_kwargs"] = {"depth": 3}
    path = tmp_path / "kw.pt"
    torch.save(_payload(state, meta), path)
    with pytest.raises(ModelFileError, match=r"kw\.pt: the backbone its metadata names cannot be built: classifier: "
                                             r"unexpected keyword argument 'depth'"):
        load_model(path)


def test_weights_that_do_not_fit_the_backbone(saved, tmp_path):
    state, meta = read_model_file(saved)
    state = {k: v for k, v in state.items() if k != "layer1.0.bn1.running_mean"}
    path = tmp_path / "short.pt"
    torch.save(_payload(state, meta), path)
    with pytest.raises(ModelFileError, match=r"short\.pt: the weights do not fit backbone 'resnet18': missing key "
                                             r"'layer1\.0\.bn1\.running_mean'"):
        load_model(path)


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


@pytest.mark.parametrize("container", ["torch", "pickle"])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, container):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    if container == "torch":  # a torch.save zip whose pickle would call open(): refused by weights_only
        torch.save({"format": FORMAT, "format_version": 1, "metadata": {}, "x": _Payload(marker)}, path)
        match = r"evil\.pt: refused: the file holds pickled Python objects.*nothing in it was run.*open"
    else:  # a bare pickle: not even opened by torch
        with open(path, "wb") as fh:
            pickle.dump(_Payload(marker), fh)
        match = r"evil\.pt: not an ispad_core model file"
    with pytest.raises(ModelFileError, match=match):
        load_model(path)
    assert not marker.exists()
    # the payload is live: an unsafe load would have run it
    with open(path, "rb") as fh:
        if container == "torch":
            torch.load(fh, weights_only=False).get("x").close()
        else:
            pickle.load(fh).close()
    assert marker.exists()


# --------------------------------------------------------------------------- checks on save


@pytest.mark.parametrize(
    "edit, exc, match",
    [
        (lambda m: m.pop("preprocess"), ValueError, r"metadata: missing required keys \['preprocess'\]"),
        (lambda m: m.update(in_channels=True), TypeError, r"metadata\['in_channels'\]: expected an int, got bool"),
        (lambda m: m.update(patch_size=0), ValueError, r"metadata\['patch_size'\]: expected an int >= 1, got 0"),
        (lambda m: m.update(threshold=1.5), ValueError, r"metadata\['threshold'\]: expected a probability in \[0, 1\], got 1.5"),
        (lambda m: m.update(dropout=1.0), ValueError, r"metadata\['dropout'\]: expected a value in \[0, 1\), got 1"),
        (lambda m: m.update(backbone_kwargs=None), TypeError, r"metadata\['backbone_kwargs'\]: expected a dict, got NoneType"),
        (lambda m: m["training"].update(lr=float("nan")), ValueError,
         r"metadata\['training'\]\['lr'\]: expected a finite number \(JSON has no NaN or inf; store None instead\), got nan"),
        (lambda m: m["provenance"].update(seeds=np.arange(3)), TypeError,
         r"metadata\['provenance'\]\['seeds'\]: expected JSON values .*got ndarray"),
        (lambda m: m["provenance"].update({1: "x"}), TypeError, r"metadata\['provenance'\]: expected str keys"),
        (lambda m: m.update(preprocess={"brightness": 1.0, "gamma": 2}), ValueError,
         r"metadata\['preprocess'\]: not a valid Preprocess"),
        (lambda m: m.update(validation=[1]), TypeError, r"metadata\['validation'\]: expected a dict .* or None, got list"),
        (lambda m: m.update(backbone="my_net"), ValueError, r"metadata\['backbone'\]: expected one of resnet18, "),
        (lambda m: m.update(in_channels=3), ValueError,
         r"metadata: the model does not match backbone 'resnet18' with in_channels=3.*key 'conv1.weight' has shape "
         r"\(64, 1, 7, 7\), the backbone expects \(64, 3, 7, 7\)"),
        (lambda m: m.update(backbone="resnet50"), ValueError, r"metadata: the model does not match backbone 'resnet50'"),
        (lambda m: m.update(backbone_kwargs={"depth": 3}), ValueError,
         r"metadata: the backbone it names cannot be built: classifier: unexpected keyword argument 'depth'"),
        (lambda m: m.update(backbone="tests.nn._no_such_module:f"), ValueError,
         r"cannot be built: backbone: cannot import the module 'tests.nn._no_such_module'"),
    ],
)
def test_bad_metadata_on_save(resnet, tmp_path, edit, exc, match):
    meta = _meta()
    edit(meta)
    with pytest.raises(exc, match=match):
        save_model(tmp_path / "m.pt", resnet, metadata=meta)
    assert not os.listdir(tmp_path)  # nothing written


def test_bad_arguments_on_save(resnet, tmp_path):
    with pytest.raises(TypeError, match=r"model: expected a torch.nn.Module, got OrderedDict \(a state dict\? pass the module itself\)"):
        save_model(tmp_path / "m.pt", resnet.state_dict(), metadata=_meta())
    with pytest.raises(TypeError, match="metadata: expected a dict, got list"):
        save_model(tmp_path / "m.pt", resnet, metadata=[])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_model(tmp_path / "no" / "m.pt", resnet, metadata=_meta())
    with pytest.raises(TypeError, match="overwrite: expected a bool"):
        save_model(tmp_path / "m.pt", resnet, metadata=_meta(), overwrite="yes")
