"""Task <-> image (or caption) and Label Studio user <-> relcurate user.

A Label Studio user is known by e-mail per server. `map_user` ties one to an existing relcurate
account; an unmapped user is tied on first sight to the relcurate account of the same name, or
else to a new annotator account `ls:<e-mail>` that cannot sign in to relcurate (no password),
so their labels count in agreement and adjudication like anyone else's.
"""
from __future__ import annotations

from sqlmodel import Session, select

from relcurate.curation.labelstudio.connection import LabelStudioError
from relcurate.db.engine import read_scope
from relcurate.db.models import LSTask, LSUser, Role, User
from relcurate.db.write_retry import run_write
from relcurate.workspace import Workspace

NO_PASSWORD = "!label-studio"  # not an argon2 hash: authenticate() refuses every password
USER_PREFIX = "ls:"


def map_user(ws: Workspace, server: str, ls_email: str, username: str) -> None:
    """Attribute this Label Studio user's annotations to relcurate user `username` from now on."""
    def tx(s: Session) -> None:
        user = s.exec(select(User).where(User.username == username)).first()
        if user is None:
            raise LabelStudioError(f"no relcurate user {username!r}")
        row = s.exec(select(LSUser).where(LSUser.server == server, LSUser.ls_email == ls_email)).first()
        if row is None:
            s.add(LSUser(server=server, ls_email=ls_email, user_id=user.id))
        else:
            row.user_id = user.id
            s.add(row)

    run_write(ws.engine, tx)


def resolve_users(ws: Workspace, server: str, emails: list[str]) -> dict[str, int]:
    """e-mail -> relcurate user id for these Label Studio users, mapping new ones (idempotent;
    a concurrent pull mapping the same user makes the transaction re-run and find it)."""
    wanted = sorted(set(e for e in emails if e))

    def tx(s: Session) -> dict[str, int]:
        known = dict(s.exec(select(LSUser.ls_email, LSUser.user_id)
                            .where(LSUser.server == server, LSUser.ls_email.in_(wanted))).all())
        for email in wanted:
            if email in known:
                continue
            name = email if s.exec(select(User.id).where(User.username == email)).first() else \
                (USER_PREFIX + email)[:128]
            user = s.exec(select(User).where(User.username == name)).first()
            if user is None:
                user = User(username=name, role=Role.annotator, password_hash=NO_PASSWORD)
                s.add(user)
                s.flush()
            s.add(LSUser(server=server, ls_email=email, user_id=user.id))
            known[email] = user.id
        return known

    return run_write(ws.engine, tx) if wanted else {}


def task_map(ws: Workspace, project_id: int) -> dict[int, LSTask]:
    """Label Studio task id -> mapping row, for one project."""
    with read_scope(ws.engine) as s:
        return {t.ls_task_id: t for t in s.exec(select(LSTask).where(LSTask.project_id == project_id))}


def mapped_count(ws: Workspace, project_id: int) -> int:
    from sqlalchemy import func

    with read_scope(ws.engine) as s:
        return int(s.exec(select(func.count()).select_from(LSTask).where(LSTask.project_id == project_id)).one())
