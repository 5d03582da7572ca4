"""A detector's threshold calibrated on fault-free scores at a stated false-alarm rate, and drift.

A threshold chosen on the validation prints of the designs a model was trained on says little
about the false alarms on a new design. A factory always has fault-free sheets of a new design
(the first ones that pass the manual check); their window scores are a calibration sample.

- :func:`fpr_threshold` -- the threshold that keeps a new fault-free window's chance of a false
  alarm, ``P(score >= threshold)``, at most ``target_fpr``, with the conformal guarantee of the
  order statistic (``method="order"``, the default); the plain empirical quantile and a
  generalized Pareto tail fit are there for comparison (``docs/calibration.md`` measures all
  three).
- :func:`min_calibration_windows` -- how many fault-free windows a rate needs.
- :func:`order_fpr_bound` -- the rate one such threshold stays under with a stated confidence,
  for ``n`` independent windows or the effective number of windows cut from a few scans.
- :func:`score_drift` -- a two-sample Kolmogorov-Smirnov test of new scores against the
  calibration sample (censored at its 95 % quantile), at a stated false-alarm rate ``alpha``.
- :func:`design_effect` -- how much the windows of one scan move together (scan-to-scan
  variation), which the drift test needs to keep its rate on real scans.
- :func:`calibration_sample` -- the compact sample (at most 2048 float32 order statistics) that a
  model file keeps for :func:`score_drift`.

The decision rule everywhere in the library: a window is defective when ``score >= threshold``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ispad_core._shared.errors import InputTypeError, InputValueError
from ispad_core._shared.validation import check_array, check_choice, check_finite, check_float, check_int

__all__ = [
    "CALIBRATION_METHODS",
    "CENSOR_QUANTILE",
    "SAMPLE_SIZE",
    "DriftResult",
    "FprThreshold",
    "UnsupportedRateError",
    "UnsupportedRateWarning",
    "calibration_sample",
    "design_effect",
    "fpr_threshold",
    "min_calibration_windows",
    "order_fpr_bound",
    "score_drift",
]

CALIBRATION_METHODS = ("order", "quantile", "gpd")
"""The methods of :func:`fpr_threshold`."""

QUANTILE_LEVELS = (0.5, 0.9, 0.99)
"""The quantiles of the calibration sample that a :class:`FprThreshold` reports (and ``max``)."""

CENSOR_QUANTILE = 0.95
""":func:`score_drift` censors both samples at this quantile of the calibration sample."""

SAMPLE_SIZE = 2048
"""The most order statistics :func:`calibration_sample` keeps."""

GPD_TAIL_FRACTION = 0.1
""":func:`fpr_threshold` with ``method="gpd"`` fits the top 10 % of the scores (at least 20)."""


class UnsupportedRateWarning(UserWarning):
    """A threshold was computed for a false-alarm rate that its sample is too small to support."""


class UnsupportedRateError(InputValueError):
    """(a ValueError) The sample is too small for the false-alarm rate asked for.

    Attributes ``n`` (scores given), ``needed`` (:func:`min_calibration_windows` of the rate) and
    ``smallest_supported_fpr`` (``1 / (n + 1)``).
    """

    def __init__(self, message: str, *, n: int, needed: int, smallest_supported_fpr: float) -> None:
        super().__init__(message)
        self.n, self.needed, self.smallest_supported_fpr = n, needed, smallest_supported_fpr


def _as_rate(target_fpr: Any) -> float:
    return check_float(target_fpr, "target_fpr", minimum=0.0, maximum=1.0, min_inclusive=False, max_inclusive=False)


def _rank(n: int, rate: float) -> int:
    """The conformal rank ``k = ceil((n + 1) (1 - rate))``, exact for the float ``rate`` (no rounding)."""
    return math.ceil((n + 1) * (1 - Fraction(rate)))


def min_calibration_windows(target_fpr: float) -> int:
    """The fewest fault-free windows whose order statistic supports a false-alarm rate.

    The conformal threshold is the ``k``-th smallest of ``n`` scores with
    ``k = ceil((n + 1) (1 - R))``; it exists when ``k <= n``, that is when ``(n + 1) R >= 1``:
    ``n >= ceil(1 / R) - 1``. A sample of ``n`` windows supports rates down to ``1 / (n + 1)``.

    Parameters
    ----------
    target_fpr : float in (0, 1)
        The false-alarm rate per window, R.

    Returns
    -------
    int

    Examples
    --------
    >>> from ispad_core.metrics import min_calibration_windows
    >>> min_calibration_windows(0.01), min_calibration_windows(0.001), min_calibration_windows(0.05)
    (99, 999, 19)
    """
    rate = _as_rate(target_fpr)
    return max(1, math.ceil(1 / Fraction(rate)) - 1)


def order_fpr_bound(n: float, target_fpr: float, confidence: float = 0.95) -> float | None:
    """The false-alarm rate that an order-statistic threshold of ``n`` independent windows stays
    under with probability ``confidence``.

    The threshold of :func:`fpr_threshold` (``method="order"``) is the ``k``-th smallest of ``n``
    scores, ``k = ceil((n + 1) (1 - R))``; for continuous scores its rate on new windows is
    ``Beta(n + 1 - k, k)`` distributed, and this is that distribution's ``confidence`` quantile.
    It holds for exchangeable windows. Windows cut from a few scans are not: windows of one scan
    move together, and ``n`` of them count as about ``n / design_effect`` independent ones
    (:func:`design_effect`, Kish's effective sample size); a non-integer ``n`` is rounded down.
    With that count the bound is an approximation that ignores how much each new scan differs on
    its own (``docs/calibration.md`` measures it).

    Parameters
    ----------
    n : float, >= 1
        Independent fault-free windows (or their effective number).
    target_fpr : float in (0, 1)
        The false-alarm rate per window, R.
    confidence : float in (0, 1), default 0.95

    Returns
    -------
    float or None
        None when ``n`` windows do not support ``target_fpr`` (fewer than
        :func:`min_calibration_windows`).

    Examples
    --------
    >>> from ispad_core.metrics import order_fpr_bound
    >>> round(order_fpr_bound(9999, 0.01), 4), round(order_fpr_bound(990, 0.01), 4)
    (0.0117, 0.0145)
    >>> order_fpr_bound(676 / 14.0, 0.01) is None  # 676 windows of 4 scans that move together
    True
    """
    from scipy import stats

    count = check_float(n, "n", minimum=1.0)
    rate = _as_rate(target_fpr)
    conf = check_float(confidence, "confidence", minimum=0.0, maximum=1.0, min_inclusive=False, max_inclusive=False)
    whole = int(math.floor(count))
    k = _rank(whole, rate)
    if k > whole:
        return None
    return float(stats.beta.ppf(conf, whole + 1 - k, k))


def _check_scores(scores: Any, name: str) -> np.ndarray:
    arr = check_array(scores, name, kinds="biuf", allow_empty=True)
    if arr.size == 0:
        raise InputValueError(f"{name}: expected at least one score of a fault-free window, got none (shape {arr.shape})")
    arr = arr.astype(np.float64, copy=False).ravel()
    check_finite(arr, name)
    return arr


def _nudge_up(x: float) -> float:
    """The next float above ``x``: ``score >= nudge_up(s)`` holds exactly for the scores above ``s``."""
    return float(np.nextafter(x, np.inf))


@dataclass(frozen=True)
class FprThreshold:
    """A threshold calibrated on ``n`` fault-free scores (the result of :func:`fpr_threshold`).

    Attributes
    ----------
    threshold : float
        Defective when ``score >= threshold``.
    n : int
        Fault-free scores behind it.
    target_fpr : float
        The false-alarm rate per window it was calibrated for, R.
    method : str
        ``"order"``, ``"quantile"`` or ``"gpd"``.
    quantiles : dict of str to float
        The sample's quantiles ``"0.5"``, ``"0.9"``, ``"0.99"`` and ``"max"``.
    smallest_supported_fpr : float
        ``1 / (n + 1)``: the smallest rate that ``n`` scores support.
    supported : bool
        Whether ``target_fpr >= smallest_supported_fpr`` (False only with ``allow_unsupported``).
    rank : int or None
        For ``"order"``: the rank ``k`` of the order statistic (None when not supported).
    """

    threshold: float
    n: int
    target_fpr: float
    method: str
    quantiles: dict = field(compare=False)
    smallest_supported_fpr: float
    supported: bool
    rank: int | None = None

    def expected_false_alarms(self, windows_per_scan: int) -> float:
        """False alarms per fault-free scan of ``windows_per_scan`` windows: at most ``R * windows``.

        Examples
        --------
        >>> import numpy as np
        >>> from ispad_core.metrics import fpr_threshold
        >>> fpr_threshold(np.random.default_rng(0).random(999), 0.01).expected_false_alarms(250)
        2.5
        """
        w = check_int(windows_per_scan, "windows_per_scan", minimum=0)
        return float(self.target_fpr * w)

    def fpr_upper_bound(self, confidence: float = 0.95) -> float | None:
        """The false-alarm rate that this one calibration stays under with probability ``confidence``.

        The guarantee ``P(score >= threshold) <= R`` is on average over calibration samples; the
        rate of one threshold varies around it. For continuous scores the rate of the ``k``-th
        order statistic of ``n`` is ``Beta(n + 1 - k, k)`` distributed, whose ``confidence``
        quantile this returns (None for the other methods and an unsupported rate).

        Examples
        --------
        >>> import numpy as np
        >>> from ispad_core.metrics import fpr_threshold
        >>> scores = np.random.default_rng(0).random(9999)
        >>> round(fpr_threshold(scores, 0.01).fpr_upper_bound(0.95), 4)
        0.0117
        """
        conf = check_float(confidence, "confidence", minimum=0.0, maximum=1.0, min_inclusive=False, max_inclusive=False)
        if self.rank is None:
            return None
        return order_fpr_bound(self.n, self.target_fpr, conf)

    def to_dict(self) -> dict:
        """JSON values of every field."""
        return {"threshold": self.threshold, "n": self.n, "target_fpr": self.target_fpr, "method": self.method,
                "quantiles": dict(self.quantiles), "smallest_supported_fpr": self.smallest_supported_fpr,
                "supported": self.supported, "rank": self.rank}


def _quantiles(sorted_scores: np.ndarray) -> dict:
    out = {f"{q:g}": float(np.quantile(sorted_scores, q)) for q in QUANTILE_LEVELS}
    out["max"] = float(sorted_scores[-1])
    return out


def _gpd_threshold(sorted_scores: np.ndarray, rate: float) -> float:
    """A generalized Pareto fit to the exceedances of the top ``GPD_TAIL_FRACTION`` of the scores.

    With ``u`` the ``(1 - f)`` empirical quantile and ``N_u`` exceedances, the tail is
    ``P(X > u + y) = (N_u / n) (1 - G(y))``; the threshold solves it for ``rate``. For a rate at
    or above ``N_u / n`` (not in the tail) the plain quantile is returned.
    """
    from scipy import stats

    n = sorted_scores.size
    n_tail = min(n - 1, max(20, int(round(GPD_TAIL_FRACTION * n))))
    if n_tail < 5:
        return float(np.quantile(sorted_scores, 1 - rate))
    u = float(sorted_scores[n - n_tail - 1])
    excess = sorted_scores[n - n_tail:] - u
    zeta = n_tail / n
    if rate >= zeta:
        return float(np.quantile(sorted_scores, 1 - rate))
    if not np.any(excess > 0):
        return _nudge_up(u)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        c, _, scale = stats.genpareto.fit(excess, floc=0.0)
    y = float(stats.genpareto.ppf(1 - rate / zeta, c, loc=0.0, scale=scale))
    if not math.isfinite(y):  # c < 0 and the level at the upper end point
        y = float(excess.max())
    return u + y


def fpr_threshold(
    scores: Any, target_fpr: float, *, method: str = "order", allow_unsupported: bool = False
) -> FprThreshold:
    """The threshold that keeps a new fault-free window's false-alarm rate at most ``target_fpr``.

    ``method="order"`` (the default): with ``n`` exchangeable fault-free scores (windows of
    fault-free sheets) and ``k = ceil((n + 1) (1 - R))``, the threshold is the ``k``-th smallest
    score nudged up to the next float (``np.nextafter``), so that ``score >= threshold`` means
    ``score > s_(k)``; a new window from the same source then has
    ``P(score >= threshold) <= (n + 1 - k) / (n + 1) <= R`` whatever the score distribution,
    ties included (the conformal guarantee of the order statistic). It needs ``k <= n``, that is
    ``n >= ceil(1 / R) - 1`` (:func:`min_calibration_windows`).

    ``method="quantile"``: the plain empirical ``1 - R`` quantile (linear interpolation), and
    ``method="gpd"``: a generalized Pareto fit (``scipy.stats.genpareto``) to the exceedances of
    the top 10 % of the scores. Neither carries the guarantee; they are kept to compare
    (``docs/calibration.md``: the order statistic was closest to R and never far above it).

    Parameters
    ----------
    scores : array_like of float, shape (n,) (any shape is flattened)
        Scores of fault-free windows, finite.
    target_fpr : float in (0, 1)
        The false-alarm rate per window, R.
    method : {"order", "quantile", "gpd"}, default "order"
    allow_unsupported : bool, default False
        For a rate below ``1 / (n + 1)``: warn (:class:`UnsupportedRateWarning`) and return the
        largest score nudged up (``supported`` False) instead of raising.

    Returns
    -------
    FprThreshold

    Raises
    ------
    TypeError
        If ``scores`` is not numeric.
    ValueError
        If ``scores`` is empty or has NaN or inf, ``target_fpr`` is outside (0, 1) or ``method`` is
        unknown.
    UnsupportedRateError
        (a ValueError) If the sample is too small for ``target_fpr``: the message names
        ``target_fpr``, ``n``, the smallest rate ``n`` supports and the windows ``target_fpr`` needs.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.metrics import fpr_threshold
    >>> scores = np.random.default_rng(0).beta(1, 20, 9999)
    >>> t = fpr_threshold(scores, 0.01)
    >>> t.rank, t.n, t.smallest_supported_fpr
    (9900, 9999, 0.0001)
    >>> int((scores >= t.threshold).sum())  # the 99 scores above the 9900-th smallest
    99
    """
    arr = _check_scores(scores, "scores")
    rate = _as_rate(target_fpr)
    method = check_choice(method, "method", CALIBRATION_METHODS)
    if not isinstance(allow_unsupported, bool):
        raise InputTypeError(f"allow_unsupported: expected a bool, got {type(allow_unsupported).__name__}")
    s = np.sort(arr)
    n = int(s.size)
    smallest = 1.0 / (n + 1)
    k = _rank(n, rate)
    supported = k <= n
    if not supported:
        need = min_calibration_windows(rate)
        msg = (f"target_fpr: {rate:g} is below the smallest false-alarm rate that {n} fault-free windows support, "
               f"1/(n+1) = {smallest:.3g}; it needs at least {need} windows (more fault-free scans, or a smaller "
               "stride), or a target_fpr >= " + f"{smallest:.3g}")
        if not allow_unsupported:
            raise UnsupportedRateError(msg, n=n, needed=need, smallest_supported_fpr=smallest)
        warnings.warn(msg + "; the threshold is the largest score, nudged up, and its rate is not guaranteed",
                      UnsupportedRateWarning, stacklevel=2)
        threshold = _nudge_up(float(s[-1]))
        return FprThreshold(threshold, n, rate, method, _quantiles(s), smallest, False, None)
    if method == "order":
        threshold = _nudge_up(float(s[k - 1]))
    elif method == "quantile":
        threshold = float(np.quantile(s, 1 - rate))
    else:
        threshold = _gpd_threshold(s, rate)
    return FprThreshold(threshold, n, rate, method, _quantiles(s), smallest, True, k if method == "order" else None)


# --------------------------------------------------------------------------- the stored sample and drift


def calibration_sample(scores: Any, *, size: int = SAMPLE_SIZE) -> np.ndarray:
    """The compact calibration sample a model file keeps: at most ``size`` sorted float32 scores.

    With ``n <= size`` scores it is all of them, sorted; with more it is the order statistics at
    the ranks ``round((i + 0.5) n / size - 0.5)``, ``i = 0 .. size - 1`` (evenly spaced
    quantiles), so its empirical distribution function is within ``1 / size`` of the full
    sample's. Scores are rounded to float32 (7 significant digits).

    Parameters
    ----------
    scores : array_like of float, shape (n,)
    size : int, default 2048

    Returns
    -------
    numpy.ndarray of float32, shape (min(n, size),), ascending

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.metrics import calibration_sample
    >>> calibration_sample(np.arange(10.0), size=4).tolist()
    [1.0, 3.0, 6.0, 8.0]
    """
    s = np.sort(_check_scores(scores, "scores"))
    size = check_int(size, "size", minimum=1)
    if s.size > size:
        ranks = np.rint((np.arange(size) + 0.5) * s.size / size - 0.5).astype(np.int64)
        s = s[np.clip(ranks, 0, s.size - 1)]
    return s.astype(np.float32)


@dataclass(frozen=True)
class DriftResult:
    """A two-sample Kolmogorov-Smirnov test of new scores against the calibration sample.

    Attributes
    ----------
    statistic : float
        The KS distance of the censored samples, in [0, 1].
    p_value : float
    drift : bool
        ``p_value < alpha``: the new scores do not look like the calibration sample.
    alpha : float
        The test's false-alarm rate (a sample from the calibration's distribution is flagged with
        probability at most ``alpha``).
    n_ref, n_new : int
        Sizes of the two samples.
    design_effect : float
        The design effect the p-value allowed for (1: independent windows).
    censored_at : float
        Both samples were censored (clipped from above) at this score, the calibration sample's
        95 % quantile.
    """

    statistic: float
    p_value: float
    drift: bool
    alpha: float
    n_ref: int
    n_new: int
    censored_at: float
    design_effect: float = 1.0

    def to_dict(self) -> dict:
        """JSON values of every field."""
        return {"statistic": self.statistic, "p_value": self.p_value, "drift": self.drift, "alpha": self.alpha,
                "n_ref": self.n_ref, "n_new": self.n_new, "censored_at": self.censored_at,
                "design_effect": self.design_effect}

    def __str__(self) -> str:
        verdict = "DRIFT" if self.drift else "no drift"
        return (f"{verdict}: KS {self.statistic:.3f}, p = {self.p_value:.3g} (alpha {self.alpha:g}; "
                f"{self.n_new} new vs {self.n_ref} calibration scores, censored at {self.censored_at:.4g})")


def design_effect(groups: Any) -> float:
    """How many times the variance of a distribution function estimated from windows grows because
    the windows come in scans: 1 for independent windows, up to the windows per scan when whole
    scans move together (Kish's design effect).

    For scans ``s`` of ``m_s`` windows with empirical distribution functions ``F_s`` and the pooled
    ``F``, at the pooled deciles ``t`` (0.1 .. 0.9, below the censoring point of
    :func:`score_drift`)::

        deff(t) = sum_s m_s (F_s(t) - F(t))^2 / ((S - 1) F(t) (1 - F(t)))

    which is about 1 when the windows are independent (each ``F_s(t)`` then varies as a binomial
    share); the result is the mean over the deciles, at least 1.

    Parameters
    ----------
    groups : sequence of array_like of float
        The window scores of each fault-free scan (at least two scans).

    Returns
    -------
    float
        >= 1.

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.metrics import design_effect
    >>> rng = np.random.default_rng(0)
    >>> design_effect([rng.random(200) for _ in range(20)]) < 2  # independent windows: about 1
    True
    >>> design_effect([rng.random(200) * 0.1 + k / 40 for k in range(20)]) > 50  # scans move together
    True
    """
    if isinstance(groups, np.ndarray) or not hasattr(groups, "__len__"):
        raise InputTypeError(f"groups: expected a sequence of per-scan score arrays, got {type(groups).__name__}")
    arrays = [_check_scores(g, f"groups[{i}]") for i, g in enumerate(groups)]
    if len(arrays) < 2:
        raise InputValueError(f"groups: expected the scores of at least 2 scans, got {len(arrays)}")
    pooled = np.concatenate(arrays)
    ts = np.quantile(pooled, np.arange(1, 10) / 10)
    sizes = np.array([a.size for a in arrays], dtype=np.float64)
    sorted_groups = [np.sort(a) for a in arrays]
    effects = []
    for t in ts:
        f = float(np.mean(pooled <= t))
        if not 0.0 < f < 1.0:
            continue
        fs = np.array([np.searchsorted(g, t, side="right") / g.size for g in sorted_groups])
        effects.append(float(np.sum(sizes * (fs - f) ** 2) / ((len(arrays) - 1) * f * (1 - f))))
    return max(1.0, float(np.mean(effects))) if effects else 1.0


def score_drift(
    calibration_scores: Any,
    new_scores: Any,
    *,
    alpha: float = 0.01,
    n_ref: int | None = None,
    design_effect: float = 1.0,
) -> DriftResult:
    """Whether new fault-free-looking scores drifted away from the calibration sample.

    A two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``, two-sided, exact p-value for
    small samples and the asymptotic one for large). Defective windows of a scan raise the top of
    its score distribution, which is not drift of the design, so both samples are first censored
    at the calibration sample's 95 % quantile ``c`` (a score above ``c`` counts as ``c``): the test
    compares the distributions below ``c``, where a brightness change, blur or a worn screen
    shows, and stays blind to how many windows lie above it. Censoring ties values at ``c``, which
    only makes the test more conservative.

    The rate ``alpha`` holds for independent scores from the calibration's distribution. The
    windows of one scan overlap, and sheets vary (shading, ink density), so windows come in
    clusters that move together; the plain test then flags unchanged scans far more often than
    ``alpha``. ``design_effect`` (:func:`design_effect` of the calibration scans, which a model
    file keeps) divides both sample sizes: the p-value is Smirnov's for ``n_ref / deff`` and
    ``n_new / deff`` scores. Read the result as an alarm to look, not a verdict.

    Parameters
    ----------
    calibration_scores : array_like of float, shape (m,)
        The calibration sample (e.g. :func:`calibration_sample`, as a model file stores it).
    new_scores : array_like of float, shape (k,)
        Scores of new windows (e.g. all windows of one run).
    alpha : float in (0, 1), default 0.01
    n_ref : int, optional
        The size of the sample that ``calibration_scores`` summarises, when it is a
        :func:`calibration_sample` of a larger one (a model file stores ``n_windows``). The
        statistic is computed against the stored order statistics, whose distribution function is
        within ``1 / len(calibration_scores)`` of the full sample's, and the p-value with
        Smirnov's asymptotic distribution for ``n_ref`` and ``len(new_scores)``. Without it the
        evenly spaced order statistics, less variable than a random sample of their number, make
        the test conservative (``docs/calibration.md`` measures both).
    design_effect : float >= 1, default 1.0
        The calibration scans' :func:`design_effect`; 1 for independent windows.

    Returns
    -------
    DriftResult

    Raises
    ------
    TypeError, ValueError
        For empty, non-numeric or non-finite scores, or ``alpha`` outside (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from ispad_core.metrics import score_drift
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.beta(2, 20, 2000)
    >>> score_drift(ref, rng.beta(2, 20, 500)).drift, score_drift(ref, rng.beta(3, 20, 500)).drift
    (False, True)
    """
    from scipy import stats

    ref = _check_scores(calibration_scores, "calibration_scores")
    new = _check_scores(new_scores, "new_scores")
    alpha = check_float(alpha, "alpha", minimum=0.0, maximum=1.0, min_inclusive=False, max_inclusive=False)
    c = float(np.quantile(ref, CENSOR_QUANTILE))
    res = stats.ks_2samp(np.minimum(ref, c), np.minimum(new, c), alternative="two-sided", method="auto")
    d, p, m = float(res.statistic), float(res.pvalue), int(ref.size)
    deff = check_float(design_effect, "design_effect", minimum=1.0)
    if n_ref is not None:
        m = check_int(n_ref, "n_ref", minimum=int(ref.size))
    if m > ref.size or deff > 1.0:
        en = m * new.size / (m + new.size) / deff
        p = float(np.clip(stats.kstwo.sf(d, max(1, int(round(en)))), 0.0, 1.0))
    return DriftResult(d, p, bool(p < alpha), alpha, m, int(new.size), c, deff)
