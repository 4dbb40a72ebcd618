"""Engines and sessions for both back ends.

SQLite (default, one file per workspace): WAL so readers never block the writer, foreign keys on,
and a busy timeout so concurrent writers queue instead of failing. PostgreSQL (team mode): any
SQLAlchemy URL; plain ``postgresql://`` is routed to psycopg 3.
"""
from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> str:
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def is_sqlite(engine_or_url) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; durable at checkpoints
    cur.close()


SQLITE_POLL_S = 0.0002  # between attempts at the write lock, for the first SQLITE_POLL_FOR_S
SQLITE_POLL_FOR_S = 0.02


def _begin_immediate(raw) -> None:
    """BEGIN IMMEDIATE, trying again every 0.2 ms for the first 20 ms before SQLite's busy
    handler takes over (for the rest of the busy timeout). That handler sleeps 1, 2, 5, 10 ...
    ms between attempts, so a next-task call behind a writer that held the lock 1 ms waited
    1-3 ms, and behind a train of short transactions (chunked heads or prediction writes) it
    could keep missing the gaps between them."""
    deadline = time.perf_counter() + SQLITE_POLL_FOR_S
    raw.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            if time.perf_counter() >= deadline:
                break
            time.sleep(SQLITE_POLL_S)
    finally:
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    raw.execute("BEGIN IMMEDIATE")  # SQLite's own wait, up to the busy timeout


def _sqlite_begin(conn) -> None:
    # A deferred transaction that reads and then writes can fail with SQLITE_BUSY when another
    # writer got in between (no busy wait helps). Writers therefore take the write lock at BEGIN
    # (IMMEDIATE): every write transaction is a clean single-writer section. Read-only sessions
    # (`read_scope`) begin DEFERRED so that, with WAL, they never block or wait for a writer.
    if conn.get_execution_options().get("relcurate_readonly"):
        conn.exec_driver_sql("BEGIN")
    else:
        _begin_immediate(conn.connection.driver_connection)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # Take transaction control away from pysqlite so BEGIN IMMEDIATE is ours.
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn, _record):
            dbapi_conn.isolation_level = None

        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One write transaction: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def read_scope(engine: Engine) -> Iterator[Session]:
    """A read-only transaction: never takes SQLite's write lock, so readers don't queue behind
    (or hold up) ingest and labeling writers."""
    # Closing (not rolling back) ends the transaction without expiring loaded objects, so
    # callers can still read them after the block.
    with Session(engine.execution_options(relcurate_readonly=True), expire_on_commit=False) as session:
        yield session
