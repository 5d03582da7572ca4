"""The paper's grid of training runs as one call: strategy x group x real defects x backbone x seed.

The ISP-AD paper's results (tables 2 to 4) are a grid of runs, each trained and scored the same
way. :func:`run_experiment` runs such a grid from a TOML file (:func:`load_config`) and writes::

    out/<run>/model.pt          the trained detector
    out/<run>/report.json       the run's settings, test-set row, per-group recall, timings
    out/results.csv             one row per run: the paper's columns plus backbone, strategy, seed
    out/results.md              the same as a Markdown table
    out/mcc_vs_real.png         MCC against the number of real defects, one line per strategy and
                                group, mean and spread (min to max) over seeds
    out/_data/                  data made once for all runs (the stream, when made from scans)

Strategies (section 5.2 of the paper):

``synthetic``
    The balanced synthetic stream alone: the cold start, 0 real defects.
``mixed``
    Real defects injected into the balanced stream with probability ``p_inj`` (equation 1).
``oversampling``
    Real defects injected with ``p_inj = 0.5`` into a pure fault-free stream (Krassnig et al.
    2024); the fault-free stream is the fault-free half of the balanced one.

Real defects are selected by fraction (``grid.fractions``: nested prefixes of one shuffle of the
whole pool, per group with the mixed selection's count, as in the paper's tables) or by count
(``grid.counts``: an int for each group of ``grid.groups``, or a table such as
``{points = 5, area = 5}``), always with :mod:`ispad_core.fractions` and the run's seed, so the
defects of a smaller selection are in every larger one of the same seed.

Scoring follows the paper: the threshold is the F1-optimal one on the validation set (the
model-selection set); the test set's counts, MCC, recall and FPR are taken at that threshold,
and the recall of every defect group of the test set beside them.

Every run is a function of the config and its grid point: its seed fixes the selection, the
injections, the initialisation and the data order. A finished run (its model file and a report
whose settings equal the run's) is skipped when the grid is run again; an interrupted one resumes
from its checkpoint.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import numbers
import os
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.files import atomic_output, exclusive_lock
from ispad_core._shared.version import __version__
from ispad_core.fractions import nested_fractions, parse_fraction, select_defects

__all__ = [
    "STRATEGIES",
    "ConfigError",
    "ExperimentConfig",
    "ExperimentResult",
    "RunSpec",
    "TrainOutput",
    "TrainRequest",
    "load_config",
    "run_experiment",
    "score_test_set",
    "select_real",
    "train_step",
]

STRATEGIES = ("synthetic", "mixed", "oversampling")
"""Training strategies of the grid."""

_SCHEMA: dict[str, dict[str, Any]] = {
    "data": {"benchmark": None, "stream": None, "scans": None, "real": None, "val": None, "test": None},
    "stream": {"n": 4096, "size": 64, "preset": "mixed", "augment": "none", "contrast": 1.0, "seed": 0},
    "grid": {
        "strategies": ["synthetic", "mixed"],
        "groups": ["mixed"],
        "fractions": [],
        "counts": [],
        "backbones": ["resnet18"],
        "seeds": [0],
    },
    "train": {
        "p_inj": "1/32",
        "steps": 200,
        "batch_size": 32,
        "lr": 1e-3,
        "optimizer": "adamw",
        "preprocess": "lsm2",
        "augment": "none",
        "val_every": None,
        "patience": 1000,
        "threads": None,
    },
}


class ConfigError(InputValueError):
    """A config that is refused (a ValueError); the message names the key."""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class RunSpec:
    """One grid point.

    Attributes
    ----------
    strategy : str
        ``"synthetic"``, ``"mixed"`` or ``"oversampling"``.
    group : str
        ``"-"`` (synthetic), ``"mixed"`` (any group) or a defect group.
    selection : str
        How the real defects were chosen: ``"none"`` (synthetic), a fraction of the pool
        (``"f1/4"``), a count (``"n10"``) or counts per group (``"area=5+points=5"``).
    backbone : str
    seed : int
    """

    strategy: str
    group: str
    selection: str
    backbone: str
    seed: int

    @property
    def name(self) -> str:
        """The run's folder name."""
        sel = self.selection.replace("/", "-").replace("=", "").replace("+", "-")
        backbone = "".join(c if c.isalnum() or c in "_-." else "_" for c in self.backbone)
        return f"{self.strategy}_{self.group.replace('-', 'none')}_{sel}_{backbone}_seed{self.seed}"


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment config (see :func:`load_config`).

    Attributes
    ----------
    path : pathlib.Path or None
        The TOML file it came from.
    data : dict
        ``stream``, ``scans``, ``real``, ``val``, ``test`` as absolute paths (or None).
    stream, grid, train : dict
        The sections with defaults filled in.
    """

    path: Path | None
    data: dict
    stream: dict
    grid: dict
    train: dict

    def runs(self) -> list[RunSpec]:
        """The grid points, synthetic first, then by strategy, group, selection, backbone, seed."""
        out: list[RunSpec] = []
        g = self.grid
        for strategy in g["strategies"]:
            if strategy == "synthetic":
                points = [("-", "none")]
            else:
                points = []
                for group in g["groups"]:
                    points += [(group, "f" + _fraction_label(f)) for f in g["fractions"]]
                    points += [(group, f"n{c}") for c in g["counts"] if isinstance(c, int)]
                for c in g["counts"]:
                    if isinstance(c, dict):
                        groups = sorted(c)
                        label = "+".join(f"{k}={c[k]}" for k in groups)
                        points.append((groups[0] if len(groups) == 1 else "mixed", label))
            for group, sel in points:
                for backbone in g["backbones"]:
                    for seed in g["seeds"]:
                        out.append(RunSpec(strategy, group, sel, backbone, seed))
        return out

    def to_dict(self) -> dict:
        """JSON-safe: paths as strings."""
        return {
            "data": {k: (str(v) if v is not None else None) for k, v in self.data.items()},
            "stream": dict(self.stream),
            "grid": json.loads(json.dumps(self.grid)),
            "train": dict(self.train),
        }


def _fraction_label(f: float) -> str:
    fr = Fraction(f).limit_denominator(1 << 20)
    return str(fr.numerator) if fr.denominator == 1 else f"{fr.numerator}/{fr.denominator}"


def _err(key: str, message: str) -> ConfigError:
    return ConfigError(f"config: {key}: {message}")


def _check_table(section: Any, key: str, known: Mapping) -> dict:
    if not isinstance(section, Mapping):
        raise _err(key, f"expected a table, got {type(section).__name__}")
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise _err(f"{key}.{unknown[0]}", f"unknown key (known in [{key}]: {', '.join(known)})")
    return dict(section)


def _int(value: Any, key: str, minimum: int, maximum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _err(key, f"expected an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise _err(key, f"expected an integer {bound}, got {value}")
    return value


def _number(value: Any, key: str, lo: float, hi: float, lo_open: bool = True) -> float:
    try:
        v = float(Fraction(value)) if isinstance(value, str) else None
    except (ValueError, ZeroDivisionError):
        v = None
    if v is None:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise _err(key, f"expected a number, got {value!r}")
        v = float(value)
    if not math.isfinite(v) or (v <= lo if lo_open else v < lo) or v > hi:
        raise _err(key, f"expected a value in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {value!r}")
    return v


def _str_list(value: Any, key: str, choices: Sequence[str] | None = None) -> list:
    if not isinstance(value, list) or not value:
        raise _err(key, f"expected a non-empty list, got {value!r}")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v:
            raise _err(f"{key}[{i}]", f"expected a non-empty string, got {v!r}")
        if choices is not None and v not in choices:
            raise _err(f"{key}[{i}]", f"expected one of {', '.join(choices)}, got {v!r}")
    if len(set(value)) != len(value):
        raise _err(key, f"expected distinct values, got {value}")
    return list(value)


def _path(value: Any, key: str, base: Path, kind: str) -> Path:
    if not isinstance(value, str) or not value:
        raise _err(key, f"expected a path string, got {value!r}")
    p = Path(os.path.expanduser(value))
    p = p if p.is_absolute() else base / p
    ok = p.is_dir() if kind == "folder" else p.is_file()
    if not ok:
        raise _err(key, f"{kind} {p} does not exist")
    return p


def load_config(config: str | os.PathLike | Mapping, *, base: str | os.PathLike | None = None) -> ExperimentConfig:
    """Read and check an experiment config; refuse a bad one before anything is trained.

    Parameters
    ----------
    config : path or mapping
        A TOML file, or its content as a dict. Sections and keys (defaults in brackets)::

            [data]          benchmark (a folder written by ``ispad benchmark``: fills in the
                            other keys), stream (HDF5 balanced stream) or scans (folder of
                            fault-free images to make one), real (folder with one sub-folder per
                            defect group), val and test (MVTec layout folders)
            [stream]        n [4096], size [64], preset ["mixed"], augment ["none"],
                            contrast [1.0] (factor on the preset's contrast), seed [0]
            [grid]          strategies [["synthetic", "mixed"]], groups [["mixed"]],
                            fractions [[]] (numbers or "1/8"), counts [[]] (ints or tables like
                            {points = 5, area = 5} or {area = "all", points = 5}),
                            backbones [["resnet18"]], seeds [[0]]. A fraction or an int count is
                            run for every group of ``groups`` ("mixed" is the whole pool; a group
                            gets the mixed selection's count, or all it has when that is fewer,
                            as in the paper's tables); a table is one run with those counts.
            [train]         p_inj ["1/32"], steps [200], batch_size [32], lr [1e-3],
                            optimizer ["adamw"], preprocess ["lsm2"], augment ["none"] (of the
                            real defects' draws), val_every [every epoch],
                            patience [1000] (validations without a lower validation loss),
                            threads [CPUs / jobs] (torch CPU threads per run; fix it to get the
                            same numbers with any --jobs: CPU results differ in the last bits
                            between thread counts)

    base : path, optional
        Folder that relative paths are resolved against; default: the TOML file's folder (the
        current folder for a dict).

    Returns
    -------
    ExperimentConfig

    Raises
    ------
    ConfigError (a ValueError)
        Naming the key: an unknown key, a missing file or folder, a fraction outside (0, 1],
        ``p_inj`` outside ``[1/B, 0.25]``, a value of a wrong type, an empty grid.
    FileNotFoundError
        If the TOML file does not exist.

    Examples
    --------
    >>> from ispad_core.experiment import load_config
    >>> load_config({"data": {"val": ".", "test": "."}, "grid": {"strategies": ["synthetic"]},
    ...              "train": {"p_inj": "1/64"}})
    Traceback (most recent call last):
    ...
    ispad_core.experiment.runner.ConfigError: config: train.p_inj: expected a value in [1/B, 0.25] = [0.03125, 0.25] for batch_size B = 32, got '1/64'
    """
    path = None
    if isinstance(config, Mapping):
        raw = dict(config)
        root = Path(base) if base is not None else Path.cwd()
    elif isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"config: {path} does not exist")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None
        root = Path(base) if base is not None else path.resolve().parent
    else:
        raise InputTypeError(f"config: expected a TOML file path or a dict, got {type(config).__name__}")
    top = _check_table(raw, "config", _SCHEMA)
    sections = {}
    for name, defaults in _SCHEMA.items():
        sec = _check_table(top.get(name, {}), name, defaults)
        sections[name] = {**{k: v for k, v in defaults.items()}, **sec}

    # ---- grid
    g = sections["grid"]
    g["strategies"] = _str_list(g["strategies"], "grid.strategies", STRATEGIES)
    g["groups"] = _str_list(g["groups"], "grid.groups")
    g["backbones"] = _str_list(g["backbones"], "grid.backbones")
    if not isinstance(g["seeds"], list) or not g["seeds"]:
        raise _err("grid.seeds", f"expected a non-empty list of integers, got {g['seeds']!r}")
    g["seeds"] = [_int(s, f"grid.seeds[{i}]", 0, 2**32 - 1) for i, s in enumerate(g["seeds"])]
    if len(set(g["seeds"])) != len(g["seeds"]):
        raise _err("grid.seeds", f"expected distinct seeds, got {g['seeds']}")
    if not isinstance(g["fractions"], list):
        raise _err("grid.fractions", f"expected a list, got {g['fractions']!r}")
    fracs = []
    for i, f in enumerate(g["fractions"]):
        try:
            fracs.append(parse_fraction(f, f"grid.fractions[{i}]"))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config: {exc}") from None
    if len(set(fracs)) != len(fracs):
        raise _err("grid.fractions", f"expected distinct values, got {g['fractions']}")
    g["fractions"] = fracs
    if not isinstance(g["counts"], list):
        raise _err("grid.counts", f"expected a list, got {g['counts']!r}")
    counts = []
    for i, c in enumerate(g["counts"]):
        key = f"grid.counts[{i}]"
        if isinstance(c, Mapping):
            if not c:
                raise _err(key, "expected at least one group")
            entry = {}
            for grp, v in c.items():
                if isinstance(v, str) and v.strip().lower() == "all":
                    entry[str(grp)] = "all"
                else:
                    entry[str(grp)] = _int(v, f"{key}.{grp}", 0)
            counts.append(entry)
        else:
            counts.append(_int(c, key, 1))
    g["counts"] = counts
    real_needed = any(s != "synthetic" for s in g["strategies"])
    if real_needed and not fracs and not counts:
        raise _err("grid.fractions", "expected fractions or counts of real defects for the strategies mixed/oversampling, got neither")

    # ---- train
    t = sections["train"]
    t["steps"] = _int(t["steps"], "train.steps", 1)
    t["batch_size"] = _int(t["batch_size"], "train.batch_size", 4)
    t["patience"] = _int(t["patience"], "train.patience", 1)
    t["lr"] = _number(t["lr"], "train.lr", 0.0, 10.0)
    if t["val_every"] is not None:
        t["val_every"] = _int(t["val_every"], "train.val_every", 1)
    if t["threads"] is not None:
        t["threads"] = _int(t["threads"], "train.threads", 1, 1024)
    if t["augment"] != "none":
        from ispad_core.augment import AUGMENT_PRESETS

        if t["augment"] not in AUGMENT_PRESETS:
            raise _err("train.augment", f"expected none or one of {', '.join(AUGMENT_PRESETS)}, got {t['augment']!r}")
    if t["optimizer"] not in ("sgd", "adamw"):
        raise _err("train.optimizer", f"expected sgd or adamw, got {t['optimizer']!r}")
    if t["preprocess"] not in ("lsm1", "lsm2", "asm", "none"):
        raise _err("train.preprocess", f"expected lsm1, lsm2, asm or none, got {t['preprocess']!r}")
    b = t["batch_size"]
    p = _number(t["p_inj"], "train.p_inj", 0.0, 1.0)
    if p < (1.0 / b) * (1 - 1e-9) or p > 0.25:
        raise _err("train.p_inj", f"expected a value in [1/B, 0.25] = [{1 / b:g}, 0.25] for batch_size B = {b}, got {t['p_inj']!r}")
    t["p_inj"] = p

    # ---- stream
    s = sections["stream"]
    s["n"] = _int(s["n"], "stream.n", 2)
    s["size"] = _int(s["size"], "stream.size", 16, 4096)
    s["seed"] = _int(s["seed"], "stream.seed", 0, 2**63 - 1)
    s["contrast"] = _number(s["contrast"], "stream.contrast", 0.0, 100.0)
    for key in ("preset", "augment"):
        if not isinstance(s[key], str):
            raise _err(f"stream.{key}", f"expected a name, got {s[key]!r}")
    from ispad_core.synth import PRESETS

    if s["preset"] not in PRESETS:
        raise _err("stream.preset", f"expected one of {', '.join(PRESETS)}, got {s['preset']!r}")
    if s["augment"] != "none":
        from ispad_core.augment import AUGMENT_PRESETS

        if s["augment"] not in AUGMENT_PRESETS:
            raise _err("stream.augment", f"expected none or one of {', '.join(AUGMENT_PRESETS)}, got {s['augment']!r}")

    # ---- data
    d = sections["data"]
    data: dict[str, Path | None] = {}
    bench = _path(d["benchmark"], "data.benchmark", root, "folder") if d["benchmark"] is not None else None
    for key, kind, sub in (("stream", "file", None), ("scans", "folder", "scans"), ("real", "folder", "real"),
                           ("val", "folder", "val"), ("test", "folder", "test")):
        if d[key] is not None:
            data[key] = _path(d[key], f"data.{key}", root, kind)
        elif bench is not None and sub is not None:
            data[key] = _path(str(bench / sub), f"data.benchmark ({sub}/)", root, kind)
        else:
            data[key] = None
    if data["stream"] is None and data["scans"] is None:
        raise _err("data.stream", "expected a stream file or a folder of scans (data.scans) to make one, got neither")
    for key in ("val", "test"):
        if data[key] is None:
            raise _err(f"data.{key}", "expected a folder in the MVTec layout, got none")
    if real_needed and data["real"] is None:
        raise _err("data.real", "expected the folder of real defects for the strategies mixed/oversampling, got none")
    if data["real"] is not None and real_needed:
        available = _real_counts(data["real"])
        groups = list(available)
        for i, grp in enumerate(g["groups"]):
            if grp != "mixed" and grp not in groups:
                raise _err(f"grid.groups[{i}]", f"group {grp!r} has no folder in {data['real']} (groups: {', '.join(groups)})")
        for i, c in enumerate(counts):
            if isinstance(c, dict):
                for grp, v in c.items():
                    if grp not in groups:
                        raise _err(f"grid.counts[{i}].{grp}", f"group {grp!r} has no folder in {data['real']} (groups: {', '.join(groups)})")
                    if v != "all" and v > available[grp]:
                        raise _err(f"grid.counts[{i}].{grp}", f"expected at most {available[grp]} (the {grp} defects in {data['real']}), got {v}")
            elif c > sum(available.values()):
                raise _err(f"grid.counts[{i}]", f"expected at most {sum(available.values())} (the real defects in {data['real']}), got {c}")
    for name in g["backbones"]:
        _check_backbone(name, f"grid.backbones[{g['backbones'].index(name)}]")
    return ExperimentConfig(path=path, data=data, stream=s, grid=g, train=t)


def _check_backbone(name: str, key: str) -> None:
    if ":" in name:
        return  # an importable factory, checked when a run builds it
    try:
        from ispad_core.nn import backbones as _b  # noqa: F401  (the models layer, when present)

        known = tuple(getattr(_b, "BACKBONES", ()))
    except ImportError:
        known = ()
    known = known or ("resnet18",)
    if name not in known:
        raise _err(key, f"expected one of {', '.join(known)} or 'package.module:function', got {name!r}")


# --------------------------------------------------------------------------- data


def _real_counts(folder: Path) -> dict[str, int]:
    """Real defects per group of a folder (checked as the runs will read it)."""
    from ispad_core.io import read_real_defects

    try:
        return dict(read_real_defects(folder, name="data.real").counts())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config: {exc}") from None


def _read_real(folder: Path, size: int) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Images, group per image and file name (group/file) of a real-defect folder, in name order."""
    from ispad_core.io import read_real_defects

    real = read_real_defects(folder, size=size, name="data.real")
    return [np.asarray(real[i]) for i in range(len(real))], list(real.groups), list(real.files)


def _scale_contrast(params: Any, factor: float) -> Any:
    """The preset with every contrast range multiplied by ``factor``."""
    if factor == 1.0:
        return params
    if hasattr(params, "scale_contrast"):
        return params.scale_contrast(factor)
    import dataclasses

    from ispad_core.synth import DefectMixture

    def one(p):
        lo, hi = p.contrast
        return dataclasses.replace(p, contrast=(lo * factor, hi * factor))

    if isinstance(params, DefectMixture):
        return DefectMixture(tuple(one(c) for c in params.components), params.weights, params.names)
    return one(params)


def _stream_file(config: ExperimentConfig, out: Path, verbose: bool) -> Path:
    """The stream file of the grid: the config's, or one made once from the scans in out/_data/."""
    if config.data["stream"] is not None:
        return config.data["stream"]
    from ispad_core.io import read_images
    from ispad_core.stream import write_balanced_stream
    from ispad_core.synth import PRESETS

    s = config.stream
    images, files = read_images(config.data["scans"], name="data.scans")
    ident = json.dumps({"stream": s, "scans": [f.name for f in files], "sizes": [im.shape for im in images]}, sort_keys=True)
    key = hashlib.sha256(ident.encode()).hexdigest()[:12]
    target = out / "_data" / f"stream-{key}.h5"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if verbose:
        print(f"making the stream {target} ({s['n']} patches of {s['size']} px) from {len(images)} scans", flush=True)
    # a second experiment on the same folder stops here, naming the file, while the first makes the
    # stream (the writer's own lock is on the stream's name, so this one is on another)
    with exclusive_lock(target.with_name(target.name + ".prepare"), name="stream"):
        if not target.is_file():
            write_balanced_stream(
                target,
                images,
                s["n"],
                preset=_scale_contrast(PRESETS[s["preset"]], s["contrast"]),
                augment=None if s["augment"] == "none" else s["augment"],
                seed=s["seed"],
                size=s["size"],
                names=[f.name for f in files],
                batch_size=256,
            )
    return target


@dataclass
class _Data:
    stream_path: Path
    stream_images: np.ndarray | None
    stream_labels: np.ndarray
    real_images: list
    real_groups: np.ndarray
    real_names: list
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    test_groups: tuple
    test_names: tuple


_CACHE: dict[str, _Data] = {}
_IN_MEMORY_BYTES = 1 << 30


def _load_data(config: ExperimentConfig, stream_path: Path) -> _Data:
    key = json.dumps([config.to_dict()["data"], str(stream_path)])
    if key in _CACHE:
        return _CACHE[key]
    from ispad_core.io import open_stream, read_mvtec

    with open_stream(stream_path) as reader:
        labels = np.asarray(reader.labels[:]).astype(np.int64)
        shape = tuple(reader.image_shape)
        # a stream that fits comfortably is read once into memory (fast item access for every run);
        # a larger one is read from its file by each run
        images = np.asarray(reader.images[:]) if len(labels) * int(np.prod(shape)) <= _IN_MEMORY_BYTES else None
    if config.data["real"] is not None:
        real_images, real_groups, real_names = _read_real(config.data["real"], shape[0])
    else:
        real_images, real_groups, real_names = [], [], []
    val = read_mvtec(config.data["val"], split="test")
    test = read_mvtec(config.data["test"], split="test")
    for name, ds in (("data.val", val), ("data.test", test)):
        if ds.test_images.shape[1:] != shape:
            raise InputValueError(f"{name}: patches of shape {ds.test_images.shape[1:]} but the stream's are {shape}")
        if len(np.unique(ds.test_labels)) < 2:
            raise InputValueError(f"{name}: expected fault-free and defective patches, got only one class")
    data = _Data(
        stream_path=stream_path,
        stream_images=images,
        stream_labels=labels,
        real_images=real_images,
        real_groups=np.array(real_groups),
        real_names=real_names,
        val_images=val.test_images,
        val_labels=val.test_labels.astype(np.int64),
        test_images=test.test_images,
        test_labels=test.test_labels.astype(np.int64),
        test_groups=test.test_groups,
        test_names=test.test_names,
    )
    _CACHE.clear()
    _CACHE[key] = data
    return data


def select_real(run: RunSpec, groups: np.ndarray) -> np.ndarray:
    """Indices into the real pool for ``run`` (empty for synthetic), in the shuffle's order."""
    if run.strategy == "synthetic":
        return np.zeros(0, np.int64)
    n = len(groups)
    sel = run.selection
    if "=" in sel:  # per-group counts
        counts = {}
        for part in sel.split("+"):
            g, v = part.split("=")
            counts[g] = v if v == "all" else int(v)
        return select_defects(groups, counts, rng=run.seed)
    if sel.startswith("f"):
        f = parse_fraction(sel[1:], "selection")
        if run.group == "mixed":
            return nested_fractions(n, (f,), rng=run.seed)[f]
        return nested_fractions(n, (f,), rng=run.seed, groups=groups)[run.group][f]
    count = int(sel[1:])
    if run.group == "mixed":
        return select_defects(groups, min(count, n), rng=run.seed)
    available = int((groups == run.group).sum())
    return select_defects(groups, {run.group: min(count, available)}, rng=run.seed)


# --------------------------------------------------------------------------- scoring


def score_test_set(
    val_labels: Any,
    val_scores: Any,
    test_labels: Any,
    test_scores: Any,
    *,
    test_groups: Sequence[str] | None = None,
    threshold: float | None = None,
) -> dict:
    """Score a test set as the paper does: the threshold is F1-optimal on the validation set.

    Parameters
    ----------
    val_labels, val_scores : array_like of shape (n,)
        The model-selection set: 0/1 labels (both present) and scores.
    test_labels, test_scores : array_like of shape (m,)
        The test set.
    test_groups : sequence of str, optional
        The defect group of every test item (``"good"`` for fault-free ones); gives the recall of
        each group.
    threshold : float, optional
        The F1-optimal validation threshold when it is already known (``val_labels`` and
        ``val_scores`` are then None and ``val_mcc`` is None).

    Returns
    -------
    dict
        ``threshold``, ``mcc``, ``recall`` and ``fpr`` (percent), ``tn``, ``tp``, ``fn``, ``fp``,
        ``auroc``, ``val_mcc`` and ``recall_by_group`` (``{group: percent}``, defect groups only).

    Examples
    --------
    >>> from ispad_core.experiment import score_test_set
    >>> r = score_test_set([0, 0, 1], [0.1, 0.2, 0.9], [0, 0, 1, 1], [0.3, 0.95, 0.9, 0.1],
    ...                    test_groups=["good", "good", "area", "points"])
    >>> r["threshold"], r["tp"], r["fp"], r["recall_by_group"]
    (0.9, 1, 1, {'area': 100.0, 'points': 0.0})
    """
    from ispad_core.metrics import classification_report, f1_optimal_threshold

    if threshold is None:
        threshold = float(f1_optimal_threshold(val_labels, val_scores))
        val_mcc: float | None = float(classification_report(val_labels, val_scores, threshold=threshold).mcc)
    else:
        if val_labels is not None or val_scores is not None:
            raise InputValueError("threshold: give either the validation labels and scores or the threshold, not both")
        threshold = float(threshold)
        if not math.isfinite(threshold):
            raise InputValueError(f"threshold: expected a finite number, got {threshold}")
        val_mcc = None
    rep = classification_report(test_labels, test_scores, threshold=threshold)
    out = rep.to_dict()
    out["threshold"] = threshold
    out["val_mcc"] = val_mcc
    by_group = {}
    if test_groups is not None:
        groups = np.asarray(list(test_groups))
        scores = np.asarray(test_scores, dtype=np.float64)
        if groups.shape != scores.shape:
            raise InputValueError(f"test_groups: expected {scores.size} groups like test_scores, got {groups.size}")
        for g in sorted(set(groups.tolist()) - {"good"}):
            sel = groups == g
            by_group[g] = float(100.0 * (scores[sel] >= threshold).mean())
    out["recall_by_group"] = by_group
    return {k: (float(v) if isinstance(v, (np.floating,)) else v) for k, v in out.items()}


# --------------------------------------------------------------------------- the training step


@dataclass(frozen=True)
class TrainRequest:
    """What the training step of one run gets (the seam between the grid and the trainer)."""

    run: RunSpec
    train: dict
    stream_path: Path
    stream_images: np.ndarray | None
    stream_labels: np.ndarray
    real_images: list
    val_images: np.ndarray
    val_labels: np.ndarray
    model_path: Path
    checkpoint_dir: Path
    device: str | None
    provenance: dict


@dataclass(frozen=True)
class TrainOutput:
    """What it returns: scores of the test patches, the validation scores or the F1-optimal
    threshold on them (with the validation MCC at it), and its own summary."""

    val_scores: np.ndarray | None
    test_scores: np.ndarray
    summary: dict
    threshold: float | None = None
    val_mcc: float | None = None


def train_step(request: TrainRequest, test_images: np.ndarray) -> TrainOutput:
    """The default training step: :func:`ispad_core.nn.train_detector`, then scores of validation and test.

    The run's real defects (already selected by the grid, in the shuffle's order) are passed as
    patches; the stream (its fault-free half for ``oversampling``) from memory, or from its file
    when it is larger than 1 GiB; the validation set for model selection. An unfinished run
    (checkpoints beside the model file) resumes.
    """
    from ispad_core.nn import predict, train_detector
    from ispad_core.nn.detector import torch_threads

    run, t = request.run, request.train
    preprocess = None if t["preprocess"] == "none" else t["preprocess"]
    images, labels = request.stream_images, request.stream_labels
    good = np.flatnonzero(labels == 0)
    if images is not None:
        stream: Any = (images[good], labels[good]) if run.strategy == "oversampling" else (images, labels)
    elif run.strategy == "oversampling":
        from torch.utils.data import Subset

        from ispad_core.io import open_stream

        stream = Subset(open_stream(request.stream_path), good.tolist())
    else:
        stream = request.stream_path
    size = request.val_images.shape[1]
    real = np.stack([_centre_crop(im, size) for im in request.real_images]) if request.real_images else None
    ckpt = Path(str(request.model_path) + ".ckpt")
    unfinished = (ckpt / "last.pt").exists()
    t0 = time.perf_counter()
    result = train_detector(
        stream,
        out=request.model_path,
        real=real,
        val=(request.val_images, request.val_labels),
        p_inj=None if real is None else (0.5 if run.strategy == "oversampling" else t["p_inj"]),
        backbone=run.backbone,
        mode="oversampling" if run.strategy == "oversampling" else "mixed",
        augment=None if t["augment"] == "none" else t["augment"],
        preprocess=preprocess,
        device=request.device,
        max_steps=t["steps"],
        seed=run.seed,
        batch_size=t["batch_size"],
        lr=t["lr"],
        optimizer=t["optimizer"],
        val_every=t["val_every"],
        patience=t["patience"],
        workers=0,
        threads=t["threads"],
        resume=unfinished,
        overwrite=not unfinished,
        verbose=False,
    )
    if result.interrupted:
        raise KeyboardInterrupt(f"run {run.name} interrupted; run the grid again to resume it")
    model = result.model
    t1 = time.perf_counter()
    # train_detector scored the validation set already: its threshold is the F1-optimal one there
    # the run's threads for its scores too: CPU sums differ in the last bits between thread counts
    with torch_threads(t["threads"]):
        test = predict(model, test_images, preprocess=preprocess, device=request.device, batch_size=256)
    summary = {
        "steps": result.train.steps,
        "best_epoch": result.train.best_epoch,
        "best_val_loss": result.train.best_val_loss,
        "model_threshold": result.threshold,
        "recipe": str(result.recipe),
        "train_s": t1 - t0,
        "predict_s": time.perf_counter() - t1,
    }
    return TrainOutput(None, test.scores, summary, threshold=float(result.threshold), val_mcc=float(result.report.mcc))


class _Pairs:
    """(image, label) items over two arrays (what InjectionDataset reads)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


def _centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    if h < size or w < size:
        raise InputValueError(f"data.real: a real defect of {h} x {w} px is smaller than the patch size {size}")
    r, c = (h - size) // 2, (w - size) // 2
    return image[r : r + size, c : c + size]


# --------------------------------------------------------------------------- one run


def _settings(config: ExperimentConfig, run: RunSpec, stream_path: Path, real_names: list[str]) -> dict:
    st = stream_path.stat()
    return {
        "run": asdict(run),
        "train": dict(config.train),
        "stream": {"path": str(stream_path), "bytes": st.st_size, **({} if config.data["stream"] else config.stream)},
        "real": real_names,
        "val": str(config.data["val"]),
        "test": str(config.data["test"]),
    }


def _finished(run_dir: Path, settings: dict) -> dict | None:
    report = run_dir / "report.json"
    if not (report.is_file() and (run_dir / "model.pt").is_file()):
        return None
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("settings") == json.loads(json.dumps(settings)) else None


def _reset_stale(run_dir: Path, settings: dict) -> None:
    """Keep what an interrupted run left (checkpoints, model) only if it had the same settings."""
    import shutil

    stamp = run_dir / "settings.json"
    text = json.dumps(settings, sort_keys=True)
    if stamp.is_file() and stamp.read_text() == text:
        return
    for name in ("model.pt", "report.json"):
        if (run_dir / name).is_file():
            (run_dir / name).unlink()
    for name in ("model.pt.ckpt", "checkpoints"):
        if (run_dir / name).is_dir():
            shutil.rmtree(run_dir / name)
    with atomic_output(stamp, name="run settings", overwrite=True) as tmp:
        tmp.write_text(text)


def _execute(config: ExperimentConfig, run: RunSpec, out: Path, stream_path: Path, device: str | None,
             trainer: Callable | None) -> dict:
    """Run (or skip) one grid point; return its report."""
    t0 = time.perf_counter()
    data = _load_data(config, stream_path)
    idx = select_real(run, data.real_groups)
    real_names = [data.real_names[i] for i in idx]
    settings = _settings(config, run, stream_path, real_names)
    run_dir = out / run.name
    done = _finished(run_dir, settings)
    if done is not None:
        done["skipped"] = True
        return done
    run_dir.mkdir(parents=True, exist_ok=True)
    _reset_stale(run_dir, settings)
    t_load = time.perf_counter() - t0
    with exclusive_lock(run_dir / "report.json", name="run"):
        request = TrainRequest(
            run=run,
            train=config.train,
            stream_path=data.stream_path,
            stream_images=data.stream_images,
            stream_labels=data.stream_labels,
            real_images=[data.real_images[i] for i in idx],
            val_images=data.val_images,
            val_labels=data.val_labels,
            model_path=run_dir / "model.pt",
            checkpoint_dir=run_dir / "checkpoints",
            device=device,
            provenance={"stream": str(stream_path), "real": real_names, "config": str(config.path) if config.path else None},
        )
        t1 = time.perf_counter()
        output = (trainer or train_step)(request, data.test_images)
        t_train = time.perf_counter() - t1
        t2 = time.perf_counter()
        if output.val_scores is not None:
            scores = score_test_set(data.val_labels, output.val_scores, data.test_labels, output.test_scores,
                                    test_groups=data.test_groups)
        else:
            scores = score_test_set(None, None, data.test_labels, output.test_scores, test_groups=data.test_groups,
                                    threshold=output.threshold)
            scores["val_mcc"] = output.val_mcc
        report = {
            "settings": settings,
            "run": run.name,
            **asdict(run),
            "n_real": int(len(idx)),
            "real_by_group": {g: int((data.real_groups[idx] == g).sum()) for g in sorted(set(data.real_groups.tolist()))},
            "test": scores,
            "training": output.summary,
            "test_scores": [float(x) for x in output.test_scores],
            "library_version": __version__,
        }
        # training proper, when the step says how long it took (else the whole step counts as training)
        fit = output.summary.get("train_s", t_train) if isinstance(output.summary, dict) else t_train
        report["timing"] = {"load_s": t_load, "step_s": t_train, "train_s": fit, "score_s": time.perf_counter() - t2}
        with atomic_output(run_dir / "report.json", name="report", overwrite=True) as tmp:
            tmp.write_text(json.dumps(report, indent=1) + "\n")
    report["skipped"] = False
    return report


def _worker(args) -> dict:
    config, run, out, stream_path, device, threads, trainer = args
    # The whole process, not only the training loop, runs at its share of the cores: scoring the
    # test set at torch's default (every core) in each of several workers oversubscribes the CPU,
    # and waiting OpenMP threads spin (measured: 4.7 times slower prediction with two workers).
    threads = config.train["threads"] or threads
    if threads:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:  # pragma: no cover
            pass
    return _execute(config, run, out, stream_path, device, trainer)


# --------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class ExperimentResult:
    """What :func:`run_experiment` returns.

    Attributes
    ----------
    out : pathlib.Path
    reports : tuple of dict
        One report per run, in grid order (see ``report.json``).
    ran, skipped : int
        Runs trained now and runs found finished.
    wall_s : float
        Wall time of the call.
    train_s : float
        Time spent training (summed over the runs trained now), without data preparation,
        prediction on the validation and test sets, scoring and writing.
    """

    out: Path
    reports: tuple
    ran: int
    skipped: int
    wall_s: float
    train_s: float
    jobs: int = 1

    @property
    def overhead(self) -> float:
        """Share of the wall time not spent training (data, scoring, writing), for the runs trained now."""
        if self.ran == 0 or self.wall_s <= 0:
            return float("nan")
        return max(0.0, 1.0 - self.train_s / (self.jobs * self.wall_s))


_COLUMNS = ["run", "strategy", "group", "selection", "n_real", "backbone", "seed", "mcc", "recall", "fpr",
            "tn", "tp", "fn", "fp", "threshold", "auroc", "val_mcc"]


def _rows(reports: Sequence[dict]) -> tuple[list[str], list[dict]]:
    groups = sorted({g for r in reports for g in r["test"]["recall_by_group"]})
    cols = _COLUMNS + [f"recall_{g}" for g in groups] + ["real_by_group"]
    rows = []
    for r in reports:
        t = r["test"]
        row = {k: r.get(k, t.get(k)) for k in _COLUMNS}
        for k in ("mcc", "recall", "fpr", "tn", "tp", "fn", "fp", "threshold", "auroc", "val_mcc"):
            row[k] = t[k]
        for g in groups:
            row[f"recall_{g}"] = t["recall_by_group"].get(g, float("nan"))
        row["real_by_group"] = "+".join(f"{g}={n}" for g, n in r["real_by_group"].items())
        rows.append(row)
    return cols, rows


def _write_csv(path: Path, cols: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    with atomic_output(path, name="results", overwrite=True) as tmp:
        tmp.write_text(buf.getvalue())


def _write_md(path: Path, cols: list[str], rows: list[dict]) -> None:
    groups = [c for c in cols if c.startswith("recall_")]
    head = ["Strategy", "Defect group", "#Real defects", "Backbone", "Seed", "MCC", "Recall (%)", "FPR (%)",
            "TN", "TP", "FN", "FP"] + [f"Recall {c[7:]} (%)" for c in groups]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [r["strategy"], r["group"], str(r["n_real"]), r["backbone"], str(r["seed"]), f"{r['mcc']:.2f}",
                f"{r['recall']:.1f}", f"{r['fpr']:.1f}", str(r["tn"]), str(r["tp"]), str(r["fn"]), str(r["fp"])]
        vals += [f"{r[c]:.1f}" for c in groups]
        lines.append("| " + " | ".join(vals) + " |")
    # mean and spread over seeds
    keys: dict[tuple, list[dict]] = {}
    for r in rows:
        keys.setdefault((r["strategy"], r["group"], r["selection"], r["backbone"]), []).append(r)
    lines += ["", "Mean over seeds (min to max):", "",
              "| Strategy | Defect group | #Real defects | Backbone | Seeds | MCC | Recall (%) | FPR (%) |",
              "|---|---|---|---|---|---|---|---|"]
    for (strategy, group, _sel, backbone), rs in keys.items():
        m = np.array([x["mcc"] for x in rs])
        n_real = sorted({x["n_real"] for x in rs})
        lines.append(
            f"| {strategy} | {group} | {'/'.join(map(str, n_real))} | {backbone} | {len(rs)} | "
            f"{m.mean():.2f} ({m.min():.2f} to {m.max():.2f}) | {np.mean([x['recall'] for x in rs]):.1f} | "
            f"{np.mean([x['fpr'] for x in rs]):.1f} |"
        )
    with atomic_output(path, name="results", overwrite=True) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def run_experiment(
    config: ExperimentConfig | str | os.PathLike | Mapping,
    out: str | os.PathLike,
    *,
    jobs: int = 1,
    device: str | None = None,
    trainer: Callable | None = None,
    verbose: bool = True,
) -> ExperimentResult:
    """Run the grid of a config: train and score every run, skip finished ones, write the results.

    Parameters
    ----------
    config : ExperimentConfig, path or mapping
        The experiment (see :func:`load_config`); checked completely before anything is trained.
    out : path
        The runs folder (created if missing).
    jobs : int, default 1
        Runs at once, each in its own process (CPU threads are shared out among them; with
        ``device="cuda"``, run ``k`` goes to GPU ``k mod count``). Processes are spawned, so a
        script that calls this with ``jobs > 1`` needs the usual ``if __name__ == "__main__":``
        guard (the ``ispad`` command has it).
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``; default: a GPU if one is available.
    trainer : callable, optional
        The training step ``trainer(request, test_images) -> TrainOutput``; default
        :func:`train_step`. Must be importable (a module-level function) when ``jobs > 1``.
    verbose : bool, default True
        Print one line per run and where the results are.

    Returns
    -------
    ExperimentResult

    Raises
    ------
    ConfigError
        For a bad config (naming the key), before any training.
    OSError, ValueError
        For unreadable data (a stream file, a validation set without defects).
    """
    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    if not isinstance(out, (str, os.PathLike)):
        raise InputTypeError(f"out: expected a folder path, got {type(out).__name__}")
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise InputValueError(f"jobs: expected an int >= 1, got {jobs!r}")
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputValueError(f"out: {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stream_path = _stream_file(config, out, verbose)
    runs = config.runs()
    with atomic_output(out / "config.json", name="config", overwrite=True) as tmp:
        tmp.write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    reports: list[dict | None] = [None] * len(runs)
    if jobs == 1:
        for i, run in enumerate(runs):
            reports[i] = _execute(config, run, out, stream_path, device, trainer)
            _say(verbose, i, len(runs), reports[i])
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        threads = max(1, (os.cpu_count() or 1) // jobs)
        devices = _devices(device, jobs)
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {
                pool.submit(_worker, (config, run, out, stream_path, devices[i % len(devices)], threads, trainer)): i
                for i, run in enumerate(runs)
            }
            for n_done, fut in enumerate(cf.as_completed(futures)):
                i = futures[fut]
                reports[i] = fut.result()
                _say(verbose, n_done, len(runs), reports[i])
    done = [r for r in reports if r is not None]
    cols, rows = _rows(done)
    _write_csv(out / "results.csv", cols, rows)
    _write_md(out / "results.md", cols, rows)
    _plot_mcc(out / "mcc_vs_real.png", rows)
    ran = [r for r in done if not r["skipped"]]
    result = ExperimentResult(
        out=out,
        reports=tuple(done),
        ran=len(ran),
        skipped=len(done) - len(ran),
        wall_s=time.perf_counter() - t0,
        train_s=float(sum(r["timing"]["train_s"] for r in ran)),
        jobs=jobs,
    )
    if verbose:
        print(f"{result.ran} runs trained, {result.skipped} finished before; results in {out}/results.md, "
              f"{out}/results.csv and {out}/mcc_vs_real.png", flush=True)
    return result


def _devices(device: str | None, jobs: int) -> list[str | None]:
    if device != "cuda":
        return [device]
    try:
        import torch

        count = torch.cuda.device_count()
    except ImportError:  # pragma: no cover
        count = 0
    return [f"cuda:{k}" for k in range(count)] or ["cuda"]


def _say(verbose: bool, i: int, n: int, report: dict) -> None:
    if not verbose:
        return
    t = report["test"]
    state = "finished before" if report["skipped"] else f"{report['timing'].get('step_s', 0.0):.0f} s"
    print(f"[{i + 1}/{n}] {report['run']}: MCC {t['mcc']:.3f}, recall {t['recall']:.1f} %, FPR {t['fpr']:.2f} % "
          f"({state})", flush=True)


# --------------------------------------------------------------------------- the figure


_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _plot_mcc(path: Path, rows: list[dict], title: str = "MCC (test set; mean over seeds, band: min to max)") -> None:
    """MCC against #real defects (log(1 + n) axis): a line per (strategy, group) with the seed mean; band = min..max."""
    from PIL import Image, ImageDraw

    series: dict[tuple, dict[int, list[float]]] = {}
    baseline: list[float] = []
    for r in rows:
        if r["strategy"] == "synthetic":
            baseline.append(r["mcc"])
            continue
        series.setdefault((r["strategy"], r["group"], r["backbone"]), {}).setdefault(r["n_real"], []).append(r["mcc"])
    xs = sorted({x for s in series.values() for x in s} | ({0} if baseline else set())) or [0]
    ys = [v for s in series.values() for vals in s.values() for v in vals] + baseline
    lo = min(min(ys, default=0.0), 0.0)
    W, H, L, R, T, B = 760, 480, 70, 230, 30, 60
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    # log(1 + n): the few-shot counts (4, 10, 16) stay apart beside a whole pool (64 and more)
    x0, x1 = math.log1p(min(xs)), math.log1p(max(xs) if max(xs) > min(xs) else min(xs) + 1)

    def px(x: float) -> float:
        return L + (W - L - R) * (math.log1p(x) - x0) / (x1 - x0)

    def py(y: float) -> float:
        return T + (H - T - B) * (1.0 - (y - lo) / (1.0 - lo))

    d.rectangle([L, T, W - R, H - B], outline=(0, 0, 0))
    for k in range(6):
        y = lo + (1.0 - lo) * k / 5
        d.line([L - 4, py(y), L, py(y)], fill=(0, 0, 0))
        d.line([L, py(y), W - R, py(y)], fill=(235, 235, 235))
        d.text((L - 40, py(y) - 6), f"{y:.2f}", fill=(0, 0, 0))
    for x in xs:
        d.line([px(x), H - B, px(x), H - B + 4], fill=(0, 0, 0))
        d.text((px(x) - 6, H - B + 8), str(x), fill=(0, 0, 0))
    d.text((L + (W - L - R) / 2 - 60, H - 25), "number of real defects (log scale)", fill=(0, 0, 0))
    d.text((8, T - 22), title, fill=(0, 0, 0))
    legend_y = T
    if baseline:
        m = float(np.mean(baseline))
        d.line([L, py(m), W - R, py(m)], fill=(90, 90, 90), width=1)
        d.rectangle([px(0) - 3, py(max(baseline)), px(0) + 3, py(min(baseline))], outline=(90, 90, 90))
        d.text((W - R + 10, legend_y), f"synthetic only: {m:.2f}", fill=(90, 90, 90))
        legend_y += 18
    for k, (key, pts) in enumerate(sorted(series.items())):
        color = _PALETTE[k % len(_PALETTE)]
        xk = sorted(pts)
        means = [float(np.mean(pts[x])) for x in xk]
        lows = [float(np.min(pts[x])) for x in xk]
        highs = [float(np.max(pts[x])) for x in xk]
        for x, a, b in zip(xk, lows, highs):
            d.line([px(x), py(a), px(x), py(b)], fill=color, width=1)
            d.line([px(x) - 4, py(a), px(x) + 4, py(a)], fill=color)
            d.line([px(x) - 4, py(b), px(x) + 4, py(b)], fill=color)
        if len(xk) > 1:
            d.line([(px(x), py(m)) for x, m in zip(xk, means)], fill=color, width=2)
        for x, m in zip(xk, means):
            d.ellipse([px(x) - 3, py(m) - 3, px(x) + 3, py(m) + 3], fill=color)
        strategy, group, backbone = key
        d.line([W - R + 10, legend_y + 6, W - R + 30, legend_y + 6], fill=color, width=2)
        d.text((W - R + 34, legend_y), f"{strategy} {group} {backbone}", fill=(0, 0, 0))
        legend_y += 18
    with atomic_output(path, name="figure", overwrite=True) as tmp:
        img.save(tmp, format="PNG")
