"""The demo workspace behind `make demo`: synthetic relational images, seed groups with their
ground-truth anonymous captions awaiting review, and two accounts. Needs nothing outside the repo.
Re-running reuses what is there (nothing is duplicated, passwords are not reset)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlmodel import select

from relcurate.accounts import create_user
from relcurate.curation.demo import synthetic
from relcurate.curation.ingest.dedup import record_near_duplicates
from relcurate.curation.groups import captions, membership
from relcurate.curation.ingest.store_writes import ingest_items
from relcurate.curation.labeling.leases import sync_pool
from relcurate.curation.ingest.sources import SourceItem, file_uri
from relcurate.db.engine import session_scope
from relcurate.db.models import GroupStatus, Image, ImageSource, User
from relcurate.workspace import Workspace

GROUPS_PER_TEMPLATE = 2
MEMBERS_PER_GROUP = 3
DEMO_USERS = (("admin", "admin"), ("annotator", "annotator"))


@dataclass
class DemoResult:
    root: Path
    messages: list[str] = field(default_factory=list)
    credentials: dict[str, str] = field(default_factory=dict)


def build_demo(root: str | Path, *, n_images: int = 300, seed: int = 0,
               progress: Callable[[int, int], None] | None = None) -> DemoResult:
    ws = Workspace.init(root)
    result = DemoResult(ws.root)
    src = ws.root / "demo-source"

    pool = list(synthetic.generate_pool(n_images, seed=seed))
    group_sets: dict[tuple[str, int], list[synthetic.SyntheticImage]] = {}
    for t_idx, name in enumerate(sorted(synthetic.TEMPLATES)):
        for g in range(GROUPS_PER_TEMPLATE):
            group_sets[(name, g)] = synthetic.generate_group(name, MEMBERS_PER_GROUP, seed=seed * 1000 + t_idx * 10 + g)
    everything = pool + [m for members in group_sets.values() for m in members]
    synthetic.write_pool(src, everything)

    items = [SourceItem(uri=file_uri(str(src / f"{x.key}.png")), kind="synthetic", path=str(src / f"{x.key}.png"),
                        alt_text=x.alt_text, where=f"{x.key}.png") for x in everything]
    report = ingest_items(ws, items, progress=progress)
    record_near_duplicates(ws, report.new_image_ids)
    sync_pool(ws.engine)  # the filter-labeling page hands these out
    ids = _annotate_ground_truth(ws, items, everything)
    made = _make_groups(ws, group_sets, ids)
    result.messages.append(
        f"images: {report.added} added, {report.already_known} already there; "
        f"{sum(x.relational for x in everything)} of {len(everything)} relational; seed groups added: {made}"
    )
    _make_users(ws, result)
    return result


def _annotate_ground_truth(ws: Workspace, items: list[SourceItem], images: list[synthetic.SyntheticImage]) -> dict[str, int]:
    """Record the simulated annotator's truth (relational? which template?) on each image."""
    ids: dict[str, int] = {}
    with session_scope(ws.engine) as s:
        for item, syn in zip(items, images):
            img = s.exec(select(Image).join(ImageSource).where(ImageSource.uri == item.uri)).one()
            ids[syn.key] = img.id
            truth = {"relational": syn.relational, "template": syn.template, "key": syn.key,
                     "anonymous_caption": syn.anonymous_caption}
            if img.meta.get("synthetic") != truth:
                img.meta = {**img.meta, "synthetic": truth}
                s.add(img)
    return ids


def _make_groups(ws: Workspace, group_sets, ids: dict[str, int]) -> int:
    """One group per (template, set), each with its ground-truth caption; a rerun skips groups
    already made and only adds a caption that a crash between the two writes left out."""
    made = 0
    existing = {g.source: g.id for g in membership.list_groups(ws) if g.source.startswith("demo:")}
    for (template, g), members in group_sets.items():
        key = f"demo:{template}:{g}"
        gid = existing.get(key)
        if gid is not None and captions.current_caption(ws, gid) is not None:
            continue
        if gid is None:
            gid = membership.create_group(ws, f"{template} #{g + 1}", [ids[m.key] for m in members],
                                          status=GroupStatus.complete, source=key,
                                          note=f"synthetic relation: {template}").id
            made += 1
        captions.add_group_caption(ws, gid, members[0].anonymous_caption, source="ground_truth")
    return made


def _make_users(ws: Workspace, result: DemoResult) -> None:
    with session_scope(ws.engine) as s:
        existing = set(s.exec(select(User.username)))
    for username, role in DEMO_USERS:
        if username in existing:
            result.messages.append(f"account {username!r} ({role}) already exists; reset with "
                                   f"`relcurate users passwd {username} -w {ws.root}`")
            continue
        password = secrets.token_urlsafe(9)
        create_user(ws.engine, username, password, role)
        result.credentials[username] = password
        result.messages.append(f"account {username!r} ({role}) password: {password}  (shown once)")
