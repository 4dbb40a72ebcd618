"""Helpers for the labeling tests and benches (no tests here): bare image rows and users.

Queue and label code never opens image files, so most tests insert `Image` rows directly —
fast enough for thousands of rows per test.
"""
from __future__ import annotations

import hashlib

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import select

from relcurate import accounts
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import Image


def add_image_rows(engine: Engine, n: int, *, start: int = 0, status: str = "ok",
                   alt_text: str | None = None) -> list[int]:
    """Insert `n` image rows (no files) and return their ids in insertion order."""
    rows = [{"sha256": hashlib.sha256(f"img-{start + i}".encode()).hexdigest(), "ext": "png",
             "source_uri": f"mem://img-{start + i}.png", "alt_text": alt_text, "width": 64, "height": 48,
             "size_bytes": 100, "status": status, "meta": {}} for i in range(n)]
    with session_scope(engine) as s:
        s.execute(insert(Image), rows)
    shas = [r["sha256"] for r in rows]
    found: dict[str, int] = {}
    with read_scope(engine) as s:
        for i in range(0, len(shas), 5000):
            chunk = shas[i:i + 5000]
            found.update(s.exec(select(Image.sha256, Image.id).where(Image.sha256.in_(chunk))).all())
    return [found[sha] for sha in shas]


def add_users(engine: Engine, names: list[str], role: str = "annotator") -> dict[str, int]:
    """Users sharing one argon2 hash of "password" (hashing per user would cost ~50 ms each)."""
    from relcurate.db.models import User

    pw_hash = _password_hash()
    with session_scope(engine) as s:
        users = [User(username=name, role=role, password_hash=pw_hash) for name in names]
        s.add_all(users)
        s.flush()
        return {u.username: u.id for u in users}


_HASH: list[str] = []


def _password_hash() -> str:
    if not _HASH:
        _HASH.append(accounts.hash_password("password"))
    return _HASH[0]
