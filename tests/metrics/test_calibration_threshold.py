"""fpr_threshold, min_calibration_windows, order_fpr_bound, calibration_sample and score_drift:
against the sort-based reference, the conformal guarantee on known distributions, ties, and bad
inputs."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ispad_core.metrics import (
    FprThreshold,
    UnsupportedRateWarning,
    calibration_sample,
    design_effect,
    fpr_threshold,
    min_calibration_windows,
    order_fpr_bound,
    score_drift,
)
from tests.reference.calibration_ref import (
    calibration_sample_ref,
    conformal_rank_ref,
    design_effect_ref,
    false_alarms_ref,
    fpr_threshold_ref,
    min_calibration_windows_ref,
)

rates = st.floats(min_value=1e-4, max_value=0.5, allow_nan=False, exclude_min=False)


# --------------------------------------------------------------------------- against the reference


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=False), min_size=1, max_size=300),
    st.floats(min_value=1e-3, max_value=0.9),
)
def test_order_threshold_equals_the_sorted_definition(values, rate):
    scores = np.asarray(values)
    ref = fpr_threshold_ref(scores, rate)
    if ref is None:
        with pytest.raises(ValueError, match="target_fpr"):
            fpr_threshold(scores, rate)
        return
    t = fpr_threshold(scores, rate)
    assert t.threshold == ref and t.n == scores.size and t.rank == conformal_rank_ref(scores.size, rate)
    # the rule 'score >= threshold' flags exactly the scores above the k-th smallest: at most n + 1 - k of them
    flagged = false_alarms_ref(scores, t.threshold)
    assert flagged == int(np.sum(scores > np.sort(scores)[t.rank - 1])) <= scores.size + 1 - t.rank
    assert flagged <= rate * (scores.size + 1)


@settings(max_examples=100, deadline=None)
@given(rates)
def test_min_calibration_windows_equals_counting_up(rate):
    if 1 / rate > 20000:
        rate = 1 / 20000
    n = min_calibration_windows(rate)
    assert n == min_calibration_windows_ref(rate)
    scores = np.arange(n, dtype=float)
    assert fpr_threshold(scores, rate).supported
    if n > 1:
        with pytest.raises(ValueError, match=f"at least {n} windows"):
            fpr_threshold(scores[:-1], rate)


def test_min_calibration_windows_of_round_rates():
    assert [min_calibration_windows(r) for r in (0.5, 0.1, 0.05, 0.01, 0.001)] == [1, 9, 19, 99, 999]
    # exact on the float: 1/3 is stored a little below one third, so 2 windows (rate 1/3) do not support it
    assert min_calibration_windows(1 / 3) == 3 and min_calibration_windows(0.34) == 2


# --------------------------------------------------------------------------- the guarantee


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([200, 1000, 5000]), st.sampled_from([0.001, 0.01, 0.05]))
def test_realised_rate_on_uniform_scores_lies_within_its_sampling_bound(seed, n, rate):
    """Uniform fault-free scores: the realised rate is exactly 1 - t, and 1 - U_(k) ~ Beta(n + 1 - k, k)."""
    if (n + 1) * rate < 1:
        return
    rng = np.random.default_rng(seed)
    t = fpr_threshold(rng.random(n), rate).threshold
    realised = 1.0 - t
    k = conformal_rank_ref(n, rate)
    lo, hi = stats.beta(n + 1 - k, k).ppf([1e-7, 1 - 1e-7])
    assert lo <= realised <= hi
    # and new fault-free windows: a binomial count of false alarms with that rate
    m = 200_000
    count = int((rng.random(m) >= t).sum())
    assert abs(count - m * realised) <= 6 * math.sqrt(m * realised * (1 - realised)) + 1


@pytest.mark.parametrize("dist", [stats.beta(1, 30), stats.t(3), stats.lognorm(1.0)], ids=["beta", "t3", "lognormal"])
@pytest.mark.parametrize("n, rate", [(199, 0.01), (1000, 0.05), (2000, 0.001)])
def test_mean_realised_rate_is_at_most_the_target(dist, n, rate):
    """The guarantee is on average over calibration samples: E[P(new >= t)] = (n + 1 - k) / (n + 1) <= R."""
    seeds = 400
    realised = np.array([dist.sf(fpr_threshold(dist.rvs(size=n, random_state=np.random.default_rng(s)), rate).threshold)
                         for s in range(seeds)])
    k = conformal_rank_ref(n, rate)
    exact = (n + 1 - k) / (n + 1)
    assert exact <= rate
    sd = math.sqrt(exact * (1 - exact) / (n + 2)) / math.sqrt(seeds)  # sd of the mean of Beta(n + 1 - k, k)
    assert abs(realised.mean() - exact) <= 5 * sd


def test_ties_count_on_the_side_of_fewer_false_alarms():
    scores = np.array([0.2] * 50 + [0.7] * 50)
    t = fpr_threshold(scores, 0.3)  # k = ceil(101 * 0.7) = 71: the 71st smallest is 0.7
    assert t.rank == 71 and t.threshold == np.nextafter(0.7, 1) and false_alarms_ref(scores, t.threshold) == 0
    same = np.full(500, 0.4)
    assert fpr_threshold(same, 0.01).threshold > 0.4 and not (same >= fpr_threshold(same, 0.01).threshold).any()


def test_ties_keep_the_guarantee_on_a_discrete_distribution():
    values, probs = np.array([0.0, 0.1, 0.5, 0.9]), np.array([0.6, 0.3, 0.08, 0.02])
    rate, n = 0.05, 300
    realised = []
    for s in range(400):
        scores = np.random.default_rng(s).choice(values, size=n, p=probs)
        t = fpr_threshold(scores, rate).threshold
        realised.append(probs[values >= t].sum())
    assert np.mean(realised) <= rate


def test_result_fields_and_expected_false_alarms():
    scores = np.random.default_rng(0).random(999)
    t = fpr_threshold(scores, 0.01)
    assert isinstance(t, FprThreshold) and t.method == "order" and t.supported
    assert t.smallest_supported_fpr == pytest.approx(1 / 1000)
    assert set(t.quantiles) == {"0.5", "0.9", "0.99", "max"} and t.quantiles["max"] == scores.max()
    assert t.expected_false_alarms(300) == pytest.approx(3.0)
    with pytest.raises(AttributeError):
        t.threshold = 0.5  # frozen
    assert t.to_dict()["rank"] == 990


def test_other_methods_give_thresholds_near_the_quantile():
    scores = np.random.default_rng(1).beta(1, 30, 5000)
    q = np.quantile(scores, 0.99)
    for method in ("quantile", "gpd"):
        t = fpr_threshold(scores, 0.01, method=method)
        assert t.method == method and t.rank is None and abs(t.threshold - q) < 0.02
    assert fpr_threshold(scores, 0.01, method="quantile").threshold == q


def test_unsupported_rate_raises_or_warns():
    scores = np.linspace(0, 1, 50)
    with pytest.raises(ValueError, match=r"target_fpr: 0\.001 .* 50 fault-free windows .*0\.0196.* at least 999 windows"):
        fpr_threshold(scores, 0.001)
    with pytest.warns(UnsupportedRateWarning, match="at least 999 windows"):
        t = fpr_threshold(scores, 0.001, allow_unsupported=True)
    assert not t.supported and t.threshold == np.nextafter(1.0, 2.0) and t.rank is None


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: fpr_threshold([], 0.01), ValueError, "scores: expected at least one score"),
        (lambda: fpr_threshold([0.1, np.nan, 0.2], 0.5), ValueError, "scores: expected finite values, got 1 NaN"),
        (lambda: fpr_threshold([0.1, np.inf], 0.5), ValueError, "scores: expected finite values"),
        (lambda: fpr_threshold(["a", "b"], 0.5), TypeError, "scores: expected dtype kind"),
        (lambda: fpr_threshold([0.1, 0.2], 0.0), ValueError, r"target_fpr: expected a value in \(0, 1\), got 0"),
        (lambda: fpr_threshold([0.1, 0.2], 1.0), ValueError, r"target_fpr: expected a value in \(0, 1\)"),
        (lambda: fpr_threshold([0.1, 0.2], -0.1), ValueError, "target_fpr"),
        (lambda: fpr_threshold([0.1, 0.2], np.nan), ValueError, "target_fpr: expected a finite number"),
        (lambda: fpr_threshold([0.1, 0.2], "0.1"), TypeError, "target_fpr: expected a real number"),
        (lambda: fpr_threshold([0.1, 0.2], 0.5, method="mean"), ValueError, "method: expected one of 'order'"),
        (lambda: fpr_threshold([0.1, 0.2], 0.5, allow_unsupported=1), TypeError, "allow_unsupported: expected a bool"),
        (lambda: min_calibration_windows(0), ValueError, "target_fpr"),
        (lambda: score_drift([], [0.1]), ValueError, "calibration_scores: expected at least one score"),
        (lambda: score_drift([0.1], [np.nan]), ValueError, "new_scores: expected finite values"),
        (lambda: score_drift([0.1], [0.1], alpha=1.5), ValueError, r"alpha: expected a value in \(0, 1\)"),
        (lambda: calibration_sample([0.1], size=0), ValueError, "size: expected an int >= 1"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------- the stored sample and drift


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 600), st.integers(0, 2**32 - 1))
def test_calibration_sample_is_sorted_float32_within_one_step_of_the_full_ecdf(n, size, seed):
    scores = np.random.default_rng(seed).random(n)
    s = calibration_sample(scores, size=size)
    assert s.dtype == np.float32 and s.size == min(n, size) and (np.diff(s) >= 0).all()
    if n <= size:
        np.testing.assert_array_equal(s, np.sort(scores).astype(np.float32))
    grid = np.linspace(0, 1, 101)
    full = np.searchsorted(np.sort(scores), grid, side="right") / n
    small = np.searchsorted(s.astype(np.float64), grid, side="right") / s.size
    assert np.abs(full - small).max() <= 1 / s.size + 1 / n + 1e-6


def test_drift_false_alarm_rate_is_about_alpha_on_the_same_distribution():
    alpha, trials = 0.05, 300
    flagged = 0
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        ref = calibration_sample(rng.beta(1, 30, 5000))
        flagged += score_drift(ref, rng.beta(1, 30, 1500), alpha=alpha).drift
    # the rate is at most alpha (ties at the censoring point make it conservative), not far below it
    assert flagged / trials <= alpha + 4 * math.sqrt(alpha * (1 - alpha) / trials)


def test_drift_flags_a_shift_and_ignores_a_few_defective_windows():
    rng = np.random.default_rng(0)
    ref = rng.beta(1, 30, 5000)
    shifted = score_drift(ref, rng.beta(1.3, 30, 2000))
    assert shifted.drift and shifted.p_value < 0.01 and shifted.n_ref == 5000 and shifted.n_new == 2000
    new = rng.beta(1, 30, 2000)
    new[:20] = 0.99  # 1 % defective windows: above the censoring point, not drift
    same = score_drift(ref, new)
    assert not same.drift and same.censored_at == pytest.approx(np.quantile(ref, 0.95))
    assert "no drift" in str(same) and "DRIFT" in str(shifted)
    assert same.to_dict()["drift"] is False


def test_drift_with_the_stored_sample_and_n_ref_keeps_its_rate_and_power():
    alpha, trials = 0.05, 200
    plain = with_n = 0
    for seed in range(trials):
        rng = np.random.default_rng([seed, 1])
        full = rng.beta(1, 30, 20000)
        stored = calibration_sample(full)
        new = rng.beta(1, 30, 3000)
        plain += score_drift(stored, new, alpha=alpha).drift
        r = score_drift(stored, new, alpha=alpha, n_ref=full.size)
        assert r.n_ref == 20000
        with_n += r.drift
    bound = 4 * math.sqrt(alpha * (1 - alpha) / trials)
    assert plain / trials <= alpha and abs(with_n / trials - alpha) <= bound
    with pytest.raises(ValueError, match="n_ref: expected an int >= 2048"):
        score_drift(stored, new, n_ref=100)


def test_fpr_upper_bound_covers_the_realised_rate_at_its_confidence():
    n, rate, trials = 500, 0.02, 400
    covered = 0
    for seed in range(trials):
        t = fpr_threshold(np.random.default_rng(seed).random(n), rate)
        covered += (1 - t.threshold) <= t.fpr_upper_bound(0.9)
    assert abs(covered / trials - 0.9) <= 4 * math.sqrt(0.09 / trials)
    assert fpr_threshold(np.arange(100.0), 0.05, method="quantile").fpr_upper_bound() is None


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.floats(min_value=1e-3, max_value=0.5), st.floats(min_value=0.05, max_value=0.99))
def test_order_fpr_bound_is_the_threshold_s_own_bound_and_none_where_n_does_not_support_the_rate(n, rate, conf):
    bound = order_fpr_bound(n, rate, conf)
    if n < min_calibration_windows_ref(rate):
        assert bound is None
        return
    t = fpr_threshold(np.arange(float(n)), rate)
    assert bound == t.fpr_upper_bound(conf)
    assert order_fpr_bound(n + 0.7, rate, conf) == bound  # an effective count is rounded down
    # the definition: the realised rate of the k-th of n uniform scores, 1 - U_(k), is Beta(n + 1 - k, k)
    assert stats.beta.cdf(bound, n + 1 - t.rank, t.rank) == pytest.approx(conf, abs=1e-9)
    assert order_fpr_bound(n, rate, min(0.999, conf + 0.005)) >= bound


def test_order_fpr_bound_names_bad_arguments():
    for kw, match in [({"n": 0.5}, r"n: expected a value in \[1, inf\), got 0.5"), ({"target_fpr": 1.0}, "target_fpr"),
                      ({"confidence": 1.0}, "confidence")]:
        with pytest.raises(ValueError, match=match):
            order_fpr_bound(**{"n": 100, "target_fpr": 0.05, **kw})
    with pytest.raises(TypeError, match="n: expected a real number"):
        order_fpr_bound("100", 0.05)


def test_design_effect_is_about_one_for_independent_windows_and_large_for_scans_that_move_together():
    rng = np.random.default_rng(0)
    independent = [design_effect([rng.random(100) for _ in range(30)]) for _ in range(30)]
    assert 0.9 <= np.mean(independent) <= 1.3 and min(independent) >= 1.0
    shifted = design_effect([rng.random(100) * 0.2 + rng.normal(0, 0.2) for _ in range(30)])
    assert shifted > 20
    with pytest.raises(ValueError, match="groups: expected the scores of at least 2 scans"):
        design_effect([rng.random(10)])
    with pytest.raises(TypeError, match="groups: expected a sequence"):
        design_effect(np.zeros((3, 3)))


def test_drift_with_a_design_effect_keeps_its_rate_on_clustered_scores():
    """Scans whose windows share a random offset: the plain test flags most unchanged scans, the
    design effect brings the rate back to at most alpha."""
    alpha, trials, flagged_plain, flagged = 0.05, 100, 0, 0
    rng = np.random.default_rng(3)
    calib = [rng.normal(rng.normal(0, 1), 1, 80) for _ in range(30)]
    ref, deff = np.concatenate(calib), design_effect(calib)
    for _ in range(trials):
        new = rng.normal(rng.normal(0, 1), 1, 80)
        flagged_plain += score_drift(ref, new, alpha=alpha).drift
        r = score_drift(ref, new, alpha=alpha, design_effect=deff)
        assert r.design_effect == deff
        flagged += r.drift
    assert flagged_plain / trials > 0.3
    assert flagged / trials <= alpha + 4 * math.sqrt(alpha * (1 - alpha) / trials)
    assert score_drift(ref, rng.normal(4, 1, 80), alpha=alpha, design_effect=deff).drift  # a real shift


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.integers(1, 60), st.integers(0, 2**32 - 1), st.booleans())
def test_design_effect_equals_the_counting_reference(scans, windows, seed, ties):
    rng = np.random.default_rng(seed)
    groups = [rng.integers(0, 5, rng.integers(1, windows + 1)).astype(float) if ties else rng.normal(rng.normal(), 1, windows)
              for _ in range(scans)]
    assert design_effect(groups) == pytest.approx(design_effect_ref(groups), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_calibration_sample_equals_the_reference(n, size, seed):
    scores = np.random.default_rng(seed).random(n)
    np.testing.assert_array_equal(calibration_sample(scores, size=size), calibration_sample_ref(scores, size))
