"""Training and evaluation with the paper's recipe (section 4.2).

SGD (momentum 0.9, weight decay 1e-2), learning rate 5e-4 annealed to 1e-5 by cosine warm
restarts (T_0 = 7813 iterations, T_mult = 2, stepped every iteration), batch 128, mixed
precision where the device supports it, brightness factor and 3 x 3 Gaussian smoothing on the
batch, early stopping after 20 epochs without a lower validation loss, and the checkpoint with
the lowest validation loss kept. Thresholds for the report are F1-optimal, as in the paper.

Under ``torch.distributed`` (a process group initialised by the caller, e.g. with ``torchrun``)
:func:`train` wraps the model in ``DistributedDataParallel`` and shards the training data with
``DistributedSampler``; ``batch_size`` is then per process.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ispad_core._progress import progress
from ispad_core._validation import check_array, check_binary_labels, check_choice, check_float, check_int
from ispad_core.nn.preprocessing import Preprocess, preprocess_batch, resolve_preprocess

__all__ = ["EpochRecord", "Prediction", "TrainResult", "evaluate", "predict", "train"]

_CHECKPOINT_VERSION = 1


# --------------------------------------------------------------------------- data plumbing


class _ArrayDataset(Dataset):
    """(images, labels) arrays as a Dataset of (image, label) items."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.images[i], int(self.labels[i])


def _as_dataset(data: Any, name: str) -> Any:
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        images = check_array(data[0], f"{name}[0]", ndim=(3, 4), dtypes=(np.uint8,))
        labels = check_binary_labels(data[1], f"{name}[1]")
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"{name}[1]: expected {images.shape[0]} labels like {name}[0], got {labels.shape[0]}")
        return _ArrayDataset(images, labels.astype(np.int64))
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        if len(data) == 0:
            raise ValueError(f"{name}: expected a non-empty dataset, got length 0")
        return data
    raise TypeError(
        f"{name}: expected a Dataset of (image, ..., label) items or an (images, labels) pair of arrays, "
        f"got {type(data).__name__}"
    )


def _collate(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    images = np.stack([np.asarray(item[0]) for item in batch])
    labels = torch.tensor([int(item[-1]) for item in batch], dtype=torch.int64)
    return torch.from_numpy(images), labels


def _derived_seed(seed: int, *words: int) -> int:
    return int(np.random.SeedSequence((seed, *words)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _generator(seed: int, *words: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(_derived_seed(seed, *words))
    return g


def _distributed() -> tuple[bool, int, int]:
    if dist.is_available() and dist.is_initialized():
        return True, dist.get_rank(), dist.get_world_size()
    return False, 0, 1


def _resolve_device(device: Any, model: nn.Module | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if model is not None:
        for p in model.parameters():
            return p.device
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _amp_dtype(amp: bool | None, device: torch.device) -> torch.dtype | None:
    """fp16 on CUDA (with a GradScaler), bf16 on CPU when asked; None means full precision."""
    if amp is None:
        amp = device.type == "cuda"
    if not isinstance(amp, bool):
        raise TypeError(f"amp: expected a bool or None, got {type(amp).__name__}")
    if not amp:
        return None
    return torch.float16 if device.type == "cuda" else torch.bfloat16


# --------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class Prediction:
    """Scores of a model on a dataset.

    Attributes
    ----------
    scores : numpy.ndarray of float64, shape (N,)
        Softmax probability of class 1 (defective).
    labels : numpy.ndarray of int64, shape (N,)
    loss : float
        Mean cross-entropy.
    """

    scores: np.ndarray
    labels: np.ndarray
    loss: float


def _forward_scores(
    model: nn.Module,
    dataset: Any,
    *,
    batch_size: int,
    preprocess: Preprocess,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    num_workers: int,
    channels_last: bool,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Scores, labels and the summed loss over ``dataset`` in its order (eval mode, no grad)."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        generator=_generator(0, 0),  # keeps the global RNG untouched
    )
    scores, labels, loss_sum = [], [], 0.0
    with torch.inference_mode():
        for images, y in loader:
            x = preprocess_batch(images, preprocess, device=device, channels_last=channels_last)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(x)
            logits = logits.float()
            if logits.ndim != 2 or logits.shape[1] != 2:
                raise ValueError(f"model: expected (B, 2) logits of a binary classifier, got shape {tuple(logits.shape)}")
            y = y.to(device)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            scores.append(torch.softmax(logits, dim=1)[:, 1].double().cpu().numpy())
            labels.append(y.cpu().numpy())
    return np.concatenate(scores), np.concatenate(labels).astype(np.int64), loss_sum


def _predict_impl(model, dataset, *, distributed_shard: bool, **kw) -> Prediction:
    is_dist, rank, world = _distributed()
    was_training = model.training
    model.eval()
    try:
        if not (distributed_shard and is_dist and world > 1):
            scores, labels, loss_sum = _forward_scores(model, dataset, **kw)
        else:
            # each rank scores every world-th item; gather and put them back in order
            idx = np.arange(rank, len(dataset), world)
            part = _forward_scores(model, Subset(dataset, idx.tolist()), **kw) if idx.size else (
                np.empty(0), np.empty(0, np.int64), 0.0)
            gathered: list = [None] * world
            dist.all_gather_object(gathered, (idx, part[0], part[1], part[2]))
            scores = np.empty(len(dataset), np.float64)
            labels = np.empty(len(dataset), np.int64)
            loss_sum = 0.0
            for g_idx, g_scores, g_labels, g_loss in gathered:
                scores[g_idx] = g_scores
                labels[g_idx] = g_labels
                loss_sum += g_loss
    finally:
        model.train(was_training)
    return Prediction(scores=scores, labels=labels, loss=loss_sum / max(len(labels), 1))


def predict(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 128,
    preprocess: Preprocess | str | None = "lsm2",
    device: Any = None,
    amp: bool | None = None,
    num_workers: int = 0,
    channels_last: bool = False,
) -> Prediction:
    """Defect scores (softmax probability of class 1) of a binary classifier on ``data``.

    ``data`` is a Dataset of ``(image, ..., label)`` items or an ``(images, labels)`` pair of
    arrays (images uint8 ``(N, H, W[, C])``). Other arguments as in :func:`train`; use the same
    ``preprocess`` as in training. The model is put in eval mode and restored afterwards.

    Returns
    -------
    Prediction
        ``scores`` and ``labels`` in the order of ``data``, and the mean cross-entropy ``loss``.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.nn import predict, resnet18_classifier
    >>> images = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    >>> pred = predict(resnet18_classifier(), (images, np.array([0, 1, 0])))
    >>> pred.scores.shape, bool(((pred.scores >= 0) & (pred.scores <= 1)).all())
    ((3,), True)
    """
    dataset = _as_dataset(data, "data")
    device = _resolve_device(device, model)
    return _predict_impl(
        model,
        dataset,
        distributed_shard=False,
        batch_size=check_int(batch_size, "batch_size", minimum=1),
        preprocess=resolve_preprocess(preprocess),
        device=device,
        amp_dtype=_amp_dtype(amp, device),
        num_workers=check_int(num_workers, "num_workers", minimum=0),
        channels_last=bool(channels_last),
    )


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    threshold: float | None = None,
    batch_size: int = 128,
    preprocess: Preprocess | str | None = "lsm2",
    device: Any = None,
    amp: bool | None = None,
    num_workers: int = 0,
    channels_last: bool = False,
):
    """Image-level report of a binary classifier: the paper's table-3 row.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, C, H, W)`` float to ``(B, 2)`` logits.
    data : Dataset or (images, labels)
        Items ``(image, ..., label)`` with uint8 images ``(H, W[, C])``, or arrays.
    threshold : float, optional
        Decision threshold on the defect probability (``score >= threshold`` is defective);
        None (default) uses the F1-optimal threshold, as the paper does.
    batch_size, preprocess, device, amp, num_workers, channels_last
        As in :func:`train`; use the training ``preprocess``.

    Returns
    -------
    ispad_core.metrics.ClassificationReport
        MCC, recall, FPR and precision in percent, TN, TP, FN, FP, the threshold and AUROC.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from ispad_core.nn import evaluate, resnet18_classifier
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, (8, 32, 32), dtype=np.uint8)
    >>> _ = torch.manual_seed(0)
    >>> report = evaluate(resnet18_classifier(), (images, np.array([0] * 6 + [1] * 2)))
    >>> report.tp + report.fn
    2
    """
    from ispad_core.metrics import classification_report

    pred = predict(
        model,
        data,
        batch_size=batch_size,
        preprocess=preprocess,
        device=device,
        amp=amp,
        num_workers=num_workers,
        channels_last=channels_last,
    )
    return classification_report(pred.labels, pred.scores, threshold=threshold)


def _val_mcc(labels: np.ndarray, scores: np.ndarray) -> float:
    if np.unique(labels).size < 2:
        return float("nan")
    from ispad_core.metrics import classification_report

    return float(classification_report(labels, scores).mcc)


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class EpochRecord:
    """One line of training progress.

    Attributes
    ----------
    epoch : int
        0-based epoch.
    steps : int
        Optimizer steps so far (all epochs).
    train_loss, val_loss : float
        Mean cross-entropy on the epoch's training batches and on the validation data.
    val_mcc : float
        MCC on the validation data at its F1-optimal threshold (NaN if it holds one class).
    lr : float
        Learning rate after the epoch's last step.
    patches_per_s : float
        Training rate over all processes.
    seconds : float
        Wall time of the epoch, validation included.
    improved : bool
        Whether the validation loss reached a new minimum (the best checkpoint was updated).
    """

    epoch: int
    steps: int
    train_loss: float
    val_loss: float
    val_mcc: float
    lr: float
    patches_per_s: float
    seconds: float
    improved: bool

    def __str__(self) -> str:
        return (
            f"epoch {self.epoch:3d}  step {self.steps:6d}  train loss {self.train_loss:.4f}  "
            f"val loss {self.val_loss:.4f}  val MCC {self.val_mcc:.3f}  lr {self.lr:.2e}  "
            f"{self.patches_per_s:,.0f} patches/s  {self.seconds:.1f} s{'  *' if self.improved else ''}"
        )


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The model passed in (not the DDP wrapper), holding the weights of the best epoch.
    best_epoch : int
    best_val_loss : float
    history : tuple of EpochRecord
        One record per epoch, resumed epochs included.
    stopped_early : bool
        True if training stopped because the validation loss did not improve for ``patience``
        epochs.
    steps : int
        Optimizer steps in total.
    world_size : int
        Number of processes (1 without torch.distributed).
    checkpoint_dir : str or None
    """

    model: nn.Module
    best_epoch: int
    best_val_loss: float
    history: tuple
    stopped_early: bool
    steps: int
    world_size: int
    checkpoint_dir: str | None

    def to_dict(self) -> dict:
        """JSON-serialisable summary (without the model)."""
        return {
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "history": [asdict(r) for r in self.history],
            "stopped_early": self.stopped_early,
            "steps": self.steps,
            "world_size": self.world_size,
            "checkpoint_dir": self.checkpoint_dir,
        }


def _atomic_save(obj: Any, path: str) -> None:
    tmp = f"{path}.part"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train(
    model: nn.Module,
    train_data: Any,
    val_data: Any,
    *,
    batch_size: int = 128,
    max_epochs: int | None = None,
    max_steps: int | None = None,
    optimizer: str = "sgd",
    lr: float = 5e-4,
    lr_min: float = 1e-5,
    momentum: float = 0.9,
    weight_decay: float = 1e-2,
    t_0: int = 7813,
    t_mult: int = 2,
    patience: int = 20,
    preprocess: Preprocess | str | None = "lsm2",
    amp: bool | None = None,
    channels_last: bool = False,
    device: Any = None,
    num_workers: int = 0,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    verbose: bool = True,
    callback: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train a binary patch classifier with the paper's recipe; keep the best-val-loss weights.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, C, H, W)`` float to ``(B, 2)`` logits, e.g. :func:`resnet18_classifier`.
        Trained in place and left holding the weights of the epoch with the lowest validation
        loss.
    train_data : Dataset or (images, labels)
        Items ``(image, ..., label)``, images uint8 ``(H, W[, C])``; typically an
        :class:`InjectionDataset` (its ``set_epoch`` is called before every epoch).
    val_data : Dataset or (images, labels)
        Validation items in the same form; their loss drives model selection and early stopping.
    batch_size : int, default 128
        Batch size (per process under torch.distributed).
    max_epochs : int, optional
        Upper limit on epochs; None trains until early stopping.
    max_steps : int, optional
        Upper limit on optimizer steps (the epoch in progress is then validated and recorded).
    optimizer : {"sgd", "adamw"}, default "sgd"
        SGD with ``momentum`` (the paper) or AdamW; both with ``weight_decay``.
    lr, lr_min : float, default 5e-4 and 1e-5
        Initial and minimum learning rate of the cosine schedule. 5e-4 suits ImageNet-pretrained
        weights; from random initialisation a larger rate (e.g. SGD 1e-2) converges far faster.
    momentum, weight_decay : float, default 0.9 and 1e-2
    t_0, t_mult : int, default 7813 and 2
        ``CosineAnnealingWarmRestarts`` period in iterations and its growth factor; the
        scheduler steps after every optimizer step.
    patience : int, default 20
        Stop after this many epochs without a lower validation loss.
    preprocess : Preprocess, preset name or None, default "lsm2"
        Batch preprocessing (see :func:`preprocess_batch`): ``"lsm1"`` is brightness 1.5 and
        3 x 3 Gaussian smoothing, ``"lsm2"`` and ``"asm"`` smoothing only, None neither.
    amp : bool or None
        Mixed precision: None (default) uses fp16 autocast with a GradScaler on CUDA and full
        precision elsewhere; True also enables bf16 autocast on the CPU; False disables it.
    channels_last : bool, default False
        Train in ``torch.channels_last`` memory format.
    device : torch.device or str, optional
        Default: the current CUDA device if available, else the CPU.
    num_workers : int, default 0
        DataLoader worker processes.
    seed : int, default 0
        Seeds the data order (a function of ``(seed, epoch)``), DataLoader workers and dropout;
        the caller's global torch RNG state is restored afterwards. On the CPU two runs with the
        same seed, model initialisation and thread count give identical weights.
    checkpoint_dir : path, optional
        Where ``last.pt`` (everything needed to resume) and ``best.pt`` (weights of the best
        epoch) are written after every epoch (by rank 0).
    resume : bool, default False
        Continue from ``checkpoint_dir/last.pt`` if it exists (otherwise start fresh); the
        resumed run ends with the same weights as an uninterrupted one.
    verbose : bool, default True
        Print one progress line per epoch (loss, MCC, rate) to stderr (rank 0 only).
    callback : callable, optional
        Called with each :class:`EpochRecord` (on every rank).

    Returns
    -------
    TrainResult

    Raises
    ------
    TypeError, ValueError
        For invalid arguments, data of the wrong form, or a model that does not output
        ``(B, 2)`` logits.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from ispad_core.nn import resnet18_classifier, train
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, (8, 32, 32), dtype=np.uint8)
    >>> labels = np.array([0, 1] * 4)
    >>> _ = torch.manual_seed(0)
    >>> result = train(resnet18_classifier(), (images, labels), (images, labels), batch_size=4,
    ...                max_epochs=1, verbose=False)
    >>> result.steps, len(result.history), result.best_epoch
    (2, 1, 0)
    """
    # ---- validation
    train_set = _as_dataset(train_data, "train_data")
    val_set = _as_dataset(val_data, "val_data")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if max_epochs is not None:
        max_epochs = check_int(max_epochs, "max_epochs", minimum=1)
    if max_steps is not None:
        max_steps = check_int(max_steps, "max_steps", minimum=1)
    optimizer = check_choice(optimizer, "optimizer", ("sgd", "adamw"))
    lr = check_float(lr, "lr", minimum=0.0, min_inclusive=False)
    lr_min = check_float(lr_min, "lr_min", minimum=0.0, maximum=lr)
    momentum = check_float(momentum, "momentum", minimum=0.0, maximum=1.0, max_inclusive=False)
    weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
    t_0 = check_int(t_0, "t_0", minimum=1)
    t_mult = check_int(t_mult, "t_mult", minimum=1)
    patience = check_int(patience, "patience", minimum=1)
    params = resolve_preprocess(preprocess)
    num_workers = check_int(num_workers, "num_workers", minimum=0)
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    seed = check_int(seed, "seed", minimum=0, maximum=2**63 - 1)
    if resume and checkpoint_dir is None:
        raise ValueError("resume: resuming needs a checkpoint_dir, got None")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable or None, got {type(callback).__name__}")

    is_dist, rank, world = _distributed()
    device = _resolve_device(device)
    amp_dtype = _amp_dtype(amp, device)
    use_scaler = amp_dtype == torch.float16 and device.type == "cuda"
    ckpt_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
    if ckpt_dir is not None and rank == 0:
        os.makedirs(ckpt_dir, exist_ok=True)
    rng_devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []

    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(seed)
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        net: nn.Module = model
        if is_dist:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if optimizer == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=t_0, T_mult=t_mult, eta_min=lr_min)
        scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)

        start_epoch, steps = 0, 0
        best_val_loss, best_epoch, since_best = math.inf, -1, 0
        best_state: dict | None = None
        history: list[EpochRecord] = []
        last_path = None if ckpt_dir is None else os.path.join(ckpt_dir, "last.pt")
        best_path = None if ckpt_dir is None else os.path.join(ckpt_dir, "best.pt")
        if resume and last_path is not None and os.path.exists(last_path):
            ck = torch.load(last_path, map_location="cpu", weights_only=True)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            scaler.load_state_dict(ck["scaler"])
            start_epoch, steps = ck["epoch"] + 1, ck["steps"]
            best_val_loss, best_epoch, since_best = ck["best_val_loss"], ck["best_epoch"], ck["since_best"]
            history = [EpochRecord(**r) for r in ck["history"]]
            torch.set_rng_state(ck["rng_cpu"])
            if device.type == "cuda" and "rng_cuda" in ck:
                torch.cuda.set_rng_state(ck["rng_cuda"], device)
            best_state = torch.load(best_path, map_location="cpu", weights_only=True)["model"]

        stopped_early = since_best >= patience
        done = stopped_early or (max_epochs is not None and start_epoch >= max_epochs) or (
            max_steps is not None and steps >= max_steps)
        epoch = start_epoch
        while not done:
            t_start = time.perf_counter()
            if hasattr(train_set, "set_epoch"):
                train_set.set_epoch(epoch)
            gen = _generator(seed, 1, epoch)
            if is_dist:
                sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=seed)
                sampler.set_epoch(epoch)
                n_local = len(sampler)
                loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                                    collate_fn=_collate, drop_last=n_local > batch_size, generator=gen)
            else:
                loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                                    collate_fn=_collate, drop_last=len(train_set) > batch_size, generator=gen)
            net.train()
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            seen = 0
            bar = progress(total=len(loader), desc=f"epoch {epoch}", unit="batch",
                           disable=None if (verbose and rank == 0) else True)
            t_train = time.perf_counter()
            for images, labels in loader:
                x = preprocess_batch(images, params, device=device, channels_last=channels_last)
                y = labels.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    logits = net(x)
                if logits.ndim != 2 or logits.shape[1] != 2:
                    raise ValueError(f"model: expected (B, 2) logits of a binary classifier, got shape {tuple(logits.shape)}")
                loss = F.cross_entropy(logits.float(), y)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
                steps += 1
                loss_sum += loss.detach().double() * y.shape[0]
                seen += y.shape[0]
                bar.update(1)
                if max_steps is not None and steps >= max_steps:
                    break
            bar.close()
            train_seconds = time.perf_counter() - t_train
            seen_t = torch.tensor(float(seen), dtype=torch.float64, device=device)
            if is_dist:
                dist.all_reduce(loss_sum)
                dist.all_reduce(seen_t)
            total_seen = float(seen_t)
            train_loss = float(loss_sum) / max(total_seen, 1.0)

            if is_dist:
                # DDP broadcasts buffers (BN statistics) from rank 0 at the start of each forward, so
                # after the last step every rank holds its own; use rank 0's for validation and saving.
                for buf in model.buffers():
                    dist.broadcast(buf, src=0)
            pred = _predict_impl(
                model, val_set, distributed_shard=True, batch_size=batch_size, preprocess=params, device=device,
                amp_dtype=amp_dtype, num_workers=num_workers, channels_last=channels_last,
            )
            improved = pred.loss < best_val_loss
            if improved:
                best_val_loss, best_epoch, since_best = pred.loss, epoch, 0
                best_state = _cpu_state(model)
            else:
                since_best += 1
            record = EpochRecord(
                epoch=epoch,
                steps=steps,
                train_loss=train_loss,
                val_loss=pred.loss,
                val_mcc=_val_mcc(pred.labels, pred.scores),
                lr=float(sched.get_last_lr()[0]),
                patches_per_s=total_seen / max(train_seconds, 1e-9),
                seconds=time.perf_counter() - t_start,
                improved=improved,
            )
            history.append(record)
            if verbose and rank == 0:
                print(record, file=sys.stderr, flush=True)
            if callback is not None:
                callback(record)

            stopped_early = since_best >= patience
            done = stopped_early or (max_epochs is not None and epoch + 1 >= max_epochs) or (
                max_steps is not None and steps >= max_steps)
            if ckpt_dir is not None:
                if rank == 0:
                    if improved:
                        _atomic_save({"version": _CHECKPOINT_VERSION, "model": best_state, "epoch": epoch,
                                      "val_loss": pred.loss, "preprocess": params.to_dict()}, best_path)
                    state = {
                        "version": _CHECKPOINT_VERSION,
                        "model": _cpu_state(model),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "scaler": scaler.state_dict(),
                        "epoch": epoch,
                        "steps": steps,
                        "best_val_loss": best_val_loss,
                        "best_epoch": best_epoch,
                        "since_best": since_best,
                        "history": [asdict(r) for r in history],
                        "rng_cpu": torch.get_rng_state(),
                        "preprocess": params.to_dict(),
                    }
                    if device.type == "cuda":
                        state["rng_cuda"] = torch.cuda.get_rng_state(device)
                    _atomic_save(state, last_path)
                if is_dist:
                    dist.barrier()
            epoch += 1

    if best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(
        model=model,
        best_epoch=best_epoch,
        best_val_loss=best_val_loss,
        history=tuple(history),
        stopped_early=stopped_early,
        steps=steps,
        world_size=world,
        checkpoint_dir=ckpt_dir,
    )
