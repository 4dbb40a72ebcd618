"""Push tasks to Label Studio: only what relcurate's queue selects, with predictions.

Filter tasks: the open pool (`LabelTask`, gold excluded: gold images have no open slot) in the
queue's configured task order (`task_order.make_strategy`), minus what this project already has.
Each task carries the model's prediction: Label Studio's uncertainty sampling serves the task
with the *lowest* prediction score first, and its score means confidence in the predicted
choice, so the score sent is max(P(Yes), 1 - P(Yes)) for the choice the model prefers; P(Yes)
itself travels in the task data (`p_yes`). The project's model version is set to the one pushed
(Label Studio ignores predictions of other versions when sampling).

Images are served by Label Studio's local-files storage rooted at the workspace's image store
(`/data/local-files/?d=images/ab/cd/<sha>.<ext>`): no bytes are copied.

Idempotent: the task <-> image map (`ls_task`) is written in the same step as each imported
batch; a push after a crash between import and map first reconciles the map from the server's
tasks (their `relcurate_image_id`), so nothing is imported twice.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from sqlalchemy import exists
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from relcurate.curation.labeling import leases
from relcurate.curation.labeling.task_order import make_strategy
from relcurate.curation.labelstudio import mapping, projects
from relcurate.curation.labelstudio.connection import LabelStudioError, LSClient, load_config
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import (
    Caption, CaptionStatus, GroupMember, Image, LabelTask, LSProject, LSTask, ModelKind, ModelVersion, Prediction,
)
from relcurate.workspace import Workspace, image_relpath

BATCH = 1000
Progress = Callable[[int, int], None]


@dataclass
class PushResult:
    project_id: int  # the Label Studio project id
    pushed: int
    already: int  # tasks the project had before this push
    model_version: str | None = None
    problems: list[str] = field(default_factory=list)


def ls_model_version(mv: ModelVersion) -> str:
    return f"{mv.name}:{mv.version}"


def prediction_for(p_yes: float, model_version: str) -> dict:
    choice = "Yes" if p_yes >= 0.5 else "No"
    return {"model_version": model_version, "score": round(max(p_yes, 1.0 - p_yes), 6),
            "result": [{"from_name": "answer", "to_name": "image", "type": "choices",
                        "value": {"choices": [choice]}}]}


def local_file_url(relpath: str) -> str:
    """`relpath` is relative to the server's document root (see `store_prefix`)."""
    return "/data/local-files/?d=" + quote(relpath, safe="/")


def store_prefix(ws: Workspace) -> str:
    """The workspace folder relative to the server's LOCAL_FILES_DOCUMENT_ROOT ("" when equal)."""
    root = load_config(ws).document_root
    if not root:
        return ""
    try:
        rel = ws.root.resolve().relative_to(Path(root).resolve())
    except ValueError:
        raise LabelStudioError(f"the workspace {ws.root} is not below Label Studio's document root {root}; "
                               f"local files cannot be served from it") from None
    return "" if str(rel) == "." else f"{rel.as_posix()}/"


def ensure_local_storage(ws: Workspace, client: LSClient, ls_project_id: int) -> None:
    """Register the image store as the project's local-files storage (once)."""
    path = str((ws.root / "images").resolve())
    have = client.get("/api/storages/localfiles", project=ls_project_id)
    if any(st.get("path") == path for st in have or []):
        return
    try:
        client.post("/api/storages/localfiles", {"project": ls_project_id, "path": path, "title": "relcurate images",
                                                  "use_blob_urls": False, "regex_filter": ""})
    except LabelStudioError as exc:
        raise LabelStudioError(f"Label Studio cannot serve {path} as local files: start it with "
                               f"LOCAL_FILES_SERVING_ENABLED=true and LOCAL_FILES_DOCUMENT_ROOT={ws.root} "
                               f"(`relcurate labelstudio serve` does). Server said: {exc}") from None


def _filter_model(s, model_version: str | None) -> ModelVersion | None:
    if model_version:
        name, _, v = model_version.rpartition(":") if ":" in model_version else (model_version, "", "")
        q = select(ModelVersion).where(ModelVersion.name == name)
        q = q.where(ModelVersion.version == int(v)) if v else q.order_by(ModelVersion.version.desc())
        mv = s.exec(q).first()
        if mv is None:
            raise LabelStudioError(f"no model version {model_version!r} in this workspace")
        return mv
    # The newest filter model that has predictions.
    has_pred = exists().where(Prediction.model_version_id == ModelVersion.id)
    return s.exec(select(ModelVersion).where(ModelVersion.kind == ModelKind.filter, has_pred)
                  .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())).first()


def _selected(s, cfg, project_id: int, limit: int | None) -> list[int]:
    """Image ids the queue would hand out next, in its order, not yet in this project."""
    order = make_strategy(cfg.strategy, s, cfg)
    pushed = exists().where(LSTask.project_id == project_id, LSTask.image_id == LabelTask.image_id)
    q = select(LabelTask.image_id).where(LabelTask.kind == leases.FILTER, LabelTask.is_open.is_(True), ~pushed)
    q = order.order(q)
    if limit is not None:
        q = q.limit(limit)
    return list(s.exec(q))


def _reconcile(ws: Workspace, client: LSClient, rec: LSProject, key: str) -> int:
    """Map tasks the server has but the store lacks (a crash between import and map)."""
    info = client.get(f"/api/projects/{rec.ls_project_id}")
    on_server = int(info.get("task_number") or 0)
    known = mapping.task_map(ws, rec.id)
    if on_server <= len(known):
        return 0
    tasks = client.get(f"/api/projects/{rec.ls_project_id}/export", exportType="JSON", download_all_tasks="true")
    rows = []
    for t in tasks:
        ref = (t.get("data") or {}).get(key)
        if int(t["id"]) not in known and isinstance(ref, int):
            rows.append(LSTask(project_id=rec.id, ls_task_id=int(t["id"]),
                               **({"image_id": ref} if key == "relcurate_image_id" else {"caption_id": ref})))
    if rows:
        with session_scope(ws.engine) as s:
            s.add_all(rows)
    return len(rows)


def _import(ws: Workspace, client: LSClient, rec: LSProject, tasks: list[dict], rows: list[dict]) -> None:
    out = client.post(f"/api/projects/{rec.ls_project_id}/import", tasks, return_task_ids="true")
    ids = out.get("task_ids") if isinstance(out, dict) else None
    if not ids or len(ids) != len(tasks):
        raise LabelStudioError(f"Label Studio did not return the ids of the {len(tasks)} imported tasks; "
                               f"the next push reconciles them")
    try:
        with session_scope(ws.engine) as s:
            s.add_all([LSTask(project_id=rec.id, ls_task_id=int(tid), **row) for tid, row in zip(ids, rows)])
    except IntegrityError:
        # A concurrent push mapped (some of) these images first: take our copies back out.
        for tid in ids:
            client.delete(f"/api/tasks/{tid}/")
        raise LabelStudioError("another push into this project ran at the same time; this batch was "
                               "withdrawn, run the push again") from None


def push_filter(ws: Workspace, client: LSClient, *, limit: int | None = None, model_version: str | None = None,
                batch: int = BATCH, restore_config: bool = False, progress: Progress | None = None) -> PushResult:
    """Create/update the filter project and import the queue's next `limit` images."""
    rec = projects.ensure_project(ws, client, projects.FILTER, restore_config=restore_config)
    ensure_local_storage(ws, client, rec.ls_project_id)
    _reconcile(ws, client, rec, "relcurate_image_id")
    already = mapping.mapped_count(ws, rec.id)
    cfg = leases.get_config(ws.engine, leases.FILTER)
    with read_scope(ws.engine) as s:
        mv = _filter_model(s, model_version)
        ids = _selected(s, cfg, rec.id, limit)
        images = {i.id: (i.sha256, i.ext) for i in s.exec(select(Image).where(Image.id.in_(ids)))} if ids else {}
        scores = dict(s.exec(select(Prediction.image_id, Prediction.score)
                             .where(Prediction.model_version_id == mv.id, Prediction.image_id.in_(ids))).all()) \
            if (mv is not None and ids) else {}
    mv_name = ls_model_version(mv) if mv is not None else None
    prefix = store_prefix(ws)
    result = PushResult(rec.ls_project_id, 0, already, mv_name)
    for start in range(0, len(ids), batch):
        tasks, rows = [], []
        for image_id in ids[start:start + batch]:
            sha, ext = images[image_id]
            data = {"image": local_file_url(prefix + image_relpath(sha, ext)), "relcurate_image_id": image_id}
            task: dict = {"data": data}
            p = scores.get(image_id)
            if p is not None and mv_name:
                data["p_yes"] = float(p)
                task["predictions"] = [prediction_for(float(p), mv_name)]
            tasks.append(task)
            rows.append({"image_id": image_id, "model_version_id": mv.id if p is not None else None})
        _import(ws, client, rec, tasks, rows)
        result.pushed += len(tasks)
        if progress:
            progress(result.pushed, len(ids))
    if mv_name:
        # After the import: Label Studio accepts a project model version only once it has
        # predictions of that version.
        try:
            projects.set_model_version(ws, client, rec, mv_name)
        except LabelStudioError as exc:
            result.problems.append(f"project model version not set to {mv_name}: {exc}")
    return result


def push_captions(ws: Workspace, client: LSClient, *, limit: int | None = None, batch: int = BATCH,
                  restore_config: bool = False) -> PushResult:
    """One task per proposed group caption awaiting review: the group's images and the caption
    pre-filled in an editable text area."""
    rec = projects.ensure_project(ws, client, projects.CAPTION, restore_config=restore_config)
    ensure_local_storage(ws, client, rec.ls_project_id)
    _reconcile(ws, client, rec, "relcurate_caption_id")
    already = mapping.mapped_count(ws, rec.id)
    with read_scope(ws.engine) as s:
        pushed = exists().where(LSTask.project_id == rec.id, LSTask.caption_id == Caption.id)
        q = (select(Caption).where(Caption.group_id.is_not(None), Caption.status == CaptionStatus.proposed, ~pushed)
             .order_by(Caption.id))
        caps = list(s.exec(q.limit(limit) if limit else q))
        members = {c.id: list(s.exec(select(GroupMember.image_id).where(GroupMember.group_id == c.group_id)
                                     .order_by(GroupMember.position)).all()) for c in caps}
        all_ids = sorted({i for v in members.values() for i in v})
        images = {i.id: (i.sha256, i.ext) for i in s.exec(select(Image).where(Image.id.in_(all_ids)))} if all_ids else {}
    prefix = store_prefix(ws)
    result = PushResult(rec.ls_project_id, 0, already)
    for start in range(0, len(caps), batch):
        chunk = caps[start:start + batch]
        tasks = [{"data": {"images": [local_file_url(prefix + image_relpath(*images[i])) for i in members[c.id] if images[i][0]],
                           "caption": c.text, "relcurate_caption_id": c.id, "relcurate_group_id": c.group_id}}
                 for c in chunk]
        _import(ws, client, rec, tasks, [{"caption_id": c.id} for c in chunk])
        result.pushed += len(chunk)
    return result
