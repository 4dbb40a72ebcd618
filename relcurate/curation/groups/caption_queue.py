"""The captioner loop's store side: which images to caption, the captions a model generated (with
version, confidence and checker verdict, `CaptionProposal`), the review sample drawn from them,
and review outcomes per captioner version.

Interesting images are those the filter consensus answers Yes, or that a filter model kept (its
P(Yes) at or above its threshold). An image is left alone when it already has an accepted caption
(its own, or its live group's) or a caption from the same captioner version: re-running the loop
with one version captions nothing twice.

The review sample (`draw_review_sample`) puts checker-flagged captions first, then the least
confident, plus a random audit share drawn from the rest, so reviewers also see what the model is
sure of; each queued caption records why (`queue_reason`) and its place (`queue_rank`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from PIL import Image as PILImage
from sqlalchemy import func
from sqlmodel import Session, select

from relcurate.curation.groups.captions import CaptionError, _add_image_caption, _alt_texts_of_images
from relcurate.curation.labeling.agreement import consensus
from relcurate.curation.store_scopes import Store, engine_of, reading, writing
from relcurate.db.models import (
    Caption,
    CaptionProposal,
    CaptionReview,
    CaptionStatus,
    GroupMember,
    GroupStatus,
    Image,
    ImageStatus,
    ModelKind,
    ModelVersion,
    Prediction,
    SeedGroup,
)
from relcurate.workspace import Workspace

REASONS = ("flagged", "low_confidence", "audit")
_DEAD_GROUPS = (GroupStatus.rejected.value, GroupStatus.split.value)


@dataclass(frozen=True)
class Generated:
    """One caption the model wrote for one image, before it is stored."""

    image_id: int
    text: str
    confidence: float | None
    checker_ok: bool
    checker_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueuedCaption:
    caption_id: int
    image_id: int
    reason: str
    rank: int
    model: str  # "name:version" of the captioner
    confidence: float | None
    checker_codes: tuple[str, ...]
    status: str


def kept_by_filter(session: Session, filter_version_id: int) -> set[int]:
    """Images a filter version kept: P(Yes) >= its threshold (config "threshold", else 0.5)."""
    mv = session.get(ModelVersion, filter_version_id)
    if mv is None or mv.kind != ModelKind.filter:
        raise ValueError(f"model version #{filter_version_id} is not a filter")
    thr = float((mv.config or {}).get("threshold", 0.5))
    return set(session.exec(select(Prediction.image_id).where(Prediction.model_version_id == mv.id,
                                                               Prediction.score >= thr)))


def _captioned(session: Session, model_version_id: int) -> set[int]:
    """Images with an accepted caption (own or live group's) or one from this captioner version."""
    own = set(session.exec(select(Caption.image_id).where(Caption.image_id.is_not(None),
                                                          Caption.status == CaptionStatus.accepted)))
    in_group = set(session.exec(select(GroupMember.image_id).join(SeedGroup, SeedGroup.id == GroupMember.group_id)
                                .join(Caption, Caption.group_id == GroupMember.group_id)
                                .where(Caption.status == CaptionStatus.accepted,
                                       SeedGroup.status.not_in(_DEAD_GROUPS))))
    same_version = set(session.exec(select(Caption.image_id).where(Caption.image_id.is_not(None),
                                                                   Caption.model_version_id == model_version_id)))
    return own | in_group | same_version


def eligible_images(store: Store, model_version_id: int, *, kept_by: int | None = None,
                    limit: int | None = None) -> list[int]:
    """Interesting images this captioner version should caption, in id order."""
    yes = {i for i, c in consensus(engine_of(store)).items() if c.answer == "yes"}
    with reading(store) as s:
        interesting = yes | (kept_by_filter(s, kept_by) if kept_by is not None else set())
        if not interesting:
            return []
        usable = set(s.exec(select(Image.id).where(Image.status == ImageStatus.ok, Image.sha256.is_not(None))))
        out = sorted((interesting & usable) - _captioned(s, model_version_id))
    return out[:limit] if limit is not None else out


def alt_texts(store: Store, image_ids: Sequence[int]) -> dict[int, list[str]]:
    """Alt-texts of each image (image row and sources): the checker looks for leaked objects in them."""
    with reading(store) as s:
        return {i: _alt_texts_of_images(s, [i]) for i in image_ids}


def load_images(store: Workspace, image_ids: Sequence[int]) -> list[PILImage.Image]:
    """The originals of these images, RGB and fully loaded, in the given order."""
    with reading(store) as s:
        rows = {r.id: r for r in s.exec(select(Image).where(Image.id.in_(list(image_ids))))}
    out = []
    for i in image_ids:
        r = rows[i]
        with PILImage.open(store.image_path(r.sha256, r.ext)) as im:
            out.append(im.convert("RGB"))
    return out


def record_generated(store: Store, model_version_id: int, items: Sequence[Generated], *,
                     job_id: int | None = None) -> list[int]:
    """Store each caption as a proposed per-image caption with its proposal row, in one
    transaction; an image this version already captioned is skipped (a retried batch). Empty
    captions are not stored. Returns the new caption ids."""
    new: list[int] = []
    with writing(store) as s:
        ids = [g.image_id for g in items]
        done = set(s.exec(select(Caption.image_id).where(Caption.image_id.in_(ids),
                                                         Caption.model_version_id == model_version_id))) if ids else set()
        for g in items:
            if g.image_id in done or not (g.text or "").strip():
                continue
            try:
                cap = _add_image_caption(s, g.image_id, g.text, source="model", model_version_id=model_version_id)
            except CaptionError:  # nothing left after normalising (quotes, spaces)
                continue
            s.add(CaptionProposal(caption_id=cap.id, image_id=g.image_id, model_version_id=model_version_id,
                                  confidence=g.confidence, checker_ok=g.checker_ok,
                                  checker_codes=list(g.checker_codes), job_id=job_id))
            done.add(g.image_id)
            new.append(cap.id)
    return new


def draw_review_sample(store: Store, model_version_id: int, *, size: int, audit_share: float = 0.2,
                       seed: int = 0) -> dict[str, int]:
    """Queue up to `size` of this version's unqueued, still proposed captions: a random audit share
    (round(size * audit_share)) from all candidates, then flagged ones, then the least confident.
    Ranks continue after the queue's current end. Returns how many were queued per reason."""
    if size < 0 or not 0.0 <= audit_share <= 1.0:
        raise ValueError("sample size must be >= 0 and the audit share in [0, 1]")
    with writing(store) as s:
        rows = list(s.exec(select(CaptionProposal).join(Caption, Caption.id == CaptionProposal.caption_id)
                           .where(CaptionProposal.model_version_id == model_version_id,
                                  CaptionProposal.queue_reason.is_(None),
                                  Caption.status == CaptionStatus.proposed)
                           .order_by(CaptionProposal.caption_id).with_for_update()))
        n_audit = min(len(rows), round(size * audit_share))
        audit = random.Random(seed).sample(rows, n_audit) if n_audit else []
        audit_ids = {r.caption_id for r in audit}
        rest = [r for r in rows if r.caption_id not in audit_ids]
        # flagged first, then lowest confidence; unknown confidence counts as least confident
        rest.sort(key=lambda r: (r.checker_ok, r.confidence if r.confidence is not None else float("-inf"),
                                 r.caption_id))
        picked = [(r, "flagged" if not r.checker_ok else "low_confidence") for r in rest[:max(0, size - n_audit)]]
        picked += [(r, "audit") for r in audit]
        start = s.exec(select(func.max(CaptionProposal.queue_rank))).one()
        rank = (start if start is not None else -1) + 1
        counts = {k: 0 for k in REASONS}
        for r, reason in picked:
            r.queue_reason, r.queue_rank = reason, rank
            s.add(r)
            rank += 1
            counts[reason] += 1
    return counts


def review_queue(store: Store, *, pending_only: bool = False, limit: int = 1000,
                 caption_id: int | None = None) -> list[QueuedCaption]:
    """Queued model captions in queue order (reviewed ones stay in place unless `pending_only`)."""
    q = (select(CaptionProposal, Caption.status, ModelVersion.name, ModelVersion.version)
         .join(Caption, Caption.id == CaptionProposal.caption_id)
         .join(ModelVersion, ModelVersion.id == CaptionProposal.model_version_id)
         .where(CaptionProposal.queue_reason.is_not(None)).order_by(CaptionProposal.queue_rank).limit(limit))
    if pending_only:
        q = q.where(Caption.status == CaptionStatus.proposed)
    if caption_id is not None:
        q = q.where(CaptionProposal.caption_id == caption_id)
    with reading(store) as s:
        return [QueuedCaption(p.caption_id, p.image_id, p.queue_reason, p.queue_rank, f"{name}:{version}",
                              p.confidence, tuple(p.checker_codes or ()), status)
                for p, status, name, version in s.exec(q)]


def queued_caption(store: Store, caption_id: int) -> QueuedCaption | None:
    return next(iter(review_queue(store, caption_id=caption_id)), None)


def outcomes_by_version(store: Store) -> list[dict]:
    """Review outcomes of model-written captions per captioner version: accepted as written,
    accepted after an edit ("edited"), rejected, still pending; rates over the reviewed ones."""
    with reading(store) as s:
        versions = {mv.id: mv for mv in s.exec(select(ModelVersion).where(ModelVersion.kind == ModelKind.captioner))}
        if not versions:
            return []
        caps = list(s.exec(select(Caption.id, Caption.model_version_id, Caption.status)
                           .where(Caption.model_version_id.in_(list(versions)))))
        edited = set(s.exec(select(CaptionReview.caption_id).where(
            CaptionReview.action == "edit", CaptionReview.caption_id.in_([c[0] for c in caps])))) if caps else set()
        queued = dict(s.exec(select(CaptionProposal.model_version_id, func.count()).where(
            CaptionProposal.queue_reason.is_not(None)).group_by(CaptionProposal.model_version_id)).all())
    out = []
    for mv_id, mv in sorted(versions.items(), key=lambda kv: (kv[1].name, kv[1].version)):
        n = {"accepted": 0, "edited": 0, "rejected": 0, "pending": 0}
        for cid, vid, status in caps:
            if vid != mv_id:
                continue
            if status == CaptionStatus.accepted:
                n["edited" if cid in edited else "accepted"] += 1
            elif status == CaptionStatus.rejected:
                n["rejected"] += 1
            else:
                n["pending"] += 1
        reviewed = n["accepted"] + n["edited"] + n["rejected"]
        out.append({"model": f"{mv.name}:{mv.version}", "model_version_id": mv_id,
                    "generated": reviewed + n["pending"], "queued": int(queued.get(mv_id, 0)), "reviewed": reviewed,
                    **n, **{f"{k}_rate": (n[k] / reviewed if reviewed else None)
                            for k in ("accepted", "edited", "rejected")}})
    return out
