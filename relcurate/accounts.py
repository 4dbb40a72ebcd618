"""Users, passwords (argon2) and what each role may do.

Roles are enforced by the web app, the security boundary (see audit.py). Account changes name
who made them (`by`: the admin's username in the app, the operator's name on the command line)
and through which `channel`; that lands in the audit trail in the same transaction."""
from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine
from sqlmodel import select

from relcurate.db.engine import read_scope, session_scope
from relcurate.audit import _add_event
from relcurate.db.models import Role, User

_hasher = PasswordHasher()

# Which roles may do what. Admin may do everything.
PERMISSIONS: dict[str, set[Role]] = {
    "label": {Role.annotator, Role.curator, Role.reviewer, Role.admin},
    "curate": {Role.curator, Role.admin},
    "review": {Role.reviewer, Role.curator, Role.admin},
    "adjudicate": {Role.reviewer, Role.admin},
    "export": {Role.curator, Role.admin},
    "delete": {Role.admin},
    "manage_users": {Role.admin},
    "view_dashboard": {Role.annotator, Role.curator, Role.reviewer, Role.admin},
}


class AccountError(Exception):
    pass


def can(role: str, action: str) -> bool:
    if action not in PERMISSIONS:
        raise KeyError(f"unknown action {action!r}")
    return Role(role) in PERMISSIONS[action]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def validate_username(username: str) -> str:
    """The stripped name, or AccountError: 1-64 characters, letters, digits and . _ @ - (no
    spaces, markup, control characters or look-alike Unicode), starting with a letter or digit."""
    name = username.strip()
    if not name:
        raise AccountError("username must not be empty")
    if not USERNAME.fullmatch(name):
        raise AccountError("a username has 1-64 characters: letters, digits and . _ @ - "
                           "(starting with a letter or digit)")
    return name


def create_user(engine: Engine, username: str, password: str, role: str = Role.annotator, *,
                by: str | None = None, channel: str = "web") -> User:
    username = validate_username(username)
    if len(password) < 8:
        raise AccountError("password must have at least 8 characters")
    role = Role(role)
    with session_scope(engine) as s:
        if s.exec(select(User).where(User.username == username)).first():
            raise AccountError(f"user {username!r} exists")
        user = User(username=username, role=role, password_hash=hash_password(password))
        s.add(user)
        s.flush()
        if by is not None:
            _add_event(s, channel=channel, actor=by, action="user.create", target=username, detail={"role": role.value})
        s.refresh(user)
        return user


def authenticate(engine: Engine, username: str, password: str) -> User | None:
    """The active user with these credentials, else None (same answer for every failure)."""
    with session_scope(engine) as s:
        user = s.exec(select(User).where(User.username == username.strip())).first()
        if user is None:
            _hasher.hash(password)  # spend the same time as a real check
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if not user.active:
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        return user


def set_role(engine: Engine, username: str, role: str, *, by: str | None = None, channel: str = "web") -> None:
    role = Role(role)
    _update(engine, username, _audit=(by, channel, "user.role", {"role": role.value}), role=role)


def set_active(engine: Engine, username: str, active: bool, *, by: str | None = None, channel: str = "web") -> None:
    _update(engine, username, _audit=(by, channel, "user.enable" if active else "user.disable", {}), active=active)


def set_password(engine: Engine, username: str, password: str, *, by: str | None = None, channel: str = "web") -> None:
    if len(password) < 8:
        raise AccountError("password must have at least 8 characters")
    # The audit event says that the password changed, never what it is.
    _update(engine, username, _audit=(by, channel, "user.password", {}), password_hash=hash_password(password))


def list_users(engine: Engine) -> list[User]:
    with read_scope(engine) as s:
        return list(s.exec(select(User).order_by(User.username)))


def usernames_by_id(engine: Engine) -> dict[int, str]:
    """user id -> username, for tables that show who did something."""
    return {u.id: u.username for u in list_users(engine)}


def get_user(engine: Engine, user_id: int) -> User | None:
    with read_scope(engine) as s:
        return s.get(User, user_id)


def _update(engine: Engine, username: str, _audit: tuple | None = None, **values) -> None:
    with session_scope(engine) as s:
        user = s.exec(select(User).where(User.username == username)).first()
        if user is None:
            raise AccountError(f"no user {username!r}")
        for k, v in values.items():
            setattr(user, k, v)
        if _audit is not None and _audit[0] is not None:
            by, channel, action, detail = _audit
            _add_event(s, channel=channel, actor=by, action=action, target=username, detail=detail)
