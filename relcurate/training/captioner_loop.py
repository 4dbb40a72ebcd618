"""The captioner loop: caption the interesting images that have no accepted caption with the latest
captioner version, queue a review sample (checker-flagged, least confident, random audit), and
retrain the captioner on the accepted captions when asked. Both run as worker jobs
(jobs/captioner_loop.py); this module holds the work, so the CLI can also run it in-process.

Captioning is batched and resumable: each batch is stored in its own transaction, and a re-run
skips images the same version already captioned, so a killed job loses at most one batch.
The model runs outside any transaction.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from relcurate.curation.groups import caption_queue as cq
from relcurate.curation.groups.anonymity import check_caption
from relcurate.curation.groups.captions import CaptionerSpec, latest_captioner, load_captioner
from relcurate.db import jobs as job_store
from relcurate.db.models import ModelKind, ModelVersion
from relcurate.models.registry import get_model_version, list_model_versions
from relcurate.training.common import chunks
from relcurate.workspace import Workspace

CAPTION_JOB = "caption-pool"
RETRAIN_JOB = "captioner-retrain"
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class CaptionPoolSettings:
    captioner: str | None = None  # "name[:version]"; default: the newest captioner version
    kept_by: str | None = None  # filter "name[:version]" whose kept images also count; default: newest trained filter
    batch_size: int = 8
    limit: int | None = None  # caption at most this many images per run
    sample_size: int = 50  # captions queued for review per run
    audit_share: float = 0.2  # of the sample, drawn at random (what the model is sure of, too)
    seed: int = 0

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "CaptionPoolSettings":
        p = {k: v for k, v in (params or {}).items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**p)


def _captioner_version(ws: Workspace, ref: str | None) -> ModelVersion:
    if ref:
        mv = get_model_version(ws, *_split_ref(ref))
        if mv.kind != ModelKind.captioner:
            raise ValueError(f"{ref} is a {mv.kind} model, not a captioner")
        return mv
    spec = latest_captioner(ws)
    if spec is None:
        raise ValueError("no captioner version is registered (train one: relcurate loop captioner retrain)")
    return get_model_version(ws, spec.name, spec.version)


def _split_ref(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.partition(":")
    return name, int(version) if version else None


def _kept_by(ws: Workspace, ref: str | None) -> int | None:
    """The filter whose kept images count as interesting: the one named, else the newest filter
    version that has a threshold (a trained filter; fast heads have none), else none."""
    if ref:
        return get_model_version(ws, *_split_ref(ref)).id
    trained = [mv for mv in list_model_versions(ws, kind=ModelKind.filter) if "threshold" in (mv.config or {})]
    return max(trained, key=lambda mv: (mv.created_at, mv.id)).id if trained else None


def caption_pool(ws: Workspace, settings: CaptionPoolSettings | None = None, *, captioner: Any = None,
                 progress: Progress | None = None, job_id: int | None = None) -> dict[str, Any]:
    """Caption the eligible images, store the captions with version, confidence and checker
    verdict, then draw the review sample. `captioner` (an object with `caption_results`) replaces
    loading the version's model (tests)."""
    s = settings or CaptionPoolSettings()
    say = progress or (lambda _f, _n: None)
    mv = _captioner_version(ws, s.captioner)
    kept = _kept_by(ws, s.kept_by)
    todo = cq.eligible_images(ws, mv.id, kept_by=kept, limit=s.limit)
    say(0.0, f"{len(todo)} images to caption with {mv.name}:{mv.version}")
    stored = empty = 0
    if todo:
        model = captioner or load_captioner(ws, CaptionerSpec(mv.id, mv.name, mv.version, mv.base_model,
                                                              mv.adapter_path))
        alt = cq.alt_texts(ws, todo)
        done = 0
        for part in chunks(todo, max(1, s.batch_size)):
            results = model.caption_results(cq.load_images(ws, part))
            items = []
            for iid, r in zip(part, results):
                check = check_caption(r.text, alt_texts=alt.get(iid, []))
                items.append(cq.Generated(iid, r.text, getattr(r, "confidence", None), check.ok,
                                          tuple(sorted({f.code for f in check.errors}))))
            new = cq.record_generated(ws, mv.id, items, job_id=job_id)
            stored += len(new)
            empty += len(part) - len(new)
            done += len(part)
            say(0.95 * done / len(todo), f"captioned {done} of {len(todo)}")
    queued = cq.draw_review_sample(ws, mv.id, size=s.sample_size, audit_share=s.audit_share, seed=s.seed)
    say(1.0, f"queued {sum(queued.values())} for review")
    return {"captioner": f"{mv.name}:{mv.version}", "model_version_id": mv.id, "eligible": len(todo),
            "captioned": stored, "not_stored": empty, "queued": queued, "kept_by": kept, "settings": asdict(s)}


def retrain_captioner(ws: Workspace, params: dict[str, Any] | None = None, *,
                      on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train the captioner on the accepted captions (training/captioner_trainer.py) and register a
    version. Params: `base` (a registered model or path; default: the newest captioner's base),
    `name`, `max_steps`, `batch_size`, `epochs`, `max_pixels`, `per` (image | group)."""
    import dataclasses

    from relcurate.training.captioner_trainer import CaptionerSettings, train_captioner

    p = dict(params or {})
    base = p.get("base")
    if not base:
        spec = latest_captioner(ws)
        if spec is None:
            raise ValueError("the captioner retrain needs a base model: params {'base': NAME_OR_PATH}")
        base = spec.base_model
    s = CaptionerSettings()
    loop_changes = {k: p[k] for k in ("max_steps", "batch_size", "epochs") if p.get(k) is not None}
    if loop_changes:
        s = dataclasses.replace(s, loop=dataclasses.replace(s.loop, **loop_changes))
    for key in ("max_pixels", "eval_max_new_tokens", "eval_limit"):
        if p.get(key):
            s = dataclasses.replace(s, **{key: int(p[key])})
    if p.get("per"):
        s = dataclasses.replace(s, per=str(p["per"]))
    res = train_captioner(ws, name=p.get("name") or "captioner-ft", base=base, settings=s, on_step=on_step)
    mv = res.model_version
    return {"model_version_id": getattr(mv, "id", None), "model": f"{mv.name}:{mv.version}" if mv else None,
            "steps": res.steps, "reused": res.reused, "metrics": res.metrics}


def enqueue_caption_pool(ws: Workspace, *, requested_by: int | None = None,
                         params: dict[str, Any] | None = None) -> job_store.Enqueued:
    CaptionPoolSettings.from_params(params)  # refuse unknown shapes now, not in the worker
    return job_store.enqueue(ws.engine, CAPTION_JOB, dict(params or {}), dedup_key=CAPTION_JOB,
                             requested_by=requested_by)


def enqueue_captioner_retrain(ws: Workspace, *, requested_by: int | None = None,
                              params: dict[str, Any] | None = None) -> job_store.Enqueued:
    return job_store.enqueue(ws.engine, RETRAIN_JOB, dict(params or {}), dedup_key=RETRAIN_JOB,
                             requested_by=requested_by, max_attempts=1)
