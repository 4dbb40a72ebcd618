"""Storing the model-driven queue heads, and what the dashboard reports about them.

`write_heads` replaces the stored head of each strategy and points the queue config at the model
version that ranked them, in one short write transaction (a few thousand rows: the next-task
call waits at most that long on SQLite's single writer lock).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from sqlalchemy import case, delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from relcurate.curation.labeling.leases import DONE, FILTER, LEASED, forget_config
from relcurate.db.engine import read_scope
from relcurate.db.models import Answer, CurrentLabel, QueueConfig, QueueRank, TaskAssignment
from relcurate.db.write_retry import run_write


_HEAD_COLS = "kind, strategy, rank, image_id, model_version_id, score"


def write_heads(engine: Engine, heads: Mapping[str, tuple[Sequence[int], Sequence[float] | None]], *,
                model_version_id: int | None, kind: str = FILTER) -> dict[str, int]:
    """`heads`: strategy -> (image ids in order, their scores or None). Returns rows per head.

    The rows go in through the driver (executemany of tuples; COPY on PostgreSQL): the ORM's
    bulk insert of dicts took ~0.17 s for 6,000 rows, all of it holding SQLite's writer lock
    that every next-task call needs."""
    rows_by: dict[str, list[tuple]] = {}
    for name, (ids, scores) in heads.items():
        ids = np.asarray(ids, dtype=np.int64).tolist()
        sc = np.asarray(scores, dtype=np.float64).tolist() if scores is not None else [None] * len(ids)
        rows_by[name] = [(kind, name, r, i, model_version_id, v) for r, (i, v) in enumerate(zip(ids, sc))]

    def tx(s: Session) -> dict[str, int]:
        s.execute(delete(QueueRank).where(QueueRank.kind == kind, QueueRank.strategy.in_(list(rows_by))))
        conn = s.connection()
        if conn.dialect.name == "postgresql":
            with conn.connection.driver_connection.cursor().copy(f"COPY queue_rank ({_HEAD_COLS}) FROM STDIN") as cp:
                for rows in rows_by.values():
                    for row in rows:
                        cp.write_row(row)
        else:
            for rows in rows_by.values():
                if rows:
                    conn.exec_driver_sql(f"INSERT INTO queue_rank ({_HEAD_COLS}) VALUES (?, ?, ?, ?, ?, ?)", rows)
        cfg = s.get(QueueConfig, kind)
        if cfg is None:
            cfg = QueueConfig(kind=kind)
            s.add(cfg)
        cfg.params = {**(cfg.params or {}), "model_version_id": model_version_id}
        return {name: len(rows) for name, rows in rows_by.items()}

    try:
        return run_write(engine, tx)
    finally:
        forget_config(engine, kind)


def head_sizes(engine: Engine, kind: str = FILTER) -> dict[str, int]:
    with read_scope(engine) as s:
        return {str(k): int(v) for k, v in s.exec(
            select(QueueRank.strategy, func.count()).where(QueueRank.kind == kind).group_by(QueueRank.strategy)).all()}


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
