"""Start a list of child processes and stop them all together (no Streamlit import, no store).

`relcurate serve` runs under process managers (systemd, supervisord, a container runtime) that
signal only its own pid. So the children do not share its signals by accident: each runs in its
own process group, and this process forwards SIGTERM, SIGINT and SIGHUP itself, waits a grace
period, then SIGKILLs every group still alive. The first child to exit on its own ends the whole
tree too, so a process manager sees one unit and restarts it as a whole.

On Linux each child also gets PR_SET_PDEATHSIG=SIGTERM: if this process is SIGKILLed (no chance
to clean up) its children are still told to stop instead of holding the port as orphans.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
DEFAULT_GRACE_S = 5.0
_POLL_S = 0.1
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ChildSpec:
    """One process to start: a name for messages, its argv and its full environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: str | None = None


def _libc_prctl() -> Callable[..., int] | None:
    # Looked up here, in the parent: a child between fork and exec must not dlopen anything.
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _child_setup(prctl: Callable[..., int] | None, parent_pid: int) -> Callable[[], None]:
    def setup() -> None:  # runs in the child, after fork, before exec
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)
    return setup


def exit_status(returncode: int) -> int:
    """Popen's returncode as a shell would report it (killed by signal N -> 128+N)."""
    return 128 - returncode if returncode < 0 else returncode


class Supervisor:
    """Runs `children` until a stop signal arrives or one of them exits; then stops the rest.

    `run()` returns the exit status for this process: 128+signal after a stop signal, else the
    status of the child that exited first. Call it from the main thread (signal handlers).
    """

    def __init__(self, children: Sequence[ChildSpec], *, grace_s: float = DEFAULT_GRACE_S,
                 log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)) -> None:
        if not children:
            raise ValueError("nothing to supervise: the list of children is empty")
        self.children = list(children)
        self.grace_s = grace_s
        self.log = log
        self.procs: list[tuple[ChildSpec, subprocess.Popen]] = []
        self._signal: int | None = None
        self._force = False

    # -- signals ------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame) -> None:  # noqa: ARG002
        if self._signal is not None:
            self._force = True  # a second signal while stopping: do not wait out the grace period
        else:
            self._signal = signum

    def _install_handlers(self) -> dict[int, object]:
        previous = {}
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    # -- children -----------------------------------------------------------------------
    def _start(self, spec: ChildSpec) -> None:
        proc = subprocess.Popen(
            list(spec.argv), env=dict(spec.env) if spec.env is not None else None, cwd=spec.cwd,
            stdin=subprocess.DEVNULL,  # its own process group: reading the terminal would stop it
            process_group=0, preexec_fn=_child_setup(self._prctl, os.getpid()), close_fds=True)
        self.procs.append((spec, proc))

    def _signal_groups(self, sig: int, only_running: bool) -> None:
        for _, proc in self.procs:
            if only_running and proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, sig)  # the group: whatever the child itself started goes too
            except (ProcessLookupError, PermissionError):
                pass

    def _stop_all(self) -> None:
        self._signal_groups(signal.SIGTERM, only_running=True)
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline and not self._force:
            if all(proc.poll() is not None for _, proc in self.procs):
                break
            time.sleep(_POLL_S)
        for spec, proc in self.procs:
            if proc.poll() is None:
                self.log(f"{spec.name} (pid {proc.pid}) did not stop within {self.grace_s:g} s: killing it")
        # Also reaches grandchildren left in a group whose leader already exited.
        self._signal_groups(signal.SIGKILL, only_running=False)
        for _, proc in self.procs:
            proc.wait()

    def run(self) -> int:
        self._prctl = _libc_prctl()
        previous = self._install_handlers()
        try:
            for spec in self.children:
                if self._signal is not None:
                    break
                self._start(spec)
            status = self._wait_first()
            self._stop_all()
            if self._signal is not None:
                name = signal.Signals(self._signal).name
                self.log(f"{name} received: stopped {', '.join(s.name for s, _ in self.procs) or 'nothing'}")
                return 128 + self._signal
            return status
        except BaseException:
            self._stop_all()
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _wait_first(self) -> int:
        while self._signal is None:
            for spec, proc in self.procs:
                code = proc.poll()
                if code is not None:
                    others = [s.name for s, p in self.procs if p is not proc]
                    self.log(f"{spec.name} exited with status {exit_status(code)}"
                             + (f"; stopping {', '.join(others)}" if others else ""))
                    return exit_status(code)
            time.sleep(_POLL_S)
        return 128 + self._signal
