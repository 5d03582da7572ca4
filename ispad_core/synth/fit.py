"""A synthesizer preset estimated from real defects: measure their masks and images, map the
measured quantile ranges onto :class:`~ispad_core.synth.DefectParams` (what ``ispad fit-preset``
runs). See ``docs/fit_preset.md``.

What is measured (per defect, on the grey level: the mean over channels, in 8-bit grey levels):

- ``background``: the median of a ring around the mask, ``gap`` px away from it (the synthesizer's
  texture reaches past its mask with levels under ``mask_level``) and ``ring`` px wide;
- ``contrast``: the absolute mean difference between the mask's pixels and that background, and
  ``polarity`` its sign (+1 brighter). The difference is averaged before its absolute value is
  taken so that the texture of the background, which the defect's pixels carry as well, averages
  out instead of adding up;
- ``width``: the full width in px across the mask's ridge, ``2 * median(d) - 0.5`` where ``d`` is
  the Euclidean distance transform (``scipy.ndimage``) on the ridge (mask pixels whose distance
  is the largest in their 3 x 3 neighbourhood): a digital band of ``k`` px has ``d = (k + 1) / 2``
  (k odd) or ``k / 2`` (k even) at its middle;
- ``length``: ``max(extent, area / width)``, the extent of the mask along its principal axis or,
  for a curved mask, its area over its width (the length of the centre line);
- ``straightness``: ``extent / length`` in (0, 1], 1 for a straight or round defect;
- ``roughness``: the coefficient of variation of the defect's difference inside the mask.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from scipy import ndimage

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_float, check_int
from ispad_core.synth._params import _RANGES, DefectMixture, DefectParams, resolve_params

__all__ = ["DefectMeasures", "FitReport", "FitRow", "fit_preset", "measure_defects", "ridge"]

MEASURES = ("area", "background", "contrast", "polarity", "width", "length", "straightness", "roughness")
RASTER_VARIANCE = 1.0 / 6.0
"""Variance (px^2, per axis) the synthesizer's bilinear splat adds to its width profile: a point
at fraction f of a pixel is split f : 1 - f, whose variance f (1 - f) averages 1/6 over f."""
_BOUNDS = {name: (lo, hi) for name, lo, hi, _ in _RANGES}
_NOT_IDENTIFIED = {
    "step_length": "only the product steps x step_length (the length) is seen; kept",
    "momentum": "curvature is measured (straightness) but one figure cannot split momentum and angular_sigma; kept",
    "angular_sigma": "see momentum; kept",
    "branches": "branches are not told apart from curvature in a mask; kept",
    "taper": "not identified from a mask; kept",
    "noise_amplitude": "roughness is measured but mixes with the background's texture; kept",
    "noise_scale": "not identified; kept",
    "blur": "not told apart from the width; kept (and subtracted from it)",
}


@dataclass(frozen=True)
class DefectMeasures:
    """Per-defect measurements (each a float64 array of shape (N,); see the module docstring).

    Attributes
    ----------
    area : mask pixels. background : ring median (8-bit grey levels). contrast : absolute mean
    difference (8-bit grey levels). polarity : +1 brighter, -1 darker. width, length : px.
    straightness : in (0, 1]. roughness : coefficient of variation of the difference in the mask.
    """

    area: np.ndarray
    background: np.ndarray
    contrast: np.ndarray
    polarity: np.ndarray
    width: np.ndarray
    length: np.ndarray
    straightness: np.ndarray
    roughness: np.ndarray

    def __len__(self) -> int:
        return int(self.area.shape[0])

    def take(self, index: Any) -> "DefectMeasures":
        """The measurements of the defects ``index`` (a bool mask or indices)."""
        return DefectMeasures(*(getattr(self, n)[index] for n in MEASURES))


@dataclass(frozen=True)
class FitRow:
    """One fitted parameter of one component: the base range beside the fitted one."""

    component: str
    parameter: str
    base: tuple
    fitted: tuple
    status: str
    median: float | None = None
    """The median of the defects' mapped values (None where the range was kept)."""


@dataclass(frozen=True)
class FitReport:
    """What :func:`fit_preset` returns.

    Attributes
    ----------
    params : DefectParams or DefectMixture
        The fitted parameters (a mixture when the base is one), ready for ``synthesize`` or a
        params file (``params.to_dict()``).
    base : DefectParams or DefectMixture
    measures : DefectMeasures
        Every defect's measurements.
    assigned : tuple of str
        The base component each defect was assigned to (``"defect"`` for a DefectParams base).
    rows : tuple of FitRow
        Per component and parameter: base range, fitted range and whether it was fitted or kept.
    """

    params: Union[DefectParams, DefectMixture]
    base: Union[DefectParams, DefectMixture]
    measures: DefectMeasures
    assigned: tuple
    rows: tuple

    def table(self, *, kept: bool = False) -> str:
        """The rows as a fixed-width text table (what ``ispad fit-preset`` prints).

        With ``kept=False`` the fields no mask identifies (the same for every component) are left
        out of the rows and listed once, with the reason, under the table.
        """
        lines = [f"{'component':<14} {'parameter':<18} {'base':>19} {'fitted':>19} {'median':>8}  status"]
        for r in self.rows:
            if r.parameter in _NOT_IDENTIFIED and not kept:
                continue
            med = "" if r.median is None else _fmt(r.median)
            lines.append(f"{r.component:<14} {r.parameter:<18} {_fmt(r.base):>19} {_fmt(r.fitted):>19} {med:>8}  {r.status}")
        if not kept and any(r.parameter in _NOT_IDENTIFIED for r in self.rows):
            lines.append("kept from the base in every fitted component (masks do not identify them):")
            lines.extend(f"  {name}: {why}" for name, why in _NOT_IDENTIFIED.items())
        return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.4g}"


# --------------------------------------------------------------------------- measuring


def ridge(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Euclidean distance transform of a bool mask (distance of each mask pixel to the nearest
    pixel outside it, the image border counting as outside) and its ridge (mask pixels whose
    distance is the largest in their 3 x 3 neighbourhood). Both of shape (H, W)."""
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    top = ndimage.maximum_filter(dist, size=3, mode="constant", cval=0.0)
    return dist, mask & (dist >= top)


def _grey(image: np.ndarray) -> np.ndarray:
    grey = image.astype(np.float64)
    if grey.ndim == 3:
        grey = grey.mean(axis=2)
    return grey / (257.0 if image.dtype == np.uint16 else 1.0)


def _principal_axis(srr: float, scc: float, src: float) -> tuple[float, float]:
    """The unit eigenvector of the largest eigenvalue of ``[[srr, src], [src, scc]]`` in closed
    form; for an isotropic scatter (no principal axis) the row axis, or the column axis if wider."""
    lam = 0.5 * (srr + scc) + math.sqrt(0.25 * (srr - scc) ** 2 + src * src)
    if abs(src) <= 1e-12 * max(srr + scc, 1.0):
        v = (1.0, 0.0) if srr >= scc else (0.0, 1.0)
    elif srr >= scc:
        v = (lam - scc, src)
    else:
        v = (src, lam - srr)
    norm = math.hypot(v[0], v[1])
    return (v[0] / norm, v[1] / norm)


def _measure_one(grey: np.ndarray, mask: np.ndarray, gap: int, ring: int, where: str) -> tuple:
    square = np.ones((3, 3), bool)
    near = ndimage.binary_dilation(mask, square, iterations=gap) if gap else mask
    around = ndimage.binary_dilation(near, square, iterations=ring) & ~near
    if not around.any():
        raise InputValueError(f"{where}: no background around the mask (it leaves no ring of {ring} px {gap} px away)")
    background = float(np.median(grey[around]))
    diff = grey[mask] - background
    signed = float(diff.mean())
    contrast = abs(signed)
    polarity = 1.0 if signed >= 0.0 else -1.0
    roughness = float(diff.std() / contrast) if contrast > 0.0 else 0.0
    dist, top = ridge(mask)
    width = max(2.0 * float(np.median(dist[top])) - 0.5, 1.0)
    rows, cols = np.nonzero(mask)
    area = float(rows.size)
    extent = 1.0
    if rows.size > 1:
        r = rows - rows.mean()
        c = cols - cols.mean()
        axis = _principal_axis(float(r @ r), float(c @ c), float(r @ c))
        proj = r * axis[0] + c * axis[1]
        extent = float(proj.max() - proj.min()) + 1.0
    length = max(extent, area / width)
    return area, background, contrast, polarity, width, length, extent / length, roughness


def _check_pair(images: Any, masks: Any) -> tuple[list, list]:
    seqs = []
    for value, name in ((images, "images"), (masks, "masks")):
        if isinstance(value, np.ndarray):
            if value.ndim < 3:
                raise InputValueError(f"{name}: expected a batch (N, H, W[, C]) or a list of arrays, got shape {value.shape}")
            value = list(value)
        elif isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise InputTypeError(f"{name}: expected a sequence of arrays, got {type(value).__name__}")
        seqs.append(list(value))
    imgs, msks = seqs
    if not imgs:
        raise InputValueError("images: expected at least one defect, got none")
    if len(msks) != len(imgs):
        raise InputValueError(f"masks: expected {len(imgs)} masks like images, got {len(msks)}")
    out_i, out_m = [], []
    for i, (im, m) in enumerate(zip(imgs, msks)):
        im = np.asarray(im)
        m = np.asarray(m)
        if im.dtype not in (np.uint8, np.uint16):
            raise InputTypeError(f"images[{i}]: expected dtype uint8 or uint16, got {im.dtype}")
        if im.ndim not in (2, 3):
            raise InputValueError(f"images[{i}]: expected (H, W) or (H, W, C), got shape {im.shape}")
        if m.shape != im.shape[:2]:
            raise InputValueError(f"masks[{i}]: expected shape {im.shape[:2]} like images[{i}], got {m.shape}")
        if m.dtype != np.bool_:
            if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
                raise InputTypeError(f"masks[{i}]: expected bool or 0/255 integers, got dtype {m.dtype}")
            m = m > 0
        if not m.any():
            raise InputValueError(f"masks[{i}]: the mask is empty (no defect pixel)")
        out_i.append(im)
        out_m.append(m)
    return out_i, out_m


def measure_defects(images: Any, masks: Any, *, gap: int = 2, ring: int = 4) -> DefectMeasures:
    """Measure each real (or synthetic) defect from its image and mask.

    Parameters
    ----------
    images : sequence of arrays of uint8 or uint16, each (H, W) or (H, W, C), or a batch array
        The defective images (colour is averaged over channels; uint16 is divided by 257).
    masks : sequence of arrays, each (H, W) like its image, bool or 0/255
        The defect's pixels; none may be empty.
    gap, ring : int
        The background ring starts ``gap`` px (8-connected) from the mask and is ``ring`` px wide.

    Returns
    -------
    DefectMeasures
        Arrays of shape (N,); see the module docstring for each definition.

    Raises
    ------
    InputTypeError
        If an image is not uint8/uint16, or an argument is not a sequence.
    InputValueError
        If counts or shapes differ, a mask is empty, or a mask leaves no background ring.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((32, 32), 100, np.uint8); mask = np.zeros((32, 32), bool)
    >>> mask[10:13, 5:25] = True; img[mask] = 130
    >>> m = measure_defects([img], [mask])
    >>> float(m.contrast[0]), float(m.polarity[0]), float(m.width[0]), float(m.length[0])
    (30.0, 1.0, 3.5, 20.0)
    """
    gap = check_int(gap, "gap", minimum=0, maximum=64)
    ring = check_int(ring, "ring", minimum=1, maximum=64)
    imgs, msks = _check_pair(images, masks)
    values = np.array([_measure_one(_grey(im), m, gap, ring, f"masks[{i}]") for i, (im, m) in enumerate(zip(imgs, msks))])
    return DefectMeasures(*(values[:, k].copy() for k in range(len(MEASURES))))


# --------------------------------------------------------------------------- mapping onto the synthesizer


def _mid(r: tuple) -> float:
    return 0.5 * (float(r[0]) + float(r[1]))


def _profile(p: DefectParams) -> tuple[float, float]:
    """(k, modulation): the mask of a texture ``exp(-d^2 / 2 s^2)`` times the noise modulation
    (mean ``1 - a / 2`` after normalising to its maximum) reaches ``d = k s``."""
    modulation = 1.0 - 0.5 * _mid(p.noise_amplitude)
    level = min(p.mask_level / modulation, 0.95)
    return math.sqrt(2.0 * math.log(1.0 / level)), modulation


def map_measures(m: DefectMeasures, p: DefectParams) -> dict[str, np.ndarray]:
    """The synthesizer's per-defect values behind the measurements, given the parameters ``p`` for
    what the masks do not show: ``width`` (the profile's standard deviation), ``steps`` and
    ``contrast`` (in ``p.contrast_mode``'s unit), each of shape (N,)."""
    k, modulation = _profile(p)
    sigma_eff = 0.5 * m.width / k
    blur = _mid(p.blur) if p.blur[1] >= 0.1 else 0.0
    sigma = np.sqrt(np.maximum(sigma_eff**2 - RASTER_VARIANCE - blur**2, _BOUNDS["width"][0] ** 2))
    arc = np.maximum(m.length - m.width, 0.0)
    steps = np.maximum(arc / _mid(p.step_length), 1.0)
    # Mean of the texture over its mask: a line profile across, a round one for a dot.
    line = math.sqrt(math.pi / 2.0) * math.erf(k / math.sqrt(2.0)) / k
    dot = 2.0 * (1.0 - math.exp(-0.5 * k * k)) / (k * k)
    elongated = m.length >= 2.0 * m.width
    peak = m.contrast / (np.where(elongated, line, dot) * modulation)
    if p.contrast_mode == "relative":
        peak = peak / np.maximum(m.background, 1.0)
    return {"width": sigma, "steps": steps, "contrast": peak}


def _assign(m: DefectMeasures, comps: tuple) -> np.ndarray:
    """Index of the component whose ranges fit each defect best: log-distance outside the width,
    length and contrast ranges (weighted 10), then to their centres; a polarity the component never
    draws is excluded."""
    cost = np.zeros((len(comps), len(m)))
    for c, p in enumerate(comps):
        values = map_measures(m, p)
        for name in ("width", "steps", "contrast"):
            lo, hi = (max(float(v), 1e-3) for v in getattr(p, name))
            x = np.log(np.maximum(values[name], 1e-3))
            outside = np.maximum(math.log(lo) - x, 0.0) + np.maximum(x - math.log(hi), 0.0)
            cost[c] += 10.0 * outside + np.abs(x - 0.5 * (math.log(lo) + math.log(hi)))
        bright = m.polarity > 0
        cost[c] += np.where(bright & (p.bright_probability == 0.0), 1e6, 0.0)
        cost[c] += np.where(~bright & (p.bright_probability == 1.0), 1e6, 0.0)
    return np.argmin(cost, axis=0)


def _quantile_range(x: np.ndarray, name: str, quantiles: tuple, integer: bool) -> tuple:
    lo, hi = (float(v) for v in np.quantile(x, quantiles))
    bmin, bmax = _BOUNDS[name]
    lo, hi = min(max(lo, bmin), bmax), min(max(hi, bmin), bmax)
    if integer:
        return (int(math.floor(lo)), max(int(math.ceil(hi)), int(math.floor(lo))))
    return (round(lo, 4), round(max(hi, lo), 4))


def _fit_one(name: str, m: DefectMeasures, p: DefectParams, quantiles: tuple, min_defects: int) -> tuple:
    """(fitted DefectParams, rows) of one component from its defects."""
    rows = []
    if len(m) < min_defects:
        for field in ("width", "steps", "contrast", "bright_probability"):
            value = getattr(p, field)
            rows.append(FitRow(name, field, value, value, f"kept: {len(m)} defects, fewer than {min_defects}"))
        return p, rows
    values = map_measures(m, p)
    changes: dict[str, Any] = {}
    for field in ("width", "steps", "contrast"):
        changes[field] = _quantile_range(values[field], field, quantiles, field == "steps")
        unit = f" ({p.contrast_mode})" if field == "contrast" else ""
        rows.append(FitRow(
            name, field, getattr(p, field), changes[field], f"fitted from {len(m)} defects{unit}",
            round(float(np.median(values[field])), 4),
        ))
    if 0.0 < p.bright_probability < 1.0:
        changes["bright_probability"] = round(float(np.mean(m.polarity > 0)), 4)
        rows.append(FitRow(name, "bright_probability", p.bright_probability, changes["bright_probability"], "fitted: share of brighter defects"))
    else:
        rows.append(FitRow(name, "bright_probability", p.bright_probability, p.bright_probability, "kept: the base fixes the polarity"))
    for field, why in _NOT_IDENTIFIED.items():
        rows.append(FitRow(name, field, getattr(p, field), getattr(p, field), why))
    return dataclasses.replace(p, **changes), rows


def fit_preset(
    images: Any,
    masks: Any,
    *,
    base: Union[str, DefectParams, DefectMixture] = "mixed",
    quantiles: tuple = (0.05, 0.95),
    min_defects: int = 3,
    gap: int = 2,
    ring: int = 4,
) -> FitReport:
    """Fit the synthesizer's ranges to real defects: measure them, map the measurements onto the
    parameters of ``base`` and take their quantile ranges.

    Width (the profile's standard deviation), steps (the length over the base's mean step length),
    contrast (in the base's contrast mode) and the share of brighter defects are fitted; every other
    field keeps the base's value, and the report says why. With a mixture as base, each defect is
    assigned to the component whose ranges fit it best, each component with at least
    ``min_defects`` defects is fitted on its own, components no defect was assigned to are dropped
    and the weights become the counts.

    Parameters
    ----------
    images, masks
        As in :func:`measure_defects`.
    base : str, DefectParams or DefectMixture, default "mixed"
        A preset name or parameters: what is not fitted, and the morphologies of a mixture.
    quantiles : (float, float), default (0.05, 0.95)
        The quantiles of the mapped values that become each fitted range, ``0 <= lo <= hi <= 1``.
    min_defects : int, default 3
        A component with fewer assigned defects keeps its base ranges.
    gap, ring : int
        As in :func:`measure_defects`.

    Returns
    -------
    FitReport
        ``.params`` the fitted DefectParams (DefectMixture for a mixture base), ``.rows`` the
        fitted ranges beside the base's, ``.table()`` them as text.

    Raises
    ------
    InputTypeError, InputValueError
        For bad images or masks (see :func:`measure_defects`), an unknown preset, or quantiles
        out of order.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.synth import PRESETS, synthesize_batch
    >>> from ispad_core.samples import screen_print
    >>> patches = np.stack([screen_print((64, 64), rng=i) for i in range(40)])
    >>> res = synthesize_batch(patches, "scratch", rng=0, warn=False)
    >>> ok = res.accepted
    >>> report = fit_preset(res.images[ok], res.masks[ok], base="scratch")
    >>> isinstance(report.params, type(PRESETS["scratch"]))
    True
    """
    base = resolve_params(base, "base")
    if isinstance(quantiles, (str, bytes)) or not hasattr(quantiles, "__len__") or len(quantiles) != 2:
        raise InputValueError(f"quantiles: expected a (low, high) pair, got {quantiles!r}")
    q = (check_float(quantiles[0], "quantiles[0]", minimum=0.0, maximum=1.0),
         check_float(quantiles[1], "quantiles[1]", minimum=0.0, maximum=1.0))
    if q[0] > q[1]:
        raise InputValueError(f"quantiles: expected low <= high, got {quantiles!r}")
    min_defects = check_int(min_defects, "min_defects", minimum=1)
    m = measure_defects(images, masks, gap=gap, ring=ring)
    if isinstance(base, DefectParams):
        fitted, rows = _fit_one("defect", m, base, q, min_defects)
        return FitReport(fitted, base, m, ("defect",) * len(m), tuple(rows))
    which = _assign(m, base.components)
    comps, weights, names, rows = [], [], [], []
    for c, (name, p) in enumerate(zip(base.names, base.components)):
        picked = which == c
        n = int(picked.sum())
        if n == 0:
            rows.append(FitRow(name, "weight", base.probabilities[c], 0.0, "dropped: no defect assigned"))
            continue
        fitted, comp_rows = _fit_one(name, m.take(picked), p, q, min_defects)
        rows.append(FitRow(name, "weight", base.probabilities[c], n / len(m), f"{n} defects assigned"))
        rows.extend(comp_rows)
        comps.append(fitted)
        weights.append(float(n))
        names.append(name)
    mixture = DefectMixture(tuple(comps), tuple(weights), tuple(names))
    return FitReport(mixture, base, m, tuple(base.names[i] for i in which), tuple(rows))
