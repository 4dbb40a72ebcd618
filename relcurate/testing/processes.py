"""Process-tree checks for tests of long-running commands (`relcurate serve`, workers). Linux /proc.

Start the command with `start_new_session=True`: its session id is then its pid, and every process
it starts stays in that session (process groups do not leave a session), even one reparented to
init after its parent died. So "nothing it started is alive" is "no process in that session".
"""
from __future__ import annotations

import errno
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is `sid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # fields after the parenthesised command (which may itself hold spaces or parentheses)
        fields = stat[stat.rindex(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def port_is_free(port: int, address: str = "127.0.0.1") -> bool:
    """Nothing listens there: a new server could bind it (with SO_REUSEADDR, as servers do)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def wait_http_ok(url: str, proc: subprocess.Popen, log: Path | None = None, timeout_s: float = 90) -> str:
    """Poll `url` until it answers 200; returns the body. Fails early if `proc` exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return r.read().decode()
        except (OSError, urllib.error.URLError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise AssertionError(f"{url} never answered 200 (exit status {proc.poll()}):\n{tail}")
        time.sleep(0.2)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_gone(sid: int, timeout_s: float) -> list[int]:
    """Wait until no process of session `sid` is alive; returns the survivors (empty on success)."""
    deadline = time.monotonic() + timeout_s
    while (alive := session_pids(sid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def kill_session(sid: int) -> None:
    """Clean-up after a failed test: SIGKILL whatever of that session is still alive."""
    for pid in session_pids(sid):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
