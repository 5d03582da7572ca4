"""The paper's five backbones (table 2) with torchvision's parameter names, and factory backbones.

:func:`classifier` builds ResNet-18, ResNet-50, EfficientNet-B0, EfficientNet-B4 or ConvNeXt-Tiny
with the paper's head (dropout, then a ``num_classes``-way linear layer) and, optionally, ImageNet
weights from a local file in torchvision's state-dict layout. The networks are our own torch code:
torchvision is not a dependency (its wheels need the CUDA build of torch to import) and nothing is
downloaded. Their ``state_dict`` keys, shapes and parameter counts equal those of
``torchvision.models.<name>()`` (torchvision 0.28), their forward pass computes what
torchvision's does (same blocks, batch-norm and layer-norm settings, stochastic depth), and the
head keeps torchvision's key names (``fc.*``, ``classifier.1.*``, ``classifier.2.*``), so a file
written by ``torch.save(torchvision.models.<name>(weights=...).state_dict(), path)`` loads.

Any other ``torch.nn.Module`` can be a backbone too: name an importable factory
``"package.module:function"``; see :func:`classifier` for its calling convention.
"""

from __future__ import annotations

import copy
import importlib
import math
import numbers
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_float, check_int
from ispad_core.nn.model import ResNet18, load_torchvision_state_dict

__all__ = [
    "BACKBONES",
    "ConvNeXt",
    "EfficientNet",
    "ResNet50",
    "classifier",
    "import_factory",
    "is_factory",
]

BACKBONES: tuple[str, ...] = ("resnet18", "resnet50", "efficientnet_b0", "efficientnet_b4", "convnext_tiny")
"""Names of the built-in backbones (the paper's table 2), as torchvision spells them."""

_FACTORY_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# --------------------------------------------------------------------------- shared blocks


class StochasticDepth(nn.Module):
    """Drop the whole residual branch of a sample with probability ``p`` while training.

    torchvision's ``StochasticDepth(p, mode="row")``: each sample's branch is kept with
    probability ``1 - p`` and then scaled by ``1 / (1 - p)``; identity in eval mode or for
    ``p == 0``. Draws from torch's global generator, as dropout does.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)
        noise.bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _conv_norm_act(
    in_ch: int,
    out_ch: int,
    kernel: int,
    *,
    stride: int = 1,
    groups: int = 1,
    padding: int | None = None,
    norm: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
    act: Callable[..., nn.Module] | None = nn.SiLU,
    bias: bool | None = None,
) -> nn.Sequential:
    """torchvision's ``Conv2dNormActivation``: keys ``0`` (conv), ``1`` (norm)."""
    if padding is None:
        padding = (kernel - 1) // 2
    if bias is None:
        bias = norm is None
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=bias)]
    if norm is not None:
        layers.append(norm(out_ch))
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- ResNet-50


class Bottleneck(nn.Module):
    """1 x 1, 3 x 3 (strided), 1 x 1 convolutions with a residual (torchvision's ``Bottleneck``, V1.5)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class ResNet50(ResNet18):
    """ResNet-50 (Bottleneck blocks ``[3, 4, 6, 3]``) with a dropout + linear head.

    Same stem, pooling, ``features`` method and head (``fc``, 2048 inputs) as :class:`ResNet18`.
    """

    arch = "resnet50"

    def __init__(self, *, in_channels: int = 1, num_classes: int = 2, dropout: float = 0.1) -> None:
        nn.Module.__init__(self)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for i, (planes, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]):
            layers = []
            for b in range(blocks):
                layers.append(Bottleneck(inplanes, planes, stride if b == 0 else 1))
                inplanes = planes * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- EfficientNet


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: round to a multiple of ``divisor``, losing < 10 %."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@dataclass
class _MBConvConfig:
    expand_ratio: float
    kernel: int
    stride: int
    input_channels: int
    out_channels: int
    num_layers: int


class SqueezeExcitation(nn.Module):
    """Channel attention: global mean -> 1 x 1 conv -> SiLU -> 1 x 1 conv -> sigmoid -> scale."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class MBConv(nn.Module):
    """Inverted residual with squeeze-and-excitation (torchvision's ``MBConv``)."""

    def __init__(self, cnf: _MBConvConfig, stochastic_depth_prob: float) -> None:
        super().__init__()
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        expanded = _make_divisible(cnf.input_channels * cnf.expand_ratio)
        layers: list[nn.Module] = []
        if expanded != cnf.input_channels:
            layers.append(_conv_norm_act(cnf.input_channels, expanded, 1))
        layers.append(_conv_norm_act(expanded, expanded, cnf.kernel, stride=cnf.stride, groups=expanded))
        layers.append(SqueezeExcitation(expanded, max(1, cnf.input_channels // 4)))
        layers.append(_conv_norm_act(expanded, cnf.out_channels, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)
        self.out_channels = cnf.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if self.use_res_connect:
            y = self.stochastic_depth(y) + x
        return y


_EFFICIENTNET = {  # width multiplier, depth multiplier (torchvision's efficientnet_b0 / _b4)
    "efficientnet_b0": (1.0, 1.0),
    "efficientnet_b4": (1.4, 1.8),
}


class EfficientNet(nn.Module):
    """EfficientNet-B0 or -B4 (torchvision's ``EfficientNet``) with a dropout + linear head.

    ``features`` (stem ``features.0``, seven MBConv stages, 1 x 1 head convolution), global
    average pooling, ``classifier = Sequential(Dropout(dropout), Linear(1280 or 1792, num_classes))``.
    Batch norm with torch's defaults (eps 1e-5, momentum 0.1), as torchvision uses for B0 to B4;
    stochastic depth rising linearly from 0 to ``stochastic_depth_prob`` over the blocks.
    """

    stem_key = "features.0.0.weight"
    head_keys = ("classifier.1.weight", "classifier.1.bias")

    def __init__(
        self,
        arch: str = "efficientnet_b0",
        *,
        in_channels: int = 1,
        num_classes: int = 2,
        dropout: float = 0.1,
        stochastic_depth_prob: float = 0.2,
    ) -> None:
        super().__init__()
        if arch not in _EFFICIENTNET:
            raise InputValueError(f"arch: expected one of {', '.join(_EFFICIENTNET)}, got {arch!r}")
        width, depth = _EFFICIENTNET[arch]
        self.arch = arch
        self.in_channels = in_channels
        self.num_classes = num_classes

        def conf(e: float, k: int, s: int, i: int, o: int, n: int) -> _MBConvConfig:
            return _MBConvConfig(
                e, k, s, _make_divisible(i * width), _make_divisible(o * width), int(math.ceil(n * depth))
            )

        setting = [
            conf(1, 3, 1, 32, 16, 1),
            conf(6, 3, 2, 16, 24, 2),
            conf(6, 5, 2, 24, 40, 2),
            conf(6, 3, 2, 40, 80, 3),
            conf(6, 5, 1, 80, 112, 3),
            conf(6, 5, 2, 112, 192, 4),
            conf(6, 3, 1, 192, 320, 1),
        ]
        layers: list[nn.Module] = [_conv_norm_act(in_channels, setting[0].input_channels, 3, stride=2)]
        total = sum(c.num_layers for c in setting)
        block_id = 0
        for cnf in setting:
            stage = []
            for _ in range(cnf.num_layers):
                c = copy.copy(cnf)
                if stage:
                    c.input_channels = c.out_channels
                    c.stride = 1
                stage.append(MBConv(c, stochastic_depth_prob * float(block_id) / total))
                block_id += 1
            layers.append(nn.Sequential(*stage))
        last_in = setting[-1].out_channels
        last_out = 4 * last_in
        layers.append(_conv_norm_act(last_in, last_out, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(last_out, num_classes))
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(B, num_classes)`` for a float batch ``(B, in_channels, H, W)``."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# --------------------------------------------------------------------------- ConvNeXt


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of a ``(B, C, H, W)`` tensor (torchvision's ``LayerNorm2d``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Permute(nn.Module):
    """``x.permute(*dims)`` as a module (torchvision's ``Permute``)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = list(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)


class CNBlock(nn.Module):
    """ConvNeXt block: depthwise 7 x 7, layer norm, MLP x 4 with GELU, layer scale, stochastic depth."""

    def __init__(self, dim: int, layer_scale: float, stochastic_depth_prob: float) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True),
            Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Linear(4 * dim, dim),
            Permute([0, 3, 1, 2]),
        )
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * layer_scale)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stochastic_depth(self.layer_scale * self.block(x)) + x


class ConvNeXt(nn.Module):
    """ConvNeXt-Tiny (torchvision's ``convnext_tiny``) with a dropout + linear head.

    Stem ``features.0`` (4 x 4 patchify convolution, ``LayerNorm2d``), four stages of
    :class:`CNBlock` (3, 3, 9, 3 blocks of 96, 192, 384, 768 channels) with down-sampling layers
    between them, global average pooling, and
    ``classifier = Sequential(LayerNorm2d(768), Sequential(Flatten, Dropout(dropout)), Linear(768, num_classes))``
    (the dropout has no parameters, so the keys stay torchvision's ``classifier.0.*`` and
    ``classifier.2.*``). Layer norms use eps 1e-6; stochastic depth rises linearly from 0 to
    ``stochastic_depth_prob``.
    """

    arch = "convnext_tiny"
    stem_key = "features.0.0.weight"
    head_keys = ("classifier.2.weight", "classifier.2.bias")

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 2,
        dropout: float = 0.1,
        stochastic_depth_prob: float = 0.1,
        layer_scale: float = 1e-6,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        norm = partial(LayerNorm2d, eps=1e-6)
        setting = [(96, 192, 3), (192, 384, 3), (384, 768, 9), (768, None, 3)]
        layers: list[nn.Module] = [
            _conv_norm_act(in_channels, setting[0][0], 4, stride=4, padding=0, norm=norm, act=None, bias=True)
        ]
        total = sum(n for _, _, n in setting)
        block_id = 0
        for dim, out, n in setting:
            stage = []
            for _ in range(n):
                stage.append(CNBlock(dim, layer_scale, stochastic_depth_prob * block_id / (total - 1.0)))
                block_id += 1
            layers.append(nn.Sequential(*stage))
            if out is not None:
                layers.append(nn.Sequential(norm(dim), nn.Conv2d(dim, out, kernel_size=2, stride=2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last = setting[-1][0]
        self.classifier = nn.Sequential(
            norm(last), nn.Sequential(nn.Flatten(1), nn.Dropout(p=dropout)), nn.Linear(last, num_classes)
        )
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(B, num_classes)`` for a float batch ``(B, in_channels, H, W)``."""
        return self.classifier(self.avgpool(self.features(x)))


# --------------------------------------------------------------------------- the entry point


def _build_resnet18(**kw: Any) -> nn.Module:
    return ResNet18(**kw)


def _build_resnet50(**kw: Any) -> nn.Module:
    return ResNet50(**kw)


_BUILTIN: dict[str, tuple[Callable[..., nn.Module], tuple[str, ...]]] = {
    # name: (builder(in_channels=, num_classes=, dropout=, **options), accepted options)
    "resnet18": (_build_resnet18, ()),
    "resnet50": (_build_resnet50, ()),
    "efficientnet_b0": (partial(EfficientNet, "efficientnet_b0"), ("stochastic_depth_prob",)),
    "efficientnet_b4": (partial(EfficientNet, "efficientnet_b4"), ("stochastic_depth_prob",)),
    "convnext_tiny": (ConvNeXt, ("stochastic_depth_prob", "layer_scale")),
}
assert tuple(_BUILTIN) == BACKBONES


def is_factory(backbone: str) -> bool:
    """Whether ``backbone`` has the form of a factory name ``"package.module:function"``.

    Examples
    --------
    >>> from ispad_core.nn.backbones import is_factory
    >>> is_factory("resnet18"), is_factory("mypkg.nets:small_cnn")
    (False, True)
    """
    return isinstance(backbone, str) and _FACTORY_RE.match(backbone) is not None


def import_factory(spec: str, *, name: str = "backbone") -> Callable[..., Any]:
    """Import the callable named ``"package.module:function"`` (attribute paths allowed after ``:``).

    This imports, and so runs, the module's code: call it only for names the user gave.

    Raises
    ------
    TypeError
        If ``spec`` is not a str or does not name a callable.
    ValueError
        If ``spec`` is not of the form ``"package.module:function"`` or cannot be imported.

    Examples
    --------
    >>> from ispad_core.nn.backbones import import_factory
    >>> import_factory("math:sqrt")(16.0)
    4.0
    """
    if not isinstance(spec, str):
        raise InputTypeError(f"{name}: expected a str, got {type(spec).__name__}")
    if not _FACTORY_RE.match(spec):
        raise InputValueError(f"{name}: expected a factory name 'package.module:function', got {spec!r}")
    module_name, attr = spec.split(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputValueError(f"{name}: cannot import the module {module_name!r} of the factory {spec!r}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputValueError(f"{name}: the module {module_name!r} has no attribute {attr!r} (factory {spec!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputTypeError(f"{name}: the factory {spec!r} is not callable, got {type(obj).__name__}")
    return obj


def classifier(
    backbone: str = "resnet18",
    *,
    in_channels: int = 1,
    num_classes: int = 2,
    dropout: float = 0.1,
    weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A patch classifier: one of the paper's backbones (or a factory's) with a dropout + linear head.

    The built-in backbones (:data:`BACKBONES`) are written here with torchvision's parameter
    names and shapes; with ``in_channels=3, num_classes=1000`` their parameter counts are
    torchvision's (resnet18 11 689 512, resnet50 25 557 032, efficientnet_b0 5 288 548,
    efficientnet_b4 19 341 616, convnext_tiny 28 589 128). The head is dropout followed by a
    ``num_classes``-way linear layer under torchvision's key names (``fc.*`` for the ResNets,
    ``classifier.1.*`` for the EfficientNets, ``classifier.2.*`` for ConvNeXt). Initialisation is
    torchvision's; seed it with ``torch.manual_seed``.

    A factory backbone ``"package.module:function"`` is imported and called as
    ``function(in_channels=in_channels, num_classes=num_classes, dropout=dropout, **kwargs)``;
    it must return a ``torch.nn.Module`` mapping ``(B, in_channels, H, W)`` to
    ``(B, num_classes)`` logits. Use it to train any other network (from timm, torchvision or
    your own code) with this library; the model file records the name and the ``kwargs``, which
    therefore must be JSON-safe. Loading such a model file again needs an explicit opt-in
    (``load_model(path, allow_factory="package.module:function")``), because it imports code.

    Parameters
    ----------
    backbone : str, default "resnet18"
        One of :data:`BACKBONES` or an importable factory ``"package.module:function"``.
    in_channels : int, default 1
        Channels of the input patches (1 for grey, 3 for colour).
    num_classes : int, default 2
        Outputs of the head (the paper uses 2: good, defective).
    dropout : float, default 0.1
        Dropout rate before the final linear layer, in ``[0, 1)``.
    weights : path, state dict or None
        Pretrained weights in torchvision's layout, from a local file (read with
        ``weights_only=True``) or the dict itself; nothing is downloaded. For one input channel
        the stem kernels (``conv1.weight`` or ``features.0.0.weight``) are summed over RGB; a
        1000-way head is dropped (see :func:`ispad_core.nn.load_torchvision_state_dict`).
        Built-in backbones only: a factory loads its own weights (pass a path in ``kwargs``).
    **kwargs
        Built-in backbones: ``stochastic_depth_prob`` for the EfficientNets (default 0.2) and
        ConvNeXt (default 0.1), ``layer_scale`` for ConvNeXt (default 1e-6); the ResNets take
        none. Factories: passed on to the factory.

    Returns
    -------
    torch.nn.Module
        In training mode; maps ``(B, in_channels, H, W)`` float32 to ``(B, num_classes)`` logits.
        A built-in model carries ``in_channels``, ``num_classes`` and ``arch`` attributes.

    Raises
    ------
    TypeError
        If an argument has the wrong type, a keyword is not accepted by the backbone, or a factory
        does not return a ``torch.nn.Module``.
    ValueError
        If ``backbone`` is neither a built-in name nor a factory name, a factory cannot be
        imported, an argument is out of range, or ``weights`` does not fit (naming the key).
    FileNotFoundError
        If ``weights`` names a missing file.

    Examples
    --------
    >>> import torch
    >>> from ispad_core.nn import classifier
    >>> model = classifier("efficientnet_b0", in_channels=1).eval()
    >>> model(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 2])
    >>> sum(p.numel() for p in classifier("convnext_tiny", in_channels=3, num_classes=1000).parameters())
    28589128
    """
    if not isinstance(backbone, str):
        raise InputTypeError(f"backbone: expected a str (a built-in name or 'package.module:function'), got {type(backbone).__name__}")
    in_channels = check_int(in_channels, "in_channels", minimum=1)
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    dropout = check_float(dropout, "dropout", minimum=0.0, maximum=1.0, max_inclusive=False)
    if backbone in _BUILTIN:
        build, accepted = _BUILTIN[backbone]
        for key in kwargs:
            if key not in accepted:
                allowed = ", ".join(accepted) if accepted else "none"
                raise InputTypeError(
                    f"classifier: unexpected keyword argument {key!r} for backbone {backbone!r} (accepted: {allowed})"
                )
        if "stochastic_depth_prob" in kwargs:
            kwargs["stochastic_depth_prob"] = check_float(
                kwargs["stochastic_depth_prob"], "stochastic_depth_prob", minimum=0.0, maximum=1.0, max_inclusive=False
            )
        if "layer_scale" in kwargs:
            kwargs["layer_scale"] = check_float(kwargs["layer_scale"], "layer_scale")
        model = build(in_channels=in_channels, num_classes=num_classes, dropout=dropout, **kwargs)
        if weights is not None:
            load_torchvision_state_dict(model, weights)
        return model
    if not is_factory(backbone):
        raise InputValueError(
            f"backbone: expected one of {', '.join(BACKBONES)} or a factory 'package.module:function', got {backbone!r}"
        )
    if weights is not None:
        raise InputValueError(
            f"weights: only the built-in backbones load torchvision-layout weights; the factory {backbone!r} "
            "loads its own (pass their path as one of its keyword arguments)"
        )
    factory = import_factory(backbone)
    model = factory(in_channels=in_channels, num_classes=num_classes, dropout=dropout, **kwargs)
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"backbone: the factory {backbone!r} returned {type(model).__name__}, expected a torch.nn.Module")
    return model


def in_channels(model: Any) -> int:
    """The input channels of a model: its ``in_channels`` attribute, else its first Conv2d's."""
    value = getattr(model, "in_channels", None)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(model, nn.Module):
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                return m.in_channels
    raise InputValueError("model: cannot tell the number of input channels (no in_channels attribute, no Conv2d)")
