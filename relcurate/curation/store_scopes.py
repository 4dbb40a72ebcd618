"""The transaction frame of public curation functions: each takes a `Workspace` or an `Engine`
(what pages, the CLI and tests hold) and opens its own transaction; the `Session`-taking
helpers they wrap stay private (``_name``) so no caller has to manage a session."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Union

from sqlalchemy.engine import Engine
from sqlmodel import Session

from relcurate.db.engine import read_scope, session_scope
from relcurate.workspace import Workspace

Store = Union[Workspace, Engine]


def engine_of(store: Store) -> Engine:
    return store if isinstance(store, Engine) else store.engine


@contextmanager
def writing(store: Store) -> Iterator[Session]:
    """One write transaction (commit on success, roll back on error)."""
    with session_scope(engine_of(store)) as s:
        yield s


@contextmanager
def reading(store: Store) -> Iterator[Session]:
    """One read-only transaction (never takes SQLite's write lock)."""
    with read_scope(engine_of(store)) as s:
        yield s
