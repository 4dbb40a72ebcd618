"""Pull annotations from Label Studio into relcurate's store (the source of truth).

Filter annotations become filter-label events through `labeling.labels` (`record_labels`, one
transaction per 500; source "label-studio", the Label Studio user mapped to a relcurate user,
lead time kept, Label Studio's timestamp as the event time), so agreement, adjudication and consensus treat them like
any other label. Caption-review annotations go through `groups.captions.review_caption`, and so
through the same anonymity checker as edits made in relcurate.

Idempotent: each pulled annotation is remembered in `ls_annotation` with what it became and a
revision counter. A changed annotation is a new event (revision + 1, request id
`ls:<project>:<annotation>:<revision>`) superseding the old one; a deleted annotation is an undo
event (`labels.undo_label`); nothing is overwritten. A re-run after a crash between the label
write and its `ls_annotation` row repeats the same request id, which the label store answers as
a duplicate.

Refused, with a message and nothing written for them: annotations on tasks relcurate did not
push (unknown task), results without a Yes/No choice, and everything in a project whose label
config was edited by hand. A task deleted in Label Studio is reported; labels already pulled
from it are kept.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import select

from relcurate.curation.groups import captions as captions_mod
from relcurate.curation.labeling import labels
from relcurate.curation.labelstudio import mapping, projects
from relcurate.curation.labelstudio.connection import LabelStudioError, LSClient
from relcurate.db.engine import read_scope
from relcurate.db.models import Answer, LabelSource, LSAnnotation, LSProject, LSTask, utcnow
from relcurate.db.write_retry import run_write
from relcurate.workspace import Workspace


@dataclass
class PullResult:
    project_id: int = 0  # the Label Studio project id
    new: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    deleted_tasks: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.new + self.updated + self.deleted


# -- reading one annotation -------------------------------------------------------------------

def _parse_time(value) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def filter_answer(ann: dict) -> str | None:
    if ann.get("was_cancelled"):
        return Answer.skip.value
    for r in ann.get("result") or []:
        if r.get("from_name") == "answer" and r.get("type") == "choices":
            choices = (r.get("value") or {}).get("choices") or []
            if len(choices) == 1 and choices[0] in projects.CHOICE_ANSWERS:
                return projects.CHOICE_ANSWERS[choices[0]]
    return None


def caption_decision(ann: dict) -> tuple[str | None, str | None]:
    """(verdict Accept/Reject or None, edited text or None)."""
    verdict = text = None
    for r in ann.get("result") or []:
        value = r.get("value") or {}
        if r.get("from_name") == "verdict" and value.get("choices"):
            verdict = value["choices"][0]
        if r.get("from_name") == "caption" and value.get("text"):
            text = "\n".join(t for t in value["text"] if t)
    return verdict, text


def _completed_by(ann: dict) -> int | None:
    who = ann.get("completed_by")
    if isinstance(who, dict):
        who = who.get("id")
    return int(who) if who is not None else None


class Ingestor:
    """Applies annotations of one project; shared by `pull` and the webhook receiver."""

    def __init__(self, ws: Workspace, client: LSClient, rec: LSProject):
        self.ws, self.client, self.rec = ws, client, rec
        self.tasks = mapping.task_map(ws, rec.id)
        self._emails: dict[int, str] | None = None
        self._pending: list[dict] = []  # LSAnnotation rows to write
        self._decisions: list[tuple[dict, dict]] = []  # (record_label kwargs, what to remember)
        self.batching = 0  # > 0: remember pulled annotations in batches of this size (pull does)
        self._users: dict[str, int] = {}
        with read_scope(ws.engine) as s:
            self.seen = {a.ls_annotation_id: a for a in
                         s.exec(select(LSAnnotation).where(LSAnnotation.project_id == rec.id))}

    def refresh_tasks(self) -> None:
        self.tasks = mapping.task_map(self.ws, self.rec.id)

    def user_id(self, ls_user_id: int | None) -> int | None:
        if ls_user_id is None:
            return None
        if self._emails is None or ls_user_id not in self._emails:
            self._emails = self.client.users()
        email = self._emails.get(ls_user_id)
        if email is None:
            return None
        if email not in self._users:
            self._users.update(mapping.resolve_users(self.ws, self.client.url, [email]))
        return self._users[email]

    def prime_users(self, ls_user_ids: set[int]) -> None:
        """Resolve many users in one transaction (a pull), instead of one per annotation."""
        self._emails = self.client.users()
        emails = [self._emails[u] for u in ls_user_ids if u in self._emails]
        self._users.update(mapping.resolve_users(self.ws, self.client.url, emails))

    # -- one annotation -----------------------------------------------------------------
    def apply(self, ann: dict, task_id: int, out: PullResult) -> None:
        ann_id = int(ann["id"])
        task = self.tasks.get(task_id)
        if task is None:
            out.problems.append(f"annotation {ann_id} on task {task_id}: task unknown to relcurate (not pushed by "
                                f"it, or pushed from another workspace); ignored")
            return
        user_id = self.user_id(_completed_by(ann))
        if user_id is None:
            out.problems.append(f"annotation {ann_id} on task {task_id}: annotator unknown to Label Studio; ignored")
            return
        if self.rec.purpose == projects.FILTER:
            self._apply_filter(ann, ann_id, task, user_id, out)
        else:
            self._apply_caption(ann, ann_id, task, user_id, out)

    def _prior(self, ann_id: int) -> LSAnnotation | None:
        return self.seen.get(ann_id)

    def _remember(self, ann_id: int, task: LSTask, user_id: int, answer: str, fingerprint: str, revision: int,
                  label_id: int | None, prior: LSAnnotation | None) -> None:
        row = dict(ls_annotation_id=ann_id, ls_task_id=task.ls_task_id, user_id=user_id, answer=answer,
                   fingerprint=fingerprint, revision=revision, label_id=label_id)
        self.seen[ann_id] = LSAnnotation(id=prior.id if prior else None, project_id=self.rec.id, **row)
        self._pending.append(row)

    def flush(self, out: PullResult | None = None) -> None:
        """Write the queued label decisions (one `labels.record_labels` transaction per batch),
        then remember them. A crash between the two is harmless: the next pull repeats the same
        request ids, which the label store answers as duplicates."""
        decisions, self._decisions = self._decisions, []
        if decisions:
            try:
                results = labels.record_labels(self.ws.engine, [d for d, _ in decisions])
            except labels.LabelError:  # one bad decision: find it, keep the others
                results = []
                for d, meta in decisions:
                    try:
                        results.append(labels.record_label(self.ws.engine, **d))
                    except labels.LabelError as exc:
                        results.append(None)
                        if out is not None:
                            out.problems.append(f"annotation {meta['ann_id']}: {exc}")
                            if meta["prior"] is None:
                                out.new -= 1
                            else:
                                out.updated -= 1
            for (_, meta), res in zip(decisions, results):
                if res is not None:
                    self._remember(label_id=res.label_id, **meta)
        pending, self._pending = self._pending, []
        if not pending:
            return

        def tx(s):
            ids = [r["ls_annotation_id"] for r in pending]
            rows = {a.ls_annotation_id: a for a in s.exec(select(LSAnnotation).where(
                LSAnnotation.project_id == self.rec.id, LSAnnotation.ls_annotation_id.in_(ids)))}
            for r in pending:
                row = rows.get(r["ls_annotation_id"])
                if row is None:
                    row = rows[r["ls_annotation_id"]] = LSAnnotation(project_id=self.rec.id, **r)
                else:
                    for k, v in r.items():
                        setattr(row, k, v)
                    row.deleted, row.pulled_at = False, utcnow()
                s.add(row)
            s.flush()
            for row in rows.values():
                s.expunge(row)
            return rows

        for ann_id, row in run_write(self.ws.engine, tx).items():
            self.seen[ann_id] = row

    def _apply_filter(self, ann: dict, ann_id: int, task: LSTask, user_id: int, out: PullResult) -> None:
        answer = filter_answer(ann)
        if answer is None:
            out.problems.append(f"annotation {ann_id} on task {task.ls_task_id}: no single Yes/No choice in its "
                                f"result; ignored")
            return
        prior = self._prior(ann_id)
        if prior is not None and not prior.deleted and prior.answer == answer and prior.user_id == user_id:
            out.unchanged += 1
            return
        revision = 1 if prior is None else prior.revision + 1
        lead = ann.get("lead_time")
        decision = dict(image_id=task.image_id, user_id=user_id, answer=answer,
                        request_id=f"ls:{self.rec.id}:{ann_id}:{revision}",
                        lead_time_ms=int(round(float(lead) * 1000)) if isinstance(lead, (int, float)) else None,
                        source=LabelSource.label_studio, model_version_id=task.model_version_id,
                        now=_parse_time(ann.get("updated_at")) or _parse_time(ann.get("created_at")))
        self._decisions.append((decision, dict(ann_id=ann_id, task=task, user_id=user_id, answer=answer,
                                               fingerprint=answer, revision=revision, prior=prior)))
        if prior is None:
            out.new += 1
        else:
            out.updated += 1
        if not self.batching or len(self._decisions) >= self.batching:
            self.flush(out)

    def _apply_caption(self, ann: dict, ann_id: int, task: LSTask, user_id: int, out: PullResult) -> None:
        verdict, text = caption_decision(ann)
        fingerprint = hashlib.sha256(json.dumps([verdict, text]).encode()).hexdigest()
        prior = self._prior(ann_id)
        if prior is not None and prior.fingerprint == fingerprint:
            out.unchanged += 1
            return
        action = {"Accept": "accept", "Reject": "reject"}.get(verdict or "", "edit")
        if action == "edit" and text is None:
            out.problems.append(f"annotation {ann_id} on task {task.ls_task_id}: neither a verdict nor a text; ignored")
            return
        try:
            captions_mod.review_caption(self.ws, task.caption_id, action, user_id=user_id,
                                        text=text if action != "reject" else None,
                                        reason="rejected in Label Studio" if action == "reject" else None)
        except captions_mod.CaptionError as exc:
            # e.g. the anonymity checker refused an accept: nothing was written; the next pull retries
            out.problems.append(f"annotation {ann_id} on task {task.ls_task_id} (caption "
                                f"#{task.caption_id}): {exc}")
            return
        self._remember(ann_id=ann_id, task=task, user_id=user_id, answer=action, fingerprint=fingerprint,
                       revision=1 if prior is None else prior.revision + 1, label_id=None, prior=prior)
        self.flush(out)
        if prior is None:
            out.new += 1
        else:
            out.updated += 1

    def delete(self, ann_id: int, out: PullResult) -> None:
        """An annotation was deleted in Label Studio: undo the label it made (a new event)."""
        self.flush(out)
        prior = self._prior(ann_id)
        if prior is None or prior.deleted:
            return
        note = None
        if prior.label_id is not None:
            undo = labels.undo_label(self.ws.engine, user_id=prior.user_id, label_id=prior.label_id)
            if not undo.undone and undo.reason != "already undone":
                note = undo.reason
        elif self.rec.purpose == projects.CAPTION:
            note = "caption reviews are history; the caption keeps its current state"

        def tx(s):
            row = s.get(LSAnnotation, prior.id)
            row.deleted, row.pulled_at = True, utcnow()
            s.add(row)

        run_write(self.ws.engine, tx)
        prior.deleted = True
        out.deleted += 1
        if note:
            out.problems.append(f"annotation {ann_id} was deleted in Label Studio: {note}")


# -- a whole project --------------------------------------------------------------------------

def open_project(ws: Workspace, client: LSClient, purpose: str) -> LSProject:
    rec = projects.project_record(ws, client.url, purpose)
    if rec is None:
        raise LabelStudioError(f"nothing was pushed to {client.url} for {purpose!r} yet: run "
                               f"`relcurate labelstudio push {purpose}` first")
    projects.check_project(client, rec)
    return rec


def pull(ws: Workspace, client: LSClient, purpose: str = projects.FILTER) -> PullResult:
    """Ingest every annotation of the project (new, changed and deleted ones)."""
    rec = open_project(ws, client, purpose)
    tasks = client.get(f"/api/projects/{rec.ls_project_id}/export", exportType="JSON", download_all_tasks="true")
    if not isinstance(tasks, list):
        raise LabelStudioError(f"unexpected export from {client.url} for project {rec.ls_project_id}")
    ing = Ingestor(ws, client, rec)
    ing.batching = 500
    out = PullResult(project_id=rec.ls_project_id)
    ing.prime_users({u for t in tasks for a in t.get("annotations") or [] if (u := _completed_by(a)) is not None})
    on_server: set[int] = set()
    present: set[int] = set()
    for t in tasks:
        tid = int(t["id"])
        on_server.add(tid)
        for ann in t.get("annotations") or []:
            present.add(int(ann["id"]))
            ing.apply(ann, tid, out)
    ing.flush(out)
    gone_tasks = [m for tid, m in ing.tasks.items() if tid not in on_server and m.deleted_at is None]
    if gone_tasks:
        now = utcnow()

        def mark(s):
            for m in gone_tasks:
                row = s.get(LSTask, m.id)
                row.deleted_at = now
                s.add(row)

        run_write(ws.engine, mark)
        out.deleted_tasks = len(gone_tasks)
        for m in gone_tasks:
            what = f"image {m.image_id}" if m.image_id is not None else f"caption #{m.caption_id}"
            out.problems.append(f"task {m.ls_task_id} ({what}) was deleted in Label Studio; relcurate keeps the "
                                f"labels pulled from it and will not push it again")
    deleted_task_ids = {tid for tid, m in ing.tasks.items() if tid not in on_server}
    for ann_id, row in list(ing.seen.items()):
        if ann_id not in present and not row.deleted and row.ls_task_id not in deleted_task_ids:
            ing.delete(ann_id, out)
    return out
