"""What the in-memory and the batched pixel metrics share: region structure, dtype rules, the
checks of their arguments and the two final reductions (so that both give the same bits)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ispad_core._shared.errors import InputTypeError
from ispad_core._shared.validation import check_float
from ispad_core.metrics import _metrics_kernels as K

STRUCTURE_8 = np.ones((3, 3), dtype=bool)
"""8-connectivity: pixels touching by an edge or a corner belong to the same region."""
STRUCTURE_4 = ndimage.generate_binary_structure(2, 1)
"""4-connectivity (edges only); used only to document how much the choice moves AU-PRO."""

MASK_VIEW = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def score_dtype(dtype: np.dtype, name: str) -> np.dtype:
    """float32 for scores that float32 holds exactly, float64 otherwise."""
    if dtype.kind not in "iuf":
        raise InputTypeError(f"{name}: expected real-valued scores (a float or integer dtype), got dtype {dtype}")
    if dtype.kind == "f":
        return np.dtype(np.float32) if dtype.itemsize <= 4 else np.dtype(np.float64)
    return np.dtype(np.float32) if dtype.itemsize <= 2 else np.dtype(np.float64)


def mask_view(m: np.ndarray, name: str) -> np.ndarray:
    """A C-contiguous unsigned view with the same non-zero pattern (bool -> uint8, int16 -> uint16...)."""
    if m.dtype.kind not in "bui":
        raise InputTypeError(f"{name}: expected a boolean or integer dtype (non-zero = defective), got dtype {m.dtype}")
    return np.ascontiguousarray(m).view(MASK_VIEW[m.dtype.itemsize])


def check_limit(fpr_limit: Any) -> float:
    return check_float(fpr_limit, "fpr_limit", minimum=0.0, maximum=1.0, min_inclusive=False)


def au_pro_value(weights, greater, equal, n_neg: int, n_regions: int, fpr_limit: float) -> float:
    """AU-PRO from the per-level region weights and anomaly-free counts (shared with batches).

    ``weights[j]``: the sum of ``1 / |r|`` over the defective pixels scoring level ``j`` (levels
    ascending); ``greater[j]``, ``equal[j]``: anomaly-free pixels scoring above and at it.
    """
    limit_count = fpr_limit * n_neg
    area = K.pro_area_levels(weights, greater, equal, limit_count)
    value = area / (n_regions * limit_count)
    return float(min(max(value, 0.0), 1.0))


def auroc_value(pos_per_level, under, equal, n_pos: int, n_neg: int) -> float:
    """Pixel AUROC from the defective pixels per level and the anomaly-free counts below and at it.

    2 U = sum over defective pixels of 2 #(anomaly-free below) + #(anomaly-free equal), summed as
    an exact integer in two 64-bit words, then one correctly rounded division of Python ints.
    """
    hi, lo = K.dot_u128(pos_per_level, 2 * under + equal)
    twice_u = (int(hi) << 62) + int(lo)
    return twice_u / (2 * n_pos * n_neg)
