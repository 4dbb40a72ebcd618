"""Server-side sign-in sessions for the web app, so a reload or a new tab stays signed in.

The browser holds a random token (a cookie, never a URL); the store holds only its sha256, the
user, an absolute expiry, the last activity and a revocation time. A session is valid while it
is not revoked, not past its expiry, not idle longer than the idle timeout, and its user is
active; checking a session that fails any of these revokes it, so a disabled account or a
logout ends every copy of the token at once.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import select

from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import User, WebSession, utcnow

MAX_AGE_ENV = "RELCURATE_SESSION_MAX_DAYS"
DEFAULT_MAX_AGE_DAYS = 7.0
TOKEN_BYTES = 32


@dataclass(frozen=True)
class ResolvedSession:
    user_id: int
    username: str
    role: str
    expires_at: datetime


def env_amount(name: str, default: float) -> float:
    """A non-negative number from the environment; `default` when unset or not a number."""
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = default
    return max(value, 0.0)


def max_age_s() -> float:
    """Absolute lifetime of a session (env RELCURATE_SESSION_MAX_DAYS, default 7 days)."""
    return env_amount(MAX_AGE_ENV, DEFAULT_MAX_AGE_DAYS) * 86400.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def create_session(engine: Engine, user_id: int, *, lifetime_s: float | None = None) -> str:
    """A new session for this user; returns the token (shown to the browser once, never stored)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    lifetime = max_age_s() if lifetime_s is None else lifetime_s
    with session_scope(engine) as s:
        s.add(WebSession(token_hash=token_hash(token), user_id=user_id, created_at=now,
                         last_seen_at=now, expires_at=now + timedelta(seconds=lifetime)))
    return token


def resolve_session(engine: Engine, token: str | None, *, idle_s: float,
                    now: datetime | None = None) -> ResolvedSession | None:
    """The session's user when the token is valid (and its activity time moves forward), else
    None; an expired, idle or disabled-user session is revoked on the way."""
    if not isinstance(token, str) or not token or len(token) > 256:
        return None
    now = now or utcnow()
    with session_scope(engine) as s:
        row = s.exec(select(WebSession).where(WebSession.token_hash == token_hash(token))).first()
        if row is None or row.revoked_at is not None:
            return None
        user = s.get(User, row.user_id)
        idle = (now - _aware(row.last_seen_at)).total_seconds() > idle_s
        if user is None or not user.active or idle or now >= _aware(row.expires_at):
            row.revoked_at = now
            s.add(row)
            return None
        row.last_seen_at = now
        s.add(row)
        return ResolvedSession(user.id, user.username, str(user.role), _aware(row.expires_at))


def session_alive(engine: Engine, token: str, now: datetime | None = None) -> bool:
    """Not revoked and not past its expiry: one indexed read, cheap enough for every rerun, so a
    logout in one tab ends the others at their next click."""
    now = now or utcnow()
    with read_scope(engine) as s:
        row = s.exec(select(WebSession.revoked_at, WebSession.expires_at)
                     .where(WebSession.token_hash == token_hash(token))).first()
    return row is not None and row[0] is None and now < _aware(row[1])


def touch_session(engine: Engine, token: str, now: datetime | None = None) -> None:
    """Record activity (the idle clock restarts) without checking anything else."""
    with session_scope(engine) as s:
        s.exec(update(WebSession).where(WebSession.token_hash == token_hash(token),
                                        WebSession.revoked_at.is_(None))
               .values(last_seen_at=now or utcnow()))


def revoke_session(engine: Engine, token: str | None) -> None:
    if not token:
        return
    with session_scope(engine) as s:
        s.exec(update(WebSession).where(WebSession.token_hash == token_hash(token),
                                        WebSession.revoked_at.is_(None)).values(revoked_at=utcnow()))


def revoke_user_sessions(engine: Engine, user_id: int) -> int:
    """End every session of a user (disabled account, changed password); returns how many."""
    with session_scope(engine) as s:
        res = s.exec(update(WebSession).where(WebSession.user_id == user_id,
                                              WebSession.revoked_at.is_(None)).values(revoked_at=utcnow()))
        return res.rowcount or 0
