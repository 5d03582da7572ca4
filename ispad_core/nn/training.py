"""Training and evaluation with the paper's recipe (section 4.2).

SGD (momentum 0.9, weight decay 1e-2), learning rate 5e-4 annealed to 1e-5 by cosine warm
restarts (T_0 = 7813 iterations, T_mult = 2, stepped every iteration), batch 128, mixed
precision where the device supports it, brightness factor and 3 x 3 Gaussian smoothing on the
batch, early stopping after 20 epochs without a lower validation loss, and the checkpoint with
the lowest validation loss kept. Thresholds for the report are F1-optimal, as in the paper.

Validation (and with it model selection, early stopping and the checkpoint) happens after every
epoch, or every ``val_every`` optimizer steps. The first Ctrl-C stops training after the step in
progress with a validation and a checkpoint, so the model and ``last.pt`` are usable and
``resume=True`` continues; a second Ctrl-C interrupts at once.

Under ``torch.distributed`` (a process group initialised by the caller, e.g. with ``torchrun``)
:func:`train` wraps the model in ``DistributedDataParallel`` and shards the training data with
``DistributedSampler``; ``batch_size`` is then per process.
"""

from __future__ import annotations

import contextlib
import math

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.files import atomic_output
from ispad_core._shared.progress import progress
from ispad_core._shared.validation import check_array, check_binary_labels, check_float, check_int, warn_renamed
from ispad_core.nn.preprocessing import Preprocess, preprocess_batch, resolve_preprocess
from ispad_core.nn.settings import TrainSettings

__all__ = ["EpochRecord", "Prediction", "TrainResult", "auto_amp", "evaluate", "predict", "torch_threads", "train",
           "training_precision"]

_CHECKPOINT_VERSION = 2  # 2: the position inside the epoch (``val_every`` checkpoints mid-epoch)
_NO_LABEL = -1


# --------------------------------------------------------------------------- data plumbing


class _ArrayDataset(Dataset):
    """(images, labels) arrays as a Dataset of (image, label) items; bare images give (image,)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple:
        if self.labels is None:
            return (self.images[i],)
        return self.images[i], int(self.labels[i])


def _as_dataset(data: Any, name: str, *, labelled: bool = True) -> Any:
    """A Dataset of ``(image, ..., label)`` items (or, with ``labelled=False``, also of bare images)."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        images = check_array(data[0], f"{name}[0]", ndim=(3, 4), dtypes=(np.uint8,))
        labels = check_binary_labels(data[1], f"{name}[1]")
        if labels.shape[0] != images.shape[0]:
            raise InputValueError(f"{name}[1]: expected {images.shape[0]} labels like {name}[0], got {labels.shape[0]}")
        return _ArrayDataset(images, labels.astype(np.int64))
    if isinstance(data, np.ndarray):
        if labelled:
            raise InputTypeError(
                f"{name}: expected labelled data, a Dataset of (image, ..., label) items or an (images, labels) "
                f"pair of arrays, got a bare array of shape {data.shape}"
            )
        images = check_array(data, name, ndim=(3, 4), dtypes=(np.uint8,))
        if images.shape[0] == 0:
            raise InputValueError(f"{name}: expected at least one image, got shape {images.shape}")
        return _ArrayDataset(images, None)
    if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, (str, bytes)):
        if len(data) == 0:
            raise InputValueError(f"{name}: expected a non-empty dataset, got length 0")
        return data
    what = " (or of images), images (N, H, W[, C]) uint8" if not labelled else ""
    raise InputTypeError(
        f"{name}: expected a Dataset of (image, ..., label) items{what} or an (images, labels) pair of arrays, "
        f"got {type(data).__name__}"
    )


def _collate(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a batch; items are ``(image, ..., label)``, ``(image,)`` or a bare image (label -1)."""
    if isinstance(batch[0], (tuple, list)):
        images = np.stack([np.asarray(item[0]) for item in batch])
        labels = [int(item[-1]) if len(item) > 1 else _NO_LABEL for item in batch]
    else:
        images = np.stack([np.asarray(item) for item in batch])
        labels = [_NO_LABEL] * len(batch)
    return torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64)


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


def auto_amp(device: Any = None) -> bool | None:
    """The ``amp`` that the commands' ``auto`` stands for (``ispad train --amp``, ``ispad
    experiment``'s ``train.amp``, ``ispad demo``): True (bf16 autocast) on a CPU that computes
    bf16 natively (:func:`ispad_core.nn.runtime.cpu_has_bf16`), where a training step takes about
    0.65 of the fp32 time with the same test figures (docs/training.md); None elsewhere (fp16
    autocast on CUDA, fp32 on other CPUs). :class:`TrainSettings` itself keeps ``amp=None``.

    Examples
    --------
    >>> from ispad_core.nn.runtime import cpu_has_bf16
    >>> from ispad_core.nn.training import auto_amp
    >>> auto_amp("cpu") is (True if cpu_has_bf16() else None)
    True
    """
    from ispad_core.nn.runtime import cpu_has_bf16

    return True if _resolve_device(device).type == "cpu" and cpu_has_bf16() else None


def training_precision(amp: bool | None = None, device: Any = None) -> str:
    """The precision a training run with ``amp`` trains in on ``device`` (default: as
    :func:`train` picks it): ``"fp32"``, ``"fp16"`` (autocast on CUDA) or ``"bf16"`` (autocast on
    the CPU).

    Examples
    --------
    >>> from ispad_core.nn.training import training_precision
    >>> training_precision(False, "cpu"), training_precision(True, "cpu")
    ('fp32', 'bf16')
    """
    dtype = _amp_dtype(amp, _resolve_device(device))
    return {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]


def _amp_dtype(amp: bool | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: fp16 on CUDA (with a GradScaler), bf16 on the CPU; None means full
    precision. ``amp=None`` turns it on on CUDA only."""
    if amp is None:
        amp = device.type == "cuda"
    if not isinstance(amp, bool):
        raise InputTypeError(f"amp: expected a bool or None, got {type(amp).__name__}")
    if not amp:
        return None
    return torch.float16 if device.type == "cuda" else torch.bfloat16


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the block with torch set to ``threads`` intra-op threads (None: leave it), then restore."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)



# --------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class Prediction:
    """Scores of a model on a dataset.

    Attributes
    ----------
    scores : numpy.ndarray of float64, shape (N,)
        Softmax probability of class 1 (defective).
    labels : numpy.ndarray of int64, shape (N,), or None
        The labels of the data; None when it held bare images.
    loss : float
        Mean cross-entropy (NaN without labels).
    """

    scores: np.ndarray
    labels: np.ndarray | None
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
    """Scores, labels (-1: none) and the summed loss over ``dataset`` in its order (eval mode, no grad)."""
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
                raise InputValueError(f"model: expected (B, 2) logits of a binary classifier, got shape {tuple(logits.shape)}")
            if bool((y != _NO_LABEL).all()):
                y = y.to(device)
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            elif bool((y != _NO_LABEL).any()):
                raise InputValueError("data: some items carry a label and some do not; expected all or none")
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
    if labels.size and (labels == _NO_LABEL).all():
        return Prediction(scores=scores, labels=None, loss=float("nan"))
    return Prediction(scores=scores, labels=labels, loss=loss_sum / max(len(labels), 1))


def _renamed_workers(workers: int, num_workers: int | None, caller: str) -> int:
    if num_workers is None:
        return workers
    warn_renamed(caller, "num_workers", "workers")
    return num_workers


def predict(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 128,
    preprocess: Preprocess | str | None = "lsm2",
    device: Any = None,
    amp: bool | None = None,
    workers: int = 0,
    channels_last: bool = False,
    num_workers: int | None = None,
) -> Prediction:
    """Defect scores (softmax probability of class 1) of a binary classifier on ``data``.

    ``data`` is a uint8 array of images ``(N, H, W[, C])``, an ``(images, labels)`` pair of
    arrays, or a Dataset whose items are images or ``(image, ..., label)`` tuples. Other arguments
    as in :func:`train`; use the same ``preprocess`` as in training (``num_workers`` is the old
    name of ``workers``: it still works and warns). The model is put in eval mode and restored
    afterwards.

    Returns
    -------
    Prediction
        ``scores`` in the order of ``data``; ``labels`` and the mean cross-entropy ``loss`` when
        the data has labels (None and NaN for bare images).

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.nn import predict, resnet18_classifier
    >>> images = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    >>> pred = predict(resnet18_classifier(), images)
    >>> pred.scores.shape, bool(((pred.scores >= 0) & (pred.scores <= 1)).all()), pred.labels
    ((3,), True, None)
    >>> predict(resnet18_classifier(), (images, np.array([0, 1, 0]))).labels.tolist()
    [0, 1, 0]
    """
    dataset = _as_dataset(data, "data", labelled=False)
    device = _resolve_device(device, model)
    return _predict_impl(
        model,
        dataset,
        distributed_shard=False,
        batch_size=check_int(batch_size, "batch_size", minimum=1),
        preprocess=resolve_preprocess(preprocess),
        device=device,
        amp_dtype=_amp_dtype(amp, device),
        num_workers=check_int(_renamed_workers(workers, num_workers, "predict"), "workers", minimum=0),
        channels_last=bool(channels_last),
    )


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    labels: Any = None,
    threshold: float | None = None,
    batch_size: int = 128,
    preprocess: Preprocess | str | None = "lsm2",
    device: Any = None,
    amp: bool | None = None,
    workers: int = 0,
    channels_last: bool = False,
    num_workers: int | None = None,
):
    """Image-level report of a binary classifier: the paper's table-3 row.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, C, H, W)`` float to ``(B, 2)`` logits.
    data : Dataset, (images, labels) or images
        Items ``(image, ..., label)`` with uint8 images ``(H, W[, C])``; or arrays; or bare images
        ``(N, H, W[, C])`` uint8 together with ``labels``.
    labels : array_like of shape (N,), optional
        0/1 labels of bare images in ``data``.
    threshold : float, optional
        Decision threshold on the defect probability (``score >= threshold`` is defective);
        None (default) uses the F1-optimal threshold, as the paper does.
    batch_size, preprocess, device, amp, workers, channels_last
        As in :func:`train`; use the training ``preprocess`` (``num_workers``, the old name of
        ``workers``, still works and warns).

    Returns
    -------
    ispad_core.metrics.ClassificationReport
        MCC, recall, FPR and precision in percent, TN, TP, FN, FP, the threshold and AUROC.

    Raises
    ------
    ValueError
        If the data has no labels (bare images without ``labels``) or only one class.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from ispad_core.nn import evaluate, resnet18_classifier
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, (8, 32, 32), dtype=np.uint8)
    >>> _ = torch.manual_seed(0)
    >>> report = evaluate(resnet18_classifier(), images, labels=[0] * 6 + [1] * 2)
    >>> report.tp + report.fn
    2
    """
    from ispad_core.metrics import classification_report

    if labels is not None:
        if not isinstance(data, np.ndarray):
            raise InputTypeError(f"labels: given for bare images, but data is a {type(data).__name__}, not an array of images")
        data = (data, np.asarray(labels))
    pred = predict(
        model,
        data,
        batch_size=batch_size,
        preprocess=preprocess,
        device=device,
        amp=amp,
        workers=_renamed_workers(workers, num_workers, "evaluate"),
        channels_last=channels_last,
    )
    if pred.labels is None:
        raise InputValueError("data: evaluate needs labels; got bare images (pass labels=, an (images, labels) pair or a labelled Dataset)")
    return classification_report(pred.labels, pred.scores, threshold=threshold)


def _val_mcc(labels: np.ndarray | None, scores: np.ndarray) -> float:
    if labels is None or np.unique(labels).size < 2:
        return float("nan")
    from ispad_core.metrics import classification_report

    return float(classification_report(labels, scores).mcc)


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class EpochRecord:
    """One line of training progress: one validation (after an epoch, or every ``val_every`` steps).

    Attributes
    ----------
    epoch : int
        0-based epoch in progress at the validation.
    steps : int
        Optimizer steps so far (all epochs).
    train_loss, val_loss : float
        Mean cross-entropy on the training batches since the previous validation and on the
        validation data.
    val_mcc : float
        MCC on the validation data at its F1-optimal threshold (NaN if it holds one class).
    lr : float
        Learning rate of the last optimizer step before this validation (the rate that step used).
    patches_per_s : float
        Training rate over all processes.
    seconds : float
        Wall time since the previous validation, this validation included.
    improved : bool
        Whether the validation loss reached a new minimum (the best checkpoint was updated); never
        during the annealing of a curriculum that selects at native contrast.
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
        The model passed in (not the DDP wrapper), holding the weights of the best validation.
    best_epoch : int
        Epoch of the best validation (-1 if none happened).
    best_val_loss : float
    history : tuple of EpochRecord
        One record per validation, resumed ones included.
    stopped_early : bool
        True if training stopped because the validation loss did not improve for ``patience``
        validations.
    steps : int
        Optimizer steps in total.
    world_size : int
        Number of processes (1 without torch.distributed).
    checkpoint_dir : str or None
    best_step : int
        Optimizer steps at the best validation.
    interrupted : bool
        True if a Ctrl-C stopped training (after a validation and a checkpoint at that step).
    """

    model: nn.Module
    best_epoch: int
    best_val_loss: float
    history: tuple
    stopped_early: bool
    steps: int
    world_size: int
    checkpoint_dir: str | None
    best_step: int = 0
    interrupted: bool = False

    def to_dict(self) -> dict:
        """JSON-serialisable summary (without the model)."""
        return {
            "best_epoch": self.best_epoch,
            "best_step": self.best_step,
            "best_val_loss": self.best_val_loss,
            "history": [asdict(r) for r in self.history],
            "stopped_early": self.stopped_early,
            "interrupted": self.interrupted,
            "steps": self.steps,
            "world_size": self.world_size,
            "checkpoint_dir": self.checkpoint_dir,
        }


def _atomic_save(obj: Any, path: str) -> None:
    with atomic_output(path, name="checkpoint_dir", overwrite=True) as tmp:
        # through a Python file object: a full disk then raises OSError(ENOSPC), which
        # atomic_output reports in one line, where torch's own file writer raises a bare RuntimeError
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)


def _cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _duration(seconds: float) -> str:
    """``"45s"``, ``"12m30s"`` or ``"2h05m"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops at a checkpoint."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _StopRequest:
    """The first Ctrl-C sets a flag (training stops after the step in progress, with a checkpoint);
    the second one interrupts at once. Only the main thread can install the handler."""

    def __init__(self, enabled: bool, announce: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.announce = announce
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopRequest:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._restore_to())
        if self.announce:
            print("\nCtrl-C: stopping after this step with a validation and a checkpoint "
                  "(Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def _restore_to(self) -> Any:
        return signal.default_int_handler if self._previous is None else self._previous

    def __exit__(self, *exc) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self._restore_to())


@dataclass(frozen=True)
class _Settings:
    """The validated options of :func:`train`."""

    batch_size: int
    max_epochs: int | None
    max_steps: int | None
    val_every: int | None
    log_every: int | None
    optimizer: str
    lr: float
    lr_min: float
    momentum: float
    weight_decay: float
    t_0: int
    t_mult: int
    warmup: int
    patience: int
    preprocess: Preprocess
    channels_last: bool
    workers: int
    seed: int
    checkpoint_dir: str | None
    resume: bool
    verbose: bool
    callback: Callable[[EpochRecord], None] | None
    interruptible: bool
    curriculum: Any = None  # a ContrastCurriculum or None


def _check_settings(model: Any, run: TrainSettings, *, checkpoint_dir: Any, resume: bool, callback: Any,
                    interruptible: bool) -> _Settings:
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    lr = run.recipe_value("lr")
    if resume and checkpoint_dir is None:
        raise InputValueError("resume: resuming needs a checkpoint_dir, got None")
    if callback is not None and not callable(callback):
        raise InputTypeError(f"callback: expected a callable or None, got {type(callback).__name__}")
    if run.curriculum is not None and run.max_steps is None and run.max_epochs is None:
        raise InputValueError("curriculum: anneals over a fraction of the run's steps; give max_steps or max_epochs")
    return _Settings(
        batch_size=run.batch_size,
        max_epochs=run.max_epochs,
        max_steps=run.max_steps,
        val_every=run.val_every,
        log_every=run.log_every,
        optimizer=run.recipe_value("optimizer"),
        lr=lr,
        lr_min=check_float(run.recipe_value("lr_min"), "lr_min", minimum=0.0, maximum=lr),
        momentum=run.recipe_value("momentum"),
        weight_decay=run.recipe_value("weight_decay"),
        t_0=run.recipe_value("t_0"),
        t_mult=run.recipe_value("t_mult"),
        warmup=run.recipe_value("warmup"),
        patience=run.patience,
        preprocess=resolve_preprocess(run.preprocess),
        channels_last=bool(run.channels_last),
        workers=0 if run.workers is None else run.workers,
        seed=run.seed,
        checkpoint_dir=None if checkpoint_dir is None else os.fspath(checkpoint_dir),
        resume=bool(resume),
        verbose=bool(run.verbose),
        callback=callback,
        interruptible=bool(interruptible),
        curriculum=run.curriculum,
    )


def _schedule(opt: torch.optim.Optimizer, cfg: _Settings) -> torch.optim.lr_scheduler.LRScheduler:
    """The cosine schedule (warm restarts, period ``t_0`` growing by ``t_mult``), after ``warmup``
    steps whose rate rises linearly from ``lr / warmup`` to ``lr``."""
    cosine = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=cfg.t_0, T_mult=cfg.t_mult, eta_min=cfg.lr_min)
    if not cfg.warmup:
        return cosine
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / cfg.warmup, end_factor=1.0, total_iters=cfg.warmup)
    return torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[cfg.warmup])


@dataclass
class _State:
    """Where training stands; everything here is in ``last.pt``."""

    epoch: int = 0  # the epoch in progress (or next)
    batches_done: int = 0  # batches of ``epoch`` already trained
    steps: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = -1
    best_step: int = 0
    since_best: int = 0
    best_state: dict | None = None
    history: list = field(default_factory=list)


class _ProgressLog:
    """Progress on rank 0: a tqdm bar per epoch on a terminal; otherwise (a log file) a line every
    ``log_every`` steps (about every 30 s when None) with step, loss, patches/s and time left; and a
    line per validation with the time left, in both cases."""

    def __init__(self, enabled: bool, log_every: int | None, patches_per_step: int,
                 max_steps: int | None, max_epochs: int | None) -> None:
        self.enabled = enabled
        try:
            tty = sys.stderr.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.lines = enabled and not tty
        self.log_every = log_every
        self.patches_per_step = patches_per_step
        self.max_steps, self.max_epochs = max_steps, max_epochs
        self.t0 = time.perf_counter()
        self.steps0: int | None = None
        self.batches_per_epoch = 0
        self.bar = None
        self._mark_time = self.t0
        self._mark_step = 0
        self._loss = 0.0
        self._loss_n = 0

    def start_epoch(self, epoch: int, batches_per_epoch: int, done: int) -> None:
        self.batches_per_epoch = batches_per_epoch
        self.bar = progress(total=batches_per_epoch, desc=f"epoch {epoch}", unit="batch",
                            disable=None if self.enabled else True)
        if done:
            self.bar.update(done)

    def end_epoch(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def time_left(self, steps: int, epoch: int, batches_done: int) -> str:
        if self.steps0 is None or steps <= self.steps0:
            return "time left ?"
        rate = (steps - self.steps0) / max(time.perf_counter() - self.t0, 1e-9)
        bounds = []
        if self.max_steps is not None:
            bounds.append(self.max_steps - steps)
        if self.max_epochs is not None and self.batches_per_epoch:
            bounds.append((self.max_epochs - epoch) * self.batches_per_epoch - batches_done)
        if bounds:
            return f"{_duration(max(min(bounds), 0) / rate)} left"
        return f"{_duration(max(self.batches_per_epoch - batches_done, 0) / rate)} left in the epoch"

    def step(self, steps: int, epoch: int, batches_done: int, loss: torch.Tensor) -> None:
        if self.steps0 is None:
            self.steps0 = steps - 1
            self._mark_step = steps - 1
        if self.bar is not None:
            self.bar.update(1)
        if not self.lines:
            return
        self._loss = self._loss + loss.double()  # a device tensor: no synchronisation per step
        self._loss_n += 1
        now = time.perf_counter()
        due = (steps % self.log_every == 0) if self.log_every is not None else (now - self._mark_time >= 30.0)
        if not due:
            return
        rate = (steps - self._mark_step) * self.patches_per_step / max(now - self._mark_time, 1e-9)
        total = f"/{self.max_steps}" if self.max_steps is not None else ""
        print(f"step {steps}{total} (epoch {epoch}, batch {batches_done}/{self.batches_per_epoch})  "
              f"loss {float(self._loss) / self._loss_n:.4f}  {rate:,.0f} patches/s  {self.time_left(steps, epoch, batches_done)}",
              file=sys.stderr, flush=True)
        self._mark_time, self._mark_step, self._loss, self._loss_n = now, steps, 0.0, 0

    def record(self, record: EpochRecord, epoch: int, batches_done: int) -> None:
        if self.enabled:
            print(f"{record}  {self.time_left(record.steps, epoch, batches_done)}", file=sys.stderr, flush=True)


def contrast_target(dataset: Any) -> tuple[Any, np.ndarray | None]:
    """The stream drawn on the fly under ``dataset`` (the object with ``set_contrast_gains``) and
    the map from ``dataset``'s items to the stream's, ``(len(dataset),)`` int64 (None: the same).

    Looks through ``torch.utils.data.Subset`` (``dataset``, ``indices``) and wrappers that keep
    item ``i`` at item ``i`` of what they wrap (``stream`` or ``dataset``: the injection datasets).
    Raises InputValueError when there is none: a curriculum needs a stream drawn on the fly.
    """
    index: np.ndarray | None = None
    node = dataset
    for _ in range(16):
        if hasattr(node, "set_contrast_gains"):
            return node, index
        if isinstance(node, Subset):
            sub = np.asarray(node.indices, dtype=np.int64)
            index = sub if index is None else sub[index]
            node = node.dataset
        elif hasattr(node, "stream"):
            node = node.stream
        elif hasattr(node, "dataset"):
            node = node.dataset
        else:
            break
    raise InputValueError(
        f"curriculum: needs a stream drawn on the fly (a SyntheticStream, 'ispad train --images'), whose defects "
        f"it scales; got {type(dataset).__name__} (a stream file's defects are fixed)")


def curriculum_gains(order: Any, n_items: int, *, first_step: int, batch_size: int, total_steps: int,
                     curriculum: Any) -> np.ndarray:
    """The contrast gain of every item of an epoch: item ``order[k]`` is trained at step
    ``first_step + k // batch_size`` and gets that step's gain; items not in ``order`` get 1.

    Returns
    -------
    numpy.ndarray of float64, shape (n_items,)
    """
    order = np.asarray(order, dtype=np.int64)
    gains = np.ones(n_items)
    steps = first_step + np.arange(order.size) // batch_size
    gains[order] = curriculum.gains(steps, total_steps)
    return gains


class _Trainer:
    """One training run: the model, optimiser, schedule, data order, validation and checkpoints."""

    def __init__(self, model: nn.Module, train_set: Any, val_set: Any, cfg: _Settings,
                 device: torch.device, amp_dtype: torch.dtype | None) -> None:
        self.model, self.train_set, self.val_set, self.cfg = model, train_set, val_set, cfg
        self.device, self.amp_dtype = device, amp_dtype
        self.is_dist, self.rank, self.world = _distributed()
        model.to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        self.net: nn.Module = model
        if self.is_dist:
            self.net = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if cfg.optimizer == "sgd":
            self.opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        else:
            self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = _schedule(self.opt, cfg)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16 and device.type == "cuda")
        self.step_lr = float(cfg.lr)
        ckpt = cfg.checkpoint_dir
        self.last_path = None if ckpt is None else os.path.join(ckpt, "last.pt")
        self.best_path = None if ckpt is None else os.path.join(ckpt, "best.pt")
        self.state = _State()
        self.stopped_early = False
        self.interrupted = False
        self.log = _ProgressLog(cfg.verbose and self.rank == 0, cfg.log_every, cfg.batch_size * self.world,
                                cfg.max_steps, cfg.max_epochs)
        self._reset_interval()
        self.contrast = None if cfg.curriculum is None else contrast_target(train_set)

    # -- checkpoints -----------------------------------------------------------------------

    def load(self) -> None:
        """Continue from ``last.pt`` (and ``best.pt``)."""
        ck = torch.load(self.last_path, map_location="cpu", weights_only=True)
        version = int(ck.get("version", 1))
        if version > _CHECKPOINT_VERSION:
            raise InputValueError(f"checkpoint_dir: {self.last_path} has checkpoint format {version}, newer than this "
                             f"library's {_CHECKPOINT_VERSION}; update ispad-core to resume it")
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        self.scaler.load_state_dict(ck["scaler"])
        st = self.state
        if version == 1:  # written only at the end of an epoch
            st.epoch, st.batches_done = ck["epoch"] + 1, 0
        else:
            st.epoch, st.batches_done = ck["next_epoch"], ck["batches_done"]
        st.steps = ck["steps"]
        st.best_val_loss, st.best_epoch, st.since_best = ck["best_val_loss"], ck["best_epoch"], ck["since_best"]
        st.best_step = ck.get("best_step", 0)
        st.history = [EpochRecord(**r) for r in ck["history"]]
        torch.set_rng_state(ck["rng_cpu"])
        if self.device.type == "cuda" and "rng_cuda" in ck:
            torch.cuda.set_rng_state(ck["rng_cuda"], self.device)
        if os.path.exists(self.best_path):  # none yet while a curriculum selecting at native contrast anneals
            st.best_state = torch.load(self.best_path, map_location="cpu", weights_only=True)["model"]
        self.stopped_early = st.since_best >= self.cfg.patience

    def _save(self, improved: bool, val_loss: float, record_epoch: int) -> None:
        st, cfg = self.state, self.cfg
        if self.rank == 0:
            if improved:
                _atomic_save({"version": _CHECKPOINT_VERSION, "model": st.best_state, "epoch": record_epoch,
                              "step": st.steps, "val_loss": val_loss, "preprocess": cfg.preprocess.to_dict()},
                             self.best_path)
            state = {
                "version": _CHECKPOINT_VERSION,
                "model": _cpu_state(self.model),
                "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(),
                "scaler": self.scaler.state_dict(),
                "epoch": record_epoch,
                "next_epoch": st.epoch,
                "batches_done": st.batches_done,
                "steps": st.steps,
                "best_val_loss": st.best_val_loss,
                "best_epoch": st.best_epoch,
                "best_step": st.best_step,
                "since_best": st.since_best,
                "history": [asdict(r) for r in st.history],
                "rng_cpu": torch.get_rng_state(),
                "preprocess": cfg.preprocess.to_dict(),
            }
            if self.device.type == "cuda":
                state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
            _atomic_save(state, self.last_path)
        if self.is_dist:
            dist.barrier()

    # -- data --------------------------------------------------------------------------------

    def _epoch_order(self, epoch: int) -> tuple[list[int], torch.Generator]:
        """The epoch's item order, a function of ``(seed, epoch)`` (and the rank under DDP), and the
        generator the DataLoader draws its worker base seed from."""
        cfg = self.cfg
        gen = _generator(cfg.seed, 1, epoch)
        if self.is_dist:
            sampler = DistributedSampler(self.train_set, num_replicas=self.world, rank=self.rank, shuffle=True,
                                         seed=cfg.seed)
            sampler.set_epoch(epoch)
            return list(sampler), gen
        # what DataLoader(shuffle=True, generator=gen) yields: the loader draws its base seed
        # from the generator first, then RandomSampler draws the permutation
        order = _generator(cfg.seed, 1, epoch)
        torch.empty((), dtype=torch.int64).random_(generator=order)
        return torch.randperm(len(self.train_set), generator=order).tolist(), gen

    def _total_steps(self, n_batches: int) -> int:
        """The run's length in optimizer steps (``n_batches`` per epoch)."""
        cfg = self.cfg
        total = cfg.max_steps if cfg.max_steps is not None else cfg.max_epochs * n_batches
        if cfg.max_steps is not None and cfg.max_epochs is not None:
            total = min(total, cfg.max_epochs * n_batches)
        return max(total, 1)

    def _may_select(self, n_batches: int) -> bool:
        """Whether the validation now may select the model: always, but with a curriculum of
        ``selection="native"`` only once its gain has reached 1."""
        c = self.cfg.curriculum
        return c is None or c.selection == "all" or self.state.steps >= c.native_from(self._total_steps(n_batches))

    def _set_contrast(self, order: list[int], skip: int, n_batches: int) -> None:
        """Tell the stream the contrast gain of each item of the epoch (before the workers start)."""
        cfg, st = self.cfg, self.state
        if self.contrast is None:
            return
        bs = cfg.batch_size
        gains = curriculum_gains(order[skip * bs:], len(self.train_set), first_step=st.steps, batch_size=bs,
                                 total_steps=self._total_steps(n_batches), curriculum=cfg.curriculum)
        stream, index = self.contrast
        if index is None:
            stream.set_contrast_gains(gains)
        else:
            full = np.ones(len(stream))
            full[index] = gains
            stream.set_contrast_gains(full)

    def _loader(self, order: list[int], gen: torch.Generator, skip: int) -> tuple[DataLoader, int]:
        """A loader over ``order`` from batch ``skip`` on, and the number of batches of the whole epoch."""
        bs = self.cfg.batch_size
        drop_last = len(order) > bs
        n_batches = len(order) // bs if drop_last else math.ceil(len(order) / bs)
        workers = self.cfg.workers
        loader = DataLoader(self.train_set, batch_size=bs, sampler=order[skip * bs:], num_workers=workers,
                            collate_fn=_collate, drop_last=drop_last, generator=gen,
                            worker_init_fn=_ignore_sigint if workers and self.cfg.interruptible else None)
        return loader, n_batches

    # -- steps and validation ----------------------------------------------------------------

    def _reset_interval(self) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.seen = 0
        self.train_seconds = 0.0
        self.t_interval = time.perf_counter()

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if bool((labels == _NO_LABEL).any()):
            raise InputValueError("train_data: expected (image, ..., label) items, got items without a label")
        x = preprocess_batch(images, self.cfg.preprocess, device=self.device, channels_last=self.cfg.channels_last)
        y = labels.to(self.device, non_blocking=True)
        dtype = self.amp_dtype
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = self.net(x)
        if logits.ndim != 2 or logits.shape[1] != 2:
            raise InputValueError(f"model: expected (B, 2) logits of a binary classifier, got shape {tuple(logits.shape)}")
        loss = F.cross_entropy(logits.float(), y)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.step_lr = float(self.opt.param_groups[0]["lr"])  # this step's rate, before the schedule moves on
        self.sched.step()
        loss = loss.detach()
        self.loss_sum += loss.double() * y.shape[0]
        self.seen += y.shape[0]
        return loss

    def _stop_requested(self, stop: _StopRequest) -> bool:
        if not self.is_dist:
            return stop.requested
        flag = torch.tensor([1 if stop.requested else 0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _validate(self, n_batches: int) -> None:
        """Validate, record, keep the best weights, write the checkpoints; then a new interval."""
        st, cfg = self.state, self.cfg
        seen_t = torch.tensor(float(self.seen), dtype=torch.float64, device=self.device)
        loss_sum = self.loss_sum
        if self.is_dist:
            dist.all_reduce(loss_sum)
            dist.all_reduce(seen_t)
            # DDP broadcasts buffers (BN statistics) from rank 0 at the start of each forward, so
            # after the last step every rank holds its own; use rank 0's for validation and saving.
            for buf in self.model.buffers():
                dist.broadcast(buf, src=0)
        total_seen = float(seen_t)
        pred = _predict_impl(
            self.model, self.val_set, distributed_shard=True, batch_size=cfg.batch_size, preprocess=cfg.preprocess,
            device=self.device, amp_dtype=self.amp_dtype, num_workers=cfg.workers, channels_last=cfg.channels_last,
        )
        if pred.labels is None:
            raise InputValueError("val_data: expected labelled items, got bare images")
        record_epoch = st.epoch
        selectable = self._may_select(n_batches)
        improved = selectable and pred.loss < st.best_val_loss
        if improved:
            st.best_val_loss, st.best_epoch, st.best_step, st.since_best = pred.loss, st.epoch, st.steps, 0
            st.best_state = _cpu_state(self.model)
        elif selectable:
            st.since_best += 1
        record = EpochRecord(
            epoch=st.epoch,
            steps=st.steps,
            train_loss=float(loss_sum) / max(total_seen, 1.0),
            val_loss=pred.loss,
            val_mcc=_val_mcc(pred.labels, pred.scores),
            lr=self.step_lr,
            patches_per_s=total_seen / max(self.train_seconds, 1e-9),
            seconds=time.perf_counter() - self.t_interval,
            improved=improved,
        )
        st.history.append(record)
        if st.batches_done >= n_batches:  # the checkpoint resumes at the start of the next epoch
            st.epoch, st.batches_done = st.epoch + 1, 0
        self.log.record(record, st.epoch, st.batches_done)
        if cfg.callback is not None:
            cfg.callback(record)
        self.stopped_early = st.since_best >= cfg.patience
        if cfg.checkpoint_dir is not None:
            self._save(improved, pred.loss, record_epoch)
        self._reset_interval()

    def _finished(self) -> bool:
        st, cfg = self.state, self.cfg
        return (self.stopped_early or self.interrupted
                or (cfg.max_epochs is not None and st.epoch >= cfg.max_epochs)
                or (cfg.max_steps is not None and st.steps >= cfg.max_steps))

    def run(self, stop: _StopRequest) -> None:
        st, cfg = self.state, self.cfg
        while not self._finished():
            if hasattr(self.train_set, "set_epoch"):
                self.train_set.set_epoch(st.epoch)
            order, gen = self._epoch_order(st.epoch)
            loader, n_batches = self._loader(order, gen, st.batches_done)
            self._set_contrast(order, st.batches_done, n_batches)
            self.net.train()
            self.log.start_epoch(st.epoch, n_batches, st.batches_done)
            t_train = time.perf_counter()
            for images, labels in loader:
                loss = self._step(images, labels)
                st.steps += 1
                st.batches_done += 1
                self.log.step(st.steps, st.epoch, st.batches_done, loss)
                self.interrupted = cfg.interruptible and self._stop_requested(stop)
                limit = cfg.max_steps is not None and st.steps >= cfg.max_steps
                on_grid = cfg.val_every is not None and st.steps % cfg.val_every == 0
                last = st.batches_done >= n_batches and (cfg.val_every is None or (
                    cfg.max_epochs is not None and st.epoch + 1 >= cfg.max_epochs))
                if self.interrupted or limit or on_grid or last:
                    self.train_seconds += time.perf_counter() - t_train
                    self._validate(n_batches)
                    self.net.train()
                    t_train = time.perf_counter()
                    if self._finished():
                        break
            else:
                self.train_seconds += time.perf_counter() - t_train
                if st.batches_done >= n_batches:  # an epoch ended without a validation (val_every)
                    st.epoch, st.batches_done = st.epoch + 1, 0
            self.log.end_epoch()


def train(
    model: nn.Module,
    train_data: Any,
    val_data: Any,
    *,
    settings: TrainSettings | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    callback: Callable[[EpochRecord], None] | None = None,
    interruptible: bool = True,
    **options: Any,
) -> TrainResult:
    """Train a binary patch classifier with the paper's recipe; keep the best-val-loss weights.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, C, H, W)`` float to ``(B, 2)`` logits, e.g. :func:`resnet18_classifier`.
        Trained in place and left holding the weights of the validation with the lowest loss.
    train_data : Dataset or (images, labels)
        Items ``(image, ..., label)``, images uint8 ``(H, W[, C])``; typically an
        :class:`InjectionDataset` (its ``set_epoch`` is called before every epoch).
    val_data : Dataset or (images, labels)
        Validation items in the same form; their loss drives model selection and early stopping.
    settings : TrainSettings, optional
        How to train (see :class:`~ispad_core.nn.TrainSettings`). Unset optimiser fields take
        :data:`~ispad_core.nn.settings.PAPER_RECIPE` (SGD, lr 5e-4: it suits ImageNet-pretrained
        weights; from random initialisation AdamW at 1e-3 converges far faster); ``workers``
        defaults to 0. ``seed`` fixes the data order (a function of ``(seed, epoch)``), the
        workers and dropout; the caller's global torch RNG state is restored afterwards, and on
        the CPU two runs with the same seed, initialisation and thread count give identical
        weights. ``verbose`` prints one line per validation (rank 0); the detector fields
        (``backbone``, ``weights``, ``p_inj``, ``mode``, ``augment``) are :func:`train_detector`'s.
    **options
        Fields of :class:`~ispad_core.nn.TrainSettings` as keywords, over ``settings``.
    checkpoint_dir : path, optional
        Where ``last.pt`` (everything needed to resume) and ``best.pt`` (weights of the best
        validation) are written after every validation (by rank 0).
    resume : bool, default False
        Continue from ``checkpoint_dir/last.pt`` if it exists (otherwise start fresh), also from
        the middle of an epoch; the resumed run ends with the same weights as an uninterrupted one.
    verbose : bool, default True
        Progress on stderr (rank 0 only): one line per validation (losses, MCC, rate, time left);
        a bar on a terminal, or, when stderr is not a terminal (a log file), a line every
        ``log_every`` steps with step, loss, patches/s and time left.
    log_every : int, optional
        Steps between progress lines in a log; None: about every 30 seconds.
    callback : callable, optional
        Called with each :class:`EpochRecord` (on every rank).
    interruptible : bool, default True
        In the main thread, the first Ctrl-C stops training after the step in progress with a
        validation and a checkpoint (``TrainResult.interrupted`` is then True and the model holds
        the best weights so far); a second Ctrl-C raises KeyboardInterrupt at once. A run resumed
        from that checkpoint has one extra validation in its history but the same weight updates.

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
    >>> from ispad_core.nn import TrainSettings, resnet18_classifier, train
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, (8, 32, 32), dtype=np.uint8)
    >>> labels = np.array([0, 1] * 4)
    >>> _ = torch.manual_seed(0)
    >>> result = train(resnet18_classifier(), (images, labels), (images, labels), batch_size=4,
    ...                max_epochs=1, verbose=False)
    >>> again = train(resnet18_classifier(), (images, labels), (images, labels),
    ...               settings=TrainSettings(batch_size=4, max_epochs=1, verbose=False))
    >>> result.steps, len(result.history), result.best_epoch
    (2, 1, 0)
    """
    run = TrainSettings.build(settings, options, "train")
    train_set = _as_dataset(train_data, "train_data")
    val_set = _as_dataset(val_data, "val_data")
    cfg = _check_settings(
        model, run, checkpoint_dir=checkpoint_dir, resume=resume, callback=callback, interruptible=interruptible
    )
    _, rank, world = _distributed()
    device = _resolve_device(run.device)
    amp_dtype = _amp_dtype(run.amp, device)
    if cfg.checkpoint_dir is not None and rank == 0:
        os.makedirs(cfg.checkpoint_dir, exist_ok=True)
    rng_devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []

    with torch.random.fork_rng(devices=rng_devices), torch_threads(run.threads), \
            _StopRequest(cfg.interruptible, cfg.verbose and rank == 0) as stop:
        torch.manual_seed(cfg.seed)
        trainer = _Trainer(model, train_set, val_set, cfg, device, amp_dtype)
        if cfg.resume and os.path.exists(trainer.last_path):
            trainer.load()
        trainer.run(stop)

    st = trainer.state
    if st.best_state is not None:
        model.load_state_dict(st.best_state)
    return TrainResult(
        model=model,
        best_epoch=st.best_epoch,
        best_val_loss=st.best_val_loss,
        history=tuple(st.history),
        stopped_early=trainer.stopped_early,
        steps=st.steps,
        world_size=world,
        checkpoint_dir=cfg.checkpoint_dir,
        best_step=st.best_step,
        interrupted=trainer.interrupted,
    )
