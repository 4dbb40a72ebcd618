"""Exports as jobs: the Export page queues one (`enqueue_export`), the worker runs it
(`run_export_job`, registered as "export") through `exports.params`, the same calls the CLI makes.

The job runs as the user who asked for it (`Job.requested_by`, a signed-in curator or admin; the
role is checked again when it runs), never as a name taken from the params. One live job per
output folder: the dedup key is the folder name, so a double click queues one job, and a
second request for a folder that is being written gets the live job back.
"""
from __future__ import annotations

from typing import Any, Mapping

from relcurate import accounts
from relcurate.audit import record_event
from relcurate.db import jobs as job_store
from relcurate.exports.common import ExportError
from relcurate.exports.params import ExportParamsError, parse_export_params, result_summary, run_export_request
from relcurate.jobs.worker import JobContext, PermanentJobError
from relcurate.workspace import Workspace

KIND = "export"


def dedup_key(name: str) -> str:
    return f"{KIND}:{name}"


def enqueue_export(ws: Workspace, params: Mapping[str, Any], *, requested_by: int) -> job_store.Enqueued:
    """Queue an export (params validated now: ExportParamsError before anything is queued)."""
    req = parse_export_params(params)
    return job_store.enqueue(ws.engine, KIND, req.as_params(), dedup_key=dedup_key(req.name),
                             requested_by=requested_by, max_attempts=2)


def run_export_job(ctx: JobContext) -> dict:
    user = accounts.get_user(ctx.ws.engine, ctx.job.requested_by) if ctx.job.requested_by else None
    if user is None:
        raise PermanentJobError("an export job runs as the curator or admin who queued it; this one names nobody")
    try:
        req = parse_export_params(ctx.params)
        ctx.progress(0.0, "reading the store")
        result = run_export_request(ctx.ws, req, user=user, progress=lambda f, note: ctx.progress(f, note))
    except (ExportParamsError, ExportError) as exc:  # refused, bad params, folder exists: retrying won't help
        raise PermanentJobError(str(exc)) from None
    record_event(ctx.ws.engine, channel="web", actor=user.username, action=f"export.{result.kind}",
                 target=str(result.path)[-256:], detail={"manifest_id": result.manifest_id, "job_id": ctx.job.id})
    for w in result.warnings:
        ctx.log(f"warning: {w}")
    return result_summary(result, req)
