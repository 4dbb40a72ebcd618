"""Workspace counts. The JSON form (`as_json`) is a stable contract for scripts: keys are only
ever added, never renamed."""
from __future__ import annotations

from sqlalchemy import func
from sqlmodel import select

from relcurate.db.engine import read_scope
from relcurate.db.models import (
    Caption,
    CurrentLabel,
    FilterLabel,
    Image,
    NearDuplicate,
    RejectedRecord,
    SeedGroup,
    User,
)
from relcurate.workspace import Workspace

STATS_SCHEMA_VERSION = 1


def workspace_stats(ws: Workspace) -> dict:
    with read_scope(ws.engine) as s:
        by_status = dict(s.exec(select(Image.status, func.count()).group_by(Image.status)).all())
        by_reason = dict(
            s.exec(select(Image.quarantine_reason, func.count()).where(Image.status == "quarantined").group_by(Image.quarantine_reason)).all()
        )
        records = dict(s.exec(select(RejectedRecord.reason, func.count()).group_by(RejectedRecord.reason)).all())
        answers = dict(s.exec(select(CurrentLabel.answer, func.count()).group_by(CurrentLabel.answer)).all())
        label_events = s.exec(select(func.count()).select_from(FilterLabel)).one()
        labelled_images = s.exec(select(func.count(func.distinct(CurrentLabel.image_id)))).one()
        groups = dict(s.exec(select(SeedGroup.status, func.count()).group_by(SeedGroup.status)).all())
        needs_split = s.exec(select(func.count()).select_from(SeedGroup).where(SeedGroup.needs_split)).one()
        captions = dict(s.exec(select(Caption.status, func.count()).group_by(Caption.status)).all())
        users = dict(s.exec(select(User.role, func.count()).where(User.active).group_by(User.role)).all())
        near = s.exec(select(func.count()).select_from(NearDuplicate)).one()
    return {
        "schema_version": STATS_SCHEMA_VERSION,
        "images": {
            "total": sum(by_status.values()),
            "ok": by_status.get("ok", 0),
            "pending_download": by_status.get("pending_download", 0),
            "quarantined": by_status.get("quarantined", 0),
            "quarantined_by_reason": dict(sorted(by_reason.items())),
            "near_duplicate_pairs": near,
        },
        "rejected_records": {"total": sum(records.values()), "by_reason": dict(sorted(records.items()))},
        "labels": {
            "events": label_events,
            "labelled_images": labelled_images,
            "current_by_answer": {a: answers.get(a, 0) for a in ("yes", "no", "skip")},
        },
        "groups": {"total": sum(groups.values()), "by_status": dict(sorted(groups.items())), "needs_split": needs_split},
        "captions": {"total": sum(captions.values()), "by_status": dict(sorted(captions.items()))},
        "users": {"active": sum(users.values()), "by_role": dict(sorted(users.items()))},
    }
