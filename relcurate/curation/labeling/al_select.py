"""Active-learning selection in numpy: which unlabeled images each strategy wants first.

Pure functions over arrays (scores, embeddings), shared by the live loop (which stores the
result as a queue head, `ranked_orders.write_heads`) and the simulations in bench/al_curve.py.
Everything is vectorised: a million scores rank in well under a second.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from relcurate.background_compute import one_blas_thread

DEFAULT_MIX = {"uncertainty": 0.4, "positive": 0.3, "diversity": 0.2, "random": 0.1}
MODEL_STRATEGIES = ("uncertainty", "positive", "diversity")


def _top(key: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest keys, sorted (argpartition first: O(n), not a full sort)."""
    k = min(int(k), len(key))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(key, k - 1)[:k] if k < len(key) else np.arange(len(key))
    return part[np.argsort(key[part], kind="stable")]


def _scores(p) -> np.ndarray:
    """Scores as a float array, float32 kept as is (a million of them: no float64 copy)."""
    p = np.asarray(p)
    return p if p.dtype.kind == "f" else p.astype(np.float64)


def uncertainty_order(p: np.ndarray, k: int, measure: str = "margin") -> np.ndarray:
    """Most uncertain first. Binary margin |2p-1| and entropy rank identically; both are offered
    because multi-class heads (later) differ."""
    if measure == "margin":
        # Straight on the (float32) scores: no clip needed, and no float64 copies of a
        # million-long array on the refresh's path.
        return _top(np.abs(2 * _scores(p) - 1), k)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    if measure == "entropy":
        key = (p * np.log(p) + (1 - p) * np.log(1 - p))  # negative entropy: smallest = most uncertain
    else:
        raise ValueError(f"unknown uncertainty measure {measure!r} (margin or entropy)")
    return _top(key, k)


def positive_order(p: np.ndarray, k: int) -> np.ndarray:
    """Highest P(Yes) first (positives are rare: mining them fills the Yes class)."""
    return _top(-_scores(p), k)


def k_center_greedy(vectors: np.ndarray, k: int, *, centers: np.ndarray | None = None,
                    candidates: np.ndarray | None = None, sample: int = 8192,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """Greedy k-center (Sener & Savarese 2018): repeatedly take the candidate farthest from
    everything chosen or already labelled (`centers`: vectors). Run on a random `sample` of the
    candidates: the cost is k x sample x dim, so a million-image pool stays sub-second.
    Returns indices into `vectors`."""
    rng = rng or np.random.default_rng(0)
    idx = np.arange(len(vectors)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    if len(idx) > sample:
        idx = rng.choice(idx, size=sample, replace=False)
    if len(idx) == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    # One BLAS thread: the loop is hundreds of small products, where thread start-up and
    # synchronisation cost more than the work (6x slower with two busy cores, measured).
    with one_blas_thread():
        return _k_center(vectors, k, centers, idx, rng)


def _k_center(vectors, k, centers, idx, rng) -> np.ndarray:
    x = np.asarray(vectors[np.sort(idx)], dtype=np.float32)
    idx = np.sort(idx)
    sq = (x * x).sum(axis=1)
    if centers is not None and len(centers):
        c = np.asarray(centers, dtype=np.float32)
        dist = np.full(len(x), np.inf, dtype=np.float32)
        for i in range(0, len(c), 2048):  # min distance to labelled points, in blocks
            cc = c[i:i + 2048]
            g = x @ cc.T  # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, in place: one block-sized array
            g *= -2
            g += (cc * cc).sum(axis=1)[None, :]
            dist = np.minimum(dist, g.min(axis=1) + sq)
    else:
        dist = np.full(len(x), np.inf, dtype=np.float32)
        dist[int(rng.integers(len(x)))] = np.float32(np.finfo(np.float32).max)  # random first pick
    chosen = []
    for _ in range(min(k, len(x))):
        j = int(np.argmax(dist))
        chosen.append(j)
        d = sq - 2 * x @ x[j] + sq[j]
        dist = np.minimum(dist, d)
        dist[j] = -np.inf
    return idx[np.asarray(chosen, dtype=np.int64)]


def normalise_mix(mix: Mapping[str, float] | None) -> dict[str, float]:
    mix = dict(DEFAULT_MIX if not mix else mix)
    bad = [k for k, v in mix.items() if k not in (*MODEL_STRATEGIES, "random") or v < 0]
    if bad:
        raise ValueError(f"mix quotas: unknown strategy or negative share {bad}; known: {(*MODEL_STRATEGIES, 'random')}")
    total = sum(mix.values())
    if total <= 0:
        raise ValueError("mix quotas must add up to more than 0")
    return {k: v / total for k, v in mix.items() if v > 0}


def quota_counts(mix: Mapping[str, float], n: int) -> dict[str, int]:
    """Split n picks by quota with largest remainders (sums to n exactly)."""
    mix = normalise_mix(mix)
    raw = {k: v * n for k, v in mix.items()}
    out = {k: int(np.floor(v)) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - out[k], reverse=True)[: n - sum(out.values())]:
        out[k] += 1
    return out


def select_batch(p: np.ndarray | None, vectors: np.ndarray, unlabeled: np.ndarray, n: int, *,
                 strategy: str = "mix", mix: Mapping[str, float] | None = None,
                 labeled: np.ndarray | None = None, rng: np.random.Generator | None = None,
                 diversity_sample: int = 4096) -> dict[str, np.ndarray]:
    """One batch of `n` indices from `unlabeled` (indices into p/vectors), by strategy; for
    "mix", by quota, each strategy skipping what an earlier one took. Returns strategy ->
    chosen indices (what the loop records on each task). Without scores (no model yet) every
    model strategy falls back to random."""
    rng = rng or np.random.default_rng(0)
    unlabeled = np.asarray(unlabeled, dtype=np.int64)
    plan = quota_counts(mix, n) if strategy == "mix" else {strategy: n}
    taken = np.zeros(len(vectors), dtype=bool)
    out: dict[str, np.ndarray] = {}
    for name in [s for s in (*MODEL_STRATEGIES, "random") if s in plan]:
        want = plan[name]
        free = unlabeled[~taken[unlabeled]]
        if want <= 0 or len(free) == 0:
            continue
        if p is None or name == "random":
            pick = rng.choice(free, size=min(want, len(free)), replace=False)
        elif name == "uncertainty":
            pick = free[uncertainty_order(p[free], want)]
        elif name == "positive":
            pick = free[positive_order(p[free], want)]
        else:
            centers = vectors[labeled] if labeled is not None and len(labeled) else None
            pick = k_center_greedy(vectors, want, centers=centers, candidates=free, sample=diversity_sample, rng=rng)
        taken[pick] = True
        out[name] = np.asarray(pick, dtype=np.int64)
    return out
