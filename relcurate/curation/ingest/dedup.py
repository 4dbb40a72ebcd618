"""Near-duplicates by perceptual hash: recorded for review, never deleted.

Uses faiss' binary index (Hamming distance over the 64-bit pHash), exhaustive but SIMD-fast:
a batch of new images against every stored image.
"""
from __future__ import annotations

import numpy as np
from sqlalchemy import insert, or_, update
from sqlmodel import select

from relcurate.db.write_retry import run_write

# Flat images (solid colours, blank scans) all share one pHash; without a cap, n of them would
# record n^2 pairs. Keep each image's closest few for review.
MAX_NEIGHBOURS = 20
from relcurate.db.models import Image, ImageStatus, NearDuplicate
from relcurate.workspace import Workspace


def _codes(phashes: list[str]) -> np.ndarray:
    return np.frombuffer(b"".join(bytes.fromhex(h) for h in phashes), dtype=np.uint8).reshape(-1, 8)


def find_near_duplicates(ids: list[int], phashes: list[str], query_ids: set[int], max_distance: int) -> list[tuple[int, int, int]]:
    """Pairs (a < b, distance) among `ids` where at least one side is in `query_ids`."""
    import faiss

    if not ids or not query_ids:
        return []
    index = faiss.IndexBinaryFlat(64)
    index.add(_codes(phashes))
    q_pos = [i for i, x in enumerate(ids) if x in query_ids]
    lims, dist, labels = index.range_search(_codes([phashes[i] for i in q_pos]), max_distance + 1)
    pairs: dict[tuple[int, int], int] = {}
    for qi, pos in enumerate(q_pos):
        lo, hi = int(lims[qi]), int(lims[qi + 1])
        order = np.argsort(dist[lo:hi], kind="stable")[: MAX_NEIGHBOURS + 1]
        for j in order + lo:
            other = int(labels[j])
            if other == pos:
                continue
            a, b = sorted((ids[pos], ids[other]))
            pairs[(a, b)] = int(dist[j])
    return [(a, b, d) for (a, b), d in sorted(pairs.items())]


def record_near_duplicates(ws: Workspace, new_ids: list[int] | None = None) -> int:
    """Record the near-duplicate pairs of every usable image not searched yet (`dedup_done`),
    then mark them searched, in one transaction. Works over "not yet done", not over "added by
    this run", so a run killed before this step is caught up by the next one; `new_ids` is
    accepted for old callers and ignored. Retried whole when a concurrent run got there first."""
    return run_write(ws.engine, lambda s: _record_pending_pairs(s, ws.ingest.near_duplicate_distance))


def _record_pending_pairs(s, max_distance: int) -> int:
    usable = (Image.status == ImageStatus.ok, Image.phash.is_not(None))
    todo = set(s.exec(select(Image.id).where(Image.dedup_done == False, *usable)).all())  # noqa: E712
    if not todo:
        return 0
    rows = s.exec(select(Image.id, Image.phash).where(*usable)).all()
    ids, hashes = [r[0] for r in rows], [r[1] for r in rows]
    pairs = find_near_duplicates(ids, hashes, todo, max_distance)
    involved = sorted({x for a, b, _ in pairs for x in (a, b)})
    existing: set[tuple[int, int]] = set()
    for i in range(0, len(involved), 500):
        chunk = involved[i : i + 500]
        existing.update(s.exec(select(NearDuplicate.image_a, NearDuplicate.image_b).where(
            or_(NearDuplicate.image_a.in_(chunk), NearDuplicate.image_b.in_(chunk)))).all())
    new_rows = [{"image_a": a, "image_b": b, "distance": d} for a, b, d in pairs if (a, b) not in existing]
    if new_rows:
        s.execute(insert(NearDuplicate), new_rows)
    todo_list = sorted(todo)
    for i in range(0, len(todo_list), 500):
        s.execute(update(Image).where(Image.id.in_(todo_list[i : i + 500])).values(dedup_done=True))
    return len(new_rows)

