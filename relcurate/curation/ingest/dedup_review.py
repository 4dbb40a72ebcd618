"""Curators' decisions on near-duplicate pairs: keep both, mark duplicate, or merge.

Decisions are append-only (`NearDuplicateDecision`, who and when); the newest per pair wins and
is mirrored on `NearDuplicate.reviewed` ("different" for keep-both, "same" otherwise) so exports
keep confirmed duplicates in one split. A merge names the canonical image: `canonical_map` says
which image stands for which; exports put the canonical image in the merged one's place in seed
groups, and the merged image's labeling tasks close. No image is ever deleted.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import select

from relcurate.curation.catalog.browse import ImageCard, card_of
from relcurate.curation.store_scopes import Store, engine_of, reading
from relcurate.db.models import Image, LabelTask, NearDuplicate, NearDuplicateDecision
from relcurate.db.write_retry import run_write
from relcurate.workspace import Workspace

DECISIONS = ("keep_both", "duplicate", "merge")
_REVIEWED = {"keep_both": "different", "duplicate": "same", "merge": "same"}


class DedupReviewError(ValueError):
    pass


@dataclass(frozen=True)
class PairView:
    image_a: ImageCard
    image_b: ImageCard
    distance: int
    decision: str | None  # newest decision, None while waiting


@dataclass(frozen=True)
class Decision:
    id: int
    image_a: int
    image_b: int
    decision: str
    canonical_id: int | None
    username: str
    created_at: datetime


def pending_count(store: Store) -> int:
    """Near-duplicate pairs nobody has decided yet."""
    with reading(store) as s:
        return int(s.exec(select(func.count()).select_from(NearDuplicate).where(NearDuplicate.reviewed.is_(None))).one())


def list_pairs(ws: Workspace, *, pending_only: bool = True, limit: int = 20) -> list[PairView]:
    q = select(NearDuplicate).order_by(NearDuplicate.distance, NearDuplicate.image_a, NearDuplicate.image_b)
    if pending_only:
        q = q.where(NearDuplicate.reviewed.is_(None))
    with reading(ws) as s:
        out = []
        for nd in s.exec(q.limit(limit)).all():
            a, b = s.get(Image, nd.image_a), s.get(Image, nd.image_b)
            out.append(PairView(card_of(ws, a), card_of(ws, b), nd.distance, _latest(s, nd.image_a, nd.image_b)))
        return out


def _latest(s, a: int, b: int) -> str | None:
    row = s.exec(select(NearDuplicateDecision.decision).where(
        NearDuplicateDecision.image_a == a, NearDuplicateDecision.image_b == b)
        .order_by(NearDuplicateDecision.id.desc()).limit(1)).first()
    return row


def decide_pair(store: Store, image_a: int, image_b: int, decision: str, *, user_id: int | None,
                username: str, request_id: str, canonical_id: int | None = None) -> int:
    """Record one decision on the pair (either order) and return its id. The same `request_id`
    twice records it once (a double click). `merge` needs `canonical_id`, one of the two."""
    if decision not in DECISIONS:
        raise DedupReviewError(f"unknown decision {decision!r}; one of {', '.join(DECISIONS)}")
    a, b = sorted((int(image_a), int(image_b)))
    if decision == "merge":
        if canonical_id not in (a, b):
            raise DedupReviewError(f"a merge keeps one of images #{a} and #{b} as the canonical one")
    else:
        canonical_id = None
    if not request_id or len(request_id) > 64:
        raise DedupReviewError("a decision needs a request id of 1-64 characters")

    def write(s) -> int:
        seen = s.exec(select(NearDuplicateDecision).where(NearDuplicateDecision.request_id == request_id)).first()
        if seen is not None:
            return seen.id
        pair = s.get(NearDuplicate, (a, b))
        if pair is None:
            raise DedupReviewError(f"images #{a} and #{b} are not a recorded near-duplicate pair")
        row = NearDuplicateDecision(image_a=a, image_b=b, decision=decision, canonical_id=canonical_id,
                                    user_id=user_id, username=username, request_id=request_id)
        s.add(row)
        pair.reviewed = _REVIEWED[decision]
        s.add(pair)
        if decision == "merge":
            _close_label_tasks(s, b if canonical_id == a else a)
        s.flush()
        return row.id

    return run_write(engine_of(store), write)


def history(store: Store, image_a: int, image_b: int) -> list[Decision]:
    a, b = sorted((int(image_a), int(image_b)))
    with reading(store) as s:
        rows = s.exec(select(NearDuplicateDecision).where(
            NearDuplicateDecision.image_a == a, NearDuplicateDecision.image_b == b)
            .order_by(NearDuplicateDecision.id)).all()
        return [Decision(r.id, r.image_a, r.image_b, r.decision, r.canonical_id, r.username, r.created_at) for r in rows]


def canonical_map(store: Store) -> dict[int, int]:
    """{merged image: the image that stands for it}, from each pair's newest decision."""
    with reading(store) as s:
        rows = s.exec(select(NearDuplicateDecision.image_a, NearDuplicateDecision.image_b,
                             NearDuplicateDecision.decision, NearDuplicateDecision.canonical_id)
                      .order_by(NearDuplicateDecision.id)).all()
    return resolve_canonical(rows)


def resolve_canonical(rows) -> dict[int, int]:
    """`rows`: (image_a, image_b, decision, canonical_id) oldest first. Chains are followed
    (a merged into b, b into c: a -> c); a cycle stops at the last image not seen yet."""
    newest: dict[tuple[int, int], tuple[str, int | None]] = {}
    for a, b, decision, canonical in rows:
        newest[(a, b)] = (decision, canonical)
    parent: dict[int, int] = {}
    for (a, b), (decision, canonical) in newest.items():
        if decision == "merge" and canonical in (a, b):
            parent[b if canonical == a else a] = canonical
    out: dict[int, int] = {}
    for x in parent:
        seen, y = {x}, parent[x]
        while y in parent and parent[y] not in seen:
            seen.add(y)
            y = parent[y]
        if y != x:
            out[x] = y
    return out


def _close_label_tasks(s, image_id: int) -> None:
    """A merged image leaves the labeling pool: its open tasks stop being handed out (its
    labels so far stay in the history)."""
    s.execute(update(LabelTask).where(LabelTask.image_id == image_id, LabelTask.is_open == True)  # noqa: E712
              .values(is_open=False))
