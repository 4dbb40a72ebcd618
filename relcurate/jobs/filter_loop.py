"""Job handlers of the filter loop: the fast-head refresh, and the LoRA retrain of the real
filter (which needs the trainers package; until it is installed the job fails with a clear
reason instead of hanging or vanishing)."""
from __future__ import annotations

import importlib

from relcurate.jobs.worker import JobContext, PermanentJobError
from relcurate.training.fast_head import FAST_HEAD_NAME, FastHeadError, count_decided, refresh_fast_head


def run_fast_head_refresh(ctx: JobContext) -> dict:
    params = ctx.params
    if not params.get("embedding"):
        raise PermanentJobError("fast-head refresh needs params.embedding (\"name:version\")")
    seen = count_decided(ctx.ws)
    ctx.progress(0.0, "loading vectors")
    try:
        res = refresh_fast_head(ctx.ws, params["embedding"], name=params.get("name") or FAST_HEAD_NAME,
                                labels_seen=seen, progress=lambda f, note: ctx.progress(f, note))
    except FastHeadError as exc:
        raise PermanentJobError(str(exc)) from None
    ctx.log(f"fast head v{res.version}: {res.labels} labels, heads {res.heads}, "
            f"re-ranked in {res.timings.get('to_reranked', 0):.2f} s")
    return res.as_dict()


TRAINER_MODULE = "relcurate.training.filter_trainer"


def run_lora_retrain(ctx: JobContext) -> dict:
    """Delegates to the filter LoRA trainer (`training/filter_trainer.run_retrain_job`)."""
    try:
        trainer = importlib.import_module(TRAINER_MODULE)
    except ModuleNotFoundError:
        raise PermanentJobError(f"filter LoRA trainer not installed ({TRAINER_MODULE} is missing); "
                                "this job can run once the trainers land") from None
    fn = getattr(trainer, "run_retrain_job", None)
    if fn is None:
        raise PermanentJobError(f"trainer not installed: {TRAINER_MODULE} has no run_retrain_job(ctx)")
    from relcurate.training.snapshot import TooLittleData

    try:
        return fn(ctx)
    except (TooLittleData, ValueError) as exc:  # a clear message, and no retry: nothing would change
        raise PermanentJobError(str(exc)) from None
