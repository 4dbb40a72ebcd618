"""The demo's relsim (issue 11, "the demo shows the loop"): a tiny Qwen2.5-VL built from config in
the workspace, trained on the CPU on the demo's ground-truth anonymous captions (seed-group members
train, the relational pool images are held out), registered, the workspace embedded with it and
indexed, so the group builder's "more like this group" offers it beside the attribute space.

The demo's captions stay *proposed* for the review page, so the snapshot is built here from the
synthetic ground truth rather than from accepted captions. A re-run finds the same snapshot, base
and settings, hence the same run folder, and reuses the registered version (no retraining).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlmodel import select

from relcurate.db.engine import read_scope
from relcurate.db.models import GroupMember, Image, ImageStatus, ModelVersion, SeedGroup
from relcurate.models.relsim_embedder import VISION_AND_TEXT_TARGETS
from relcurate.training.loop import LoopSettings
from relcurate.training.relsim_trainer import RelsimSettings, train_relsim
from relcurate.training.snapshot import Item, TooLittleData, TrainingSnapshot
from relcurate.workspace import Workspace

DEMO_MODEL = "demo-relsim"
BASE_DIR = "demo-relsim-base"


@dataclass
class DemoRelsimSize:
    """What the demo trains (measured: see bench/relsim_relations.py and the README)."""
    text_hidden: int = 64
    num_layers: int = 2
    image_size: int = 56
    steps: int = 80
    batch_size: int = 32
    lr: float = 3e-3
    lora_targets: tuple[str, ...] = VISION_AND_TEXT_TARGETS


@dataclass
class DemoRelsim:
    model_version: ModelVersion
    reused: bool
    space: str
    messages: list[str] = field(default_factory=list)


def demo_base(ws: Workspace, size: DemoRelsimSize) -> Path:
    """The tiny base model, built once per workspace (deterministic weights, so a rebuild after a
    crash is the same model)."""
    from relcurate.models.tiny import build_tiny_qwen

    out = ws.models_dir / f"{BASE_DIR}-h{size.text_hidden}-l{size.num_layers}"
    if not (out / "config.json").exists() or not (out / "tokenizer_config.json").exists():
        tmp = out.with_name(out.name + ".tmp")
        build_tiny_qwen(tmp, vocab="bpe", text_hidden=size.text_hidden, num_layers=size.num_layers)
        if out.exists():
            import shutil

            shutil.rmtree(out)
        tmp.replace(out)
    return out


def demo_snapshot(ws: Workspace) -> TrainingSnapshot:
    """Ground-truth (image, anonymous caption) pairs: demo seed-group members train, relational
    pool images (in no group) are held out."""
    with read_scope(ws.engine) as s:
        groups = dict(s.exec(select(GroupMember.image_id, GroupMember.group_id).join(SeedGroup)
                             .where(SeedGroup.source.startswith("demo:"))).all())
        rows = s.exec(select(Image.id, Image.sha256, Image.ext, Image.meta).where(Image.status == ImageStatus.ok)).all()
    train, held = [], []
    for iid, sha, ext, meta in rows:
        truth = (meta or {}).get("synthetic") or {}
        if not truth.get("relational") or not truth.get("anonymous_caption"):
            continue
        item = Item(int(iid), sha, ext, truth["anonymous_caption"], groups.get(iid))
        (train if item.group_id is not None else held).append(item)
    if len(train) < 4 or len(held) < 2:
        raise TooLittleData(f"the demo relsim needs >= 4 group images and >= 2 relational pool images; "
                            f"the workspace has {len(train)} and {len(held)} (use more --images)")
    key = lambda i: (i.sha256, i.target, i.group_id or 0)  # noqa: E731
    train, held = sorted(train, key=key), sorted(held, key=key)
    used = {"groups": sorted({i.group_id for i in train}), "images": sorted(i.image_id for i in train + held)}
    digest = hashlib.sha256(json.dumps(used).encode()).hexdigest()
    return TrainingSnapshot("relsim", train, held, used, {"source": "demo ground truth"},
                            {"method": "demo: group members train, relational pool images held out"},
                            {"demo_images": digest})


def train_demo_relsim(ws: Workspace, size: DemoRelsimSize | None = None, *,
                      progress: Callable[[int, int], None] | None = None) -> DemoRelsim:
    from relcurate.models.registry import load_model
    from relcurate.models.workspace_scoring import build_workspace_index, embed_workspace, vectors_dir

    size = size or DemoRelsimSize()
    base = demo_base(ws, size)
    settings = RelsimSettings(image_size=size.image_size, heldout_fraction=0.5, lora_targets=size.lora_targets,
                              loop=LoopSettings(epochs=10_000, max_steps=size.steps, batch_size=size.batch_size,
                                                lr=size.lr, checkpoint_every=20, log_every=10, progress=False,
                                                seed=7))
    on_step = (lambda step: progress(step, size.steps)) if progress else None
    result = train_relsim(ws, name=DEMO_MODEL, base=str(base), settings=settings, snapshot=demo_snapshot(ws),
                          on_step=on_step)
    mv = result.model_version
    out = vectors_dir(ws, mv)
    if not (out / "meta.json").exists():  # embedding is resumable and skipped once the index exists
        embed_workspace(ws, load_model(ws, mv), mv, batch_size=32)
        build_workspace_index(ws, mv)
    m = mv.metrics or {}
    verb = "reused" if result.reused else f"trained ({result.steps} steps)"
    msg = (f"relsim {mv.name}:{mv.version} {verb}; held-out same-caption recall@1 "
           f"{m.get('same_caption_recall@1')}; space {out.name!r} offered in the group builder")
    return DemoRelsim(mv, result.reused, out.name, [msg])
