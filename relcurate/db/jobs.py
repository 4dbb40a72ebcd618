"""The job table as a durable work queue: enqueue (idempotent by dedup key), claim (one worker
per job), heartbeats with progress and a log tail, finish / fail / release, and reaping the jobs
of workers that died. Store-level only: handlers and the worker loop live in `relcurate.jobs`.

Claiming: on PostgreSQL the oldest queued row is taken ``FOR UPDATE SKIP LOCKED`` (concurrent
workers take different jobs, never wait on each other); on SQLite the claim runs in a write
transaction that begins IMMEDIATE, so claims are serialised by the single writer lock. Either
way the state flips queued -> running in the same transaction that found the row.

Nothing is lost silently: a running job whose heartbeat stopped (killed worker, power cut) goes
back to `queued` while it has attempts left, else to `failed` with the reason, and every such
transition is written to its log tail.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from relcurate.db.engine import read_scope
from relcurate.db.models import Job, JobState, utcnow
from relcurate.db.write_retry import is_postgres, run_write

LOG_TAIL_CHARS = 8000
STALE_AFTER = timedelta(seconds=60)  # a running job without a heartbeat this long is orphaned
TERMINAL = (JobState.done.value, JobState.failed.value)


class JobError(ValueError):
    pass


@dataclass(frozen=True)
class Enqueued:
    job: Job
    created: bool  # False: a live job with the same dedup key already existed


def _append_log(job: Job, line: str, now: datetime) -> None:
    text = (job.log_tail or "") + f"{now:%Y-%m-%d %H:%M:%S} {line.rstrip()}\n"
    job.log_tail = text[-LOG_TAIL_CHARS:]


def _live_by_key(s: Session, key: str) -> Job | None:
    return s.exec(select(Job).where(Job.active_key == key)).first()


def enqueue(engine: Engine, kind: str, params: dict[str, Any] | None = None, *, dedup_key: str | None = None,
            requested_by: int | None = None, max_attempts: int = 3) -> Enqueued:
    """Queue a job. With `dedup_key`, a second call while a job with that key is queued or
    running returns the live job instead of a new one (a double click makes one job)."""
    if not kind or len(kind) > 64:
        raise JobError("job kind must have 1..64 characters")
    if max_attempts < 1:
        raise JobError("max_attempts must be at least 1")
    if dedup_key is not None and not 0 < len(dedup_key) <= 128:
        raise JobError("dedup key must have 1..128 characters")

    def tx(s: Session) -> Enqueued:
        if dedup_key is not None and (live := _live_by_key(s, dedup_key)) is not None:
            return Enqueued(live, False)
        job = Job(kind=kind, params=dict(params or {}), dedup_key=dedup_key, active_key=dedup_key,
                  requested_by=requested_by, max_attempts=max_attempts)
        _append_log(job, f"queued by user {requested_by}" if requested_by else "queued", utcnow())
        s.add(job)
        s.flush()
        s.refresh(job)
        return Enqueued(job, True)

    try:
        return run_write(engine, tx)
    except IntegrityError:
        # The racing insert won on the unique active_key (retries exhausted): return its job.
        with read_scope(engine) as s:
            live = _live_by_key(s, dedup_key) if dedup_key else None
        if live is None:
            raise
        return Enqueued(live, False)


def _reap(s: Session, now: datetime, stale_after: timedelta) -> list[int]:
    cutoff = now - stale_after
    q = select(Job).where(Job.state == JobState.running, Job.heartbeat_at < cutoff).order_by(Job.id).limit(50)
    if is_postgres(s):
        q = q.with_for_update(skip_locked=True)
    reaped = []
    for job in s.exec(q).all():
        lost = f"worker {job.worker} stopped answering (last heartbeat {job.heartbeat_at:%H:%M:%S})"
        if job.attempts < job.max_attempts:
            job.state, job.worker = JobState.queued, None
            _append_log(job, f"{lost}; retrying (attempt {job.attempts + 1} of {job.max_attempts})", now)
        else:
            job.state, job.finished_at, job.active_key = JobState.failed, now, None
            job.error = f"{lost}; gave up after {job.attempts} attempts"
            _append_log(job, job.error, now)
        s.add(job)
        reaped.append(job.id)
    return reaped


def reap_stale(engine: Engine, *, now: datetime | None = None, stale_after: timedelta = STALE_AFTER) -> list[int]:
    """Requeue (or fail, when out of attempts) running jobs whose worker stopped heartbeating."""
    return run_write(engine, lambda s: _reap(s, now or utcnow(), stale_after))


def claim(engine: Engine, worker: str, *, kinds: Iterable[str] | None = None, now: datetime | None = None,
          stale_after: timedelta = STALE_AFTER) -> Job | None:
    """Take the oldest queued job (of `kinds`, if given) for `worker`; None when there is none.
    Orphaned jobs are reaped first, so a restarted worker picks its dead predecessor's job up."""
    now = now or utcnow()
    kinds = sorted(set(kinds)) if kinds is not None else None

    def tx(s: Session) -> Job | None:
        _reap(s, now, stale_after)
        q = select(Job).where(Job.state == JobState.queued)
        if kinds is not None:
            q = q.where(Job.kind.in_(kinds))
        q = q.order_by(Job.id).limit(1)
        if is_postgres(s):
            q = q.with_for_update(skip_locked=True)
        job = s.exec(q).first()
        if job is None:
            return None
        job.state, job.worker, job.attempts = JobState.running, worker, job.attempts + 1
        job.heartbeat_at, job.started_at, job.error = now, now, None
        _append_log(job, f"attempt {job.attempts} started by {worker}", now)
        s.add(job)
        s.flush()
        s.refresh(job)
        return job

    return run_write(engine, tx)


def _owned(s: Session, job_id: int, worker: str) -> Job | None:
    q = select(Job).where(Job.id == job_id)
    if is_postgres(s):
        q = q.with_for_update()
    job = s.exec(q).first()
    if job is None or job.state != JobState.running or job.worker != worker:
        return None
    return job


def heartbeat(engine: Engine, job_id: int, worker: str, *, progress: float | None = None,
              note: str | None = None, log: str | None = None, now: datetime | None = None) -> bool:
    """Prove the worker is alive and record progress. False when the job is no longer this
    worker's (reaped after a long stall, or cancelled): the handler should stop."""
    now = now or utcnow()

    def tx(s: Session) -> bool:
        job = _owned(s, job_id, worker)
        if job is None:
            return False
        job.heartbeat_at = now
        if progress is not None:
            job.progress = min(1.0, max(0.0, float(progress)))
        if note is not None:
            job.progress_note = note[:256]
        if log:
            _append_log(job, log, now)
        s.add(job)
        return True

    return run_write(engine, tx)


def finish(engine: Engine, job_id: int, worker: str, result: dict[str, Any] | None = None) -> bool:
    def tx(s: Session) -> bool:
        job = _owned(s, job_id, worker)
        if job is None:
            return False
        now = utcnow()
        job.state, job.finished_at, job.active_key, job.progress = JobState.done, now, None, 1.0
        job.result = dict(result or {})
        _append_log(job, "done", now)
        s.add(job)
        return True

    return run_write(engine, tx)


def fail(engine: Engine, job_id: int, worker: str, error: str, *, retry: bool = True) -> str | None:
    """Record an error. With `retry` and attempts left the job is queued again; otherwise it
    ends `failed` with the error. Returns the new state (None if the job was not ours)."""
    def tx(s: Session) -> str | None:
        job = _owned(s, job_id, worker)
        if job is None:
            return None
        now = utcnow()
        job.error = error[:4000]
        _append_log(job, f"error: {error.splitlines()[0] if error else ''}"[:500], now)
        if retry and job.attempts < job.max_attempts:
            job.state, job.worker = JobState.queued, None
            _append_log(job, f"will retry (attempt {job.attempts + 1} of {job.max_attempts})", now)
        else:
            job.state, job.finished_at, job.active_key = JobState.failed, now, None
        s.add(job)
        return job.state

    return run_write(engine, tx)


def release(engine: Engine, job_id: int, worker: str, reason: str = "worker stopping") -> bool:
    """Give a running job back untouched (the worker was asked to stop): queued again, and the
    interrupted attempt is not counted against it."""
    def tx(s: Session) -> bool:
        job = _owned(s, job_id, worker)
        if job is None:
            return False
        job.state, job.worker, job.attempts = JobState.queued, None, max(0, job.attempts - 1)
        _append_log(job, f"released: {reason}", utcnow())
        s.add(job)
        return True

    return run_write(engine, tx)


def get_job(engine: Engine, job_id: int) -> Job:
    with read_scope(engine) as s:
        job = s.get(Job, job_id)
    if job is None:
        raise JobError(f"no job {job_id}")
    return job


def list_jobs(engine: Engine, *, states: Iterable[str] | None = None, kind: str | None = None,
              limit: int = 50) -> list[Job]:
    """Newest first."""
    with read_scope(engine) as s:
        q = select(Job)
        if states is not None:
            q = q.where(Job.state.in_(list(states)))
        if kind is not None:
            q = q.where(Job.kind == kind)
        return list(s.exec(q.order_by(Job.id.desc()).limit(limit)))


def job_counts(engine: Engine) -> dict[str, int]:
    with read_scope(engine) as s:
        rows = s.exec(select(Job.state, func.count()).group_by(Job.state)).all()
    return {state.value: 0 for state in JobState} | {str(k): int(v) for k, v in rows}


def cancel(engine: Engine, job_id: int, *, reason: str = "cancelled") -> bool:
    """Fail a queued job before any worker takes it (a running one is stopped by its worker
    seeing its heartbeat refused)."""
    def tx(s: Session) -> bool:
        n = s.execute(update(Job).where(Job.id == job_id, Job.state.in_([JobState.queued, JobState.running]))
                      .values(state=JobState.failed, error=reason, active_key=None, finished_at=utcnow(),
                              worker=None)).rowcount
        return n == 1

    return run_write(engine, tx)
