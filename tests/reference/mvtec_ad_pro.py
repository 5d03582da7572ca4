"""The PRO curve and AU-PRO as the official MVTec AD evaluation code computes them.

A transcription of the algorithm of ``compute_pro`` and ``trapezoid`` in the evaluation scripts
published with the MVTec AD dataset (Bergmann et al., 2021), written from its description and
kept deliberately literal, so that :func:`ispad_core.metrics.au_pro` can be held to it:

1. Label every ground-truth map with 8-connectivity (a 3 x 3 structure of ones). Each anomaly-free
   pixel carries an FPR increment of 1; each pixel of a region of ``s`` pixels carries a PRO
   increment of ``1 / s``. Count the anomaly-free pixels and the regions over all images.
2. Sort all pixels of all maps by score, highest first (an unstable sort: the order inside a run
   of equal scores is arbitrary), and take cumulative sums of both increments (the FPR counts in
   float64), divided by the number of anomaly-free pixels and of regions.
3. Keep one point per distinct score, the last of each run of equal scores (where the cumulative
   sums no longer depend on the order inside the run); clip both to at most 1; put (0, 0) in
   front and (1, 1) at the end.
4. Integrate with the trapezoid rule up to the FPR limit: if the limit is not a point of the
   curve, interpolate the PRO linearly on the segment that crosses it and add the partial
   trapezoid; then keep the points with FPR <= limit. AU-PRO is that area divided by the limit.

Nothing here is fast or clever; it holds every pixel of the workload in memory several times.
"""

from __future__ import annotations

import bisect

import numpy as np
from scipy.ndimage import label


def compute_pro(anomaly_maps, ground_truth_maps):
    """(fprs, pros) of the PRO curve, from (0, 0) to (1, 1), as the official code returns them."""
    structure = np.ones((3, 3), dtype=int)
    n_images = len(anomaly_maps)
    height, width = np.asarray(anomaly_maps[0]).shape
    fp_steps = np.zeros((n_images, height, width), dtype=np.uint32)
    pro_steps = np.zeros((n_images, height, width), dtype=np.float64)
    ok_total = 0
    regions_total = 0
    for i, truth in enumerate(ground_truth_maps):
        regions, count = label(np.asarray(truth), structure)
        regions_total += count
        anomaly_free = regions == 0
        ok_total += int(anomaly_free.sum())
        fp_steps[i][anomaly_free] = 1
        for k in range(1, count + 1):
            inside = regions == k
            pro_steps[i][inside] = 1.0 / inside.sum()
    scores = np.array(anomaly_maps).ravel()
    order = np.argsort(scores)[::-1]  # quicksort: ties in no particular order, as the original
    scores = scores[order]
    fprs = np.cumsum(fp_steps.ravel()[order], dtype=np.float64) / ok_total
    pros = np.cumsum(pro_steps.ravel()[order]) / regions_total
    last_of_run = np.append(np.diff(scores) != 0, True)
    fprs = np.minimum(fprs[last_of_run], 1.0)
    pros = np.minimum(pros[last_of_run], 1.0)
    return np.concatenate(([0.0], fprs, [1.0])), np.concatenate(([0.0], pros, [1.0]))


def trapezoid(x, y, x_max=None):
    """Area under the polyline (x, y) up to ``x_max``, interpolating linearly at ``x_max``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    extra = 0.0
    if x_max is not None:
        if x_max not in x:
            j = bisect.bisect(x, x_max)  # x is sorted: first point beyond the limit
            assert 0 < j < len(x), "the limit must lie inside the curve"
            y_at = y[j - 1] + (y[j] - y[j - 1]) * (x_max - x[j - 1]) / (x[j] - x[j - 1])
            extra = 0.5 * (y_at + y[j - 1]) * (x_max - x[j - 1])
        keep = x <= x_max
        x, y = x[keep], y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + extra)


def au_pro(anomaly_maps, ground_truth_maps, integration_limit=0.3):
    """Normalised AU-PRO up to ``integration_limit``, as the official evaluation reports it."""
    fprs, pros = compute_pro(anomaly_maps, ground_truth_maps)
    return trapezoid(fprs, pros, x_max=integration_limit) / integration_limit
