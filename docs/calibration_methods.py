"""Measure the threshold methods of ``ispad_core.metrics.fpr_threshold`` on known distributions.

For each case (a score distribution, a calibration size n, a target rate R) and each seed: draw
n fault-free calibration scores, compute the threshold of each method, and compute the realised
false-alarm rate exactly from the distribution (its survival function at the threshold). Prints,
per method and case, the mean and the worst (largest) realised FPR / R over the seeds, and a
summary per method: the range of the per-case means and the worst case.

Also measures the false-alarm rate of ``score_drift`` when the reference is the stored compact
sample (``calibration_sample``: 2048 float32 order statistics of a larger calibration set) and the
new scores come from the same distribution.

    PYTHONPATH=$PWD python docs/calibration_methods.py            # the table in docs/calibration.md
    PYTHONPATH=$PWD python docs/calibration_methods.py --seeds 20 # quicker
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy import stats

from ispad_core.metrics import calibration_sample, fpr_threshold, score_drift

DISTRIBUTIONS = {
    # name: frozen scipy distribution of fault-free scores (a detector's P(defective))
    "beta(1,30)": stats.beta(1, 30),
    "beta(0.5,8)": stats.beta(0.5, 8),
    "logit-normal(-4,1.5)": None,  # sampled and evaluated through the normal below
    "student-t(3) heavy": stats.t(3),
    "pareto(1.5) heavy": stats.pareto(1.5),
}
LOGIT_NORMAL = stats.norm(-4.0, 1.5)
SIZES = (200, 1000, 5000, 20000)
RATES = (0.001, 0.01, 0.05)
METHODS = ("order", "quantile", "gpd")


def _draw(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if name.startswith("logit-normal"):
        return 1.0 / (1.0 + np.exp(-LOGIT_NORMAL.rvs(size=n, random_state=rng)))
    return DISTRIBUTIONS[name].rvs(size=n, random_state=rng)


def _survival(name: str, t: float) -> float:
    """P(score >= t) of the distribution (continuous, so P(score > t))."""
    if name.startswith("logit-normal"):
        if t <= 0.0:
            return 1.0
        if t >= 1.0:
            return 0.0
        return float(LOGIT_NORMAL.sf(np.log(t / (1.0 - t))))
    return float(DISTRIBUTIONS[name].sf(t))


def measure_methods(seeds: int) -> list[tuple]:
    rows = []
    for name in DISTRIBUTIONS:
        for n in SIZES:
            for rate in RATES:
                if (n + 1) * rate < 1:  # not supported by n windows: every method refuses
                    continue
                ratios = {m: [] for m in METHODS}
                for seed in range(seeds):
                    scores = _draw(name, n, np.random.default_rng([seed, n, int(rate * 1e6)]))
                    for m in METHODS:
                        t = fpr_threshold(scores, rate, method=m).threshold
                        ratios[m].append(_survival(name, t) / rate)
                for m in METHODS:
                    r = np.asarray(ratios[m])
                    rows.append((name, n, rate, m, float(r.mean()), float(r.max())))
    return rows


def measure_drift_alarm_rate(trials: int, alpha: float = 0.01) -> dict:
    """Share of same-distribution samples flagged, reference = full sample vs stored compact sample."""
    flagged = {"full sample": 0, "stored 2048 float32": 0, "stored 2048 float32 with n_ref=20000": 0}
    for seed in range(trials):
        rng = np.random.default_rng([seed, 7])
        ref = stats.beta(1, 30).rvs(size=20000, random_state=rng)
        new = stats.beta(1, 30).rvs(size=3000, random_state=rng)
        flagged["full sample"] += score_drift(ref, new, alpha=alpha).drift
        stored = calibration_sample(ref)
        flagged["stored 2048 float32"] += score_drift(stored, new, alpha=alpha).drift
        flagged["stored 2048 float32 with n_ref=20000"] += score_drift(stored, new, alpha=alpha, n_ref=ref.size).drift
    return {k: v / trials for k, v in flagged.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=200, help="calibration samples per case (default 200)")
    parser.add_argument("--drift-trials", type=int, default=1000, help="samples for the drift test's rate (default 1000)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = measure_methods(args.seeds)
    print(f"realised FPR / R over {args.seeds} seeds per case (1.0 = on target; > 1 = more false alarms than stated)")
    print(f"{'distribution':22s} {'n':>6s} {'R':>6s} " + " ".join(f"{m + ' mean':>10s} {m + ' worst':>11s}" for m in METHODS))
    by_case: dict = {}
    for name, n, rate, m, mean, worst in rows:
        by_case.setdefault((name, n, rate), {})[m] = (mean, worst)
    for (name, n, rate), v in by_case.items():
        cells = " ".join(f"{v[m][0]:10.2f} {v[m][1]:11.2f}" for m in METHODS)
        print(f"{name:22s} {n:6d} {rate:6g} {cells}")
    print("\nsummary per method over the cases: range of the mean FPR/R, and the worst single sample")
    for m in METHODS:
        means = [r[4] for r in rows if r[3] == m]
        worst = [r[5] for r in rows if r[3] == m]
        print(f"  {m:9s} mean FPR/R {min(means):.2f} .. {max(means):.2f}   worst sample {max(worst):.2f}")
    rates = measure_drift_alarm_rate(args.drift_trials)
    print(f"\nscore_drift at alpha 0.01, 20000 beta(1,30) calibration scores vs 3000 new ones of the same distribution, "
          f"{args.drift_trials} trials: flagged " + ", ".join(f"{k}: {v:.3f}" for k, v in rates.items()))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
