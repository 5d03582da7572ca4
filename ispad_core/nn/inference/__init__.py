"""Sliding-window inference of a scan: window scores, heat map, verdict, overlay and reports
(:mod:`ispad_core.nn.inference.scoring`)."""

from ispad_core.nn.inference.scoring import (
    GREY_TO_RGB_RULE,
    JSON_FORMAT,
    JSON_FORMAT_VERSION,
    LUMA_RULE,
    PRECISIONS,
    SUMMARY_COLUMNS,
    Inspection,
    InspectionReport,
    ScanOutcome,
    default_stride,
    inspect,
    inspect_files,
    overlay,
    predict_windows,
    resolve_precision,
    rgb_to_grey,
)

__all__ = [
    "LUMA_RULE",
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
