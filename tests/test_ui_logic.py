"""The UI's non-Streamlit logic: login throttle, sessions, markdown escaping, the page registry
and the last-admin rule."""
from __future__ import annotations

import html
import re

import pytest

from relcurate import accounts
from relcurate.db.models import Role, User
from relcurate.labeling_ui import auth, registry
from relcurate.labeling_ui.escaping import escape_md


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# -- throttle ---------------------------------------------------------------------------------
def test_throttle_locks_after_max_failures_and_unlocks_after_the_lockout():
    clock = FakeClock()
    th = auth.LoginThrottle(max_failures=3, lockout_s=60, clock=clock)
    for _ in range(2):
        th.record_failure("Ann")
    assert th.locked_for("ann") == 0
    th.record_failure(" ANN ")  # case and spaces do not make a new counter
    assert th.locked_for("ann") == pytest.approx(60)
    assert th.locked_for("bob") == 0  # per username
    clock.t += 61
    assert th.locked_for("ann") == 0
    th.record_failure("ann")  # a fresh series after the lock ran out
    assert th.locked_for("ann") == 0


def test_throttle_success_resets_the_count():
    th = auth.LoginThrottle(max_failures=2, lockout_s=60, clock=FakeClock())
    th.record_failure("ann")
    th.record_success("ann")
    th.record_failure("ann")
    assert th.locked_for("ann") == 0


def test_throttle_memory_is_bounded():
    clock = FakeClock()
    th = auth.LoginThrottle(max_failures=5, lockout_s=60, clock=clock)
    th.MAX_ENTRIES = 100
    for i in range(1000):
        th.record_failure(f"spray{i}")
    assert len(th._failures) <= 101


def test_attempt_login(sqlite_workspace):
    engine = sqlite_workspace.engine
    accounts.create_user(engine, "ann", "annotator-pw", "annotator")
    th = auth.LoginThrottle(max_failures=2, lockout_s=60, clock=FakeClock())
    ok = auth.attempt_login(engine, th, "ann", "annotator-pw")
    assert ok.user is not None and ok.user.role == "annotator" and ok.error is None
    assert auth.attempt_login(engine, th, "ann", "nope-nope").error == auth.GENERIC_FAILURE
    assert auth.attempt_login(engine, th, "ghost", "nope-nope").error == auth.GENERIC_FAILURE
    assert auth.attempt_login(engine, th, "", "").error == auth.GENERIC_FAILURE
    assert auth.attempt_login(engine, th, "ann", "nope-nope").error == auth.GENERIC_FAILURE
    locked = auth.attempt_login(engine, th, "ann", "annotator-pw")  # right password, but locked
    assert locked.user is None and "Too many" in locked.error


# -- sessions ---------------------------------------------------------------------------------
def test_session_idle_expiry_and_activity(sqlite_workspace):
    engine = sqlite_workspace.engine
    user = accounts.create_user(engine, "ann", "annotator-pw", "annotator")
    state: dict = {}
    auth.start_session(state, auth.SessionUser(user.id, "ann", "annotator"), now=0.0)
    assert auth.current_user(state, engine, idle_s=100, now=90).username == "ann"
    assert auth.current_user(state, engine, idle_s=100, now=180).username == "ann"  # 90 s idle again
    assert auth.current_user(state, engine, idle_s=100, now=281) is None
    assert auth.SESSION_KEY not in state and "expired" in auth.pop_notice(state)
    assert auth.pop_notice(state) is None  # one-shot


def test_session_follows_role_changes_and_disabling(sqlite_workspace):
    engine = sqlite_workspace.engine
    user = accounts.create_user(engine, "ann", "annotator-pw", "annotator")
    state: dict = {}
    auth.start_session(state, auth.SessionUser(user.id, "ann", "annotator"), now=0.0)
    accounts.set_role(engine, "ann", "curator")
    assert auth.current_user(state, engine, idle_s=100, now=1).role == "curator"
    accounts.set_active(engine, "ann", False)
    assert auth.current_user(state, engine, idle_s=100, now=2) is None
    assert "not active" in auth.pop_notice(state)


def test_idle_timeout_from_env(monkeypatch):
    monkeypatch.delenv(auth.IDLE_ENV, raising=False)
    assert auth.idle_timeout_s() == 12 * 3600
    monkeypatch.setenv(auth.IDLE_ENV, "0.25")
    assert auth.idle_timeout_s() == 900
    monkeypatch.setenv(auth.IDLE_ENV, "soon")
    assert auth.idle_timeout_s() == 12 * 3600


# -- escaping ---------------------------------------------------------------------------------
def _displayed(md: str) -> str:
    return html.unescape(re.sub(r"\\(.)", r"\1", md))


@pytest.mark.parametrize("text", [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "**bold** _it_ `code` [link](javascript:alert(1)) ![i](http://x/y.png)",
    "$x^2$ :red[colour] :material/home: # heading > quote",
    "1. list\n- item\n\n    indented code",
    "https://example.com/a_b?c=d&e=f www.example.com a@b.co",
    "a \\ backslash & ampersand &amp; entity",
])
def test_escape_md_shows_the_same_characters_and_no_markup(text):
    md = escape_md(text)
    assert "<" not in md and ">" not in md
    assert "\n" not in md
    assert _displayed(md) == " ".join(text.split())
    # every markdown-active character is preceded by a backslash
    assert not re.search(r"(?<!\\)[*_`\[\]$:#!|~]", md)


def test_escape_md_truncates_before_escaping():
    md = escape_md("<" * 50, max_len=10)
    assert _displayed(md) == "<" * 9 + "…"


# -- registry ---------------------------------------------------------------------------------
def test_pages_for_each_role():
    paths = {r.value: [p.url_path for p in registry.pages_for(r.value)] for r in Role}
    assert paths["admin"] == [p.url_path for p in registry.PAGES]
    for role in ("annotator", "curator", "reviewer"):
        assert "users" not in paths[role] and paths[role][0] == "dashboard"


def test_registry_validation_catches_mistakes():
    good = registry.PageSpec("a", "A", "📄", "m:f", "label")
    registry.validate([good])
    with pytest.raises(ValueError, match="unknown action"):
        registry.validate([registry.PageSpec("b", "B", "📄", "m:f", "fly")])
    with pytest.raises(ValueError, match="duplicated"):
        registry.validate([good, good])


def test_every_page_target_imports_to_a_callable():
    for spec in registry.PAGES:
        assert callable(spec.load()), spec.target


def test_guard_refuses_without_rendering(sqlite_workspace):
    calls: list[str] = []
    spec = registry.PageSpec("x", "X", "📄", "builtins:print", "manage_users")
    ctx = registry.PageContext(sqlite_workspace, auth.SessionUser(1, "ann", "annotator"))
    registry.guarded(spec, ctx, calls.append)()
    assert calls == ["You do not have access to this page."]


# -- admin rule -------------------------------------------------------------------------------
def _u(name: str, role: str, active: bool = True) -> User:
    return User(username=name, role=role, active=active, password_hash="x")


def test_admin_change_problem():
    users = [_u("root", "admin"), _u("ann", "annotator")]
    assert "last active admin" in auth.admin_change_problem(users, "root", role="annotator")
    assert "last active admin" in auth.admin_change_problem(users, "root", active=False)
    assert "own admin access" in auth.admin_change_problem(users, "root", active=False, acting="root")
    assert auth.admin_change_problem(users, "ann", role="admin") is None
    assert auth.admin_change_problem(users, "ann", active=False, acting="root") is None
    assert "No user" in auth.admin_change_problem(users, "zed", role="admin")
    two = users + [_u("second", "admin")]
    assert auth.admin_change_problem(two, "root", role="curator", acting="second") is None
    disabled_second = users + [_u("second", "admin", active=False)]
    assert "last active admin" in auth.admin_change_problem(disabled_second, "root", active=False, acting="x")
