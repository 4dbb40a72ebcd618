"""Seed groups: creation and membership rules (2-10 distinct, non-quarantined images when complete)."""
from __future__ import annotations

from typing import Sequence

from sqlmodel import Session, select

from relcurate.db.models import Caption, CaptionStatus, GroupMember, GroupStatus, Image, ImageStatus, SeedGroup, utcnow

MIN_MEMBERS, MAX_MEMBERS = 2, 10


class GroupError(ValueError):
    pass


def check_members(session: Session, image_ids: Sequence[int]) -> None:
    """Raise GroupError unless the members are valid for a complete group."""
    if len(set(image_ids)) != len(image_ids):
        raise GroupError("a group cannot contain the same image twice")
    if not MIN_MEMBERS <= len(image_ids) <= MAX_MEMBERS:
        raise GroupError(f"a complete group has {MIN_MEMBERS}-{MAX_MEMBERS} images, not {len(image_ids)}")
    rows = session.exec(select(Image.id, Image.status).where(Image.id.in_(list(image_ids)))).all()
    found = dict(rows)
    missing = [i for i in image_ids if i not in found]
    if missing:
        raise GroupError(f"unknown images: {missing}")
    bad = [i for i in image_ids if found[i] != ImageStatus.ok]
    if bad:
        raise GroupError(f"images not usable (quarantined or not downloaded): {bad}")


def create_group(session: Session, name: str, image_ids: Sequence[int], *, status: str = GroupStatus.draft,
                 note: str | None = None, source: str = "curator", created_by: int | None = None) -> SeedGroup:
    if status != GroupStatus.draft:
        check_members(session, image_ids)
    group = SeedGroup(name=name, note=note, status=GroupStatus(status), source=source, created_by=created_by)
    session.add(group)
    session.flush()
    for pos, image_id in enumerate(image_ids):
        session.add(GroupMember(group_id=group.id, image_id=image_id, position=pos))
    return group


def propose_caption(session: Session, group_id: int, text: str, *, source: str,
                    model_version_id: int | None = None) -> Caption:
    cap = Caption(group_id=group_id, text=text, source=source, status=CaptionStatus.proposed,
                  model_version_id=model_version_id)
    session.add(cap)
    group = session.get(SeedGroup, group_id)
    group.updated_at = utcnow()
    return cap
