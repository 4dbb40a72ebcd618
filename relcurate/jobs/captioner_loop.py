"""Job handlers of the captioner loop: "caption-pool" (caption interesting images without an
accepted caption, queue a review sample) and "captioner-retrain" (train on accepted captions and
register a version). The work itself is in training/captioner_loop.py."""
from __future__ import annotations

from relcurate.jobs.worker import JobContext, PermanentJobError
from relcurate.models.registry import ModelNotFound
from relcurate.training.captioner_loop import CaptionPoolSettings, caption_pool, retrain_captioner


def run_caption_pool(ctx: JobContext) -> dict:
    try:
        settings = CaptionPoolSettings.from_params(ctx.params)
        res = caption_pool(ctx.ws, settings, progress=lambda f, note: ctx.progress(f, note), job_id=ctx.job.id)
    except (ValueError, ModelNotFound) as exc:  # nothing to caption with, bad params: retrying will not help
        raise PermanentJobError(str(exc)) from None
    ctx.log(f"{res['captioner']}: captioned {res['captioned']} of {res['eligible']}, queued {res['queued']}")
    return res


def run_captioner_retrain(ctx: JobContext) -> dict:
    from relcurate.training.snapshot import TooLittleData

    steps = (ctx.params or {}).get("max_steps")
    try:
        res = retrain_captioner(ctx.ws, ctx.params, on_step=lambda step: ctx.progress(
            min(0.99, step / max(1, steps or step + 1)), f"step {step}"))
    except (TooLittleData, ValueError, ModelNotFound) as exc:
        raise PermanentJobError(str(exc)) from None
    ctx.log(f"captioner {res['model']} ({'reused' if res['reused'] else str(res['steps']) + ' steps'})")
    return res
