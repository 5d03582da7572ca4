"""Parameters of the synthesizer: :class:`DefectParams`, :class:`DefectMixture` and the presets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Union

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core.modality import MODALITIES
from ispad_core._shared.validation import (
    check_choice,
    check_float,
    check_int,
    check_probability,
    check_range,
)

__all__ = ["DefectMixture", "DefectParams", "PRESETS", "ParamsLike", "params_from_dict"]

MAX_STEPS = 4096
MAX_BRANCHES = 16

# (name, minimum, maximum, integer) of every (low, high) range field, in table order.
_RANGES: tuple[tuple[str, float, float, bool], ...] = (
    ("steps", 1, MAX_STEPS, True),
    ("step_length", 0.05, 64.0, False),
    ("momentum", 0.0, 1.0, False),
    ("angular_sigma", 0.0, 2.0 * math.pi, False),
    ("branches", 0, MAX_BRANCHES, True),
    ("branch_length", 0.0, 1.0, False),
    ("branch_angle", 0.0, math.pi, False),
    ("width", 0.25, 32.0, False),
    ("taper", 0.0, 8.0, False),
    ("noise_amplitude", 0.0, 1.0, False),
    ("noise_scale", 1.0, 64.0, False),
    ("blur", 0.0, 8.0, False),
    ("contrast", 0.0, 255.0, False),
    ("channel_gain", 0.0, 4.0, False),
)


@dataclass(frozen=True)
class DefectParams:
    """Ranges of every random quantity of one defect morphology, and how it is accepted.

    Each ``(low, high)`` pair is a range a value is drawn from uniformly, once per attempt
    (``steps`` and ``branches`` are integers, both ends included). A preset is a set of ranges,
    not fixed values. Instances are immutable and validated on construction; use
    :func:`dataclasses.replace` to derive a variant.

    Parameters
    ----------
    steps : (int, int)
        Number of random-walk steps of the skeleton, in ``[1, 4096]``. Few steps give dots,
        pinholes and inclusions; many give fibres and scratches.
    step_length : (float, float)
        Length of one step in px, in ``[0.05, 64]``.
    momentum : (float, float)
        Momentum ``m`` in ``[0, 1]`` smoothing the angular velocity:
        ``w_t = m w_{t-1} + (1 - m) sigma_w N(0, 1)``. Close to 1 gives smooth, straight paths.
    angular_sigma : (float, float)
        ``sigma_w`` in radians per step, in ``[0, 2 pi]``.
    branches : (int, int)
        Number of sub-walks spawned from random vertices of the main walk, in ``[0, 16]``.
    branch_length : (float, float)
        Length of a branch as a fraction of the main walk's steps, in ``[0, 1]``.
    branch_angle : (float, float)
        Deviation (radians, sign drawn at random) of a branch from the heading where it spawns.
    width : (float, float)
        Standard deviation in px of the Gaussian width profile the skeleton is spread with.
    taper : (float, float)
        Exponent ``k`` of the tapering ``(4 s (1 - s))**k`` along the arc length ``s`` of each
        walk; 0 means no tapering.
    noise_amplitude : (float, float)
        Depth in ``[0, 1]`` of the smoothed-noise modulation of the texture (0: uniform ink).
    noise_scale : (float, float)
        Cell size in px of the smoothed (value) noise.
    blur : (float, float)
        Standard deviation in px of an optics blur applied to the texture; below 0.1 none.
    contrast : (float, float)
        Peak contrast: grey levels of an 8-bit image (scaled by 257 for uint16) when
        ``contrast_mode="absolute"``, a fraction of the local background level when
        ``"relative"``.
    contrast_mode : {"absolute", "relative"}
    bright_probability : float
        Probability that the defect is brighter than the background (else darker).
    blend : {"additive", "multiplicative"}
        ``"additive"`` adds ``sign * amplitude * texture``; ``"multiplicative"``
        (transmission-like) scales the background by ``1 + sign * gain * texture``, so the pattern
        under the defect shows through.
    channel_gain : (float, float)
        Per-channel gain of colour patches (one value per channel per defect); ignored for grey.
    visibility : {"cnr", "ssr"}
        The acceptance measure: ``"ssr"`` the sum of squared residuals (8-bit grey levels
        squared, averaged over channels), ``"cnr"`` the contrast-to-noise ratio (mean absolute
        residual in the mask over the standard deviation of a background ring, floored at one
        grey level).
    threshold : float
        A defect is accepted when its visibility is at least this (and its mask is non-empty).
    max_attempts : int
        Draws per defect before it is reported as not accepted, in ``[1, 1000]``.
    margin : int
        The skeleton stays at least this many px away from the patch border.
    mask_level : float
        The mask is the texture at or above this level (in ``(0, 1]``) where pixels changed.
    ring : int
        Width in px of the background ring the ``"cnr"`` noise is measured in, in ``[1, 64]``.

    Raises
    ------
    TypeError
        If a field has the wrong type.
    ValueError
        If a range has ``low > high`` or leaves its bounds, or a choice is unknown.

    Examples
    --------
    >>> from ispad_core.synth import DefectParams
    >>> p = DefectParams(steps=(40, 120), momentum=(0.9, 0.97), width=(0.6, 1.0))
    >>> p.steps, p.visibility
    ((40, 120), 'cnr')
    >>> DefectParams.from_dict(p.to_dict()) == p
    True
    """

    steps: tuple[int, int] = (1, 3)
    step_length: tuple[float, float] = (0.5, 1.5)
    momentum: tuple[float, float] = (0.3, 0.7)
    angular_sigma: tuple[float, float] = (0.2, 0.6)
    branches: tuple[int, int] = (0, 0)
    branch_length: tuple[float, float] = (0.2, 0.5)
    branch_angle: tuple[float, float] = (0.3, 1.2)
    width: tuple[float, float] = (1.0, 2.0)
    taper: tuple[float, float] = (0.0, 0.0)
    noise_amplitude: tuple[float, float] = (0.1, 0.3)
    noise_scale: tuple[float, float] = (2.0, 4.0)
    blur: tuple[float, float] = (0.0, 0.0)
    contrast: tuple[float, float] = (12.0, 24.0)
    contrast_mode: str = "absolute"
    bright_probability: float = 0.5
    blend: str = "additive"
    channel_gain: tuple[float, float] = (0.85, 1.15)
    visibility: str = "cnr"
    threshold: float = 1.0
    max_attempts: int = 10
    margin: int = 8
    mask_level: float = 0.25
    ring: int = 4

    def __post_init__(self) -> None:
        for name, lo, hi, integer in _RANGES:
            value = check_range(getattr(self, name), name, minimum=lo, maximum=hi, integer=integer)
            object.__setattr__(self, name, value)
        check_choice(self.contrast_mode, "contrast_mode", ("absolute", "relative"))
        check_choice(self.blend, "blend", ("additive", "multiplicative"))
        check_choice(self.visibility, "visibility", ("cnr", "ssr"))
        object.__setattr__(
            self, "bright_probability", check_probability(self.bright_probability, "bright_probability")
        )
        object.__setattr__(self, "threshold", check_float(self.threshold, "threshold", minimum=0.0))
        object.__setattr__(
            self, "max_attempts", check_int(self.max_attempts, "max_attempts", minimum=1, maximum=1000)
        )
        object.__setattr__(self, "margin", check_int(self.margin, "margin", minimum=0, maximum=4096))
        object.__setattr__(
            self,
            "mask_level",
            check_float(self.mask_level, "mask_level", minimum=0.0, maximum=1.0, min_inclusive=False),
        )
        object.__setattr__(self, "ring", check_int(self.ring, "ring", minimum=1, maximum=64))

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (ranges as lists) that :meth:`from_dict` turns back into ``self``."""
        out: dict[str, Any] = {"kind": "defect"}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> "DefectParams":
        """Rebuild from :meth:`to_dict` output (missing fields take their defaults).

        Raises
        ------
        TypeError
            If ``data`` is not a mapping.
        ValueError
            If it names an unknown field or another kind, or a value is invalid.
        """
        if not isinstance(data, Mapping):
            raise InputTypeError(f"data: expected a dict, got {type(data).__name__}")
        data = dict(data)
        kind = data.pop("kind", "defect")
        if kind != "defect":
            raise InputValueError(f"data: expected kind 'defect', got {kind!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputValueError(f"data: unknown DefectParams fields {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    # ------------------------------------------------------------------ variants

    def scale_contrast(self, factor: float, *, scale_threshold: bool = False) -> "DefectParams":
        """A copy whose contrast range is multiplied by ``factor``.

        Both ends of :attr:`contrast` are multiplied (grey levels for ``contrast_mode="absolute"``,
        the fraction of the background for ``"relative"``) and clipped to the field's upper bound
        of 255, which already saturates any image. Every other field, the random draws included,
        is unchanged, so the same seed gives the same skeleton, texture and polarity with a
        stronger (``factor > 1``) or weaker (``factor < 1``) modification.

        Parameters
        ----------
        factor : float
            Positive, finite multiplier.
        scale_threshold : bool, default False
            Also scale the acceptance :attr:`threshold` by the amount the visibility measure
            scales with the contrast: ``factor`` for ``visibility="cnr"``, ``factor**2`` for
            ``"ssr"``. With False the threshold stays, so a weaker variant redraws (or rejects)
            defects that fall under it, and a stronger one accepts more on the first attempt.

        Returns
        -------
        DefectParams

        Raises
        ------
        TypeError
            If ``factor`` is not a real number.
        ValueError
            If ``factor`` is not positive and finite.

        Examples
        --------
        >>> from ispad_core.synth import PRESETS
        >>> PRESETS["scratch"].scale_contrast(2.0).contrast
        (28.0, 80.0)
        >>> PRESETS["scratch"].scale_contrast(0.5, scale_threshold=True).threshold
        0.175
        """
        factor = check_float(factor, "factor", minimum=0.0, min_inclusive=False)
        bound = dict((n, hi) for n, _, hi, _ in _RANGES)["contrast"]
        lo, hi = self.contrast
        changes: dict[str, Any] = {"contrast": (min(lo * factor, bound), min(hi * factor, bound))}
        if scale_threshold:
            changes["threshold"] = self.threshold * (factor if self.visibility == "cnr" else factor**2)
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ kernel encoding

    def _max_points(self) -> int:
        return (1 + self.branches[1]) * (self.steps[1] + 1)

    def _row(self) -> np.ndarray:
        """The float vector the kernels read (layout ``_synth_kernels.T_*``)."""
        values: list[float] = []
        for name, *_ in _RANGES:
            values.extend(getattr(self, name))
        values += [
            1.0 if self.contrast_mode == "relative" else 0.0,
            self.bright_probability,
            1.0 if self.blend == "multiplicative" else 0.0,
            1.0 if self.visibility == "cnr" else 0.0,
            self.threshold,
            float(self.max_attempts),
            float(self.margin),
            self.mask_level,
            float(self.ring),
            float(self._max_points()),
        ]
        return np.array(values, dtype=np.float64)


@dataclass(frozen=True)
class DefectMixture:
    """A weighted mixture of morphologies: each defect draws one component, then its ranges.

    Accepted wherever a :class:`DefectParams` is. The component is drawn once per defect (the
    first draw of its stream), so redrawing an invisible defect keeps its morphology and the
    mixture's proportions hold among the requested defects.

    Parameters
    ----------
    components : tuple of DefectParams
    weights : tuple of float
        Positive relative weights, one per component (normalised internally).
    names : tuple of str, optional
        A name per component (e.g. the preset it came from); defaults to ``"c0", "c1", ...``.

    Examples
    --------
    >>> from ispad_core.synth import PRESETS, DefectMixture
    >>> mix = DefectMixture((PRESETS["dot-dark"], PRESETS["scratch"]), (3.0, 1.0), ("dot-dark", "scratch"))
    >>> mix.probabilities
    (0.75, 0.25)
    """

    components: tuple
    weights: tuple
    names: tuple = field(default=())

    def __post_init__(self) -> None:
        comps = tuple(self.components) if isinstance(self.components, (list, tuple)) else None
        if comps is None:
            raise InputTypeError(f"components: expected a tuple of DefectParams, got {type(self.components).__name__}")
        if not comps:
            raise InputValueError("components: expected at least one DefectParams, got none")
        for i, c in enumerate(comps):
            if not isinstance(c, DefectParams):
                raise InputTypeError(f"components[{i}]: expected DefectParams, got {type(c).__name__}")
        if isinstance(self.weights, (str, bytes)) or not hasattr(self.weights, "__len__"):
            raise InputTypeError(f"weights: expected a tuple of numbers, got {type(self.weights).__name__}")
        weights = tuple(
            check_float(w, f"weights[{i}]", minimum=0.0, min_inclusive=False) for i, w in enumerate(self.weights)
        )
        if len(weights) != len(comps):
            raise InputValueError(f"weights: expected {len(comps)} weights like components, got {len(weights)}")
        names = tuple(self.names) if self.names else tuple(f"c{i}" for i in range(len(comps)))
        if len(names) != len(comps):
            raise InputValueError(f"names: expected {len(comps)} names like components, got {len(names)}")
        for i, n in enumerate(names):
            if not isinstance(n, str):
                raise InputTypeError(f"names[{i}]: expected a str, got {type(n).__name__}")
        object.__setattr__(self, "components", comps)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "names", names)

    @property
    def probabilities(self) -> tuple:
        """The normalised weights."""
        total = sum(self.weights)
        return tuple(w / total for w in self.weights)

    def scale_contrast(self, factor: float, *, scale_threshold: bool = False) -> "DefectMixture":
        """A copy with every component's contrast scaled (:meth:`DefectParams.scale_contrast`).

        Weights and names are kept, so the morphology proportions stay as they were.

        Examples
        --------
        >>> from ispad_core.synth import PRESETS
        >>> strong = PRESETS["asm"].scale_contrast(2.0)
        >>> strong.names == PRESETS["asm"].names, strong.components[0].contrast
        (True, (28.0, 80.0))
        """
        return dataclasses.replace(
            self,
            components=tuple(c.scale_contrast(factor, scale_threshold=scale_threshold) for c in self.components),
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable dict that :meth:`from_dict` turns back into ``self``."""
        return {
            "kind": "mixture",
            "components": [
                {"name": n, "weight": w, "params": c.to_dict()}
                for n, w, c in zip(self.names, self.weights, self.components)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "DefectMixture":
        """Rebuild from :meth:`to_dict` output."""
        if not isinstance(data, Mapping):
            raise InputTypeError(f"data: expected a dict, got {type(data).__name__}")
        if data.get("kind") != "mixture":
            raise InputValueError(f"data: expected kind 'mixture', got {data.get('kind')!r}")
        comps = data.get("components")
        if not isinstance(comps, list):
            raise InputValueError("data: expected a list under 'components'")
        return cls(
            tuple(DefectParams.from_dict(c["params"]) for c in comps),
            tuple(c["weight"] for c in comps),
            tuple(c["name"] for c in comps),
        )

    def _cumulative(self) -> np.ndarray:
        cum = np.cumsum(np.asarray(self.weights, dtype=np.float64))
        cum /= cum[-1]
        cum[-1] = 1.0
        return cum


ParamsLike = Union[DefectParams, DefectMixture, str]


def params_from_dict(data: Mapping) -> Union[DefectParams, DefectMixture]:
    """Rebuild a :class:`DefectParams` or :class:`DefectMixture` from its ``to_dict()`` output.

    Parameters
    ----------
    data : Mapping
        A dict as written by ``to_dict()`` (e.g. read back from JSON or a stream file's
        attributes); ``"kind": "mixture"`` selects :class:`DefectMixture`.

    Returns
    -------
    DefectParams or DefectMixture

    Raises
    ------
    TypeError
        If ``data`` is not a mapping.
    ValueError
        If it names an unknown field or kind, or a value is invalid.

    Examples
    --------
    >>> import json
    >>> from ispad_core.synth import PRESETS, params_from_dict
    >>> params_from_dict(json.loads(json.dumps(PRESETS["mixed"].to_dict()))) == PRESETS["mixed"]
    True
    """
    if not isinstance(data, Mapping):
        raise InputTypeError(f"data: expected a dict, got {type(data).__name__}")
    if data.get("kind") == "mixture":
        return DefectMixture.from_dict(data)
    return DefectParams.from_dict(data)


def resolve_params(params: Any, name: str = "params") -> Union[DefectParams, DefectMixture]:
    """A preset name, DefectParams or DefectMixture -> DefectParams or DefectMixture."""
    if isinstance(params, str):
        if params not in PRESETS:
            listed = ", ".join(repr(k) for k in PRESETS)
            raise InputValueError(f"{name}: expected a preset name ({listed}), got {params!r}")
        return PRESETS[params]
    if isinstance(params, (DefectParams, DefectMixture)):
        return params
    raise InputTypeError(f"{name}: expected a DefectParams, DefectMixture or preset name, got {type(params).__name__}")


def encode(params: Union[DefectParams, DefectMixture]) -> tuple[np.ndarray, np.ndarray]:
    """(table (K, T) float64, cumulative weights (K,)) handed to the kernels."""
    if isinstance(params, DefectParams):
        return params._row()[None, :], np.ones(1)
    return np.stack([c._row() for c in params.components]), params._cumulative()


def max_margin(params: Union[DefectParams, DefectMixture]) -> int:
    comps = (params,) if isinstance(params, DefectParams) else params.components
    return max(c.margin for c in comps)


# --------------------------------------------------------------------------- presets
# Weakly contrasted on purpose (ISP-AD, section 3): a careful eye finds them, they do not shout.

_DOT = DefectParams(
    steps=(1, 3),
    step_length=(0.4, 1.2),
    momentum=(0.3, 0.7),
    angular_sigma=(0.2, 0.8),
    width=(1.0, 2.0),
    noise_amplitude=(0.1, 0.35),
    noise_scale=(1.5, 3.0),
    contrast=(16.0, 40.0),
    visibility="cnr",
    threshold=0.4,
)

_FIBER = DefectParams(
    steps=(30, 120),
    step_length=(1.0, 1.5),
    momentum=(0.88, 0.98),
    angular_sigma=(0.1, 0.45),
    branches=(0, 1),
    branch_length=(0.15, 0.4),
    branch_angle=(0.3, 1.0),
    width=(0.7, 1.2),
    taper=(0.2, 1.0),
    noise_amplitude=(0.2, 0.5),
    noise_scale=(2.0, 5.0),
    contrast=(14.0, 40.0),
    visibility="cnr",
    threshold=0.35,
)

PRESETS: dict[str, Union[DefectParams, DefectMixture]] = {
    "dot-bright": dataclasses.replace(_DOT, bright_probability=1.0),
    "dot-dark": dataclasses.replace(_DOT, bright_probability=0.0),
    "pinhole": DefectParams(
        steps=(1, 1),
        step_length=(0.2, 0.8),
        width=(0.5, 0.9),
        noise_amplitude=(0.0, 0.0),
        contrast=(0.2, 0.5),
        contrast_mode="relative",
        bright_probability=1.0,
        blend="multiplicative",
        visibility="cnr",
        threshold=0.5,
    ),
    "inclusion": DefectParams(
        steps=(3, 10),
        step_length=(0.7, 1.4),
        momentum=(0.0, 0.4),
        angular_sigma=(0.6, 1.6),
        width=(1.2, 2.4),
        noise_amplitude=(0.25, 0.5),
        noise_scale=(1.5, 3.5),
        contrast=(0.12, 0.32),
        contrast_mode="relative",
        bright_probability=0.0,
        blend="multiplicative",
        visibility="cnr",
        threshold=0.4,
    ),
    "fiber-bright": dataclasses.replace(_FIBER, bright_probability=1.0),
    "fiber-dark": dataclasses.replace(_FIBER, bright_probability=0.0),
    "scratch": DefectParams(
        steps=(30, 110),
        step_length=(1.5, 2.5),
        momentum=(0.95, 0.995),
        angular_sigma=(0.02, 0.15),
        width=(0.6, 1.0),
        taper=(0.2, 0.8),
        noise_amplitude=(0.0, 0.25),
        noise_scale=(3.0, 6.0),
        contrast=(14.0, 40.0),
        bright_probability=0.5,
        visibility="cnr",
        threshold=0.35,
    ),
    "deformation": DefectParams(
        steps=(2, 10),
        step_length=(1.0, 2.5),
        momentum=(0.5, 0.9),
        angular_sigma=(0.2, 0.6),
        width=(2.5, 4.5),
        noise_amplitude=(0.1, 0.3),
        noise_scale=(3.0, 6.0),
        blur=(0.5, 1.0),
        contrast=(0.06, 0.15),
        contrast_mode="relative",
        bright_probability=0.5,
        visibility="ssr",
        threshold=6000.0,
    ),
}


def _mix(weights: dict[str, float]) -> DefectMixture:
    return DefectMixture(
        tuple(PRESETS[k] for k in weights), tuple(weights.values()), tuple(weights.keys())
    )


PRESETS["mixed"] = _mix(
    {
        "dot-bright": 1.0,
        "dot-dark": 1.0,
        "pinhole": 0.75,
        "inclusion": 0.75,
        "fiber-bright": 1.0,
        "fiber-dark": 1.0,
        "scratch": 1.0,
    }
)
# The modality mixtures (lsm1, lsm2, asm) come from the one modality table.
for _name, _modality in MODALITIES.items():
    PRESETS[_name] = _mix(dict(_modality.defects))
del _name, _modality
