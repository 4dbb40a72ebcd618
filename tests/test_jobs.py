"""The job store and the worker on SQLite and PostgreSQL: idempotent enqueue, exclusive claims
under concurrency, heartbeats, retries of crashed workers' jobs, clean stop and release."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from relcurate.db import jobs
from relcurate.db.models import utcnow
from relcurate.jobs.registry import register_handler, unregister_handler
from relcurate.jobs.worker import PermanentJobError, run_one, run_worker


def test_enqueue_is_idempotent_by_dedup_key(workspace):
    eng = workspace.engine
    a = jobs.enqueue(eng, "noop", {"x": 1}, dedup_key="k")
    b = jobs.enqueue(eng, "noop", {"x": 2}, dedup_key="k")
    assert a.created and not b.created and a.job.id == b.job.id
    c = jobs.enqueue(eng, "noop")  # no key: always a new job
    assert c.job.id != a.job.id
    # Once the keyed job ends, the key is free again (a later refresh is a new job).
    job = jobs.claim(eng, "w1", kinds=["noop"])
    assert job.id == a.job.id and job.state == "running" and job.attempts == 1
    assert jobs.finish(eng, job.id, "w1", {"ok": True})
    d = jobs.enqueue(eng, "noop", dedup_key="k")
    assert d.created and d.job.id not in (a.job.id, c.job.id)
    assert jobs.get_job(eng, a.job.id).result == {"ok": True}


def test_double_click_race_makes_one_job(workspace):
    eng = workspace.engine
    out, barrier = [], threading.Barrier(6)

    def click():
        barrier.wait()
        out.append(jobs.enqueue(eng, "noop", dedup_key="refresh").job.id)

    threads = [threading.Thread(target=click) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(out)) == 1
    assert len(jobs.list_jobs(eng)) == 1


def test_two_workers_never_claim_the_same_job(workspace):
    eng = workspace.engine
    ids = [jobs.enqueue(eng, "noop").job.id for _ in range(20)]
    claimed: list[tuple[str, int]] = []
    lock = threading.Lock()

    def work(name):
        while (job := jobs.claim(eng, name, kinds=["noop"])) is not None:
            with lock:
                claimed.append((name, job.id))
            jobs.finish(eng, job.id, name)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    got = [j for _, j in claimed]
    assert sorted(got) == sorted(ids) and len(set(got)) == len(got)
    assert jobs.job_counts(eng)["done"] == 20


def test_crashed_worker_job_is_retried_then_failed_with_reason(workspace):
    eng = workspace.engine
    job = jobs.enqueue(eng, "noop", max_attempts=2).job
    t0 = utcnow()
    assert jobs.claim(eng, "dead-1", kinds=["noop"], now=t0).id == job.id  # ... and the worker dies
    # Another worker, later: the stale job is reaped and handed out again (attempt 2).
    later = t0 + timedelta(minutes=5)
    again = jobs.claim(eng, "w2", kinds=["noop"], now=later)
    assert again.id == job.id and again.attempts == 2 and again.worker == "w2"
    assert "stopped answering" in again.log_tail
    # The old worker waking up can no longer touch it.
    assert not jobs.heartbeat(eng, job.id, "dead-1")
    # w2 dies too: out of attempts -> failed, with the reason, never silently dropped.
    assert jobs.reap_stale(eng, now=later + timedelta(minutes=5)) == [job.id]
    final = jobs.get_job(eng, job.id)
    assert final.state == "failed" and "gave up after 2 attempts" in final.error
    assert final.active_key is None


def test_heartbeat_progress_and_log_tail(workspace):
    eng = workspace.engine
    job = jobs.enqueue(eng, "noop").job
    jobs.claim(eng, "w", kinds=["noop"])
    assert jobs.heartbeat(eng, job.id, "w", progress=0.4, note="halfway", log="step 1")
    j = jobs.get_job(eng, job.id)
    assert j.progress == pytest.approx(0.4) and j.progress_note == "halfway" and "step 1" in j.log_tail
    for i in range(2000):  # the tail stays bounded
        jobs.heartbeat(eng, job.id, "w", log=f"line {i} " + "x" * 20) if i % 200 == 0 else None
    assert len(jobs.get_job(eng, job.id).log_tail) <= jobs.LOG_TAIL_CHARS


def test_worker_runs_registered_handlers_and_records_errors(workspace):
    eng = workspace.engine
    calls = []

    def ok(ctx):
        ctx.progress(0.5, "working")
        calls.append(ctx.params["n"])
        return {"n": ctx.params["n"] * 2}

    def flaky(ctx):
        if ctx.job.attempts < 2:
            raise RuntimeError("transient")
        return {"attempt": ctx.job.attempts}

    def broken(ctx):
        raise PermanentJobError("bad parameters: no such thing")

    register_handler("t-ok", ok, replace=True)
    register_handler("t-flaky", flaky, replace=True)
    register_handler("t-broken", broken, replace=True)
    try:
        a = jobs.enqueue(eng, "t-ok", {"n": 21}).job
        b = jobs.enqueue(eng, "t-flaky", max_attempts=3).job
        c = jobs.enqueue(eng, "t-broken").job
        d = jobs.enqueue(eng, "no-such-handler").job
        n = run_worker(workspace, exit_when_idle=True, kinds=["t-ok", "t-flaky", "t-broken", "no-such-handler"])
        assert n == 5  # flaky ran twice
        assert jobs.get_job(eng, a.id).result == {"n": 42} and calls == [21]
        jb = jobs.get_job(eng, b.id)
        assert jb.state == "done" and jb.result == {"attempt": 2} and "transient" in jb.log_tail
        jc = jobs.get_job(eng, c.id)
        assert jc.state == "failed" and jc.attempts == 1 and "bad parameters" in jc.error
        jd = jobs.get_job(eng, d.id)
        assert jd.state == "failed" and "no job handler" in jd.error
    finally:
        for name in ("t-ok", "t-flaky", "t-broken"):
            unregister_handler(name)


def test_stop_releases_the_running_job_untouched(workspace):
    eng = workspace.engine
    started = threading.Event()

    def slow(ctx):
        started.set()
        for i in range(1000):
            time.sleep(0.01)
            ctx.progress(i / 1000)  # raises JobInterrupted once the worker is stopping
        return {}

    register_handler("t-slow", slow, replace=True)
    try:
        job = jobs.enqueue(eng, "t-slow").job
        stop = threading.Event()
        th = threading.Thread(target=run_worker, args=(workspace,), kwargs={"stop": stop, "kinds": ["t-slow"]})
        th.start()
        assert started.wait(10)
        stop.set()  # what SIGTERM does
        th.join(10)
        assert not th.is_alive()
        j = jobs.get_job(eng, job.id)
        assert j.state == "queued" and j.attempts == 0 and "released" in j.log_tail
        # A fresh worker takes it up and finishes it.
        register_handler("t-slow", lambda ctx: {"resumed": True}, replace=True)
        assert run_worker(workspace, exit_when_idle=True, kinds=["t-slow"]) == 1
        assert jobs.get_job(eng, job.id).result == {"resumed": True}
    finally:
        unregister_handler("t-slow")


def test_cancel_queued_and_running(workspace):
    eng = workspace.engine
    a = jobs.enqueue(eng, "noop", dedup_key="a").job
    assert jobs.cancel(eng, a.id, reason="not needed")
    ja = jobs.get_job(eng, a.id)
    assert ja.state == "failed" and ja.error == "not needed"
    assert jobs.enqueue(eng, "noop", dedup_key="a").created
