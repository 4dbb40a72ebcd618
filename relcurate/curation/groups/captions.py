"""Anonymous captions: proposal (a captioner model or a person), review, and the text exports use.

Every change is a `CaptionReview` event, appended and never edited: ``propose`` (the first text),
``edit`` (new text), ``accept``, ``reject`` (with a reason). `Caption.text`/`Caption.status` hold the
current state, so readers need no replay; the events are the history. Actions are idempotent
(accepting an accepted caption with the same text, rejecting a rejected one or saving an unchanged
edit records nothing), so a double click writes one event. At most one caption per group is
accepted: accepting another rejects the old one with reason "superseded by caption #N".

Accepting runs the anonymity checker against the members' alt-texts and refuses a caption with
errors unless ``allow_errors=True`` (a reviewer may overrule a false alarm; the event says so).
Object nouns a curator marked as shown by every member (``share_noun`` / ``unshare_noun`` events,
text = the noun, user = who marked it) are passed to the checker as ``shared_nouns``.

Separation of duties: whoever wrote (proposed) or last edited a caption cannot accept it, admins
included, unless the workspace allows it (``[review] allow_self_accept = true``, one-person teams);
such an accept is recorded with reason "self-accept". Model and script actions (no user) are exempt.
Group status follows its captions (see ``membership._sync_status_with_captions``). Public functions
take a `Workspace` or `Engine` and own their transaction; the `Session`-taking ``_helpers`` are
for this package's modules that compose them (splitting).
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from PIL import Image as PILImage
from sqlmodel import Session, select

from relcurate.curation.groups import membership as groups_mod
from relcurate.curation.groups.anonymity import CaptionCheck, check_caption, normalise_caption
from relcurate.curation.catalog.browse import ImageCard
from relcurate.curation.groups.group_search import _image_cards
from relcurate.curation.store_scopes import Store, reading, writing
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import (
    Caption,
    CaptionReview,
    CaptionStatus,
    GroupMember,
    GroupStatus,
    Image,
    ImageSource,
    ImageStatus,
    ModelKind,
    ModelVersion,
    SeedGroup,
    User,
)
from relcurate.models.protocols import Captioner
from relcurate.workspace import Workspace

# Review queues of group captions (what the reviewer page offers).
QUEUES = ("to review", "uncaptioned", "accepted", "rejected", "all")
_REVIEWABLE_GROUPS = (GroupStatus.complete, GroupStatus.captioned, GroupStatus.verified)


class CaptionError(ValueError):
    """A review or proposal was refused; the message is meant for the reviewer."""


class SelfAcceptError(CaptionError):
    """The reviewer wrote or last edited this caption (separation of duties)."""


SELF_ACCEPT = "self-accept"
NOUN_ACTIONS = ("share_noun", "unshare_noun")


@dataclass(frozen=True)
class CaptionView:
    id: int
    group_id: int | None
    image_id: int | None
    text: str
    source: str
    status: str
    model_version_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class ReviewEvent:
    id: int
    caption_id: int
    action: str
    text: str | None
    reason: str | None
    user_id: int | None
    username: str | None
    created_at: datetime


@dataclass(frozen=True)
class ReviewOutcome:
    caption: CaptionView
    events: list[str]  # actions recorded by this call ([] when it changed nothing)

    @property
    def changed(self) -> bool:
        return bool(self.events)


@dataclass(frozen=True)
class ReviewItem:
    """Everything the review page shows for one group (or one image) caption."""

    group: groups_mod.GroupSummary | None
    caption: CaptionView | None
    members: list[ImageCard]
    alt_texts: list[str]
    history: list[ReviewEvent]
    shared_nouns: tuple[str, ...] = ()

    def check(self, text: str) -> CaptionCheck:
        return check_caption(text, alt_texts=self.alt_texts, shared_nouns=self.shared_nouns)

    @property
    def last_rejection(self) -> ReviewEvent | None:
        """The newest reject event when the caption is rejected now (its reason is shown up front)."""
        if self.caption is None or self.caption.status != CaptionStatus.rejected:
            return None
        return next((e for e in reversed(self.history) if e.action == "reject"), None)


def _view(c: Caption) -> CaptionView:
    return CaptionView(c.id, c.group_id, c.image_id, c.text, c.source, c.status, c.model_version_id, c.created_at)


def _clean(text: str | None) -> str:
    cleaned = normalise_caption(text or "")
    if not cleaned:
        raise CaptionError("the caption is empty")
    return cleaned


# --- proposing ---------------------------------------------------------------------------------

def _add_group_caption(session: Session, group_id: int, text: str, *, source: str,
                      user_id: int | None = None, model_version_id: int | None = None) -> Caption:
    """A new proposed caption for a group (source: model | human | import | split | ground_truth)."""
    groups_mod._get_group(session, group_id)
    cap = Caption(group_id=group_id, text=_clean(text), source=source, status=CaptionStatus.proposed,
                  model_version_id=model_version_id)
    session.add(cap)
    session.flush()
    session.add(CaptionReview(caption_id=cap.id, user_id=user_id, action="propose", text=cap.text))
    groups_mod._sync_status_with_captions(session, group_id)
    session.flush()
    return cap


def _add_image_caption(session: Session, image_id: int, text: str, *, source: str,
                      model_version_id: int | None = None) -> Caption:
    """A proposed caption for one image (the per-image captioner's output)."""
    cap = Caption(image_id=image_id, text=_clean(text), source=source, status=CaptionStatus.proposed,
                  model_version_id=model_version_id)
    session.add(cap)
    session.flush()
    session.add(CaptionReview(caption_id=cap.id, action="propose", text=cap.text))
    return cap


def group_images(ws: Workspace, group_id: int) -> list[PILImage.Image]:
    """The members' original images, in group order (RGB, fully loaded)."""
    with read_scope(ws.engine) as s:
        rows = list(s.exec(select(Image).join(GroupMember, GroupMember.image_id == Image.id)
                           .where(GroupMember.group_id == group_id).order_by(GroupMember.position)))
    unusable = [r.id for r in rows if r.status != ImageStatus.ok or not r.sha256]
    if unusable:
        raise CaptionError(f"images not available (not downloaded or quarantined): {unusable}")
    out = []
    for r in rows:
        with PILImage.open(ws.image_path(r.sha256, r.ext)) as im:
            out.append(im.convert("RGB"))
    return out


def propose_with_model(ws: Workspace, group_id: int, captioner: Captioner | None, *,
                       model_version_id: int | None = None, user_id: int | None = None) -> CaptionView:
    """Ask the captioner once for the whole group (all members in one prompt) and store its
    caption as proposed. The model runs outside any database transaction."""
    if captioner is None:
        raise CaptionError("no captioner model is configured; write the caption yourself")
    with read_scope(ws.engine) as s:
        summary = groups_mod._group_summary(s, group_id)
    if summary.n_members < 1:
        raise CaptionError(f"group #{group_id} has no images")
    text = captioner.caption_group(group_images(ws, group_id))
    if not normalise_caption(text or ""):
        raise CaptionError("the captioner returned an empty caption")
    with session_scope(ws.engine) as s:
        return _view(_add_group_caption(s, group_id, text, source="model", user_id=user_id,
                                       model_version_id=model_version_id))


# --- reviewing ---------------------------------------------------------------------------------

def _alt_texts_of_images(session: Session, image_ids: Sequence[int]) -> list[str]:
    """Alt-texts / original captions of these images (image rows and all their sources)."""
    if not image_ids:
        return []
    texts = list(session.exec(select(Image.alt_text).where(Image.id.in_(list(image_ids)))))
    texts += list(session.exec(select(ImageSource.alt_text).where(ImageSource.image_id.in_(list(image_ids)))))
    return list(dict.fromkeys(t.strip() for t in texts if t and t.strip()))


def _subject_images(session: Session, cap: Caption) -> list[int]:
    if cap.group_id is not None:
        return groups_mod._member_ids(session, cap.group_id)
    return [cap.image_id] if cap.image_id is not None else []


def _shared_nouns(session: Session, caption_id: int) -> tuple[str, ...]:
    """Nouns currently marked as shown by every member (replaying share/unshare events in order)."""
    marked: dict[str, None] = {}
    for act, noun in session.exec(select(CaptionReview.action, CaptionReview.text)
                                  .where(CaptionReview.caption_id == caption_id,
                                         CaptionReview.action.in_(NOUN_ACTIONS)).order_by(CaptionReview.id)):
        if act == "share_noun":
            marked[noun] = None
        else:
            marked.pop(noun, None)
    return tuple(marked)


def _authors(session: Session, caption_id: int) -> tuple[int | None, int | None]:
    """(who proposed the caption, who last edited it); None for a model, an import or no edit."""
    rows = list(session.exec(select(CaptionReview.action, CaptionReview.user_id)
                             .where(CaptionReview.caption_id == caption_id,
                                    CaptionReview.action.in_(("propose", "edit"))).order_by(CaptionReview.id)))
    writer = next((u for a, u in rows if a == "propose"), None)
    editor = next((u for a, u in reversed(rows) if a == "edit"), None)
    return writer, editor


def _mark_shared_noun(session: Session, caption_id: int, noun: str, *, user_id: int | None,
                      shared: bool = True) -> bool:
    """Mark (or unmark) `noun` as shown by every member of the caption's group; False when it
    already was (idempotent: a double click records one event)."""
    noun = (noun or "").strip().lower()
    if not noun or len(noun) > 64 or not all(ch.isalpha() or ch in " -'" for ch in noun):
        raise CaptionError(f"not a noun: {noun[:64]!r}")
    cap = session.exec(select(Caption).where(Caption.id == caption_id).with_for_update()).first()
    if cap is None:
        raise CaptionError(f"no caption #{caption_id}")
    if (noun in _shared_nouns(session, caption_id)) == shared:
        return False
    session.add(CaptionReview(caption_id=caption_id, user_id=user_id,
                              action="share_noun" if shared else "unshare_noun", text=noun))
    session.flush()
    return True


def _review_caption(session: Session, caption_id: int, action: str, *, user_id: int | None,
                   text: str | None = None, reason: str | None = None,
                   allow_errors: bool = False, allow_self_accept: bool = False) -> ReviewOutcome:
    """Apply one reviewer action: ``accept`` (optionally with edited `text`), ``edit`` (`text`
    required) or ``reject`` (`reason` required). Locks the caption row for the transaction."""
    if action not in ("accept", "edit", "reject"):
        raise CaptionError(f"unknown review action {action!r}")
    cap = session.exec(select(Caption).where(Caption.id == caption_id).with_for_update()).first()
    if cap is None:
        raise CaptionError(f"no caption #{caption_id}")
    events: list[str] = []

    def record(act: str, **kw) -> None:
        session.add(CaptionReview(caption_id=cap.id, user_id=user_id, action=act, **kw))
        events.append(act)

    if action == "reject":
        reason = (reason or "").strip()
        if not reason:
            raise CaptionError("say why the caption is rejected")
        if cap.status != CaptionStatus.rejected:
            cap.status = CaptionStatus.rejected
            record("reject", reason=reason)
    else:
        new_text = _clean(text) if text is not None else cap.text
        if action == "edit" and text is None:
            raise CaptionError("an edit needs the new text")
        self_accept = False
        if action == "accept":
            writer, editor = _authors(session, cap.id)
            if new_text != cap.text:
                editor = user_id  # accepting with new text makes the reviewer its last editor
            self_accept = user_id is not None and user_id in (writer, editor)
            if self_accept and not allow_self_accept and (cap.status != CaptionStatus.accepted or new_text != cap.text):
                raise SelfAcceptError(f"you {'wrote' if user_id == writer else 'last edited'} caption #{cap.id}: "
                                      "another reviewer must accept it (separation of duties)")
            found = check_caption(new_text, alt_texts=_alt_texts_of_images(session, _subject_images(session, cap)),
                                  shared_nouns=_shared_nouns(session, cap.id))
            if not found.ok and not allow_errors:
                codes = ", ".join(sorted({f.code for f in found.errors}))
                raise CaptionError(f"the anonymity check found errors ({codes}); fix them or accept anyway")
        if new_text != cap.text:
            cap.text = new_text
            record("edit", text=new_text)
            if action == "edit" and cap.status != CaptionStatus.proposed:
                cap.status = CaptionStatus.proposed  # changed text needs a fresh accept
        elif action == "edit" and cap.status == CaptionStatus.rejected:
            cap.status = CaptionStatus.proposed
            record("edit", text=new_text, reason="reopened")
        if action == "accept" and (cap.status != CaptionStatus.accepted or events):
            cap.status = CaptionStatus.accepted
            why = [w for w, on in ((SELF_ACCEPT, self_accept), ("accepted despite checker errors", allow_errors)) if on]
            record("accept", text=new_text, reason="; ".join(why) or None)
            _supersede_others(session, cap, user_id)
    session.add(cap)
    session.flush()
    if cap.group_id is not None and events:
        groups_mod._sync_status_with_captions(session, cap.group_id)
    return ReviewOutcome(_view(cap), events)


def _supersede_others(session: Session, cap: Caption, user_id: int | None) -> None:
    if cap.group_id is None:
        return
    others = session.exec(select(Caption).where(Caption.group_id == cap.group_id, Caption.id != cap.id,
                                                Caption.status == CaptionStatus.accepted))
    for other in others:
        other.status = CaptionStatus.rejected
        session.add(other)
        session.add(CaptionReview(caption_id=other.id, user_id=user_id, action="reject",
                                  reason=f"superseded by caption #{cap.id}"))


def _write_and_review(session: Session, group_id: int, text: str, action: str, *, user_id: int | None,
                     allow_errors: bool = False, allow_self_accept: bool = False) -> ReviewOutcome:
    """A reviewer writes a caption for a group that has none: proposed by them, then `action`
    ("accept", or "edit" to only save it). Accepting one's own caption needs `allow_self_accept`."""
    if action == "accept" and user_id is not None and not allow_self_accept:
        raise SelfAcceptError("you are writing this caption: save it; another reviewer must accept it "
                              "(separation of duties)")
    cap = _add_group_caption(session, group_id, text, source="human", user_id=user_id)
    if action == "edit":
        return ReviewOutcome(_view(cap), ["propose"])
    out = _review_caption(session, cap.id, action, user_id=user_id, allow_errors=allow_errors,
                          allow_self_accept=allow_self_accept)
    return ReviewOutcome(out.caption, ["propose", *out.events])


def _history(session: Session, caption_id: int) -> list[ReviewEvent]:
    q = (select(CaptionReview, User.username).outerjoin(User, User.id == CaptionReview.user_id)
         .where(CaptionReview.caption_id == caption_id).order_by(CaptionReview.id))
    return [ReviewEvent(e.id, e.caption_id, e.action, e.text, e.reason, e.user_id, name, e.created_at)
            for e, name in session.exec(q)]


# --- reading for exports and the review page ---------------------------------------------------

def _accepted_caption(session: Session, group_id: int) -> str | None:
    """The accepted caption of a group: the text exports use (None when there is none)."""
    return session.exec(select(Caption.text).where(Caption.group_id == group_id,
                                                   Caption.status == CaptionStatus.accepted)
                        .order_by(Caption.id.desc())).first()


def _accepted_group_captions(session: Session) -> dict[int, str]:
    """group id -> accepted caption, for every group that has one."""
    rows = session.exec(select(Caption.group_id, Caption.text).where(Caption.group_id.is_not(None),
                                                                     Caption.status == CaptionStatus.accepted)
                        .order_by(Caption.id))
    return {gid: text for gid, text in rows}  # newest wins if a legacy import left two


def _current_caption(session: Session, group_id: int) -> Caption | None:
    """The caption a reviewer works on: accepted, else newest proposed, else newest rejected."""
    rows = list(session.exec(select(Caption).where(Caption.group_id == group_id).order_by(Caption.id.desc())))
    for status in (CaptionStatus.accepted, CaptionStatus.proposed, CaptionStatus.rejected):
        for c in rows:
            if c.status == status:
                return c
    return None


def _group_queue(session: Session, queue: str = "to review") -> list[int]:
    """Group ids for a review queue (see QUEUES): ascending, except "uncaptioned" (rejected first)."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; one of {QUEUES}")
    statuses: dict[int, set[str]] = {}
    for gid, status in session.exec(select(Caption.group_id, Caption.status).where(Caption.group_id.is_not(None))):
        statuses.setdefault(gid, set()).add(status)
    live = list(session.exec(select(SeedGroup.id).where(SeedGroup.status.in_(list(_REVIEWABLE_GROUPS)))
                             .order_by(SeedGroup.id)))
    if queue == "to review":
        return [g for g in live if CaptionStatus.proposed in statuses.get(g, set())
                and CaptionStatus.accepted not in statuses.get(g, set())]
    if queue == "uncaptioned":  # groups whose captions were rejected first: a reviewer is waiting on them
        todo = [g for g in live if not statuses.get(g, set()) - {CaptionStatus.rejected}]
        return sorted(todo, key=lambda g: (not statuses.get(g), g))
    if queue == "accepted":
        return [g for g in live if CaptionStatus.accepted in statuses.get(g, set())]
    if queue == "rejected":
        return [g for g in live if statuses.get(g) == {CaptionStatus.rejected}]
    return live


def group_review_item(ws: Workspace, group_id: int) -> ReviewItem:
    with read_scope(ws.engine) as s:
        summary = groups_mod._group_summary(s, group_id)
        ids = groups_mod._member_ids(s, group_id)
        cap = _current_caption(s, group_id)
        return ReviewItem(summary, _view(cap) if cap else None, _image_cards(s, ws, ids),
                          _alt_texts_of_images(s, ids), _history(s, cap.id) if cap else [],
                          _shared_nouns(s, cap.id) if cap else ())


def _sample_image_captions(session: Session, n: int, *, seed: int = 0,
                          status: str | None = CaptionStatus.proposed) -> list[int]:
    """A reproducible random sample of per-image caption ids (reviewers check a sample, not all)."""
    q = select(Caption.id).where(Caption.image_id.is_not(None))
    if status:
        q = q.where(Caption.status == status)
    ids = sorted(session.exec(q))
    if len(ids) <= n:
        return ids
    return sorted(random.Random(seed).sample(ids, n))


def image_review_item(ws: Workspace, caption_id: int) -> ReviewItem:
    with read_scope(ws.engine) as s:
        cap = s.get(Caption, caption_id)
        if cap is None or cap.image_id is None:
            raise CaptionError(f"no per-image caption #{caption_id}")
        return ReviewItem(None, _view(cap), _image_cards(s, ws, [cap.image_id]),
                          _alt_texts_of_images(s, [cap.image_id]), _history(s, cap.id), _shared_nouns(s, cap.id))


# --- the configured captioner ------------------------------------------------------------------

@dataclass(frozen=True)
class CaptionerSpec:
    model_version_id: int
    name: str
    version: int
    base_model: str
    adapter_path: str | None


def _latest_captioner(session: Session) -> CaptionerSpec | None:
    """The newest registered captioner model version, or None (then people write captions)."""
    mv = session.exec(select(ModelVersion).where(ModelVersion.kind == ModelKind.captioner)
                      .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())).first()
    if mv is None:
        return None
    return CaptionerSpec(mv.id, mv.name, mv.version, mv.base_model, mv.adapter_path)


def load_captioner(ws: Workspace, spec: CaptionerSpec, **kwargs) -> Captioner:
    """Qwen2.5-VL (+ LoRA adapter) for a registered captioner, through the model registry (paths
    resolved in the workspace, anonymity checker attached); heavy, so cache the result."""
    from relcurate.models.registry import get_model_version_by_id, load_model

    kwargs.setdefault("checker", check_caption)  # every generated caption carries its findings
    return load_model(ws, get_model_version_by_id(ws, spec.model_version_id), **kwargs)


# --- the public API: one transaction per call ------------------------------------------------------

def add_group_caption(store: Store, group_id: int, text: str, *, source: str, user_id: int | None = None,
                      model_version_id: int | None = None) -> Caption:
    with writing(store) as s:
        return _add_group_caption(s, group_id, text, source=source, user_id=user_id,
                                  model_version_id=model_version_id)


def add_image_caption(store: Store, image_id: int, text: str, *, source: str,
                      model_version_id: int | None = None) -> Caption:
    with writing(store) as s:
        return _add_image_caption(s, image_id, text, source=source, model_version_id=model_version_id)


def self_accept_allowed(store: Store) -> bool:
    """The workspace's ``[review] allow_self_accept`` (False for a bare Engine: no config)."""
    return bool(getattr(getattr(store, "review", None), "allow_self_accept", False))


def review_caption(store: Store, caption_id: int, action: str, *, user_id: int | None, text: str | None = None,
                   reason: str | None = None, allow_errors: bool = False,
                   allow_self_accept: bool | None = None) -> ReviewOutcome:
    """`allow_self_accept` None: the workspace setting decides."""
    allow = self_accept_allowed(store) if allow_self_accept is None else allow_self_accept
    with writing(store) as s:
        return _review_caption(s, caption_id, action, user_id=user_id, text=text, reason=reason,
                               allow_errors=allow_errors, allow_self_accept=allow)


def write_and_review(store: Store, group_id: int, text: str, action: str, *, user_id: int | None,
                     allow_errors: bool = False, allow_self_accept: bool | None = None) -> ReviewOutcome:
    allow = self_accept_allowed(store) if allow_self_accept is None else allow_self_accept
    with writing(store) as s:
        return _write_and_review(s, group_id, text, action, user_id=user_id, allow_errors=allow_errors,
                                 allow_self_accept=allow)


def mark_shared_noun(store: Store, caption_id: int, noun: str, *, user_id: int | None,
                     shared: bool = True) -> bool:
    with writing(store) as s:
        return _mark_shared_noun(s, caption_id, noun, user_id=user_id, shared=shared)


def shared_nouns(store: Store, caption_id: int) -> tuple[str, ...]:
    with reading(store) as s:
        return _shared_nouns(s, caption_id)


def history(store: Store, caption_id: int) -> list[ReviewEvent]:
    with reading(store) as s:
        return _history(s, caption_id)


def accepted_caption(store: Store, group_id: int) -> str | None:
    with reading(store) as s:
        return _accepted_caption(s, group_id)


def accepted_group_captions(store: Store) -> dict[int, str]:
    with reading(store) as s:
        return _accepted_group_captions(s)


def current_caption(store: Store, group_id: int) -> Caption | None:
    with reading(store) as s:
        return _current_caption(s, group_id)


def group_queue(store: Store, queue: str = "to review") -> list[int]:
    with reading(store) as s:
        return _group_queue(s, queue)


def sample_image_captions(store: Store, n: int, *, seed: int = 0,
                          status: str | None = CaptionStatus.proposed) -> list[int]:
    with reading(store) as s:
        return _sample_image_captions(s, n, seed=seed, status=status)


def find_review_group(store: Store, query: str) -> int | None:
    """A reviewable group by id ("12" or "#12") or the first whose name or note contains `query`."""
    q = (query or "").strip().lstrip("#").strip()
    if not q:
        return None
    with reading(store) as s:
        live = set(_group_queue(s, "all"))
        if q.isdigit():
            return int(q) if int(q) in live else None
        return next((g.id for g in groups_mod._list_groups(s, text=q[:200]) if g.id in live), None)


def latest_captioner(store: Store) -> CaptionerSpec | None:
    with reading(store) as s:
        return _latest_captioner(s)
