"""What a stream is made of: the settings that :func:`~ispad_core.stream.balanced_stream`,
:class:`~ispad_core.stream.SyntheticStream`, :func:`~ispad_core.stream.write_balanced_stream` and
the Dask writer share, in one frozen object."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_choice, check_float, check_int

__all__ = ["StreamSpec"]

COMPRESSIONS = ("isal", "zlib", "zstd", "none")


def resolve_augment(augment: Any):
    """The AugmentParams of ``augment`` (a preset name, AugmentParams, or None / ``"none"``: no augmentation)."""
    if augment is None or (isinstance(augment, str) and augment == "none"):
        return None
    from ispad_core.augment import AUGMENT_PRESETS, AugmentParams

    if isinstance(augment, str):
        if augment not in AUGMENT_PRESETS:
            raise InputValueError(f"augment: expected one of {', '.join(map(repr, sorted(AUGMENT_PRESETS)))} or 'none', got {augment!r}")
        return AUGMENT_PRESETS[augment]
    if not isinstance(augment, AugmentParams):
        raise InputTypeError(f"augment: expected an AugmentParams, a preset name or None, got {type(augment).__name__}")
    return augment


def resolve_preset(preset: Any):
    """The DefectParams or DefectMixture of ``preset`` (a key of ``ispad_core.synth.PRESETS``, or the params)."""
    from ispad_core.synth import PRESETS

    if isinstance(preset, str):
        if preset not in PRESETS:
            raise InputValueError(f"preset: expected one of {', '.join(map(repr, sorted(PRESETS)))}, got {preset!r}")
        return PRESETS[preset]
    if not hasattr(preset, "to_dict"):
        raise InputTypeError(f"preset: expected a preset name or DefectParams/DefectMixture, got {type(preset).__name__}")
    return preset


@dataclass(frozen=True)
class StreamSpec:
    """What decides the items of a balanced stream, and the bytes of its file, besides the images,
    the length ``n`` and the seed.

    Give one to any stream function as ``spec=``, or its fields as keywords (which then override
    the spec's): ``balanced_stream(images, n, spec=StreamSpec(size=64))`` and
    ``balanced_stream(images, n, size=64)`` are the same stream.

    Attributes
    ----------
    preset : str, DefectParams or DefectMixture
        The synthesizer's morphology (a key of :data:`ispad_core.synth.PRESETS`; default "mixed").
    augment : str, AugmentParams or None
        Table-8 augmentation (a key of :data:`ispad_core.augment.AUGMENT_PRESETS`, default "lsm1"),
        or None / "none".
    size : int
        Patch side in pixels (default 256).
    min_roi_fraction : float
        Fraction of a window's pixels that must lie inside the ROI, in (0, 1] (default 1).
    max_redraws : int
        How many other patches an invisible defect is redrawn on before giving up (default 20).
    defect_fraction : float
        Fraction of items with a synthetic defect, in [0, 1] (default 0.5, the balanced stream;
        0 is a pure fault-free stream, the paper's oversampling strategy). The per-item seeds do
        not depend on it.
    min_contrast : float or None
        A floor on each defect's contrast, in 8-bit grey levels: the mean absolute change of its
        mask's pixels. A defect that passes the preset's own visibility test but stays under it
        is redrawn on another patch, like an invisible one. None (default): only the preset's test.
    batch_size : int
        Items per batch (and per checkpoint of a file); does not change the items (default 256).
    compression : {"isal", "zlib", "zstd", "none"}
        How a file's chunks are compressed (:class:`ispad_core.io.StreamWriter`; default "isal").
        Only files have it; a stream drawn in memory ignores it.

    Raises
    ------
    TypeError, ValueError
        For a setting of a wrong type or out of range, an unknown preset, or a ``size`` without
        room for the preset's margin.

    Examples
    --------
    >>> spec = StreamSpec(size=64, preset="scratch")
    >>> spec.size, spec.augment, spec.replace(augment=None).augment
    (64, 'lsm1', None)
    """

    preset: Any = "mixed"
    augment: Any = "lsm1"
    size: int = 256
    min_roi_fraction: float = 1.0
    max_redraws: int = 20
    defect_fraction: float = 0.5
    min_contrast: float | None = None
    batch_size: int = 256
    compression: str = "isal"

    def __post_init__(self) -> None:
        from ispad_core.synth import check_room

        set_ = object.__setattr__  # frozen: store the checked values once, here
        set_(self, "size", check_int(self.size, "size", minimum=1))
        set_(self, "batch_size", check_int(self.batch_size, "batch_size", minimum=1))
        set_(self, "min_roi_fraction", check_float(
            self.min_roi_fraction, "min_roi_fraction", minimum=0.0, maximum=1.0, min_inclusive=False))
        set_(self, "max_redraws", check_int(self.max_redraws, "max_redraws", minimum=0))
        set_(self, "defect_fraction", check_float(self.defect_fraction, "defect_fraction", minimum=0.0, maximum=1.0))
        if self.min_contrast is not None:
            set_(self, "min_contrast", check_float(self.min_contrast, "min_contrast", minimum=0.0, maximum=255.0))
        check_choice(self.compression, "compression", COMPRESSIONS)
        check_room(self.size, self.size, self.params(), "size")  # what synthesize_batch checks first
        self.augment_params()

    def params(self):
        """The synthesizer's DefectParams or DefectMixture."""
        return resolve_preset(self.preset)

    def augment_params(self):
        """The AugmentParams, or None for no augmentation."""
        return resolve_augment(self.augment)

    def replace(self, **changes: Any) -> StreamSpec:
        """A copy with some fields changed (and checked)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def build(cls, spec: StreamSpec | None, settings: Mapping[str, Any], caller: str) -> StreamSpec:
        """``spec`` (default: all defaults) with the keyword ``settings`` of a call to ``caller`` on top.

        An unknown keyword is refused as Python refuses one: ``caller() got an unexpected keyword
        argument 'x'``.
        """
        if spec is not None and not isinstance(spec, StreamSpec):
            raise InputTypeError(f"spec: expected a StreamSpec, got {type(spec).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        for key in settings:
            if key not in fields:
                raise InputTypeError(f"{caller}() got an unexpected keyword argument {key!r}")
        if spec is None:
            return cls(**settings)
        return dataclasses.replace(spec, **settings) if settings else spec


def split_settings(options: dict) -> dict:
    """Take the :class:`StreamSpec` fields out of ``options`` (in place) and return them."""
    fields = {f.name for f in dataclasses.fields(StreamSpec)}
    return {key: options.pop(key) for key in list(options) if key in fields}
