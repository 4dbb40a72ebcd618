"""Splitting an oversized seed group (more than 10 images) into valid parts of 2-10.

`suggest_split` proposes parts (consecutive chunks, or balanced k-means on image vectors);
`split_group` replaces the group by new groups made of those parts, each inheriting the note and
the group's current caption as a *proposed* caption. This module sits above both membership and
captions (a split makes groups *and* captions), which is what keeps those two free of a cycle.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sqlmodel import Session, select

from relcurate.curation.groups import captions, membership as m
from relcurate.curation.store_scopes import Store, writing
from relcurate.db.models import Caption, CaptionStatus, GroupStatus, SeedGroup


def split_sizes(n: int, max_size: int = m.MAX_MEMBERS) -> list[int]:
    """Fewest parts of at most `max_size`, as equal as possible (19 -> [10, 9], 21 -> [7, 7, 7])."""
    if n < m.MIN_MEMBERS:
        raise m.GroupError(f"{n} images cannot be split into groups of {m.MIN_MEMBERS}-{max_size}")
    k = math.ceil(n / max_size)
    return [n // k + (i < n % k) for i in range(k)]


def suggest_split(image_ids: Sequence[int], vectors: np.ndarray | None = None, *,
                  max_size: int = m.MAX_MEMBERS, seed: int = 0, iterations: int = 10) -> list[list[int]]:
    """Parts of 2..max_size covering every image. Without `vectors`: consecutive chunks in the
    given order. With vectors (one L2-normalised row per image): balanced k-means, so images
    that look alike stay together; each part keeps the original order."""
    ids = list(image_ids)
    sizes = split_sizes(len(ids), max_size)
    if vectors is None or len(sizes) == 1:
        out, start = [], 0
        for size in sizes:
            out.append(ids[start:start + size])
            start += size
        return out
    x = np.asarray(vectors, dtype=np.float32)
    if x.shape[0] != len(ids):
        raise ValueError("one vector per image id")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    assign = _balanced_kmeans(x, sizes, seed=seed, iterations=iterations)
    parts = [[ids[i] for i in range(len(ids)) if assign[i] == c] for c in range(len(sizes))]
    return sorted(parts, key=lambda p: ids.index(p[0]))


def _balanced_kmeans(x: np.ndarray, sizes: list[int], *, seed: int, iterations: int) -> np.ndarray:
    """Assign rows of `x` to len(sizes) clusters of exactly those sizes (cosine k-means with a
    greedy capacity-constrained assignment step)."""
    n, k = x.shape[0], len(sizes)
    rng = np.random.default_rng(seed)
    # k-means++ style seeding: each next centre is the point least similar to the chosen ones.
    centres = [int(rng.integers(n))]
    for _ in range(1, k):
        sim = (x @ x[centres].T).max(axis=1)
        sim[centres] = np.inf
        centres.append(int(np.argmin(sim)))
    c = x[centres].copy()
    assign = np.full(n, -1)
    for _ in range(iterations):
        sim = x @ c.T
        order = np.argsort(-sim, axis=None, kind="stable")  # best (point, cluster) pairs first
        new = np.full(n, -1)
        room = list(sizes)
        for flat in order:
            i, j = divmod(int(flat), k)
            if new[i] == -1 and room[j] > 0:
                new[i] = j
                room[j] -= 1
        if np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            m = x[assign == j].mean(axis=0)
            c[j] = m / max(float(np.linalg.norm(m)), 1e-12)
    return assign


def _split_group(session: Session, group_id: int, parts: Sequence[Sequence[int]], *,
                names: Sequence[str] | None = None, created_by: int | None = None,
                allow_leftovers: bool = False) -> list[SeedGroup]:
    """Replace a group by new groups made of `parts` (each 2-10 distinct members of it, no image
    in two parts; every member used unless `allow_leftovers`). The parts keep the note and get
    the group's current caption (accepted, else the newest not rejected) as a *proposed* caption,
    because a reviewer must confirm it still fits each part. Parts whose images are all usable
    become complete (captioned with a caption); the others stay draft. The original becomes
    ``split``; the parts' source is ``split:<original id>``, their creator `created_by` (the
    person splitting), by default the original's creator."""
    group = m._get_group(session, group_id, lock=True)
    parts = [list(p) for p in parts]
    if group.status == GroupStatus.split:
        kids = list(session.exec(select(SeedGroup).where(SeedGroup.source == f"{m.SPLIT_SOURCE_PREFIX}{group_id}")
                                 .order_by(SeedGroup.id)))
        if [m._member_ids(session, k.id) for k in kids] == parts:
            return kids  # the same split again (a double click): nothing to do
        raise m.GroupError(f"group #{group_id} was already split")
    members = m._member_ids(session, group_id)
    if len(parts) < 2 and not allow_leftovers:
        raise m.GroupError("a split needs at least two parts")
    seen: set[int] = set()
    for n, part in enumerate(parts, 1):
        if not m.MIN_MEMBERS <= len(part) <= m.MAX_MEMBERS:
            raise m.GroupError(f"part {n} has {len(part)} images; each part needs {m.MIN_MEMBERS}-{m.MAX_MEMBERS}")
        outside = [i for i in part if i not in members]
        if outside:
            raise m.GroupError(f"part {n} has images that are not in group #{group_id}: {outside}")
        twice = [i for i in part if i in seen] + [i for i in set(part) if part.count(i) > 1]
        if twice:
            raise m.GroupError(f"images in more than one part: {sorted(set(twice))}")
        seen.update(part)
    left = [i for i in members if i not in seen]
    if left and not allow_leftovers:
        raise m.GroupError(f"every member must go to a part; not placed: {left}")
    if names is not None and len(names) != len(parts):
        raise m.GroupError("one name per part")

    caption = _caption_to_inherit(session, group_id)
    children = []
    for n, part in enumerate(parts):
        name = names[n] if names is not None else f"{group.name} ({n + 1}/{len(parts)})"
        ok = not m._member_problems(session, part)
        child = m._create_group(session, name, part, status=GroupStatus.complete if ok else GroupStatus.draft,
                             note=group.note, source=f"{m.SPLIT_SOURCE_PREFIX}{group.id}",
                             created_by=group.created_by if created_by is None else created_by)
        if caption is not None:
            captions._add_group_caption(session, child.id, caption.text, source="split", user_id=created_by,
                              model_version_id=caption.model_version_id)
        children.append(child)
    made = ", ".join(f"#{c.id}" for c in children)
    group.note = ((group.note + "\n") if group.note else "") + f"split into {made}"
    group.needs_split = False
    m._touch(group, status=GroupStatus.split)
    session.add(group)
    session.flush()
    return children


def _caption_to_inherit(session: Session, group_id: int) -> Caption | None:
    rows = list(session.exec(select(Caption).where(Caption.group_id == group_id).order_by(Caption.id.desc())))
    accepted = [c for c in rows if c.status == CaptionStatus.accepted]
    alive = [c for c in rows if c.status != CaptionStatus.rejected]
    return (accepted or alive or [None])[0]


def split_group(store: Store, group_id: int, parts: Sequence[Sequence[int]], *,
                names: Sequence[str] | None = None, created_by: int | None = None,
                allow_leftovers: bool = False) -> list[SeedGroup]:
    """`_split_group` in one transaction (the group row locked for it)."""
    with writing(store) as s:
        return _split_group(s, group_id, parts, names=names, created_by=created_by,
                            allow_leftovers=allow_leftovers)
