"""The three imaging modalities of ISP-AD in one table: what to synthesize, how to augment, how
to preprocess.

Every per-modality setting of the library lives here and only here; the synthesizer's modality
presets (``ispad_core.synth.PRESETS["lsm1"]`` ...), the augmentation presets
(:data:`ispad_core.augment.AUGMENT_PRESETS`) and the preprocessing presets
(``ispad_core.nn.PREPROCESS_PRESETS``) are built from it.

=======  ==============================  ====================================================
name     modality                        defects the paper shows (fig. 1)
=======  ==============================  ====================================================
lsm1     darkfield line scan (LSM-1)     printing and screen defects, fibres and dots
lsm2     transmission line scan (LSM-2)  pinholes and inhomogeneities in the print layers
asm      brightfield area scan (ASM)     scratches and mechanical deformations of the top layer
=======  ==============================  ====================================================

Augmentation is table 8 of the paper (rotation and shear are its maximum angles, drawn
symmetrically; flips with probability 0.5; the affine part applied to 87.5 % of the patches, the
middle of the paper's "80 - 95 %"). Preprocessing is section 4.2: a brightness factor of 1.5 for
LSM-1 and weak 3 x 3 Gaussian smoothing (sigma 1) for all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ispad_core._shared.validation import check_choice

__all__ = ["MODALITIES", "Modality", "get_modality"]


@dataclass(frozen=True)
class Modality:
    """The settings of one modality (plain data: the modules that use them build their objects).

    Attributes
    ----------
    name : str
        ``"lsm1"``, ``"lsm2"`` or ``"asm"``.
    description : str
        The imaging set-up and its typical defects.
    defects : Mapping of str to float
        Relative weights of the synthesizer's basic presets (keys of
        ``ispad_core.synth.PRESETS``) in the modality's defect mixture.
    augmentation : Mapping of str to Any
        Keyword arguments of :class:`ispad_core.augment.AugmentParams` (table 8).
    brightness : float
        Preprocessing brightness factor (section 4.2).
    smoothing_ksize : int
        Size of the preprocessing Gaussian kernel (1: no smoothing).
    smoothing_sigma : float
        Its standard deviation in pixels.
    """

    name: str
    description: str
    defects: Mapping[str, float]
    augmentation: Mapping[str, Any]
    brightness: float
    smoothing_ksize: int
    smoothing_sigma: float

    def to_dict(self) -> dict:
        """JSON-serialisable settings."""
        return {
            "name": self.name,
            "description": self.description,
            "defects": dict(self.defects),
            "augmentation": {k: list(v) if isinstance(v, tuple) else v for k, v in self.augmentation.items()},
            "brightness": self.brightness,
            "smoothing_ksize": self.smoothing_ksize,
            "smoothing_sigma": self.smoothing_sigma,
        }


def _modality(name, description, defects, augmentation, brightness) -> Modality:
    return Modality(
        name=name,
        description=description,
        defects=MappingProxyType(dict(defects)),
        augmentation=MappingProxyType(dict(augmentation)),
        brightness=brightness,
        smoothing_ksize=3,
        smoothing_sigma=1.0,
    )


_TABLE_8_COMMON = {"vflip": 0.5, "hflip": 0.5, "p_affine": 0.875}

MODALITIES: Mapping[str, Modality] = MappingProxyType(
    {
        "lsm1": _modality(
            "lsm1",
            "darkfield line scan: printing and screen defects, fibres and dots",
            {"fiber-bright": 0.3, "fiber-dark": 0.15, "dot-bright": 0.2, "dot-dark": 0.2, "inclusion": 0.15},
            {"rotation": 45.0, "scale": (0.9, 1.1), "shear": 10.0, **_TABLE_8_COMMON,
             "brightness": (0.75, 1.25), "contrast": (0.75, 1.25)},
            brightness=1.5,
        ),
        "lsm2": _modality(
            "lsm2",
            "transmission line scan: pinholes and inhomogeneities in the print layers",
            {"pinhole": 0.5, "inclusion": 0.3, "dot-dark": 0.2},
            {"rotation": 45.0, "scale": (0.9, 1.1), "shear": 20.0, **_TABLE_8_COMMON,
             "brightness": (0.75, 1.25), "contrast": (0.75, 1.25)},
            brightness=1.0,
        ),
        "asm": _modality(
            "asm",
            "brightfield area scan: scratches and mechanical deformations of the top layer",
            {"scratch": 0.6, "deformation": 0.4},
            {"rotation": 10.0, "scale": (1.0, 1.2), "shear": 10.0, **_TABLE_8_COMMON,
             "brightness": (1.0, 1.0), "contrast": (1.0, 1.0)},
            brightness=1.0,
        ),
    }
)
"""The modality table, keyed ``"lsm1"``, ``"lsm2"``, ``"asm"`` (read-only)."""


def get_modality(name: str) -> Modality:
    """The :class:`Modality` called ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a key of :data:`MODALITIES`.

    Examples
    --------
    >>> from ispad_core.modality import get_modality
    >>> m = get_modality("lsm1")
    >>> m.brightness, dict(m.defects)["fiber-bright"], m.augmentation["shear"]
    (1.5, 0.3, 10.0)
    """
    return MODALITIES[check_choice(name, "modality", tuple(MODALITIES))]
