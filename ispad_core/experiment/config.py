"""An experiment's config: the TOML schema, its checks, and the grid of runs it describes."""

from __future__ import annotations

import json
import math
import numbers
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core.fractions import parse_fraction

__all__ = ["STRATEGIES", "ConfigError", "ExperimentConfig", "RunSpec", "load_config"]


STRATEGIES = ("synthetic", "mixed", "oversampling")
"""Training strategies of the grid."""


_SCHEMA: dict[str, dict[str, Any]] = {
    "data": {"benchmark": None, "stream": None, "scans": None, "real": None, "val": None, "test": None,
             "calibration": None, "test_designs": None},
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
        "curriculum": "auto",
        "amp": "auto",
    },
    "calibration": {"target_fpr": 0.01},
}


class ConfigError(InputValueError):
    """A config that is refused (a ValueError); the message names the key."""


ConfigError.__module__ = "ispad_core.experiment"  # its public home (tracebacks name it so)


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
    stream, grid, train, calibration : dict
        The sections with defaults filled in.
    """

    path: Path | None
    data: dict
    stream: dict
    grid: dict
    train: dict
    calibration: dict = field(default_factory=lambda: {"target_fpr": 0.01})

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
            "calibration": dict(self.calibration),
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
                            defect group), val and test (MVTec layout folders),
                            calibration (a folder with one folder of fault-free sheets per
                            test design) and test_designs (CSV: file, design of every test
                            patch); a benchmark with calibration/ fills in both
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
                            between thread counts), curriculum ["auto"]: a contrast curriculum
                            ("START:FRACTION[:SHAPE][:native]", see ContrastCurriculum) on a
                            stream drawn on the fly from data.scans instead of a stream file;
                            "none"; "auto" is the from-scratch default
                            (FROM_SCRATCH_CURRICULUM, "6:0.75:native") when the stream is made
                            from scans at native contrast (stream.contrast = 1), else none;
                            amp ["auto"]: mixed precision in training: "auto" (fp16 autocast
                            on CUDA, bf16 on a CPU that computes it natively, else fp32;
                            ispad_core.nn.training.auto_amp), true (bf16 on any CPU) or false
            [calibration]   target_fpr [0.01]: the false-alarm rate per window R at which every
                            run is calibrated per test design on its calibration sheets (with
                            data.calibration and data.test_designs; see docs/calibration.md)

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
    ispad_core.experiment.ConfigError: config: train.p_inj: expected a value in [1/B, 0.25] = [0.03125, 0.25] for batch_size B = 32, got '1/64'
    """
    raw, path, root = _read(config, base)
    top = _check_table(raw, "config", _SCHEMA)
    sections = {}
    for name, defaults in _SCHEMA.items():
        sec = _check_table(top.get(name, {}), name, defaults)
        sections[name] = {**{k: v for k, v in defaults.items()}, **sec}
    g = _check_grid(sections["grid"])
    t = _check_train(sections["train"])
    s = _check_stream(sections["stream"])
    data = _check_data(sections["data"], root, g)
    t["curriculum"] = _settle_curriculum(t["curriculum"], s, data)
    for name in g["backbones"]:
        _check_backbone(name, f"grid.backbones[{g['backbones'].index(name)}]")
    c = sections["calibration"]
    c["target_fpr"] = _number(c["target_fpr"], "calibration.target_fpr", 0.0, 1.0)
    if c["target_fpr"] >= 1.0:
        raise _err("calibration.target_fpr", f"expected a value in (0, 1), got {c['target_fpr']!r}")
    return ExperimentConfig(path=path, data=data, stream=s, grid=g, train=t, calibration=c)


def _read(config: Any, base: Any) -> tuple[Any, Path | None, Path]:
    """The raw config, the file it came from (or None) and the folder relative paths start from."""
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
    return raw, path, root


def _real_needed(g: dict) -> bool:
    return any(s != "synthetic" for s in g["strategies"])


def _check_grid(g: dict) -> dict:
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
    g["counts"] = _check_counts(g["counts"])
    if _real_needed(g) and not fracs and not g["counts"]:
        raise _err("grid.fractions", "expected fractions or counts of real defects for the strategies mixed/oversampling, got neither")
    return g


def _check_counts(value: Any) -> list:
    if not isinstance(value, list):
        raise _err("grid.counts", f"expected a list, got {value!r}")
    counts: list = []
    for i, c in enumerate(value):
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
    return counts


def _check_train(t: dict) -> dict:
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
    if t["amp"] not in ("auto", True, False):
        raise _err("train.amp", f"expected \"auto\", true or false, got {t['amp']!r}")
    if t["optimizer"] not in ("sgd", "adamw"):
        raise _err("train.optimizer", f"expected sgd or adamw, got {t['optimizer']!r}")
    if t["preprocess"] not in ("lsm1", "lsm2", "asm", "none"):
        raise _err("train.preprocess", f"expected lsm1, lsm2, asm or none, got {t['preprocess']!r}")
    b = t["batch_size"]
    p = _number(t["p_inj"], "train.p_inj", 0.0, 1.0)
    if p < (1.0 / b) * (1 - 1e-9) or p > 0.25:
        raise _err("train.p_inj", f"expected a value in [1/B, 0.25] = [{1 / b:g}, 0.25] for batch_size B = {b}, got {t['p_inj']!r}")
    t["p_inj"] = p
    return t


def _settle_curriculum(value: Any, s: dict, data: dict) -> str:
    """train.curriculum as the runs will use it: ``"none"`` or the curriculum's text; ``"auto"``
    settled (the from-scratch default when the stream is drawn from scans at native contrast)."""
    if not isinstance(value, str) or not value.strip():
        raise _err("train.curriculum", f"expected auto, none or START:FRACTION[:SHAPE][:native], got {value!r}")
    text = value.strip().lower()
    if text == "auto":
        from ispad_core._shared.recipes import FROM_SCRATCH_CURRICULUM

        return FROM_SCRATCH_CURRICULUM if data["stream"] is None and s["contrast"] == 1.0 else "none"
    if text == "none":
        return "none"
    if data["stream"] is not None:
        raise _err("train.curriculum", f"{value!r} scales the synthetic defects of a stream drawn on the fly from "
                   "data.scans; data.stream is a file, whose defects are fixed (give data.scans, or curriculum = \"none\")")
    try:
        from ispad_core.nn.settings import ContrastCurriculum
    except ImportError:  # the models layer is absent: checked when a run builds it
        return text
    try:
        ContrastCurriculum.parse(text)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config: train.{exc}") from None
    return text


def _check_stream(s: dict) -> dict:
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
    return s


def _check_data(d: dict, root: Path, g: dict) -> dict[str, Path | None]:
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
    _check_calibration_data(d, data, root, bench)
    if data["stream"] is None and data["scans"] is None:
        raise _err("data.stream", "expected a stream file or a folder of scans (data.scans) to make one, got neither")
    for key in ("val", "test"):
        if data[key] is None:
            raise _err(f"data.{key}", "expected a folder in the MVTec layout, got none")
    real_needed = _real_needed(g)
    if real_needed and data["real"] is None:
        raise _err("data.real", "expected the folder of real defects for the strategies mixed/oversampling, got none")
    if data["real"] is not None and real_needed:
        _check_against_pool(g, data["real"])
    return data


def _check_calibration_data(d: dict, data: dict, root: Path, bench: Path | None) -> None:
    """data.calibration and data.test_designs: given together, or both from a benchmark that has them."""
    for key, kind, sub in (("calibration", "folder", "calibration"), ("test_designs", "file", "test_designs.csv")):
        if d[key] is not None:
            data[key] = _path(d[key], f"data.{key}", root, kind)
        elif bench is not None and (bench / sub).exists():
            data[key] = _path(str(bench / sub), f"data.benchmark ({sub})", root, kind)
        else:
            data[key] = None
    if (data["calibration"] is None) != (data["test_designs"] is None):
        given, missing = ("calibration", "test_designs") if data["calibration"] is not None else ("test_designs", "calibration")
        raise _err(f"data.{missing}", f"expected it with data.{given} (the sheets of the test designs and the design "
                   "of every test patch go together), got none")


def _check_against_pool(g: dict, real: Path) -> None:
    """The groups and counts of the grid must exist in the folder of real defects."""
    available = _real_counts(real)
    groups = list(available)
    for i, grp in enumerate(g["groups"]):
        if grp != "mixed" and grp not in groups:
            raise _err(f"grid.groups[{i}]", f"group {grp!r} has no folder in {real} (groups: {', '.join(groups)})")
    for i, c in enumerate(g["counts"]):
        if isinstance(c, dict):
            for grp, v in c.items():
                if grp not in groups:
                    raise _err(f"grid.counts[{i}].{grp}", f"group {grp!r} has no folder in {real} (groups: {', '.join(groups)})")
                if v != "all" and v > available[grp]:
                    raise _err(f"grid.counts[{i}].{grp}", f"expected at most {available[grp]} (the {grp} defects in {real}), got {v}")
        elif c > sum(available.values()):
            raise _err(f"grid.counts[{i}]", f"expected at most {sum(available.values())} (the real defects in {real}), got {c}")


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


def _real_counts(folder: Path) -> dict[str, int]:
    """Real defects per group of a folder (checked as the runs will read it)."""
    from ispad_core.io import read_real_defects

    try:
        return dict(read_real_defects(folder, name="data.real").counts())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config: {exc}") from None
