"""Sign-in, session lifetime and the login throttle, with no Streamlit import.

Everything here works on a plain mutable mapping (the app passes ``st.session_state``), so it is
tested without the UI. The role is re-read from the database on every rerun: an admin's change of
role or a disabled account takes effect at the user's next click, not at their next login.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, MutableMapping

from sqlalchemy.engine import Engine

from relcurate import accounts, web_sessions
from relcurate.curation.labeling import leases
from relcurate.db.models import Role, User

SESSION_KEY = "rc_auth"
NOTICE_KEY = "rc_auth_notice"  # one-shot message for the login page ("session expired", ...)
COOKIE_NAME = "relcurate_session"  # holds the web-session token (web_sessions.py), never a URL
COOKIE_SET_KEY = "rc_cookie_set"  # token to hand to the browser on the next render
COOKIE_CLEAR_KEY = "rc_cookie_clear"  # the browser's cookie must go (logout, expiry)
TOUCH_EVERY_S = 60.0  # write the server-side activity time at most this often
IDLE_ENV = "RELCURATE_SESSION_IDLE_HOURS"
DEFAULT_IDLE_HOURS = 12.0

MAX_FAILURES = 5  # consecutive failed sign-ins for one username ...
LOCKOUT_S = 300.0  # ... lock that username for this long
GENERIC_FAILURE = "Invalid username or password."


@dataclass(frozen=True)
class SessionUser:
    id: int
    username: str
    role: str


def idle_timeout_s() -> float:
    """Idle time after which a session ends (env RELCURATE_SESSION_IDLE_HOURS, default 12 h)."""
    return web_sessions.env_amount(IDLE_ENV, DEFAULT_IDLE_HOURS) * 3600.0


class LoginThrottle:
    """Counts consecutive failed sign-ins per username and locks that name for a while.

    Process-wide (the app keeps one per workspace in ``st.cache_resource``), so opening a new
    browser tab does not reset it. Unknown usernames are throttled exactly like real ones, so the
    lockout does not reveal which accounts exist.
    """

    MAX_ENTRIES = 10_000  # bound memory when someone sprays random usernames

    def __init__(self, max_failures: int = MAX_FAILURES, lockout_s: float = LOCKOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}

    @staticmethod
    def _key(username: str) -> str:
        return username.strip().casefold()

    def locked_for(self, username: str) -> float:
        """Seconds until this username may try again (0 when it may try now)."""
        key = self._key(username)
        with self._lock:
            until = self._locked_until.get(key)
            if until is None:
                return 0.0
            left = until - self._clock()
            if left > 0:
                return left
            # The lock ran out: a fresh series of attempts.
            del self._locked_until[key]
            self._failures.pop(key, None)
            return 0.0

    def record_failure(self, username: str) -> None:
        key = self._key(username)
        with self._lock:
            if len(self._failures) >= self.MAX_ENTRIES and key not in self._failures:
                self._prune()
            n = self._failures.get(key, 0) + 1
            self._failures[key] = n
            if n >= self.max_failures:
                self._locked_until[key] = self._clock() + self.lockout_s

    def record_success(self, username: str) -> None:
        key = self._key(username)
        with self._lock:
            self._failures.pop(key, None)
            self._locked_until.pop(key, None)

    def _prune(self) -> None:
        now = self._clock()
        self._locked_until = {k: t for k, t in self._locked_until.items() if t > now}
        self._failures = {k: n for k, n in self._failures.items() if k in self._locked_until}


@dataclass(frozen=True)
class LoginResult:
    user: SessionUser | None
    error: str | None = None


def attempt_login(engine: Engine, throttle: LoginThrottle, username: str, password: str) -> LoginResult:
    """Check credentials (argon2 via accounts.authenticate) under the throttle."""
    if not username.strip() or not password:
        return LoginResult(None, GENERIC_FAILURE)
    wait = throttle.locked_for(username)
    if wait > 0:
        minutes = max(1, round(wait / 60))
        return LoginResult(None, f"Too many failed attempts. Try again in about {minutes} min.")
    user = accounts.authenticate(engine, username, password)
    if user is None:
        throttle.record_failure(username)
        return LoginResult(None, GENERIC_FAILURE)
    throttle.record_success(username)
    return LoginResult(SessionUser(id=user.id, username=user.username, role=str(user.role)))


def start_session(state: MutableMapping, user: SessionUser, now: float | None = None, *,
                  engine: Engine | None = None, token: str | None = None) -> None:
    """Sign `user` in for this browser session. With `engine` (the app), a server-side web
    session is created too and its token queued for the browser's cookie, so a reload or a new
    tab stays signed in; `token` resumes an existing one (no new cookie needed)."""
    now = time.time() if now is None else now
    if token is None and engine is not None:
        token = web_sessions.create_session(engine, user.id)
        state[COOKIE_SET_KEY] = token
    state[SESSION_KEY] = {"user_id": user.id, "username": user.username, "role": user.role,
                          "login_at": now, "last_seen": now, "token": token, "touched": now}
    state.pop(NOTICE_KEY, None)
    state.pop(COOKIE_CLEAR_KEY, None)


def end_session(state: MutableMapping, notice: str | None = None, *, engine: Engine | None = None,
                release_tasks: bool = False) -> None:
    """Sign out; with `engine`, the server-side session is revoked too (every tab, every copy of
    the cookie), and the browser is told to drop its cookie. `release_tasks` (an explicit Log
    out): the images leased to this user (the prefetched ones) go back to the pool now."""
    entry = state.pop(SESSION_KEY, None) or {}
    if engine is not None and entry.get("token"):
        web_sessions.revoke_session(engine, entry["token"])
    if engine is not None and release_tasks and entry.get("user_id") is not None:
        leases.release_held(engine, int(entry["user_id"]))
    if entry.get("token"):
        state[COOKIE_CLEAR_KEY] = True
    state.pop(COOKIE_SET_KEY, None)
    if notice:
        state[NOTICE_KEY] = notice


def pop_notice(state: MutableMapping) -> str | None:
    return state.pop(NOTICE_KEY, None)


def restore_session(state: MutableMapping, engine: Engine, token: str | None,
                    idle_s: float | None = None) -> SessionUser | None:
    """Resume a signed-in session from the browser's cookie token (after a reload or in a new
    tab); None when there is none or it is revoked, expired, idle or its user is disabled."""
    if not isinstance(token, str) or not token:
        return None
    idle_s = idle_timeout_s() if idle_s is None else idle_s
    found = web_sessions.resolve_session(engine, token, idle_s=idle_s)
    if found is None:
        state[COOKIE_CLEAR_KEY] = True
        return None
    user = SessionUser(id=found.user_id, username=found.username, role=found.role)
    start_session(state, user, token=token)
    return user


def current_user(state: MutableMapping, engine: Engine, idle_s: float | None = None,
                 now: float | None = None) -> SessionUser | None:
    """The signed-in user, or None after ending an idle, disabled or deleted session.

    Each call counts as activity: it moves the idle deadline forward (in the store too, at most
    once a minute, so a reload after activity in another tab is not taken for idleness).
    """
    entry = state.get(SESSION_KEY)
    if not entry:
        return None
    now = time.time() if now is None else now
    idle_s = idle_timeout_s() if idle_s is None else idle_s
    if now - float(entry.get("last_seen", 0.0)) > idle_s:
        end_session(state, "Your session expired. Please sign in again.", engine=engine)
        return None
    user = accounts.get_user(engine, int(entry["user_id"]))
    if user is None or not user.active:
        end_session(state, "Your account is not active any more.", engine=engine)
        return None
    if entry.get("token") and not web_sessions.session_alive(engine, entry["token"]):
        end_session(state, "You were signed out. Please sign in again.")
        return None
    touched = float(entry.get("touched", now))
    if entry.get("token") and now - touched >= TOUCH_EVERY_S:
        web_sessions.touch_session(engine, entry["token"])
        touched = now
    state[SESSION_KEY] = {**entry, "role": str(user.role), "username": user.username, "last_seen": now,
                          "touched": touched}
    return SessionUser(id=user.id, username=user.username, role=str(user.role))


def cookie_script(state: MutableMapping, *, secure: bool = False) -> str | None:
    """The one-off script that hands the browser its session cookie or removes it, or None when
    nothing changed. The token is URL-safe base64, so it needs no quoting."""
    token = state.pop(COOKIE_SET_KEY, None)
    attrs = "Path=/; SameSite=Strict" + ("; Secure" if secure else "")
    if token:
        return (f"<script>document.cookie = '{COOKIE_NAME}={token}; Max-Age="
                f"{int(web_sessions.max_age_s())}; {attrs}';</script>")
    if state.pop(COOKIE_CLEAR_KEY, None):
        return f"<script>document.cookie = '{COOKIE_NAME}=; Max-Age=0; {attrs}';</script>"
    return None


def admin_change_problem(users: list[User], target: str, *, role: str | None = None,
                         active: bool | None = None, acting: str | None = None) -> str | None:
    """Why a role/active change must be refused, or None. Keeps at least one active admin and
    stops an admin from locking themselves out by accident."""
    by_name = {u.username: u for u in users}
    user = by_name.get(target)
    if user is None:
        return f"No user {target!r}."
    new_role = Role(role) if role is not None else Role(user.role)
    new_active = user.active if active is None else active
    loses_admin = Role(user.role) == Role.admin and user.active and (new_role != Role.admin or not new_active)
    if not loses_admin:
        return None
    if acting is not None and target == acting:
        return "You cannot remove your own admin access; ask another admin."
    other_admins = [u for u in users if u.username != target and u.active and Role(u.role) == Role.admin]
    if not other_admins:
        return "This is the last active admin; make someone else admin first."
    return None
