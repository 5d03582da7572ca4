"""The five backbones: torchvision's layout and parameter counts, weight loading, forward passes.

``data/torchvision_layouts.json`` lists, for torchvision 0.28.0's constructors with default
arguments (1000-way heads), the parameter count and every ``state_dict()`` key with its shape.
The functional forward passes below are slow, obvious re-implementations from the state dict
(every block written out with ``torch.nn.functional``), the reference for our modules.
"""

import json
import pathlib

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from ispad_core.nn import BACKBONES, classifier, load_torchvision_state_dict, resnet18_classifier  # noqa: E402
from ispad_core.nn.backbones import StochasticDepth, import_factory, is_factory  # noqa: E402
from tests.nn import _factory  # noqa: E402

pytestmark = pytest.mark.torch

LAYOUTS = json.loads((pathlib.Path(__file__).parent / "data" / "torchvision_layouts.json").read_text())["models"]
PUBLISHED = {  # torchvision's documented parameter counts (1000-way heads)
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "efficientnet_b0": 5_288_548,
    "efficientnet_b4": 19_341_616,
    "convnext_tiny": 28_589_128,
}
STEM = {"resnet18": "conv1.weight", "resnet50": "conv1.weight", "efficientnet_b0": "features.0.0.weight",
        "efficientnet_b4": "features.0.0.weight", "convnext_tiny": "features.0.0.weight"}
HEAD = {"resnet18": "fc", "resnet50": "fc", "efficientnet_b0": "classifier.1", "efficientnet_b4": "classifier.1",
        "convnext_tiny": "classifier.2"}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _count(model):
    return sum(p.numel() for p in model.parameters())


def _shapes(model):
    return {k: list(v.shape) for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- layout


def test_backbones_are_the_papers_five():
    assert BACKBONES == ("resnet18", "resnet50", "efficientnet_b0", "efficientnet_b4", "convnext_tiny")
    assert set(LAYOUTS) == set(BACKBONES)


@pytest.mark.parametrize("name", BACKBONES)
def test_layout_and_parameter_count_equal_torchvision(name):
    model = classifier(name, in_channels=3, num_classes=1000)
    ref = LAYOUTS[name]["state_dict"]
    assert list(model.state_dict()) == list(ref)  # same keys in the same order
    assert _shapes(model) == ref
    assert _count(model) == LAYOUTS[name]["parameters"] == PUBLISHED[name]


@pytest.mark.parametrize("name", BACKBONES)
def test_paper_head_and_grey_stem(name):
    model = classifier(name, in_channels=1)
    shapes, ref = _shapes(model), LAYOUTS[name]["state_dict"]
    head_in = ref[f"{HEAD[name]}.weight"][1]
    assert shapes[STEM[name]] == [ref[STEM[name]][0], 1, *ref[STEM[name]][2:]]
    assert shapes[f"{HEAD[name]}.weight"] == [2, head_in] and shapes[f"{HEAD[name]}.bias"] == [2]
    assert {k: v for k, v in shapes.items() if k not in (STEM[name], f"{HEAD[name]}.weight", f"{HEAD[name]}.bias")} == {
        k: v for k, v in ref.items() if k not in (STEM[name], f"{HEAD[name]}.weight", f"{HEAD[name]}.bias")}
    # the last two modules applied are dropout 0.1 and the linear head
    leaves = [m for m in model.modules() if not list(m.children())]
    drop, linear = [m for m in leaves if isinstance(m, (torch.nn.Dropout, torch.nn.Linear))][-2:]
    assert isinstance(drop, torch.nn.Dropout) and drop.p == 0.1
    assert linear is model.get_submodule(HEAD[name]) and linear.out_features == 2
    assert model.in_channels == 1 and model.num_classes == 2 and model.arch == name


@pytest.mark.parametrize("name", BACKBONES)
def test_forward_shapes(name):
    torch.manual_seed(0)
    model = classifier(name, in_channels=1, dropout=0.2)
    x = torch.rand(2, 1, 64, 64)
    out = model(x)  # training mode: batch norm, dropout, stochastic depth
    assert out.shape == (2, 2) and out.dtype == torch.float32 and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 2)


def test_resnet18_classifier_keeps_working():
    torch.manual_seed(3)
    a = resnet18_classifier(in_channels=1)
    torch.manual_seed(3)
    b = classifier("resnet18", in_channels=1)
    assert type(a) is type(b)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])


# --------------------------------------------------------------------------- weights


def _torchvision_state(name, *, seed=0):
    """A state dict in torchvision's layout (from the reference shapes) with random tensors."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in LAYOUTS[name]["state_dict"].items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.05
    return state


@pytest.mark.parametrize("name", BACKBONES)
def test_torchvision_file_loads_with_grey_stem_and_new_head(name, tmp_path):
    state = _torchvision_state(name)
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    torch.manual_seed(1)
    model = classifier(name, in_channels=1, weights=path)
    torch.manual_seed(1)
    fresh = classifier(name, in_channels=1)
    ours = model.state_dict()
    stem, head = STEM[name], HEAD[name]
    assert torch.equal(ours[stem], state[stem].sum(dim=1, keepdim=True))
    for key, value in state.items():
        if key == stem or key.startswith(head + "."):
            continue
        assert torch.equal(ours[key], value), key
    for key in (f"{head}.weight", f"{head}.bias"):  # the 1000-way head is dropped, ours stays
        assert torch.equal(ours[key], fresh.state_dict()[key])


@pytest.mark.parametrize("name", BACKBONES)
def test_one_channel_stem_is_the_rgb_sum(name):
    """A grey image through the summed stem gives what the RGB network gives for it in RGB."""
    state = _torchvision_state(name, seed=2)
    grey = classifier(name, in_channels=1, num_classes=1000, weights=state).eval()
    rgb = classifier(name, in_channels=3, num_classes=1000, weights=state).eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["efficientnet_b0", "convnext_tiny"])
def test_matching_head_loads_and_errors_name_the_backbone(name):
    state = _torchvision_state(name)
    model = classifier(name, in_channels=3, num_classes=1000, weights=state)
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value)
    with pytest.raises(ValueError, match=rf"unexpected key 'module\.features\.0\.0\.weight', not a torchvision {name} name"):
        classifier(name, weights={f"module.{k}": v for k, v in state.items()})
    stem = STEM[name]
    gone = "features.1.0.block.0.0.weight" if name.startswith("efficientnet") else "features.5.8.block.3.bias"
    short = {k: v for k, v in state.items() if k != gone}
    with pytest.raises(ValueError, match=f"weights: missing key '{gone}'"):
        classifier(name, weights=short)
    with pytest.raises(ValueError, match=rf"weights: key '{stem}' expected shape"):
        classifier(name, weights={**state, stem: torch.zeros(3, 3, 3, 3)})
    with pytest.raises(ValueError, match=rf"weights: key '{HEAD[name]}.weight' expected shape"):
        load_torchvision_state_dict(classifier(name), state, strict_head=True)


def test_loader_finds_stem_and_head_of_other_modules():
    torch.manual_seed(0)
    rgb = _factory.small_cnn(in_channels=3, num_classes=10, dropout=0.0).state_dict()
    model = load_torchvision_state_dict(_factory.small_cnn(in_channels=1, num_classes=2, dropout=0.1), rgb)
    assert torch.equal(model.conv.weight, rgb["conv.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(model.bn.running_var, rgb["bn.running_var"])
    assert model.fc.weight.shape == (2, 8)
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module, got dict"):
        load_torchvision_state_dict({}, rgb)


# --------------------------------------------------------------------------- functional references


def _bn(sd, p, x, eps=1e-5):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        False, 0.0, eps)


def _ln2d(sd, p, x):
    y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), sd[f"{p}.weight"], sd[f"{p}.bias"], 1e-6)
    return y.permute(0, 3, 1, 2)


def resnet50_forward(sd, x):
    x = F.relu(_bn(sd, "bn1", F.conv2d(x, sd["conv1.weight"], stride=2, padding=3)))
    x = F.max_pool2d(x, 3, 2, 1)
    for layer, blocks in zip(range(1, 5), (3, 4, 6, 3)):
        for b in range(blocks):
            p = f"layer{layer}.{b}"
            stride = 2 if b == 0 and layer > 1 else 1
            y = F.relu(_bn(sd, f"{p}.bn1", F.conv2d(x, sd[f"{p}.conv1.weight"])))
            y = F.relu(_bn(sd, f"{p}.bn2", F.conv2d(y, sd[f"{p}.conv2.weight"], stride=stride, padding=1)))
            y = _bn(sd, f"{p}.bn3", F.conv2d(y, sd[f"{p}.conv3.weight"]))
            if f"{p}.downsample.0.weight" in sd:
                x = _bn(sd, f"{p}.downsample.1", F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride))
            x = F.relu(y + x)
    return F.linear(x.mean(dim=(2, 3)), sd["fc.weight"], sd["fc.bias"])


def _conv_bn(sd, p, x, *, stride=1, depthwise=False, act=True):
    w = sd[f"{p}.0.weight"]
    x = F.conv2d(x, w, stride=stride, padding=(w.shape[-1] - 1) // 2, groups=w.shape[0] if depthwise else 1)
    x = _bn(sd, f"{p}.1", x)
    return F.silu(x) if act else x


def efficientnet_forward(sd, x):
    strides = (1, 2, 2, 2, 1, 2, 1)  # first block of each of the seven stages
    x = _conv_bn(sd, "features.0", x, stride=2)
    for stage in range(1, 8):
        b = 0
        while f"features.{stage}.{b}.block.0.0.weight" in sd:
            p = f"features.{stage}.{b}.block"
            expand = f"{p}.3.0.weight" in sd
            y = _conv_bn(sd, f"{p}.0", x) if expand else x
            y = _conv_bn(sd, f"{p}.{1 if expand else 0}", y, stride=strides[stage - 1] if b == 0 else 1, depthwise=True)
            se = f"{p}.{2 if expand else 1}"
            s = F.silu(F.conv2d(y.mean(dim=(2, 3), keepdim=True), sd[f"{se}.fc1.weight"], sd[f"{se}.fc1.bias"]))
            y = y * torch.sigmoid(F.conv2d(s, sd[f"{se}.fc2.weight"], sd[f"{se}.fc2.bias"]))
            y = _conv_bn(sd, f"{p}.{3 if expand else 2}", y, act=False)
            x = y + x if y.shape == x.shape else y
            b += 1
    x = _conv_bn(sd, "features.8", x)
    return F.linear(x.mean(dim=(2, 3)), sd["classifier.1.weight"], sd["classifier.1.bias"])


def convnext_forward(sd, x):
    x = _ln2d(sd, "features.0.1", F.conv2d(x, sd["features.0.0.weight"], sd["features.0.0.bias"], stride=4))
    for stage in range(4):
        f = 1 + 2 * stage
        b = 0
        while f"features.{f}.{b}.layer_scale" in sd:
            p = f"features.{f}.{b}"
            y = F.conv2d(x, sd[f"{p}.block.0.weight"], sd[f"{p}.block.0.bias"], padding=3, groups=x.shape[1])
            y = y.permute(0, 2, 3, 1)
            y = F.layer_norm(y, (y.shape[-1],), sd[f"{p}.block.2.weight"], sd[f"{p}.block.2.bias"], 1e-6)
            y = F.linear(F.gelu(F.linear(y, sd[f"{p}.block.3.weight"], sd[f"{p}.block.3.bias"])),
                         sd[f"{p}.block.5.weight"], sd[f"{p}.block.5.bias"])
            x = x + sd[f"{p}.layer_scale"] * y.permute(0, 3, 1, 2)
            b += 1
        if stage < 3:
            x = _ln2d(sd, f"features.{f + 1}.0", x)
            x = F.conv2d(x, sd[f"features.{f + 1}.1.weight"], sd[f"features.{f + 1}.1.bias"], stride=2)
    x = _ln2d(sd, "classifier.0", x.mean(dim=(2, 3), keepdim=True)).flatten(1)
    return F.linear(x, sd["classifier.2.weight"], sd["classifier.2.bias"])


REFERENCE = {"resnet50": resnet50_forward, "efficientnet_b0": efficientnet_forward,
             "efficientnet_b4": efficientnet_forward, "convnext_tiny": convnext_forward}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_forward_equals_functional_reference(name):
    torch.manual_seed(0)
    model = classifier(name, in_channels=2, num_classes=3).eval()
    with torch.no_grad():  # non-trivial statistics and layer scales, so every term counts
        for key, t in model.state_dict().items():
            if key.endswith("running_mean") or key.endswith(".bias"):
                t.uniform_(-0.1, 0.1)
            elif key.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif key.endswith("layer_scale"):
                t.uniform_(0.2, 1.0)
        x = torch.randn(2, 2, 67, 61)
        torch.testing.assert_close(model(x), REFERENCE[name](model.state_dict(), x), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- stochastic depth


def test_stochastic_depth_drops_whole_samples_and_rescales():
    sd = StochasticDepth(0.25)
    x = torch.ones(4000, 3, 2)
    assert sd.eval()(x) is x
    torch.manual_seed(0)
    y = sd.train()(x)
    per_sample = y.reshape(4000, -1)
    kept = per_sample[:, 0] > 0
    assert torch.equal(per_sample[kept], torch.full_like(per_sample[kept], 1 / 0.75))
    assert torch.equal(per_sample[~kept], torch.zeros_like(per_sample[~kept]))
    assert abs(kept.float().mean().item() - 0.75) < 0.03
    assert StochasticDepth(0.0).train()(x) is x


def test_stochastic_depth_rises_linearly_as_torchvision():
    b0 = classifier("efficientnet_b0", stochastic_depth_prob=0.2)
    probs = [m.p for m in b0.modules() if isinstance(m, StochasticDepth)]
    assert probs == [0.2 * i / 16 for i in range(16)]
    cn = classifier("convnext_tiny")
    probs = [m.p for m in cn.modules() if isinstance(m, StochasticDepth)]
    assert len(probs) == 18 and probs[0] == 0.0 and probs[-1] == pytest.approx(0.1)
    assert cn.features[1][0].layer_scale.flatten()[0].item() == pytest.approx(1e-6)
    b4 = classifier("efficientnet_b4")
    assert len([m for m in b4.modules() if isinstance(m, StochasticDepth)]) == 32


# --------------------------------------------------------------------------- factories and arguments


def test_factory_backbone_is_called_with_the_convention():
    before = len(_factory.CALLS)
    model = classifier("tests.nn._factory:counting_factory", in_channels=3, num_classes=4, dropout=0.3, width=5)
    assert _factory.CALLS[before:] == [{"in_channels": 3, "num_classes": 4, "dropout": 0.3, "width": 5}]
    assert model.eval()(torch.zeros(2, 3, 16, 16)).shape == (2, 4)


def test_factory_helpers():
    assert is_factory("a.b:c") and is_factory("a:b.c") and not is_factory("resnet18") and not is_factory("a:b:c")
    assert import_factory("tests.nn._factory:SmallCNN") is _factory.SmallCNN
    with pytest.raises(TypeError, match="backbone: the factory 'tests.nn._factory:CALLS' is not callable, got list"):
        import_factory("tests.nn._factory:CALLS")


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        (("resnet34",), {}, ValueError,
         "backbone: expected one of resnet18, resnet50, efficientnet_b0, efficientnet_b4, convnext_tiny or a factory "
         "'package.module:function', got 'resnet34'"),
        ((18,), {}, TypeError, "backbone: expected a str"),
        (("resnet50",), {"stochastic_depth_prob": 0.1}, TypeError,
         "classifier: unexpected keyword argument 'stochastic_depth_prob' for backbone 'resnet50' \\(accepted: none\\)"),
        (("convnext_tiny",), {"width": 3}, TypeError,
         "unexpected keyword argument 'width' for backbone 'convnext_tiny' \\(accepted: stochastic_depth_prob, layer_scale\\)"),
        (("efficientnet_b0",), {"stochastic_depth_prob": 1.0}, ValueError,
         r"stochastic_depth_prob: expected a value in \[0, 1\), got 1"),
        (("efficientnet_b4",), {"in_channels": 0}, ValueError, "in_channels: expected an int >= 1, got 0"),
        (("convnext_tiny",), {"dropout": -0.1}, ValueError, r"dropout: expected a value in \[0, 1\), got -0.1"),
        (("resnet50",), {"weights": 3}, TypeError, "weights: expected a path, a state dict or None, got int"),
        (("resnet50",), {"weights": "/nonexistent/r50.pth"}, FileNotFoundError, "weights are never downloaded"),
        (("tests.nn._factory:small_cnn",), {"weights": "w.pth"}, ValueError,
         "weights: only the built-in backbones load torchvision-layout weights"),
        (("tests.nn._factory:not_a_module",), {}, TypeError,
         "backbone: the factory 'tests.nn._factory:not_a_module' returned str, expected a torch.nn.Module"),
        (("tests.nn._nothing_here:f",), {}, ValueError,
         "backbone: cannot import the module 'tests.nn._nothing_here' of the factory 'tests.nn._nothing_here:f'"),
        (("tests.nn._factory:missing",), {}, ValueError,
         "backbone: the module 'tests.nn._factory' has no attribute 'missing'"),
        (("tests.nn._factory:small_cnn",), {"depth": 2}, TypeError, "depth"),
    ],
)
def test_bad_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        classifier(*args, **kwargs)


# --------------------------------------------------------------------------- torchvision itself, where present


def _torchvision_models():
    """torchvision's model modules: installed, or from the unpacked wheel named by ISPAD_TORCHVISION_SRC.

    torchvision's model modules are plain Python; with the package's ``__init__`` (which loads its
    C extension) bypassed they import beside the CPU build of torch too.
    """
    import importlib
    import os
    import sys
    import types

    src = os.environ.get("ISPAD_TORCHVISION_SRC")
    if src is None:
        try:
            import torchvision.models as tvm
        except Exception:  # not installed, or its C extension does not load beside this torch
            pytest.skip("torchvision is not importable (set ISPAD_TORCHVISION_SRC to an unpacked wheel's torchvision/)")
        return tvm.resnet, tvm.efficientnet, tvm.convnext
    saved = {k: sys.modules.get(k) for k in ("torchvision", "torchvision.models")}
    try:
        for name, path in (("torchvision", src), ("torchvision.models", os.path.join(src, "models"))):
            stub = types.ModuleType(name)
            stub.__path__ = [path]
            sys.modules[name] = stub
        return tuple(importlib.import_module(f"torchvision.models.{m}") for m in ("resnet", "efficientnet", "convnext"))
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@pytest.mark.parametrize("name", BACKBONES)
def test_equal_to_torchvision(name):
    """Same initialisation under the same seed (bit-equal weights), and equal outputs in eval and training mode.

    Outputs are compared with float32's tolerance, not bit for bit: two modules may run the same
    layers through kernels that sum in another order (CPUs with and without AVX-512 differ).
    """
    resnet, efficientnet, convnext = _torchvision_models()
    ctor = {"resnet18": resnet.resnet18, "resnet50": resnet.resnet50, "efficientnet_b0": efficientnet.efficientnet_b0,
            "efficientnet_b4": efficientnet.efficientnet_b4, "convnext_tiny": convnext.convnext_tiny}[name]
    torch.manual_seed(0)
    ref = ctor()
    torch.manual_seed(0)
    ours = classifier(name, in_channels=3, num_classes=1000, dropout=0.0)
    for key, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    for m in ref.modules():  # torchvision's heads: dropout 0.2/0.4 (EfficientNet) or none
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    with torch.no_grad():
        for key, t in ref.state_dict().items():
            if key.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif key.endswith("layer_scale"):
                t.uniform_(0.2, 1.0)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), ref.eval()(x), rtol=1e-5, atol=1e-5)
    torch.manual_seed(5)  # training mode: batch statistics and stochastic depth draws
    a = ref.train()(x)
    torch.manual_seed(5)
    b = ours.train()(x)
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
