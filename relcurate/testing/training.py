"""A workspace to train on (helpers for the trainer tests and bench/train.py, no tests here).

`n_groups` seed groups of `per_group` images; every group has its own colour family and stripe
pattern (learnable by a tiny model) and an accepted anonymous caption; optionally two groups share
one caption (duplicate captions in a batch). Filter labels: the group images are "yes" for the first
`yes_groups` groups and "no" for the rest, plus `pool` unlabeled images. Files are written straight
into the content-addressed store and rows inserted directly: ~50 ms for 40 images.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import insert
from sqlmodel import select

from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import Caption, CaptionStatus, GroupMember, Image, SeedGroup
from relcurate.testing.labeling import add_users
from relcurate.workspace import Workspace

CAPTIONS = ["A {Object} split into {Number} equal parts.", "A row of {Object} growing in size.",
            "A {Animal} made of {Material}.", "{Object} arranged in a ring.", "One {Object} unlike the others.",
            "A {Object} and its mirror image.", "A map drawn on a {Object}.", "A {Object} inside a {Object}."]


@dataclass
class TrainingData:
    ws: Workspace
    groups: dict[int, list[int]] = field(default_factory=dict)  # group id -> image ids
    pool: list[int] = field(default_factory=list)
    users: dict[str, int] = field(default_factory=dict)


def _png(group: int, k: int, size: int) -> bytes:
    rng = np.random.default_rng([group, k])
    base = np.array([(group * 73) % 256, (group * 151 + 40) % 256, (group * 37 + 90) % 256], np.float32)
    img = np.empty((size, size, 3), np.float32)
    img[:] = base
    period = 4 + 3 * (group % 4)
    img[:, ::period] = 255 - base  # per-group stripes
    img += rng.normal(0, 12, img.shape)
    buf = io.BytesIO()
    PILImage.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _store(ws: Workspace, blobs: list[bytes], label: str) -> list[int]:
    rows = []
    for n, data in enumerate(blobs):
        sha = hashlib.sha256(data).hexdigest()
        path = ws.image_path(sha, "png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append({"sha256": sha, "ext": "png", "source_uri": f"mem://{label}-{n}.png", "width": 1, "height": 1,
                     "size_bytes": len(data), "status": "ok", "meta": {}})
    with session_scope(ws.engine) as s:
        s.execute(insert(Image), rows)
    with read_scope(ws.engine) as s:
        ids = dict(s.exec(select(Image.sha256, Image.id).where(Image.sha256.in_([r["sha256"] for r in rows]))).all())
    return [ids[r["sha256"]] for r in rows]


def build_training_workspace(ws: Workspace, *, n_groups: int = 6, per_group: int = 4, size: int = 56,
                             shared_caption: bool = True, yes_groups: int = 2, pool: int = 4,
                             labels: bool = True) -> TrainingData:
    data = TrainingData(ws)
    for g in range(n_groups):
        ids = _store(ws, [_png(g, k, size) for k in range(per_group)], f"g{g}")
        text = CAPTIONS[g % len(CAPTIONS)]
        if shared_caption and g == n_groups - 1 and n_groups > 2:
            text = CAPTIONS[0]  # two groups, one caption: positives, not negatives
        with session_scope(ws.engine) as s:
            grp = SeedGroup(name=f"group {g}", status="verified")
            s.add(grp)
            s.flush()
            for pos, iid in enumerate(ids):
                s.add(GroupMember(group_id=grp.id, image_id=iid, position=pos))
            s.add(Caption(group_id=grp.id, text=text, source="human", status=CaptionStatus.accepted))
            s.flush()
            data.groups[grp.id] = ids
    data.pool = _store(ws, [_png(1000 + k, 0, size) for k in range(pool)], "pool") if pool else []
    if labels:
        from relcurate.curation.labeling.labels import record_label

        data.users = add_users(ws.engine, ["ann1", "ann2"])
        for n, (gid, ids) in enumerate(sorted(data.groups.items())):
            for iid in ids:
                answer = "yes" if n < yes_groups else "no"
                for user, uid in data.users.items():
                    record_label(ws.engine, image_id=iid, user_id=uid, answer=answer, request_id=f"{user}-{iid}")
    return data
