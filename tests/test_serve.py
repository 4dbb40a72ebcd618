"""`relcurate serve` under a process manager: a signal to its one pid stops the whole tree.

Each served command runs in its own session (start_new_session) so the test signals only that pid,
as systemd or a container runtime would, and can then list every process it started by session id.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from relcurate.labeling_ui.server import ServeError, normalise_base_path
from relcurate.labeling_ui.supervisor import ChildSpec, Supervisor
from relcurate.testing.browser import REPO, free_port
from relcurate.testing.processes import (http_status, kill_session, port_is_free, session_pids, wait_gone,
                                         wait_http_ok)
from relcurate.workspace import Workspace

STOP_BOUND_S = 20  # grace period (5 s) + slack for a loaded 2-core machine
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _cli(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "relcurate.cli.main", *args], cwd=REPO, env=ENV,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture()
def ws(tmp_path):
    return Workspace.init(tmp_path / "ws")


@pytest.mark.parametrize("sig,base_path", [(signal.SIGTERM, ""), (signal.SIGINT, ""),
                                           (signal.SIGHUP, "/team/relcurate/")],
                         ids=["SIGTERM", "SIGINT", "SIGHUP-base-path"])
def test_signal_to_serve_stops_everything_it_started(ws, tmp_path, sig, base_path):
    port, log = free_port(), tmp_path / "serve.log"
    args = ["serve", "-w", str(ws.root), "--port", str(port)] + (["--base-path", base_path] if base_path else [])
    proc = _cli(*args, log=log)
    try:
        prefix = f"http://127.0.0.1:{port}/" + (base_path.strip("/") + "/" if base_path else "")
        # The documented health URL: no sign-in, and it says nothing but "ok".
        assert wait_http_ok(prefix + "_stcore/health", proc, log) == "ok"
        if base_path:
            assert http_status(f"http://127.0.0.1:{port}/_stcore/health") == 404
        started = [p for p in session_pids(proc.pid) if p != proc.pid]
        assert started, "serve started no child process"

        t0 = time.monotonic()
        os.kill(proc.pid, sig)
        assert proc.wait(timeout=STOP_BOUND_S) == 128 + sig
        assert wait_gone(proc.pid, timeout_s=1) == [], f"still alive after {time.monotonic() - t0:.1f} s"
        assert port_is_free(port)
        text = log.read_text()
        # --worker is the default: the job worker is one of the children, and it stops too.
        assert f"{signal.Signals(sig).name} received: stopped web app, worker" in text
    finally:
        proc.kill()
        kill_session(proc.pid)


def test_busy_port_is_an_error_naming_it(ws, tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        proc = _cli("serve", "-w", str(ws.root), "--port", str(port), "--no-worker", log=log)
        assert proc.wait(timeout=60) == 2
    text = " ".join(log.read_text().split())
    assert f"port {port} on 127.0.0.1 is already in use" in text and "--port" in text
    assert "serving on" not in text and "worker" not in text
    assert session_pids(proc.pid) == []


def test_bad_base_path_is_refused():
    assert normalise_base_path("/team/relcurate/") == "team/relcurate"
    assert normalise_base_path("") == ""
    for bad in ("../etc", "a/./b", "a b", "x?y=1", "a//b"):
        with pytest.raises(ServeError, match="--base-path"):
            normalise_base_path(bad)


# -- the supervisor on its own, with plain Python children (no Streamlit start: fast) ---------

def _supervise(tmp_path: Path, children: list[str], grace_s: float) -> tuple[subprocess.Popen, Path]:
    """A process that supervises `children` (Python sources), in its own session."""
    specs = ", ".join(f"ChildSpec('c{i}', [sys.executable, '-c', {src!r}])" for i, src in enumerate(children))
    script = textwrap.dedent(f"""
        import sys
        from relcurate.labeling_ui.supervisor import ChildSpec, Supervisor
        sys.exit(Supervisor([{specs}], grace_s={grace_s}).run())
    """)
    log = tmp_path / "supervisor.log"
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=ENV, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def _wait_children(proc: subprocess.Popen, n: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(session_pids(proc.pid)) < n + 1:
        assert proc.poll() is None and time.monotonic() < deadline, "children did not start"
        time.sleep(0.1)


def _stubborn(ready: Path) -> str:
    """Ignores SIGTERM, starts a grandchild in its group, then says it is ready."""
    return ("import pathlib, signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
            f"pathlib.Path({str(ready)!r}).touch(); time.sleep(300)")


def test_child_ignoring_sigterm_is_killed_with_its_group(tmp_path):
    ready = tmp_path / "stubborn.ready"
    proc, log = _supervise(tmp_path, [_stubborn(ready), "import time; time.sleep(300)"], grace_s=1.0)
    try:
        _wait_children(proc, 3)  # the stubborn child, its own child, the well-behaved one
        deadline = time.monotonic() + 30
        while not ready.exists():  # SIGTERM must come after SIG_IGN, or the test proves nothing
            assert time.monotonic() < deadline, "stubborn child never got ready"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=STOP_BOUND_S) == 128 + signal.SIGTERM
        assert wait_gone(proc.pid, timeout_s=1) == []
        assert "did not stop within 1 s: killing it" in log.read_text()
    finally:
        proc.kill()
        kill_session(proc.pid)


def test_children_stop_even_when_the_supervisor_is_sigkilled(tmp_path):
    """PR_SET_PDEATHSIG: no chance to clean up, yet the child is told to stop."""
    proc, _ = _supervise(tmp_path, ["import time; time.sleep(300)"], grace_s=1.0)
    try:
        _wait_children(proc, 1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_gone(proc.pid, timeout_s=10) == []
    finally:
        kill_session(proc.pid)


def test_first_child_to_exit_ends_the_tree_with_its_status():
    sleeper = ChildSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(3600)"])  # a hang = test timeout
    failing = ChildSpec("failing", [sys.executable, "-c", "import time, sys; time.sleep(0.5); sys.exit(3)"])
    messages: list[str] = []
    sup = Supervisor([sleeper, failing], grace_s=2.0, log=messages.append)
    assert sup.run() == 3
    assert all(p.poll() is not None for _, p in sup.procs)
    assert any("failing exited with status 3; stopping sleeper" in m for m in messages)


def test_worker_child_is_one_spec_away():
    """`serve` adds the worker as its second child; its spec keeps the database URL off the command line."""
    from relcurate.cli.main import _has_command
    from relcurate.labeling_ui.server import ServeSettings, worker_child

    assert _has_command("serve") and not _has_command("no-such-command")
    spec = worker_child(ServeSettings(root=Path("/srv/ws"), db_url="postgresql://u@h/db"))
    assert spec.argv[1:] == ["-m", "relcurate.cli.main", "worker", "-w", "/srv/ws"]
    assert spec.env["RELCURATE_WORKSPACE"] == "/srv/ws" and spec.env["RELCURATE_DB_URL"] == "postgresql://u@h/db"
    assert all("postgresql" not in a for a in spec.argv)  # the URL (maybe with a password) stays out of `ps`
