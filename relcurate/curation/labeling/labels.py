"""Filter labels: record, undo, history, current.

History is append-only (`FilterLabel` events); `CurrentLabel` (primary key image, user) points
at the event in force. Writes are idempotent and transactional:

- every decision carries a `request_id` (unique in the store): the same request applied twice
  (double click, double key press, retried HTTP request) returns the first result and writes
  nothing;
- a change of mind is a new event whose `supersedes_id` is the previous one; the same answer
  again is a no-op;
- an undo is a `retract` event superseding the undone one, and removes the current label;
- a concurrent first label for the same (image, user) cannot make two current labels (primary
  key); the losing transaction is re-run and then supersedes the winner.

Each write also finishes (or, for undo, re-opens) the annotator's queue assignment in the same
transaction, so label and queue state never disagree.

A label event records `model_version_id`: the caller's, else that of the annotator's
`TaskAssignment` for the image (the model whose task order chose it, e.g. active learning), so
each label says which model, if any, asked for it.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from relcurate.curation.labeling import leases
from relcurate.db.write_retry import is_postgres, run_write
from relcurate.db.engine import read_scope
from relcurate.db.models import Answer, CurrentLabel, FilterLabel, LabelSource, TaskAssignment, User, utcnow

RETRACT = "retract"  # FilterLabel.answer of an undo event (never a CurrentLabel answer)


class LabelError(ValueError):
    pass


@dataclass(frozen=True)
class LabelResult:
    label_id: int
    image_id: int
    user_id: int
    answer: str
    duplicate: bool  # True: this request (or this same answer) was already in force; nothing written
    supersedes_id: int | None = None


@dataclass(frozen=True)
class UndoResult:
    undone: bool
    image_id: int | None = None
    retract_id: int | None = None
    releasing: bool = False  # the image is leased to the annotator again
    reason: str | None = None


# Prebuilt Core statements for the per-decision path (see leases.py on why not the ORM here).
_F = FilterLabel.__table__
_C = CurrentLabel.__table__
_b = bindparam
_SEEN = select(_F.c.id, _F.c.image_id, _F.c.user_id, _F.c.answer, _F.c.supersedes_id).where(_F.c.request_id == _b("rid"))
_LABEL = select(_F.c.id, _F.c.image_id, _F.c.user_id, _F.c.source).where(_F.c.id == _b("lid"))
_CURRENT = select(_C.c.label_id, _C.c.answer).where(_C.c.image_id == _b("img"), _C.c.user_id == _b("uid"))
_NEW_EVENT = insert(_F).returning(_F.c.id)
_NEW_CURRENT = insert(_C)
_SET_CURRENT = (update(_C).where(_C.c.image_id == _b("img"), _C.c.user_id == _b("uid"))
                .values(label_id=_b("lid"), answer=_b("ans")))
_DROP_CURRENT = delete(_C).where(_C.c.image_id == _b("img"), _C.c.user_id == _b("uid"))
_A = TaskAssignment.__table__
# The model version whose task order brought this image to this annotator (None: no model).
_LEASED_BY_MODEL = select(_A.c.model_version_id).where(_A.c.kind == _b("kind"), _A.c.image_id == _b("img"),
                                                       _A.c.user_id == _b("uid"))


def _lock_current(s: Session, image_id: int, user_id: int):
    q = _CURRENT.with_for_update() if is_postgres(s) else _CURRENT
    return s.connection().execute(q, {"img": image_id, "uid": user_id}).first()


def _event(conn, *, image_id: int, user_id: int, answer: str, source: str, lead_time_ms: int | None,
           supersedes_id: int | None, request_id: str, model_version_id: int | None, at: datetime) -> int:
    return conn.execute(_NEW_EVENT, {
        "image_id": image_id, "user_id": user_id, "answer": answer, "source": source,
        "lead_time_ms": lead_time_ms, "supersedes_id": supersedes_id, "request_id": request_id,
        "model_version_id": model_version_id, "created_at": at}).scalar_one()


def _check_decision(answer: str, request_id: str, lead_time_ms: int | None) -> tuple[str, int | None]:
    answer = Answer(answer).value
    if not request_id or len(request_id) > 64:
        raise LabelError("request_id must have 1..64 characters")
    if lead_time_ms is not None:
        lead_time_ms = max(0, min(int(lead_time_ms), 2**31 - 1))
    return answer, lead_time_ms


def _record(s: Session, *, image_id: int, user_id: int, answer: str, request_id: str, lead_time_ms: int | None,
            kind: str, source: str, model_version_id: int | None, now: datetime | None) -> LabelResult:
    conn = s.connection()
    seen = conn.execute(_SEEN, {"rid": request_id}).first()
    if seen is not None:
        if seen.user_id != user_id or seen.image_id != image_id:
            raise LabelError(f"request id {request_id!r} was used for another decision")
        return LabelResult(seen.id, seen.image_id, user_id, seen.answer, duplicate=True,
                           supersedes_id=seen.supersedes_id)
    owner = leases.lease_of_request(s, request_id)
    if owner is not None and owner != (image_id, user_id):
        raise LabelError("this decision names another image than the one that was shown; "
                         "nothing was recorded")
    at = now or utcnow()
    leases.lock_task_row(s, kind, image_id)  # lock order: label_task, assignment, current label
    current = _lock_current(s, image_id, user_id)
    if current is not None and current.answer == answer:
        leases.on_decision(s, kind, image_id, user_id, answer, at)
        return LabelResult(current.label_id, image_id, user_id, answer, duplicate=True)
    previous = current.label_id if current is not None else None
    mv = model_version_id
    if mv is None:  # the label event remembers which model's ordering chose the image
        mv = conn.execute(_LEASED_BY_MODEL, {"kind": kind, "img": image_id, "uid": user_id}).scalar()
    label_id = _event(conn, image_id=image_id, user_id=user_id, answer=answer, source=source,
                      lead_time_ms=lead_time_ms, supersedes_id=previous, request_id=request_id,
                      model_version_id=mv, at=at)
    if current is None:
        conn.execute(_NEW_CURRENT, {"image_id": image_id, "user_id": user_id, "label_id": label_id,
                                    "answer": answer})
    else:
        conn.execute(_SET_CURRENT, {"img": image_id, "uid": user_id, "lid": label_id, "ans": answer})
    leases.on_decision(s, kind, image_id, user_id, answer, at)
    return LabelResult(label_id, image_id, user_id, answer, duplicate=False, supersedes_id=previous)


def record_label(engine: Engine, *, image_id: int, user_id: int, answer: str, request_id: str,
                 lead_time_ms: int | None = None, kind: str = leases.FILTER,
                 source: str = LabelSource.human, model_version_id: int | None = None,
                 now: datetime | None = None) -> LabelResult:
    """Record one annotator's decision on one image (see the module docstring for guarantees)."""
    answer, lead_time_ms = _check_decision(answer, request_id, lead_time_ms)
    return run_write(engine, lambda s: _record(
        s, image_id=image_id, user_id=user_id, answer=answer, request_id=request_id, lead_time_ms=lead_time_ms,
        kind=kind, source=source, model_version_id=model_version_id, now=now))


def record_labels(engine: Engine, decisions: list[dict], *, kind: str = leases.FILTER) -> list[LabelResult]:
    """Many decisions (each a dict of `record_label`'s keyword arguments) in one transaction, with
    the same per-decision guarantees: for bulk imports (Label Studio pulls), where one commit per
    label would dominate. Taken in (image, user) order so concurrent batches lock rows in the same
    order; results come back in the order given. One refused decision refuses the batch."""
    checked = []
    for d in decisions:
        answer, lead = _check_decision(d["answer"], d["request_id"], d.get("lead_time_ms"))
        checked.append({"source": LabelSource.human, "model_version_id": None, "now": None, "kind": kind,
                        **d, "answer": answer, "lead_time_ms": lead})
    order = sorted(range(len(checked)), key=lambda i: (checked[i]["image_id"], checked[i]["user_id"]))

    def tx(s: Session) -> list[LabelResult]:
        out: list[LabelResult | None] = [None] * len(checked)
        for i in order:
            out[i] = _record(s, **checked[i])
        return out  # type: ignore[return-value]

    return run_write(engine, tx) if checked else []


def undo_label(engine: Engine, *, user_id: int, label_id: int, kind: str = leases.FILTER,
               now: datetime | None = None) -> UndoResult:
    """Undo one of this annotator's decisions, if it is still the label in force.

    Idempotent: the retract event's request id is derived from the undone label, so undoing the
    same label twice changes nothing the second time. The image is leased to the annotator again
    (it comes back as their next task) unless its overlap slots were taken meanwhile.
    """
    request_id = f"undo:{label_id}"

    def tx(s: Session) -> UndoResult:
        conn = s.connection()
        seen = conn.execute(_SEEN, {"rid": request_id}).first()
        if seen is not None:
            return UndoResult(False, seen.image_id, seen.id, reason="already undone")
        label = conn.execute(_LABEL, {"lid": label_id}).first()
        if label is None or label.user_id != user_id:
            return UndoResult(False, reason="no such decision of yours")
        at = now or utcnow()
        leases.lock_task_row(s, kind, label.image_id)
        current = _lock_current(s, label.image_id, user_id)
        if current is None or current.label_id != label_id:
            return UndoResult(False, label.image_id, reason="a later decision replaced it")
        retract_id = _event(conn, image_id=label.image_id, user_id=user_id, answer=RETRACT, source=label.source,
                            lead_time_ms=None, supersedes_id=label_id, request_id=request_id,
                            model_version_id=None, at=at)
        conn.execute(_DROP_CURRENT, {"img": label.image_id, "uid": user_id})
        releasing = leases.on_retract(s, kind, label.image_id, user_id, at)
        return UndoResult(True, label.image_id, retract_id, releasing=releasing)

    return run_write(engine, tx)


def current_label(engine: Engine, image_id: int, user_id: int) -> CurrentLabel | None:
    with read_scope(engine) as s:
        return s.get(CurrentLabel, (image_id, user_id))


def current_labels(engine: Engine, image_id: int) -> dict[str, str]:
    """username -> answer in force for one image."""
    with read_scope(engine) as s:
        rows = s.exec(select(User.username, CurrentLabel.answer).join(User, User.id == CurrentLabel.user_id)
                      .where(CurrentLabel.image_id == image_id).order_by(User.username)).all()
    return dict(rows)


def label_history(engine: Engine, image_id: int, user_id: int | None = None) -> list[FilterLabel]:
    """All events for an image (optionally one annotator's), oldest first."""
    q = select(FilterLabel).where(FilterLabel.image_id == image_id)
    if user_id is not None:
        q = q.where(FilterLabel.user_id == user_id)
    with read_scope(engine) as s:
        return list(s.exec(q.order_by(FilterLabel.id)))


def user_counts(engine: Engine, user_id: int) -> dict[str, int]:
    """This annotator's labels in force, by answer."""
    with read_scope(engine) as s:
        rows = dict(s.exec(select(CurrentLabel.answer, func.count()).where(CurrentLabel.user_id == user_id)
                           .group_by(CurrentLabel.answer)).all())
    return {a.value: int(rows.get(a.value, 0)) for a in Answer}


def labels_per_hour(engine: Engine, *, hours: int = 24, now: datetime | None = None) -> list[dict]:
    """Decisions (yes/no/skip events, undo excluded) per clock hour and annotator over the last
    `hours`: rows {hour, username, labels}, oldest hour first. Bucketed in Python so the query is
    the same on both back ends."""
    now = now or utcnow()
    since = now - timedelta(hours=hours)
    with read_scope(engine) as s:
        rows = s.exec(select(FilterLabel.created_at, User.username)
                      .join(User, User.id == FilterLabel.user_id)
                      .where(FilterLabel.created_at >= since, FilterLabel.answer != RETRACT)).all()
    counts: dict[tuple[datetime, str], int] = defaultdict(int)
    for created, username in rows:
        counts[(created.replace(minute=0, second=0, microsecond=0), username)] += 1
    return [{"hour": h, "username": u, "labels": n} for (h, u), n in sorted(counts.items())]
