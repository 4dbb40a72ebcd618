"""The filter loop's fast head: logistic regression on cached image embeddings, trained on the
consensus filter labels, registered as a model version (kind filter, backend "fast-head"), its
P(Yes) for every pooled image written as Prediction rows, and the open queue re-ranked.

One refresh, all batched: consensus labels -> vectors by id (np.searchsorted, no per-row
lookups) -> fit (a few thousand labels: milliseconds) -> score the whole pool in chunks ->
strategy heads (argpartition, k-center on a sample) -> the heads in short chunked transactions
under a new generation, then served in one tiny one (queue_heads) ->
Prediction rows in chunked bulk inserts, each its own transaction so labeling never waits long.
The numeric part runs with one BLAS thread in a thread of lowered priority (background_compute):
on 2 cores the annotators' next-task calls then win the core they share with a refresh.

Held-out metrics for the learning curves come from out-of-fold predictions on the random audit
sample (the labels the random share of the mix handed out): those images were picked uniformly,
so their metrics estimate the pool's, unlike metrics on actively chosen labels. The same
out-of-fold scores feed the positives-remaining estimate.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from sqlalchemy import delete, func, select as sa_select
from sqlmodel import select

from relcurate.background_compute import REFRESH_NICE, one_blas_thread, run_niced
from relcurate.curation.labeling.agreement import consensus
from relcurate.curation.labeling.al_select import k_center_greedy, positive_order, uncertainty_order
from relcurate.curation.labeling.leases import DONE, FILTER
from relcurate.curation.labeling.positives_remaining import estimate_remaining
from relcurate.curation.labeling.queue_heads import write_heads
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import ModelKind, ModelVersion, Prediction, TaskAssignment
from relcurate.db.write_retry import pause_for_duty, write_duty
from relcurate.models.backends import backend_for
from relcurate.models.linear_head import LinearHead
from relcurate.models.registry import get_model_version, get_model_version_by_id, register_model
from relcurate.models.workspace_scoring import load_vectors
from relcurate.workspace import Workspace

FAST_HEAD_NAME = "fast-head"
PREDICTION_DUTY = 0.05  # SQLite: share of time prediction writes and prunes may hold the writer lock
Progress = Callable[[float, str], None]


class FastHeadError(ValueError):
    pass


@dataclass(frozen=True)
class HeadSettings:
    head_size: int = 2000  # images stored per model-driven strategy
    diversity_k: int = 256
    diversity_sample: int = 2048
    uncertainty: str = "margin"
    C: float = 1.0
    folds: int = 5
    keep_predictions: int = 2  # fast-head versions whose Prediction rows are kept
    duty: float | None = None  # share of time prediction writes may hold SQLite's writer lock
    nice: int = REFRESH_NICE  # priority drop of the refreshing thread (0: none); see background_compute
    seed: int = 0


@dataclass
class RefreshResult:
    model_version_id: int
    version: int
    labels: int
    positives: int
    heads: dict[str, int]
    metrics: dict
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"model_version_id": self.model_version_id, "version": self.version, "labels": self.labels,
                "positives": self.positives, "heads": self.heads, "metrics": self.metrics,
                "timings": {k: round(v, 4) for k, v in self.timings.items()}}


# -- pure parts (arrays in, arrays out) ---------------------------------------------------------

def fit_head(x: np.ndarray, y: np.ndarray, *, C: float = 1.0) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y, dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise FastHeadError(f"the fast head needs at least one Yes and one No consensus label "
                            f"(have {int(y.sum())} Yes, {int((1 - y).sum())} No)")
    # Newton steps cost n*d^2 each: right for narrow vectors, too dear for 384-d ones, where
    # L-BFGS (a few matrix-vector products per step) wins.
    solver = "newton-cholesky" if x.shape[1] <= 64 else "lbfgs"
    clf = LogisticRegression(C=C, max_iter=300, solver=solver)
    clf.fit(np.asarray(x, dtype=np.float32), y)
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


def out_of_fold(x: np.ndarray, y: np.ndarray, *, folds: int = 5, C: float = 1.0, seed: int = 0) -> np.ndarray | None:
    """Each label's P(Yes) from a head trained without it; None when a class is too small."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=np.int64)
    folds = min(folds, int(y.sum()), int((1 - y).sum()))
    if folds < 2:
        return None
    oof = np.empty(len(y), dtype=np.float32)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        coef, b = fit_head(x[train], y[train], C=C)
        oof[test] = LinearHead(coef, b).predict_vectors(x[test])
    return oof


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict:
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(p) >= threshold
    tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"f1": f1, "precision": prec, "recall": rec, "n": int(len(y)), "positives": int(y.sum())}


def rank_heads(p: np.ndarray, vectors: np.ndarray, unlabeled: np.ndarray, labeled: np.ndarray,
               settings: HeadSettings) -> dict[str, np.ndarray]:
    """Indices (into p / vectors) of each strategy's head, taken from `unlabeled` indices. The
    heads are disjoint (each skips what an earlier one holds), so the mix's quotas are exact."""
    rng = np.random.default_rng(settings.seed)
    taken = np.zeros(len(p), dtype=bool)
    out: dict[str, np.ndarray] = {}
    free = unlabeled
    out["uncertainty"] = free[uncertainty_order(p[free], settings.head_size, settings.uncertainty)]
    taken[out["uncertainty"]] = True
    free = unlabeled[~taken[unlabeled]]
    out["positive"] = free[positive_order(p[free], settings.head_size)]
    taken[out["positive"]] = True
    free = unlabeled[~taken[unlabeled]]
    if len(labeled) > settings.diversity_sample:  # distance to a sample of the labelled set
        labeled = rng.choice(labeled, size=settings.diversity_sample, replace=False)
    centers = np.asarray(vectors[np.sort(labeled)], dtype=np.float32) if len(labeled) else None
    out["diversity"] = k_center_greedy(vectors, settings.diversity_k, centers=centers, candidates=free,
                                       sample=settings.diversity_sample, rng=rng)
    return out


# -- the workspace refresh ---------------------------------------------------------------------

_vector_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def cached_vectors(ws: Workspace, mv: ModelVersion) -> tuple[np.ndarray, np.ndarray]:
    """(sorted ids, vectors) of an embedding version, kept in memory by the long-running worker
    (reloaded when the version's vectors folder changes)."""
    key = (ws.db_url, mv.id, str(mv.config.get("vectors")))
    hit = _vector_cache.get(key)
    if hit is None:
        try:
            ids, vecs = load_vectors(ws, mv)
        except (FileNotFoundError, ValueError) as exc:
            raise FastHeadError(f"embedding {mv.name}:{mv.version} has no finished vectors "
                                f"(run `relcurate models embed`): {exc}") from None
        if len(ids) > 1 and not bool(np.all(ids[1:] >= ids[:-1])):
            order = np.argsort(ids, kind="stable")
            ids, vecs = ids[order], vecs[order]
        hit = (ids, np.ascontiguousarray(vecs, dtype=np.float32))  # no copy when already so
        _vector_cache.clear()  # one space at a time: a million 384-d vectors is 1.5 GB
        _vector_cache[key] = hit
    return hit


def _labels(ws: Workspace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(decided image ids, 0/1 answers, every labelled id incl. ties) from the consensus."""
    cons = consensus(ws.engine)
    decided = [(i, c.answer == "yes") for i, c in cons.items() if c.answer in ("yes", "no")]
    ids = np.array([i for i, _ in decided], dtype=np.int64)
    y = np.array([a for _, a in decided], dtype=np.int64)
    return ids, y, np.array(sorted(cons), dtype=np.int64)


def audit_image_ids(ws: Workspace, kind: str = FILTER) -> np.ndarray:
    """Images handed out by the random order (the uniform audit sample), gold excluded."""
    with read_scope(ws.engine) as s:
        rows = s.exec(select(TaskAssignment.image_id).where(
            TaskAssignment.kind == kind, TaskAssignment.strategy == "random", TaskAssignment.status == DONE,
            TaskAssignment.is_gold == False).distinct()).all()  # noqa: E712
    return np.array(sorted(rows), dtype=np.int64)


def _positions(all_ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of `wanted` ids in sorted `all_ids`, and the mask of those found."""
    pos = np.searchsorted(all_ids, wanted)
    pos = np.clip(pos, 0, max(0, len(all_ids) - 1))
    found = (all_ids[pos] == wanted) if len(all_ids) else np.zeros(len(wanted), dtype=bool)
    return pos, found


def resolve_embedding(ws: Workspace, embedding: str | int | ModelVersion) -> ModelVersion:
    if isinstance(embedding, ModelVersion):
        return embedding
    if isinstance(embedding, int) or (isinstance(embedding, str) and embedding.isdigit()):
        return get_model_version_by_id(ws, int(embedding))
    return get_model_version(ws, embedding)


def refresh_fast_head(ws: Workspace, embedding: str | int | ModelVersion, **kw) -> RefreshResult:
    """Train a new fast-head version on the current consensus labels and re-rank the queue.

    Runs with one BLAS thread, in a thread of lowered priority (`settings.nice`), so that the
    annotators' next-task calls win a shared core (`background_compute`)."""
    settings = kw.get("settings") or HeadSettings()

    def work() -> RefreshResult:
        with one_blas_thread():
            return _refresh_fast_head(ws, embedding, **kw)

    return run_niced(work, settings.nice)


def _refresh_fast_head(ws: Workspace, embedding: str | int | ModelVersion, *, name: str = FAST_HEAD_NAME,
                      settings: HeadSettings = HeadSettings(), vectors: tuple[np.ndarray, np.ndarray] | None = None,
                      labels_seen: int | None = None, progress: Progress | None = None,
                      kind: str = FILTER) -> RefreshResult:
    """`vectors` (sorted ids, vectors) overrides the embedding's stored vectors (benchmarks)."""
    say = progress or (lambda _f, _n: None)
    t = {"start": time.perf_counter()}
    emb = resolve_embedding(ws, embedding)
    ids, vecs = vectors if vectors is not None else cached_vectors(ws, emb)
    t["vectors"] = time.perf_counter()
    lab_ids, y, all_labelled = _labels(ws)
    pos, found = _positions(ids, lab_ids)
    if not found.all():
        missing = lab_ids[~found][:5].tolist()
        lab_ids, y, pos = lab_ids[found], y[found], pos[found]
        say(0.05, f"{int((~found).sum())} labelled images have no vector (e.g. {missing}); left out")
    x = np.asarray(vecs[pos], dtype=np.float32)
    t["labels"] = time.perf_counter()
    say(0.1, f"training on {len(y)} labels ({int(y.sum())} Yes)")
    coef, intercept = fit_head(x, y, C=settings.C)
    head = LinearHead(coef, intercept)
    # Each fold starts cold: a warm start from the full fit (which saw the fold's held-out labels)
    # saved ~0.2 s but, the solver stopping at its tolerance, kept up to 0.012 of it in P(Yes):
    # the held-out metrics and the positives-remaining calibration would lean optimistic.
    oof = out_of_fold(x, y, folds=settings.folds, C=settings.C, seed=settings.seed)
    t["fit"] = time.perf_counter()

    audit = audit_image_ids(ws, kind)
    in_audit = np.isin(lab_ids, audit)
    metrics: dict = {"labels": int(len(y)), "positives": int(y.sum())}
    if oof is not None:
        metrics["cv"] = binary_metrics(y, oof)
        if in_audit.sum() >= 1:
            metrics["heldout"] = binary_metrics(y[in_audit], oof[in_audit]) | {"on": "random audit sample"}

    say(0.3, f"scoring {len(ids)} images")
    p = head.predict_vectors(vecs)
    t["score"] = time.perf_counter()
    lpos, lfound = _positions(ids, all_labelled)
    labelled_mask = np.zeros(len(ids), dtype=bool)
    labelled_mask[lpos[lfound]] = True
    unlabeled = np.flatnonzero(~labelled_mask)
    if oof is not None:
        rem = estimate_remaining(p[unlabeled], oof[in_audit], y[in_audit])
        metrics["positives_remaining"] = rem.as_dict()
    heads = rank_heads(p, vecs, unlabeled, np.flatnonzero(labelled_mask), settings)
    t["rank"] = time.perf_counter()

    mv = register_model(
        ws, kind=ModelKind.filter, name=name, base_model=emb.base_model, adapter_path=emb.adapter_path,
        config={"backend": "fast-head", "embedding_version_id": emb.id, "embedding": f"{emb.name}:{emb.version}",
                "init": {"coef": [float(c) for c in coef], "intercept": intercept,
                         "embedder_backend": backend_for(emb.kind, emb.base_model, emb.config),
                         "embedder_init": dict(emb.config.get("init") or {})}},
        metrics=metrics,
        trained_on={"labels": int(len(y)), "positives": int(y.sum()), "audit": int(in_audit.sum()),
                    "labels_seen": labels_seen, "embedding": f"{emb.name}:{emb.version}", "C": settings.C})
    t["registered"] = time.perf_counter()
    written = write_heads(ws.engine, {k: (ids[v], p[v]) for k, v in heads.items()}, model_version_id=mv.id, kind=kind)
    t["reranked"] = time.perf_counter()
    say(0.5, f"queue re-ranked by {name}:{mv.version}; writing {len(ids)} predictions")
    write_predictions(ws, mv.id, ids, p, duty=settings.duty, progress=lambda f: say(0.5 + 0.45 * f, "writing predictions"))
    t["predictions"] = time.perf_counter()
    prune_predictions(ws, name, keep=settings.keep_predictions, duty=settings.duty)
    t["pruned"] = time.perf_counter()
    timings = {}
    prev = t["start"]
    for k in ("vectors", "labels", "fit", "score", "rank", "registered", "reranked", "predictions", "pruned"):
        timings[k] = t[k] - prev
        prev = t[k]
    timings["to_reranked"] = t["reranked"] - t["start"]
    timings["total"] = t["pruned"] - t["start"]
    return RefreshResult(mv.id, mv.version, int(len(y)), int(y.sum()), written, metrics, timings)


def write_predictions(ws: Workspace, mv_id: int, ids: np.ndarray, scores: np.ndarray, *, chunk: int = 5_000,
                      duty: float | None = None, progress: Callable[[float], None] | None = None) -> int:
    """Prediction rows for one version, in chunked bulk inserts (COPY on PostgreSQL), each chunk
    its own transaction; re-running replaces the version's rows (idempotent).

    On SQLite every chunk holds the single writer lock, so the writer pauses between chunks to
    hold it at most `duty` of the time (default 5%): a next-task call then rarely waits, and the
    rows trickle in behind the already re-ranked queue. PostgreSQL needs no pause (row locks)."""
    duty = write_duty(ws.engine, duty, PREDICTION_DUTY)
    with session_scope(ws.engine) as s:
        s.execute(delete(Prediction).where(Prediction.model_version_id == mv_id))
    pg = ws.engine.dialect.name == "postgresql"
    from relcurate.db.models import utcnow

    now = utcnow()
    if not pg:  # the driver gets the stored text form of the timestamp (executemany of tuples below)
        ts = Prediction.__table__.c.created_at.type
        proc = ts.dialect_impl(ws.engine.dialect).bind_processor(ws.engine.dialect)
        stamp = proc(now) if proc else now
    n = len(ids)
    for k in range(0, n, chunk):
        t0 = time.perf_counter()
        part_ids = ids[k:k + chunk].tolist()
        part_sc = scores[k:k + chunk].astype(np.float64).tolist()
        with session_scope(ws.engine) as s:
            if pg:
                cur = s.connection().connection.driver_connection.cursor()
                with cur.copy("COPY prediction (model_version_id, image_id, score, created_at) FROM STDIN") as cp:
                    for i, sc in zip(part_ids, part_sc):
                        cp.write_row((mv_id, i, sc, now))
            else:  # through the driver, as write_heads: no per-row dicts for the ORM to process
                s.connection().exec_driver_sql(
                    "INSERT INTO prediction (model_version_id, image_id, score, created_at) VALUES (?, ?, ?, ?)",
                    [(mv_id, i, sc, stamp) for i, sc in zip(part_ids, part_sc)])
        if progress:
            progress(min(1.0, (k + chunk) / max(1, n)))
        if k + chunk < n:
            pause_for_duty(t0, duty)
    return n


def prune_predictions(ws: Workspace, name: str = FAST_HEAD_NAME, *, keep: int = 2, chunk: int = 5_000,
                      duty: float | None = None) -> int:
    """Delete the Prediction rows of all but the newest `keep` versions of `name` (the versions
    themselves stay: their metrics draw the learning curves)."""
    with read_scope(ws.engine) as s:
        old = s.exec(select(ModelVersion.id).where(ModelVersion.name == name)
                     .order_by(ModelVersion.version.desc()).offset(keep)).all()
        if not old:
            return 0
        with_rows = [mv for mv in old if s.exec(sa_select(Prediction.id).where(Prediction.model_version_id == mv).limit(1)).first()]
    duty = write_duty(ws.engine, duty, PREDICTION_DUTY)
    deleted = 0
    for mv in with_rows:
        while True:
            t0 = time.perf_counter()
            with session_scope(ws.engine) as s:
                sub = sa_select(Prediction.id).where(Prediction.model_version_id == mv).limit(chunk)
                n = s.execute(delete(Prediction).where(Prediction.id.in_(sub))).rowcount
            deleted += n
            if n < chunk:
                break
            pause_for_duty(t0, duty)
    return deleted


def latest_fast_head(ws: Workspace, name: str = FAST_HEAD_NAME) -> ModelVersion | None:
    with read_scope(ws.engine) as s:
        return s.exec(select(ModelVersion).where(ModelVersion.name == name)
                      .order_by(ModelVersion.version.desc())).first()


def learning_curve(ws: Workspace, kind: str = "filter") -> list[dict]:
    """One row per version of every filter model: labels used and its held-out metrics."""
    with read_scope(ws.engine) as s:
        rows = s.exec(select(ModelVersion).where(ModelVersion.kind == kind).order_by(ModelVersion.name,
                                                                                     ModelVersion.version)).all()
    out = []
    for mv in rows:
        m = mv.metrics or {}
        labels = m.get("labels", (mv.trained_on or {}).get("labels"))
        for split in ("heldout", "cv"):
            if isinstance(m.get(split), dict) and labels is not None:
                out.append({"model": mv.name, "version": mv.version, "labels": int(labels), "split": split,
                            "f1": m[split].get("f1"), "precision": m[split].get("precision"),
                            "recall": m[split].get("recall")})
    return out


def count_decided(ws: Workspace) -> int:
    """Images with at least one decisive label (the refresh trigger's counter: an index count)."""
    from relcurate.db.models import CurrentLabel

    with read_scope(ws.engine) as s:
        return int(s.exec(sa_select(func.count(func.distinct(CurrentLabel.image_id)))
                          .where(CurrentLabel.answer.in_(["yes", "no"]))).scalar())
