"""What the rooms above the torch layer need to know of torch, so that only ``nn`` imports it:
CPU threads, CUDA devices, the process group of ``torchrun``, a subset of a dataset."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Subset

__all__ = [
    "cuda_devices",
    "join_torchrun_group",
    "leave_process_group",
    "process_device",
    "rank",
    "set_threads",
    "subset",
]


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), as oneDNN sees it: there
    bf16 autocast runs faster than fp32 (inspection about 2x, training about 1.5x); elsewhere it
    is emulated, and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - older or unusual torch builds
        caps = getattr(torch._C._cpu, "_get_cpu_capability", dict)()
        return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def set_threads(threads: int) -> None:
    """torch's CPU threads for the rest of the process."""
    torch.set_num_threads(threads)


def cuda_devices() -> list[str]:
    """``["cuda:0", ...]`` of this machine (empty without CUDA)."""
    return [f"cuda:{k}" for k in range(torch.cuda.device_count())]


def subset(dataset: Any, indices: Sequence[int]) -> Subset:
    """Items ``indices`` of ``dataset``, in that order, as a torch ``Subset``."""
    return Subset(dataset, list(indices))


def join_torchrun_group() -> bool:
    """Join the process group that torchrun describes in the environment; True if this call did."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if dist.is_initialized():
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True


def leave_process_group() -> None:
    dist.destroy_process_group()


def rank() -> int:
    """This process's rank in the process group (0 without one)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def process_device(joined: bool) -> str | None:
    """The CUDA device torchrun gave this process when it joined a group on a CUDA machine, else None."""
    if joined and torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}"
    return None
