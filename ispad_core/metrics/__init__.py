"""Imbalance-aware metrics of the ISP-AD paper, exact and fast.

Image level: :func:`confusion_counts`, :func:`mcc`, :func:`mcc_from_counts`, :func:`recall`,
:func:`precision`, :func:`fpr`, :func:`f1`, :func:`roc_auc`, :func:`f1_optimal_threshold` and
:func:`classification_report` (one row of the paper's tables 3 to 7).

Pixel level: :func:`pro_curve`, :func:`au_pro` (MVTec AD definition, 8-connected regions) and
:func:`pixel_roc_auc`. Inputs are an ``(N, H, W)`` array or a list of ``(H, W)`` maps. Maps that
do not fit in memory together: :class:`PixelMetrics` (``update`` batch by batch, then ``au_pro``
and ``pixel_roc_auc``), :func:`au_pro_batches` and :func:`pixel_roc_auc_batches`, one pass and
the same values.

Thresholds at a stated false-alarm rate: :func:`fpr_threshold` (the conformal order statistic of
fault-free scores), :func:`min_calibration_windows`, :func:`order_fpr_bound` (the rate one
threshold stays under, for independent windows or the effective number of windows cut from a few
scans) and :func:`score_drift` (has a new sample of scores drifted from the calibration sample);
``docs/calibration.md``.

The definitions, the choices that move the numbers and the speed figures are in
``docs/metrics.md``.
"""

from __future__ import annotations

from ispad_core.metrics._classification import (
    ClassificationReport,
    ConfusionCounts,
    classification_report,
    confusion_counts,
    f1,
    f1_optimal_threshold,
    fpr,
    mcc,
    mcc_from_counts,
    precision,
    recall,
    roc_auc,
)
from ispad_core.metrics._calibration import (
    CALIBRATION_METHODS,
    DriftResult,
    FprThreshold,
    UnsupportedRateError,
    UnsupportedRateWarning,
    calibration_sample,
    design_effect,
    fpr_threshold,
    min_calibration_windows,
    order_fpr_bound,
    score_drift,
)
from ispad_core.metrics._batches import PixelMetrics, au_pro_batches, pixel_roc_auc_batches
from ispad_core.metrics._pro import au_pro, pixel_roc_auc, pro_curve

__all__ = [
    "CALIBRATION_METHODS",
    "ClassificationReport",
    "ConfusionCounts",
    "DriftResult",
    "FprThreshold",
    "PixelMetrics",
    "UnsupportedRateError",
    "UnsupportedRateWarning",
    "au_pro",
    "au_pro_batches",
    "calibration_sample",
    "classification_report",
    "confusion_counts",
    "design_effect",
    "f1",
    "f1_optimal_threshold",
    "fpr",
    "fpr_threshold",
    "mcc",
    "mcc_from_counts",
    "min_calibration_windows",
    "order_fpr_bound",
    "pixel_roc_auc",
    "pixel_roc_auc_batches",
    "precision",
    "pro_curve",
    "recall",
    "roc_auc",
    "score_drift",
]
