"""The "export" job: queued from params (one live job per output folder), run by the worker as
the user who queued it, its result (path, manifest id, warnings, file counts) stored on the job,
refusals and bad params failing at once with the reason; on SQLite and PostgreSQL."""
from __future__ import annotations

import json

from relcurate import accounts
from relcurate.audit import audit_log
from relcurate.db import jobs as job_store
from relcurate.exports.params import ExportParamsError
from relcurate.exports.preview import preview_export
from relcurate.jobs.export_job import enqueue_export
from relcurate.jobs.registry import BUILTIN_HANDLERS, get_handler
from relcurate.jobs.worker import run_worker
from relcurate.testing.exports import build_curated

import pytest


def _uid(ws, name: str) -> int:
    return next(u.id for u in accounts.list_users(ws.engine) if u.username == name)


def test_export_job_runs_via_the_worker(workspace, tmp_path):
    ws = workspace
    build_curated(ws, tmp_path)
    assert BUILTIN_HANDLERS["export"] == "relcurate.jobs.export_job:run_export_job" and get_handler("export")
    cur = _uid(ws, "cur")
    seed = next(s for s in range(200) if preview_export(ws, {"format": "relsim", "name": "r", "seed": s})
                .splits["test"]["rows"] == 0)
    params = {"format": "relsim", "name": "r", "seed": seed}
    first = enqueue_export(ws, params, requested_by=cur)
    again = enqueue_export(ws, params, requested_by=cur)  # a double click
    assert first.created and not again.created and again.job.id == first.job.id
    other = enqueue_export(ws, {"format": "seed-groups", "name": "r"}, requested_by=cur)
    assert not other.created  # a live job already writes exports/r
    assert run_worker(ws, exit_when_idle=True) == 1
    job = job_store.get_job(ws.engine, first.job.id)
    assert job.state == "done" and job.progress == 1.0, job.error
    res = job.result
    manifest = json.loads((ws.exports_dir / "r" / "manifest.json").read_text())
    assert res["path"] == str(ws.exports_dir / "r") and res["manifest_id"] > 0 and res["format"] == "relsim"
    assert res["counts"] == manifest["counts"] and res["files"] == len(manifest["files"]) + 1
    assert res["bytes"] == sum(f["bytes"] for f in manifest["files"].values())
    assert any("test split is empty" in w for w in res["warnings"])  # the preview's warning, carried
    assert "warning: the test split is empty" in job.log_tail
    event = audit_log(ws.engine, limit=1)[0]
    assert (event.channel, event.actor, event.action) == ("web", "cur", "export.relsim")


def test_refusals_and_bad_params_fail_at_once(workspace, tmp_path):
    ws = workspace
    build_curated(ws, tmp_path)
    cur, ann = _uid(ws, "cur"), _uid(ws, "ann")
    with pytest.raises(ExportParamsError):
        enqueue_export(ws, {"format": "relsim", "name": "../x"}, requested_by=cur)
    assert job_store.list_jobs(ws.engine) == []  # nothing queued for bad params
    refused = enqueue_export(ws, {"format": "relsim", "name": "by-ann"}, requested_by=ann).job
    anonymous = job_store.enqueue(ws.engine, "export", {"format": "relsim", "name": "anon"}).job
    tampered = job_store.enqueue(ws.engine, "export", {"format": "relsim", "name": "../../etc"}, requested_by=cur).job
    (ws.exports_dir / "taken").mkdir()
    exists = enqueue_export(ws, {"format": "relsim", "name": "taken"}, requested_by=cur).job
    run_worker(ws, exit_when_idle=True)
    errors = {j.id: (j.state, j.attempts, j.error) for j in job_store.list_jobs(ws.engine)}
    assert all(state == "failed" and attempts == 1 for state, attempts, _ in errors.values())  # no retries
    assert "only curators and admins may export" in errors[refused.id][2]
    assert "names nobody" in errors[anonymous.id][2]
    assert "name:" in errors[tampered.id][2]
    assert "already exists" in errors[exists.id][2]
    assert not (ws.exports_dir / "by-ann").exists() and not (ws.root.parent / "etc").exists()


def test_a_stopping_worker_releases_the_export_untouched(workspace, tmp_path):
    """Stop while the export runs (at its first progress report): the job goes back to the queue,
    no folder or staging leftover is there, and the next worker writes it."""
    import threading

    from relcurate.jobs.worker import run_one

    ws = workspace
    build_curated(ws, tmp_path)
    job = enqueue_export(ws, {"format": "relsim", "name": "stopped"}, requested_by=_uid(ws, "cur")).job
    claimed = job_store.claim(ws.engine, "w1")
    stop = threading.Event()
    stop.set()
    assert run_one(ws, claimed, "w1", stop) == "queued"
    assert job_store.get_job(ws.engine, job.id).attempts == 0
    assert not any(p.name.startswith(("stopped", ".stopped")) for p in ws.exports_dir.iterdir())
    assert run_worker(ws, exit_when_idle=True) == 1
    assert job_store.get_job(ws.engine, job.id).state == "done" and (ws.exports_dir / "stopped" / "manifest.json").exists()
