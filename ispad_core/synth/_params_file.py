"""Synthesizer parameters from a JSON file (what ``ispad synth --params`` and ``ispad gallery --params`` read;
public as :func:`ispad_core.synth.read_params`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ispad_core._shared.errors import InputValueError
from ispad_core.synth._params import DefectMixture, DefectParams

__all__ = ["read_params"]


def read_params(path: str | os.PathLike, *, name: str = "params") -> DefectParams | DefectMixture:
    """Read a :class:`~ispad_core.synth.DefectParams` or :class:`~ispad_core.synth.DefectMixture`
    from the JSON that their ``to_dict()`` writes.

    A file with ``"kind": "mixture"`` is a mixture (``components``: a list of ``{"name",
    "weight", "params"}``); anything else is one morphology, whose missing fields take their
    defaults. Write a starting point with
    ``json.dump(PRESETS["scratch"].to_dict(), open("scratch.json", "w"), indent=1)``.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file.
    name : str
        What the argument is called in error messages (``ispad`` passes ``"--params"``).

    Returns
    -------
    DefectParams or DefectMixture

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    ValueError
        If it is not JSON, or a key is unknown or its value invalid; the message names the file,
        the component (for a mixture) and the key.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> from ispad_core.synth import PRESETS
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "mixed.json"
    >>> _ = f.write_text(json.dumps(PRESETS["mixed"].to_dict()))
    >>> read_params(f) == PRESETS["mixed"]
    True
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{name}: {p} does not exist")
    where = f"{name}: {p}"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputValueError(f"{where} is not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise InputValueError(
            f"{where}: expected a JSON object as DefectParams.to_dict() or DefectMixture.to_dict() writes, "
            f"got {type(data).__name__}"
        )
    if data.get("kind") == "mixture":
        comps = data.get("components")
        if not isinstance(comps, list) or not comps:
            raise InputValueError(f"{where}: key 'components': expected a non-empty list of {{name, weight, params}} objects")
        for i, comp in enumerate(comps):
            label = f"components[{i}]"
            if not isinstance(comp, dict):
                raise InputValueError(f"{where}: {label}: expected an object with name, weight and params, got {type(comp).__name__}")
            missing = [k for k in ("name", "weight", "params") if k not in comp]
            unknown = sorted(set(comp) - {"name", "weight", "params"})
            if missing or unknown:
                what = f"missing key(s) {missing}" if missing else f"unknown key(s) {unknown}"
                raise InputValueError(f"{where}: {label}: {what} (expected name, weight and params)")
            try:
                DefectParams.from_dict(comp["params"])
            except (TypeError, ValueError) as exc:
                raise InputValueError(f"{where}: {label} ({comp['name']!r}).params: {exc}") from None
        unknown = sorted(set(data) - {"kind", "components"})
        if unknown:
            raise InputValueError(f"{where}: unknown key(s) {unknown} of a mixture (expected kind and components)")
        try:
            return DefectMixture.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise InputValueError(f"{where}: {exc}") from None
    try:
        return DefectParams.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise InputValueError(f"{where}: {exc}") from None
