"""Near-duplicates by perceptual hash, confirmed by a second signal: recorded for review, never deleted.

Candidates come from faiss' binary index (Hamming distance over the 64-bit pHash), exhaustive
but SIMD-fast: a batch of new images against every stored image. Flat synthetic images defeat
pHash (the demo's green cross and red triangle sit at distance 0), so each candidate is
confirmed by the cosine of the two thumbnails' centred 32x32 colour pixels: on the demo, the
false pairs score <= 0.90 while a re-encoded, resized or brightened copy scores >= 0.98.
Both thresholds live in the workspace's [ingest] settings.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import insert, or_, update
from sqlmodel import select

from relcurate.db.models import Image, ImageStatus, NearDuplicate
from relcurate.db.write_retry import run_write
from relcurate.workspace import Workspace

# Flat images (solid colours, blank scans) all share one pHash; without a cap, n of them would
# record n^2 pairs. Keep each image's closest few for review.
MAX_NEIGHBOURS = 20
SIGNATURE_SIDE = 32  # small enough to ignore re-encoding noise, large enough to see the shapes


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


def pixel_signature(path: Path | None) -> np.ndarray | None:
    """Centred, unit-norm 32x32 RGB pixels of an image (its thumbnail), or None when unreadable.
    Centring makes the cosine ignore a uniform brightness shift."""
    if path is None:
        return None
    try:
        with PILImage.open(path) as im:
            a = np.asarray(im.convert("RGB").resize((SIGNATURE_SIDE, SIGNATURE_SIDE), PILImage.BILINEAR),
                           dtype=np.float32).ravel()
    except (OSError, ValueError):
        return None
    a -= a.mean()
    norm = float(np.linalg.norm(a))
    return a / norm if norm > 0 else a


def pixel_similarity(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Cosine of two signatures; None when one is missing. Two blank images (zero vectors after
    centring) count as identical."""
    if a is None or b is None:
        return None
    if not a.any() and not b.any():
        return 1.0
    return float(a @ b)


def confirm_pairs(pairs: list[tuple[int, int, int]], paths: dict[int, Path | None],
                  min_similarity: float) -> list[tuple[int, int, int]]:
    """The pHash candidates whose second signal agrees. A pair whose thumbnail cannot be read
    is kept: it goes to a person for review rather than being silently dropped."""
    sigs: dict[int, np.ndarray | None] = {}

    def sig(i: int) -> np.ndarray | None:
        if i not in sigs:
            sigs[i] = pixel_signature(paths.get(i))
        return sigs[i]

    kept = []
    for a, b, d in pairs:
        sim = pixel_similarity(sig(a), sig(b))
        if sim is None or sim >= min_similarity:
            kept.append((a, b, d))
    return kept


def record_near_duplicates(ws: Workspace, new_ids: list[int] | None = None) -> int:
    """Record the near-duplicate pairs of every usable image not searched yet (`dedup_done`),
    then mark them searched, in one transaction. Works over "not yet done", not over "added by
    this run", so a run killed before this step is caught up by the next one; `new_ids` is
    accepted for old callers and ignored. Retried whole when a concurrent run got there first."""
    return run_write(ws.engine, lambda s: _record_pending_pairs(s, ws))


def _record_pending_pairs(s, ws: Workspace) -> int:
    usable = (Image.status == ImageStatus.ok, Image.phash.is_not(None))
    todo = set(s.exec(select(Image.id).where(Image.dedup_done == False, *usable)).all())  # noqa: E712
    if not todo:
        return 0
    rows = s.exec(select(Image.id, Image.phash).where(*usable)).all()
    ids, hashes = [r[0] for r in rows], [r[1] for r in rows]
    pairs = find_near_duplicates(ids, hashes, todo, ws.ingest.near_duplicate_distance)
    pairs = confirm_pairs(pairs, _thumb_paths(s, ws, {x for a, b, _ in pairs for x in (a, b)}),
                          ws.ingest.near_duplicate_min_similarity)
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



def _thumb_paths(s, ws: Workspace, ids: set[int]) -> dict[int, Path | None]:
    out: dict[int, Path | None] = {}
    todo = sorted(ids)
    for i in range(0, len(todo), 500):
        for iid, sha in s.exec(select(Image.id, Image.sha256).where(Image.id.in_(todo[i : i + 500]))).all():
            out[iid] = ws.thumb_path(sha) if sha else None
    return out
