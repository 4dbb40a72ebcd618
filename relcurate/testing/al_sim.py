"""Active-learning test helpers (no tests here): a synthetic pool with a known relation,
simulated annotators, stored vectors without image files, and the label-budget simulation that
bench/al_curve.py and tests/test_al_curve.py share.

The pool: Gaussian vectors in `dim` dimensions; an image is relational (Yes) when a fixed
linear score plus a little noise clears the threshold that makes `positive_rate` of the pool
positive. Annotators answer the truth, flipped with probability `error_rate`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from relcurate.curation.labeling.al_select import select_batch
from relcurate.training.fast_head import binary_metrics, fit_head
from relcurate.models.linear_head import LinearHead


def synthetic_vectors(n: int, *, dim: int = 24, positive_rate: float = 0.1, seed: int = 0,
                      noise: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """(float32 vectors, bool truth). The relation is one fixed direction (same for every seed,
    so pool and held-out sets drawn with different seeds share it)."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(12345).normal(size=dim)
    w /= np.linalg.norm(w)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    s = x @ w + noise * rng.normal(size=n)
    from statistics import NormalDist

    threshold = NormalDist(0, float(np.sqrt(1 + noise**2))).inv_cdf(1 - positive_rate)
    return x, s > threshold


def annotate(truth: np.ndarray, idx: np.ndarray, error_rate: float, rng: np.random.Generator) -> np.ndarray:
    """A simulated annotator's answers for `idx`: the truth, flipped with probability error_rate."""
    flip = rng.random(len(idx)) < error_rate
    return np.asarray(truth[idx], dtype=bool) ^ flip


@dataclass
class Curve:
    strategy: str
    seed: int
    labels: list[int] = field(default_factory=list)
    f1: list[float] = field(default_factory=list)

    def labels_to_reach(self, target: float) -> int | None:
        for n, f in zip(self.labels, self.f1):
            if f >= target:
                return n
        return None


def full_data_f1(x: np.ndarray, answers: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, C: float = 1.0) -> float:
    coef, b = fit_head(x, answers.astype(np.int64), C=C)
    return binary_metrics(y_test, LinearHead(coef, b).predict_vectors(x_test))["f1"]


def simulate(x: np.ndarray, truth: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *, strategy: str,
             seed: int, batch: int = 25, initial: int = 40, budget: int | None = None, error_rate: float = 0.05,
             target: float | None = None, mix: dict | None = None, C: float = 1.0) -> Curve:
    """Label in batches chosen by `strategy` (random, uncertainty, positive, diversity, mix) with
    the fast head refit after each batch; held-out F1 after each. Stops at `budget` labels or
    once `target` F1 is reached."""
    rng = np.random.default_rng(seed)
    n = len(x)
    budget = min(budget or n, n)
    answers = np.zeros(n, dtype=bool)
    labeled = np.zeros(n, dtype=bool)
    first = rng.choice(n, size=min(initial, n), replace=False)
    answers[first] = annotate(truth, first, error_rate, rng)
    labeled[first] = True
    curve = Curve(strategy, seed)
    while True:
        idx = np.flatnonzero(labeled)
        y = answers[idx]
        p = None
        if y.any() and not y.all():
            coef, b = fit_head(x[idx], y.astype(np.int64), C=C)
            head = LinearHead(coef, b)
            f1 = binary_metrics(y_test, head.predict_vectors(x_test))["f1"]
            p = head.predict_vectors(x)
        else:
            f1 = 0.0
        curve.labels.append(int(len(idx)))
        curve.f1.append(float(f1))
        if len(idx) >= budget or (target is not None and f1 >= target):
            return curve
        take = min(batch, budget - len(idx))
        chosen = select_batch(p, x, np.flatnonzero(~labeled), take, strategy=strategy, mix=mix, labeled=idx, rng=rng,
                              diversity_sample=2048)
        pick = np.concatenate(list(chosen.values())) if chosen else np.zeros(0, dtype=np.int64)
        answers[pick] = annotate(truth, pick, error_rate, rng)
        labeled[pick] = True


class ArrayEmbedder:
    """An Embedder over precomputed vectors: the "image" it is given is the row index (see
    `store_vectors`), so tests and benches get stored vectors without image files."""

    name = "array"

    def __init__(self, vectors: np.ndarray):
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.dim = int(self.vectors.shape[1])

    def embed(self, images) -> np.ndarray:
        return self.vectors[np.asarray([int(i) for i in images], dtype=np.int64)]


def store_vectors(ws, mv, image_ids: np.ndarray, vectors: np.ndarray, *, chunk_size: int = 4096):
    """Write `vectors` as the finished embedding run of model version `mv` (shards on disk,
    config updated), exactly where `load_vectors` looks."""
    from relcurate.models.pool import score_pool
    from relcurate.models.registry import update_model_version
    from relcurate.models.workspace_scoring import vectors_dir

    out = vectors_dir(ws, mv)
    items = [(str(int(i)), str(r)) for r, i in enumerate(np.asarray(image_ids).tolist())]
    score_pool(items, ArrayEmbedder(vectors), out, batch_size=1024, chunk_size=chunk_size, rank=0, world_size=1,
               load_image=lambda r: r)
    update_model_version(ws, mv.id, config={"vectors": str(out.relative_to(ws.root)), "dim": int(vectors.shape[1])})
    return out


@dataclass
class ProofRow:
    seed: int
    full_f1: float
    target: float
    mix_labels: int | None
    random_labels: int  # the pool size when random never got there (a conservative stand-in)
    mix_curve: Curve
    random_curve: Curve

    @property
    def ratio(self) -> float:
        return (self.mix_labels or 10 * self.random_labels) / self.random_labels


def proof_a(*, n: int = 1200, dim: int = 24, seeds: int = 5, batch: int = 40, error_rate: float = 0.02,
            C: float = 10.0, tolerance: float = 0.01, n_test: int = 2000, mix: dict | None = None) -> list[ProofRow]:
    """Labels the mixed strategy and random sampling need to reach the full-data held-out F1
    (minus `tolerance`: a single noisy-label fit is itself that far from its own mean), per seed.
    "Full data" is the whole pool labelled once by the same noisy annotators."""
    rows = []
    for seed in range(seeds):
        x, truth = synthetic_vectors(n, dim=dim, seed=seed)
        x_test, y_test = synthetic_vectors(n_test, dim=dim, seed=10_000 + seed)
        full = full_data_f1(x, annotate(truth, np.arange(n), error_rate, np.random.default_rng(seed)), x_test, y_test, C=C)
        target = full - tolerance
        kw = dict(seed=seed, batch=batch, target=target, error_rate=error_rate, C=C)
        cm = simulate(x, truth, x_test, y_test, strategy="mix", mix=mix, **kw)
        cr = simulate(x, truth, x_test, y_test, strategy="random", **kw)
        rows.append(ProofRow(seed, full, target, cm.labels_to_reach(target), cr.labels_to_reach(target) or n, cm, cr))
    return rows
