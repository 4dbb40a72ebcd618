"""Accounts: argon2 hashes, authentication, roles and permissions."""
from __future__ import annotations

import pytest

from relcurate.accounts import (AccountError, authenticate, can, create_user, list_users, set_active, set_password,
                                set_role)


def test_create_and_authenticate(workspace):
    e = workspace.engine
    u = create_user(e, "ann", "correct horse", "annotator")
    assert u.password_hash.startswith("$argon2") and "correct horse" not in u.password_hash
    assert authenticate(e, "ann", "correct horse").username == "ann"
    assert authenticate(e, "ann", "wrong password") is None
    assert authenticate(e, "nobody", "correct horse") is None
    with pytest.raises(AccountError):
        create_user(e, "ann", "another pass", "annotator")
    with pytest.raises(AccountError):
        create_user(e, "short", "1234", "annotator")
    with pytest.raises(ValueError):
        create_user(e, "bad", "long enough", "wizard")


def test_disable_role_password(workspace):
    e = workspace.engine
    create_user(e, "cur", "password-1", "curator")
    set_role(e, "cur", "reviewer")
    assert [u.role for u in list_users(e)] == ["reviewer"]
    set_password(e, "cur", "password-2")
    assert authenticate(e, "cur", "password-1") is None and authenticate(e, "cur", "password-2")
    set_active(e, "cur", False)
    assert authenticate(e, "cur", "password-2") is None  # disabled users cannot log in
    with pytest.raises(AccountError):
        set_role(e, "ghost", "admin")


@pytest.mark.parametrize("role,action,allowed", [
    ("annotator", "label", True), ("annotator", "export", False), ("annotator", "manage_users", False),
    ("curator", "export", True), ("curator", "curate", True), ("curator", "delete", False),
    ("reviewer", "review", True), ("reviewer", "export", False), ("admin", "delete", True),
    ("admin", "manage_users", True), ("admin", "export", True),
])
def test_permissions(role, action, allowed):
    assert can(role, action) is allowed


def test_unknown_action_is_an_error():
    with pytest.raises(KeyError):
        can("admin", "launch_rockets")


def test_usernames_are_validated(sqlite_workspace):
    import pytest

    from relcurate.accounts import AccountError, create_user

    for bad in ("<b>x</b>", "a b", "tab\\there", "ctl\x07", "zero\u200bwidth", "ünïcode", "-dash", "x" * 65, "  "):
        with pytest.raises(AccountError):
            create_user(sqlite_workspace.engine, bad, "long-enough-pw")
    assert create_user(sqlite_workspace.engine, " ann.o-1@lab ", "long-enough-pw").username == "ann.o-1@lab"
