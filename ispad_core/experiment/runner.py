"""The paper's grid of training runs as one call: strategy x group x real defects x backbone x seed.

The ISP-AD paper's results (tables 2 to 4) are a grid of runs, each trained and scored the same
way. :func:`run_experiment` runs such a grid from a TOML file (:func:`load_config`) and writes::

    out/<run>/model.pt          the trained detector
    out/<run>/report.json       the run's settings, test-set row, per-group recall, timings
    out/results.csv             one row per run: the paper's columns plus backbone, strategy, seed
    out/results.md              the same as a Markdown table
    out/mcc_vs_real.png         MCC against the number of real defects, one line per strategy and
                                group, mean and spread (min to max) over seeds
    out/_data/                  data made once for all runs (the stream, when made from scans
                                into a file)

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

With calibration sheets of the test designs (``data.calibration`` and ``data.test_designs``,
filled in from a benchmark that has them), every run is also calibrated per test design at
``calibration.target_fpr`` with :func:`ispad_core.nn.calibrate`, and the test set scored at each
patch's own design's threshold, beside the MCC at the test set's own F1-optimal threshold
(:mod:`ispad_core.experiment.calibrated`); a finished run without it, or calibrated at another
rate or on other sheets (their content counts, not only their folder), is calibrated again
without training it again.

With a contrast curriculum (``train.curriculum``; by default the from-scratch one when the
stream is made from scans at native contrast), no stream file is written: every run draws the
balanced stream on the fly from the scans (:class:`ispad_core.stream.SyntheticStream` with the
config's ``[stream]`` settings, ``stream.n`` patches per epoch, new draws every epoch), whose
synthetic defects the curriculum scales, step by step.

Every run is a function of the config and its grid point: its seed fixes the selection, the
injections, the initialisation and the data order. A finished run (its model file and a report
whose settings equal the run's) is skipped when the grid is run again; an interrupted one resumes
from its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.files import atomic_output, exclusive_lock
from ispad_core._shared.version import __version__
from ispad_core.experiment.config import ExperimentConfig, RunSpec, load_config
from ispad_core.experiment.report import plot_mcc, rows, write_csv, write_md
from ispad_core.fractions import nested_fractions, parse_fraction, select_defects

__all__ = [
    "ExperimentResult",
    "TrainOutput",
    "TrainRequest",
    "run_experiment",
    "score_test_set",
    "select_real",
    "train_step",
]


# --------------------------------------------------------------------------- config


# --------------------------------------------------------------------------- data


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


def _drawn(config: ExperimentConfig) -> bool:
    """Whether the runs draw their stream on the fly (a curriculum scales its defects)."""
    return config.train["curriculum"] != "none"


def _stream_file(config: ExperimentConfig, out: Path, verbose: bool) -> Path | None:
    """The stream file of the grid: the config's, or one made once from the scans in out/_data/;
    None when the runs draw it on the fly."""
    if config.data["stream"] is not None:
        return config.data["stream"]
    if _drawn(config):
        return None
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
    stream_path: Path | None
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
    test_designs: tuple | None = None
    calibration: Path | None = None
    scans: list | None = None  # the scans a stream drawn on the fly is drawn from
    scan_names: list | None = None


def _draw_stream(config: ExperimentConfig, scans: list, names: list) -> Any:
    """A new :class:`~ispad_core.stream.SyntheticStream` of the config's stream settings over
    ``scans`` (one per run: a curriculum sets its contrast gains as the run goes)."""
    from ispad_core.stream import SyntheticStream
    from ispad_core.synth import PRESETS

    s = config.stream
    return SyntheticStream(scans, n=s["n"], size=s["size"], seed=s["seed"], names=names,
                           preset=_scale_contrast(PRESETS[s["preset"]], s["contrast"]),
                           augment=None if s["augment"] == "none" else s["augment"])


_CACHE: dict[str, _Data] = {}
_IN_MEMORY_BYTES = 1 << 30


def _load_data(config: ExperimentConfig, stream_path: Path | None) -> _Data:
    key = json.dumps([config.to_dict()["data"], config.to_dict()["stream"], str(stream_path)])
    if key in _CACHE:
        return _CACHE[key]
    from ispad_core.io import open_stream, read_images, read_mvtec

    scans = scan_names = None
    if stream_path is None:
        scans, files = read_images(config.data["scans"], name="data.scans")
        scan_names = [f.name for f in files]
        images = None
        drawn = _draw_stream(config, scans, scan_names)
        labels, shape = np.asarray(drawn.labels).astype(np.int64), tuple(drawn.image_shape)
    else:
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
        scans=scans,
        scan_names=scan_names,
    )
    if config.data.get("calibration") is not None:
        from ispad_core.experiment.calibrated import read_test_designs

        data.test_designs = read_test_designs(config.data["test_designs"], test.test_names)
        data.calibration = config.data["calibration"]
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
    stream_path: Path | None
    stream_images: np.ndarray | None
    stream_labels: np.ndarray
    real_images: list
    val_images: np.ndarray
    val_labels: np.ndarray
    model_path: Path
    checkpoint_dir: Path
    device: str | None
    provenance: dict
    stream: Any = None  # the run's own stream drawn on the fly (None: stream_path / stream_images)


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
    patches; the stream (its fault-free half for ``oversampling``) drawn on the fly under the
    config's curriculum, or from memory, or from its file when it is larger than 1 GiB; the
    validation set for model selection. An unfinished run (checkpoints beside the model file)
    resumes.
    """
    from ispad_core.nn import TrainSettings, predict, train_detector
    from ispad_core.nn.detector import torch_threads
    from ispad_core.nn.runtime import subset

    run, t = request.run, request.train
    preprocess = None if t["preprocess"] == "none" else t["preprocess"]
    images, labels = request.stream_images, request.stream_labels
    good = np.flatnonzero(labels == 0)
    if request.stream is not None:
        stream: Any = subset(request.stream, good.tolist()) if run.strategy == "oversampling" else request.stream
    elif images is not None:
        stream: Any = (images[good], labels[good]) if run.strategy == "oversampling" else (images, labels)
    elif run.strategy == "oversampling":
        from ispad_core.io import open_stream

        stream = subset(open_stream(request.stream_path), good.tolist())
    else:
        stream = request.stream_path
    size = request.val_images.shape[1]
    real = np.stack([_centre_crop(im, size) for im in request.real_images]) if request.real_images else None
    ckpt = Path(str(request.model_path) + ".ckpt")
    unfinished = (ckpt / "last.pt").exists()
    t0 = time.perf_counter()
    settings = TrainSettings(
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
        amp=_amp(t.get("amp", "auto"), request.device),
        curriculum=None if t.get("curriculum", "none") == "none" else t["curriculum"],
        verbose=False,
    )
    result = train_detector(
        stream, out=request.model_path, real=real, val=(request.val_images, request.val_labels), settings=settings,
        resume=unfinished, overwrite=not unfinished,
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


def _amp(amp: Any, device: str | None) -> bool | None:
    """TrainSettings.amp of ``train.amp``: true, false, or "auto" (:func:`ispad_core.nn.training.auto_amp`)."""
    from ispad_core.nn.training import auto_amp

    return auto_amp(device) if amp == "auto" else amp


def _precision(amp: Any, device: str | None) -> str:
    """The autocast dtype a run with ``train.amp`` trains in on ``device``: fp32, fp16 or bf16
    (fp32 when the models layer is absent: a stand-in trainer)."""
    try:
        from ispad_core.nn.training import training_precision
    except ImportError:
        return "fp32"
    return training_precision(_amp(amp, device), device)


def _settings(config: ExperimentConfig, run: RunSpec, stream_path: Path | None, real_names: list[str],
              scan_names: list | None = None, device: str | None = None) -> dict:
    if stream_path is None:
        stream = {"drawn": "on the fly", "scans": str(config.data["scans"]), "files": scan_names, **config.stream}
    else:
        stream = {"path": str(stream_path), "bytes": stream_path.stat().st_size,
                  **({} if config.data["stream"] else config.stream)}
    train = dict(config.train)
    if train.get("curriculum") == "none":  # as the reports of runs made before the option had it
        del train["curriculum"]
    # the precision the run trains in, not the option ("auto" is fp16 on a GPU, bf16 or fp32 on
    # a CPU); fp32 is left out, as the reports of runs made before the option had it
    precision = _precision(train.pop("amp", "auto"), device)
    if precision != "fp32":
        train["precision"] = precision
    return {
        "run": asdict(run),
        "train": train,
        "stream": stream,
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
    settings = _settings(config, run, stream_path, real_names, data.scan_names, device)
    run_dir = out / run.name
    done = _finished(run_dir, settings)
    sheets = None
    if data.calibration is not None:  # read for every run: the data are cached, the sheets may have been rewritten
        from ispad_core.experiment.calibrated import sheets_digest

        sheets = sheets_digest(data.calibration, data.test_designs)
    if done is not None:
        if data.calibration is not None and not _calibrated_with(done, config, data, sheets):
            with exclusive_lock(run_dir / "report.json", name="run"):
                _calibrate(done, config, data, run_dir, sheets)
                with atomic_output(run_dir / "report.json", name="report", overwrite=True) as tmp:
                    tmp.write_text(json.dumps(done, indent=1) + "\n")
        done["skipped"] = True
        return done
    run_dir.mkdir(parents=True, exist_ok=True)
    t_load = time.perf_counter() - t0
    with exclusive_lock(run_dir / "report.json", name="run"):
        # under the run's lock: another process training this run keeps its checkpoints
        _reset_stale(run_dir, settings)
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
            provenance={"stream": str(stream_path) if stream_path is not None else
                        f"drawn on the fly from {config.data['scans']}",
                        "real": real_names, "config": str(config.path) if config.path else None},
            stream=None if data.scans is None else _draw_stream(config, data.scans, data.scan_names),
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
        if data.calibration is not None:
            _calibrate(report, config, data, run_dir, sheets)
        with atomic_output(run_dir / "report.json", name="report", overwrite=True) as tmp:
            tmp.write_text(json.dumps(report, indent=1) + "\n")
    report["skipped"] = False
    return report


def _calibrated_with(report: dict, config: ExperimentConfig, data: _Data, sheets: str) -> bool:
    """Whether the report's calibration was made at this config's R on these sheets: their folder
    and their content (``sheets``, :func:`~ispad_core.experiment.calibrated.sheets_digest`; a
    report without it is calibrated again)."""
    cal = report.get("calibrated")
    return (isinstance(cal, dict) and cal.get("target_fpr") == config.calibration["target_fpr"]
            and cal.get("calibration") == str(data.calibration) and cal.get("sheets_sha256") == sheets)


def _calibrate(report: dict, config: ExperimentConfig, data: _Data, run_dir: Path, sheets: str) -> None:
    """Add the test set at per-design calibrated thresholds (``report["calibrated"]``) to a run's report."""
    from ispad_core.experiment.calibrated import calibrated_scores

    t0 = time.perf_counter()
    cal = calibrated_scores(run_dir / "model.pt", data.calibration, data.test_designs, data.test_labels,
                            report["test_scores"], target_fpr=config.calibration["target_fpr"],
                            threads=config.train["threads"])
    cal["calibration"] = str(data.calibration)
    cal["sheets_sha256"] = sheets
    cal["calibrate_s"] = time.perf_counter() - t0
    report["calibrated"] = cal


def _worker(args) -> dict:
    config, run, out, stream_path, device, threads, trainer = args
    # The whole process, not only the training loop, runs at its share of the cores: scoring the
    # test set at torch's default (every core) in each of several workers oversubscribes the CPU,
    # and waiting OpenMP threads spin (measured: 4.7 times slower prediction with two workers).
    threads = config.train["threads"] or threads
    if threads:
        try:
            from ispad_core.nn.runtime import set_threads

            set_threads(threads)
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
    cols, table = rows(done)
    write_csv(out / "results.csv", cols, table)
    write_md(out / "results.md", cols, table)
    plot_mcc(out / "mcc_vs_real.png", table)
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
        from ispad_core.nn.runtime import cuda_devices

        devices = cuda_devices()
    except ImportError:  # pragma: no cover
        devices = []
    return devices or ["cuda"]


def _say(verbose: bool, i: int, n: int, report: dict) -> None:
    if not verbose:
        return
    t = report["test"]
    state = "finished before" if report["skipped"] else f"{report['timing'].get('step_s', 0.0):.0f} s"
    c = report.get("calibrated")
    cal = "" if not c else (f"; calibrated per design at R = {c['target_fpr']:g}: MCC {c['cal_mcc']:.3f}, "
                            f"FPR {c['cal_fpr']:.2f} %; test-optimal MCC {c['opt_mcc']:.3f}")
    print(f"[{i + 1}/{n}] {report['run']}: MCC {t['mcc']:.3f}, recall {t['recall']:.1f} %, FPR {t['fpr']:.2f} %{cal} "
          f"({state})", flush=True)


# --------------------------------------------------------------------------- the figure

