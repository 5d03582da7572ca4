"""Inference throughput with the paper's protocol (section 5.2.1, table 2).

"The arithmetic mean of five cycles with 100 repetitions, including preprocessing ... Each cycle
was preceded by a 10-iteration warm-up ... measured using PyTorch's synchronized CUDA events at a
batch size of 128, with autocast applied for mixed-precision evaluation." On the CPU the clock is
``time.perf_counter``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ispad_core._shared.errors import InputTypeError
from ispad_core._shared.validation import check_int
from ispad_core.nn.backbones import in_channels
from ispad_core.nn.preprocessing import Preprocess, preprocess_batch, resolve_preprocess

__all__ = ["Throughput", "measure_throughput"]

_clock = time.perf_counter  # the CPU timer (a module attribute, so a test can drive it)


@dataclass(frozen=True)
class Throughput:
    """Result of :func:`measure_throughput` (mean and sample std over the cycles).

    Attributes
    ----------
    patches_per_s, patches_per_s_std : float
        Throughput: patches per second.
    ms_per_patch, ms_per_patch_std : float
        Inference time per patch in milliseconds.
    per_cycle : tuple of float
        Patches per second of each cycle.
    batch_size, warmup, reps : int
    input_shape : tuple of int
        ``(C, H, W)`` of one patch.
    device : str
    precision : str
        ``"fp32"``, ``"fp16"`` or ``"bf16"`` (autocast).
    channels_last : bool
    preprocess : bool
        Whether the timed step includes the batch preprocessing.
    timer : str
        ``"cuda-events"`` or ``"perf_counter"``.
    """

    patches_per_s: float
    patches_per_s_std: float
    ms_per_patch: float
    ms_per_patch_std: float
    per_cycle: tuple
    batch_size: int
    warmup: int
    reps: int
    input_shape: tuple
    device: str
    precision: str
    channels_last: bool
    preprocess: bool
    timer: str

    def to_dict(self) -> dict:
        """JSON-serialisable fields."""
        d = asdict(self)
        d["per_cycle"] = list(self.per_cycle)
        d["input_shape"] = list(self.input_shape)
        return d

    def __str__(self) -> str:
        c, h, w = self.input_shape
        return (
            f"{self.patches_per_s:,.1f} +- {self.patches_per_s_std:,.1f} patches/s, "
            f"{self.ms_per_patch:.3f} +- {self.ms_per_patch_std:.3f} ms/patch "
            f"({self.device}, {self.precision}, batch {self.batch_size}, {c}x{h}x{w}"
            f"{', channels-last' if self.channels_last else ''}, {len(self.per_cycle)} cycles x {self.reps} reps)"
        )


def _timed(step: Any, warmup: int, reps: int, device: torch.device) -> float:
    """Seconds of ``reps`` calls of ``step`` after ``warmup`` untimed ones (CUDA events on a GPU)."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0
    t0 = _clock()
    for _ in range(reps):
        out = step()
    _ = out.sum().item()  # forces completion on any lazy backend
    return _clock() - t0


def measure_throughput(
    model: nn.Module,
    *,
    batch_size: int = 128,
    warmup: int = 10,
    cycles: int = 5,
    reps: int = 100,
    device: Any,
    amp: bool = True,
    patch_size: int = 256,
    channels_last: bool = False,
    preprocess: Preprocess | str | None = "lsm2",
) -> Throughput:
    """Inference throughput of ``model`` with the paper's protocol.

    Each of ``cycles`` cycles runs ``warmup`` untimed batches, then times ``reps`` batches of
    ``batch_size`` random uint8 patches already on ``device`` (preprocessing and forward pass, in
    ``torch.inference_mode``, eval mode). On CUDA the cycle is timed with synchronised CUDA
    events, elsewhere with ``time.perf_counter``.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier; it is moved to ``device`` (and back to its memory format afterwards).
    batch_size : int, default 128
    warmup : int, default 10
        Untimed iterations before each cycle.
    cycles : int, default 5
    reps : int, default 100
        Timed iterations per cycle.
    device : torch.device or str
        Where to run, e.g. ``"cuda"`` or ``"cpu"``.
    amp : bool, default True
        Autocast: fp16 on CUDA, bf16 elsewhere; False runs in fp32.
    patch_size : int, default 256
        Patches are ``patch_size x patch_size`` with the model's input channels.
    channels_last : bool, default False
        Run in ``torch.channels_last`` memory format.
    preprocess : Preprocess, preset name or None, default "lsm2"
        Preprocessing included in the timed step, as in the paper; None times the forward pass
        of a ready float batch only.

    Returns
    -------
    Throughput

    Raises
    ------
    TypeError, ValueError
        For invalid arguments.

    Examples
    --------
    >>> from ispad_core.nn import measure_throughput, resnet18_classifier
    >>> t = measure_throughput(resnet18_classifier(), batch_size=2, warmup=1, cycles=2, reps=1,
    ...                        device="cpu", amp=False, patch_size=32)
    >>> t.batch_size, len(t.per_cycle), t.timer
    (2, 2, 'perf_counter')
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    warmup = check_int(warmup, "warmup", minimum=0)
    cycles = check_int(cycles, "cycles", minimum=1)
    reps = check_int(reps, "reps", minimum=1)
    patch_size = check_int(patch_size, "patch_size", minimum=1)
    if not isinstance(amp, bool):
        raise InputTypeError(f"amp: expected a bool, got {type(amp).__name__}")
    device = torch.device(device)
    params = None if preprocess is None else resolve_preprocess(preprocess)
    channels = in_channels(model)
    dtype = None if not amp else (torch.float16 if device.type == "cuda" else torch.bfloat16)
    precision = {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    gen = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (batch_size, patch_size, patch_size, channels), dtype=torch.uint8, generator=gen)
    raw = raw.to(device)
    if channels == 1:
        raw = raw[..., 0].contiguous()
    ready = None if params is not None else preprocess_batch(raw, "none", channels_last=channels_last)

    def step() -> torch.Tensor:
        x = ready if params is None else preprocess_batch(raw, params, channels_last=channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return model(x)

    was_training = model.training
    model.to(device)
    if channels_last:
        model.to(memory_format=memory_format)
    model.eval()
    use_events = device.type == "cuda"
    try:
        with torch.inference_mode():
            per_cycle = [reps * batch_size / _timed(step, warmup, reps, device) for _ in range(cycles)]
    finally:
        model.train(was_training)
        if channels_last:
            model.to(memory_format=torch.contiguous_format)

    rate = np.asarray(per_cycle)
    ms = 1000.0 / rate
    ddof = 1 if rate.size > 1 else 0
    return Throughput(
        patches_per_s=float(rate.mean()),
        patches_per_s_std=float(rate.std(ddof=ddof)),
        ms_per_patch=float(ms.mean()),
        ms_per_patch_std=float(ms.std(ddof=ddof)),
        per_cycle=tuple(float(r) for r in rate),
        batch_size=batch_size,
        warmup=warmup,
        reps=reps,
        input_shape=(channels, patch_size, patch_size),
        device=str(device),
        precision=precision,
        channels_last=bool(channels_last),
        preprocess=params is not None,
        timer="cuda-events" if use_events else "perf_counter",
    )
