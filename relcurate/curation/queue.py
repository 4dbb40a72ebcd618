"""Labeling queue: leases with expiry, overlap, gold (honeypot) mixing and pluggable orders.

State lives in three tables. `LabelTask` holds one row per image in the pool with a random
`order_key` fixed at creation, the overlap `target` (k annotators on a sampled fraction, 1
elsewhere, 0 for gold images), `assigned` (leases held or finished that count towards the
target) and `is_open` (assigned < target). `TaskAssignment` is the lease of one image to one
annotator (unique per kind, image, user; re-leasing reuses the row). `QueueConfig` holds the
per-kind settings.

Handing out a task is therefore an index range scan over (kind, is_open, order_key) with an
anti-join on the annotator's own assignments, never ``ORDER BY random()`` over the table. It
runs in one write transaction: on PostgreSQL the candidate row is taken with
``FOR UPDATE OF label_task SKIP LOCKED`` (concurrent annotators take different rows instead of
queueing), on SQLite the transaction begins IMMEDIATE (one writer at a time). Either way the
target is checked and `assigned` incremented under the lock, so an image is never handed to more
annotators than its overlap allows.

Lock order is always label_task row, then task_assignment row, so leasing, labeling and
expiry never deadlock against each other.

Counting rule: an assignment counts towards its image's target while it is `leased` or `done`;
`skipped`, `expired` and `released` do not (the image goes back to the pool for others).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
from sqlalchemy import case, delete, exists, func, insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from relcurate.curation.task_order import TaskOrder, make_strategy, strategy_names
from relcurate.curation.txn import is_postgres, run_write
from relcurate.db.engine import read_scope
from relcurate.db.models import (
    Answer,
    GoldAnswer,
    Image,
    ImageStatus,
    LabelTask,
    QueueConfig,
    TaskAssignment,
    utcnow,
)

FILTER = "filter"
GOLD_STRATEGY = "gold"

LEASED, DONE, SKIPPED, EXPIRED, RELEASED = "leased", "done", "skipped", "expired", "released"
COUNTING = (LEASED, DONE)  # statuses that occupy one of the image's `target` slots
INACTIVE = (EXPIRED, RELEASED)  # the annotator may be handed this image again

ORDER_KEY_SPAN = 2**31 - 1  # fits PostgreSQL INTEGER
RECLAIM_BATCH = 64
_PICK_ATTEMPTS = 16


class QueueError(ValueError):
    pass


class Rng(Protocol):
    def random(self) -> float: ...
    def choice(self, seq): ...


@dataclass(frozen=True)
class Task:
    """One leased task. `is_gold` is for the library and reports; never show it to annotators."""

    assignment_id: int
    image_id: int
    kind: str
    strategy: str
    model_version_id: int | None
    is_gold: bool
    leased_at: datetime
    expires_at: datetime

    @property
    def request_id(self) -> str:
        """Idempotency key for the one decision on this lease: a double click, a repeated key
        press or a retried request on the same shown task carries the same key. Re-leasing (undo,
        expiry) changes `leased_at`, so a new decision on the same image gets a new key."""
        return f"{self.kind}:{self.assignment_id}:{int(self.leased_at.timestamp() * 1_000_000)}"


def _task(ta: TaskAssignment) -> Task:
    return Task(assignment_id=ta.id, image_id=ta.image_id, kind=ta.kind, strategy=ta.strategy,
                model_version_id=ta.model_version_id, is_gold=bool(ta.is_gold),
                leased_at=ta.leased_at, expires_at=ta.expires_at)


# -- configuration --------------------------------------------------------------------------

def _config(s: Session, kind: str) -> QueueConfig:
    cfg = s.get(QueueConfig, kind)
    return cfg if cfg is not None else QueueConfig(kind=kind)


def get_config(engine: Engine, kind: str = FILTER) -> QueueConfig:
    with read_scope(engine) as s:
        return _config(s, kind)


def _target_expr(cfg: QueueConfig):
    return case((LabelTask.sample_u < cfg.overlap_fraction, cfg.overlap_k), else_=1)


def set_config(engine: Engine, kind: str = FILTER, *, overlap_k: int | None = None,
               overlap_fraction: float | None = None, gold_rate: float | None = None,
               lease_seconds: int | None = None, strategy: str | None = None,
               params: dict | None = None, user_id: int | None = None) -> QueueConfig:
    """Change the queue settings. A new overlap applies to every task at once (targets are
    recomputed from each task's fixed `sample_u`, so the sampled set is stable)."""
    if overlap_k is not None and not 1 <= overlap_k <= 50:
        raise QueueError("overlap k must be between 1 and 50")
    if overlap_fraction is not None and not 0.0 <= overlap_fraction <= 1.0:
        raise QueueError("overlap fraction must be between 0 and 1")
    if gold_rate is not None and not 0.0 <= gold_rate <= 1.0:
        raise QueueError("gold rate must be between 0 and 1")
    if lease_seconds is not None and lease_seconds < 10:
        raise QueueError("a lease must last at least 10 seconds")
    if strategy is not None and strategy not in strategy_names():
        raise QueueError(f"unknown task order {strategy!r}; known: {', '.join(strategy_names())}")

    def tx(s: Session) -> QueueConfig:
        cfg = s.get(QueueConfig, kind)
        if cfg is None:
            cfg = QueueConfig(kind=kind)
            s.add(cfg)
        old = (cfg.overlap_k, cfg.overlap_fraction)
        for name, value in (("overlap_k", overlap_k), ("overlap_fraction", overlap_fraction),
                            ("gold_rate", gold_rate), ("lease_seconds", lease_seconds),
                            ("strategy", strategy), ("params", params)):
            if value is not None:
                setattr(cfg, name, value)
        cfg.updated_by, cfg.updated_at = user_id, utcnow()
        s.flush()
        if (cfg.overlap_k, cfg.overlap_fraction) != old:
            target = _target_expr(cfg)
            s.execute(update(LabelTask).where(LabelTask.kind == kind, LabelTask.target > 0)
                      .values(target=target, is_open=LabelTask.assigned < target))
        return cfg

    return run_write(engine, tx)


# -- the pool -------------------------------------------------------------------------------

def sync_pool(engine: Engine, kind: str = FILTER, *, full: bool = False, seed: int | None = None,
              batch: int = 50_000) -> int:
    """Add a LabelTask for every usable image that has none; returns how many were added.

    The default is the cheap incremental pass (images with ids above the highest pooled id: two
    index lookups when nothing is new, so pages may call it on every visit). `full=True` also
    finds older images that became usable later (a finished download) with an anti-join.
    """
    rng = np.random.default_rng(seed)
    added = 0
    last_id = 0
    while True:
        def tx(s: Session) -> tuple[int, int]:
            cfg = _config(s, kind)
            q = select(Image.id).where(Image.status == ImageStatus.ok)
            if full:
                has_task = exists().where(LabelTask.kind == kind, LabelTask.image_id == Image.id)
                q = q.where(Image.id > last_id, ~has_task)
            else:
                mark = s.exec(select(func.max(LabelTask.image_id)).where(LabelTask.kind == kind)).one()
                q = q.where(Image.id > max(mark or 0, last_id))
            ids = list(s.exec(q.order_by(Image.id).limit(batch)))
            if not ids:
                return 0, last_id
            gold = set(s.exec(select(GoldAnswer.image_id).where(GoldAnswer.image_id.in_(ids))))
            keys = rng.integers(0, ORDER_KEY_SPAN, len(ids))
            us = rng.random(len(ids))
            rows = []
            for image_id, key, u in zip(ids, keys.tolist(), us.tolist()):
                target = 0 if image_id in gold else (cfg.overlap_k if u < cfg.overlap_fraction else 1)
                rows.append({"kind": kind, "image_id": image_id, "order_key": key, "sample_u": u,
                             "target": target, "assigned": 0, "is_open": target > 0})
            s.execute(insert(LabelTask), rows)
            return len(rows), ids[-1]

        n, last_id = run_write(engine, tx)
        added += n
        if n == 0:
            return added


# -- leasing --------------------------------------------------------------------------------

def _lock_task_row(s: Session, kind: str, image_id: int) -> LabelTask | None:
    q = select(LabelTask).where(LabelTask.kind == kind, LabelTask.image_id == image_id)
    if is_postgres(s):
        q = q.with_for_update()
    return s.exec(q).first()


def _bump(s: Session, kind: str, image_id: int, delta: int) -> None:
    """Change `assigned` by delta and keep `is_open` in step (caller holds the row lock)."""
    if delta:
        s.execute(update(LabelTask).where(LabelTask.kind == kind, LabelTask.image_id == image_id)
                  .values(assigned=LabelTask.assigned + delta,
                          is_open=LabelTask.assigned + delta < LabelTask.target))


def reclaim_expired(s: Session, kind: str, now: datetime, limit: int = RECLAIM_BATCH) -> int:
    """Turn lapsed leases into `expired` and give their slots back to the pool."""
    rows = s.exec(select(TaskAssignment.id, TaskAssignment.image_id, TaskAssignment.is_gold)
                  .where(TaskAssignment.status == LEASED, TaskAssignment.expires_at < now,
                         TaskAssignment.kind == kind)
                  .limit(limit)).all()
    n = 0
    for ta_id, image_id, is_gold in rows:
        if not is_gold and is_postgres(s):
            # Lock order label_task -> assignment; skip rows another transaction is working on.
            locked = s.exec(select(LabelTask.image_id).where(LabelTask.kind == kind, LabelTask.image_id == image_id)
                            .with_for_update(skip_locked=True)).first()
            if locked is None:
                continue
        res = s.execute(update(TaskAssignment)
                        .where(TaskAssignment.id == ta_id, TaskAssignment.status == LEASED,
                               TaskAssignment.expires_at < now)
                        .values(status=EXPIRED))
        if res.rowcount == 1:
            n += 1
            if not is_gold:
                _bump(s, kind, image_id, -1)
    return n


def _own_assignment(s: Session, kind: str, image_id: int, user_id: int) -> TaskAssignment | None:
    q = select(TaskAssignment).where(TaskAssignment.kind == kind, TaskAssignment.image_id == image_id,
                                     TaskAssignment.user_id == user_id)
    if is_postgres(s):
        q = q.with_for_update()
    return s.exec(q).first()


def _lease(s: Session, *, kind: str, image_id: int, user_id: int, now: datetime, lease: timedelta,
           strategy: str, model_version_id: int | None, is_gold: bool) -> TaskAssignment:
    ta = _own_assignment(s, kind, image_id, user_id)  # an expired/released row of this user
    if ta is None:
        ta = TaskAssignment(kind=kind, image_id=image_id, user_id=user_id, expires_at=now + lease)
        s.add(ta)
    ta.status, ta.strategy, ta.model_version_id, ta.is_gold = LEASED, strategy, model_version_id, is_gold
    ta.leased_at, ta.expires_at, ta.completed_at = now, now + lease, None
    s.flush()
    return ta


def _not_had_by(user_id: int, kind: str, image_col):
    return ~exists().where(TaskAssignment.kind == kind, TaskAssignment.image_id == image_col,
                           TaskAssignment.user_id == user_id, TaskAssignment.status.not_in(INACTIVE))


def _lease_from_pool(s: Session, kind: str, user_id: int, now: datetime, lease: timedelta,
                     order: TaskOrder) -> TaskAssignment | None:
    candidates = select(LabelTask.image_id).where(
        LabelTask.kind == kind, LabelTask.is_open == True,  # noqa: E712 - SQL expression
        _not_had_by(user_id, kind, LabelTask.image_id))
    q = order.order(candidates).limit(1)
    if is_postgres(s):
        q = q.with_for_update(of=LabelTask, skip_locked=True)
    for _ in range(_PICK_ATTEMPTS):
        image_id = s.exec(q).first()
        if image_id is None:
            return None
        if s.exec(select(Image.status).where(Image.id == image_id)).first() != ImageStatus.ok:
            # Quarantined or gone since it was pooled: close it and look again.
            s.execute(update(LabelTask).where(LabelTask.kind == kind, LabelTask.image_id == image_id)
                      .values(is_open=False, target=0))
            continue
        _bump(s, kind, image_id, +1)
        return _lease(s, kind=kind, image_id=image_id, user_id=user_id, now=now, lease=lease,
                      strategy=order.name, model_version_id=order.model_version_id, is_gold=False)
    return None


def _lease_gold(s: Session, kind: str, user_id: int, now: datetime, lease: timedelta, rng: Rng) -> TaskAssignment | None:
    # Gold sets are small (hundreds), so a random pick among the first few unseen is fine.
    ids = list(s.exec(select(GoldAnswer.image_id).join(Image, Image.id == GoldAnswer.image_id)
                      .where(Image.status == ImageStatus.ok, _not_had_by(user_id, kind, GoldAnswer.image_id))
                      .limit(64)))
    if not ids:
        return None
    return _lease(s, kind=kind, image_id=rng.choice(ids), user_id=user_id, now=now, lease=lease,
                  strategy=GOLD_STRATEGY, model_version_id=None, is_gold=True)


def next_task(engine: Engine, user_id: int, kind: str = FILTER, *, now: datetime | None = None,
              rng: Rng | None = None) -> Task | None:
    """The task this annotator should see now: their live lease if they hold one (the most
    recently leased, so an undone image comes back first; the lease is extended), else a new
    lease (a gold image with probability `gold_rate`, else the strategy's first open task).
    None when the pool has nothing left for them."""
    now = now or utcnow()
    rng = rng or random

    def tx(s: Session) -> Task | None:
        cfg = _config(s, kind)
        lease = timedelta(seconds=cfg.lease_seconds)
        reclaim_expired(s, kind, now)
        live = s.exec(select(TaskAssignment)
                      .where(TaskAssignment.user_id == user_id, TaskAssignment.status == LEASED,
                             TaskAssignment.kind == kind, TaskAssignment.expires_at >= now)
                      .order_by(TaskAssignment.leased_at.desc(), TaskAssignment.id.desc()).limit(1)).first()
        if live is not None:
            live.expires_at = now + lease
            return _task(live)
        ta = None
        if cfg.gold_rate > 0 and rng.random() < cfg.gold_rate:
            ta = _lease_gold(s, kind, user_id, now, lease, rng)
        if ta is None:
            ta = _lease_from_pool(s, kind, user_id, now, lease, make_strategy(cfg.strategy, s, cfg))
        return _task(ta) if ta is not None else None

    return run_write(engine, tx)


def release_task(engine: Engine, user_id: int, assignment_id: int) -> bool:
    """Give a held lease back at once (sign-out, "not now"); False if it was not held."""
    def tx(s: Session) -> bool:
        ta = s.get(TaskAssignment, assignment_id)
        if ta is None or ta.user_id != user_id or ta.status != LEASED:
            return False
        _lock_task_row(s, ta.kind, ta.image_id)
        ta = _own_assignment(s, ta.kind, ta.image_id, user_id)
        if ta is None or ta.status != LEASED:
            return False
        ta.status = RELEASED
        if not ta.is_gold:
            _bump(s, ta.kind, ta.image_id, -1)
        return True

    return run_write(engine, tx)


# -- hooks used by labels.py inside its transaction ------------------------------------------

def on_decision(s: Session, kind: str, image_id: int, user_id: int, answer: str, now: datetime) -> None:
    """A label was recorded: finish the annotator's assignment (skip gives the slot back)."""
    ta = _own_assignment(s, kind, image_id, user_id)
    if ta is None:
        return
    new_status = SKIPPED if answer == Answer.skip else DONE
    if ta.status == new_status:
        return
    delta = int(new_status in COUNTING) - int(ta.status in COUNTING)
    ta.status, ta.completed_at = new_status, now
    if not ta.is_gold:
        _bump(s, kind, image_id, delta)


def on_retract(s: Session, kind: str, image_id: int, user_id: int, now: datetime) -> bool:
    """A label was undone: lease the image to the same annotator again so they re-decide it.
    False when that would exceed the overlap (their skip's slot was taken meanwhile)."""
    ta = _own_assignment(s, kind, image_id, user_id)
    if ta is None:
        return False
    task = s.get(LabelTask, (kind, image_id))
    counted = ta.status in COUNTING
    if not counted and not ta.is_gold and task is not None and task.assigned >= task.target:
        return False
    ta.status, ta.completed_at = LEASED, None
    ta.leased_at = now
    ta.expires_at = now + timedelta(seconds=_config(s, kind).lease_seconds)
    if not ta.is_gold and not counted:
        _bump(s, kind, image_id, +1)
    return True


def lock_task_row(s: Session, kind: str, image_id: int) -> None:
    """Take the image's queue row lock first (PostgreSQL), keeping the global lock order."""
    _lock_task_row(s, kind, image_id)


# -- gold -----------------------------------------------------------------------------------

def set_gold(engine: Engine, image_id: int, answer: str, *, user_id: int | None = None,
             note: str | None = None, kind: str = FILTER) -> None:
    """Make an image a gold question with a known answer (it leaves the ordinary pool)."""
    answer = Answer(answer)
    if answer == Answer.skip:
        raise QueueError("a gold answer is yes or no")

    def tx(s: Session) -> None:
        if s.get(Image, image_id) is None:
            raise QueueError(f"no image {image_id}")
        _lock_task_row(s, kind, image_id)
        gold = s.get(GoldAnswer, image_id)
        if gold is None:
            s.add(GoldAnswer(image_id=image_id, answer=answer, note=note, created_by=user_id))
        else:
            gold.answer, gold.note, gold.created_by = answer, note, user_id
        s.execute(update(LabelTask).where(LabelTask.kind == kind, LabelTask.image_id == image_id)
                  .values(target=0, is_open=False))

    run_write(engine, tx)


def remove_gold(engine: Engine, image_id: int, kind: str = FILTER) -> bool:
    def tx(s: Session) -> bool:
        _lock_task_row(s, kind, image_id)
        n = s.execute(delete(GoldAnswer).where(GoldAnswer.image_id == image_id)).rowcount
        target = _target_expr(_config(s, kind))
        s.execute(update(LabelTask).where(LabelTask.kind == kind, LabelTask.image_id == image_id)
                  .values(target=target, is_open=LabelTask.assigned < target))
        return n == 1

    return run_write(engine, tx)


def list_gold(engine: Engine) -> list[GoldAnswer]:
    with read_scope(engine) as s:
        return list(s.exec(select(GoldAnswer).order_by(GoldAnswer.created_at, GoldAnswer.image_id)))


# -- reporting ------------------------------------------------------------------------------

def queue_sizes(engine: Engine, kind: str = FILTER, *, now: datetime | None = None) -> dict[str, int]:
    """Pool and lease counts for the dashboard (full counts: cache them in the UI)."""
    now = now or utcnow()
    with read_scope(engine) as s:
        pool, open_, needed = s.exec(
            select(func.count(), func.coalesce(func.sum(case((LabelTask.is_open == True, 1), else_=0)), 0),  # noqa: E712
                   func.coalesce(func.sum(LabelTask.target), 0))
            .where(LabelTask.kind == kind, LabelTask.target > 0)).one()
        by_status = dict(s.exec(select(TaskAssignment.status, func.count())
                                .where(TaskAssignment.kind == kind).group_by(TaskAssignment.status)).all())
        live = s.exec(select(func.count()).select_from(TaskAssignment)
                      .where(TaskAssignment.kind == kind, TaskAssignment.status == LEASED,
                             TaskAssignment.expires_at >= now)).one()
        gold = s.exec(select(func.count()).select_from(GoldAnswer)).one()
        done_pool = s.exec(select(func.count()).select_from(TaskAssignment)
                           .where(TaskAssignment.kind == kind, TaskAssignment.status == DONE,
                                  TaskAssignment.is_gold == False)).one()  # noqa: E712
    return {
        "pool_images": int(pool), "open_images": int(open_), "decisions_needed": int(needed),
        "decisions_done": int(done_pool), "leased_live": int(live),
        "leased_lapsed": int(by_status.get(LEASED, 0)) - int(live),
        "done": int(by_status.get(DONE, 0)), "skipped": int(by_status.get(SKIPPED, 0)),
        "expired": int(by_status.get(EXPIRED, 0)), "released": int(by_status.get(RELEASED, 0)),
        "gold_images": int(gold),
    }
