"""The four-step model-free defect synthesizer (Haselmann and Gruber, 2017; ISP-AD section 3.2).

1. Skeleton: a random walk with momentum (:func:`random_walk_skeleton`).
2. Texture: the skeleton spread to a Gaussian width profile, tapered, modulated by smoothed noise,
   optionally blurred by the optics, normalised to [0, 1].
3. Modification: bright or dark, absolute or relative contrast, additive or multiplicative
   blending, rounded and clipped; pixels outside the texture support stay bit-identical.
4. Visibility: sum of squared residuals or contrast-to-noise against a background ring; an
   invisible defect is redrawn up to ``max_attempts`` times.

Every random quantity is drawn from a range of :class:`DefectParams`; :data:`PRESETS` holds weakly
contrasted morphologies and modality mixtures. See ``docs/synthesis.md``.
"""

from ispad_core.synth._gallery import DefectFigures, GallerySheet, annotated_gallery, gallery
from ispad_core.synth._params import (
    PRESETS,
    DefectMixture,
    DefectParams,
    params_from_dict,
)
from ispad_core.synth._params_file import read_params
from ispad_core.synth.fit import DefectMeasures, FitReport, FitRow, fit_preset, measure_defects
from ispad_core.synth._synth import (
    BatchResult,
    Skeleton,
    SynthesisWarning,
    SynthResult,
    SynthSteps,
    batch_kernels,
    check_room,
    random_walk_skeleton,
    synthesize,
    synthesize_batch,
    synthesize_steps,
)

__all__ = [
    "PRESETS",
    "BatchResult",
    "DefectFigures",
    "DefectMeasures",
    "DefectMixture",
    "DefectParams",
    "FitReport",
    "FitRow",
    "GallerySheet",
    "Skeleton",
    "SynthResult",
    "SynthSteps",
    "SynthesisWarning",
    "annotated_gallery",
    "check_room",
    "fit_preset",
    "gallery",
    "measure_defects",
    "params_from_dict",
    "read_params",
    "random_walk_skeleton",
    "synthesize",
    "synthesize_batch",
    "synthesize_steps",
]
