"""The paper's retrieval study, rerunnable on a workspace's own data and models.

Database = the held-out split (images with an accepted caption that `exports/splits.py` puts in
`held_out`, the same assignment the relsim export makes with the same weights and seed) plus
distractors (every other usable image, optionally a seeded sample: the paper adds 14k random
LAION images). Queries: a seeded sample of the held-out split. Every method ranks the whole
database by cosine similarity; the query itself is excluded **by image id** (the reference
drops the first hit by position, which is wrong whenever a duplicate scores as high).

Automatic metrics where ground truth exists, each with a bootstrap interval over queries:
- `group_recall@k`: a top-k hit shares a live seed group with the query;
- `caption_recall@k`: a top-k hit has the same accepted anonymous caption;
- `caption_sim@1`: MiniLM cosine of the query's and the top hit's accepted captions, over the
  queries whose top hit has one (its coverage is reported beside it).

Results: `rankings.jsonl` (one line per method and query: ranked ids, scores, model version)
and `summary.json` in the run folder, metrics in the `EvalRun` row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from relcurate.evaluation.bootstrap import bootstrap_mean
from relcurate.evaluation.methods import method_vectors, resolve_methods
from relcurate.evaluation.runs import RESULT_FORMAT, SUMMARY_FILE, finish_run, run_dir, start_run, write_json
from relcurate.exports.relsim_jsonl import relsim_rows
from relcurate.exports.snapshot import load_snapshot, snapshot_connection
from relcurate.exports.splits import RELSIM_SPLITS, check_weights, split_snapshot_images
from relcurate.models.index import VectorIndex
from relcurate.workspace import Workspace

RANKINGS_FILE = "rankings.jsonl"
StageProgress = Callable[[str, int, int], None]


@dataclass
class RetrievalConfig:
    methods: list[str] | None = None  # None: every registered embedder
    n_queries: int = 1000
    k: int = 10
    seed: int = 0
    split_weights: Mapping[str, float] = field(default_factory=lambda: dict(RELSIM_SPLITS))
    split_seed: int = 0  # the export's split seed: the same images are held out
    held_out: str = "test"
    max_distractors: int | None = None  # None: every other usable image
    distractor_kind: str | None = None  # only images with a source of this kind (e.g. "parquet": a LAION pool)
    resamples: int = 1000
    caption_similarity: bool = True
    batch_size: int = 16

    def as_params(self) -> dict:
        return {"methods": self.methods, "n_queries": self.n_queries, "k": self.k, "seed": self.seed,
                "split_weights": dict(self.split_weights), "split_seed": self.split_seed,
                "held_out": self.held_out, "max_distractors": self.max_distractors,
                "distractor_kind": self.distractor_kind,
                "resamples": self.resamples, "caption_similarity": self.caption_similarity}


@dataclass
class Database:
    held_out: list[int]
    distractors: list[int]
    groups_of: dict[int, frozenset[int]]  # image -> live groups holding it
    captions_of: dict[int, frozenset[str]]  # image -> accepted caption texts

    @property
    def ids(self) -> list[int]:
        return self.held_out + self.distractors


def build_database(ws: Workspace, cfg: RetrievalConfig) -> Database:
    weights = check_weights(cfg.split_weights)
    if cfg.held_out not in weights:
        raise ValueError(f"held-out split {cfg.held_out!r} is not among the split weights {sorted(weights)}")
    with snapshot_connection(ws.engine) as conn:
        snap = load_snapshot(conn)
    rows = relsim_rows(snap, caption_source="both")
    captions: dict[int, set[str]] = {}
    for r in rows:
        captions.setdefault(r.image_id, set()).add(" ".join(r.caption.split()))
    assignment = split_snapshot_images(snap, captions, weights=weights, seed=cfg.split_seed)
    held_out = sorted(i for i, s in assignment.split_of.items() if s == cfg.held_out)
    others = sorted(snap.usable_ids() - set(captions))
    if cfg.distractor_kind:
        others = sorted(set(others) & _images_with_source_kind(ws, cfg.distractor_kind))
    if cfg.max_distractors is not None and len(others) > cfg.max_distractors:
        rng = np.random.default_rng([cfg.seed, 1])
        others = sorted(rng.choice(others, cfg.max_distractors, replace=False).tolist())
    groups: dict[int, set[int]] = {}
    for gid in snap.live_groups():
        for iid in snap.members.get(gid, ()):
            groups.setdefault(iid, set()).add(gid)
    return Database(held_out, [int(i) for i in others], {i: frozenset(g) for i, g in groups.items()},
                    {i: frozenset(c) for i, c in captions.items()})


def _images_with_source_kind(ws: Workspace, kind: str) -> set[int]:
    from sqlmodel import select

    from relcurate.db.engine import read_scope
    from relcurate.db.models import ImageSource

    with read_scope(ws.engine) as s:
        return {int(i) for i in s.exec(select(ImageSource.image_id).where(ImageSource.kind == kind).distinct())}


def choose_queries(db: Database, n: int, seed: int) -> list[int]:
    """A seeded sample of the held-out split (the reference draws unseeded)."""
    if not db.held_out:
        raise ValueError("the held-out split is empty: no image with an accepted caption falls in it")
    n = min(n, len(db.held_out))
    rng = np.random.default_rng([seed, 0])
    return sorted(rng.choice(db.held_out, n, replace=False).tolist())


def rank(vectors: np.ndarray, ids: Sequence[int], queries: Sequence[int], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k database ids and scores per query, the query's own id removed (n_queries, k)."""
    index = VectorIndex.build(vectors, ids, kind="exact")
    row_of = {int(i): r for r, i in enumerate(ids)}
    q = vectors[[row_of[int(i)] for i in queries]]
    scores, found = index.search(q, k + 1)
    out_i = np.full((len(queries), k), -1, np.int64)
    out_s = np.full((len(queries), k), -np.inf, np.float32)
    for r, qid in enumerate(queries):
        keep = (found[r] != int(qid)) & (found[r] != -1)
        sel_i, sel_s = found[r][keep][:k], scores[r][keep][:k]
        out_i[r, :len(sel_i)], out_s[r, :len(sel_s)] = sel_i, sel_s
    return out_i, out_s


def ground_truth_metrics(db: Database, queries: Sequence[int], ranked: np.ndarray, k: int,
                         caption_vectors: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Per-query values (NaN where not measurable) of each automatic metric."""
    n = len(queries)
    group_hit = np.full(n, np.nan)
    caption_hit = np.full(n, np.nan)
    caption_sim = np.full(n, np.nan)
    for r, qid in enumerate(queries):
        hits = [int(i) for i in ranked[r][:k] if i != -1]
        qg, qc = db.groups_of.get(int(qid), frozenset()), db.captions_of.get(int(qid), frozenset())
        if qg:
            group_hit[r] = float(any(db.groups_of.get(h, frozenset()) & qg for h in hits))
        if qc:
            caption_hit[r] = float(any(db.captions_of.get(h, frozenset()) & qc for h in hits))
        if caption_vectors is not None and hits and qc and db.captions_of.get(hits[0]):
            a = np.stack([caption_vectors[t] for t in sorted(qc)])
            b = np.stack([caption_vectors[t] for t in sorted(db.captions_of[hits[0]])])
            caption_sim[r] = float((a @ b.T).max())  # best-matching pair of their captions
    return {f"group_recall@{k}": group_hit, f"caption_recall@{k}": caption_hit, "caption_sim@1": caption_sim}


def _caption_vectors(db: Database, text_encoder) -> dict[str, np.ndarray]:
    if text_encoder is None:
        from relcurate.models.text_encoder import MiniLMTextEncoder

        text_encoder = MiniLMTextEncoder()
    texts = sorted({t for caps in db.captions_of.values() for t in caps})
    return dict(zip(texts, text_encoder.encode(texts))) if texts else {}


def run_retrieval(ws: Workspace, cfg: RetrievalConfig, *, name: str | None = None, created_by: int | None = None,
                  text_encoder=None, progress: StageProgress | None = None) -> int:
    """Run the study; returns the EvalRun id. Embedding (the long part) resumes where it stopped."""
    methods = resolve_methods(ws, cfg.methods)
    db = build_database(ws, cfg)
    queries = choose_queries(db, cfg.n_queries, cfg.seed)
    run = start_run(ws, "retrieval", name or f"retrieval: {', '.join(m.label for m, _ in methods)}",
                    cfg.as_params(), created_by=created_by)
    out = run_dir(ws, "retrieval", run.id)
    try:
        cap_vecs = _caption_vectors(db, text_encoder) if cfg.caption_similarity else None
        summary_methods: dict[str, dict] = {}
        lines: list[str] = []
        ids = db.ids
        for m, mv in methods:
            def embed_progress(done: int, total: int, label=m.label) -> None:
                if progress:
                    progress(f"embed {label}", done, total)

            vecs = method_vectors(ws, mv, ids, batch_size=cfg.batch_size, progress=embed_progress)
            ranked, scores = rank(vecs, ids, queries, cfg.k)
            per_query = ground_truth_metrics(db, queries, ranked, cfg.k, cap_vecs)
            metrics = {key: bootstrap_mean(v, resamples=cfg.resamples, seed=cfg.seed).as_dict()
                       for key, v in per_query.items()}
            metrics["caption_sim@1"]["coverage"] = float(np.mean(~np.isnan(per_query["caption_sim@1"])))
            summary_methods[m.label] = {"model_version": m.label, "model_version_id": m.model_version_id,
                                        "kind": m.kind, "base_model": m.base_model, "metrics": metrics,
                                        "per_query": {k: [None if np.isnan(x) else float(x) for x in v]
                                                      for k, v in per_query.items()}}
            for r, qid in enumerate(queries):
                keep = ranked[r] != -1
                lines.append(json.dumps({"method": m.label, "model_version_id": m.model_version_id,
                                         "query": int(qid), "ranked": ranked[r][keep].tolist(),
                                         "scores": [round(float(x), 6) for x in scores[r][keep]]}))
            if progress:
                progress("rank", len(summary_methods), len(methods))
        (out / RANKINGS_FILE).write_text("".join(line + "\n" for line in lines))
        summary = {"format": RESULT_FORMAT, "kind": "retrieval", "run_id": run.id, "params": cfg.as_params(),
                   "database": {"held_out": len(db.held_out), "distractors": len(db.distractors)},
                   "queries": [int(q) for q in queries], "methods": summary_methods}
        write_json(out / SUMMARY_FILE, summary)
        finish_run(ws, run.id, metrics={label: {k: v["estimate"] for k, v in s["metrics"].items()}
                                        for label, s in summary_methods.items()})
    except Exception as exc:
        finish_run(ws, run.id, metrics={"error": str(exc)[:500]}, status="failed")
        raise
    return run.id


def read_rankings(ws: Workspace, run_id: int) -> dict[str, dict[int, list[int]]]:
    """method -> query -> ranked ids, from a finished retrieval run's rankings file."""
    path = run_dir(ws, "retrieval", run_id) / RANKINGS_FILE
    if not path.exists():
        raise FileNotFoundError(f"retrieval run {run_id} has no {RANKINGS_FILE} (not finished?)")
    out: dict[str, dict[int, list[int]]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.setdefault(str(row["method"]), {})[int(row["query"])] = [int(i) for i in row["ranked"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: bad ranking line ({exc})") from None
    return out
