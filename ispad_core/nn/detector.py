"""Train a detector end to end: stream + real defects + validation -> a model file (``ispad train``).

:func:`train_detector` is the whole supervised path of the paper in one call: it reads the
balanced synthetic stream, selects the real defects with :func:`ispad_core.fractions.nested_fractions`
(a fixed shuffle seed, recorded, so a 1/16 run uses defects that every larger fraction uses),
injects them with :class:`ispad_core.nn.InjectionDataset` (each draw augmented and centre-cropped
by :class:`ispad_core.nn.RealTransform`), trains with :func:`ispad_core.nn.train`, picks the
F1-optimal threshold on the validation set, and writes the model file with
:func:`ispad_core.nn.save_model`.

Recipes. With pretrained ``weights`` the paper's fine-tuning recipe: SGD (momentum 0.9, weight
decay 1e-2) at 5e-4 annealed to 1e-5 by cosine warm restarts (T_0 = 7813, T_mult = 2). Without
weights that rate barely moves a randomly initialised network on the CPU, so the default is the
from-scratch recipe: AdamW at 1e-3 (weight decay 1e-2) cosine-annealed to 1e-5 over ``max_steps``
(or with the paper's warm restarts when the run has no step limit). ``lr`` and ``optimizer``
override either; :attr:`DetectorResult.recipe` and the model file say which was used.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.files import atomic_output, check_output_path, exclusive_lock
from ispad_core._shared.validation import check_choice, check_float, check_int
from ispad_core.nn.training import (
    TrainResult,
    _as_dataset,
    _distributed,
    _predict_impl,
    _resolve_device,
    _amp_dtype,
    train,
)

__all__ = ["DetectorResult", "Recipe", "default_workers", "recipe", "select_real", "train_detector"]

_CKPT_SUFFIX = ".ckpt"
_SETTINGS = "settings.json"


# --------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Recipe:
    """Optimiser and learning-rate schedule of a run.

    Attributes
    ----------
    name : str
        ``"fine-tune"`` (the paper's, for pretrained weights), ``"from-scratch"``, or either
        followed by ``" (custom lr/optimizer)"``.
    optimizer : {"sgd", "adamw"}
    lr, lr_min : float
        Start and end of the cosine schedule.
    t_0, t_mult : int
        Period (steps) of the cosine schedule and its growth at each warm restart.
    weight_decay, momentum : float
    """

    name: str
    optimizer: str
    lr: float
    lr_min: float
    t_0: int
    t_mult: int
    weight_decay: float = 1e-2
    momentum: float = 0.9

    def __str__(self) -> str:
        opt = "SGD (momentum 0.9)" if self.optimizer == "sgd" else "AdamW"
        sched = (f"cosine-annealed to {self.lr_min:g} over {self.t_0} steps" if self.t_mult == 1 else
                 f"cosine warm restarts to {self.lr_min:g} (T_0 {self.t_0}, T_mult {self.t_mult})")
        return f"{self.name}: {opt} lr {self.lr:g}, weight decay {self.weight_decay:g}, {sched}"

    def to_dict(self) -> dict:
        return {"name": self.name, "optimizer": self.optimizer, "lr": self.lr, "lr_min": self.lr_min,
                "t_0": self.t_0, "t_mult": self.t_mult, "weight_decay": self.weight_decay, "momentum": self.momentum}


def recipe(*, pretrained: bool, max_steps: int | None = None, lr: float | None = None,
           optimizer: str | None = None) -> Recipe:
    """The training recipe :func:`train_detector` uses.

    Parameters
    ----------
    pretrained : bool
        Whether the backbone starts from pretrained weights: the paper's SGD 5e-4 fine-tuning;
        otherwise AdamW 1e-3, which trains from random initialisation on the CPU.
    max_steps : int, optional
        The run's step limit: the from-scratch schedule anneals once over it. Without one (and
        for fine-tuning) the schedule is the paper's warm restarts (T_0 = 7813, T_mult = 2).
    lr : float, optional
        Overrides the start learning rate.
    optimizer : {"sgd", "adamw"}, optional
        Overrides the optimiser; its default rate is then 5e-4 for SGD and 1e-3 for AdamW.

    Examples
    --------
    >>> from ispad_core.nn.detector import recipe
    >>> print(recipe(pretrained=False, max_steps=500))
    from-scratch: AdamW lr 0.001, weight decay 0.01, cosine-annealed to 1e-05 over 500 steps
    >>> print(recipe(pretrained=True))
    fine-tune: SGD (momentum 0.9) lr 0.0005, weight decay 0.01, cosine warm restarts to 1e-05 (T_0 7813, T_mult 2)
    """
    if optimizer is not None:
        optimizer = check_choice(optimizer, "optimizer", ("sgd", "adamw"))
    if lr is not None:
        lr = check_float(lr, "lr", minimum=0.0, min_inclusive=False)
    if pretrained:
        name, opt, base_lr, t_0, t_mult = "fine-tune", "sgd", 5e-4, 7813, 2
    else:
        name, opt = "from-scratch", "adamw"
        base_lr = 1e-3
        t_0, t_mult = (max_steps, 1) if max_steps is not None else (7813, 2)
    if optimizer is not None and optimizer != opt:
        opt, base_lr = optimizer, (5e-4 if optimizer == "sgd" else 1e-3)
    custom = (optimizer is not None and optimizer != ("sgd" if pretrained else "adamw")) or lr is not None
    use_lr = base_lr if lr is None else lr
    return Recipe(
        name=name + (" (custom lr/optimizer)" if custom else ""),
        optimizer=opt,
        lr=use_lr,
        lr_min=min(1e-5, use_lr),
        t_0=t_0,
        t_mult=t_mult,
    )


def default_workers() -> int:
    """DataLoader worker processes by default: half the CPUs, at least 1, at most 4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


# --------------------------------------------------------------------------- real-defect selection


def _as_fraction_text(f: float) -> str:
    q = Fraction(f).limit_denominator(1 << 16)
    return f"{q.numerator}/{q.denominator}" if abs(float(q) - f) < 1e-12 and q.denominator != 1 else f"{f:g}"


def select_real(groups: Sequence[str], *, fraction: float | None = None, group: Any = None, seed: int = 0) -> np.ndarray:
    """Indices of the real defects a run uses: nested prefixes of one shuffle.

    Parameters
    ----------
    groups : sequence of str, length n
        The group of each real defect.
    fraction : float in (0, 1], optional
        Take ``floor(fraction * n)`` defects (default: all), as :func:`ispad_core.fractions.nested_fractions`
        does; the count is of all ``n`` defects also when ``group`` restricts them (the paper's
        "points 10, area 10, mixed 10"), capped at what the groups hold.
    group : str or sequence of str, optional
        Only defects of these groups.
    seed : int, default 0
        The shuffle's seed. With the same seed, the defects of a smaller fraction are a prefix of
        those of every larger one.

    Returns
    -------
    numpy.ndarray of int64
        Indices into ``groups``, in the shuffled order.

    Raises
    ------
    ValueError
        If a group is unknown, or the selection would be empty.

    Examples
    --------
    >>> from ispad_core.nn.detector import select_real
    >>> groups = ["area"] * 12 + ["points"] * 20
    >>> half = select_real(groups, fraction=1 / 2, seed=0)
    >>> eighth = select_real(groups, fraction=1 / 8, seed=0)
    >>> len(half), len(eighth), bool((half[:4] == eighth).all())
    (16, 4, True)
    >>> area = select_real(groups, fraction=1 / 2, group="area", seed=0)
    >>> len(area), {groups[i] for i in area}
    (12, {'area'})
    """
    from ispad_core.fractions import nested_fractions

    labels = np.asarray(list(groups), dtype=str)
    n = labels.shape[0]
    f = 1.0 if fraction is None else check_float(fraction, "fraction", minimum=0.0, maximum=1.0, min_inclusive=False)
    seed = check_int(seed, "seed", minimum=0)
    wanted = None
    if group is not None:
        wanted = [group] if isinstance(group, str) else list(group)
        known = sorted(set(labels.tolist()))
        unknown = [g for g in wanted if g not in known]
        if unknown or not wanted:
            raise InputValueError(f"groups: expected some of the real defects' groups {known}, got {wanted}")
    if n == 0:
        raise InputValueError("real: no real defects to select from")
    if wanted is None:
        idx = nested_fractions(n, (f,), rng=seed)[f]
    elif len(wanted) == 1:
        idx = nested_fractions(n, (f,), rng=seed, groups=labels)[wanted[0]][f]
    else:  # the same shuffle, restricted to the groups; the count of all n
        order = nested_fractions(n, (1.0,), rng=seed)[1.0]
        members = order[np.isin(labels[order], wanted)]
        idx = members[: min(len(members), math.floor(f * n + 1e-9))]
    if idx.size == 0:
        which = "" if wanted is None else f" of groups {wanted}"
        raise InputValueError(
            f"fraction: {_as_fraction_text(f)} of {n} real defects{which} selects none; use a larger fraction or more defects"
        )
    return np.asarray(idx, dtype=np.int64)


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class DetectorResult:
    """What :func:`train_detector` returns (the model file is written).

    Attributes
    ----------
    path : pathlib.Path
        The model file.
    model : torch.nn.Module
        The trained model (best validation loss), in eval mode.
    metadata : dict
        What the model file holds besides the weights.
    report : ispad_core.metrics.ClassificationReport
        The validation report at the F1-optimal threshold (the paper's table-3 row).
    threshold : float
        The decision threshold on P(defective), stored in the model file.
    group_recall : dict
        Recall (percent) per defect group of the validation set at ``threshold``.
    train : TrainResult
    recipe : Recipe
    interrupted : bool
        True if Ctrl-C stopped training; the model file holds the best weights so far and
        ``resume=True`` continues the run.
    """

    path: Path
    model: nn.Module
    metadata: dict
    report: Any
    threshold: float
    group_recall: dict
    train: TrainResult
    recipe: Recipe
    interrupted: bool

    def __str__(self) -> str:
        groups = "  ".join(f"{g} {r:.1f}%" for g, r in self.group_recall.items())
        state = "interrupted; resume to continue" if self.interrupted else "finished"
        lines = [
            f"validation ({self.metadata['provenance']['validation']['source']}), threshold {self.threshold:.6g}:",
            str(self.report),
        ]
        if groups:
            lines.append(f"recall per group: {groups}")
        lines.append(f"model: {self.path} ({state}, {self.train.steps} steps, best at step {self.train.best_step})")
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


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


def _open_stream(stream: Any) -> tuple[Any, dict]:
    if isinstance(stream, (str, os.PathLike)):
        from ispad_core.io import open_stream

        reader = open_stream(stream)
        attrs = reader.attrs
        prov = {"path": str(Path(os.fspath(stream)).resolve()), "items": len(reader),
                "seed": attrs.get("seed"), "preset": attrs.get("preset_name"), "augment": attrs.get("augment_name")}
        return reader, prov
    ds = _as_dataset(stream, "stream")
    return ds, {"path": None, "type": type(ds).__name__, "items": len(ds)}


def _stream_labels(stream: Any) -> np.ndarray | None:
    labels = getattr(stream, "labels", None)
    if labels is None:
        return None
    try:
        arr = np.asarray(labels)
    except Exception:  # a property that cannot be read cheaply: check per item instead
        return None
    return arr if arr.ndim == 1 and arr.shape[0] == len(stream) else None


def _patch_shape(stream: Any) -> tuple[int, int]:
    first = stream[0]
    image = np.asarray(first[0] if isinstance(first, (tuple, list)) else first)
    if image.ndim not in (2, 3) or image.shape[0] != image.shape[1]:
        raise InputValueError(f"stream: expected square patches (H, H[, C]), got an item of shape {image.shape}")
    return image.shape[0], (image.shape[2] if image.ndim == 3 else 1)


def _read_real(real: Any, size: int):
    from ispad_core.io import RealDefects, read_real_defects

    if isinstance(real, RealDefects):
        return real
    if isinstance(real, (str, os.PathLike)):
        return read_real_defects(real, size=size, name="real")
    if isinstance(real, np.ndarray):
        if real.ndim not in (3, 4) or real.dtype != np.uint8:
            raise InputTypeError(f"real: expected uint8 patches (M, H, W[, C]), got {real.dtype} of shape {real.shape}")
        images = tuple(real)
    elif isinstance(real, Sequence):
        images = tuple(np.asarray(im) for im in real)
    else:
        raise InputTypeError(f"real: expected a folder, a RealDefects, an array of patches or None, got {type(real).__name__}")
    return RealDefects(images=images, groups=("real",) * len(images),
                       files=tuple(f"#{i}" for i in range(len(images))), root="<memory>")


def _read_val(val: Any, size: int):
    from ispad_core.io import LabelledSet, read_labelled_set

    if isinstance(val, LabelledSet):
        return val, {"source": val.source, "kind": val.kind, "counts": val.counts()}
    if isinstance(val, (str, os.PathLike)):
        ls = read_labelled_set(val, size=size, name="val")
        return ls, {"source": str(Path(os.fspath(val)).resolve()), "kind": ls.kind, "counts": ls.counts()}
    ds = _as_dataset(val, "val")
    return ds, {"source": f"<{type(val).__name__}>", "kind": "memory", "counts": None}


def _val_groups(val_set: Any, labels: np.ndarray) -> list[str]:
    groups = getattr(val_set, "groups", None)
    if groups is not None and len(groups) == len(labels):
        return list(groups)
    return ["good" if y == 0 else "defective" for y in labels.tolist()]


def _channels_of(image: np.ndarray) -> int:
    return image.shape[2] if image.ndim == 3 else 1


def _ckpt_dir(out: Path) -> Path:
    return out.with_name(out.name + _CKPT_SUFFIX)


# --------------------------------------------------------------------------- the entry point


def train_detector(
    stream: Any,
    *,
    out: str | os.PathLike,
    real: Any = None,
    val: Any = None,
    p_inj: float | None = None,
    backbone: str = "resnet18",
    backbone_kwargs: dict | None = None,
    fraction: float | None = None,
    groups: str | Sequence[str] | None = None,
    selection_seed: int = 0,
    mode: str = "mixed",
    weights: str | os.PathLike | None = None,
    augment: Any = "auto",
    preprocess: Any = "lsm2",
    device: Any = None,
    max_steps: int | None = None,
    max_epochs: int | None = None,
    seed: int = 0,
    batch_size: int = 128,
    lr: float | None = None,
    optimizer: str | None = None,
    val_every: int | None = None,
    patience: int = 20,
    workers: int | None = None,
    threads: int | None = None,
    amp: bool | None = None,
    resume: bool = False,
    overwrite: bool = False,
    verbose: bool = True,
    log_every: int | None = None,
) -> DetectorResult:
    """Train a defect detector from a synthetic stream and real defects; write its model file.

    Parameters
    ----------
    stream : path or Dataset
        The balanced synthetic stream: an HDF5 stream file (``ispad synth``) or any Dataset of
        ``(image, ..., label)`` items with square uint8 images (e.g. a stream made on the fly).
        For ``mode="oversampling"`` a pure fault-free stream (``ispad synth --defect-fraction 0``).
    out : path
        The model file to write (``model.pt``). Checkpoints go to ``out + ".ckpt/"`` during
        training and are removed when the run finishes.
    real : path, RealDefects, array or None
        Real defective images: a folder (see :func:`ispad_core.io.read_real_defects`; groups
        from sub-folders), a :class:`~ispad_core.io.RealDefects`, or patches ``(M, H, W[, C])``.
        None trains on the synthetic stream alone (the cold start).
    val : path, LabelledSet, Dataset, (images, labels) or None
        The validation set for model selection and the threshold: an MVTec-layout folder, a
        folder of ``good/`` and defect sub-folders, or a stream file (see
        :func:`ispad_core.io.read_labelled_set`; larger images are centre-cropped), or data in
        memory. None holds out the last tenth of the stream (at most 2 000 items), which then
        is not trained on.
    p_inj : float, optional
        Injection probability, in ``[1/batch_size, 0.25]`` (equation 1); default 1/32, and 0.5
        for ``mode="oversampling"``. Only with ``real``.
    backbone : str, default "resnet18"
        A built-in backbone (``ispad_core.nn.BACKBONES``) or a factory ``"package.module:function"``.
    backbone_kwargs : dict, optional
        Extra keyword arguments of :func:`ispad_core.nn.classifier` (JSON-safe).
    fraction : float in (0, 1], optional
        Use this fraction of the real defects (see :func:`select_real`).
    groups : str or sequence of str, optional
        Use only real defects of these groups (sub-folder names).
    selection_seed : int, default 0
        The fixed seed of the one shuffle behind ``fraction``; recorded in the model file.
    mode : {"mixed", "oversampling"}
        Mixed injection into a balanced stream, or oversampling (a fault-free stream, p_inj 0.5).
    weights : path, optional
        Pretrained weights in torchvision's layout (local file); switches to the fine-tuning recipe.
    augment : "auto", preset name, AugmentParams or None
        Augmentation of every draw of a real defect before its centre crop; "auto" takes the
        stream's augmentation preset when it has one (else "lsm1"); None crops only.
    preprocess : Preprocess, preset name or None, default "lsm2"
        Batch preprocessing (see :func:`ispad_core.nn.train`); stored in the model file.
    device : str or torch.device, optional
        Default: CUDA if available, else the CPU.
    max_steps, max_epochs : int, optional
        Limits of the run (without either it stops early after ``patience`` validations).
    seed : int, default 0
        Initialisation, data order, injections and dropout.
    batch_size : int, default 128
        Per process under torch.distributed.
    lr, optimizer : optional
        Override the recipe (see :func:`recipe`).
    val_every : int, optional
        Validate every this many steps instead of every epoch.
    patience : int, default 20
        Validations without a lower validation loss before stopping.
    workers : int, optional
        DataLoader worker processes; default :func:`default_workers`.
    threads : int, optional
        torch CPU threads during the call (restored afterwards).
    amp : bool, optional
        Mixed precision as in :func:`ispad_core.nn.train`.
    resume : bool, default False
        Continue the unfinished run whose checkpoints are in ``out + ".ckpt/"`` (the settings
        must be the same); ends with the weights of an uninterrupted run.
    overwrite : bool, default False
        Replace an existing ``out`` (and discard the checkpoints of an unfinished run).
    verbose : bool, default True
        Print the recipe, the data and progress on stderr (rank 0).
    log_every : int, optional
        Steps between progress lines when stderr is not a terminal (default about every 30 s).

    Returns
    -------
    DetectorResult

    Raises
    ------
    FileExistsError
        If ``out`` exists without ``overwrite`` (or ``resume`` of the run that wrote it), or
        checkpoints of an unfinished run exist without ``resume`` or ``overwrite``.
    TypeError, ValueError, FileNotFoundError
        For bad arguments and unreadable inputs; the message names the argument or file. With
        ``mode="oversampling"`` over a stream that holds defects it says how to write a
        fault-free stream.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from ispad_core.nn import train_detector
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(90, 110, (64, 32, 32), dtype=np.uint8)
    >>> labels = np.arange(64) % 2
    >>> images[labels == 1, 10:16, 10:16] = 250
    >>> stream = list(zip(images, labels))
    >>> real = np.full((4, 48, 48), 100, np.uint8); real[:, 20:28, 20:28] = 0
    >>> res = train_detector(stream, out=os.path.join(tempfile.mkdtemp(), "model.pt"), real=real,
    ...                      val=(images[:16], labels[:16]), p_inj=1 / 8, batch_size=16, max_steps=4,
    ...                      augment=None, workers=0, verbose=False)
    >>> res.train.steps, res.metadata["patch_size"], 0.0 <= res.threshold <= 1.0
    (4, 32, True)
    """
    from ispad_core.metrics import classification_report
    from ispad_core.nn.backbones import classifier
    from ispad_core.nn.modelfile import save_model
    from ispad_core.nn.injection import InjectionDataset
    from ispad_core.nn.preprocessing import resolve_preprocess

    t_start = time.perf_counter()
    # ---- arguments
    if not isinstance(out, (str, os.PathLike)):
        raise InputTypeError(f"out: expected a file path, got {type(out).__name__}")
    out = Path(os.fspath(out))
    mode = check_choice(mode, "mode", ("mixed", "oversampling"))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    for value, name in ((max_steps, "max_steps"), (max_epochs, "max_epochs"), (val_every, "val_every")):
        if value is not None:
            check_int(value, name, minimum=1)
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise InputTypeError(f"seed: expected an int, got {type(seed).__name__}")
    workers = default_workers() if workers is None else check_int(workers, "workers", minimum=0)
    threads = None if threads is None else check_int(threads, "threads", minimum=1)
    if backbone_kwargs is not None and not isinstance(backbone_kwargs, dict):
        raise InputTypeError(f"backbone_kwargs: expected a dict or None, got {type(backbone_kwargs).__name__}")
    backbone_kwargs = dict(backbone_kwargs or {})
    if not isinstance(backbone, str):
        raise InputTypeError(f"backbone: expected a built-in name or 'package.module:function', got {type(backbone).__name__}")
    if real is None:
        if mode == "oversampling":
            raise InputValueError("real: mode='oversampling' trains on real defects over a fault-free stream; got real=None")
        if p_inj is not None:
            raise InputValueError("p_inj: injection needs real defects (real=...); got real=None (the synthetic-only run)")
        if fraction is not None or groups is not None:
            raise InputValueError("fraction, groups: select real defects, but real=None (the synthetic-only run)")
    else:
        from ispad_core.nn.injection import _check_p_inj

        p_inj = _check_p_inj(p_inj if p_inj is not None else (0.5 if mode == "oversampling" else 1 / 32), batch_size, mode)
    params = resolve_preprocess(preprocess)
    rec = recipe(pretrained=weights is not None, max_steps=max_steps, lr=lr, optimizer=optimizer)
    _, rank, world = _distributed()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if (verbose and rank == 0) else (lambda *a: None)

    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"out: the folder {parent} of {out} does not exist")
    # one trainer per model file: rank 0 holds the writer lock (out + ".lock") for the whole run
    with (exclusive_lock(out, name="out") if rank == 0 else contextlib.nullcontext()):
        # ---- the output and the checkpoints (before any work)
        ckpt = _ckpt_dir(out)
        unfinished = (ckpt / "last.pt").exists()
        if unfinished and not (resume or overwrite):
            raise FileExistsError(
                f"out: {ckpt} holds the checkpoints of an unfinished run; pass resume=True (--resume) to continue it "
                f"or overwrite=True (--overwrite) to start over"
            )
        check_output_path(out, "out", overwrite=overwrite or (resume and unfinished))

        # ---- data
        train_stream, stream_prov = _open_stream(stream)
        size, channels = _patch_shape(train_stream)
        labels = _stream_labels(train_stream)
        if mode == "oversampling" and labels is not None and labels.any():
            src = stream_prov.get("path") or "the stream"
            raise InputValueError(
                f"stream: mode='oversampling' trains on a pure fault-free stream with real defects at p_inj = 0.5, but "
                f"{src} holds {int(labels.sum())} defective of {len(labels)} items (a balanced stream); write a "
                f"fault-free one with 'ispad synth --defect-fraction 0 --out fault_free.h5 ...' and train on it"
            )
        n_stream = len(train_stream)
        if val is None:
            if mode == "oversampling":
                raise InputValueError("val: mode='oversampling' needs a validation set with defects (the stream has none)")
            n_val = min(2000, n_stream // 10)
            if n_val < 2:
                raise InputValueError(f"val: a stream of {n_stream} items is too short to hold out a validation tenth; pass val=")
            val_set = Subset(train_stream, range(n_stream - n_val, n_stream))
            val_set.groups = ["good" if y == 0 else "synthetic" for y in (
                labels[n_stream - n_val:] if labels is not None else [int(val_set[i][-1]) for i in range(n_val)])]
            train_stream = Subset(train_stream, range(n_stream - n_val))
            val_prov = {"source": f"the last {n_val} items of the stream (held out)", "kind": "stream-tail", "counts": None}
        else:
            val_set, val_prov = _read_val(val, size)
        val_first = val_set[0]
        val_image = np.asarray(val_first[0] if isinstance(val_first, (tuple, list)) else val_first)
        if val_image.shape[:2] != (size, size) or _channels_of(val_image) != channels:
            raise InputValueError(f"val: expected patches like the stream's ({size} x {size}, {channels} channel(s)), got shape {val_image.shape}")

        real_prov: dict = {"path": None, "selected": 0}
        if real is not None:
            from ispad_core.nn.transform import RealTransform

            all_real = _read_real(real, size)
            if len(all_real) == 0:
                raise InputValueError("real: no real defects (an empty array or folder)")
            bad = [f for f, im in zip(all_real.files, all_real.images)
                   if _channels_of(np.asarray(im)) != channels or min(np.asarray(im).shape[:2]) < size]
            if bad:
                im = np.asarray(all_real.images[all_real.files.index(bad[0])])
                raise InputValueError(f"real: {bad[0]} has shape {im.shape}; expected at least {size} x {size} with "
                                 f"{channels} channel(s) like the stream's patches")
            picked = select_real(all_real.groups, fraction=fraction, group=groups, seed=selection_seed)
            chosen = all_real.select(picked)
            if augment == "auto":
                aug_name = stream_prov.get("augment")
                from ispad_core.augment import AUGMENT_PRESETS

                augment = aug_name if aug_name in AUGMENT_PRESETS else ("lsm1" if aug_name != "none" else None)
            transform = RealTransform(size, augment)
            train_set = InjectionDataset(train_stream, chosen, p_inj=p_inj, batch_size=batch_size, seed=seed,
                                         real_transform=transform, mode=mode)
            real_prov = {
                "path": None if all_real.root == "<memory>" else str(Path(all_real.root).resolve()),
                "available": all_real.counts(),
                "selected": len(chosen),
                "selected_counts": chosen.counts(),
                "fraction": fraction,
                "fraction_text": None if fraction is None else _as_fraction_text(float(fraction)),
                "groups": None if groups is None else ([groups] if isinstance(groups, str) else list(groups)),
                "selection_seed": selection_seed,
                "files": list(chosen.files),
                "augment": None if augment is None else (augment if isinstance(augment, str) else "custom"),
            }
        else:
            train_set = train_stream

        # ---- model, settings, resume check
        torch_device = _resolve_device(device)
        settings = {
            "backbone": backbone, "backbone_kwargs": backbone_kwargs, "weights": None if weights is None else str(weights),
            "mode": mode, "p_inj": p_inj, "batch_size": batch_size, "seed": int(seed), "max_steps": max_steps,
            "max_epochs": max_epochs, "val_every": val_every, "patience": patience, "recipe": rec.to_dict(),
            "preprocess": params.to_dict(), "real": real_prov.get("files"), "stream": stream_prov,
            "val": val_prov["source"], "world_size": world,
        }
        settings = _plain(settings)
        if resume and unfinished:
            before = json.loads((ckpt / _SETTINGS).read_text()) if (ckpt / _SETTINGS).exists() else None
            if before is not None and before != settings:
                diff = [k for k in settings if before.get(k) != settings[k]]
                raise InputValueError(f"resume: the run in {ckpt} was started with other settings ({', '.join(diff)}); "
                                 f"resume with the same ones or pass overwrite=True to start over")
        elif unfinished and overwrite and rank == 0:
            shutil.rmtree(ckpt)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = classifier(backbone, in_channels=channels, num_classes=2, dropout=0.1, weights=weights, **backbone_kwargs)

        say(f"recipe: {rec}" + ("" if weights is None else f" (weights {weights})"))
        say(f"stream: {stream_prov.get('path') or stream_prov.get('type')}: {len(train_stream)} patches of {size} x {size}"
            + ("" if labels is None else f", {100 * float(np.mean(labels)):.0f} % defective"))
        if real is None:
            say("real defects: none (synthetic only: the cold start)")
        else:
            sel = ", ".join(f"{g} {n}" for g, n in real_prov["selected_counts"].items())
            frac = "" if fraction is None else f" (fraction {real_prov['fraction_text']}, selection seed {selection_seed})"
            say(f"real defects: {real_prov['selected']} of {len(all_real)} [{sel}]{frac}, mode {mode}, "
                f"p_inj {_as_fraction_text(p_inj)}, augment {real_prov['augment']}")
        say(f"validation: {val_prov['source']} ({len(val_set)} patches)")
        say(f"device {torch_device}, {workers} loader worker(s), {torch.get_num_threads() if threads is None else threads} "
            f"thread(s), batch {batch_size}" + ("" if world == 1 else f" x {world} processes"))

        if rank == 0:
            ckpt.mkdir(exist_ok=True)
            if not (resume and unfinished):  # a fresh run (re)writes what a resume must match
                with atomic_output(ckpt / _SETTINGS, name="out", overwrite=True) as tmp:
                    tmp.write_text(json.dumps(settings, indent=1))

        # ---- train
        with torch_threads(threads):
            result = train(
                model, train_set, val_set, batch_size=batch_size, max_epochs=max_epochs, max_steps=max_steps,
                val_every=val_every, optimizer=rec.optimizer, lr=rec.lr, lr_min=rec.lr_min, momentum=rec.momentum,
                weight_decay=rec.weight_decay, t_0=rec.t_0, t_mult=rec.t_mult, patience=patience, preprocess=params,
                amp=amp, device=torch_device, num_workers=workers, seed=int(seed), checkpoint_dir=ckpt, resume=resume,
                verbose=verbose, log_every=log_every,
            )
            pred = _predict_impl(
                model, val_set, distributed_shard=True, batch_size=batch_size, preprocess=params, device=torch_device,
                amp_dtype=_amp_dtype(amp, torch_device), num_workers=workers, channels_last=False,
            )
        report = classification_report(pred.labels, pred.scores)
        threshold = float(report.threshold)
        val_groups = _val_groups(val_set, pred.labels)
        group_recall = {}
        for g in sorted({g for g, y in zip(val_groups, pred.labels.tolist()) if y == 1}):
            sel = np.array([vg == g for vg in val_groups]) & (pred.labels == 1)
            group_recall[g] = float(100.0 * np.mean(pred.scores[sel] >= threshold))

        metadata = {
            "backbone": backbone,
            "backbone_kwargs": backbone_kwargs,
            "in_channels": channels,
            "num_classes": 2,
            "dropout": 0.1,
            "patch_size": size,
            "preprocess": params.to_dict(),
            "threshold": threshold,
            "validation": {**report.to_dict(), "group_recall": group_recall, "n": int(len(pred.labels))},
            "training": {
                "recipe": rec.to_dict(), "recipe_text": str(rec), "weights": settings["weights"], "mode": mode,
                "p_inj": p_inj, "batch_size": batch_size, "world_size": world, "seed": int(seed),
                "max_steps": max_steps, "max_epochs": max_epochs, "val_every": val_every, "patience": patience,
                "steps": result.steps, "best_step": result.best_step, "best_epoch": result.best_epoch,
                "best_val_loss": result.best_val_loss, "stopped_early": result.stopped_early,
                "interrupted": result.interrupted, "history": result.to_dict()["history"],
                "device": str(torch_device), "amp": amp, "seconds": time.perf_counter() - t_start,
            },
            "provenance": {"stream": stream_prov, "real": real_prov, "validation": val_prov},
        }
        metadata = _plain(metadata)
        if rank == 0:
            save_model(out, model, metadata=metadata, overwrite=True if (overwrite or resume) else False)
            if not result.interrupted:
                shutil.rmtree(ckpt, ignore_errors=True)
        if world > 1:
            torch.distributed.barrier()
        model.eval()
        return DetectorResult(path=out, model=model, metadata=metadata, report=report, threshold=threshold,
                              group_recall=group_recall, train=result, recipe=rec, interrupted=result.interrupted)


def _plain(value: Any) -> Any:
    """JSON values only: numpy scalars and arrays to Python, tuples to lists, NaN and inf to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
