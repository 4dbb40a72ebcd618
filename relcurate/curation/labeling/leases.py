"""Labeling queue: leases with expiry, overlap, gold (honeypot) mixing and pluggable orders.

State lives in three tables. `LabelTask` holds one row per image in the pool with a random
`order_key` fixed at creation, the overlap `target` (k annotators on a sampled fraction, 1
elsewhere, 0 for gold images), `assigned` (leases held or finished that count towards the
target) and `is_open` (assigned < target). `TaskAssignment` is the lease of one image to one
annotator (unique per kind, image, user; re-leasing reuses the row). `QueueConfig` holds the
per-kind settings.

Handing out a task is therefore an index walk over (kind, is_open, order_key) that probes the
annotator's own assignment per candidate, never ``ORDER BY random()`` over the table. Taking the
slot is one statement, ``UPDATE label_task SET assigned = assigned + 1 ... WHERE image_id =
(first candidate) RETURNING image_id`` (on PostgreSQL the lease insert rides along in a
data-modifying CTE), inside one write transaction: on PostgreSQL the candidate row is taken with
``FOR UPDATE OF label_task SKIP LOCKED`` (concurrent annotators take different rows instead of
queueing), on SQLite the transaction begins IMMEDIATE (one writer at a time). Either way
`is_open` is re-checked and `assigned` incremented under the lock, so an image is never handed
to more annotators than its overlap allows. Measured at a million pooled images (bench/
label_latency.py): ~0.3 ms (SQLite) and ~1.2 ms (PostgreSQL) per new lease, median.

Lock order is always label_task row, then task_assignment row, so leasing, labeling and
expiry never deadlock against each other.

Counting rule: an assignment counts towards its image's target while it is `leased` or `done`;
`skipped`, `expired` and `released` do not (the image goes back to the pool for others).
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol

import numpy as np
from sqlalchemy import and_, bindparam, case, delete, exists, func, literal, null, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from relcurate.curation.labeling import ranked_orders  # noqa: F401 - registers the model-driven orders
from relcurate.curation.labeling.task_order import TaskOrder, make_strategy, strategy_names
from relcurate.db.write_retry import is_postgres, run_write
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
RECLAIM_EVERY = timedelta(seconds=1)
ANALYZE_AFTER = 1000  # rows added by one sync_pool before PostgreSQL statistics are refreshed


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


# -- configuration --------------------------------------------------------------------------

def _config(s: Session, kind: str) -> QueueConfig:
    cfg = s.get(QueueConfig, kind)
    return cfg if cfg is not None else QueueConfig(kind=kind)


def get_config(engine: Engine, kind: str = FILTER) -> QueueConfig:
    with read_scope(engine) as s:
        return _config(s, kind)


DWELL_KEY = "min_dwell_ms"  # in QueueConfig.params: how long an image is on screen before a key counts
DWELL_ENV = "RELCURATE_MIN_DWELL_MS"  # the fallback when the workspace never set one
DEFAULT_DWELL_MS, MAX_DWELL_MS = 200, 5000


def min_dwell_ms(engine: Engine, kind: str = FILTER) -> int:
    """How long an image must be on screen before a key counts (ms): the workspace's setting
    (Labeling setup, `relcurate labels config --min-dwell-ms`), else env RELCURATE_MIN_DWELL_MS,
    else 200. Read through the per-process config cache (the page asks on every render)."""
    with engine.connect() as conn:
        value = (_cached_config(conn, engine, kind).params or {}).get(DWELL_KEY)
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return max(0, min(MAX_DWELL_MS, int(os.environ.get(DWELL_ENV, "") or DEFAULT_DWELL_MS)))
    except ValueError:
        return DEFAULT_DWELL_MS


def _target_expr(cfg: QueueConfig):
    return case((LabelTask.sample_u < cfg.overlap_fraction, cfg.overlap_k), else_=1)


def locked_config(s: Session, kind: str) -> QueueConfig:
    """The queue config row for writing, created if missing; locked on PostgreSQL (on SQLite the
    write transaction holds the lock). Two first writers on PostgreSQL: one gets a unique
    violation at the flush and `run_write` retries it."""
    cfg = s.get(QueueConfig, kind, with_for_update=True)
    if cfg is None:
        cfg = QueueConfig(kind=kind)
        s.add(cfg)
        s.flush()
    return cfg


def set_config(engine: Engine, kind: str = FILTER, *, overlap_k: int | None = None,
               overlap_fraction: float | None = None, gold_rate: float | None = None,
               lease_seconds: int | None = None, strategy: str | None = None,
               params: dict | None = None, min_dwell_ms: int | None = None,
               user_id: int | None = None) -> QueueConfig:
    """Change the queue settings. A new overlap applies to every task at once (targets are
    recomputed from each task's fixed `sample_u`, so the sampled set is stable).
    `min_dwell_ms` (kept in `params`): how long an image must be on screen before a key counts."""
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
    if min_dwell_ms is not None and not 0 <= min_dwell_ms <= MAX_DWELL_MS:
        raise QueueError(f"the minimum dwell must be between 0 and {MAX_DWELL_MS} ms")

    def tx(s: Session) -> QueueConfig:
        cfg = locked_config(s, kind)  # a heads refresh serving a new generation writes params too
        old = (cfg.overlap_k, cfg.overlap_fraction)
        for name, value in (("overlap_k", overlap_k), ("overlap_fraction", overlap_fraction),
                            ("gold_rate", gold_rate), ("lease_seconds", lease_seconds),
                            ("strategy", strategy), ("params", params)):
            if value is not None:
                setattr(cfg, name, value)
        if min_dwell_ms is not None:  # a new dict: JSON columns notice reassignment, not mutation
            cfg.params = {**(cfg.params or {}), DWELL_KEY: int(min_dwell_ms)}
        cfg.updated_by, cfg.updated_at = user_id, utcnow()
        s.flush()
        if (cfg.overlap_k, cfg.overlap_fraction) != old:
            target = _target_expr(cfg)
            s.execute(update(LabelTask).where(LabelTask.kind == kind, LabelTask.target > 0)
                      .values(target=target, is_open=LabelTask.assigned < target))
        return cfg

    try:
        return run_write(engine, tx)
    finally:
        _config_cache.pop(_cache_key(engine, kind), None)


def forget_config(engine: Engine, kind: str = FILTER) -> None:
    """Drop this process's cached queue config (after a write that bypassed `set_config`)."""
    _config_cache.pop(_cache_key(engine, kind), None)


# -- the pool -------------------------------------------------------------------------------

def sync_pool(engine: Engine, kind: str = FILTER, *, full: bool = False, seed: int | None = None,
              batch: int = 50_000) -> int:
    """Add a LabelTask for every usable image that has none; returns how many were added.

    The default is the cheap incremental pass (images with ids above the highest pooled id: two
    index lookups when nothing is new, so pages may call it on every visit). `full=True` also
    finds older images that became usable later (a finished download) with an anti-join, and
    closes the tasks of images quarantined since they were pooled.
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
                rows.append((kind, image_id, key, u, target, 0, target > 0))
            _insert_tasks(s, rows)
            return len(rows), ids[-1]

        n, last_id = run_write(engine, tx)
        added += n
        if n == 0:
            break
    if full:
        # Close the tasks of images that stopped being usable (quarantined after pooling).
        unusable = select(Image.id).where(Image.status != ImageStatus.ok)
        run_write(engine, lambda s: s.execute(
            update(LabelTask).where(LabelTask.kind == kind, LabelTask.target > 0, LabelTask.image_id.in_(unusable))
            .values(target=0, is_open=False)))
    if added >= ANALYZE_AFTER and engine.dialect.name == "postgresql":
        # Fresh statistics: planned against an "empty" label_task, PostgreSQL would sort the
        # whole open set instead of walking the order index (seconds at a million rows).
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE label_task")
    return added


_TASK_COLS = "kind, image_id, order_key, sample_u, target, assigned, is_open"


def _insert_tasks(s: Session, rows: list[tuple]) -> None:
    """Bulk insert through the driver (COPY on PostgreSQL): a million-image pool in seconds.

    A task another process inserted meanwhile (two ingests syncing the pool at once) is skipped,
    not an error: COPY goes into a per-transaction staging table, then INSERT ... ON CONFLICT
    DO NOTHING (a plain COPY into label_task raised UniqueViolation)."""
    conn = s.connection()
    if is_postgres(s):
        conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS label_task_stage "
                             "(LIKE label_task INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        with conn.connection.driver_connection.cursor().copy(f"COPY label_task_stage ({_TASK_COLS}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
        conn.exec_driver_sql(f"INSERT INTO label_task ({_TASK_COLS}) SELECT {_TASK_COLS} FROM label_task_stage "
                             "ON CONFLICT DO NOTHING")
        conn.exec_driver_sql("DELETE FROM label_task_stage")
    else:
        conn.exec_driver_sql(f"INSERT OR IGNORE INTO label_task ({_TASK_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


# -- leasing --------------------------------------------------------------------------------
# The hot path (one next_task and one record_label per decision) runs prebuilt Core statements
# on the session's connection: the ORM's per-object bookkeeping would cost more than the
# queries themselves (the next-task goal is a few milliseconds at a million images).

_T = LabelTask.__table__
_A = TaskAssignment.__table__
_b = bindparam

_CONFIG = select(QueueConfig.__table__).where(QueueConfig.__table__.c.kind == _b("kind"))
_TASK_ROW = select(_T.c.assigned, _T.c.target).where(_T.c.kind == _b("kind"), _T.c.image_id == _b("image_id"))
_BUMP = (update(_T).where(_T.c.kind == _b("k"), _T.c.image_id == _b("img"))
         .values(assigned=_T.c.assigned + _b("delta"), is_open=_T.c.assigned + _b("delta") < _T.c.target))
_LAPSED = (select(_A.c.id, _A.c.image_id, _A.c.is_gold)
           .where(_A.c.status == LEASED, _A.c.expires_at < _b("now"), _A.c.kind == _b("kind"))
           .limit(RECLAIM_BATCH))
_EXPIRE = (update(_A).where(_A.c.id == _b("ta_id"), _A.c.status == LEASED, _A.c.expires_at < _b("now"))
           .values(status=EXPIRED))
# The annotator's live leases: the most recent (what `next_task` hands back: an undone image
# comes back first) or every one in the order they were taken (a batch shares `leased_at`, so
# the id keeps the queue order within it: what `next_tasks` hands back first).
_LIVE_WHERE = and_(_A.c.user_id == _b("user_id"), _A.c.status == LEASED, _A.c.kind == _b("kind"),
                   _A.c.expires_at >= _b("now"))
_NEWEST, _OLDEST = (_A.c.leased_at.desc(), _A.c.id.desc()), (_A.c.leased_at, _A.c.id)
_LIVE = select(_A).where(_LIVE_WHERE).order_by(*_NEWEST).limit(1)
_ALL_LIVE = select(_A).where(_LIVE_WHERE).order_by(*_OLDEST)
# PostgreSQL: the same reads carry the lease transaction's settings (`SET LOCAL` as set_config,
# in a one-row CTE the live leases are LEFT JOINed to, so it is evaluated even when there are
# none; the row of NULLs then stands for "no live lease"): one round trip fewer per call than a
# separate set_config statement. A lease is disposable: losing the last few in a server crash
# only means those images are handed out again, so skip the WAL flush wait (~5 ms here); label
# writes keep synchronous commits. And no JIT: the pick's estimated cost (a LIMIT 1 over a
# million-row index walk) crosses jit_above_cost, and compiling takes ~100 ms for a query that
# runs in a fraction of a millisecond.
_LEASE_SETTINGS = select(func.set_config("synchronous_commit", "off", True).label("sync_off"),
                         func.set_config("jit", "off", True).label("jit_off")).cte("lease_settings")
_LIVE_PG = select(_A).select_from(_LEASE_SETTINGS.outerjoin(_A, _LIVE_WHERE)).order_by(*_NEWEST).limit(1)
_ALL_LIVE_PG = select(_A).select_from(_LEASE_SETTINGS.outerjoin(_A, _LIVE_WHERE)).order_by(*_OLDEST)
# (every live lease?, PostgreSQL?) -> the read
_LIVE_READS = {(False, False): _LIVE, (True, False): _ALL_LIVE, (False, True): _LIVE_PG, (True, True): _ALL_LIVE_PG}

_TOUCH = update(_A).where(_A.c.id == _b("ta_id")).values(expires_at=_b("expires"))
_OWN = select(_A.c.id, _A.c.status, _A.c.is_gold, _A.c.strategy, _A.c.model_version_id).where(_A.c.kind == _b("kind"), _A.c.image_id == _b("image_id"),
                                                         _A.c.user_id == _b("user_id"))
_SET_STATUS = update(_A).where(_A.c.id == _b("ta_id")).values(status=_b("new_status"), completed_at=_b("done_at"))
# Open tasks this annotator has not had (an expired or released lease of theirs does not count).
# Written as "(SELECT 1 ... LIMIT 1) IS NULL" rather than NOT EXISTS: PostgreSQL never turns a
# LIMITed subquery into an anti-join, so the plan stays "walk the order index, probe the
# annotator's assignment per row" whatever the table statistics say (a stale-statistics
# anti-join plan materialises all of the annotator's assignments for every candidate).
def _unseen_by_user(image_col):
    return (select(literal(1)).where(TaskAssignment.kind == _b("q_kind"), TaskAssignment.image_id == image_col,
                                     TaskAssignment.user_id == _b("q_user"), TaskAssignment.status.not_in(INACTIVE))
            .limit(1).scalar_subquery().is_(None))


_CANDIDATES = select(LabelTask.image_id).where(
    LabelTask.kind == _b("q_kind"), LabelTask.is_open == True,  # noqa: E712 - SQL expression
    _unseen_by_user(LabelTask.image_id),
    # An image quarantined after it was pooled is passed over (sync_pool(full=True) closes it).
    select(Image.status).where(Image.id == LabelTask.image_id).scalar_subquery() == ImageStatus.ok)


def _lease_upsert(dialect_insert):
    """Insert the lease, or re-lease this annotator's earlier (expired/released) row for the
    image — the unique (kind, image_id, user_id) key allows one row per annotator and image."""
    ins = dialect_insert(_A)
    return ins.on_conflict_do_update(
        index_elements=[_A.c.kind, _A.c.image_id, _A.c.user_id],
        set_={c: ins.excluded[c] for c in ("status", "strategy", "model_version_id", "is_gold", "leased_at",
                                           "expires_at", "completed_at")},
    ).returning(_A.c.id)


_UPSERT_LEASE = {"postgresql": _lease_upsert(postgresql.insert), "sqlite": _lease_upsert(sqlite.insert)}
_GOLD_CANDIDATES = (select(GoldAnswer.image_id).join(Image, Image.id == GoldAnswer.image_id)
                    .where(Image.status == ImageStatus.ok, _unseen_by_user(GoldAnswer.image_id)).limit(64))


def _config_row(conn: Connection, kind: str) -> QueueConfig:
    row = conn.execute(_CONFIG, {"kind": kind}).first()
    return QueueConfig(**row._mapping) if row is not None else QueueConfig(kind=kind)


def _lock_task_row(s: Session, kind: str, image_id: int):
    """The image's queue row (assigned, target), locked on PostgreSQL; None if not pooled."""
    q = _TASK_ROW.with_for_update() if is_postgres(s) else _TASK_ROW
    return s.connection().execute(q, {"kind": kind, "image_id": image_id}).first()


def _bump(conn: Connection, kind: str, image_id: int, delta: int) -> None:
    """Change `assigned` by delta and keep `is_open` in step (caller holds the row lock)."""
    if delta:
        conn.execute(_BUMP, {"k": kind, "img": image_id, "delta": delta})


def reclaim_expired(s: Session, kind: str, now: datetime) -> int:
    """Turn lapsed leases (up to RECLAIM_BATCH per call) into `expired` and give their slots
    back to the pool."""
    conn, pg = s.connection(), is_postgres(s)
    n = 0
    for ta_id, image_id, is_gold in conn.execute(_LAPSED, {"now": now, "kind": kind}).all():
        if not is_gold and pg:
            # Lock order label_task -> assignment; skip rows another transaction is working on.
            if conn.execute(_TASK_ROW.with_for_update(skip_locked=True),
                            {"kind": kind, "image_id": image_id}).first() is None:
                continue
        if conn.execute(_EXPIRE, {"ta_id": ta_id, "now": now}).rowcount == 1:
            n += 1
            if not is_gold:
                _bump(conn, kind, image_id, -1)
    return n


def _own_assignment(s: Session, kind: str, image_id: int, user_id: int):
    """(id, status, is_gold, strategy, model_version_id) of this annotator's assignment for the image, locked on PostgreSQL."""
    q = _OWN.with_for_update() if is_postgres(s) else _OWN
    return s.connection().execute(q, {"kind": kind, "image_id": image_id, "user_id": user_id}).first()


def _lease(s: Session, *, kind: str, image_id: int, user_id: int, now: datetime, lease: timedelta,
           strategy: str, model_version_id: int | None, is_gold: bool) -> Task:
    until = now + lease
    ta_id = s.connection().execute(_UPSERT_LEASE[s.get_bind().dialect.name], {
        "kind": kind, "image_id": image_id, "user_id": user_id, "status": LEASED, "strategy": strategy,
        "model_version_id": model_version_id, "is_gold": is_gold, "leased_at": now, "expires_at": until,
        "completed_at": None}).scalar_one()
    return Task(ta_id, image_id, kind, strategy, model_version_id, is_gold, now, until)


def _take_statement(order: TaskOrder, pg: bool):
    """One statement that picks the strategy's first open task and takes a slot of it:
    UPDATE label_task SET assigned = assigned + 1 ... WHERE image_id = (first candidate)
    RETURNING image_id.

    On PostgreSQL the candidate is locked with SKIP LOCKED, so concurrent annotators take
    different rows instead of queueing on the same one, and it is joined as a CTE
    (UPDATE ... FROM pick): with a scalar subquery instead, a candidate that another annotator
    had just taken a slot of sends the UPDATE into its EvalPlanQual recheck, which re-ran the
    SKIP LOCKED subquery, got a different row and updated nothing — `next_task` then wrongly
    said the pool was empty (seen under CPU load in the stress test)."""
    pick = order.order(_CANDIDATES).limit(1)
    values = dict(assigned=_T.c.assigned + 1, is_open=_T.c.assigned + 1 < _T.c.target)
    if pg:
        picked = pick.with_for_update(of=_T, skip_locked=True).cte("pick")
        return (update(_T).where(_T.c.kind == _b("k"), _T.c.image_id == picked.c.image_id)
                .values(**values).returning(_T.c.image_id))
    return (update(_T)
            .where(_T.c.kind == _b("k"), _T.c.image_id == pick.correlate(None).scalar_subquery())
            .values(**values)
            .returning(_T.c.image_id))


_LEASE_COLS = ("kind", "image_id", "user_id", "status", "strategy", "model_version_id", "is_gold", "leased_at",
               "expires_at", "completed_at")


def _take_and_lease_pg(order: TaskOrder):
    """PostgreSQL: take a slot and write the lease in one round trip (a data-modifying CTE):
    WITH taken AS (UPDATE label_task ... RETURNING image_id) INSERT INTO task_assignment
    SELECT ... FROM taken ON CONFLICT DO UPDATE ... RETURNING id, image_id."""
    taken = _take_statement(order, True).cte("taken")
    ts_type = _A.c.leased_at.type
    rows = select(_b("l_kind", type_=_A.c.kind.type), taken.c.image_id, _b("l_user", type_=_A.c.user_id.type),
                  literal(LEASED, _A.c.status.type), _b("l_strat", type_=_A.c.strategy.type),
                  _b("l_mv", type_=_A.c.model_version_id.type), literal(False, _A.c.is_gold.type),
                  _b("l_at", type_=ts_type), _b("l_until", type_=ts_type), null())
    ins = postgresql.insert(_A).from_select(list(_LEASE_COLS), rows)
    ins = ins.on_conflict_do_update(
        index_elements=[_A.c.kind, _A.c.image_id, _A.c.user_id],
        set_={c: ins.excluded[c] for c in _LEASE_COLS[3:]})
    return ins.add_cte(taken).returning(_A.c.id, _A.c.image_id)


@lru_cache(maxsize=64)
def _cached_pick_statement(order: TaskOrder, pg: bool):
    return _take_and_lease_pg(order) if pg else _take_statement(order, False)


def _pick_statement(order: TaskOrder, pg: bool):
    """The pick statement for this order, built once per (hashable) strategy: building and
    cache-keying it costs ~1.4 ms of Python a call, more than running it. Frozen dataclasses
    (RandomOrder, SequentialOrder) hash by value and hit; unhashable orders are built each time."""
    try:
        return _cached_pick_statement(order, pg)
    except TypeError:
        return _take_and_lease_pg(order) if pg else _take_statement(order, False)


def _lease_from_pool(s: Session, kind: str, user_id: int, now: datetime, lease: timedelta,
                     order: TaskOrder) -> Task | None:
    """The order's first open task; when it has none, its `fallbacks` in turn (a model-driven
    order whose stored head is used up falls back to the random order)."""
    for o in (order, *getattr(order, "fallbacks", ())):
        task = _lease_one_from_pool(s, kind, user_id, now, lease, o)
        if task is not None:
            return task
    return None


def _lease_one_from_pool(s: Session, kind: str, user_id: int, now: datetime, lease: timedelta,
                         order: TaskOrder) -> Task | None:
    conn = s.connection()
    if is_postgres(s):
        row = conn.execute(_pick_statement(order, True), {
            "k": kind, "q_kind": kind, "q_user": user_id, "l_kind": kind, "l_user": user_id,
            "l_strat": order.name, "l_mv": order.model_version_id, "l_at": now, "l_until": now + lease}).first()
        if row is None:
            return None
        return Task(row.id, row.image_id, kind, order.name, order.model_version_id, False, now, now + lease)
    image_id = conn.execute(_pick_statement(order, False), {"k": kind, "q_kind": kind, "q_user": user_id}).scalar()
    if image_id is None:
        return None
    return _lease(s, kind=kind, image_id=image_id, user_id=user_id, now=now, lease=lease,
                  strategy=order.name, model_version_id=order.model_version_id, is_gold=False)


def _lease_gold(s: Session, kind: str, user_id: int, now: datetime, lease: timedelta, rng: Rng) -> Task | None:
    # Gold sets are small (hundreds), so a random pick among the first few unseen is fine.
    ids = s.connection().execute(_GOLD_CANDIDATES, {"q_kind": kind, "q_user": user_id}).scalars().all()
    if not ids:
        return None
    return _lease(s, kind=kind, image_id=rng.choice(ids), user_id=user_id, now=now, lease=lease,
                  strategy=GOLD_STRATEGY, model_version_id=None, is_gold=True)


_last_reclaim: dict[tuple[str, str], datetime] = {}
CONFIG_TTL_S = 2.0
_config_cache: dict[tuple[str, str], tuple[float, QueueConfig]] = {}


def _cache_key(engine: Engine, kind: str) -> tuple[str, str]:
    return engine.url.render_as_string(hide_password=True), kind


def _cached_config(conn: Connection, engine: Engine, kind: str) -> QueueConfig:
    """The queue config, re-read at most every CONFIG_TTL_S per process (set_config clears it
    here at once; other processes see a change within the TTL)."""
    key = _cache_key(engine, kind)
    hit = _config_cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < CONFIG_TTL_S:
        return hit[1]
    cfg = _config_row(conn, kind)
    _config_cache[key] = (time.monotonic(), cfg)
    return cfg


def _maybe_reclaim(s: Session, engine: Engine, kind: str, now: datetime) -> None:
    """Reclaim lapsed leases at most once per RECLAIM_EVERY of `now` per process and queue:
    leases last minutes, so a second's delay is invisible, and most calls save a query."""
    key = _cache_key(engine, kind)
    last = _last_reclaim.get(key)
    if last is None or now < last or now - last >= RECLAIM_EVERY:
        _last_reclaim[key] = now
        reclaim_expired(s, kind, now)


def _begin_lease_tx(s: Session, engine: Engine, kind: str, now: datetime, user_id: int,
                    every: bool) -> tuple[Connection, QueueConfig, list]:
    """The lease transaction's first steps: the annotator's live leases (the newest, or `every`
    one; read first: on PostgreSQL that read also applies the lease settings), the queue config,
    and now and then the reclaim of lapsed leases. Returns (connection, config, live lease rows)."""
    conn, pg = s.connection(), is_postgres(s)
    rows = conn.execute(_LIVE_READS[every, pg], {"user_id": user_id, "kind": kind, "now": now}).all()
    live = [r for r in rows if r.id is not None]  # PostgreSQL: the settings row alone means none
    cfg = _cached_config(conn, engine, kind)
    _maybe_reclaim(s, engine, kind, now)
    return conn, cfg, live


def _held(conn: Connection, row, now: datetime, lease: timedelta) -> Task:
    """A live lease as a Task, extended when half of it is used up."""
    expires = row.expires_at
    if expires - now < lease / 2:
        expires = now + lease
        conn.execute(_TOUCH, {"ta_id": row.id, "expires": expires})
    return Task(row.id, row.image_id, row.kind, row.strategy, row.model_version_id,
                bool(row.is_gold), row.leased_at, expires)


def _lease_new(s: Session, kind: str, user_id: int, now: datetime, cfg: QueueConfig, rng: Rng) -> Task | None:
    """A new lease: a gold image with probability `gold_rate`, else the strategy's first open task."""
    lease = timedelta(seconds=cfg.lease_seconds)
    task = None
    if cfg.gold_rate > 0 and rng.random() < cfg.gold_rate:
        task = _lease_gold(s, kind, user_id, now, lease, rng)
    if task is None:
        task = _lease_from_pool(s, kind, user_id, now, lease, make_strategy(cfg.strategy, s, cfg))
    return task


def next_task(engine: Engine, user_id: int, kind: str = FILTER, *, now: datetime | None = None,
              rng: Rng | None = None) -> Task | None:
    """The task this annotator should see now: their live lease if they hold one (the most
    recently leased, so an undone image comes back first; the lease is extended), else a new
    lease (a gold image with probability `gold_rate`, else the strategy's first open task).
    None when the pool has nothing left for them."""
    now = now or utcnow()
    rng = rng or random

    def tx(s: Session) -> Task | None:
        conn, cfg, live = _begin_lease_tx(s, engine, kind, now, user_id, every=False)
        if live:
            return _held(conn, live[0], now, timedelta(seconds=cfg.lease_seconds))
        return _lease_new(s, kind, user_id, now, cfg, rng)

    return run_write(engine, tx)


MAX_PREFETCH = 16


def next_tasks(engine: Engine, user_id: int, k: int, kind: str = FILTER, *, now: datetime | None = None,
               rng: Rng | None = None) -> list[Task]:
    """Up to `k` tasks held at once, for a page that prefetches the next images: every live
    lease of this annotator in the order they were taken (extended like `next_task`'s), then
    new leases taken the way `next_task` takes one (gold mixing, the strategy's order, overlap
    slots) until `k` are held, all in one write transaction. Holding more than `k` (an undone
    image leased again) returns them all; fewer only when the pool has nothing left for them.

    Each held lease occupies one of its image's overlap slots until decided, released or
    expired, exactly as a single lease does; the page shows them in the returned order."""
    if not 1 <= k <= MAX_PREFETCH:
        raise QueueError(f"prefetch between 1 and {MAX_PREFETCH} tasks, not {k}")
    now = now or utcnow()
    rng = rng or random

    def tx(s: Session) -> list[Task]:
        conn, cfg, live = _begin_lease_tx(s, engine, kind, now, user_id, every=True)
        lease = timedelta(seconds=cfg.lease_seconds)
        tasks = [_held(conn, row, now, lease) for row in live]
        while len(tasks) < k:
            task = _lease_new(s, kind, user_id, now, cfg, rng)
            if task is None:
                break
            tasks.append(task)
        return tasks

    return run_write(engine, tx)


def release_task(engine: Engine, user_id: int, assignment_id: int) -> bool:
    """Give a held lease back at once (sign-out, "not now"); False if it was not held."""
    def tx(s: Session) -> bool:
        ta = s.get(TaskAssignment, assignment_id)
        if ta is None or ta.user_id != user_id or ta.status != LEASED:
            return False
        _lock_task_row(s, ta.kind, ta.image_id)
        own = _own_assignment(s, ta.kind, ta.image_id, user_id)
        if own is None or own.status != LEASED:
            return False
        s.connection().execute(_SET_STATUS, {"ta_id": own.id, "new_status": RELEASED, "done_at": None})
        if not own.is_gold:
            _bump(s.connection(), ta.kind, ta.image_id, -1)
        return True

    return run_write(engine, tx)


def release_held(engine: Engine, user_id: int, kind: str = FILTER) -> int:
    """Give back every lease this user holds (sign-out: the prefetched images go back to the
    pool at once instead of waiting out their leases). Returns how many were released."""
    def tx(s: Session) -> int:
        held = list(s.exec(select(TaskAssignment).where(TaskAssignment.user_id == user_id,
                                                        TaskAssignment.kind == kind,
                                                        TaskAssignment.status == LEASED)
                           .order_by(TaskAssignment.image_id)))  # one lock order: no deadlock
        for ta in held:
            _lock_task_row(s, kind, ta.image_id)
            s.connection().execute(_SET_STATUS, {"ta_id": ta.id, "new_status": RELEASED, "done_at": None})
            if not ta.is_gold:
                _bump(s.connection(), kind, ta.image_id, -1)
        return len(held)

    return run_write(engine, tx)


# -- hooks used by labels.py inside its transaction ------------------------------------------

def lease_of_request(s: Session, request_id: str) -> tuple[int, int] | None:
    """(image id, user id) of the lease a `Task.request_id` names, or None when the id is not
    a lease's (labels from other sources) or its lease is gone. Lets the store refuse a
    decision that names one shown task but another image."""
    parts = request_id.split(":")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    row = s.connection().execute(select(_A.c.image_id, _A.c.user_id).where(_A.c.id == int(parts[1]))).first()
    return (row.image_id, row.user_id) if row is not None else None


def lock_task_row(s: Session, kind: str, image_id: int) -> None:
    """Take the image's queue row lock first (PostgreSQL), keeping the global lock order."""
    _lock_task_row(s, kind, image_id)


def on_decision(s: Session, kind: str, image_id: int, user_id: int, answer: str, now: datetime) -> None:
    """A label was recorded: finish the annotator's assignment (skip gives the slot back)."""
    own = _own_assignment(s, kind, image_id, user_id)
    if own is None:
        return
    new_status = SKIPPED if answer == Answer.skip else DONE
    if own.status == new_status:
        return
    conn = s.connection()
    conn.execute(_SET_STATUS, {"ta_id": own.id, "new_status": new_status, "done_at": now})
    if not own.is_gold:
        _bump(conn, kind, image_id, int(new_status in COUNTING) - int(own.status in COUNTING))


def on_retract(s: Session, kind: str, image_id: int, user_id: int, now: datetime) -> bool:
    """A label was undone: lease the image to the same annotator again so they re-decide it.
    False when that would exceed the overlap (their skip's slot was taken meanwhile)."""
    own = _own_assignment(s, kind, image_id, user_id)
    if own is None:
        return False
    conn = s.connection()
    row = conn.execute(_TASK_ROW, {"kind": kind, "image_id": image_id}).first()
    counted = own.status in COUNTING
    if not counted and not own.is_gold and row is not None and row.assigned >= row.target:
        return False
    cfg = _config_row(conn, kind)
    _lease(s, kind=kind, image_id=image_id, user_id=user_id, now=now,
           lease=timedelta(seconds=cfg.lease_seconds), strategy=own.strategy,
           model_version_id=own.model_version_id, is_gold=bool(own.is_gold))
    if not own.is_gold and not counted:
        _bump(conn, kind, image_id, +1)
    return True


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

def decisions_done(engine: Engine) -> int:
    """Finished assignments of every kind, gold included: an index-only count, cheap enough
    for every page view (unlike `decisions_needed`, which sums over the whole pool)."""
    with read_scope(engine) as s:
        return int(s.exec(select(func.count()).select_from(TaskAssignment).where(TaskAssignment.status == DONE)).one())


def decisions_needed(engine: Engine, kind: str = FILTER) -> int:
    """Decisions the overlap settings ask for over the pool (a full scan: cache it)."""
    with read_scope(engine) as s:
        return int(s.exec(select(func.coalesce(func.sum(LabelTask.target), 0)).where(LabelTask.kind == kind)).one())


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
