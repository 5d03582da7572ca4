"""ResNet-18 patch classifier with torchvision's parameter names, and local weight loading.

Our own implementation of ResNet-18 (He et al. 2016; BasicBlock, layers ``[2, 2, 2, 2]``) whose
``state_dict`` keys and shapes are exactly those of ``torchvision.models.resnet18`` (``conv1``,
``bn1``, ``layer1.0.conv1``, ..., ``layer2.0.downsample.0``, ``fc``), so ImageNet weights saved by
torchvision load from a local file. torchvision is not a dependency and nothing is downloaded.
The paper's head (section 4.2) replaces the 1000-way ``fc`` by dropout 0.1 and a 2-way layer.
:func:`load_torchvision_state_dict` loads torchvision-layout files into this network and into the
other backbones of :mod:`ispad_core.nn.backbones` (grey stem summed over RGB, new head).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_float, check_int

__all__ = ["ResNet18", "load_torchvision_state_dict", "resnet18_classifier"]


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions with a residual connection (torchvision's ``BasicBlock``)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 with a dropout + linear head; see :func:`resnet18_classifier`."""

    #: torchvision's name of the architecture, and the keys that loading its weights adapts
    #: (the stem convolution, summed over RGB for one channel, and the replaced head)
    arch = "resnet18"
    stem_key = "conv1.weight"
    head_keys = ("fc.weight", "fc.bias")

    def __init__(self, *, in_channels: int = 1, num_classes: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 64, stride=1)
        self.layer2 = self._make_layer(64, 128, stride=2)
        self.layer3 = self._make_layer(128, 256, stride=2)
        self.layer4 = self._make_layer(256, 512, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        # Dropout has no parameters, so the state_dict keeps torchvision's names (fc.weight, fc.bias).
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(512, num_classes)
        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _make_layer(inplanes: int, planes: int, *, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled 512-d embedding before the head, shape ``(B, 512)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(B, num_classes)`` for a float batch ``(B, in_channels, H, W)``."""
        return self.fc(self.dropout(self.features(x)))


def resnet18_classifier(
    *,
    in_channels: int = 1,
    num_classes: int = 2,
    dropout: float = 0.1,
    weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None,
) -> ResNet18:
    """The paper's classifier: ResNet-18 with a dropout + ``num_classes``-way linear head.

    Parameter names and shapes equal torchvision's ``resnet18`` (11 177 538 parameters for three
    input channels and two classes, 11 171 266 for one channel), so weights saved by torchvision
    (``torch.save(torchvision.models.resnet18(weights="IMAGENET1K_V1").state_dict(), path)``) load
    from a local file. Nothing is downloaded.

    Parameters
    ----------
    in_channels : int, default 1
        Channels of the input patches (1 for grey, 3 for colour).
    num_classes : int, default 2
        Outputs of the head (the paper uses 2: good, defective).
    dropout : float, default 0.1
        Dropout rate before the final linear layer, in ``[0, 1)``.
    weights : path, state dict or None
        A local file holding a state dict in torchvision's layout (or the dict itself). See
        :func:`load_torchvision_state_dict` for how ``conv1`` and ``fc`` are adapted.
        ``None`` keeps torchvision's random initialisation (seed it with ``torch.manual_seed``).

    Returns
    -------
    ResNet18
        An ``nn.Module`` in training mode mapping ``(B, in_channels, H, W)`` float to
        ``(B, num_classes)`` logits.

    Raises
    ------
    TypeError
        If an argument has the wrong type or ``weights`` does not hold a state dict.
    ValueError
        If an argument is out of range or a key of ``weights`` does not fit (the message names
        the first bad key).

    Examples
    --------
    >>> import torch
    >>> from ispad_core.nn import resnet18_classifier
    >>> model = resnet18_classifier(in_channels=1)
    >>> sum(p.numel() for p in model.parameters())
    11171266
    >>> model.eval()(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 2])
    """
    in_channels = check_int(in_channels, "in_channels", minimum=1)
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    dropout = check_float(dropout, "dropout", minimum=0.0, maximum=1.0, max_inclusive=False)
    model = ResNet18(in_channels=in_channels, num_classes=num_classes, dropout=dropout)
    if weights is not None:
        load_torchvision_state_dict(model, weights)
    return model


def _read_state_dict(weights: Any) -> Mapping[str, torch.Tensor]:
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights: no such file {path!r} (weights are never downloaded)")
        state = torch.load(path, map_location="cpu", weights_only=True)
    elif isinstance(weights, Mapping):
        state = weights
    else:
        raise InputTypeError(f"weights: expected a path, a state dict or None, got {type(weights).__name__}")
    if not isinstance(state, Mapping):
        raise InputTypeError(f"weights: expected the file to hold a state dict (a mapping), got {type(state).__name__}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputTypeError(
                f"weights: expected a state dict of str -> Tensor, got {type(key).__name__} -> {type(value).__name__} "
                f"at key {key!r}"
            )
    return state


def _adapt_stem(w: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB kernels -> ``in_channels`` kernels that respond to a grey image as the RGB kernels do.

    One channel gets the sum over RGB (the paper's grey-scale adaptation); ``k`` channels each get
    that sum divided by ``k``.
    """
    if w.shape[1] == in_channels:
        return w
    grey = w.sum(dim=1, keepdim=True)
    return grey.repeat(1, in_channels, 1, 1) / in_channels


def _layout(model: nn.Module) -> tuple[str, str | None, tuple[str, ...]]:
    """``(arch, stem_key, head_keys)`` of a model: its class attributes, else found by structure.

    The fallback takes the first 4-D ``*.weight`` of the state dict as the stem (true of every
    torchvision classifier) and the parameters of the last ``nn.Linear`` as the head.
    """
    arch = getattr(model, "arch", None)
    stem = getattr(model, "stem_key", None)
    head = getattr(model, "head_keys", None)
    if arch is not None and stem is not None and head is not None:
        return str(arch), str(stem), tuple(head)
    own = model.state_dict()
    stem = next((k for k, v in own.items() if k.endswith(".weight") and v.ndim == 4), None)
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    head = ()
    if names:
        prefix = f"{names[-1]}." if names[-1] else ""
        head = tuple(k for k in (f"{prefix}weight", f"{prefix}bias") if k in own)
    return type(model).__name__, stem, head


def load_torchvision_state_dict(model: nn.Module, weights: Any, *, strict_head: bool = False) -> nn.Module:
    """Load a torchvision-layout state dict into ``model`` (in place; returns it).

    Works for every backbone of :func:`ispad_core.nn.classifier` (ResNet-18/50: stem
    ``conv1.weight``, head ``fc.*``; EfficientNet-B0/B4 and ConvNeXt-Tiny: stem
    ``features.0.0.weight``, heads ``classifier.1.*`` and ``classifier.2.*``) and for other
    modules in the same spirit (stem: the first 4-D weight; head: the last ``nn.Linear``).

    * The stem kernels saved for 3 channels are summed over RGB when the model has one input
      channel; for another channel count ``k`` each channel gets that sum divided by ``k`` (so a
      grey image repeated over the channels gives the response of the RGB kernels).
    * The head's weight and bias are loaded when their shapes match the model's head and dropped
      otherwise (the ImageNet 1000-way head), leaving the model's freshly initialised head.
    * ``num_batches_tracked`` buffers may be missing (older files).

    Every other key must be present with the model's shape; the first bad key, in the file's
    order, is named in the error.

    Parameters
    ----------
    model : nn.Module
        The model to fill, e.g. from :func:`resnet18_classifier` or
        :func:`ispad_core.nn.classifier`.
    weights : path or mapping
        A file written by ``torch.save(state_dict, path)`` (read with ``weights_only=True``) or
        the mapping itself.
    strict_head : bool, default False
        If True, a head of another shape is an error instead of being replaced.

    Returns
    -------
    nn.Module
        ``model`` itself.

    Raises
    ------
    FileNotFoundError
        If ``weights`` names a file that does not exist.
    TypeError
        If ``weights`` does not hold a mapping of str to tensors.
    ValueError
        For an unexpected key, a missing key or a shape mismatch, naming the first such key.

    Examples
    --------
    >>> import torch
    >>> from ispad_core.nn import ResNet18, load_torchvision_state_dict
    >>> rgb = ResNet18(in_channels=3, num_classes=1000).state_dict()  # torchvision's layout
    >>> grey = load_torchvision_state_dict(ResNet18(in_channels=1), rgb)
    >>> torch.equal(grey.conv1.weight, rgb["conv1.weight"].sum(dim=1, keepdim=True))
    True
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    state = _read_state_dict(weights)
    arch, stem_key, head_keys = _layout(model)
    own = model.state_dict()
    new: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in own:
            hint = ""
            if key.startswith("module."):
                hint = " (saved from a DataParallel/DDP wrapper: strip the 'module.' prefix)"
            raise InputValueError(f"weights: unexpected key {key!r}, not a torchvision {arch} name{hint}")
        want = tuple(own[key].shape)
        if (
            key == stem_key
            and value.ndim == 4
            and len(want) == 4
            and tuple(value.shape[2:]) == want[2:]
            and value.shape[0] == want[0]
        ):
            value = _adapt_stem(value, want[1])
        if key in head_keys and tuple(value.shape) != want and not strict_head:
            continue  # the ImageNet head is replaced by ours
        if tuple(value.shape) != want:
            raise InputValueError(
                f"weights: key {key!r} expected shape {want}, got {tuple(value.shape)}"
            )
        new[key] = value.to(own[key].dtype)
    for key in own:
        if key not in state and not key.endswith("num_batches_tracked") and key not in head_keys:
            raise InputValueError(f"weights: missing key {key!r}")
    if any(k in state and k not in new for k in head_keys):  # half a head would be inconsistent
        for k in head_keys:
            new.pop(k, None)
    model.load_state_dict(new, strict=False)
    return model
