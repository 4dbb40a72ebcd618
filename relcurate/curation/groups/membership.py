"""Seed groups: membership, status rules, curator agreement.

A seed group is 2-10 images sharing one relational logic. Rules:

* Members are ordered (``GroupMember.position`` is 0..n-1 without gaps) and distinct; an image may
  belong to several groups (``groups_of_images`` says which).
* Members may change only while the group is ``draft`` or ``complete``; a ``complete`` group that
  an edit makes invalid falls back to ``draft``. Later states must be reopened (set to ``draft``)
  first, because their caption describes exactly these members.
* ``complete`` (and the caption states after it) needs 2-10 distinct images, all downloaded and
  not quarantined (``_check_members``). ``captioned`` needs a caption that is not rejected,
  ``verified`` an accepted one; captions.py moves groups between these automatically.
* A group of more than 10 is split (``splitting.split_group``) into new groups whose ``source`` is
  ``"split:<parent id>"``; the parent becomes ``split``.

Public functions take a `Workspace` or `Engine` and run in their own transaction; the
`Session`-taking ``_helpers`` they wrap are shared with the other modules of this package
(captions, splitting), which compose them inside one transaction. Every mutation locks the
group row first, so two curators editing one group on PostgreSQL queue instead of interleaving
positions (SQLite writers are already serialised by ``BEGIN IMMEDIATE``).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, select

from relcurate.curation.groups import group_metrics
from relcurate.curation.store_scopes import Store, reading, writing
from relcurate.db.models import (
    Caption,
    CaptionStatus,
    GroupMember,
    GroupStatus,
    Image,
    ImageStatus,
    SeedGroup,
    User,
    utcnow,
)

MIN_MEMBERS, MAX_MEMBERS = 2, 10
EDITABLE = frozenset({GroupStatus.draft, GroupStatus.complete})
# Allowed manual transitions; the conditions are checked in set_status.
TRANSITIONS: dict[str, frozenset[str]] = {
    GroupStatus.draft: frozenset({GroupStatus.complete, GroupStatus.rejected}),
    GroupStatus.complete: frozenset({GroupStatus.draft, GroupStatus.captioned, GroupStatus.rejected}),
    GroupStatus.captioned: frozenset({GroupStatus.draft, GroupStatus.complete, GroupStatus.verified,
                                      GroupStatus.rejected}),
    GroupStatus.verified: frozenset({GroupStatus.draft, GroupStatus.rejected}),
    GroupStatus.rejected: frozenset({GroupStatus.draft}),
    GroupStatus.split: frozenset(),
}
SPLIT_SOURCE_PREFIX = "split:"


class GroupError(ValueError):
    """A rule was broken; the message is meant for the curator."""


@dataclass(frozen=True)
class GroupRef:
    id: int
    name: str
    status: str


@dataclass(frozen=True)
class GroupSummary:
    id: int
    name: str
    status: str
    n_members: int
    needs_split: bool
    source: str
    note: str | None
    created_by: str | None  # username


# --- validation ------------------------------------------------------------------------------

def _member_problems(session: Session, image_ids: Sequence[int]) -> list[str]:
    """Why these members cannot form a complete group (empty list: they can)."""
    problems = []
    if len(set(image_ids)) != len(image_ids):
        problems.append("a group cannot contain the same image twice")
    if not MIN_MEMBERS <= len(image_ids) <= MAX_MEMBERS:
        problems.append(f"a complete group has {MIN_MEMBERS}-{MAX_MEMBERS} images, not {len(image_ids)}")
    if image_ids:
        found = dict(session.exec(select(Image.id, Image.status).where(Image.id.in_(list(set(image_ids))))).all())
        missing = sorted({i for i in image_ids if i not in found})
        if missing:
            problems.append(f"unknown images: {missing}")
        quarantined = sorted({i for i in image_ids if found.get(i) == ImageStatus.quarantined})
        if quarantined:
            problems.append(f"quarantined images: {quarantined}")
        pending = sorted({i for i in image_ids if found.get(i) == ImageStatus.pending_download})
        if pending:
            problems.append(f"images not downloaded yet: {pending}")
    return problems


def _check_members(session: Session, image_ids: Sequence[int]) -> None:
    """Raise GroupError unless the members are valid for a complete group."""
    problems = _member_problems(session, image_ids)
    if problems:
        raise GroupError("; ".join(problems))


# --- reading ---------------------------------------------------------------------------------

def _get_group(session: Session, group_id: int, *, lock: bool = False) -> SeedGroup:
    q = select(SeedGroup).where(SeedGroup.id == group_id)
    if lock:
        q = q.with_for_update()
    group = session.exec(q).first()
    if group is None:
        raise GroupError(f"no group #{group_id}")
    return group


def _member_ids(session: Session, group_id: int) -> list[int]:
    return list(session.exec(select(GroupMember.image_id).where(GroupMember.group_id == group_id)
                             .order_by(GroupMember.position, GroupMember.image_id)))


def _groups_of_images(session: Session, image_ids: Iterable[int], *,
                     exclude_group: int | None = None) -> dict[int, list[GroupRef]]:
    """For each image, the groups it belongs to (by group id), optionally leaving one group out."""
    ids = list(set(image_ids))
    out: dict[int, list[GroupRef]] = {i: [] for i in ids}
    if not ids:
        return out
    q = (select(GroupMember.image_id, SeedGroup.id, SeedGroup.name, SeedGroup.status)
         .join(SeedGroup, SeedGroup.id == GroupMember.group_id)
         .where(GroupMember.image_id.in_(ids)).order_by(SeedGroup.id))
    if exclude_group is not None:
        q = q.where(SeedGroup.id != exclude_group)
    for image_id, gid, name, status in session.exec(q):
        out[image_id].append(GroupRef(gid, name, status))
    return out


def _list_groups(session: Session, *, status: str | None = None, text: str | None = None,
                needs_split: bool | None = None, created_by: int | None = None,
                offset: int = 0, limit: int | None = None) -> list[GroupSummary]:
    """Groups (newest last) with member counts; `text` matches name or note."""
    counts = (select(GroupMember.group_id, func.count().label("n")).group_by(GroupMember.group_id).subquery())
    q = (select(SeedGroup, func.coalesce(counts.c.n, 0), User.username)
         .outerjoin(counts, counts.c.group_id == SeedGroup.id)
         .outerjoin(User, User.id == SeedGroup.created_by))
    if status:
        q = q.where(SeedGroup.status == status)
    if text and text.strip():
        like = f"%{text.strip()}%"
        q = q.where(SeedGroup.name.ilike(like) | SeedGroup.note.ilike(like))
    if needs_split is not None:
        q = q.where(SeedGroup.needs_split == needs_split)
    if created_by is not None:
        q = q.where(SeedGroup.created_by == created_by)
    q = q.order_by(SeedGroup.id).offset(offset)
    if limit is not None:
        q = q.limit(limit)
    return [GroupSummary(g.id, g.name, g.status, int(n), g.needs_split, g.source, g.note, username)
            for g, n, username in session.exec(q)]


def _group_summary(session: Session, group_id: int) -> GroupSummary:
    g = _get_group(session, group_id)
    n = session.exec(select(func.count()).where(GroupMember.group_id == group_id)).one()
    username = session.exec(select(User.username).where(User.id == g.created_by)).first() if g.created_by else None
    return GroupSummary(g.id, g.name, g.status, int(n), g.needs_split, g.source, g.note, username)


def _caption_statuses(session: Session, group_id: int) -> set[str]:
    return set(session.exec(select(Caption.status).where(Caption.group_id == group_id)))


# --- creation and status -----------------------------------------------------------------------

def _create_group(session: Session, name: str, image_ids: Sequence[int], *, status: str = GroupStatus.draft,
                 note: str | None = None, source: str = "curator", created_by: int | None = None) -> SeedGroup:
    """A new group with these members in this order (a draft may hold any number, even none)."""
    status = GroupStatus(status)
    if len(set(image_ids)) != len(image_ids):
        raise GroupError("a group cannot contain the same image twice")
    if status != GroupStatus.draft:
        _check_members(session, image_ids)
    _refuse_quarantined(session, image_ids)
    group = SeedGroup(name=name.strip() or "untitled", note=note, status=status, source=source,
                      created_by=created_by, needs_split=len(image_ids) > MAX_MEMBERS)
    session.add(group)
    session.flush()
    for pos, image_id in enumerate(image_ids):
        session.add(GroupMember(group_id=group.id, image_id=image_id, position=pos))
    session.flush()
    return group


def _open_draft_with(session: Session, created_by: int, image_ids: Sequence[int]) -> SeedGroup | None:
    """This user's draft whose members are exactly `image_ids` (in order), if any."""
    for g in session.exec(select(SeedGroup).where(SeedGroup.created_by == created_by,
                                                  SeedGroup.status == GroupStatus.draft)
                          .order_by(SeedGroup.id.desc())):
        if _member_ids(session, g.id) == list(image_ids):
            return g
    return None


def _start_group(session: Session, image_id: int, *, name: str | None = None,
                created_by: int | None = None) -> SeedGroup:
    """A draft group seeded with one image ("start a group from any image"). Idempotent per
    user: if they already have a draft holding just this image (a double click), that one."""
    if created_by is not None:
        existing = _open_draft_with(session, created_by, [image_id])
        if existing is not None:
            return existing
    return _create_group(session, name or f"group from image #{image_id}", [image_id], created_by=created_by)


def _new_empty_group(session: Session, *, created_by: int | None = None, name: str = "untitled group") -> SeedGroup:
    """An empty draft; a user's existing empty draft is reused rather than piling up more."""
    if created_by is not None:
        existing = _open_draft_with(session, created_by, [])
        if existing is not None:
            return existing
    return _create_group(session, name, [], created_by=created_by)


def allowed_transitions(status: str) -> frozenset[str]:
    return TRANSITIONS.get(status, frozenset())


def _set_status(session: Session, group_id: int, status: str) -> SeedGroup:
    """Move a group to `status`, enforcing the transition table and its conditions."""
    target = GroupStatus(status)
    group = _get_group(session, group_id, lock=True)
    if group.status == target:
        return group
    if target not in allowed_transitions(group.status):
        raise GroupError(f"a {group.status} group cannot become {target}")
    if target in (GroupStatus.complete, GroupStatus.captioned, GroupStatus.verified):
        _check_members(session, _member_ids(session, group_id))
    captions = _caption_statuses(session, group_id)
    if target == GroupStatus.captioned and not captions - {CaptionStatus.rejected}:
        raise GroupError("a captioned group needs a caption that is not rejected")
    if target == GroupStatus.verified and CaptionStatus.accepted not in captions:
        raise GroupError("a verified group needs an accepted caption")
    _touch(group, status=target)
    session.add(group)
    return group


def _sync_status_with_captions(session: Session, group_id: int) -> SeedGroup:
    """After a caption change: complete/captioned/verified follow the group's captions
    (accepted -> verified, else any proposed -> captioned, else complete; a group whose members
    are not all usable moves only down, to draft). Other states stay."""
    group = _get_group(session, group_id, lock=True)
    if group.status not in (GroupStatus.complete, GroupStatus.captioned, GroupStatus.verified):
        return group
    captions = _caption_statuses(session, group_id)
    if CaptionStatus.accepted in captions:
        target = GroupStatus.verified
    elif CaptionStatus.proposed in captions:
        target = GroupStatus.captioned
    else:
        target = GroupStatus.complete
    if target == group.status:
        return group
    if _member_problems(session, _member_ids(session, group_id)):
        # e.g. an imported group whose images are still downloads: it cannot be complete either
        target = GroupStatus.draft if target == GroupStatus.complete else group.status
    if target != group.status:
        _touch(group, status=target)
        session.add(group)
    return group


def _update_details(session: Session, group_id: int, *, name: str | None = None,
                   note: str | None = None) -> SeedGroup:
    """Rename a group or change its free-text note on the logic (allowed in every state)."""
    group = _get_group(session, group_id, lock=True)
    if name is not None:
        if not name.strip():
            raise GroupError("a group needs a name")
        group.name = name.strip()
    if note is not None:
        group.note = note.strip() or None
    _touch(group)
    session.add(group)
    return group


# --- membership --------------------------------------------------------------------------------

def _touch(group: SeedGroup, status: str | None = None) -> None:
    if status is not None:
        group.status = GroupStatus(status)
    group.updated_at = utcnow()


def _editable(session: Session, group_id: int) -> SeedGroup:
    group = _get_group(session, group_id, lock=True)
    if group.status not in EDITABLE:
        raise GroupError(f"group #{group_id} is {group.status}; reopen it (back to draft) to change its members")
    return group


def _refuse_quarantined(session: Session, image_ids: Sequence[int]) -> None:
    if not image_ids:
        return
    found = dict(session.exec(select(Image.id, Image.status).where(Image.id.in_(list(set(image_ids))))).all())
    missing = sorted({i for i in image_ids if i not in found})
    if missing:
        raise GroupError(f"unknown images: {missing}")
    bad = sorted({i for i in image_ids if found[i] == ImageStatus.quarantined})
    if bad:
        raise GroupError(f"quarantined images cannot join a group: {bad}")


def _write_order(session: Session, group: SeedGroup, ordered: Sequence[int]) -> None:
    """Make the members exactly `ordered` (positions 0..n-1), then re-validate a complete group."""
    rows = {m.image_id: m for m in session.exec(select(GroupMember).where(GroupMember.group_id == group.id))}
    for image_id in set(rows) - set(ordered):
        session.delete(rows.pop(image_id))
    for pos, image_id in enumerate(ordered):
        row = rows.get(image_id)
        if row is None:
            session.add(GroupMember(group_id=group.id, image_id=image_id, position=pos))
        elif row.position != pos:
            row.position = pos
            session.add(row)
    group.needs_split = group.needs_split and len(ordered) > MAX_MEMBERS
    if group.status == GroupStatus.complete and _member_problems(session, list(ordered)):
        group.status = GroupStatus.draft
    _touch(group)
    session.add(group)
    session.flush()


def _add_members(session: Session, group_id: int, image_ids: Sequence[int], *,
                position: int | None = None) -> list[int]:
    """Insert images (at `position`, default the end); ones already in the group are skipped.
    Returns the ids actually added."""
    group = _editable(session, group_id)
    current = _member_ids(session, group_id)
    new = [i for i in dict.fromkeys(image_ids) if i not in current]
    _refuse_quarantined(session, new)
    at = len(current) if position is None else max(0, min(position, len(current)))
    _write_order(session, group, current[:at] + new + current[at:])
    return new


def _remove_members(session: Session, group_id: int, image_ids: Iterable[int]) -> list[int]:
    """Drop images from the group; returns the ids that were members."""
    group = _editable(session, group_id)
    current = _member_ids(session, group_id)
    drop = set(image_ids) & set(current)
    _write_order(session, group, [i for i in current if i not in drop])
    return [i for i in current if i in drop]


def _reorder_members(session: Session, group_id: int, ordered_ids: Sequence[int]) -> None:
    """Set the order; `ordered_ids` must be a permutation of the members."""
    group = _editable(session, group_id)
    current = _member_ids(session, group_id)
    if sorted(ordered_ids) != sorted(current) or len(set(ordered_ids)) != len(ordered_ids):
        raise GroupError("the new order must list every member exactly once")
    _write_order(session, group, list(ordered_ids))


def _move_member(session: Session, group_id: int, image_id: int, to_index: int) -> list[int]:
    """Move one member to `to_index` (clamped); returns the new order."""
    group = _editable(session, group_id)
    current = _member_ids(session, group_id)
    if image_id not in current:
        raise GroupError(f"image #{image_id} is not in group #{group_id}")
    current.remove(image_id)
    current.insert(max(0, min(to_index, len(current))), image_id)
    _write_order(session, group, current)
    return current


def _transfer_members(session: Session, from_group: int, to_group: int, image_ids: Sequence[int]) -> list[int]:
    """Move images from one group to the end of another (both must be editable)."""
    if from_group == to_group:
        raise GroupError("source and target group are the same")
    # Lock in id order so two opposite transfers cannot deadlock.
    for gid in sorted((from_group, to_group)):
        _editable(session, gid)
    moved = _remove_members(session, from_group, image_ids)
    _add_members(session, to_group, moved)
    return moved


# --- agreement between curators ------------------------------------------------------------------

def _grouping_of(session: Session, user_id: int, *,
                exclude_statuses: Iterable[str] = (GroupStatus.rejected, GroupStatus.split)) -> list[list[int]]:
    """The groups (member id lists, by group id) that one curator created."""
    q = (select(GroupMember.group_id, GroupMember.image_id).join(SeedGroup, SeedGroup.id == GroupMember.group_id)
         .where(SeedGroup.created_by == user_id, SeedGroup.status.not_in(list(exclude_statuses)))
         .order_by(GroupMember.group_id, GroupMember.position))
    groups: dict[int, list[int]] = {}
    for gid, image_id in session.exec(q):
        groups.setdefault(gid, []).append(image_id)
    return list(groups.values())


def compare_groupings(groups_a: Sequence[Sequence[int]], groups_b: Sequence[Sequence[int]], *,
                      universe: str | Iterable[int] = "common") -> dict:
    """Agreement of B with A (A = reference): pairwise co-membership precision/recall/F1 and the
    adjusted Rand index. `universe`: "common" (images both grouped: the fair comparison when the
    two curators saw the same images), "union", or explicit ids."""
    in_a = {i for g in groups_a for i in g}
    in_b = {i for g in groups_b for i in g}
    if universe == "common":
        ids = sorted(in_a & in_b)
    elif universe == "union":
        ids = sorted(in_a | in_b)
    elif isinstance(universe, str):
        raise ValueError(f"unknown universe {universe!r}")
    else:
        ids = sorted(set(universe))
    pair = group_metrics.pairwise_comembership(groups_a, groups_b, universe=ids)
    ari = group_metrics.adjusted_rand_index([list(g) for g in groups_a], [list(g) for g in groups_b], universe=ids)
    return {**pair, "ari": ari, "n_images": len(ids), "groups_a": len(groups_a), "groups_b": len(groups_b)}


def _compare_curators(session: Session, user_a: int, user_b: int, *, universe: str = "common") -> dict:
    """compare_groupings of the groups two curators created (A = `user_a` is the reference)."""
    return compare_groupings(_grouping_of(session, user_a), _grouping_of(session, user_b), universe=universe)


def _curators_with_groups(session: Session) -> list[tuple[int, str, int]]:
    """(user id, username, number of groups) for every user who created a group."""
    q = (select(User.id, User.username, func.count(SeedGroup.id)).join(SeedGroup, SeedGroup.created_by == User.id)
         .group_by(User.id, User.username).order_by(User.username))
    return [(uid, name, int(n)) for uid, name, n in session.exec(q)]


# --- the public API: one transaction per call ------------------------------------------------------

@dataclass(frozen=True)
class GroupDetail:
    """One consistent read of what the group editor shows for a group."""

    summary: GroupSummary
    member_ids: list[int]
    other_groups: dict[int, list[GroupRef]]  # image id -> the other groups it is in
    problems: list[str]  # why it cannot be complete ([] when it can)
    move_targets: list[GroupSummary]  # other groups whose members may change


def member_ids(store: Store, group_id: int) -> list[int]:
    with reading(store) as s:
        return _member_ids(s, group_id)


def groups_of_images(store: Store, image_ids: Iterable[int], *,
                     exclude_group: int | None = None) -> dict[int, list[GroupRef]]:
    with reading(store) as s:
        return _groups_of_images(s, image_ids, exclude_group=exclude_group)


def list_groups(store: Store, *, status: str | None = None, text: str | None = None,
                needs_split: bool | None = None, created_by: int | None = None, offset: int = 0,
                limit: int | None = None, include: int | None = None) -> list[GroupSummary]:
    """Groups (newest last) with member counts; `text` matches name or note. `include`: a group
    id appended when the filters hide it (the page keeps the group being edited listed; an
    unknown id is left out)."""
    with reading(store) as s:
        rows = _list_groups(s, status=status, text=text, needs_split=needs_split, created_by=created_by,
                            offset=offset, limit=limit)
        if include is not None and include not in {g.id for g in rows}:
            try:
                rows.append(_group_summary(s, include))
            except GroupError:
                pass
        return rows


def group_detail(store: Store, group_id: int) -> GroupDetail:
    with reading(store) as s:
        summary = _group_summary(s, group_id)
        ids = _member_ids(s, group_id)
        return GroupDetail(summary, ids, _groups_of_images(s, ids, exclude_group=group_id),
                           _member_problems(s, ids),
                           [g for g in _list_groups(s) if g.id != group_id and g.status in EDITABLE])


def create_group(store: Store, name: str, image_ids: Sequence[int], *, status: str = GroupStatus.draft,
                 note: str | None = None, source: str = "curator", created_by: int | None = None) -> SeedGroup:
    with writing(store) as s:
        return _create_group(s, name, image_ids, status=status, note=note, source=source, created_by=created_by)


def start_group(store: Store, image_id: int, *, name: str | None = None, created_by: int | None = None) -> SeedGroup:
    with writing(store) as s:
        return _start_group(s, image_id, name=name, created_by=created_by)


def start_group_with(store: Store, image_ids: Sequence[int], *, name: str, created_by: int | None = None,
                     source: str = "curator") -> SeedGroup:
    """A draft holding these images (e.g. a mined pair). Idempotent per user: their existing
    draft with exactly these members (in order) is returned, so a double click makes one group."""
    with writing(store) as s:
        if created_by is not None:
            existing = _open_draft_with(s, created_by, list(image_ids))
            if existing is not None:
                return existing
        return _create_group(s, name, image_ids, created_by=created_by, source=source)


def new_empty_group(store: Store, *, created_by: int | None = None, name: str = "untitled group") -> SeedGroup:
    with writing(store) as s:
        return _new_empty_group(s, created_by=created_by, name=name)


def set_status(store: Store, group_id: int, status: str) -> SeedGroup:
    with writing(store) as s:
        return _set_status(s, group_id, status)


def update_details(store: Store, group_id: int, *, name: str | None = None, note: str | None = None) -> SeedGroup:
    with writing(store) as s:
        return _update_details(s, group_id, name=name, note=note)


def add_members(store: Store, group_id: int, image_ids: Sequence[int], *, position: int | None = None) -> list[int]:
    with writing(store) as s:
        return _add_members(s, group_id, image_ids, position=position)


def remove_members(store: Store, group_id: int, image_ids: Iterable[int]) -> list[int]:
    with writing(store) as s:
        return _remove_members(s, group_id, image_ids)


def reorder_members(store: Store, group_id: int, ordered_ids: Sequence[int]) -> None:
    with writing(store) as s:
        _reorder_members(s, group_id, ordered_ids)


def move_member(store: Store, group_id: int, image_id: int, to_index: int) -> list[int]:
    with writing(store) as s:
        return _move_member(s, group_id, image_id, to_index)


def transfer_members(store: Store, from_group: int, to_group: int, image_ids: Sequence[int]) -> list[int]:
    with writing(store) as s:
        return _transfer_members(s, from_group, to_group, image_ids)


def compare_curators(store: Store, user_a: int, user_b: int, *, universe: str = "common") -> dict:
    with reading(store) as s:
        return _compare_curators(s, user_a, user_b, universe=universe)


def compare_curators_by_name(store: Store, user_a: str, user_b: str, *, universe: str = "common") -> dict:
    """compare_curators by username; GroupError names an unknown user."""
    with reading(store) as s:
        ids = []
        for name in (user_a, user_b):
            uid = s.exec(select(User.id).where(User.username == name)).first()
            if uid is None:
                raise GroupError(f"no user {name!r}")
            ids.append(uid)
        return _compare_curators(s, ids[0], ids[1], universe=universe)


def curators_with_groups(store: Store) -> list[tuple[int, str, int]]:
    with reading(store) as s:
        return _curators_with_groups(s)
