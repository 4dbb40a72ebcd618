"""Server-side web sessions (web_sessions.py) and the app's use of them (auth.py), without a UI:
a token resumes its session until it is revoked, expires, idles out or its user is disabled."""
from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from relcurate import accounts, web_sessions
from relcurate.db.engine import read_scope
from relcurate.db.models import WebSession, utcnow
from relcurate.labeling_ui import auth


def _user(ws, name="ann"):
    return accounts.create_user(ws.engine, name, f"{name}-password-1", "annotator")


def test_token_resumes_until_revoked_and_only_its_hash_is_stored(workspace):
    user = _user(workspace)
    token = web_sessions.create_session(workspace.engine, user.id)
    found = web_sessions.resolve_session(workspace.engine, token, idle_s=3600)
    assert found is not None and (found.user_id, found.username, found.role) == (user.id, "ann", "annotator")
    with read_scope(workspace.engine) as s:
        rows = s.exec(select(WebSession)).all()
    assert len(rows) == 1 and rows[0].token_hash == web_sessions.token_hash(token) and token not in rows[0].token_hash
    web_sessions.revoke_session(workspace.engine, token)
    assert web_sessions.resolve_session(workspace.engine, token, idle_s=3600) is None
    for junk in (None, "", "x" * 5000, token + "x", 42):
        assert web_sessions.resolve_session(workspace.engine, junk, idle_s=3600) is None


def test_expiry_idleness_and_a_disabled_user_end_the_session(workspace):
    user = _user(workspace)
    eng = workspace.engine
    short = web_sessions.create_session(eng, user.id, lifetime_s=60)
    assert web_sessions.resolve_session(eng, short, idle_s=3600, now=utcnow() + timedelta(seconds=61)) is None
    idle = web_sessions.create_session(eng, user.id)
    assert web_sessions.resolve_session(eng, idle, idle_s=10, now=utcnow() + timedelta(seconds=11)) is None
    assert web_sessions.resolve_session(eng, idle, idle_s=3600) is None  # revoked on the way
    alive = web_sessions.create_session(eng, user.id)
    accounts.set_active(eng, "ann", False)
    assert web_sessions.resolve_session(eng, alive, idle_s=3600) is None
    accounts.set_active(eng, "ann", True)
    assert web_sessions.resolve_session(eng, alive, idle_s=3600) is None  # stays revoked
    a, b = web_sessions.create_session(eng, user.id), web_sessions.create_session(eng, user.id)
    assert web_sessions.revoke_user_sessions(eng, user.id) == 2
    assert all(web_sessions.resolve_session(eng, t, idle_s=3600) is None for t in (a, b))


def test_sign_in_queues_a_cookie_and_a_reload_restores_the_user(workspace):
    user = _user(workspace)
    tab: dict = {}
    auth.start_session(tab, auth.SessionUser(user.id, "ann", "annotator"), engine=workspace.engine)
    script = auth.cookie_script(tab)
    token = tab[auth.SESSION_KEY]["token"]
    assert f"{auth.COOKIE_NAME}={token};" in script and "SameSite=Strict" in script
    assert auth.cookie_script(tab) is None  # handed over once
    reloaded: dict = {}  # a new Streamlit session: empty state, the cookie comes back
    again = auth.restore_session(reloaded, workspace.engine, token)
    assert again == auth.SessionUser(user.id, "ann", "annotator")
    assert auth.current_user(reloaded, workspace.engine) == again
    assert auth.cookie_script(reloaded) is None  # the browser already holds it
    assert auth.current_user(tab, workspace.engine) == again  # two tabs, one session
    auth.end_session(reloaded, engine=workspace.engine)  # logout in one tab ...
    assert "Max-Age=0" in auth.cookie_script(reloaded)
    assert auth.restore_session({}, workspace.engine, token) is None  # ... no reload resumes it
    assert auth.current_user(tab, workspace.engine) is None  # the other tab is out at its next click
    assert "signed out" in auth.pop_notice(tab)
