"""The filter loop's settings and trigger: which embedding space the fast head uses, after how
many new labels it is refreshed, and the task order (usually the quota mix).

Settings live in the filter queue's config (`QueueConfig.params["loop"]`, plus "mix" for the
quotas), so pages, the CLI and the worker read one place. The trigger (`maybe_enqueue_refresh`)
runs in the worker between jobs: it compares the decided-image count with what the latest fast
head saw and enqueues a refresh job (deduplicated: at most one queued or running).
"""
from __future__ import annotations

from dataclasses import dataclass

from relcurate.curation.labeling import leases
from relcurate.curation.labeling.al_select import normalise_mix
from relcurate.db import jobs as job_store
from relcurate.training.fast_head import FAST_HEAD_NAME, count_decided, latest_fast_head, resolve_embedding
from relcurate.workspace import Workspace

REFRESH_JOB = "fast-head-refresh"
RETRAIN_JOB = "filter-lora-retrain"
REFRESH_KEY = "fast-head-refresh:filter"


@dataclass(frozen=True)
class LoopSettings:
    embedding: str | None = None  # "name:version" of the embedding space
    every: int = 50  # refresh after this many newly decided images
    name: str = FAST_HEAD_NAME
    enabled: bool = True
    # The filter page shows every annotator which strategy and model version queued the image (the
    # demo does, to show the loop at work); off, only curators and admins see it, since "positive"
    # tells an annotator what the model expects.
    show_origin: bool = False


def get_loop(ws: Workspace) -> LoopSettings:
    raw = dict((leases.get_config(ws.engine, leases.FILTER).params or {}).get("loop") or {})
    return LoopSettings(**{k: v for k, v in raw.items() if k in LoopSettings.__dataclass_fields__})


def configure_loop(ws: Workspace, *, embedding: str | None = None, every: int | None = None,
                   strategy: str | None = None, mix: dict[str, float] | None = None,
                   enabled: bool | None = None, show_origin: bool | None = None,
                   user_id: int | None = None) -> LoopSettings:
    """Change the loop settings (only the arguments given)."""
    cur = get_loop(ws)
    if embedding is not None:
        mv = resolve_embedding(ws, embedding)  # raises ModelNotFound with a clear message
        embedding = f"{mv.name}:{mv.version}"
    if every is not None and every < 1:
        raise ValueError("refresh interval must be at least 1 label")
    new = LoopSettings(embedding=embedding if embedding is not None else cur.embedding,
                       every=every if every is not None else cur.every, name=cur.name,
                       enabled=enabled if enabled is not None else cur.enabled,
                       show_origin=show_origin if show_origin is not None else cur.show_origin)
    params = dict(leases.get_config(ws.engine, leases.FILTER).params or {})
    params["loop"] = {"embedding": new.embedding, "every": new.every, "name": new.name, "enabled": new.enabled,
                      "show_origin": new.show_origin}
    if mix is not None:
        params["mix"] = normalise_mix(mix)
    leases.set_config(ws.engine, leases.FILTER, strategy=strategy, params=params, user_id=user_id)
    return new


def task_origin(ws: Workspace, task: leases.Task, _names: dict[int, str] | None = None) -> str:
    """What put this task in the queue, for the filter page: "uncertainty · fast-head v3", or
    "random". A gold task reads as "random" (honeypots are never revealed to annotators)."""
    if task.is_gold or task.strategy == leases.GOLD_STRATEGY:
        return "random"
    if task.model_version_id is None:
        return task.strategy
    names = _names if _names is not None else _version_names(ws, {task.model_version_id})
    return f"{task.strategy} · {names.get(task.model_version_id, f'model #{task.model_version_id}')}"


def task_origins(ws: Workspace, tasks: list[leases.Task]) -> dict[str, str]:
    """`task_origin` of each task by request id, the model versions looked up once for all."""
    names = _version_names(ws, {t.model_version_id for t in tasks if t.model_version_id is not None})
    return {t.request_id: task_origin(ws, t, names) for t in tasks}


def _version_names(ws: Workspace, ids: set[int]) -> dict[int, str]:
    from relcurate.models.registry import ModelNotFound, get_model_version_by_id

    out = {}
    for mv_id in ids:  # a page shows one or two versions at a time
        try:
            mv = get_model_version_by_id(ws, mv_id)
        except ModelNotFound:
            continue
        out[mv_id] = f"{mv.name} v{mv.version}"
    return out


def labels_since_refresh(ws: Workspace, settings: LoopSettings | None = None) -> tuple[int, int]:
    """(decided images now, decided images the latest fast head saw)."""
    settings = settings or get_loop(ws)
    latest = latest_fast_head(ws, settings.name)
    seen = int((latest.trained_on or {}).get("labels_seen") or 0) if latest is not None else 0
    return count_decided(ws), seen


def enqueue_refresh(ws: Workspace, *, requested_by: int | None = None, embedding: str | None = None) -> job_store.Enqueued:
    settings = get_loop(ws)
    emb = embedding or settings.embedding
    if not emb:
        raise ValueError("no embedding space configured for the filter loop "
                         "(relcurate loop filter configure --embedding NAME:VERSION)")
    return job_store.enqueue(ws.engine, REFRESH_JOB, {"embedding": emb, "name": settings.name},
                             dedup_key=REFRESH_KEY, requested_by=requested_by)


def enqueue_retrain(ws: Workspace, *, requested_by: int | None = None, params: dict | None = None) -> job_store.Enqueued:
    return job_store.enqueue(ws.engine, RETRAIN_JOB, dict(params or {}), dedup_key="filter-lora-retrain",
                             requested_by=requested_by, max_attempts=1)


def maybe_enqueue_refresh(ws: Workspace) -> job_store.Enqueued | None:
    """Enqueue a fast-head refresh when `every` new images were decided since the last one."""
    settings = get_loop(ws)
    if not settings.enabled or not settings.embedding:
        return None
    now, seen = labels_since_refresh(ws, settings)
    if now - seen < settings.every or now < 2:
        return None
    return enqueue_refresh(ws)
