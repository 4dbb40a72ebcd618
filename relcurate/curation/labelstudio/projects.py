"""The Label Studio projects relcurate owns: their label configs and their records in the store.

A project is created once per (server, purpose) and remembered in `ls_project` together with
the label config it was given. Before every push or pull the server's config is compared with
that record: a config edited by hand in Label Studio could rename the choices relcurate reads,
so relcurate refuses to touch the project (clear message, nothing written) until it is restored.
"""
from __future__ import annotations

import re
from xml.sax.saxutils import quoteattr

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from relcurate.curation.labeling import leases
from relcurate.curation.labelstudio.connection import LabelStudioError, LSClient
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import LSProject
from relcurate.workspace import Workspace

FILTER, CAPTION = "filter", "caption"
PURPOSES = (FILTER, CAPTION)
# The paper's filter question, verbatim (the same text relcurate's own labeling page shows).
FILTER_INSTRUCTION = ("Can you see any relational pattern, logic, or structure in this image that could be "
                      "useful for creating or linking to another image?")
CHOICE_ANSWERS = {"Yes": "yes", "No": "no"}
TITLES = {FILTER: "relcurate filter", CAPTION: "relcurate caption review"}


def filter_label_config() -> str:
    return (f"<View>\n  <Header value={quoteattr(FILTER_INSTRUCTION)}/>\n"
            f'  <Image name="image" value="$image"/>\n'
            f'  <Choices name="answer" toName="image" choice="single" showInline="true" required="true">\n'
            f'    <Choice value="Yes" hotkey="y"/>\n    <Choice value="No" hotkey="n"/>\n'
            f"  </Choices>\n</View>")


def caption_label_config() -> str:
    return ('<View>\n  <Header value="Review the anonymous caption proposed for these images"/>\n'
            '  <Image name="images" valueList="$images"/>\n'
            '  <TextArea name="caption" toName="images" value="$caption" editable="true" rows="3" '
            'maxSubmissions="1"/>\n'
            '  <Choices name="verdict" toName="images" choice="single" showInline="true">\n'
            '    <Choice value="Accept" hotkey="a"/>\n    <Choice value="Reject" hotkey="x"/>\n'
            '  </Choices>\n</View>')


LABEL_CONFIGS = {FILTER: filter_label_config, CAPTION: caption_label_config}


def _same_config(a: str, b: str) -> bool:
    squash = lambda x: re.sub(r">\s+<", "><", (x or "").strip())  # noqa: E731 - whitespace is not an edit
    return squash(a) == squash(b)


def project_record(ws: Workspace, server: str, purpose: str) -> LSProject | None:
    with read_scope(ws.engine) as s:
        return s.exec(select(LSProject).where(LSProject.server == server, LSProject.purpose == purpose)).first()


def check_project(client: LSClient, rec: LSProject) -> dict:
    """The server's view of a recorded project; refuses a deleted or hand-edited one."""
    try:
        info = client.get(f"/api/projects/{rec.ls_project_id}")
    except LabelStudioError as exc:
        if "HTTP 404" in str(exc):
            raise LabelStudioError(f"Label Studio project {rec.ls_project_id} ({rec.purpose}) was deleted on "
                                   f"{client.url}; relcurate's labels are kept. Forget it with "
                                   f"`relcurate labelstudio forget {rec.purpose}` to start a new one") from None
        raise
    if not _same_config(info.get("label_config", ""), rec.label_config):
        raise LabelStudioError(f"the label config of Label Studio project {rec.ls_project_id} ({rec.purpose}) "
                               f"was edited by hand; relcurate will not push into or pull from it until it is "
                               f"restored (`relcurate labelstudio push {rec.purpose} --restore-config`)")
    return info


def ensure_project(ws: Workspace, client: LSClient, purpose: str, *, restore_config: bool = False) -> LSProject:
    """The project for this purpose on this server, created on first use."""
    if purpose not in PURPOSES:
        raise LabelStudioError(f"unknown project purpose {purpose!r}; known: {', '.join(PURPOSES)}")
    config = LABEL_CONFIGS[purpose]()
    rec = project_record(ws, client.url, purpose)
    if rec is not None:
        if restore_config:
            client.patch(f"/api/projects/{rec.ls_project_id}", {"label_config": rec.label_config})
        check_project(client, rec)
        return rec
    body = {"title": TITLES[purpose], "label_config": config, "sampling": "Uncertainty sampling",
            "description": "Created by relcurate; relcurate's store is the source of truth.",
            "show_skip_button": True, "maximum_annotations": 1}
    if purpose == FILTER:  # the queue's overlap, in Label Studio's terms (k annotators on a share)
        cfg = leases.get_config(ws.engine, leases.FILTER)
        body.update(maximum_annotations=cfg.overlap_k, overlap_cohort_percentage=round(cfg.overlap_fraction * 100))
    info = client.post("/api/projects", body)
    try:
        with session_scope(ws.engine) as s:
            rec = LSProject(server=client.url, purpose=purpose, ls_project_id=int(info["id"]), label_config=config)
            s.add(rec)
            s.flush()
            s.refresh(rec)
            s.expunge(rec)
    except IntegrityError:  # a concurrent push created it first: use theirs, drop ours
        client.delete(f"/api/projects/{info['id']}")
        rec = project_record(ws, client.url, purpose)
    return rec


def set_model_version(ws: Workspace, client: LSClient, rec: LSProject, model_version: str) -> None:
    """Label Studio's uncertainty sampling only uses predictions of the project's model version."""
    if rec.model_version == model_version:
        return
    client.patch(f"/api/projects/{rec.ls_project_id}", {"model_version": model_version})
    with session_scope(ws.engine) as s:
        row = s.get(LSProject, rec.id)
        row.model_version = model_version
        s.add(row)
    rec.model_version = model_version


def forget_project(ws: Workspace, server: str, purpose: str) -> bool:
    """Drop relcurate's record of a project (its task map and pulled-annotation records go with
    it; the label events they made stay)."""
    with session_scope(ws.engine) as s:
        rec = s.exec(select(LSProject).where(LSProject.server == server, LSProject.purpose == purpose)).first()
        if rec is None:
            return False
        s.delete(rec)
        return True
