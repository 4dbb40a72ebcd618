"""The relsim loop: retrain relsim on the accepted captions, re-embed the workspace with the new
version (batched, resumable: `models/workspace_scoring.embed_workspace` skips finished chunks),
rebuild its faiss index, and make it the space the group builder's "more like this group" uses by
default (workspace setting `relsim_space`). Older versions keep their spaces, selectable side by
side, and `compare_versions` puts their held-out metrics and top-k neighbours of a group together.

The jobs (jobs/relsim_loop.py) chain: "relsim-retrain" enqueues "relsim-reembed" for the version
it registered.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from relcurate.curation.groups import group_search as gs
from relcurate.curation.workspace_settings import RELSIM_SPACE, get_setting, set_setting
from relcurate.db import jobs as job_store
from relcurate.db.models import ModelKind, ModelVersion
from relcurate.models.registry import get_model_version, get_model_version_by_id, list_model_versions
from relcurate.workspace import Workspace

RETRAIN_JOB = "relsim-retrain"
REEMBED_JOB = "relsim-reembed"
METRICS = ("same_caption_recall@1", "same_caption_recall@5", "same_group_recall@1", "same_group_recall@5")


def space_of(ws: Workspace, mv: ModelVersion) -> str:
    from relcurate.models.workspace_scoring import vectors_dir

    return vectors_dir(ws, mv).name


def resolve_relsim(ws: Workspace, ref: str | int | None) -> ModelVersion:
    """A relsim version by id, "name[:version]", or the newest one."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        mv = get_model_version_by_id(ws, int(ref))
    elif ref:
        name, _, version = ref.partition(":")
        mv = get_model_version(ws, name, int(version) if version else None)
    else:
        found = list_model_versions(ws, kind=ModelKind.relsim)
        if not found:
            raise ValueError("no relsim version is registered (relcurate loop relsim retrain --base ...)")
        mv = max(found, key=lambda m: (m.created_at, m.id))
    if mv.kind != ModelKind.relsim:
        raise ValueError(f"{mv.name}:{mv.version} is a {mv.kind} model, not relsim")
    return mv


def retrain_relsim(ws: Workspace, params: dict[str, Any] | None = None, *,
                   on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train relsim on the accepted captions (training/relsim_trainer.py) and register a version.
    Params: `base` (registered model or path; default: the newest relsim's base), `name`,
    `max_steps`, `batch_size`, `epochs`, `lr`, `image_size`, `heldout_fraction`."""
    from relcurate.training.relsim_trainer import RelsimSettings, train_relsim

    p = dict(params or {})
    base = p.get("base") or resolve_relsim(ws, None).base_model
    s = RelsimSettings()
    loop = {k: p[k] for k in ("max_steps", "batch_size", "epochs", "lr") if p.get(k) is not None}
    if loop:
        s = dataclasses.replace(s, loop=dataclasses.replace(s.loop, **loop))
    if p.get("image_size"):
        s = dataclasses.replace(s, image_size=int(p["image_size"]))
    if p.get("heldout_fraction"):
        s = dataclasses.replace(s, heldout_fraction=float(p["heldout_fraction"]))
    res = train_relsim(ws, name=p.get("name") or "relsim-ft", base=base, settings=s, on_step=on_step)
    mv = res.model_version
    return {"model_version_id": mv.id, "model": f"{mv.name}:{mv.version}", "steps": res.steps,
            "reused": res.reused, "metrics": {k: mv.metrics.get(k) for k in METRICS}}


def reembed(ws: Workspace, ref: str | int | None = None, *, batch_size: int = 16, make_default: bool = True,
            embedder: Any = None, progress: Callable[[int, int], None] | None = None,
            user_id: int | None = None) -> dict[str, Any]:
    """Embed every usable image with a relsim version (resumes a killed run), rebuild its index and,
    with `make_default`, make its space the group builder's default. `embedder` replaces loading the
    version's model (tests)."""
    from relcurate.models.registry import load_model
    from relcurate.models.workspace_scoring import build_workspace_index, embed_workspace

    mv = resolve_relsim(ws, ref)
    model = embedder or load_model(ws, mv)
    embed_workspace(ws, model, mv, batch_size=batch_size, progress=progress)
    index = build_workspace_index(ws, mv)
    space = space_of(ws, mv)
    changed = set_relsim_space(ws, space, user_id=user_id) if make_default else False
    return {"model_version_id": mv.id, "model": f"{mv.name}:{mv.version}", "space": space,
            "vectors": len(index), "default": make_default, "default_changed": changed}


def set_relsim_space(ws: Workspace, space: str, *, user_id: int | None = None) -> bool:
    """Make `space` (a saved space name, or a relsim "name:version") the default; False if it was."""
    if space not in gs.available_spaces(ws):
        try:
            space = space_of(ws, resolve_relsim(ws, space))
        except (ValueError, LookupError):
            pass
    if space not in gs.available_spaces(ws):
        raise ValueError(f"no embedding space {space!r}; known: {', '.join(gs.available_spaces(ws))}")
    return set_setting(ws, RELSIM_SPACE, space, user_id=user_id)


def relsim_space(ws: Workspace) -> str:
    return gs.default_space(ws)


def compare_versions(ws: Workspace, group: Sequence[int] | None = None, *, k: int = 10) -> dict[str, Any]:
    """relsim versions side by side: held-out metrics, space, whether indexed and default; with a
    `group` (member image ids), each space's top-k "more like this group" and the overlap of every
    pair of spaces (|A & B| / k)."""
    spaces = set(gs.available_spaces(ws))
    default = gs.default_space(ws)
    rows, tops = [], {}
    for mv in sorted(list_model_versions(ws, kind=ModelKind.relsim), key=lambda m: (m.created_at, m.id)):
        space = space_of(ws, mv)
        row = {"model": f"{mv.name}:{mv.version}", "model_version_id": mv.id, "space": space,
               "indexed": space in spaces, "default": space == default,
               **{m: (mv.metrics or {}).get(m) for m in METRICS}}
        if group and row["indexed"]:
            tops[row["model"]] = [n.image_id for n in gs.more_like_group(ws, list(group), space=space, k=k).centroid]
            row["top_k"] = tops[row["model"]]
        rows.append(row)
    names = list(tops)
    overlap = [{"a": a, "b": b, "overlap": len(set(tops[a]) & set(tops[b])) / k}
               for i, a in enumerate(names) for b in names[i + 1:]]
    return {"default_space": default, "setting": get_setting(ws, RELSIM_SPACE), "k": k,
            "versions": rows, "overlap": overlap}


def enqueue_relsim_retrain(ws: Workspace, *, requested_by: int | None = None,
                           params: dict[str, Any] | None = None) -> job_store.Enqueued:
    return job_store.enqueue(ws.engine, RETRAIN_JOB, dict(params or {}), dedup_key=RETRAIN_JOB,
                             requested_by=requested_by, max_attempts=1)


def enqueue_reembed(ws: Workspace, model_version_id: int, *, requested_by: int | None = None,
                    params: dict[str, Any] | None = None) -> job_store.Enqueued:
    return job_store.enqueue(ws.engine, REEMBED_JOB, {**(params or {}), "model_version_id": int(model_version_id)},
                             dedup_key=f"{REEMBED_JOB}:{int(model_version_id)}", requested_by=requested_by)
