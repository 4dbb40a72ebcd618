"""Storing the model-driven queue heads, and what the dashboard reports about them.

Heads are versioned so that writing them never holds SQLite's single writer lock for long.
`write_heads` (each step its own transaction, `run_write`):
1. issue: takes a fresh generation number (QueueConfig.heads_issued + 1);
2. stage: inserts the new rows under it in chunks (SQLite: a few hundred rows, ~1 ms of the
   writer lock each, with as long a pause between, in which a waiting next-task call gets the
   lock; PostgreSQL, where readers and writers do not block each other: one COPY);
3. serve: one tiny transaction points QueueConfig.heads_generation at it (and params at the
   model version that ranked them) — only forward: a generation older than the served one is
   never served;
4. prune: deletes every generation older than the served one, in chunks like the inserts.
Readers (the ranked orders' pick in `ranked_orders`, `head_sizes`, `head_image_ids`) see only
the served generation. So a refresh that dies mid-write leaves the old heads served (its rows
go at the next prune), and two refreshes racing never mix: each writes its own generation, the
higher one wins, the other's rows are pruned (also while it is still staging them).

The single-transaction rewrite this replaced held the writer lock ~30-60 ms for 6,000 rows; a
next-task call waiting behind it sleeps in SQLite's busy handler (1, 2, 5, 10 ms steps).
"""
from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np
from sqlalchemy import case, delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from relcurate.curation.labeling.leases import DONE, FILTER, LEASED, forget_config, locked_config
from relcurate.curation.labeling.ranked_orders import served_generation
from relcurate.db.engine import read_scope
from relcurate.db.models import Answer, CurrentLabel, QueueConfig, QueueRank, TaskAssignment
from relcurate.db.write_retry import pause_for_duty, run_write, write_duty


_HEAD_COLS = "kind, generation, strategy, rank, image_id, model_version_id, score"
# SQLite, each transaction ~1.3 ms of the writer lock at 1M images (2 cores): rows inserted or
# deleted per transaction, and the share of the staging/pruning time that holds the lock.
SQLITE_CHUNK, SQLITE_PRUNE_CHUNK = 250, 1000
SQLITE_DUTY = 0.5


def issue_generation(engine: Engine, kind: str = FILTER) -> int:
    def tx(s: Session) -> int:
        cfg = locked_config(s, kind)
        cfg.heads_issued = max(cfg.heads_issued, cfg.heads_generation) + 1
        return cfg.heads_issued

    return run_write(engine, tx)


def _paced(engine: Engine, chunk: int | None, duty: float | None, default: int) -> tuple[int | None, float]:
    """PostgreSQL: one statement (chunk None) unless told; SQLite: `default` rows a transaction."""
    chunk = chunk if engine.dialect.name == "postgresql" else (chunk or default)
    return chunk, write_duty(engine, duty, SQLITE_DUTY)


def stage_heads(engine: Engine, generation: int, rows: Sequence[tuple], *, chunk: int | None = None,
                duty: float | None = None) -> None:
    """Insert head rows (tuples in _HEAD_COLS order) under `generation`, `chunk` rows a
    transaction (None: all in one), through the driver (executemany of tuples; COPY on
    PostgreSQL): the ORM's bulk insert of dicts took ~0.17 s for 6,000 rows."""
    chunk, duty = _paced(engine, chunk, duty, SQLITE_CHUNK)
    step = chunk or max(1, len(rows))
    for k in range(0, len(rows), step):
        part = rows[k:k + step]
        t0 = time.perf_counter()

        def tx(s: Session) -> None:
            conn = s.connection()
            if conn.dialect.name == "postgresql":
                with conn.connection.driver_connection.cursor().copy(f"COPY queue_rank ({_HEAD_COLS}) FROM STDIN") as cp:
                    for row in part:
                        cp.write_row(row)
            else:
                conn.exec_driver_sql(f"INSERT INTO queue_rank ({_HEAD_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)", part)

        run_write(engine, tx)
        if k + step < len(rows):
            pause_for_duty(t0, duty)


def serve_generation(engine: Engine, generation: int, *, model_version_id: int | None, kind: str = FILTER) -> bool:
    """Point the queue at `generation` (staged completely) and at the model version that ranked
    it; False, changing nothing, when a newer generation is served already (a racing refresh)."""
    def tx(s: Session) -> bool:
        cfg = locked_config(s, kind)
        if generation <= cfg.heads_generation:
            return False
        cfg.heads_generation = generation
        cfg.params = {**(cfg.params or {}), "model_version_id": model_version_id}
        return True

    try:
        return run_write(engine, tx)
    finally:
        forget_config(engine, kind)


def prune_heads(engine: Engine, kind: str = FILTER, *, chunk: int | None = None, duty: float | None = None) -> int:
    """Delete the rows of every generation older than the served one (a crashed or outraced
    refresh's included); returns how many. On SQLite by rank ranges of `chunk` rows per
    transaction, each a walk of the primary key."""
    chunk, duty = _paced(engine, chunk, duty, SQLITE_PRUNE_CHUNK)
    old = (QueueRank.kind == kind) & (QueueRank.generation < served_generation(kind))
    if chunk is None:
        return run_write(engine, lambda s: s.execute(delete(QueueRank).where(old)).rowcount)
    with read_scope(engine) as s:
        groups = s.exec(select(QueueRank.generation, QueueRank.strategy, func.min(QueueRank.rank),
                               func.max(QueueRank.rank)).where(old)
                        .group_by(QueueRank.generation, QueueRank.strategy)).all()
    deleted = 0
    for gen, strategy, lo, hi in groups:
        for start in range(lo, hi + 1, chunk):
            t0 = time.perf_counter()
            deleted += run_write(engine, lambda s: s.execute(delete(QueueRank).where(
                QueueRank.kind == kind, QueueRank.generation == gen, QueueRank.strategy == strategy,
                QueueRank.rank >= start, QueueRank.rank < start + chunk)).rowcount)
            pause_for_duty(t0, duty)
    return deleted


def write_heads(engine: Engine, heads: Mapping[str, tuple[Sequence[int], Sequence[float] | None]], *,
                model_version_id: int | None, kind: str = FILTER, chunk: int | None = None,
                duty: float | None = None) -> dict[str, int]:
    """`heads`: strategy -> (image ids in order, their scores or None); they replace every
    stored head of `kind` (a strategy left out has none afterwards). Returns rows per head.
    Issue, stage, serve, prune (see the module docstring)."""
    rows: list[tuple] = []
    sizes: dict[str, int] = {}
    generation = issue_generation(engine, kind)
    for name, (ids, scores) in heads.items():
        ids = np.asarray(ids, dtype=np.int64).tolist()
        sc = np.asarray(scores, dtype=np.float64).tolist() if scores is not None else [None] * len(ids)
        rows.extend((kind, generation, name, r, i, model_version_id, v) for r, (i, v) in enumerate(zip(ids, sc)))
        sizes[name] = len(ids)
    stage_heads(engine, generation, rows, chunk=chunk, duty=duty)
    serve_generation(engine, generation, model_version_id=model_version_id, kind=kind)
    prune_heads(engine, kind, chunk=chunk, duty=duty)
    return sizes


def head_sizes(engine: Engine, kind: str = FILTER) -> dict[str, int]:
    """Rows per strategy in the served heads."""
    with read_scope(engine) as s:
        return {str(k): int(v) for k, v in s.exec(
            select(QueueRank.strategy, func.count())
            .where(QueueRank.kind == kind, QueueRank.generation == served_generation(kind))
            .group_by(QueueRank.strategy)).all()}


def head_image_ids(engine: Engine, strategy: str, kind: str = FILTER) -> list[int]:
    """The served head of `strategy`: image ids in rank order."""
    with read_scope(engine) as s:
        return list(s.exec(select(QueueRank.image_id)
                           .where(QueueRank.kind == kind, QueueRank.generation == served_generation(kind),
                                  QueueRank.strategy == strategy)
                           .order_by(QueueRank.rank)).all())


def composition_by_strategy(engine: Engine, kind: str = FILTER) -> list[dict]:
    """Per strategy: tasks leased now, tasks done, and how many of the done ones the annotator
    answered Yes (the "labels per strategy that turned out Yes" chart)."""
    yes = func.sum(case((CurrentLabel.answer == Answer.yes.value, 1), else_=0))
    with read_scope(engine) as s:
        base = (select(TaskAssignment.strategy, TaskAssignment.status, func.count(), yes)
                .join(CurrentLabel, (CurrentLabel.image_id == TaskAssignment.image_id)
                      & (CurrentLabel.user_id == TaskAssignment.user_id), isouter=True)
                .where(TaskAssignment.kind == kind, TaskAssignment.status.in_([LEASED, DONE]))
                .group_by(TaskAssignment.strategy, TaskAssignment.status))
        rows = s.exec(base).all()
    out: dict[str, dict] = {}
    for strategy, status, n, n_yes in rows:
        d = out.setdefault(str(strategy), {"strategy": str(strategy), "leased": 0, "done": 0, "yes": 0})
        d[status] += int(n)
        if status == DONE:
            d["yes"] += int(n_yes or 0)
    for d in out.values():
        d["yes_rate"] = d["yes"] / d["done"] if d["done"] else None
    return sorted(out.values(), key=lambda d: d["strategy"])
