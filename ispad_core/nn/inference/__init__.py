"""Sliding-window inference of a scan, in three parts:

- :mod:`~ispad_core.nn.inference.scoring` -- window scores, heat map and verdict
  (:func:`predict_windows`, :func:`inspect`, :class:`InferenceSettings`);
- :mod:`~ispad_core.nn.inference.overlay` -- the overlay picture (:func:`overlay`);
- :mod:`~ispad_core.nn.inference.files` -- scan files in, reports and overlays out (:func:`inspect_files`).
"""

from ispad_core.nn.inference.files import INSPECT_LOCK, SUMMARY_COLUMNS, InspectionReport, ScanOutcome, inspect_files
from ispad_core.nn.inference.overlay import overlay
from ispad_core.nn.inference.scoring import (
    GREY_TO_RGB_RULE,
    JSON_FORMAT,
    JSON_FORMAT_VERSION,
    LUMA_RULE,
    PRECISIONS,
    InferenceSettings,
    Inspection,
    default_stride,
    inspect,
    predict_windows,
    resolve_precision,
    rgb_to_grey,
)

__all__ = [
    "GREY_TO_RGB_RULE",
    "INSPECT_LOCK",
    "JSON_FORMAT",
    "JSON_FORMAT_VERSION",
    "LUMA_RULE",
    "PRECISIONS",
    "SUMMARY_COLUMNS",
    "InferenceSettings",
    "Inspection",
    "InspectionReport",
    "ScanOutcome",
    "default_stride",
    "inspect",
    "inspect_files",
    "overlay",
    "predict_windows",
    "resolve_precision",
    "rgb_to_grey",
]
