"""Job handlers of the relsim loop: "relsim-retrain" (train on accepted captions, register a
version, then enqueue its re-embedding) and "relsim-reembed" (embed the workspace with a version,
rebuild its index, make it the group builder's default space). The work is in
training/relsim_loop.py."""
from __future__ import annotations

from relcurate.jobs.worker import JobContext, PermanentJobError
from relcurate.models.registry import ModelNotFound
from relcurate.training.relsim_loop import enqueue_reembed, reembed, retrain_relsim


def run_relsim_retrain(ctx: JobContext) -> dict:
    from relcurate.training.snapshot import TooLittleData

    p = dict(ctx.params or {})
    steps = p.get("max_steps")
    try:
        res = retrain_relsim(ctx.ws, p, on_step=lambda step: ctx.progress(
            min(0.99, step / max(1, steps or step + 1)), f"step {step}"))
    except (TooLittleData, ValueError, ModelNotFound) as exc:
        raise PermanentJobError(str(exc)) from None
    if p.get("reembed", True):  # the chain: a new version is no use to the group builder unembedded
        nxt = enqueue_reembed(ctx.ws, res["model_version_id"], requested_by=ctx.job.requested_by,
                              params={k: p[k] for k in ("batch_size_embed", "make_default") if k in p})
        res["reembed_job"] = nxt.job.id
    ctx.log(f"relsim {res['model']} ({'reused' if res['reused'] else str(res['steps']) + ' steps'})")
    return res


def run_relsim_reembed(ctx: JobContext) -> dict:
    p = dict(ctx.params or {})
    try:
        return reembed(ctx.ws, p.get("model_version_id") or p.get("model"),
                       batch_size=int(p.get("batch_size_embed") or 16), make_default=bool(p.get("make_default", True)),
                       progress=lambda done, total: ctx.progress(done / max(1, total), f"embedded {done} of {total}"),
                       user_id=ctx.job.requested_by)
    except (ValueError, ModelNotFound) as exc:
        raise PermanentJobError(str(exc)) from None
