"""Percentile bootstrap intervals, seeded: a mean, a paired difference, a rate.

Resampling is over the independent unit (queries for retrieval and the judge, triplets for the
A/B study); resample indices are drawn in blocks so 1000 x 10k values stay a few MB.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _resampled_means(values: np.ndarray, resamples: int, rng: np.random.Generator, block: int = 200) -> np.ndarray:
    n = values.shape[0]
    out = np.empty((resamples,) + values.shape[1:], dtype=np.float64)
    for start in range(0, resamples, block):
        b = min(block, resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        out[start:start + b] = values[idx].mean(axis=1)
    return out


def bootstrap_mean(values: Sequence[float] | np.ndarray, *, resamples: int = DEFAULT_RESAMPLES,
                   level: float = DEFAULT_LEVEL, seed: int = 0) -> Interval:
    """Mean with a percentile interval; NaNs (invalid or missing measurements) are left out."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    means = _resampled_means(x, resamples, np.random.default_rng(seed))
    alpha = (1 - level) / 2
    return Interval(float(x.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)), int(x.size))


def bootstrap_means(matrix: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL,
                    seed: int = 0) -> list[Interval]:
    """One interval per column of `matrix` (rows = units), all from the same resamples of rows
    (so the intervals of several metrics of one run are consistent). No NaNs allowed here."""
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        return [Interval(float("nan"), float("nan"), float("nan"), 0) for _ in range(x.shape[-1] if x.ndim == 2 else 0)]
    means = _resampled_means(x, resamples, np.random.default_rng(seed))
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)
    est = x.mean(axis=0)
    return [Interval(float(e), float(a), float(b), int(x.shape[0])) for e, a, b in zip(est, lo, hi)]


def paired_difference(a: Sequence[float], b: Sequence[float], **kw) -> Interval:
    """Mean of a - b over the units where both are measured (same queries), with its interval."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired values need the same length: {x.shape} vs {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    return bootstrap_mean(x[keep] - y[keep], **kw)


def bootstrap_rate(flags: Sequence[bool] | np.ndarray, **kw) -> Interval:
    """A proportion (e.g. preference rate) as the mean of 0/1 flags."""
    return bootstrap_mean(np.asarray(flags, dtype=np.float64), **kw)
