"""ResNet-18 classifier: torchvision's names and shapes, parameter counts, local weight loading."""

import pytest

torch = pytest.importorskip("torch")

from ispad_core.nn import ResNet18, load_torchvision_state_dict, resnet18_classifier  # noqa: E402
from tests.reference.nn_ref import resnet18_forward, torchvision_resnet18_layout  # noqa: E402

pytestmark = pytest.mark.torch


def _count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("in_channels, num_classes, expected", [
    (3, 2, 11_177_538), (1, 2, 11_171_266), (3, 1000, 11_689_512),  # the last is torchvision's resnet18
])
def test_parameter_counts(in_channels, num_classes, expected):
    assert _count(resnet18_classifier(in_channels=in_channels, num_classes=num_classes)) == expected


@pytest.mark.parametrize("in_channels, num_classes", [(3, 1000), (1, 2), (3, 2)])
def test_names_and_shapes_equal_torchvision(in_channels, num_classes):
    model = resnet18_classifier(in_channels=in_channels, num_classes=num_classes)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == torchvision_resnet18_layout(in_channels=in_channels, num_classes=num_classes)


def test_forward_equals_functional_reference():
    torch.manual_seed(0)
    model = resnet18_classifier(in_channels=3, num_classes=5).eval()
    with torch.no_grad():  # non-trivial BN statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.1, 0.1)
    x = torch.randn(2, 3, 67, 61)
    with torch.no_grad():
        torch.testing.assert_close(model(x), resnet18_forward(model.state_dict(), x), rtol=1e-4, atol=1e-4)


def test_head_is_dropout_then_linear():
    model = resnet18_classifier(dropout=0.1)
    assert isinstance(model.dropout, torch.nn.Dropout) and model.dropout.p == 0.1
    assert model.fc.out_features == 2 and model.fc.in_features == 512
    assert model.eval()(torch.zeros(3, 1, 32, 32)).shape == (3, 2)


def _torchvision_file(tmp_path, *, in_channels=3, num_classes=1000, seed=0, edit=None):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in torchvision_resnet18_layout(in_channels=in_channels, num_classes=num_classes):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.05
    if edit is not None:
        state = edit(state)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    return path, state


def test_load_torchvision_file_one_channel(tmp_path):
    path, state = _torchvision_file(tmp_path)
    torch.manual_seed(1)
    model = resnet18_classifier(in_channels=1, weights=path)
    ours = model.state_dict()
    torch.testing.assert_close(ours["conv1.weight"], state["conv1.weight"].sum(dim=1, keepdim=True))
    for key, value in state.items():
        if key.startswith("fc.") or key == "conv1.weight":
            continue
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0)
    # the ImageNet head is replaced by a fresh 2-way layer
    assert ours["fc.weight"].shape == (2, 512)
    torch.manual_seed(1)
    fresh = resnet18_classifier(in_channels=1)
    torch.testing.assert_close(ours["fc.weight"], fresh.state_dict()["fc.weight"])


def test_grey_input_through_summed_conv1_equals_rgb_input(tmp_path):
    path, _ = _torchvision_file(tmp_path)
    grey = resnet18_classifier(in_channels=1, weights=path).eval()
    rgb = resnet18_classifier(in_channels=3, weights=path).eval()
    rgb.fc.load_state_dict(grey.fc.state_dict())
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_load_three_channels_and_matching_head(tmp_path):
    path, state = _torchvision_file(tmp_path, num_classes=2)
    ours = resnet18_classifier(in_channels=3, weights=path).state_dict()
    for key, value in state.items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0)


def test_load_from_mapping_and_other_channel_counts(tmp_path):
    _, state = _torchvision_file(tmp_path)
    model = resnet18_classifier(in_channels=4, weights=state)
    w = model.state_dict()["conv1.weight"]
    assert w.shape == (64, 4, 7, 7)
    # the response to a constant input equals the RGB kernel's response
    torch.testing.assert_close(w.sum(dim=1), state["conv1.weight"].sum(dim=1))


def test_file_without_num_batches_tracked_and_without_head_loads(tmp_path):
    def edit(s):
        return {k: v for k, v in s.items() if not k.endswith("num_batches_tracked") and not k.startswith("fc.")}

    path, state = _torchvision_file(tmp_path, edit=edit)
    ours = resnet18_classifier(weights=path).state_dict()
    torch.testing.assert_close(ours["layer4.1.bn2.running_var"], state["layer4.1.bn2.running_var"])


def _rename(old, new):
    def edit(s):
        return {(new if k == old else k): v for k, v in s.items()}
    return edit


@pytest.mark.parametrize(
    "edit, exc, match",
    [
        (_rename("layer2.0.downsample.0.weight", "layer2.0.shortcut.0.weight"), ValueError,
         "weights: unexpected key 'layer2.0.shortcut.0.weight', not a torchvision resnet18 name"),
        (lambda s: {**s, "layer3.1.conv2.weight": torch.zeros(256, 256, 1, 1)}, ValueError,
         r"weights: key 'layer3.1.conv2.weight' expected shape \(256, 256, 3, 3\), got \(256, 256, 1, 1\)"),
        (lambda s: {k: v for k, v in s.items() if k != "layer1.1.bn1.running_mean"}, ValueError,
         "weights: missing key 'layer1.1.bn1.running_mean'"),
        (lambda s: {f"module.{k}": v for k, v in s.items()}, ValueError,
         r"weights: unexpected key 'module.conv1.weight'.*strip the 'module.' prefix"),
        (lambda s: {**s, "conv1.weight": torch.zeros(64, 3, 3, 3)}, ValueError,
         r"weights: key 'conv1.weight' expected shape \(64, 1, 7, 7\), got \(64, 3, 3, 3\)"),
        (lambda s: [1, 2, 3], TypeError, "weights: expected the file to hold a state dict \\(a mapping\\), got list"),
        (lambda s: {**s, "bn1.weight": [1.0]}, TypeError, "expected a state dict of str -> Tensor, got str -> list"),
    ],
)
def test_mismatched_file_names_first_bad_key(tmp_path, edit, exc, match):
    path, _ = _torchvision_file(tmp_path, edit=edit)
    with pytest.raises(exc, match=match):
        resnet18_classifier(in_channels=1, weights=path)


def test_first_bad_key_in_file_order(tmp_path):
    def edit(s):
        s = dict(s)
        s["layer1.0.conv1.weight"] = torch.zeros(1)
        s["layer4.0.conv1.weight"] = torch.zeros(1)
        return s

    path, _ = _torchvision_file(tmp_path, edit=edit)
    with pytest.raises(ValueError, match="'layer1.0.conv1.weight'"):
        resnet18_classifier(weights=path)


def test_strict_head(tmp_path):
    path, _ = _torchvision_file(tmp_path)
    with pytest.raises(ValueError, match=r"weights: key 'fc.weight' expected shape \(2, 512\), got \(1000, 512\)"):
        load_torchvision_state_dict(ResNet18(), path, strict_head=True)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"in_channels": 0}, ValueError, "in_channels: expected an int >= 1, got 0"),
        ({"in_channels": 1.0}, TypeError, "in_channels: expected an int, got float"),
        ({"num_classes": 0}, ValueError, "num_classes: expected an int >= 1, got 0"),
        ({"dropout": 1.0}, ValueError, r"dropout: expected a value in \[0, 1\), got 1"),
        ({"weights": 3}, TypeError, "weights: expected a path, a state dict or None, got int"),
        ({"weights": "/nonexistent/resnet18.pth"}, FileNotFoundError, "weights are never downloaded"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        resnet18_classifier(**kwargs)
