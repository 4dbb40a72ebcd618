"""Positives remaining: on the synthetic benchmark (ground truth known) the interval covers the
true number of Yes images left unlabeled in at least 90% of seeded runs, after an active
labeling phase that biases the labelled set towards positives."""
from __future__ import annotations

import numpy as np

from relcurate.curation.labeling.al_select import positive_order, uncertainty_order
from relcurate.curation.labeling.positives_remaining import estimate_remaining
from relcurate.models.linear_head import LinearHead
from relcurate.testing.al_sim import synthetic_vectors
from relcurate.training.fast_head import fit_head, out_of_fold


def _one_run(seed: int, n: int = 3000, audit: int = 150, active: int = 200):
    rng = np.random.default_rng(seed)
    x, truth = synthetic_vectors(n, dim=16, seed=seed)
    labeled = np.zeros(n, dtype=bool)
    audit_idx = rng.choice(n, size=audit, replace=False)  # the random share of the mix
    labeled[audit_idx] = True
    for _ in range(4):  # active rounds: uncertainty + positive mining, each after a refit
        idx = np.flatnonzero(labeled)
        coef, b = fit_head(x[idx], truth[idx].astype(int), C=10.0)
        p = LinearHead(coef, b).predict_vectors(x)
        free = np.flatnonzero(~labeled)
        labeled[free[uncertainty_order(p[free], active // 8)]] = True
        free = np.flatnonzero(~labeled)
        labeled[free[positive_order(p[free], active // 8)]] = True
    idx = np.flatnonzero(labeled)
    y = truth[idx].astype(int)
    coef, b = fit_head(x[idx], y, C=10.0)
    p = LinearHead(coef, b).predict_vectors(x)
    oof = out_of_fold(x[idx], y, C=10.0, seed=seed)
    in_audit = np.isin(idx, audit_idx)
    est = estimate_remaining(p[~labeled], oof[in_audit], y[in_audit])
    return est, int(truth[~labeled].sum())


def test_interval_covers_the_true_count_in_90_percent_of_runs():
    runs = [_one_run(seed) for seed in range(40)]
    covered = [e.low <= true <= e.high for e, true in runs]
    assert np.mean(covered) >= 0.9, [(round(e.low), round(e.estimate), round(e.high), t) for e, t in runs]
    # Honest but useful: the interval is narrower than "anything between 0 and the pool".
    widths = [e.high - e.low for e, _ in runs]
    assert np.median(widths) < np.mean([t for _, t in runs])  # ±~40% with a 150-image audit


def test_without_audit_falls_back_to_model_sum():
    est = estimate_remaining(np.full(100, 0.1), np.zeros(0), np.zeros(0))
    assert abs(est.estimate - 10) < 1e-9 and est.low < 10 < est.high and est.audit_size == 0
