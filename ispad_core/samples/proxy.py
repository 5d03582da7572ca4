"""A built-in benchmark with "real" defects that the synthesizer cannot draw.

The ISP-AD data are closed. To show the paper's finding -- synthetic defects give a cold start,
a few real defects of classes the synthesizer cannot make close the gap (section 5.2.2) -- this
module makes a stand-in: fault-free scans of the built-in screen print
(:func:`ispad_core.samples.screen_print`), a pool of "real" defective patches in the paper's two
groups, and held-out validation and test sets with the paper's imbalance.

The "real" defects come from a generator of their own, written with numpy and scipy only: it
shares no code with :mod:`ispad_core.synth` (no random walk, no texture or visibility step), so
its defects have other shape and intensity statistics than anything a stream can hold.

Points (the paper's figure 1, punctual defects)
    ``blob``: an ink spot with a lobed outline, a flat top and a darker rim, 2 to 5 px in radius
    (the synthesizer's dots are Gaussian-profiled traces of a short walk, one peak, no rim).
    ``cluster``: four to nine sharp specks scattered over a few pixels, one defect of several
    connected components.

Area (the paper's figure 2, area defects)
    ``streak``: a squeegee stroke, a long and wide band of slightly changed ink density along the
    print direction (the image's vertical axis, within a few degrees) across the whole patch,
    4 to 9 % darker or brighter with soft edges.
    ``misalignment``: the print of a band of the patch displaced by 1.5 to 4.5 px against the rest,
    with a ghosted transition.
    ``grid``: a damaged screen mesh, a lattice of fine lines (period 3 to 6 px) printed faintly over
    an elliptic region.

Every modification is confined to a mask (its support): pixels outside it are bit-identical to
the fault-free patch. Each item is drawn from its own 32-bit seed, so the benchmark is the same
for the same ``seed`` on any machine and in any order.

On disk (:func:`proxy_benchmark` with ``out``)::

    out/benchmark.json                      settings, seeds, counts and the class of every file
    out/scans/scan_000.png ...              fault-free training scans (make the stream from them)
    out/real/points/000_blob.png ...        the pool of "real" defects, one folder per group
    out/real/area/000_streak.png ...
    out/real_masks/points/000_blob_mask.png masks of the pool, beside ``real/`` (not inside it,
    out/real_masks/area/...                 where a folder would count as a defect group)
    out/val/                                validation set, MVTec layout (test/good, test/points,
                                            test/area, ground_truth/<group>/<name>_mask.png)
    out/test/                               held-out test set, MVTec layout, same structure
    out/test_designs.csv                    file,design: the design (test scan) of every test patch
    out/calibration/<design>/sheet_000.png  fault-free calibration sheets of every test design
    out/calibration/calibration.json        the designs, their sheets and how they were drawn

The calibration sheets and ``test_designs.csv`` were added to the layout later; every other file
is the same as without them, byte for byte, for the same settings.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_float, check_int, item_seeds
from ispad_core._shared.version import __version__

__all__ = [
    "AREA_CLASSES", "CALIBRATION_SHEETS", "POINT_CLASSES", "PRINT_DIRECTION", "ProxyBenchmark", "design_sheet",
    "proxy_benchmark", "proxy_defect",
]

POINT_CLASSES = ("blob", "cluster")
"""Defect classes of the "points" group."""
AREA_CLASSES = ("streak", "misalignment", "grid")
"""Defect classes of the "area" group."""
PRINT_DIRECTION = "vertical"
"""The print (squeegee) direction of the benchmark: along the image's rows axis."""

_CLASSES = POINT_CLASSES + AREA_CLASSES
_MARGIN = 8  # context around a patch (px): the misalignment shifts print in from outside
_KINDS = ("dots", "lines", "mesh", "mixed")
# width added per sheet: one cell of the screen print's finest low-frequency field (40 px), so each
# sheet's fields are laid out on a lattice of another shape
_SHEET_STEP = 40
CALIBRATION_SHEETS = 4
"""Fault-free calibration sheets of every test design in the benchmark."""


# --------------------------------------------------------------------------- the defect generator


def _coords(side: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(side, dtype=np.float64)
    return c[:, None], c[None, :]


def _ramp(x: np.ndarray) -> np.ndarray:
    """A raised-cosine step: 0 for x <= 0, 1 for x >= 1, smooth between."""
    t = np.clip(x, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * t)


def _blob(patch: np.ndarray, gen: np.random.Generator, contrast: float):
    s = patch.shape[0]
    rr, cc = _coords(s)
    cy, cx = s / 2 + gen.uniform(-s / 6, s / 6, size=2)
    r0 = gen.uniform(2.0, 5.0)
    a2, a3 = gen.uniform(0.1, 0.3, size=2)
    p2, p3 = gen.uniform(0, 2 * np.pi, size=2)
    dy, dx = rr - cy, cc - cx
    theta = np.arctan2(dy, dx)
    radius = r0 * (1 + a2 * np.cos(2 * theta + p2) + a3 * np.cos(3 * theta + p3))
    d = np.hypot(dy, dx)
    weight = np.clip((radius - d) / 0.8 + 0.5, 0.0, 1.0)  # flat top, edge under 1 px
    rim = np.exp(-(((d - radius + 0.6) / 0.9) ** 2))
    c = contrast * gen.uniform(0.22, 0.45) * (0.65 + 0.35 * rim)
    dark = gen.random() < 0.6
    target = patch * (1 - c) if dark else patch + c * (255.0 - patch)
    return target, weight


def _cluster(patch: np.ndarray, gen: np.random.Generator, contrast: float):
    s = patch.shape[0]
    rr, cc = _coords(s)
    cy, cx = s / 2 + gen.uniform(-s / 6, s / 6, size=2)
    k = int(gen.integers(4, 10))
    spread = gen.uniform(2.5, 6.0)
    centres = np.array([cy, cx]) + gen.normal(0.0, spread, size=(k, 2))
    radii = gen.uniform(0.6, 1.4, size=k)
    weight = np.zeros((s, s))
    for (y, x), r in zip(centres, radii):
        weight = np.maximum(weight, np.clip((r - np.hypot(rr - y, cc - x)) / 0.6 + 0.5, 0.0, 1.0))
    c = contrast * gen.uniform(0.3, 0.6)
    dark = gen.random() < 0.5
    target = patch * (1 - c) if dark else patch + c * (255.0 - patch)
    return target, weight


def _streak(patch: np.ndarray, gen: np.random.Generator, contrast: float):
    s = patch.shape[0]
    rr, cc = _coords(s)
    angle = np.deg2rad(gen.uniform(-4.0, 4.0))  # along the print direction (vertical)
    centre = s * gen.uniform(0.3, 0.7)
    half = s * gen.uniform(0.12, 0.25)  # width 25 to 50 % of the patch
    edge = max(2.0, half * gen.uniform(0.3, 0.6))
    across = (cc - s / 2) * np.cos(angle) - (rr - s / 2) * np.sin(angle) + s / 2 - centre
    weight = _ramp((half - np.abs(across)) / edge)
    along = 1.0 + 0.3 * np.sin(2 * np.pi * rr / (s * gen.uniform(1.0, 3.0)) + gen.uniform(0, 2 * np.pi))
    gain = contrast * gen.uniform(0.04, 0.09) * (1 if gen.random() < 0.5 else -1)
    target = patch * (1 + gain * along)
    return target, weight


def _misalignment(patch: np.ndarray, gen: np.random.Generator, contrast: float, context: np.ndarray):
    s = patch.shape[0]
    rr, cc = _coords(s)
    shift_len = gen.uniform(1.5, 4.5) * min(1.0, max(contrast, 0.25))
    phi = gen.uniform(0, 2 * np.pi)
    shifted = ndimage.shift(context, (shift_len * np.sin(phi), shift_len * np.cos(phi)), order=1, mode="nearest")
    target = shifted[_MARGIN : _MARGIN + s, _MARGIN : _MARGIN + s]
    if gen.random() < 0.5:  # a horizontal band (one print pass), else a vertical one
        coord = rr
    else:
        coord = cc
    lo = s * gen.uniform(0.0, 0.5)
    hi = lo + s * gen.uniform(0.3, 0.5)
    ramp = gen.uniform(1.5, 4.0)
    weight = _ramp((coord - lo) / ramp) * _ramp((hi - coord) / ramp)
    return target, weight


def _grid(patch: np.ndarray, gen: np.random.Generator, contrast: float):
    s = patch.shape[0]
    rr, cc = _coords(s)
    cy, cx = s / 2 + gen.uniform(-s / 8, s / 8, size=2)
    ay, ax = s * gen.uniform(0.15, 0.3, size=2)
    rho = np.hypot((rr - cy) / ay, (cc - cx) / ax)
    weight = _ramp((1.0 - rho) / 0.35)
    period = gen.uniform(3.0, 6.0)
    theta = gen.uniform(0, np.pi)
    u = cc * np.cos(theta) + rr * np.sin(theta)
    v = -cc * np.sin(theta) + rr * np.cos(theta)
    lines = np.maximum(np.cos(np.pi * u / period) ** 8, np.cos(np.pi * v / period) ** 8)
    c = contrast * gen.uniform(0.08, 0.2)
    dark = gen.random() < 0.7
    target = patch * (1 - c * lines) if dark else patch + c * lines * (255.0 - patch)
    return target, weight


def _draw(context: np.ndarray, kind: str, seed: int, contrast: float) -> tuple[np.ndarray, np.ndarray]:
    """One defect in the centre of ``context`` (S + 2 * margin square, uint8); assumes valid input."""
    gen = np.random.default_rng(seed)
    s = context.shape[0] - 2 * _MARGIN
    patch_u8 = context[_MARGIN : _MARGIN + s, _MARGIN : _MARGIN + s]
    patch = patch_u8.astype(np.float64)
    if kind == "misalignment":
        target, weight = _misalignment(patch, gen, contrast, context.astype(np.float64))
    else:
        target, weight = {"blob": _blob, "cluster": _cluster, "streak": _streak, "grid": _grid}[kind](patch, gen, contrast)
    weight = np.broadcast_to(weight, patch.shape)
    mixed = patch + weight * (target - patch)
    mask = weight > 0.0
    out = np.where(mask, np.clip(np.rint(mixed), 0, 255), patch).astype(np.uint8)
    return out, mask


def _check_context(context) -> None:
    if not isinstance(context, np.ndarray):
        raise InputTypeError(f"context: expected a numpy.ndarray, got {type(context).__name__}")
    if context.dtype != np.uint8:
        raise InputTypeError(f"context: expected dtype uint8, got {context.dtype}")
    if context.ndim != 2 or context.shape[0] != context.shape[1]:
        raise InputValueError(f"context: expected a square grey image (S + {2 * _MARGIN}, S + {2 * _MARGIN}), got shape {context.shape}")
    if context.shape[0] < 2 * _MARGIN + 16:
        raise InputValueError(f"context: expected a side of at least {2 * _MARGIN + 16}, got {context.shape[0]}")


def proxy_defect(context: np.ndarray, kind: str, *, seed: int, contrast: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Draw one "real" defect of class ``kind`` into the centre patch of ``context``.

    Parameters
    ----------
    context : numpy.ndarray of uint8, shape (S + 16, S + 16)
        A fault-free grey crop: the patch (side S >= 16) with 8 px of context on every side
        (the misalignment class shifts print in from there).
    kind : {"blob", "cluster", "streak", "misalignment", "grid"}
        The defect class (see the module docstring).
    seed : int
        The defect's 32-bit seed; the same seed and context give the same bytes.
    contrast : float, default 1.0
        A factor on the defect's contrast (for the misalignment class: on the shift, capped at 1).

    Returns
    -------
    image : numpy.ndarray of uint8, shape (S, S)
        The defective patch; pixels outside ``mask`` equal the fault-free patch.
    mask : numpy.ndarray of bool, shape (S, S)
        The defect's support.

    Raises
    ------
    TypeError
        If ``context`` is not a uint8 array or ``seed`` is not an int.
    ValueError
        If ``context`` is not square and grey or too small, ``kind`` is unknown, ``seed`` is
        outside ``[0, 2**32)`` or ``contrast`` is not positive.

    Examples
    --------
    >>> from ispad_core._shared.screen_print import screen_print
    >>> from ispad_core.samples.proxy import proxy_defect
    >>> context = screen_print((80, 80), rng=0)
    >>> image, mask = proxy_defect(context, "streak", seed=1)
    >>> image.shape, bool(mask.any()), bool((image[~mask] == context[8:72, 8:72][~mask]).all())
    ((64, 64), True, True)
    """
    _check_context(context)
    if kind not in _CLASSES:
        raise InputValueError(f"kind: expected one of {', '.join(repr(k) for k in _CLASSES)}, got {kind!r}")
    seed = check_int(seed, "seed", minimum=0, maximum=2**32 - 1)
    contrast = check_float(contrast, "contrast", minimum=0.0, min_inclusive=False, maximum=10.0)
    return _draw(context, kind, seed, contrast)


# --------------------------------------------------------------------------- the benchmark


@dataclass(frozen=True)
class ProxyBenchmark:
    """The built-in benchmark in memory (and, when written, where it is).

    Attributes
    ----------
    root : pathlib.Path or None
        The folder it was written to, or None.
    seed : int
    size : int
        Patch side S.
    scans : tuple of numpy.ndarray of uint8, shape (H, W)
        Fault-free training scans (the source of the stream).
    real_images : numpy.ndarray of uint8, shape (n_real, S, S)
        The pool of "real" defective patches.
    real_masks : numpy.ndarray of bool, shape (n_real, S, S)
    real_groups, real_classes : tuple of str
        ``"points"`` / ``"area"`` and the defect class of each.
    val_images, test_images : numpy.ndarray of uint8, shape (M, S, S)
        Fault-free patches first, then the area and the point defects (the order in which
        :func:`ispad_core.io.read_mvtec` reads the written sets back).
    val_labels, test_labels : numpy.ndarray of uint8, shape (M,)
        0 fault-free, 1 defective.
    val_groups, test_groups : tuple of str
        ``"good"``, ``"points"`` or ``"area"``.
    val_classes, test_classes : tuple of str
        ``"good"`` or the defect class.
    val_masks, test_masks : numpy.ndarray of bool, shape (M, S, S)
    test_designs : tuple of str
        The design (test scan) every test patch was cut from, such as ``"test_000_dots"``: score a
        test patch at its own design's calibrated threshold.
    calibration : dict of str to tuple of numpy.ndarray of uint8, shape (H, W)
        :data:`CALIBRATION_SHEETS` fault-free calibration sheets of every test design: new
        sheets of the test scans' designs, none of them a test scan.
    designs : dict of str to dict
        How each test design's sheets were drawn: ``{"seed", "kind", "sheet_seeds"}``
        (:func:`design_sheet` with ``k = 1, 2, ...``).
    """

    root: Path | None
    seed: int
    size: int
    scans: tuple
    real_images: np.ndarray
    real_masks: np.ndarray
    real_groups: tuple
    real_classes: tuple
    val_images: np.ndarray
    val_labels: np.ndarray
    val_groups: tuple
    val_classes: tuple
    val_masks: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    test_groups: tuple
    test_classes: tuple
    test_masks: np.ndarray
    test_designs: tuple = ()
    calibration: dict = field(default_factory=dict, repr=False, compare=False)
    designs: dict = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        def count(groups):
            return {g: groups.count(g) for g in ("good", "points", "area") if g in groups}

        return (
            f"ProxyBenchmark(root={str(self.root) if self.root else None!r}, seed={self.seed}, size={self.size}, "
            f"scans={len(self.scans)}, real={count(self.real_groups)}, val={count(self.val_groups)}, "
            f"test={count(self.test_groups)})"
        )


def _classes(n_points: int, n_area: int, gen: np.random.Generator) -> list[str]:
    """Classes cycled within each group (equal shares), then shuffled."""
    out = [POINT_CLASSES[i % len(POINT_CLASSES)] for i in range(n_points)]
    out += [AREA_CLASSES[i % len(AREA_CLASSES)] for i in range(n_area)]
    return [out[i] for i in gen.permutation(len(out))]


def _crops(scans: list[np.ndarray], seeds: np.ndarray, side: int) -> list[np.ndarray]:
    crops = []
    for seed in seeds:
        g = np.random.default_rng(int(seed))
        scan = scans[int(g.integers(len(scans)))]
        r = int(g.integers(scan.shape[0] - side + 1))
        c = int(g.integers(scan.shape[1] - side + 1))
        crops.append(scan[r : r + side, c : c + side])
    return crops


def _sources(n_scans: int, seeds: np.ndarray) -> tuple[int, ...]:
    """The index of the scan :func:`_crops` cuts each item from (its first draw)."""
    return tuple(int(np.random.default_rng(int(seed)).integers(n_scans)) for seed in seeds)


def _defective_set(scans, classes, seeds, size, contrast):
    crops = _crops(scans, seeds, size + 2 * _MARGIN)
    images, masks = [], []
    for crop, kind, seed in zip(crops, classes, seeds):
        im, m = _draw(crop, kind, _mix_seed(seed), contrast)
        images.append(im)
        masks.append(m)
    return images, masks


def _mix_seed(seed) -> int:
    """The defect's seed from its item seed (position and defect draw from different streams)."""
    return (int(seed) * 0x9E3779B1 + 0x7F4A7C15) % 2**32


def _split(scans, n_defective: int, good_per_defective: int, gen, size: int, contrast: float):
    n_points = n_defective // 2
    n_area = n_defective - n_points
    classes = _classes(n_points, n_area, gen)
    # the order read_mvtec reads them back in: good, then the groups by name (area, points)
    classes = [k for k in classes if k in AREA_CLASSES] + [k for k in classes if k in POINT_CLASSES]
    n_good = n_defective * good_per_defective
    seeds = item_seeds(gen, n_good + n_defective)
    good = [c[_MARGIN : _MARGIN + size, _MARGIN : _MARGIN + size] for c in _crops(scans, seeds[:n_good], size + 2 * _MARGIN)]
    images, masks = _defective_set(scans, classes, seeds[n_good:], size, contrast)
    empty = np.zeros((size, size), bool)
    groups = ["good"] * n_good + ["points" if k in POINT_CLASSES else "area" for k in classes]
    sources = _sources(len(scans), seeds)
    return (
        np.stack(good + images) if good or images else np.zeros((0, size, size), np.uint8),
        np.array([0] * n_good + [1] * n_defective, np.uint8),
        tuple(groups),
        tuple(["good"] * n_good + classes),
        np.stack([empty] * n_good + masks) if good or masks else np.zeros((0, size, size), bool),
        sources,
    )


def _scan_set(gen: np.random.Generator, count: int, side: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` scans (designs cycling through ``_KINDS``) and the screen-print seed of each."""
    from ispad_core._shared.screen_print import screen_print

    seeds = item_seeds(gen, count)
    return [screen_print((side, side), rng=int(s), kind=_KINDS[i % len(_KINDS)]) for i, s in enumerate(seeds)], seeds


def design_sheet(design_seed: int, kind: str, side: int, k: int, *, sheet_seed: int) -> np.ndarray:
    """Fault-free sheet ``k`` of the design ``screen_print((side, side), rng=design_seed, kind=kind)``.

    :func:`~ispad_core.samples.screen_print` draws a design's parameters first (periods, angles,
    duties, inks, the amplitudes of warp, density and shading, the noise level) and then, sized by
    the image, its low-frequency fields (warp, ink density, shading, design regions), the densities
    of the screen cells and the sensor noise. Rendered ``40 * k`` px wider from the same seed, the
    design stays and all the rest is drawn anew; the sheet is the ``side`` square at a column
    offset drawn from ``sheet_seed`` (its placement). The benchmark's calibration sheets are
    ``k = 1 .. CALIBRATION_SHEETS`` of every test design (``calibration/calibration.json`` has
    the designs' seeds and the sheets' seeds); other ``k`` give further sheets of the design.

    Parameters
    ----------
    design_seed : int
        The screen-print seed of the design (``designs[name]["seed"]`` of the benchmark).
    kind : {"dots", "lines", "mesh", "mixed"}
    side : int
        The sheet's side in pixels (the benchmark's ``scan_side``).
    k : int, 1 to 100
        Which sheet.
    sheet_seed : int
        The placement's seed.

    Returns
    -------
    numpy.ndarray of uint8, shape (side, side)

    Examples
    --------
    >>> from ispad_core.samples.proxy import design_sheet
    >>> a = design_sheet(7, "dots", 96, 1, sheet_seed=0)
    >>> a.shape, bool((a == design_sheet(7, "dots", 96, 2, sheet_seed=0)).all())
    ((96, 96), False)
    """
    from ispad_core._shared.screen_print import screen_print

    design_seed = check_int(design_seed, "design_seed", minimum=0, maximum=2**32 - 1)
    k = check_int(k, "k", minimum=1, maximum=100)
    side = check_int(side, "side", minimum=1, maximum=16384 - _SHEET_STEP * k)
    sheet_seed = check_int(sheet_seed, "sheet_seed", minimum=0, maximum=2**32 - 1)
    if kind not in _KINDS:
        raise InputValueError(f"kind: expected one of {', '.join(_KINDS)}, got {kind!r}")
    extra = _SHEET_STEP * k
    wide = screen_print((side, side + extra), rng=design_seed, kind=kind)
    c = int(np.random.default_rng(sheet_seed).integers(extra + 1))
    return np.ascontiguousarray(wide[:, c : c + side])


def _design_names(count: int) -> tuple[str, ...]:
    return tuple(f"test_{i:03d}_{_KINDS[i % len(_KINDS)]}" for i in range(count))


def _calibration_sheets(gen, design_seeds, side: int, n_calibration: int) -> tuple[dict, dict]:
    """``{design: (sheet, ...)}``: ``n_calibration`` new fault-free sheets of every test design,
    and ``{design: {"seed", "kind", "sheet_seeds"}}``: how they were drawn."""
    names = _design_names(len(design_seeds))
    sheet_seeds = item_seeds(gen, len(design_seeds) * n_calibration).reshape(len(design_seeds), n_calibration)
    sheets, designs = {}, {}
    for i, (name, s) in enumerate(zip(names, design_seeds)):
        kind = _KINDS[i % len(_KINDS)]
        sheets[name] = tuple(design_sheet(int(s), kind, side, k + 1, sheet_seed=int(sheet_seeds[i, k])) for k in range(n_calibration))
        designs[name] = {"seed": int(s), "kind": kind, "sheet_seeds": [int(x) for x in sheet_seeds[i]]}
    return sheets, designs


def proxy_benchmark(
    out: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    size: int = 64,
    n_scans: int = 4,
    scan_side: int = 512,
    n_points: int = 32,
    n_area: int = 32,
    n_val: int = 16,
    n_test: int = 40,
    good_per_defective: int = 20,
    contrast: float = 1.0,
    overwrite: bool = False,
) -> ProxyBenchmark:
    """Make the built-in benchmark: fault-free scans, a pool of "real" defects, validation and test sets.

    Training scans, validation scans and test scans are different screen prints (their own seeds),
    so no fault-free patch of the test set was seen in training. The pool of "real" defects is drawn
    into patches of the training scans, the validation and test defects into their own scans. Both
    sets hold ``good_per_defective`` fault-free patches per defective one (the paper's test sets:
    about 20) and defects of both groups in equal numbers (the odd one to ``area``), the classes of
    each group in equal shares.

    Every test patch's design (the test scan it was cut from) is recorded, and
    :data:`CALIBRATION_SHEETS` fault-free calibration sheets are drawn of every test design: new
    sheets, ``scan_side`` square, of the test scans' designs (the same design parameters; other
    low-frequency fields, screen-cell densities, sensor noise and placement; none of them a test
    scan), for calibrating a threshold per design (:func:`ispad_core.nn.calibrate`). They are
    drawn after everything else: the other arrays and files do not depend on them.

    Parameters
    ----------
    out : str or os.PathLike, optional
        Write the benchmark to this new folder (layout in the module docstring). The tree is built
        in a hidden folder beside it and moved into place when complete.
    seed : int, default 0
        Fixes everything.
    size : int, default 64
        Patch side S in pixels, 16 to 512.
    n_scans : int, default 4
        Fault-free training scans (a validation and a test scan set of the same number are drawn
        too), each ``scan_side`` square, designs cycling through dots, lines, mesh, mixed.
    scan_side : int, default 512
        Side of each scan, at least ``size + 16``.
    n_points, n_area : int, default 32 each
        The pool of "real" defects per group.
    n_val, n_test : int, default 16 and 40
        Defective patches of the validation and test sets.
    good_per_defective : int, default 20
        Fault-free patches per defective one in the validation and test sets.
    contrast : float, default 1.0
        A factor on every "real" defect's contrast.
    overwrite : bool, default False
        Replace an existing ``out`` (only one that holds a ``benchmark.json``).

    Returns
    -------
    ProxyBenchmark

    Raises
    ------
    TypeError, ValueError
        For an argument of a wrong type or out of range (the message names it).
    FileExistsError
        If ``out`` exists and ``overwrite`` is False, or is not a benchmark folder.

    Examples
    --------
    >>> from ispad_core.samples.proxy import proxy_benchmark
    >>> bench = proxy_benchmark(seed=0, size=32, n_scans=1, scan_side=96, n_points=2, n_area=3,
    ...                         n_val=2, n_test=4, good_per_defective=5)
    >>> bench.real_images.shape, bench.real_groups.count("area"), bench.test_labels.tolist().count(0)
    ((5, 32, 32), 3, 20)
    """
    seed = check_int(seed, "seed", minimum=0, maximum=2**63 - 1)
    size = check_int(size, "size", minimum=16, maximum=512)
    n_scans = check_int(n_scans, "n_scans", minimum=1, maximum=1000)
    scan_side = check_int(scan_side, "scan_side", minimum=size + 2 * _MARGIN, maximum=16384)
    n_points = check_int(n_points, "n_points", minimum=0)
    n_area = check_int(n_area, "n_area", minimum=0)
    if n_points + n_area == 0:
        raise InputValueError("n_points, n_area: expected at least one real defect, got 0 and 0")
    n_val = check_int(n_val, "n_val", minimum=1)
    n_test = check_int(n_test, "n_test", minimum=1)
    good_per_defective = check_int(good_per_defective, "good_per_defective", minimum=1, maximum=1000)
    contrast = check_float(contrast, "contrast", minimum=0.0, min_inclusive=False, maximum=10.0)
    root = None
    if out is not None:
        if not isinstance(out, (str, os.PathLike)):
            raise InputTypeError(f"out: expected a folder path, got {type(out).__name__}")
        root = Path(out)
        _check_out(root, overwrite)
    settings = dict(
        seed=seed, size=size, n_scans=n_scans, scan_side=scan_side, n_points=n_points, n_area=n_area,
        n_val=n_val, n_test=n_test, good_per_defective=good_per_defective, contrast=contrast,
    )
    bench = _draw_benchmark(root, **settings, n_calibration=CALIBRATION_SHEETS)
    if root is not None:
        _write(bench, root, settings, overwrite)
    return bench


def _draw_benchmark(root, *, seed, size, n_scans, scan_side, n_points, n_area, n_val, n_test, good_per_defective,
                    contrast, n_calibration=0) -> ProxyBenchmark:
    """Every array of the benchmark, drawn in a fixed order from one generator seeded by ``seed``.

    The calibration sheets are drawn last, so every other array is the same with or without them.
    """
    gen = np.random.default_rng(seed)
    train_scans, _ = _scan_set(gen, n_scans, scan_side)
    val_scans, _ = _scan_set(gen, n_scans, scan_side)
    test_scans, test_seeds = _scan_set(gen, n_scans, scan_side)
    classes = _classes(n_points, n_area, gen)
    real_seeds = item_seeds(gen, len(classes))
    real_images, real_masks = _defective_set(train_scans, classes, real_seeds, size, contrast)
    val = _split(val_scans, n_val, good_per_defective, gen, size, contrast)
    test = _split(test_scans, n_test, good_per_defective, gen, size, contrast)
    designs = _design_names(n_scans)
    sheets, drawn = _calibration_sheets(gen, test_seeds, scan_side, n_calibration) if n_calibration else ({}, {})
    return ProxyBenchmark(
        root=root,
        seed=seed,
        size=size,
        scans=tuple(train_scans),
        real_images=np.stack(real_images),
        real_masks=np.stack(real_masks),
        real_groups=tuple("points" if k in POINT_CLASSES else "area" for k in classes),
        real_classes=tuple(classes),
        val_images=val[0],
        val_labels=val[1],
        val_groups=val[2],
        val_classes=val[3],
        val_masks=val[4],
        test_images=test[0],
        test_labels=test[1],
        test_groups=test[2],
        test_classes=test[3],
        test_masks=test[4],
        test_designs=tuple(designs[k] for k in test[5]),
        calibration=sheets,
        designs=drawn,
    )


def _check_out(root: Path, overwrite: bool) -> None:
    if root.is_symlink():
        raise InputValueError(f"out: {root} is a symbolic link; refusing to write through it")
    if root.exists():
        if not overwrite:
            raise FileExistsError(f"out: {root} exists; ask for overwrite (--overwrite) to replace it")
        if not root.is_dir() or not (root / "benchmark.json").is_file():
            raise FileExistsError(f"out: {root} exists and is not a benchmark folder (no benchmark.json); refusing to replace it")
    if not root.parent.is_dir():
        raise FileNotFoundError(f"out: the parent folder {root.parent} does not exist")


def _names(classes) -> list[str]:
    counters: dict[str, int] = {}
    names = []
    for k in classes:
        group = "points" if k in POINT_CLASSES else "area" if k in AREA_CLASSES else "good"
        i = counters.get(group, 0)
        counters[group] = i + 1
        names.append(f"{i:03d}.png" if k == "good" else f"{i:03d}_{k}.png")
    return names


def _write(bench: ProxyBenchmark, root: Path, settings: dict, overwrite: bool) -> None:
    from ispad_core.io import write_mvtec, write_png

    work = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".part", dir=root.parent))
    tmp = work / "new"
    try:
        (tmp / "scans").mkdir(parents=True)
        scan_names = [f"scan_{i:03d}.png" for i in range(len(bench.scans))]
        for name, scan in zip(scan_names, bench.scans):
            write_png(tmp / "scans" / name, scan)
        real_names = _names(bench.real_classes)
        for group in ("points", "area"):
            (tmp / "real" / group).mkdir(parents=True)
            (tmp / "real_masks" / group).mkdir(parents=True)
        for image, mask, group, name in zip(bench.real_images, bench.real_masks, bench.real_groups, real_names):
            write_png(tmp / "real" / group / name, image)
            write_png(tmp / "real_masks" / group / (name[:-4] + "_mask.png"), np.where(mask, np.uint8(255), np.uint8(0)))
        listing = {"real": {f"{g}/{n}": k for g, n, k in zip(bench.real_groups, real_names, bench.real_classes)}}
        for split in ("val", "test"):
            images = getattr(bench, f"{split}_images")
            groups = getattr(bench, f"{split}_groups")
            classes = getattr(bench, f"{split}_classes")
            names = _names(classes)
            write_mvtec(
                tmp / split,
                np.zeros((0, bench.size, bench.size), np.uint8),
                images,
                test_groups=list(groups),
                test_masks=getattr(bench, f"{split}_masks").astype(np.uint8),
                test_names=names,
            )
            listing[split] = {f"{g}/{n}": k for g, n, k in zip(groups, names, classes) if g != "good"}
        meta = {
            "format": "ispad-proxy-benchmark",
            "format_version": 1,
            "library_version": __version__,
            "settings": settings,
            "print_direction": PRINT_DIRECTION,
            "counts": {
                split: {
                    g: list(getattr(bench, f"{split}_groups")).count(g)
                    for g in ("good", "points", "area")
                    if g in getattr(bench, f"{split}_groups")
                }
                for split in ("real", "val", "test")
            },
            "scans": scan_names,
            "classes": listing,
            "layout": {
                "scans": "scans/*.png: fault-free training scans",
                "real": "real/<group>/*.png: the pool of real defects",
                "real_masks": "real_masks/<group>/<name>_mask.png: their masks (0/255)",
                "val": "val/: MVTec layout (test/good, test/<group>, ground_truth/<group>)",
                "test": "test/: MVTec layout, held out",
            },
        }
        (tmp / "benchmark.json").write_text(json.dumps(meta, indent=1) + "\n")
        _write_designs(bench, tmp, settings)
        if root.exists():
            os.replace(root, work / "old")
        os.replace(tmp, root)
    except BaseException:
        if (work / "old").exists() and not root.exists():
            os.replace(work / "old", root)
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)


def _write_designs(bench: ProxyBenchmark, tmp: Path, settings: dict) -> None:
    """``test_designs.csv`` and the calibration sheets (files of their own beside the others)."""
    from ispad_core.io import write_png

    names = _names(bench.test_classes)
    lines = ["file,design"] + [f"{g}/{n},{d}" for g, n, d in zip(bench.test_groups, names, bench.test_designs)]
    (tmp / "test_designs.csv").write_text("\n".join(lines) + "\n")
    if not bench.calibration:
        return
    listing = {}
    for design, sheets in bench.calibration.items():
        (tmp / "calibration" / design).mkdir(parents=True)
        files = [f"sheet_{k:03d}.png" for k in range(len(sheets))]
        for name, sheet in zip(files, sheets):
            write_png(tmp / "calibration" / design / name, sheet)
        listing[design] = [f"{design}/{f}" for f in files]
    meta = {
        "format": "ispad-proxy-calibration",
        "format_version": 1,
        "library_version": __version__,
        "seed": settings["seed"],
        "n_calibration": len(next(iter(bench.calibration.values()))),
        "designs": listing,
        "drawn": bench.designs,
        "sheet": "sheet k (1, 2, ...) of a design: ispad_core.samples.proxy.design_sheet(seed, kind, scan_side, k, "
                 "sheet_seed=sheet_seeds[k - 1])",
        "test_designs": "test_designs.csv: the design of every test patch (file as in test/test/<file>)",
        "method": "new fault-free sheets of each test scan's design: the same screen-print design parameters, "
                  "other low-frequency fields, screen-cell densities, sensor noise and placement",
    }
    (tmp / "calibration" / "calibration.json").write_text(json.dumps(meta, indent=1) + "\n")

