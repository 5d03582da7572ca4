"""The settings of a training run, in one frozen object that :func:`ispad_core.nn.train`,
:func:`ispad_core.nn.train_detector`, ``ispad train`` and the experiment runner share."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_choice, check_float, check_int, take_renamed

__all__ = ["PAPER_RECIPE", "ContrastCurriculum", "TrainSettings"]

#: The optimiser settings :func:`ispad_core.nn.train` uses where a TrainSettings leaves them None:
#: the paper's SGD with momentum and cosine warm restarts.
PAPER_RECIPE = {"optimizer": "sgd", "lr": 5e-4, "lr_min": 1e-5, "momentum": 0.9, "weight_decay": 1e-2,
                "t_0": 7813, "t_mult": 2, "warmup": 0}


def _optional_int(value: Any, name: str, minimum: int = 1) -> int | None:
    return None if value is None else check_int(value, name, minimum=minimum)


def _optional_float(value: Any, name: str, **bounds: Any) -> float | None:
    return None if value is None else check_float(value, name, **bounds)


CURRICULUM_SHAPES = ("linear", "cosine")
CURRICULUM_SELECTIONS = ("all", "native")


@dataclass(frozen=True)
class ContrastCurriculum:
    """A contrast curriculum: every synthetic defect's contrast multiplied by a gain that starts at
    ``start`` and anneals to 1 (the preset's native contrast) over the first ``fraction`` of the
    run's optimizer steps, then stays at 1.

    The gain of step ``s`` (0-based) of a run of ``T`` steps, with ``S = fraction * T``:
    ``1 + (start - 1) * (1 - s / S)`` (``"linear"``) or ``1 + (start - 1) * (1 + cos(pi s / S)) / 2``
    (``"cosine"``) for ``s < S``, and 1 from ``S`` on. It applies only to a stream drawn on the
    fly (:class:`ispad_core.stream.SyntheticStream`), whose defects are scaled with
    :meth:`~ispad_core.synth.DefectParams.scale_contrast` (the visibility threshold unscaled).

    Attributes
    ----------
    start : float
        The gain at step 0, in [1, 10] (e.g. 3).
    fraction : float
        The fraction of the run's steps over which the gain anneals to 1, in (0, 1].
    shape : {"linear", "cosine"}
        How it anneals (default "linear").
    selection : {"all", "native"}
        Which validations may select the model that training keeps (the lowest validation loss):
        ``"all"`` (default) every one; ``"native"`` only those from step ``S`` on, once the gain
        is 1 (the annealing's models are still validated and recorded; early stopping counts from
        ``S``). Written as a last ``:native`` in the text form.

    Examples
    --------
    >>> c = ContrastCurriculum.parse("3:0.5")
    >>> c.gains([0, 25, 50, 99], total_steps=100).tolist()
    [3.0, 2.0, 1.0, 1.0]
    >>> ContrastCurriculum(3, 0.5, "cosine").gains([25], total_steps=100).tolist()
    [2.0]
    >>> ContrastCurriculum.parse("6:0.5:native").native_from(1000)
    500.0
    """

    start: float = 3.0
    fraction: float = 0.5
    shape: str = "linear"
    selection: str = "all"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "start", check_float(self.start, "curriculum start gain", minimum=1.0, maximum=10.0))
        set_(self, "fraction", check_float(self.fraction, "curriculum fraction", minimum=0.0, maximum=1.0,
                                           min_inclusive=False))
        check_choice(self.shape, "curriculum shape", CURRICULUM_SHAPES)
        check_choice(self.selection, "curriculum selection", CURRICULUM_SELECTIONS)

    @classmethod
    def parse(cls, text: str) -> ContrastCurriculum:
        """``"START:FRACTION[:SHAPE][:native]"``, e.g. ``"3:0.5"``, ``"3:0.5:cosine"`` or ``"6:0.5:native"``."""
        if not isinstance(text, str):
            raise InputTypeError(f"curriculum: expected text START:FRACTION[:SHAPE][:native], got {type(text).__name__}")
        parts = text.strip().split(":")
        selection = "all"
        if len(parts) > 2 and parts[-1] == "native":
            parts, selection = parts[:-1], "native"
        if len(parts) not in (2, 3):
            raise InputValueError(f"curriculum: expected START:FRACTION[:SHAPE][:native] such as 3:0.5, got {text!r}")
        try:
            start, fraction = float(parts[0]), float(parts[1])
        except ValueError:
            raise InputValueError(f"curriculum: expected numbers in START:FRACTION such as 3:0.5, got {text!r}") from None
        return cls(start, fraction, *(parts[2:] or ["linear"]), selection=selection)

    def native_from(self, total_steps: int) -> float:
        """The step ``S = fraction * total_steps`` from which the gain is 1 (and, with
        ``selection="native"``, validations may select the model)."""
        return self.fraction * check_int(total_steps, "total_steps", minimum=1)

    @classmethod
    def of(cls, value: Any) -> ContrastCurriculum | None:
        """A ContrastCurriculum from one, its text, a ``(start, fraction[, shape])`` sequence, a
        dict of its fields, or None."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, Mapping):
            return cls(**value)
        if isinstance(value, (tuple, list)) and len(value) in (2, 3):
            return cls(*value)
        raise InputTypeError(f"curriculum: expected a ContrastCurriculum, 'START:FRACTION', a (start, fraction) "
                             f"pair or None, got {type(value).__name__}")

    def gains(self, steps: Any, total_steps: int) -> np.ndarray:
        """The gain of each 0-based step in ``steps`` (array_like of int) of a run of ``total_steps``.

        Returns
        -------
        numpy.ndarray of float64, the shape of ``steps``; each in [1, start], non-increasing in the step.
        """
        total_steps = check_int(total_steps, "total_steps", minimum=1)
        s = np.asarray(steps, dtype=np.float64)
        span = self.fraction * total_steps
        t = np.clip(s / span, 0.0, 1.0)
        ramp = (1.0 - t) if self.shape == "linear" else 0.5 * (1.0 + np.cos(math.pi * t))
        return 1.0 + (self.start - 1.0) * ramp

    def to_dict(self) -> dict:
        d = {"start": self.start, "fraction": self.fraction, "shape": self.shape}
        if self.selection != "all":  # the files of runs without it stay as they were
            d["selection"] = self.selection
        return d

    def __str__(self) -> str:
        text = f"contrast x {self.start:g} annealed {self.shape}ly to x 1 over the first {self.fraction:g} of the steps"
        return text + ("; the model selected from native contrast on" if self.selection == "native" else "")


@dataclass(frozen=True)
class TrainSettings:
    """How to train: the length of the run, the optimiser, the data, the model and where it runs.

    Give one as ``settings=`` to :func:`ispad_core.nn.train` or
    :func:`ispad_core.nn.train_detector`, or its fields as keywords (which then override the
    settings' fields): ``train_detector(stream, out=..., settings=TrainSettings(max_steps=500))``
    and ``train_detector(stream, out=..., max_steps=500)`` are the same run.

    Attributes
    ----------
    batch_size : int, default 128
        Patches per batch (per process under torch.distributed).
    max_epochs, max_steps : int, optional
        Limits of the run; without either it stops early after ``patience`` validations.
    val_every : int, optional
        Validate every this many optimizer steps (counted over the run) instead of every epoch.
    patience : int, default 20
        Validations without a lower validation loss before stopping.
    optimizer, lr, lr_min, momentum, weight_decay, t_0, t_mult, warmup : optional
        The optimiser (``"sgd"`` or ``"adamw"``) and its cosine schedule
        (``CosineAnnealingWarmRestarts`` with period ``t_0`` steps growing by ``t_mult``), after
        ``warmup`` steps of linear warm-up (the rate rises from ``lr / warmup`` to ``lr``; 0: none,
        the recipes' value). None takes the recipe's value: :func:`~ispad_core.nn.train` uses :data:`PAPER_RECIPE`,
        :func:`~ispad_core.nn.train_detector` its :func:`~ispad_core.nn.detector.recipe`.
    preprocess : Preprocess, preset name or None, default "lsm2"
        Batch preprocessing (see :func:`ispad_core.nn.preprocess_batch`).
    augment : "auto", preset name, AugmentParams or None, default "auto"
        :func:`~ispad_core.nn.train_detector`: augmentation of every draw of a real defect.
    p_inj : float, optional
        :func:`~ispad_core.nn.train_detector`: the injection probability (default 1/32, 0.5
        for oversampling).
    mode : {"mixed", "oversampling"}, default "mixed"
        :func:`~ispad_core.nn.train_detector`: how real defects enter the stream.
    backbone : str, default "resnet18"
        :func:`~ispad_core.nn.train_detector`: a built-in backbone or ``"package.module:function"``.
    backbone_kwargs : dict, optional
        :func:`~ispad_core.nn.train_detector`: extra keyword arguments of the backbone (JSON-safe).
    weights : path, optional
        :func:`~ispad_core.nn.train_detector`: pretrained weights (the fine-tuning recipe).
    init_from : path, optional
        :func:`~ispad_core.nn.train_detector`: a model file (``model.pt``) whose weights start the
        network (``ispad train --from``): same backbone, backbone arguments, channels and patch
        size; the fine-tuning recipe; the file's path and SHA-256 go into the new model file's
        provenance. Excludes ``weights``.
    p_neg : float, optional
        :func:`~ispad_core.nn.train_detector` with ``negatives``: the probability that a
        fault-free item of the stream is replaced by one of the confirmed false alarms (default
        1/16; in (0, 0.5]).
    device : str or torch.device, optional
        Default: CUDA if available, else the CPU.
    amp : bool, optional
        Mixed precision in training and validation: None uses fp16 autocast on CUDA and full
        precision elsewhere; True also bf16 autocast on the CPU (on a CPU with AVX-512 BF16 or
        AMX about 1.5 times the fp32 rate, with the same test figures in docs/training.md;
        emulated and slower elsewhere); False never. The threshold is chosen on full-precision
        scores, as :func:`~ispad_core.nn.predict` computes them.
    channels_last : bool, default False
        Train in ``torch.channels_last`` memory format.
    workers : int, optional
        DataLoader worker processes: None is 0 for :func:`~ispad_core.nn.train` and
        :func:`~ispad_core.nn.detector.default_workers` for
        :func:`~ispad_core.nn.train_detector` (``num_workers``, the old name, still works and warns).
    threads : int, optional
        torch CPU threads during the run (restored afterwards); None leaves torch's setting.
    curriculum : ContrastCurriculum, "START:FRACTION[:SHAPE]" or None
        A contrast curriculum for a stream drawn on the fly (:class:`ContrastCurriculum`): the
        synthetic defects start ``START`` times as strong and anneal to native over the first
        ``FRACTION`` of the steps (needs ``max_steps`` or ``max_epochs``). None (default): native
        contrast throughout.
    seed : int, default 0
        Initialisation, data order, injections and dropout.
    verbose : bool, default True
        Progress on stderr (rank 0 only); ``ispad train --quiet`` turns it off.
    log_every : int, optional
        Steps between progress lines when stderr is not a terminal (default about every 30 s).

    Examples
    --------
    >>> s = TrainSettings(max_steps=200, batch_size=32)
    >>> s.replace(lr=1e-3).lr, s.optimizer is None
    (0.001, True)
    """

    batch_size: int = 128
    max_epochs: int | None = None
    max_steps: int | None = None
    val_every: int | None = None
    patience: int = 20
    optimizer: str | None = None
    lr: float | None = None
    lr_min: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    t_0: int | None = None
    t_mult: int | None = None
    warmup: int | None = None
    preprocess: Any = "lsm2"
    augment: Any = "auto"
    p_inj: float | None = None
    mode: str = "mixed"
    backbone: str = "resnet18"
    backbone_kwargs: dict | None = None
    weights: str | os.PathLike | None = None
    init_from: str | os.PathLike | None = None
    p_neg: float | None = None
    device: Any = None
    amp: bool | None = None
    channels_last: bool = False
    workers: int | None = None
    threads: int | None = None
    curriculum: Any = None
    seed: int = 0
    verbose: bool = True
    log_every: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: store the checked values once, here
        set_(self, "batch_size", check_int(self.batch_size, "batch_size", minimum=1))
        for name in ("max_epochs", "max_steps", "val_every", "log_every", "t_0", "t_mult", "threads"):
            set_(self, name, _optional_int(getattr(self, name), name))
        set_(self, "workers", _optional_int(self.workers, "workers", minimum=0))
        set_(self, "warmup", _optional_int(self.warmup, "warmup", minimum=0))
        set_(self, "patience", check_int(self.patience, "patience", minimum=1))
        if not isinstance(self.seed, numbers.Integral) or isinstance(self.seed, bool):
            raise InputTypeError(f"seed: expected an int, got {type(self.seed).__name__}")
        set_(self, "seed", check_int(self.seed, "seed", minimum=0, maximum=2**63 - 1))
        if self.optimizer is not None:
            check_choice(self.optimizer, "optimizer", ("sgd", "adamw"))
        set_(self, "lr", _optional_float(self.lr, "lr", minimum=0.0, min_inclusive=False))
        set_(self, "lr_min", _optional_float(self.lr_min, "lr_min", minimum=0.0))
        set_(self, "momentum", _optional_float(self.momentum, "momentum", minimum=0.0, maximum=1.0, max_inclusive=False))
        set_(self, "weight_decay", _optional_float(self.weight_decay, "weight_decay", minimum=0.0))
        check_choice(self.mode, "mode", ("mixed", "oversampling"))
        set_(self, "curriculum", ContrastCurriculum.of(self.curriculum))
        set_(self, "p_neg", _optional_float(self.p_neg, "p_neg", minimum=0.0, maximum=0.5, min_inclusive=False))
        if self.init_from is not None and self.weights is not None:
            raise InputValueError("init_from: starts the network from a model file's weights; it excludes weights= "
                                  "(--from and --weights: give one)")
        if not isinstance(self.backbone, str):
            raise InputTypeError(
                f"backbone: expected a built-in name or 'package.module:function', got {type(self.backbone).__name__}"
            )
        if self.backbone_kwargs is not None and not isinstance(self.backbone_kwargs, Mapping):
            raise InputTypeError(f"backbone_kwargs: expected a dict or None, got {type(self.backbone_kwargs).__name__}")

    def replace(self, **changes: Any) -> TrainSettings:
        """A copy with some fields changed (and checked)."""
        return dataclasses.replace(self, **changes)

    def recipe_value(self, name: str) -> Any:
        """The optimiser setting ``name``: this one's, or the paper's where it is None."""
        value = getattr(self, name)
        return PAPER_RECIPE[name] if value is None else value

    @classmethod
    def build(cls, settings: TrainSettings | None, options: dict, caller: str) -> TrainSettings:
        """``settings`` (default: all defaults) with the keyword ``options`` of ``caller`` on top.

        An unknown keyword is refused as Python refuses one: ``caller() got an unexpected keyword
        argument 'x'``; ``num_workers`` is the old name of ``workers``.
        """
        take_renamed(options, caller, "num_workers", "workers")
        if settings is not None and not isinstance(settings, TrainSettings):
            raise InputTypeError(f"settings: expected a TrainSettings, got {type(settings).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        for key in options:
            if key not in fields:
                raise InputTypeError(f"{caller}() got an unexpected keyword argument {key!r}")
        base = settings if settings is not None else cls()
        return dataclasses.replace(base, **options) if options else base
