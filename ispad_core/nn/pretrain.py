"""In-domain self-supervised pretraining: a backbone learns the factory's own fault-free scans.

:func:`pretrain` trains one of the paper's backbones (:data:`ispad_core.nn.BACKBONES`) without
labels and without ImageNet weights, by masked-patch reconstruction (in the spirit of SimMIM):

1. random ``patch_size`` patches are cut from the fault-free scans inside their ROIs
   (:func:`ispad_core.tiling.random_patches`), given table-8 augmentation
   (:func:`ispad_core.augment.augment_batch`) and the training preprocessing
   (:func:`ispad_core.nn.preprocess_batch`), exactly as a synthetic stream's patches reach the
   network in :func:`ispad_core.nn.train_detector`;
2. the patch is cut into squares of ``mask_size`` pixels and half of them, drawn at random, are
   set to zero (the mean of the normalised input);
3. the backbone's feature extractor (everything before global pooling and the head) encodes the
   masked patch; a small decoder (a 1 x 1 projection, then one nearest-neighbour x 2 upsampling and
   3 x 3 convolution per halving of the resolution) predicts the patch;
4. the loss is the mean absolute error over the masked pixels only, so the network must infer
   hidden texture from its surroundings.

The decoder is discarded at the end. The returned state dict holds the backbone in torchvision's
layout without the classification head, so ``classifier(backbone, weights=...)``,
``TrainSettings(weights=...)`` and ``ispad train --weights`` load it as they load an ImageNet
file (the stem keeps the scans' channel count; a head is freshly initialised).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.progress import progress
from ispad_core._shared.validation import check_choice, check_int
from ispad_core.nn.backbones import BACKBONES, classifier
from ispad_core.nn.model import ResNet18
from ispad_core.nn.preprocessing import preprocess_batch, resolve_preprocess
from ispad_core.nn.training import torch_threads

__all__ = ["MASK_RATIO", "PRETRAIN_LR", "PretrainResult", "pretrain"]

#: The share of a patch's mask squares hidden from the encoder.
MASK_RATIO = 0.5
#: AdamW's peak learning rate (weight decay :data:`WEIGHT_DECAY`), after a linear warm-up over the
#: first tenth of the steps (at most 100), cosine-annealed to 1e-5.
PRETRAIN_LR = 1e-3
WEIGHT_DECAY = 0.05
#: Patches are drawn for this many steps at a time (one ROI integral image per scan and chunk).
_CHUNK_STEPS = 16


@dataclass(frozen=True)
class PretrainResult:
    """What :func:`pretrain` returns.

    Attributes
    ----------
    state_dict : dict of str to torch.Tensor
        The backbone's weights in torchvision's layout, on the CPU, without the head (``fc.*``,
        ``classifier.1.*`` or ``classifier.2.*``): what ``--weights`` takes.
    backbone : str
        The built-in backbone's name.
    losses : numpy.ndarray of float64, shape (steps,)
        The masked-pixel L1 loss of every step.
    seconds : float
        Wall time of the steps (drawing patches included, building the network not).
    settings : dict
        The settings of the run (JSON-safe).
    """

    state_dict: dict = field(repr=False)
    backbone: str
    losses: np.ndarray = field(repr=False)
    seconds: float
    settings: dict = field(repr=False)

    @property
    def steps_per_s(self) -> float:
        """Optimizer steps per second."""
        return len(self.losses) / self.seconds if self.seconds > 0 else float("inf")

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, name: str = "path") -> None:
        """Write :attr:`state_dict` with ``torch.save`` atomically (nothing at ``path`` if it fails).

        The file is what ``weights=`` and ``ispad train --weights`` read. An existing file is
        replaced only with ``overwrite``; ``name`` is the argument's name in error messages.
        """
        from ispad_core._shared.files import atomic_output

        with atomic_output(path, name=name, overwrite=overwrite) as tmp:
            torch.save(self.state_dict, tmp)

    def __str__(self) -> str:
        n = len(self.losses)
        k = max(1, min(50, n // 10))
        first, last = float(np.mean(self.losses[:k])), float(np.mean(self.losses[-k:]))
        return (f"pretrained {self.backbone}: {n} steps of batch {self.settings['batch_size']} "
                f"({self.settings['patch_size']} x {self.settings['patch_size']} patches), masked-pixel L1 loss "
                f"{first:.3f} -> {last:.3f} (mean of the first and last {k} steps), {self.seconds:.0f} s "
                f"({self.steps_per_s:.2f} steps/s)")


# --------------------------------------------------------------------------- the networks


def feature_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The spatial features of a built-in backbone: everything before global pooling and the head.

    ``(B, C, H, W)`` -> ``(B, F, H / 32, W / 32)`` (512 channels for ResNet-18, 2048 for ResNet-50,
    1280 / 1792 for EfficientNet-B0 / B4, 768 for ConvNeXt-Tiny).
    """
    if isinstance(model, ResNet18):  # ResNet-50 too
        x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        return model.layer4(model.layer3(model.layer2(model.layer1(x))))
    return model.features(x)


class _Decoder(nn.Module):
    """1 x 1 projection to ``width`` channels, then ``log2(stride)`` x (upsample x 2, 3 x 3 conv,
    ReLU) halving the channels down to 16, and a 3 x 3 convolution to the image's channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, width: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 1), nn.ReLU(inplace=True)]
        ch = width
        for _ in range(int(round(math.log2(stride)))):
            nxt = max(16, ch // 2)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, nxt, 3, padding=1),
                       nn.ReLU(inplace=True)]
            ch = nxt
        layers.append(nn.Conv2d(ch, out_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _stride(model: nn.Module, channels: int, patch_size: int) -> int:
    """How many input pixels one feature cell spans (32 for every built-in backbone)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        h = feature_map(model, torch.zeros(1, channels, patch_size, patch_size)).shape[-1]
    model.train(was)
    stride = patch_size // h if h else 0
    if h == 0 or stride * h != patch_size or stride & (stride - 1):
        raise InputValueError(f"patch_size: {patch_size} gives a {h} x {h} feature map; use a multiple of 32")
    return stride


# --------------------------------------------------------------------------- the data


def _as_scans(images: Any, patch_size: int) -> tuple[list, list]:
    """``(images, rois)`` from paths, a :class:`ispad_core.io.Scans` or a sequence of arrays."""
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = [images]
    if hasattr(images, "images") and hasattr(images, "rois"):  # a Scans (read_scans)
        ims, rois = list(images.images), images.rois
    elif isinstance(images, (str, os.PathLike)) or (
        isinstance(images, Sequence) and len(images) and all(isinstance(p, (str, os.PathLike)) for p in images)
    ):
        from ispad_core.io import read_scans

        scans = read_scans(images, name="images", min_size=patch_size)
        ims, rois = scans.images, scans.rois
    elif isinstance(images, (Sequence, np.ndarray)) and not isinstance(images, (str, bytes)):
        ims, rois = list(images), None
    else:
        raise InputTypeError(f"images: expected folders or files, a Scans, or a list of uint8 arrays, got "
                             f"{type(images).__name__}")
    if not ims:
        raise InputValueError("images: no scans")
    shape_tail = None
    for i, im in enumerate(ims):
        if not isinstance(im, np.ndarray) or im.dtype != np.uint8:
            raise InputTypeError(f"images: scan {i} is not a uint8 array ({type(im).__name__} "
                                 f"{getattr(im, 'dtype', '')})")
        if im.ndim not in (2, 3) or (im.ndim == 3 and im.shape[2] not in (1, 3)):
            raise InputValueError(f"images: scan {i} has shape {im.shape}; expected (H, W) or (H, W, 3)")
        if min(im.shape[:2]) < patch_size:
            raise InputValueError(f"images: scan {i} of shape {im.shape} is smaller than patch_size {patch_size}")
        tail = im.shape[2:]
        if shape_tail is not None and tail != shape_tail:
            raise InputValueError(f"images: scan {i} has {im.shape} while scan 0 has channels {shape_tail}; all alike")
        shape_tail = tail
    if rois is None:
        rois = [None] * len(ims)
    return ims, list(rois)


class _PatchSource:
    """Augmented uint8 patches from the scans, deterministic from one numpy generator."""

    def __init__(self, images: list, rois: list, patch_size: int, augment: Any, rng: np.random.Generator) -> None:
        self.images, self.rois, self.size, self.augment, self.rng = images, rois, patch_size, augment, rng
        area = np.array([im.shape[0] * im.shape[1] if r is None else int(np.count_nonzero(r))
                         for im, r in zip(images, rois)], dtype=np.float64)
        if not area.sum():
            raise InputValueError("images: every ROI is empty")
        self.weights = area / area.sum()
        self.pool = np.empty((0,))
        self.at = 0

    def _refill(self, n: int) -> None:
        from ispad_core.tiling import random_patches

        counts = self.rng.multinomial(n, self.weights)
        parts = []
        for i, k in enumerate(counts):
            if k == 0:
                continue
            try:
                p, _ = random_patches(self.images[i], int(k), self.size, roi=self.rois[i], rng=self.rng)
            except ValueError as exc:
                raise InputValueError(f"images: scan {i}: {exc}") from None
            parts.append(p)
        pool = np.concatenate(parts)
        self.pool = pool[self.rng.permutation(len(pool))]
        self.at = 0

    def batch(self, n: int) -> np.ndarray:
        if self.at + n > len(self.pool):
            self._refill(n * _CHUNK_STEPS)
        out = self.pool[self.at:self.at + n]
        self.at += n
        if self.augment is None:
            return np.ascontiguousarray(out)
        from ispad_core.augment import augment_batch

        return augment_batch(out, self.augment, rng=self.rng)


def _masks(rng: np.random.Generator, n: int, patch_size: int, mask_size: int) -> np.ndarray:
    """``(n, 1, patch_size, patch_size)`` float32: 1 on the hidden squares (exactly
    ``round(MASK_RATIO * g * g)`` of the ``g * g`` squares per patch, at least one)."""
    g = patch_size // mask_size
    k = max(1, int(round(MASK_RATIO * g * g)))
    order = np.argsort(rng.random((n, g * g)), axis=1)
    grid = np.zeros((n, g * g), dtype=np.float32)
    np.put_along_axis(grid, order[:, :k], 1.0, axis=1)
    grid = grid.reshape(n, 1, g, g)
    return np.repeat(np.repeat(grid, mask_size, axis=2), mask_size, axis=3)


# --------------------------------------------------------------------------- the entry point


def _check_args(backbone: Any, steps: Any, batch_size: Any, patch_size: Any, mask_size: Any,
                augment: Any) -> tuple[int, int, int, int, Any]:
    if not isinstance(backbone, str):
        raise InputTypeError(f"backbone: expected one of {', '.join(BACKBONES)}, got {type(backbone).__name__}")
    check_choice(backbone, "backbone", BACKBONES)
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    patch_size = check_int(patch_size, "patch_size", minimum=32)
    if patch_size % 32:
        raise InputValueError(f"patch_size: expected a multiple of 32 (the backbones' stride), got {patch_size}")
    mask_size = check_int(mask_size, "mask_size", minimum=1)
    if patch_size % mask_size or patch_size // mask_size < 2:
        raise InputValueError(f"mask_size: expected a divisor of patch_size {patch_size} giving at least 2 x 2 "
                              f"squares, got {mask_size}")
    if isinstance(augment, str):
        from ispad_core.augment import AUGMENT_PRESETS

        augment = None if augment == "none" else check_choice(augment, "augment", AUGMENT_PRESETS)
    return steps, batch_size, patch_size, mask_size, augment


def _device(device: Any) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputValueError(f"device: {exc}") from None


def _lr_factor(step: int, steps: int) -> float:
    """Linear warm-up over min(100, steps / 10) steps, then cosine from 1 to 1e-5 / PRETRAIN_LR."""
    warm = max(1, min(100, steps // 10))
    if step < warm:
        return (step + 1) / warm
    floor = 1e-5 / PRETRAIN_LR
    t = (step - warm) / max(1, steps - warm)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def pretrain(
    images: Any,
    *,
    backbone: str = "resnet18",
    steps: int = 1000,
    batch_size: int = 32,
    patch_size: int = 64,
    mask_size: int = 8,
    preprocess: Any = "lsm2",
    augment: Any = "lsm1",
    seed: int = 0,
    threads: int | None = None,
    device: Any = None,
    verbose: bool | None = None,
) -> PretrainResult:
    """Pretrain a backbone on fault-free scans by masked-patch reconstruction; no labels, no downloads.

    Every step draws ``batch_size`` random patches from the scans (inside their ROIs), augments
    them (table 8) and preprocesses them as training does, hides half of their ``mask_size``
    squares, and trains the backbone's feature extractor plus a small decoder to restore the hidden
    pixels (L1 loss on them). AdamW at :data:`PRETRAIN_LR` (weight decay 0.05), linear warm-up,
    cosine annealing over ``steps``; full precision. The decoder is dropped at the end.

    Parameters
    ----------
    images : path, sequence of paths, Scans, or sequence of numpy.ndarray
        Fault-free scans: folders and image files (read with :func:`ispad_core.io.read_scans`), the
        result of ``read_scans`` (its ROIs honoured: a patch lies wholly inside), or uint8 arrays
        ``(H, W)`` or ``(H, W, 3)``, each at least ``patch_size`` on a side.
    backbone : str, default "resnet18"
        One of :data:`ispad_core.nn.BACKBONES`.
    steps : int, default 1000
        Optimizer steps.
    batch_size : int, default 32
        Patches per step (at least 2: batch norm).
    patch_size : int, default 64
        Patch side, a multiple of 32; use the patch size the detector will be trained at.
    mask_size : int, default 8
        Side of the mask squares, a divisor of ``patch_size``.
    preprocess : Preprocess, preset name or None, default "lsm2"
        As :func:`ispad_core.nn.preprocess_batch` (``ispad train --preprocess``'s default).
    augment : preset name, AugmentParams or None, default "lsm1"
        Table-8 augmentation of the patches (``"none"`` or None: off); ``"lsm1"`` is the default
        of a stream drawn on the fly (``ispad train --stream-augment``).
    seed : int, default 0
        Initialisation, patches, augmentation and masks: the same seed gives the same weights on the
        same machine and thread count (other CPUs may differ in the last bits).
    threads : int, optional
        torch CPU threads during the run (restored afterwards); None leaves torch's setting.
    device : str or torch.device, optional
        Default: CUDA if available, else the CPU.
    verbose : bool or None, default None
        Progress bar on stderr: None shows it when stderr is a terminal, True always, False never.

    Returns
    -------
    PretrainResult
        ``state_dict`` (torchvision's layout, no head), the loss of every step, the time.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or out of range (the message names it).
    FileNotFoundError
        If a scan path does not exist.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.nn import classifier, pretrain
    >>> scans = [np.random.default_rng(0).integers(0, 255, (96, 96), dtype=np.uint8)]
    >>> result = pretrain(scans, steps=2, batch_size=4, patch_size=32, mask_size=8, verbose=False)
    >>> "fc.weight" in result.state_dict, len(result.losses)
    (False, 2)
    >>> model = classifier("resnet18", weights=result.state_dict)
    """
    steps, batch_size, patch_size, mask_size, augment = _check_args(
        backbone, steps, batch_size, patch_size, mask_size, augment)
    params = resolve_preprocess(preprocess)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputTypeError(f"seed: expected an int, got {type(seed).__name__}")
    seed = check_int(seed, "seed", minimum=0, maximum=2**63 - 1)
    if threads is not None:
        threads = check_int(threads, "threads", minimum=1)
    dev = _device(device)
    ims, rois = _as_scans(images, patch_size)
    channels = 1 if ims[0].ndim == 2 else ims[0].shape[2]
    settings = {"backbone": backbone, "steps": steps, "batch_size": batch_size, "patch_size": patch_size,
                "mask_size": mask_size, "mask_ratio": MASK_RATIO, "preprocess": params.to_dict(),
                "augment": augment if augment is None or isinstance(augment, str) else repr(augment),
                "seed": seed, "lr": PRETRAIN_LR, "weight_decay": WEIGHT_DECAY, "scans": len(ims)}
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = classifier(backbone, in_channels=channels)
        decoder = _Decoder(_feature_channels(model, channels, patch_size), channels,
                           _stride(model, channels, patch_size))
        losses, seconds = _run(model, decoder, _PatchSource(ims, rois, patch_size, augment,
                                                            np.random.default_rng(seed)),
                               settings, params, dev, verbose)
    head = set(getattr(model, "head_keys", ()))
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items() if k not in head}
    return PretrainResult(state_dict=state, backbone=backbone, losses=losses, seconds=seconds, settings=settings)


def _feature_channels(model: nn.Module, channels: int, patch_size: int) -> int:
    was = model.training
    model.eval()
    with torch.no_grad():
        c = feature_map(model, torch.zeros(1, channels, patch_size, patch_size)).shape[1]
    model.train(was)
    return int(c)


def _run(model: nn.Module, decoder: nn.Module, source: _PatchSource, settings: dict, params: Any,
         device: torch.device, verbose: bool | None) -> tuple[np.ndarray, float]:
    """The training loop; the loss of every step and the seconds it took."""
    steps, batch = settings["steps"], settings["batch_size"]
    model.to(device).train()
    decoder.to(device).train()
    opt = torch.optim.AdamW(list(model.parameters()) + list(decoder.parameters()), lr=PRETRAIN_LR,
                            weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps))
    losses = np.empty(steps, dtype=np.float64)
    bar = progress(total=steps, desc=f"pretrain {settings['backbone']}", unit="step",
                   disable=None if verbose is None else not verbose)
    t0 = time.perf_counter()
    try:
        for step in range(steps):
            patches = torch.from_numpy(source.batch(batch))
            x = preprocess_batch(patches, params, device=device)
            m = torch.from_numpy(_masks(source.rng, batch, settings["patch_size"], settings["mask_size"])).to(device)
            pred = decoder(feature_map(model, x * (1.0 - m)))
            loss = (F.l1_loss(pred, x, reduction="none") * m).sum() / (m.sum() * x.shape[1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses[step] = float(loss.detach())
            if not math.isfinite(losses[step]):
                raise FloatingPointError(f"pretrain: the loss is {losses[step]} at step {step}")
            bar.update(1)
            if step % 10 == 0 or step == steps - 1:
                bar.set_postfix(loss=f"{losses[step]:.4f}", refresh=False)
    finally:
        bar.close()
    return losses, time.perf_counter() - t0
