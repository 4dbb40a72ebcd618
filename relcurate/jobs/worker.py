"""The worker process: claim a job, run its handler with heartbeats, record the outcome; loop
until asked to stop. Long work (fast-head refreshes, retrains, exports) runs here, never in a
page request.

Stopping (SIGTERM / SIGINT): the worker stops claiming; a handler that polls
`ctx.should_stop()` (or reports progress) is interrupted and its job released back to the
queue untouched; one that does not is allowed to finish. A killed worker's job is picked up by
`jobs.claim` once its heartbeat is stale (retried while attempts are left, else failed).
"""
from __future__ import annotations

import os
import signal
import socket
import threading
import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

from relcurate.db import jobs as job_store
from relcurate.db.models import Job
from relcurate.jobs.registry import UnknownHandler, get_handler
from relcurate.workspace import Workspace

HEARTBEAT_S = 5.0


class JobInterrupted(Exception):
    """Raised inside a handler when the worker is stopping or the job was taken away."""


class PermanentJobError(Exception):
    """A failure that retrying cannot fix (bad parameters, missing component): fail at once."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 10_000}"


@dataclass
class JobContext:
    ws: Workspace
    job: Job
    worker: str
    _stop: threading.Event
    _lost: threading.Event = field(default_factory=threading.Event)

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    def should_stop(self) -> bool:
        return self._stop.is_set() or self._lost.is_set()

    def check(self) -> None:
        if self.should_stop():
            raise JobInterrupted("worker stopping" if self._stop.is_set() else "job taken away")

    def progress(self, fraction: float, note: str | None = None, *, log: str | None = None) -> None:
        """Record progress (visible on the admin page) and stop here if the worker is stopping."""
        if not job_store.heartbeat(self.ws.engine, self.job.id, self.worker, progress=fraction, note=note, log=log):
            self._lost.set()
        self.check()

    def log(self, line: str) -> None:
        if not job_store.heartbeat(self.ws.engine, self.job.id, self.worker, log=line):
            self._lost.set()


def _heartbeats(ctx: JobContext, done: threading.Event, every_s: float) -> None:
    while not done.wait(every_s):
        if not job_store.heartbeat(ctx.ws.engine, ctx.job.id, ctx.worker):
            ctx._lost.set()
            return


def run_one(ws: Workspace, job: Job, worker: str, stop: threading.Event, *,
            heartbeat_s: float = HEARTBEAT_S) -> str:
    """Run a claimed job to its end; returns the state it was left in."""
    ctx = JobContext(ws, job, worker, stop)
    done = threading.Event()
    beat = threading.Thread(target=_heartbeats, args=(ctx, done, heartbeat_s), daemon=True)
    beat.start()
    try:
        handler = get_handler(job.kind)
        result = handler(ctx)
    except JobInterrupted as exc:
        if ctx._lost.is_set() and not stop.is_set():
            return "lost"
        job_store.release(ws.engine, job.id, worker, reason=str(exc))
        return "queued"
    except (UnknownHandler, PermanentJobError) as exc:
        return job_store.fail(ws.engine, job.id, worker, str(exc), retry=False) or "lost"
    except Exception as exc:  # noqa: BLE001 - any handler error is recorded on the job
        detail = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
        return job_store.fail(ws.engine, job.id, worker, detail, retry=True) or "lost"
    finally:
        done.set()
        beat.join(timeout=1.0)
    job_store.finish(ws.engine, job.id, worker, result if isinstance(result, dict) else {"result": result})
    return "done"


IdleHook = Callable[[Workspace], None]


def run_worker(ws: Workspace, *, stop: threading.Event | None = None, poll_s: float = 1.0,
               max_jobs: int | None = None, idle_hooks: list[IdleHook] | None = None,
               kinds: list[str] | None = None, name: str | None = None,
               stale_after: timedelta = job_store.STALE_AFTER, heartbeat_s: float = HEARTBEAT_S,
               exit_when_idle: bool = False, on_event: Callable[[str], None] | None = None) -> int:
    """Claim and run jobs until `stop` is set (or `max_jobs` ran, or — with `exit_when_idle` —
    the queue is empty). `idle_hooks` run between jobs (e.g. enqueue a fast-head refresh after
    N new labels). Returns how many jobs ran."""
    stop = stop or threading.Event()
    name = name or worker_name()
    say = on_event or (lambda _m: None)
    ran = 0
    while not stop.is_set() and (max_jobs is None or ran < max_jobs):
        for hook in idle_hooks or ():
            try:
                hook(ws)
            except Exception as exc:  # noqa: BLE001 - a hook's error must not kill the worker
                say(f"idle hook failed: {type(exc).__name__}: {exc}")
        # Every kind by default: a job nobody has a handler for fails with a clear reason
        # instead of waiting in the queue forever.
        job = job_store.claim(ws.engine, name, kinds=kinds, stale_after=stale_after)
        if job is None:
            if exit_when_idle:
                break
            stop.wait(poll_s)
            continue
        say(f"job {job.id} ({job.kind}) started, attempt {job.attempts}")
        state = run_one(ws, job, name, stop, heartbeat_s=heartbeat_s)
        say(f"job {job.id} ({job.kind}) -> {state}")
        ran += 1
    return ran


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGTERM / SIGINT set `stop`: the current job finishes or is released, then the loop ends."""
    def handle(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
