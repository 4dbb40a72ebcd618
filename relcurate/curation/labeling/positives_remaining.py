"""How many Yes images are still in the unlabeled pool, with an interval.

A model-assisted (difference) estimator: the model's scores summed over the unlabeled pool,
corrected by the residuals (label - score) on a uniform random audit sample — the images the
random share of the mix handed out. Miscalibrated scores then shift only the correction, not the
validity: the interval's width comes from the residuals' spread, so a good model gives a narrow
interval and a bad one a wide but still honest one (Särndal, Swensson & Wretman, ch. 6).

Population: the unlabeled pool U plus the audit sample A (A was drawn from U ∪ A before being
labelled). Total Yes in U ∪ A ≈ Σ_{U∪A} p + N/m · Σ_A (y - p); remaining = that − Σ_A y.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class RemainingEstimate:
    estimate: float
    low: float
    high: float
    unlabeled: int
    audit_size: int
    model_sum: float  # Σ p over the unlabeled pool, before the audit correction
    level: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_remaining(unlabeled_scores: np.ndarray, audit_scores: np.ndarray, audit_labels: np.ndarray, *,
                       level: float = 0.95) -> RemainingEstimate:
    p_u = np.asarray(unlabeled_scores, dtype=np.float64)
    p_a = np.asarray(audit_scores, dtype=np.float64)
    y_a = np.asarray(audit_labels, dtype=np.float64)
    if len(p_a) != len(y_a):
        raise ValueError("audit scores and labels differ in length")
    n_u, m = len(p_u), len(p_a)
    n = n_u + m
    model_sum = float(p_u.sum())
    if m < 2:
        # No audit to check the model against: report the model's sum with an interval from the
        # scores alone (Poisson-binomial variance), which is only as good as the calibration.
        sd = float(np.sqrt((p_u * (1 - p_u)).sum()))
        z = NormalDist().inv_cdf(0.5 + level / 2)
        return RemainingEstimate(model_sum, max(0.0, model_sum - z * sd), min(n_u, model_sum + z * sd), n_u, m,
                                 model_sum, level)
    r = y_a - p_a
    total = model_sum + float(p_a.sum()) + n * float(r.mean())
    est = total - float(y_a.sum())
    fpc = max(0.0, 1 - m / n)
    # Residual variance, floored by what one more positive in the audit would add: with rare
    # positives a small audit often holds none, and a zero spread would claim certainty.
    s2 = max(float(r.var(ddof=1)), 1.0 / m)
    se = n * np.sqrt(fpc * s2 / m)
    # Student t quantile via a normal approximation with a small-sample widening.
    z = NormalDist().inv_cdf(0.5 + level / 2) * (1 + 1.0 / max(1, m - 1))
    low, high = est - z * se, est + z * se
    return RemainingEstimate(float(np.clip(est, 0, n_u)), float(max(0.0, low)), float(min(n_u, high)), n_u, m,
                             model_sum, level)
