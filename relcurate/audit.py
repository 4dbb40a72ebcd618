"""The audit trail: who changed accounts or exported data, through which channel.

The security boundary is the web app (and any other network surface): there a signed-in user's
role decides what they may do. The command line is an operator tool for whoever owns the
workspace files or the database credentials, who could edit the store directly anyway; so the
CLI checks no passwords, and instead records each of its account and export actions with an
operator name (``--operator``, ``RELCURATE_OPERATOR``, else the OS login) for the audit trail.
"""
from __future__ import annotations

import getpass
import os
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import AuditEvent

OPERATOR_ENV = "RELCURATE_OPERATOR"
CHANNELS = ("web", "cli")


def default_operator() -> str:
    """The name CLI actions are recorded under when none is given."""
    name = os.environ.get(OPERATOR_ENV)
    if name and name.strip():
        return name.strip()
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers without a passwd entry)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _add_event(session: Session, *, channel: str, actor: str, action: str, target: str | None = None,
               detail: dict[str, Any] | None = None) -> None:
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}")
    session.add(AuditEvent(channel=channel, actor=(actor or "unknown")[:256], action=action[:64],
                           target=None if target is None else target[:256], detail=detail or {}))


def record_event(engine: Engine, *, channel: str, actor: str, action: str, target: str | None = None,
                 detail: dict[str, Any] | None = None) -> None:
    """Append one event (its own transaction). Never put secrets in `detail`."""
    with session_scope(engine) as s:
        _add_event(s, channel=channel, actor=actor, action=action, target=target, detail=detail)


def audit_log(engine: Engine, limit: int = 100) -> list[AuditEvent]:
    """The latest events, newest first."""
    with read_scope(engine) as s:
        return list(s.exec(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))
