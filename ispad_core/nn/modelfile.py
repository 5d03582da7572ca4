"""The model file: one file per trained detector, weights plus everything needed to use them.

A model file is written by :func:`save_model` with ``torch.save`` (atomically, through
:func:`ispad_core._shared.files.atomic_output`) and holds one plain dict::

    {"format": "ispad_core.model", "format_version": 2,
     "state_dict": {name: tensor, ...},        # on the CPU
     "sha256": "<hex digest of the tensors and of the canonical JSON of the metadata>",
     "metadata": {...}}                         # JSON values only

so that ``torch.load(path, weights_only=True)`` reads it: no Python object is pickled, and a file
that holds one is refused before any of its code runs. :func:`load_model` checks the file, rebuilds
the network from the metadata with :func:`ispad_core.nn.classifier`, loads the weights and returns
the model in eval mode together with the metadata.

The SHA-256 covers the names, dtypes, shapes and bytes of the tensors, in order, and then the
canonical JSON of the whole metadata (sorted keys, no spaces, UTF-8; the digest itself is not part
of the metadata): a file whose threshold, patch size or any other metadata was edited after
:func:`save_model` wrote it is refused like one whose weights were damaged. The digest detects
edits and damage; it is not a signature (anyone can compute a SHA-256), so it does not make an
untrusted file trustworthy. Files of format version 1 (whose digest covered the tensors only) are
still read, with a :class:`ModelFileWarning` saying that their metadata cannot be checked; saving
the loaded model again writes the current version.

The metadata (see :data:`REQUIRED_KEYS` and :data:`OPTIONAL_KEYS`):

=============== =============== =================================================================
key             type            meaning
=============== =============== =================================================================
backbone        str             built-in name (``BACKBONES``) or ``"package.module:function"``
backbone_kwargs dict            extra keyword arguments of :func:`~ispad_core.nn.classifier`
in_channels     int >= 1        input channels
num_classes     int >= 1        outputs (2: good, defective)
dropout         float in [0, 1) dropout before the head
patch_size      int >= 1        side of the square patches the model was trained on
preprocess      dict            :meth:`Preprocess.to_dict` (brightness, smoothing, normalisation)
threshold       float in [0, 1] defective when ``P(defective) >= threshold``
validation      dict or None    :meth:`ClassificationReport.to_dict` of the validation set
training        dict            training settings
provenance      dict            where the stream and the real defects came from
library_version str             set by :func:`save_model`
calibrations    dict            optional: one per-design threshold per design name (see
                                :data:`CALIBRATION_KEYS`; written by :func:`ispad_core.nn.calibrate`)
created         str             ISO 8601 UTC time, set by :func:`save_model`
format          str             ``"ispad_core.model"``, set by :func:`save_model`
format_version  int             set by :func:`save_model`
=============== =============== =================================================================

Further keys are kept as they are (JSON values only).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import numbers
import os
import pickle
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.files import atomic_output
from ispad_core._shared.version import __version__
from ispad_core.nn.backbones import BACKBONES, classifier, is_factory
from ispad_core.nn.preprocessing import Preprocess

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "OPTIONAL_KEYS",
    "REQUIRED_KEYS",
    "ModelFileError",
    "ModelFileWarning",
    "CALIBRATION_KEYS",
    "load_model",
    "write_calibration",
    "read_model_file",
    "save_model",
]

FORMAT = "ispad_core.model"
"""The format tag of a model file."""

FORMAT_VERSION = 2
"""The format version this library writes; it reads this version and older ones.

Version 2: the SHA-256 covers the canonical JSON of the metadata as well as the tensors.
Version 1: the SHA-256 covered the tensors only (still read, with a :class:`ModelFileWarning`).
"""

REQUIRED_KEYS: tuple[str, ...] = (
    "backbone",
    "backbone_kwargs",
    "in_channels",
    "num_classes",
    "dropout",
    "patch_size",
    "preprocess",
    "threshold",
)
"""Metadata keys a caller of :func:`save_model` must give."""

OPTIONAL_KEYS: dict[str, Any] = {"validation": None, "training": {}, "provenance": {}}
"""Metadata keys that :func:`save_model` fills with these defaults when they are missing."""

_ADDED_KEYS = ("library_version", "created", "format", "format_version")

CALIBRATION_KEYS: tuple[str, ...] = (
    "threshold",
    "target_fpr",
    "method",
    "n_windows",
    "n_scans",
    "windows_per_scan",
    "expected_false_alarms_per_scan",
    "quantiles",
    "smallest_supported_fpr",
    "supported",
    "created",
    "sample",
)
"""Keys of each entry of the metadata's ``calibrations`` (design name -> entry); further keys are kept.

``threshold`` (float in [0, 1], or the float just above 1 when the largest calibration score
was 1.0), ``target_fpr`` (float in (0, 1)), ``method`` ("order", "quantile", "gpd"),
``n_windows`` (int >= 1), ``n_scans`` (int >= 0: scans larger than a window; patches count as
windows only), ``windows_per_scan`` and ``expected_false_alarms_per_scan`` (float >= 0, or None
without scans), ``quantiles`` (dict of str to float), ``smallest_supported_fpr`` (1 / (n + 1)),
``supported`` (bool), ``created`` (ISO 8601), ``sample`` (ascending list of at most
``n_windows`` floats, for the drift test). Optional and checked when present: ``design_effect``
(float >= 1) and ``stride`` (int >= 1 or None).
"""

_THRESHOLD_MAX = float(np.nextafter(1.0, 2.0))  # an order statistic of 1.0, nudged up


class ModelFileError(InputValueError):
    """A file (a ValueError) is not a usable model file (not one, truncated, corrupt, edited, newer, incomplete)."""


class ModelFileWarning(UserWarning):
    """A model file is usable but cannot be fully checked (an older format version)."""


# --------------------------------------------------------------------------- metadata checks


def _json_safe(value: Any, where: str) -> Any:
    """A copy of ``value`` made of dict (str keys), list, str, int, float (finite), bool, None."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        if not math.isfinite(f):
            raise InputValueError(f"{where}: expected a finite number (JSON has no NaN or inf; store None instead), got {f}")
        return f
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputTypeError(f"{where}: expected str keys (JSON objects), got key {k!r} of type {type(k).__name__}")
            out[k] = _json_safe(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise InputTypeError(
        f"{where}: expected JSON values (dict, list, str, int, float, bool, None), got {type(value).__name__}"
    )


def _check_metadata(meta: Any, where: str) -> dict[str, Any]:
    """Validate metadata (types, ranges, required keys); return a JSON-safe copy with defaults.

    ``where`` prefixes every message (``"metadata"`` on save, ``"<file>: metadata"`` on load).
    """
    if not isinstance(meta, Mapping):
        raise InputTypeError(f"{where}: expected a dict, got {type(meta).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise InputValueError(f"{where}: missing required keys {missing} (required: {', '.join(REQUIRED_KEYS)})")
    out = _json_safe(meta, where)
    for key, default in OPTIONAL_KEYS.items():
        out.setdefault(key, default)

    def need(key: str, kind: type | tuple[type, ...], what: str) -> Any:
        v = out[key]
        if not isinstance(v, kind) or isinstance(v, bool):  # bool is an int to Python, not here
            raise InputTypeError(f"{where}[{key!r}]: expected {what}, got {type(v).__name__}")
        return v

    backbone = need("backbone", str, "a str")
    if backbone not in BACKBONES and not is_factory(backbone):
        raise InputValueError(
            f"{where}['backbone']: expected one of {', '.join(BACKBONES)} or 'package.module:function', got {backbone!r}"
        )
    need("backbone_kwargs", dict, "a dict")
    for key in ("in_channels", "num_classes", "patch_size"):
        if need(key, int, "an int") < 1:
            raise InputValueError(f"{where}[{key!r}]: expected an int >= 1, got {out[key]}")
    dropout = need("dropout", (int, float), "a float")
    if not 0.0 <= dropout < 1.0:
        raise InputValueError(f"{where}['dropout']: expected a value in [0, 1), got {dropout:g}")
    out["dropout"] = float(dropout)
    threshold = need("threshold", (int, float), "a float")
    if not 0.0 <= threshold <= 1.0:
        raise InputValueError(f"{where}['threshold']: expected a probability in [0, 1], got {threshold:g}")
    out["threshold"] = float(threshold)
    preprocess = need("preprocess", dict, "a dict (Preprocess.to_dict())")
    try:
        Preprocess(**preprocess)
    except (TypeError, ValueError) as exc:
        raise InputValueError(f"{where}['preprocess']: not a valid Preprocess: {exc}") from None
    if out["validation"] is not None:
        need("validation", dict, "a dict (ClassificationReport.to_dict()) or None")
    need("training", dict, "a dict")
    need("provenance", dict, "a dict")
    if "calibrations" in out:
        _check_calibrations(need("calibrations", dict, "a dict of design name to calibration"), f"{where}['calibrations']")
    return out


def _check_calibrations(calibrations: dict, where: str) -> None:
    """Each entry of ``calibrations`` has the keys of :data:`CALIBRATION_KEYS` with valid values."""
    from ispad_core.metrics import CALIBRATION_METHODS

    for design, entry in calibrations.items():
        at = f"{where}[{design!r}]"
        if not design.strip():
            raise InputValueError(f"{where}: expected non-empty design names, got {design!r}")
        if not isinstance(entry, dict):
            raise InputTypeError(f"{at}: expected a dict, got {type(entry).__name__}")
        missing = [k for k in CALIBRATION_KEYS if k not in entry]
        if missing:
            raise InputValueError(f"{at}: missing keys {missing}")

        def number(key: str, lo: float, hi: float, *, none: bool = False, integer: bool = False) -> None:
            v = entry[key]
            if v is None and none:
                return
            kind = int if integer else (int, float)
            if not isinstance(v, kind) or isinstance(v, bool) or not lo <= v <= hi:
                what = "an int" if integer else "a number"
                raise InputValueError(f"{at}[{key!r}]: expected {what} in [{lo:g}, {hi:g}]{' or None' if none else ''}, got {v!r}")

        number("threshold", 0.0, _THRESHOLD_MAX)
        number("target_fpr", 0.0, 1.0)
        if not 0.0 < entry["target_fpr"] < 1.0:
            raise InputValueError(f"{at}['target_fpr']: expected a rate in (0, 1), got {entry['target_fpr']!r}")
        if entry["method"] not in CALIBRATION_METHODS:
            raise InputValueError(f"{at}['method']: expected one of {', '.join(CALIBRATION_METHODS)}, got {entry['method']!r}")
        number("n_windows", 1, math.inf, integer=True)
        number("n_scans", 0, math.inf, integer=True)
        number("windows_per_scan", 0.0, math.inf, none=True)
        number("expected_false_alarms_per_scan", 0.0, math.inf, none=True)
        number("smallest_supported_fpr", 0.0, 1.0)
        if not isinstance(entry["supported"], bool):
            raise InputTypeError(f"{at}['supported']: expected a bool, got {type(entry['supported']).__name__}")
        if not isinstance(entry["created"], str):
            raise InputTypeError(f"{at}['created']: expected an ISO 8601 str, got {type(entry['created']).__name__}")
        if "design_effect" in entry:
            number("design_effect", 1.0, math.inf)
        if entry.get("stride") is not None:
            number("stride", 1, math.inf, integer=True)
        q = entry["quantiles"]
        if not isinstance(q, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in q.values()):
            raise InputValueError(f"{at}['quantiles']: expected a dict of str to numbers, got {q!r}")
        sample = entry["sample"]
        if (not isinstance(sample, list) or not sample or len(sample) > entry["n_windows"]
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in sample)
                or any(b < a for a, b in zip(sample, sample[1:]))):
            raise InputValueError(
                f"{at}['sample']: expected an ascending list of 1 to n_windows ({entry['n_windows']}) numbers"
            )


def _canonical_json(meta: Any) -> bytes:
    """The canonical JSON of the metadata: sorted keys, no spaces, UTF-8, no NaN or inf.

    Raises TypeError or ValueError for values that are not JSON (json.dumps's own errors).
    """
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _digest(state: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None = None) -> str:
    """SHA-256 of the names, dtypes, shapes and bytes of the tensors, in order, then of the metadata.

    With ``meta`` None this is the digest of format version 1 (the tensors only); format version 2
    appends a separator and the canonical JSON of ``meta`` (:func:`_canonical_json`).
    """
    h = hashlib.sha256()
    for key, t in state.items():
        t = t.detach().to("cpu").contiguous()
        h.update(json.dumps([key, str(t.dtype), list(t.shape)]).encode())
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    if meta is not None:
        h.update(b"\x00metadata\x00")
        h.update(_canonical_json(meta))
    return h.hexdigest()


def _unwrap(model: nn.Module) -> nn.Module:
    """The module under DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _build(meta: Mapping[str, Any]) -> nn.Module:
    return classifier(
        meta["backbone"],
        in_channels=meta["in_channels"],
        num_classes=meta["num_classes"],
        dropout=meta["dropout"],
        **meta["backbone_kwargs"],
    )


def _layout_mismatch(
    state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]
) -> str | None:
    """The first difference of keys or shapes between two state dicts, in words, or None."""
    for key, value in state.items():
        if key not in own:
            return f"unexpected key {key!r}"
        if tuple(value.shape) != tuple(own[key].shape):
            return f"key {key!r} has shape {tuple(value.shape)}, the backbone expects {tuple(own[key].shape)}"
    for key in own:
        if key not in state:
            return f"missing key {key!r}"
    return None


# --------------------------------------------------------------------------- save


def save_model(
    path: str | os.PathLike, model: nn.Module, *, metadata: Mapping[str, Any], overwrite: bool = False
) -> Path:
    """Write ``model``'s weights and ``metadata`` to a model file, atomically.

    The file is written to a temporary file beside ``path`` and renamed over it when complete
    (a reader sees the old file or the new one, never half of one; nothing is written through a
    symbolic link). It holds only tensors and JSON values, so ``torch.load(path,
    weights_only=True)`` reads it, and :func:`load_model` rebuilds the model.

    Before writing, the metadata is checked (required keys, types, ranges, JSON values only) and
    the model's state dict is compared with the one the metadata rebuilds (built on the ``meta``
    device, so no memory is spent): a file that :func:`load_model` could not load is never
    written. For a factory backbone this imports the factory, as the caller's own code did.

    Parameters
    ----------
    path : path-like
        The model file to write (conventionally ``model.pt``). Its folder must exist.
    model : torch.nn.Module
        The trained network (a DataParallel/DDP or ``torch.compile`` wrapper is unwrapped). Its
        tensors are copied to the CPU; the model itself is not changed.
    metadata : dict
        The keys of :data:`REQUIRED_KEYS` (``backbone``, ``backbone_kwargs``, ``in_channels``,
        ``num_classes``, ``dropout``, ``patch_size``, ``preprocess``, ``threshold``), optionally
        ``validation``, ``training`` and ``provenance`` (filled with None, {} and {} when
        missing) and any further JSON-safe keys. Tuples are stored as lists. ``library_version``,
        ``created``, ``format`` and ``format_version`` are set here (given values are replaced).
    overwrite : bool, default False
        Whether an existing file at ``path`` may be replaced.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Each call is atomic but takes no lock, so that a training run can hold
    :func:`ispad_core._shared.files.exclusive_lock` on its output for the whole run and save its model
    file repeatedly under it.

    Raises
    ------
    TypeError
        If ``model`` is not a module, or a metadata value has the wrong type or is not a JSON
        value (the message names the key, e.g. ``metadata['training']['lr']``).
    ValueError
        If a required key is missing, a value is out of range, or the model's state dict does not
        match the backbone the metadata names (the message names the first differing key).
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If the folder of ``path`` does not exist.

    Examples
    --------
    >>> import os, tempfile
    >>> from ispad_core.nn import Preprocess, classifier, load_model, save_model
    >>> model = classifier("resnet18", in_channels=1)
    >>> meta = {"backbone": "resnet18", "backbone_kwargs": {}, "in_channels": 1, "num_classes": 2,
    ...         "dropout": 0.1, "patch_size": 64, "preprocess": Preprocess().to_dict(),
    ...         "threshold": 0.5}
    >>> path = save_model(os.path.join(tempfile.mkdtemp(), "model.pt"), model, metadata=meta)
    >>> loaded, meta2 = load_model(path)
    >>> meta2["patch_size"], meta2["format_version"], loaded.training
    (64, 2, False)
    """
    if not isinstance(model, nn.Module):
        hint = " (a state dict? pass the module itself)" if isinstance(model, Mapping) else ""
        raise InputTypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}{hint}")
    if not isinstance(overwrite, bool):
        raise InputTypeError(f"overwrite: expected a bool, got {type(overwrite).__name__}")
    meta = _check_metadata(metadata, "metadata")
    module = _unwrap(model)
    state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
    with torch.device("meta"):
        try:
            reference = _build(meta).state_dict()
        except (TypeError, ValueError) as exc:
            raise InputValueError(f"metadata: the backbone it names cannot be built: {exc}") from exc
    mismatch = _layout_mismatch(state, reference)
    if mismatch is not None:
        raise InputValueError(
            f"metadata: the model does not match backbone {meta['backbone']!r} with in_channels="
            f"{meta['in_channels']}, num_classes={meta['num_classes']}, backbone_kwargs={meta['backbone_kwargs']}: "
            f"{mismatch}"
        )
    meta["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return _write_file(path, state, meta, name="path", overwrite=overwrite)


def _write_file(path: Any, state: Mapping[str, torch.Tensor], meta: dict, *, name: str, overwrite: bool) -> Path:
    """Stamp ``meta`` with this library's version and the format, and write the file atomically
    with the digest of ``state`` and ``meta`` (``name``: the argument that errors name)."""
    meta["library_version"] = __version__
    meta["format"] = FORMAT
    meta["format_version"] = FORMAT_VERSION
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": state,
        "sha256": _digest(state, meta),
        "metadata": meta,
    }
    with atomic_output(path, name=name, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return Path(os.fspath(path))


# --------------------------------------------------------------------------- load


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and check a model file without building the model: ``(state_dict, metadata)``.

    Runs no code from the file and imports nothing it names, so it is safe on any file (use it to
    look at a model file whose backbone is a factory). Tensors are on the CPU.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ModelFileError
        (a ValueError) naming the file, if it is not a model file, is truncated or corrupt, was
        edited after it was written (the SHA-256 covers the weights and the metadata), holds
        pickled Python objects (refused unread), comes from a newer format version, or lacks
        metadata keys.

    Warns
    -----
    ModelFileWarning
        For a file of format version 1, whose SHA-256 covers the weights only (read as before;
        an edit of its metadata cannot be detected).
    IsADirectoryError
        If ``path`` is a folder.

    Examples
    --------
    >>> import os, tempfile, torch
    >>> from ispad_core.nn.modelfile import read_model_file
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.pth")
    >>> torch.save({"conv1.weight": torch.zeros(1)}, path)
    >>> read_model_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ispad_core.nn.modelfile.ModelFileError: .../weights.pth: not an ispad_core model file: it holds a plain state dict ...
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"path: expected a file path, got {type(path).__name__}")
    p = Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(f"path: no such model file {p}")
    if p.is_dir():
        raise IsADirectoryError(f"path: {p} is a folder, expected a model file")
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04":  # torch.save's zip container
        what = "it is empty" if not head else f"it does not start like a file written by torch.save (starts with {head!r})"
        raise ModelFileError(f"{p}: not an ispad_core model file: {what}")
    if not zipfile.is_zipfile(p):
        raise ModelFileError(f"{p}: the model file is truncated or corrupt (its zip directory is missing); write it again")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc)
        marker = "WeightsUnpickler error:"
        if marker in detail:
            detail = detail.split(marker, 1)[1].strip().split("\n")[0].strip()
        raise ModelFileError(
            f"{p}: refused: the file holds pickled Python objects, which a model file never does, and loading "
            f"them could run code; nothing in it was run ({detail})"
        ) from None
    except (RuntimeError, OSError, EOFError, KeyError, zipfile.BadZipFile, ValueError) as exc:
        raise ModelFileError(f"{p}: the model file is truncated or corrupt ({type(exc).__name__}: {exc}); write it again") from None
    if not isinstance(obj, dict):
        raise ModelFileError(f"{p}: not an ispad_core model file: it holds a {type(obj).__name__}, expected a dict")
    if obj.get("format") != FORMAT:
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            raise ModelFileError(
                f"{p}: not an ispad_core model file: it holds a plain state dict (weights without metadata); "
                "use it as pretrained weights (classifier(..., weights=path)) or save a model file with save_model"
            )
        raise ModelFileError(f"{p}: not an ispad_core model file: no format tag {FORMAT!r} (got {obj.get('format')!r})")
    version = obj.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{p}: the model file has no valid format_version (got {version!r})")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{p}: the model file has format version {version}, written by a newer ispad_core; this version "
            f"({__version__}) reads up to format version {FORMAT_VERSION}: upgrade ispad-core"
        )
    state = obj.get("state_dict")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelFileError(f"{p}: the model file's state_dict is missing or not a dict of str -> Tensor")
    raw_meta = obj.get("metadata")
    digest = obj.get("sha256")
    if version == 1:
        if not isinstance(digest, str) or digest != _digest(state):
            raise ModelFileError(
                f"{p}: refused: the model file was edited or is corrupt: its weights do not match its SHA-256 checksum"
            )
        warnings.warn(
            f"{p}: model file of format version 1, whose SHA-256 covers the weights only: an edit of its "
            "metadata (threshold, patch_size, ...) cannot be detected. Save it again to write format version "
            f"{FORMAT_VERSION}: model, meta = load_model(path); save_model(new_path, model, metadata=meta)",
            ModelFileWarning,
            stacklevel=3,
        )
    else:
        try:
            expected = _digest(state, raw_meta)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{p}: the model file's metadata is not JSON ({exc}); write it again") from None
        if not isinstance(digest, str) or digest != expected:
            raise ModelFileError(
                f"{p}: refused: the model file was edited or is corrupt: its weights or metadata do not match its "
                "SHA-256 checksum (its threshold, patch_size and other metadata can be changed only by saving the "
                "model again with save_model)"
            )
    try:
        meta = _check_metadata(raw_meta, f"{p}: metadata")
    except (TypeError, ValueError) as exc:
        raise ModelFileError(str(exc)) from None
    return state, meta


def _allowed(allow_factory: str | Iterable[str] | None) -> frozenset[str]:
    if allow_factory is None:
        return frozenset()
    if isinstance(allow_factory, str):
        return frozenset([allow_factory])
    if isinstance(allow_factory, Iterable):
        names = list(allow_factory)
        for n in names:
            if not isinstance(n, str):
                raise InputTypeError(f"allow_factory: expected factory names (str), got {type(n).__name__}")
        return frozenset(names)
    raise InputTypeError(f"allow_factory: expected None, a factory name or a list of them, got {type(allow_factory).__name__}")


def load_model(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    allow_factory: str | Iterable[str] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model file written by :func:`save_model`: the ready model and its metadata.

    The file is read with ``torch.load(weights_only=True)`` (a file holding pickled Python
    objects is refused and nothing in it runs), checked (format tag and version, SHA-256 of the
    weights and the metadata, metadata keys and types), the network is rebuilt from the metadata with
    :func:`ispad_core.nn.classifier`, the weights are loaded strictly, and the model is moved to
    ``device`` and put in eval mode.

    A built-in backbone is rebuilt by name. A factory backbone (``"package.module:function"``)
    is imported and called, which runs code named by the file, so it is done only when
    ``allow_factory`` names that exact factory; on the command line the same opt-in is the
    ``--allow-factory package.module:function`` flag.

    Parameters
    ----------
    path : path-like
        The model file.
    device : str or torch.device, default "cpu"
        Where to put the model (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
    allow_factory : str, list of str or None
        Factory names that may be imported and called to rebuild the model.

    Returns
    -------
    model : torch.nn.Module
        In eval mode on ``device``; maps ``(B, in_channels, H, W)`` float32 to
        ``(B, num_classes)`` logits.
    metadata : dict
        The metadata (JSON values), with ``library_version``, ``created``, ``format`` and
        ``format_version`` as written.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ModelFileError
        (a ValueError) naming the file: not a model file, truncated or corrupt, edited after it
        was written (weights or metadata, e.g. its threshold), pickled objects refused, newer
        format version, missing or invalid metadata, weights that do not fit the backbone, or a
        factory backbone that ``allow_factory`` does not name (the message says
        what to pass).
    TypeError, ValueError
        For a bad ``device`` or ``allow_factory``, or when an allowed factory cannot be imported.

    Examples
    --------
    See :func:`save_model`.
    """
    allowed = _allowed(allow_factory)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputValueError(f"device: expected a torch device such as 'cpu' or 'cuda:0', got {device!r} ({exc})") from None
    state, meta = read_model_file(path)
    p = Path(os.fspath(path))
    backbone = meta["backbone"]
    if backbone not in BACKBONES and backbone not in allowed:
        raise ModelFileError(
            f"{p}: the model's backbone is the factory {backbone!r}; rebuilding it imports and runs that code, "
            f"so it needs your explicit opt-in: load_model(path, allow_factory={backbone!r}) "
            f"(on the command line: --allow-factory {backbone}). Do this only for files you trust."
        )
    try:
        model = _build(meta)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{p}: the backbone its metadata names cannot be built: {exc}") from exc
    mismatch = _layout_mismatch(state, model.state_dict())
    if mismatch is not None:
        raise ModelFileError(f"{p}: the weights do not fit backbone {backbone!r}: {mismatch}")
    model.load_state_dict(state, strict=True)
    return model.to(dev).eval(), meta


# --------------------------------------------------------------------------- calibrations


def write_calibration(
    path: str | os.PathLike,
    design: str,
    entry: Mapping[str, Any],
    *,
    out: str | os.PathLike,
    overwrite: bool = False,
) -> Path:
    """Copy a model file to ``out`` with ``entry`` as its calibration for ``design``, atomically.

    The model file at ``path`` is read and checked (:func:`read_model_file`: its digest must
    hold), ``metadata["calibrations"][design]`` is set to ``entry`` (one calibration per design:
    an older one of that design is replaced, the other designs' stay), the metadata is checked
    again (:data:`CALIBRATION_KEYS`) and the file is written with a new SHA-256 over the same
    weights and the new metadata. Nothing runs the model, so a factory backbone needs no opt-in.
    ``created`` (when the model was trained) is kept; ``library_version`` and ``format_version``
    become this library's.

    Parameters
    ----------
    path : path-like
        The model file.
    design : str
        The design's name (non-empty).
    entry : dict
        The calibration (:data:`CALIBRATION_KEYS`, JSON values).
    out : path-like
        Where to write; it may be ``path`` itself only with ``overwrite``.
    overwrite : bool, default False

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ModelFileError, FileNotFoundError
        As :func:`read_model_file`.
    TypeError, ValueError
        For a bad ``design`` or ``entry`` (the message names the key).
    FileExistsError
        If ``out`` exists and ``overwrite`` is False.
    """
    if not isinstance(design, str):
        raise InputTypeError(f"design: expected a str, got {type(design).__name__}")
    if not design.strip():
        raise InputValueError(f"design: expected a non-empty name, got {design!r}")
    if not isinstance(overwrite, bool):
        raise InputTypeError(f"overwrite: expected a bool, got {type(overwrite).__name__}")
    state, meta = read_model_file(path)
    meta = dict(meta)
    calibrations = dict(meta.get("calibrations") or {})
    calibrations[design] = _json_safe(entry, f"calibrations[{design!r}]")
    meta["calibrations"] = calibrations
    meta = _check_metadata(meta, "metadata")
    return _write_file(out, state, meta, name="out", overwrite=overwrite)
