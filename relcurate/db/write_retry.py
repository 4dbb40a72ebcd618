"""Run one write transaction and retry it when a concurrent writer got in the way.

Labeling writes are short and idempotent by design (request ids, check-and-set), so re-running
the whole transaction is the simplest correct answer to the races both back ends can report:
a unique-key conflict (two first labels for one (image, user) at once on PostgreSQL), a
deadlock or serialization failure, or SQLite still locked after its busy timeout.
"""
from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session

from relcurate.db.engine import session_scope

T = TypeVar("T")

# SQLSTATEs worth a retry: serialization failure, deadlock, unique violation.
_RETRY_SQLSTATES = {"40001", "40P01", "23505"}


def _retryable(exc: DBAPIError) -> bool:
    state = getattr(exc.orig, "sqlstate", None)
    if state is not None:
        return state in _RETRY_SQLSTATES
    msg = str(exc.orig).lower()
    # SQLite: unique/primary-key conflicts and "database is locked" after the busy timeout.
    return "unique constraint" in msg or "locked" in msg or "busy" in msg


def run_write(engine: Engine, fn: Callable[[Session], T], attempts: int = 8) -> T:
    """`fn(session)` inside `session_scope`, re-run from scratch on a retryable conflict."""
    for attempt in range(attempts):
        try:
            with session_scope(engine) as s:
                return fn(s)
        except (IntegrityError, OperationalError) as exc:
            if attempt == attempts - 1 or not _retryable(exc):
                raise
            # Jittered backoff so colliding writers do not collide again in lockstep.
            time.sleep(random.uniform(0, 0.002 * (2**attempt)))
    raise AssertionError("unreachable")


def write_duty(engine: Engine, duty: float | None, sqlite_default: float) -> float:
    """The share of time a chunked bulk writer may hold the write lock: `duty` if given, else
    none to give up on PostgreSQL (row locks: labeling never waits on it) and `sqlite_default`
    on SQLite (one writer lock that every next-task call needs)."""
    if duty is not None:
        return duty
    return 1.0 if engine.dialect.name == "postgresql" else sqlite_default


def pause_for_duty(t0: float, duty: float) -> None:
    """After a chunk that began at perf_counter() `t0`: sleep so that chunk held the lock at
    most `duty` of the time (no pause at 1.0)."""
    if duty < 1.0:
        time.sleep((time.perf_counter() - t0) * (1.0 / max(duty, 1e-3) - 1.0))


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
