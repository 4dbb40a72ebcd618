"""Relations in miniature (issue 11 proof (b)): a workspace of synthetic seed groups (every template,
shapes and colours varied inside a group) with their accepted anonymous captions, a fresh
held-out set of images, and same-template / same-colour recall@1 of any embedder on it.
Shared by tests/test_relsim_relations.py, tests/test_eval_mining.py and bench/relsim_relations.py.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlmodel import select

from relcurate.curation.demo import synthetic
from relcurate.db.engine import session_scope
from relcurate.db.models import Caption, CaptionStatus, GroupMember, SeedGroup
from relcurate.testing.training import _store
from relcurate.training.relsim_trainer import recall_at
from relcurate.workspace import Workspace

TEMPLATES = sorted(synthetic.TEMPLATES)


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def build_relation_workspace(ws: Workspace, *, groups_per_template: int = 4, members: int = 3, size: int = 112,
                             seed: int = 0) -> int:
    """Seed groups straight into the store (no ingest): each group is one template drawn with
    different shapes and colours, with the template's anonymous caption accepted. Returns #groups."""
    made = 0
    for t, name in enumerate(TEMPLATES):
        for g in range(groups_per_template):
            imgs = synthetic.generate_group(name, members, seed=seed * 10_000 + t * 100 + g, size=size)
            ids = _store(ws, [_png(m.image) for m in imgs], f"{name}-{seed}-{g}")
            with session_scope(ws.engine) as s:
                if s.exec(select(SeedGroup.id).where(SeedGroup.name == f"{name} #{g}")).first():
                    continue
                grp = SeedGroup(name=f"{name} #{g}", status="verified")
                s.add(grp)
                s.flush()
                for pos, iid in enumerate(ids):
                    s.add(GroupMember(group_id=grp.id, image_id=iid, position=pos))
                s.add(Caption(group_id=grp.id, text=imgs[0].anonymous_caption, source="ground_truth",
                              status=CaptionStatus.accepted))
            made += 1
    return made


@dataclass
class EvalSet:
    images: list
    templates: list[str]
    colors: list[str]


def relation_eval_set(per_template: int = 4, *, size: int = 112, seed: int = 7) -> EvalSet:
    """Fresh relational images (never trained on): `per_template` per template, random colours."""
    images, templates, colors = [], [], []
    for t, name in enumerate(TEMPLATES):
        for k in range(per_template):
            im = synthetic.generate_image(900_000 + seed * 1000 + t * 50 + k, name, size=size)
            images.append(im.image)
            templates.append(name)
            colors.append(im.attributes["color"])
    return EvalSet(images, templates, colors)


def relation_recalls(emb: np.ndarray, data: EvalSet) -> dict[str, float]:
    """recall@1 of same template and of same colour (self excluded), with the chance rates."""
    tpl = recall_at(np.asarray(emb, np.float32), [{t} for t in data.templates], ks=(1,))[1]
    col = recall_at(np.asarray(emb, np.float32), [{c} for c in data.colors], ks=(1,))[1]
    n = len(data.templates)
    chance_t = np.mean([(data.templates.count(t) - 1) / (n - 1) for t in data.templates])
    chance_c = np.mean([(data.colors.count(c) - 1) / (n - 1) for c in data.colors])
    return {"template_r@1": float(tpl), "color_r@1": float(col), "template_chance": float(chance_t),
            "color_chance": float(chance_c)}
