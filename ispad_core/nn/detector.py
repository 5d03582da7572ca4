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
import hashlib
import json
import math
import os
import re
import shutil
import stat
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
from ispad_core._shared.files import atomic_output, check_output_path, exclusive_lock, hash_file, remove_stale_temporaries
from ispad_core._shared.validation import check_choice, check_float, check_int
from ispad_core.metrics import classification_report
from ispad_core.nn.backbones import classifier
from ispad_core.nn.modelfile import save_model
from ispad_core.nn.preprocessing import resolve_preprocess
from ispad_core.nn.settings import TrainSettings
from ispad_core.nn.training import (
    TrainResult,
    _as_dataset,
    _distributed,
    _predict_impl,
    _resolve_device,
    torch_threads,
    train,
    training_precision,
)

__all__ = [
    "DEFAULT_P_NEG", "DetectorResult", "Recipe", "default_workers", "few_validation_note", "recipe", "select_real",
    "torch_threads", "train_detector",
]

#: The default probability that a fault-free item is replaced by a confirmed false alarm
#: (``negatives``): over a short fine-tune of a few thousand fault-free items each of a few dozen
#: negatives is seen many times, while 15 of 16 fault-free items still come from the stream's
#: designs (docs/review.md).
DEFAULT_P_NEG = 1 / 16

#: Below this many fault-free validation patches :func:`train_detector` says how coarse its
#: threshold is: the false-alarm rate they can support is about ``1 / (n + 1)``.
FEW_VALIDATION_GOOD = 1000

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
    warmup : int
        Steps of linear warm-up before the cosine schedule (the rate rises from ``lr / warmup`` to
        ``lr``); 0: none.
    """

    name: str
    optimizer: str
    lr: float
    lr_min: float
    t_0: int
    t_mult: int
    weight_decay: float = 1e-2
    momentum: float = 0.9
    warmup: int = 0

    def __str__(self) -> str:
        opt = "SGD (momentum 0.9)" if self.optimizer == "sgd" else "AdamW"
        sched = (f"cosine-annealed to {self.lr_min:g} over {self.t_0} steps" if self.t_mult == 1 else
                 f"cosine warm restarts to {self.lr_min:g} (T_0 {self.t_0}, T_mult {self.t_mult})")
        warm = f"linear warm-up over {self.warmup} steps, then " if self.warmup else ""
        return f"{self.name}: {opt} lr {self.lr:g}, weight decay {self.weight_decay:g}, {warm}{sched}"

    def to_dict(self) -> dict:
        """The recipe as JSON-safe values (``warmup`` only where there is one, as files before it wrote)."""
        out = {"name": self.name, "optimizer": self.optimizer, "lr": self.lr, "lr_min": self.lr_min,
               "t_0": self.t_0, "t_mult": self.t_mult, "weight_decay": self.weight_decay, "momentum": self.momentum}
        return {**out, "warmup": self.warmup} if self.warmup else out


def recipe(*, pretrained: bool, max_steps: int | None = None, lr: float | None = None,
           optimizer: str | None = None, warmup: int | None = None) -> Recipe:
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
    warmup : int, optional
        Steps of linear warm-up before the cosine schedule (default none). A from-scratch
        schedule over ``max_steps`` then anneals over the steps after the warm-up.

    Examples
    --------
    >>> from ispad_core.nn.detector import recipe
    >>> print(recipe(pretrained=False, max_steps=500))
    from-scratch: AdamW lr 0.001, weight decay 0.01, cosine-annealed to 1e-05 over 500 steps
    >>> print(recipe(pretrained=True))
    fine-tune: SGD (momentum 0.9) lr 0.0005, weight decay 0.01, cosine warm restarts to 1e-05 (T_0 7813, T_mult 2)
    >>> print(recipe(pretrained=False, max_steps=500, warmup=100))
    from-scratch: AdamW lr 0.001, weight decay 0.01, linear warm-up over 100 steps, then cosine-annealed to 1e-05 over 400 steps
    """
    if optimizer is not None:
        optimizer = check_choice(optimizer, "optimizer", ("sgd", "adamw"))
    if lr is not None:
        lr = check_float(lr, "lr", minimum=0.0, min_inclusive=False)
    warmup = 0 if warmup is None else check_int(warmup, "warmup", minimum=0)
    if max_steps is not None and warmup >= max_steps:
        raise InputValueError(f"warmup: {warmup} steps of warm-up leave none of the run's {max_steps} (max_steps) "
                              f"to anneal; give fewer")
    if pretrained:
        name, opt, base_lr, t_0, t_mult = "fine-tune", "sgd", 5e-4, 7813, 2
    else:
        name, opt = "from-scratch", "adamw"
        base_lr = 1e-3
        t_0, t_mult = (max_steps - warmup, 1) if max_steps is not None else (7813, 2)
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
        warmup=warmup,
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
    notes : tuple of str
        Warnings about the run (e.g. a threshold set on few fault-free validation patches);
        also in the model file (``validation.notes``) and printed with the report.
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
    notes: tuple = ()

    def __str__(self) -> str:
        groups = "  ".join(f"{g} {r:.1f}%" for g, r in self.group_recall.items())
        state = "interrupted; resume to continue" if self.interrupted else "finished"
        lines = [
            f"validation ({self.metadata['provenance']['validation']['source']}), threshold {self.threshold:.6g}:",
            str(self.report),
        ]
        if groups:
            lines.append(f"recall per group: {groups}")
        lines += [f"warning: {note}" for note in self.notes]
        lines.append(f"model: {self.path} ({state}, {self.train.steps} steps, best at step {self.train.best_step})")
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


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


def _read_real(real: Any, size: int, name: str = "real"):
    from ispad_core.io import RealDefects, read_real_defects

    if isinstance(real, RealDefects):
        return real
    if isinstance(real, (str, os.PathLike)):
        return read_real_defects(real, size=size, name=name)
    if isinstance(real, np.ndarray):
        if real.ndim not in (3, 4) or real.dtype != np.uint8:
            raise InputTypeError(f"{name}: expected uint8 patches (M, H, W[, C]), got {real.dtype} of shape {real.shape}")
        images = tuple(real)
    elif isinstance(real, Sequence):
        images = tuple(np.asarray(im) for im in real)
    else:
        raise InputTypeError(f"{name}: expected a folder, a RealDefects, an array of patches or None, got {type(real).__name__}")
    return RealDefects(images=images, groups=(name,) * len(images),
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


def _check_ckpt_dir(ckpt: Path) -> None:
    """Refuse a link or a non-folder where the checkpoints go (nothing is written through a link)."""
    try:
        st = os.lstat(ckpt)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise InputValueError(
            f"out: the checkpoint folder {ckpt} is a symbolic link; refusing to write through it (remove the link first)"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise InputValueError(f"out: {ckpt} is where the checkpoints of {ckpt.name[: -len(_CKPT_SUFFIX)]} go, but it is "
                         "not a folder; refusing to replace it")


# --------------------------------------------------------------------------- the entry point


def train_detector(
    stream: Any,
    *,
    out: str | os.PathLike,
    real: Any = None,
    negatives: Any = None,
    val: Any = None,
    fraction: float | None = None,
    groups: str | Sequence[str] | None = None,
    selection_seed: int = 0,
    settings: TrainSettings | None = None,
    resume: bool = False,
    overwrite: bool = False,
    **options: Any,
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
        Real defective images: a folder (see :func:`ispad_core.io.read_real_defects`), a
        :class:`~ispad_core.io.RealDefects` or patches ``(M, H, W[, C])``; None: the cold start.
    negatives : path, RealDefects, array or None
        Confirmed false alarms (like ``real``): they replace fault-free items at rate ``p_neg``.
    val : path, LabelledSet, Dataset, (images, labels) or None
        The validation set for model selection and the threshold: an MVTec-layout folder, a
        folder of ``good/`` and defect sub-folders, or a stream file (see
        :func:`ispad_core.io.read_labelled_set`; larger images are centre-cropped), or data in
        memory. None holds out the last tenth of the stream (at most 2 000 items), which then
        is not trained on.
    fraction : float in (0, 1], optional
        Use this fraction of the real defects (see :func:`select_real`).
    groups : str or sequence of str, optional
        Use only real defects of these groups (sub-folder names).
    selection_seed : int, default 0
        The fixed seed of the one shuffle behind ``fraction``; recorded in the model file.
    settings : TrainSettings, optional
        How to train (see :class:`~ispad_core.nn.TrainSettings` for each field): the injection
        (``p_inj``, ``mode``, ``augment`` of the real defects: "auto" takes the stream's preset),
        the model (``backbone``, ``backbone_kwargs``, ``weights``: pretrained weights switch to
        the fine-tuning :func:`recipe`, which ``lr`` and ``optimizer`` override, as ``init_from``,
        a model file to start from), ``p_neg``, the run's length and where it runs;
        ``preprocess`` is stored in the model file.
    resume : bool, default False
        Continue the unfinished run whose checkpoints are in ``out + ".ckpt/"`` (the settings
        must be the same); ends with the weights of an uninterrupted run.
    overwrite : bool, default False
        Replace an existing ``out`` (and discard the checkpoints of an unfinished run).
    **options
        Fields of :class:`~ispad_core.nn.TrainSettings` as keywords, over ``settings``.

    Returns
    -------
    DetectorResult

    Raises
    ------
    FileExistsError
        If ``out`` exists without ``overwrite`` (or ``resume`` of the run that wrote it), or
        checkpoints of an unfinished run exist without ``resume`` or ``overwrite``.
    TypeError, ValueError, FileNotFoundError
        For bad arguments and unreadable inputs; the message names the argument or file.

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
    t_start = time.perf_counter()
    cfg = TrainSettings.build(settings, options, "train_detector")
    out, p_inj = _check_call(out, real, fraction, groups, cfg, negatives)
    _, rank, world = _distributed()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if (cfg.verbose and rank == 0) else (lambda *a: None)
    # one trainer per model file: rank 0 holds the writer lock (out + ".lock") for the whole run
    with (exclusive_lock(out, name="out") if rank == 0 else contextlib.nullcontext()):
        ckpt, unfinished = _check_outputs(out, resume=resume, overwrite=overwrite)
        data = _all_data(stream, val, real, negatives, cfg, p_inj, (fraction, groups, selection_seed))
        model = _new_model(cfg, data)
        run = _make_run(cfg, p_inj, world)
        recorded = _run_settings(run, data)
        if resume and unfinished:
            _check_same_settings(ckpt, recorded)
        elif unfinished and overwrite and rank == 0:
            shutil.rmtree(ckpt)
        _say_plan(say, run, data)
        if rank == 0:
            _prepare_checkpoints(out, ckpt, recorded, fresh=not (resume and unfinished))
        result, pred = _fit(model, data, run, ckpt, resume)
        report, threshold, group_recall = _validation(pred, data.val_set)
        metadata = _metadata(run, data, recorded, result, report, group_recall, pred.labels, t_start)
        if rank == 0:
            save_model(out, model, metadata=metadata, overwrite=True if (overwrite or resume) else False)
            if not result.interrupted:
                shutil.rmtree(ckpt, ignore_errors=True)
        for note in metadata["validation"]["notes"]:
            say(f"warning: {note}")
        if world > 1:
            torch.distributed.barrier()
        model.eval()
        return DetectorResult(path=out, model=model, metadata=metadata, report=report, threshold=threshold,
                              notes=tuple(metadata["validation"]["notes"]),
                              group_recall=group_recall, train=result, recipe=run.recipe, interrupted=result.interrupted)


def _check_call(
    out: Any, real: Any, fraction: Any, groups: Any, cfg: TrainSettings, negatives: Any = None
) -> tuple[Path, float | None]:
    """The output path and the injection probability, checked before any work."""
    if cfg.p_neg is not None and negatives is None:
        raise InputValueError("p_neg: replaces fault-free items by confirmed false alarms, but negatives=None (--negatives)")
    if not isinstance(out, (str, os.PathLike)):
        raise InputTypeError(f"out: expected a file path, got {type(out).__name__}")
    out = Path(os.fspath(out))
    p_inj = cfg.p_inj
    if real is None:
        if cfg.mode == "oversampling":
            raise InputValueError("real: mode='oversampling' trains on real defects over a fault-free stream; got real=None")
        if p_inj is not None:
            raise InputValueError("p_inj: injection needs real defects (real=...); got real=None (the synthetic-only run)")
        if fraction is not None or groups is not None:
            raise InputValueError("fraction, groups: select real defects, but real=None (the synthetic-only run)")
    else:
        from ispad_core.nn.injection import _check_p_inj

        default = 0.5 if cfg.mode == "oversampling" else 1 / 32
        p_inj = _check_p_inj(p_inj if p_inj is not None else default, cfg.batch_size, cfg.mode)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"out: the folder {parent} of {out} does not exist")
    return out, p_inj


def _check_outputs(out: Path, *, resume: bool, overwrite: bool) -> tuple[Path, bool]:
    """The checkpoint folder and whether it holds an unfinished run; refuse what would be overwritten."""
    ckpt = _ckpt_dir(out)
    _check_ckpt_dir(ckpt)
    unfinished = (ckpt / "last.pt").exists()
    if unfinished and not (resume or overwrite):
        raise FileExistsError(
            f"out: {ckpt} holds the checkpoints of an unfinished run; pass resume=True (--resume) to continue it "
            f"or overwrite=True (--overwrite) to start over"
        )
    check_output_path(out, "out", overwrite=overwrite or (resume and unfinished))
    return ckpt, unfinished


def _prepare_checkpoints(out: Path, ckpt: Path, recorded: dict, *, fresh: bool) -> None:
    """Clean what a killed run left (the temporaries of the model file and of the checkpoints), make
    the checkpoint folder, and (for a fresh run) write the settings a resume must match."""
    remove_stale_temporaries(out.parent, names=re.escape(out.name))
    ckpt.mkdir(exist_ok=True)
    _check_ckpt_dir(ckpt)  # again: nothing may have put a link there meanwhile
    remove_stale_temporaries(ckpt, names=rf"last\.pt|best\.pt|{re.escape(_SETTINGS)}")
    if fresh:  # a fresh run (re)writes what a resume must match
        with atomic_output(ckpt / _SETTINGS, name="out", overwrite=True) as tmp:
            tmp.write_text(json.dumps(recorded, indent=1))


@dataclass
class _Data:
    """What a run trains and validates on, with where it came from."""

    train_stream: Any
    train_set: Any
    val_set: Any
    size: int
    channels: int
    labels: np.ndarray | None
    stream_prov: dict
    val_prov: dict
    real_prov: dict
    n_real: int = 0
    neg_prov: dict | None = None
    from_prov: dict | None = None


@dataclass(frozen=True)
class _Run:
    """The settings of a run, resolved: the recipe, preprocessing, injection rate, workers and device."""

    cfg: TrainSettings
    recipe: Recipe
    params: Any
    p_inj: float | None
    world: int
    workers: int
    device: Any


def _training_data(stream: Any, val: Any, cfg: TrainSettings) -> _Data:
    """The stream and the validation set (the stream's last tenth when none is given), checked alike."""
    train_stream, stream_prov = _open_stream(stream)
    size, channels = _patch_shape(train_stream)
    labels = _stream_labels(train_stream)
    if cfg.mode == "oversampling" and labels is not None and labels.any():
        src = stream_prov.get("path") or "the stream"
        raise InputValueError(
            f"stream: mode='oversampling' trains on a pure fault-free stream with real defects at p_inj = 0.5, but "
            f"{src} holds {int(labels.sum())} defective of {len(labels)} items (a balanced stream); write a "
            f"fault-free one with 'ispad synth --defect-fraction 0 --out fault_free.h5 ...' and train on it"
        )
    n_stream = len(train_stream)
    if val is None:
        if cfg.mode == "oversampling":
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
    return _Data(train_stream, train_stream, val_set, size, channels, labels, stream_prov, val_prov,
                 {"path": None, "selected": 0})


def _with_real(data: _Data, real: Any, cfg: TrainSettings, p_inj: float, selection: tuple) -> _Data:
    """The stream with the selected real defects injected (an InjectionDataset), and their provenance."""
    from ispad_core.nn.injection import InjectionDataset
    from ispad_core.nn.transform import RealTransform

    fraction, groups, selection_seed = selection
    size, channels = data.size, data.channels
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
    augment = _real_augment(cfg, data)
    data.train_set = InjectionDataset(data.train_stream, chosen, p_inj=p_inj, batch_size=cfg.batch_size,
                                      seed=cfg.seed, real_transform=RealTransform(size, augment), mode=cfg.mode)
    data.n_real = len(all_real)
    data.real_prov = {
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
    return data


def _real_augment(cfg: TrainSettings, data: _Data) -> Any:
    """The augmentation of the real defects (and of the negatives): ``"auto"`` takes the stream's."""
    augment = cfg.augment
    if augment == "auto":
        aug_name = data.stream_prov.get("augment")
        from ispad_core.augment import AUGMENT_PRESETS

        augment = aug_name if aug_name in AUGMENT_PRESETS else ("lsm1" if aug_name != "none" else None)
    return augment


def _make_run(cfg: TrainSettings, p_inj: Any, world: int) -> _Run:
    """The run's settings resolved: the fine-tuning recipe when it starts from weights or a model file."""
    pretrained = cfg.weights is not None or cfg.init_from is not None
    return _Run(cfg, recipe(pretrained=pretrained, max_steps=cfg.max_steps, lr=cfg.lr, optimizer=cfg.optimizer,
                             warmup=cfg.warmup),
                resolve_preprocess(cfg.preprocess), p_inj, world,
                default_workers() if cfg.workers is None else cfg.workers, _resolve_device(cfg.device))


def _all_data(stream: Any, val: Any, real: Any, negatives: Any, cfg: TrainSettings, p_inj: Any, selection: tuple) -> _Data:
    """The stream, the validation set, the real defects injected and the negatives put in."""
    data = _training_data(stream, val, cfg)
    if real is not None:
        data = _with_real(data, real, cfg, p_inj, selection=selection)
    if negatives is not None:
        data = _with_negatives(data, negatives, cfg)
    return data


def _with_negatives(data: _Data, negatives: Any, cfg: TrainSettings) -> _Data:
    """The training set with fault-free items replaced by confirmed false alarms at rate ``p_neg``."""
    from ispad_core.nn.injection import NegativeDataset
    from ispad_core.nn.transform import RealTransform

    negs = _read_real(negatives, data.size, name="negatives")
    if len(negs) == 0:
        raise InputValueError("negatives: no fault-free windows (an empty array or folder)")
    for f, im in zip(negs.files, negs.images):
        im = np.asarray(im)
        if _channels_of(im) != data.channels or min(im.shape[:2]) < data.size:
            raise InputValueError(f"negatives: {f} has shape {im.shape}; expected at least {data.size} x {data.size} "
                                  f"with {data.channels} channel(s) like the stream's patches")
    p_neg = DEFAULT_P_NEG if cfg.p_neg is None else cfg.p_neg
    augment = _real_augment(cfg, data)
    data.train_set = NegativeDataset(data.train_set, negs, p_neg=p_neg, seed=cfg.seed,
                                     transform=RealTransform(data.size, augment))
    data.neg_prov = {
        "path": None if negs.root == "<memory>" else str(Path(negs.root).resolve()), "count": len(negs),
        "p_neg": p_neg, "files": list(negs.files),
        "augment": None if augment is None else (augment if isinstance(augment, str) else "custom"),
    }
    return data


def few_validation_note(labels: Any, minimum: int = FEW_VALIDATION_GOOD) -> str | None:
    """A warning when a threshold rests on few fault-free validation patches, else None.

    With ``n`` fault-free patches the smallest false-alarm rate (per window) that the validation
    set can tell apart from zero is about ``1 / (n + 1)``: a threshold under which none of them
    scores still lets through a fraction of that order of the fault-free windows of a scan.

    >>> note = few_validation_note([0] * 99 + [1] * 20)
    >>> note.split(":")[0], "1/(n+1) = 0.01 per window" in note
    ('the threshold rests on 99 fault-free validation patches', True)
    >>> few_validation_note([0] * 5000) is None
    True
    """
    labels = np.asarray(labels)
    n = int(np.sum(labels == 0))
    if n >= minimum:
        return None
    rate = 1.0 / (n + 1)
    return (f"the threshold rests on {n} fault-free validation patches: they support a false-alarm rate of about "
            f"1/(n+1) = {rate:.2g} per window at best (a scan of 1 000 windows may show ~{1000 * rate:.3g} false "
            f"alarms); validate on more fault-free patches")


def _run_settings(run: _Run, data: _Data) -> dict:
    """What a resumed run must match (written to the checkpoint folder)."""
    cfg = run.cfg
    return _plain({
        "backbone": cfg.backbone, "backbone_kwargs": dict(cfg.backbone_kwargs or {}),
        "weights": None if cfg.weights is None else str(cfg.weights), "mode": cfg.mode, "p_inj": run.p_inj,
        "batch_size": cfg.batch_size, "seed": int(cfg.seed), "max_steps": cfg.max_steps,
        "max_epochs": cfg.max_epochs, "val_every": cfg.val_every, "patience": cfg.patience,
        "curriculum": None if cfg.curriculum is None else cfg.curriculum.to_dict(),
        "recipe": run.recipe.to_dict(), "preprocess": run.params.to_dict(), "real": data.real_prov.get("files"),
        "stream": data.stream_prov, "val": data.val_prov["source"], "world_size": run.world,
        "from": data.from_prov, "negatives": None if data.neg_prov is None else
        {"files": data.neg_prov["files"], "p_neg": data.neg_prov["p_neg"]},
    })


def _check_same_settings(ckpt: Path, recorded: dict) -> None:
    before = json.loads((ckpt / _SETTINGS).read_text()) if (ckpt / _SETTINGS).exists() else None
    if before is not None and before != recorded:
        diff = [k for k in recorded if before.get(k) != recorded[k]]
        raise InputValueError(f"resume: the run in {ckpt} was started with other settings ({', '.join(diff)}); "
                              f"resume with the same ones or pass overwrite=True to start over")


def _new_model(cfg: TrainSettings, data: _Data) -> nn.Module:
    """The network of the run: initialised from the seed, pretrained ``weights``, or ``init_from``'s
    weights (whose path and SHA-256 go to ``data.from_prov``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = classifier(cfg.backbone, in_channels=data.channels, num_classes=2, dropout=0.1, weights=cfg.weights,
                           **dict(cfg.backbone_kwargs or {}))
    if cfg.init_from is not None:
        data.from_prov = _load_init(model, cfg, data)
    return model


def _load_init(model: nn.Module, cfg: TrainSettings, data: _Data) -> dict:
    """Load the weights of the model file ``cfg.init_from`` into ``model``; its {path, sha256}."""
    from ispad_core.nn.modelfile import read_model_file

    path = Path(os.fspath(cfg.init_from))
    if not path.is_file():
        raise FileNotFoundError(f"init_from (--from): no model file {path}")
    state, meta = read_model_file(path)
    theirs = (meta.get("backbone"), dict(meta.get("backbone_kwargs") or {}), meta.get("in_channels"), meta.get("patch_size"))
    ours = (cfg.backbone, dict(cfg.backbone_kwargs or {}), data.channels, data.size)
    if theirs != ours:
        def text(t):
            kw = "" if not t[1] else f" {t[1]}"
            return f"{t[0]}{kw}, {t[2]} channel(s), {t[3]} x {t[3]} patches"

        raise InputValueError(
            f"init_from (--from): {path} holds a {text(theirs)}, but this run trains a {text(ours)}; --from needs the "
            f"same backbone, channels and patch size (pass --backbone {theirs[0]}, or train without --from)"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputValueError(f"init_from (--from): the weights of {path} do not fit the {cfg.backbone} network: {first}") from None
    digest = hashlib.sha256()
    hash_file(digest, path)
    return {"path": str(path.resolve()), "sha256": digest.hexdigest()}


def _say_plan(say: Any, run: _Run, data: _Data) -> None:
    """Tell the user the recipe, the data and where it runs."""
    cfg, labels, real_prov = run.cfg, data.labels, data.real_prov
    say(f"recipe: {run.recipe}" + ("" if cfg.weights is None else f" (weights {cfg.weights})")
        + ("" if data.from_prov is None else f" (from {data.from_prov['path']})"))
    say(f"stream: {data.stream_prov.get('path') or data.stream_prov.get('type')}: {len(data.train_stream)} patches of "
        f"{data.size} x {data.size}" + ("" if labels is None else f", {100 * float(np.mean(labels)):.0f} % defective"))
    if not data.n_real:
        say("real defects: none (synthetic only: the cold start)")
    else:
        sel = ", ".join(f"{g} {n}" for g, n in real_prov["selected_counts"].items())
        frac = ("" if real_prov["fraction"] is None else
                f" (fraction {real_prov['fraction_text']}, selection seed {real_prov['selection_seed']})")
        say(f"real defects: {real_prov['selected']} of {data.n_real} [{sel}]{frac}, mode {cfg.mode}, "
            f"p_inj {_as_fraction_text(run.p_inj)}, augment {real_prov['augment']}")
    if data.neg_prov is not None:
        say(f"negatives (confirmed false alarms): {data.neg_prov['count']}, replacing fault-free items with p_neg "
            f"{_as_fraction_text(data.neg_prov['p_neg'])}, augment {data.neg_prov['augment']}")
    if cfg.curriculum is not None:
        say(f"curriculum: {cfg.curriculum}")
    say(f"validation: {data.val_prov['source']} ({len(data.val_set)} patches)")
    threads = torch.get_num_threads() if cfg.threads is None else cfg.threads
    say(f"device {run.device} ({training_precision(cfg.amp, run.device)}), {run.workers} loader worker(s), "
        f"{threads} thread(s), batch {cfg.batch_size}" + ("" if run.world == 1 else f" x {run.world} processes"))


def _fit(model: nn.Module, data: _Data, run: _Run, ckpt: Path, resume: bool):
    """Train with the run's recipe, then score the validation set (with the run's threads throughout)."""
    cfg, rec = run.cfg, run.recipe
    trained = cfg.replace(
        optimizer=rec.optimizer, lr=rec.lr, lr_min=rec.lr_min, momentum=rec.momentum, weight_decay=rec.weight_decay,
        t_0=rec.t_0, t_mult=rec.t_mult, warmup=rec.warmup, preprocess=run.params, device=run.device, workers=run.workers, threads=None,
    )
    with torch_threads(cfg.threads):
        result = train(model, data.train_set, data.val_set, settings=trained, checkpoint_dir=ckpt, resume=resume)
        # the threshold on full-precision scores: predict and inspect score in full precision
        pred = _predict_impl(
            model, data.val_set, distributed_shard=True, batch_size=cfg.batch_size, preprocess=run.params,
            device=run.device, amp_dtype=None, num_workers=run.workers, channels_last=False,
        )
    return result, pred


def _validation(pred: Any, val_set: Any) -> tuple[Any, float, dict]:
    """The validation report, its F1-optimal threshold and the recall of each defect group at it."""
    report = classification_report(pred.labels, pred.scores)
    threshold = float(report.threshold)
    val_groups = _val_groups(val_set, pred.labels)
    group_recall = {}
    for g in sorted({g for g, y in zip(val_groups, pred.labels.tolist()) if y == 1}):
        sel = np.array([vg == g for vg in val_groups]) & (pred.labels == 1)
        group_recall[g] = float(100.0 * np.mean(pred.scores[sel] >= threshold))
    return report, threshold, group_recall


def _metadata(
    run: _Run, data: _Data, recorded: dict, result: Any, report: Any, group_recall: dict, labels: Any, t_start: float
) -> dict:
    """The model file's metadata (see :mod:`ispad_core.nn.modelfile`); ``labels`` are the validation set's."""
    cfg = run.cfg
    n_val = len(labels)
    notes = [n for n in (few_validation_note(labels),) if n]
    return _plain({
        "backbone": cfg.backbone,
        "backbone_kwargs": dict(cfg.backbone_kwargs or {}),
        "in_channels": data.channels,
        "num_classes": 2,
        "dropout": 0.1,
        "patch_size": data.size,
        "preprocess": run.params.to_dict(),
        "threshold": float(report.threshold),
        "validation": {**report.to_dict(), "group_recall": group_recall, "n": int(n_val), "notes": notes},
        "training": {
            "recipe": run.recipe.to_dict(), "recipe_text": str(run.recipe), "weights": recorded["weights"],
            "init_from": None if data.from_prov is None else data.from_prov["path"],
            "mode": cfg.mode, "p_inj": run.p_inj, "batch_size": cfg.batch_size, "world_size": run.world,
            "seed": int(cfg.seed), "max_steps": cfg.max_steps, "max_epochs": cfg.max_epochs,
            "val_every": cfg.val_every, "patience": cfg.patience,
            "curriculum": None if cfg.curriculum is None else cfg.curriculum.to_dict(), "steps": result.steps, "best_step": result.best_step,
            "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
            "stopped_early": result.stopped_early, "interrupted": result.interrupted,
            "history": result.to_dict()["history"], "device": str(run.device), "amp": cfg.amp,
            "precision": training_precision(cfg.amp, run.device),
            "seconds": time.perf_counter() - t_start,
        },
        "provenance": {"stream": data.stream_prov, "real": data.real_prov, "validation": data.val_prov,
                       **({} if data.from_prov is None else {"from": data.from_prov}),
                       **({} if data.neg_prov is None else {"negatives": data.neg_prov})},
    })


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
