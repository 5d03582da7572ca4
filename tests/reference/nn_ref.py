"""Slow, obviously correct references for ispad_core.nn, written from the definitions.

- ``torchvision_resnet18_layout``: the ``state_dict`` keys and shapes of
  ``torchvision.models.resnet18(num_classes=...)``, spelled out from torchvision's source
  (``ResNet.__init__``, ``_make_layer``, ``BasicBlock``), in registration order.
- ``resnet18_forward``: ResNet-18 inference written with ``torch.nn.functional`` on a state dict.
- ``smooth_reference``: the paper's preprocessing on uint8 with scipy.ndimage.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi


def _bn(prefix: str, c: int) -> list:
    return [
        (f"{prefix}.weight", (c,)),
        (f"{prefix}.bias", (c,)),
        (f"{prefix}.running_mean", (c,)),
        (f"{prefix}.running_var", (c,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


def torchvision_resnet18_layout(*, in_channels: int = 3, num_classes: int = 1000) -> list:
    """[(key, shape)] of torchvision's resnet18 state dict."""
    out = [("conv1.weight", (64, in_channels, 7, 7)), *_bn("bn1", 64)]
    inplanes = 64
    for layer, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        for block in range(2):
            p = f"layer{layer}.{block}"
            s = stride if block == 0 else 1
            cin = inplanes if block == 0 else planes
            out += [(f"{p}.conv1.weight", (planes, cin, 3, 3)), *_bn(f"{p}.bn1", planes)]
            out += [(f"{p}.conv2.weight", (planes, planes, 3, 3)), *_bn(f"{p}.bn2", planes)]
            if block == 0 and (s != 1 or cin != planes):
                out += [(f"{p}.downsample.0.weight", (planes, cin, 1, 1)), *_bn(f"{p}.downsample.1", planes)]
        inplanes = planes
    out += [("fc.weight", (num_classes, 512)), ("fc.bias", (num_classes,))]
    return out


def resnet18_forward(state: dict, x):
    """Eval-mode ResNet-18 logits from a torchvision-layout state dict, with torch.nn.functional."""
    import torch.nn.functional as F

    def bn(t, p):
        return F.batch_norm(t, state[f"{p}.running_mean"], state[f"{p}.running_var"], state[f"{p}.weight"],
                            state[f"{p}.bias"], training=False, eps=1e-5)

    x = F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for layer, stride in zip(range(1, 5), (1, 2, 2, 2)):
        for block in range(2):
            p = f"layer{layer}.{block}"
            s = stride if block == 0 else 1
            identity = x
            if f"{p}.downsample.0.weight" in state:
                identity = bn(F.conv2d(x, state[f"{p}.downsample.0.weight"], stride=s), f"{p}.downsample.1")
            out = F.relu(bn(F.conv2d(x, state[f"{p}.conv1.weight"], stride=s, padding=1), f"{p}.bn1"))
            out = bn(F.conv2d(out, state[f"{p}.conv2.weight"], stride=1, padding=1), f"{p}.bn2")
            x = F.relu(out + identity)
    x = x.mean(dim=(2, 3))
    return F.linear(x, state["fc.weight"], state["fc.bias"])


def preprocess_reference(images: np.ndarray, brightness: float, ksize: int, sigma: float) -> np.ndarray:
    """uint8 (N, H, W[, C]) -> grey levels as float64: brightness with saturation, rounded half up,
    then scipy.ndimage.gaussian_filter (mode "reflect", radius ksize // 2) in float64, rounded half up."""
    x = images.astype(np.float64)
    if brightness != 1.0:
        x = np.clip(np.floor(x * brightness + 0.5), 0, 255)
    if ksize > 1:
        r = ksize // 2
        sig = (0, sigma, sigma) if images.ndim == 3 else (0, sigma, sigma, 0)
        x = ndi.gaussian_filter(x, sigma=sig, mode="reflect", truncate=r / sigma)
        x = np.clip(np.floor(x + 0.5), 0, 255)
    return x
