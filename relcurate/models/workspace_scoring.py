"""Run a model over every usable image of a workspace: embeddings (stored as shard files under
`vectors/<name>-v<version>/`, referenced from the model version's config) or filter
probabilities (stored as Prediction rows). Streamed, batched, resumable, and sharded with
accelerate: under `accelerate launch` each process scores its own slice.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from sqlalchemy import delete, insert
from sqlmodel import select

from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import Image, ImageStatus, ModelVersion, Prediction
from relcurate.models.index import VectorIndex
from relcurate.models.pool import merge_shards, score_pool
from relcurate.models.registry import update_model_version
from relcurate.workspace import Workspace

Progress = Callable[[int, int], None]


def usable_images(ws: Workspace) -> list[tuple[str, str]]:
    """(image id, original path) for every ok image, in id order (stable across runs)."""
    with read_scope(ws.engine) as s:
        rows = s.exec(select(Image.id, Image.sha256, Image.ext).where(Image.status == ImageStatus.ok).order_by(Image.id)).all()
    return [(str(i), str(ws.image_path(sha, ext))) for i, sha, ext in rows]


def vectors_dir(ws: Workspace, mv: ModelVersion) -> Path:
    return ws.vectors_dir / f"{mv.name}-v{mv.version}"


def embed_workspace(ws: Workspace, embedder, mv: ModelVersion, *, batch_size: int = 16, chunk_size: int = 1024,
                    rank: int | None = None, world_size: int | None = None,
                    progress: Progress | None = None) -> Path:
    """Embed every ok image; re-running skips finished chunks. Returns the vectors folder."""
    out = vectors_dir(ws, mv)
    score_pool(usable_images(ws), embedder, out, batch_size=batch_size, chunk_size=chunk_size, rank=rank,
               world_size=world_size, progress=progress, on_error="nan")
    update_model_version(ws, mv.id, config={"vectors": str(out.relative_to(ws.root)), "dim": int(embedder.dim)})
    return out


def load_vectors(ws: Workspace, mv: ModelVersion) -> tuple[np.ndarray, np.ndarray]:
    """(image ids as int64, float32 vectors) of a finished embedding run; failed images dropped."""
    ids, vecs = merge_shards(vectors_dir(ws, mv))
    ids = ids.astype(np.int64)
    keep = ~np.isnan(vecs).any(axis=1) if len(vecs) else np.zeros(0, dtype=bool)
    return ids[keep], vecs[keep].astype(np.float32)


def build_workspace_index(ws: Workspace, mv: ModelVersion, kind: str = "auto") -> VectorIndex:
    ids, vecs = load_vectors(ws, mv)
    index = VectorIndex.build(vecs, ids, kind=kind, model_version=f"{mv.name}:{mv.version}")
    index.save(vectors_dir(ws, mv))  # beside the shards: group_search lists vectors/*/meta.json as spaces
    return index


def load_workspace_index(ws: Workspace, mv: ModelVersion) -> VectorIndex:
    return VectorIndex.load(vectors_dir(ws, mv), expected_model_version=f"{mv.name}:{mv.version}")


def score_filter_workspace(ws: Workspace, filter_model, mv: ModelVersion, *, batch_size: int = 16,
                           chunk_size: int = 1024, rank: int | None = None, world_size: int | None = None,
                           progress: Progress | None = None) -> int:
    """P(Yes) for every ok image, stored as Prediction rows of this model version. Shards are
    written first (resumable); rank 0 — or a single process — records them when all are done."""
    out = ws.vectors_dir / f"{mv.name}-v{mv.version}-filter"
    score_pool(usable_images(ws), filter_model, out, batch_size=batch_size, chunk_size=chunk_size, rank=rank,
               world_size=world_size, progress=progress, on_error="nan")
    return record_filter_predictions(ws, mv, out)


def record_filter_predictions(ws: Workspace, mv: ModelVersion, shards_dir: Path) -> int:
    try:
        ids, scores = merge_shards(shards_dir)
    except ValueError:
        return 0  # other ranks still running; the last one to finish (or a re-run) records
    rows = [{"model_version_id": mv.id, "image_id": int(i), "score": float(p)}
            for i, p in zip(ids, scores) if not np.isnan(p)]
    with session_scope(ws.engine) as s:
        s.exec(delete(Prediction).where(Prediction.model_version_id == mv.id))  # idempotent re-record
        for k in range(0, len(rows), 5000):
            s.execute(insert(Prediction), rows[k : k + 5000])
    return len(rows)
