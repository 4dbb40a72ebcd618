"""relsim training: Qwen2.5-VL + LoRA + a trainable `<|query|>` row + Linear(hidden, 384), aligned by
multi-positive InfoNCE (learnable temperature) to frozen MiniLM embeddings of the accepted
anonymous captions. Reference defaults (r16/alpha32 on q/v, dropout 0.05, AdamW 1e-4, wd 0.01,
cosine, no warmup, clip 1.0, batch 64, 3 epochs, 448x448 centre crop), with its defects fixed:
trainable query row, learnable temperature, duplicate captions as positives, held-out groups.

The result is a relsim-0.1 checkpoint (`models/relsim_checkpoint.py`) that the reference loader
reads, registered as a new `relsim` model version.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from relcurate.models.qwen_common import DEFAULT_BASE_MODEL
from relcurate.models.relsim_checkpoint import save_relsim_checkpoint
from relcurate.models.relsim_embedder import DEFAULT_IMAGE_SIZE, LORA_TARGETS, RelsimEmbedder
from relcurate.training.common import chunks, load_images
from relcurate.training.loop import LoopSettings, make_accelerator, run_loop
from relcurate.training.relsim_loss import INIT_TEMPERATURE, RelsimContrastiveLoss
from relcurate.training.snapshot import Item, TrainingSnapshot, caption_snapshot
from relcurate.training.versions import FINAL, already_registered, publish_dir, register_trained, resolve_base, run_dir_for
from relcurate.workspace import Workspace

TARGETS_FILE = "caption_targets.pt"


@dataclass
class RelsimSettings:
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    # The reference adapts q/v of the language model only; a tiny model built from config has a
    # random vision tower, which must learn too (vision qkv + MLPs) for relations to be learnable.
    lora_targets: tuple[str, ...] | str = LORA_TARGETS  # names, or one regex (peft full-match)
    # Modules trained in full beside LoRA (peft modules_to_save). Empty for real runs; the synthetic
    # proof trains a tiny model's random vision tower in full (LoRA on random weights learns little).
    modules_to_save: tuple[str, ...] = ()
    image_size: int = DEFAULT_IMAGE_SIZE
    train_query_token: bool = True
    temperature: float = INIT_TEMPERATURE
    learnable_temperature: bool = True
    symmetric: bool = False
    text_encoder: str | None = None  # MiniLM folder / hub id; default: the offline package
    heldout_fraction: float = 0.2
    split_seed: int = 0
    caption_source: str = "both"
    loop: LoopSettings = field(default_factory=lambda: LoopSettings(epochs=3, batch_size=64, lr=1e-4))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loop"] = self.loop.as_dict()
        d["lora_targets"] = self.lora_targets if isinstance(self.lora_targets, str) else list(self.lora_targets)
        if self.lora_targets == LORA_TARGETS:
            del d["lora_targets"]  # the default: run keys of earlier runs stay the same
        d["modules_to_save"] = list(self.modules_to_save)
        if not self.modules_to_save:
            del d["modules_to_save"]  # likewise
        return d


class RelsimTrainModule(nn.Module):
    """Embedder + loss in one module, so `accelerator.prepare` wraps (DDP/FSDP) all that learns."""

    def __init__(self, embedder: RelsimEmbedder, loss: RelsimContrastiveLoss) -> None:
        super().__init__()
        self.embedder = embedder
        self.loss = loss

    def forward(self, inputs, caption_ids: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        img = self.embedder.forward_embeddings(inputs)
        out = self.loss(img, text.to(img.device), caption_ids)
        out["temperature"] = torch.exp(-self.loss.clamped_scale()).detach()
        return out


class RelsimTask:
    def __init__(self, ws: Workspace, module: RelsimTrainModule, items: Sequence[Item], caption_index: dict[str, int],
                 targets: torch.Tensor) -> None:
        self.ws, self.module, self.items = ws, module, list(items)
        self.caption_index, self.targets = caption_index, targets

    def collate(self, items: Sequence[Item]) -> dict[str, Any]:
        ids = torch.tensor([self.caption_index[i.target] for i in items])
        return {"inputs": self.module.embedder.prepare(load_images(self.ws, items)), "caption_ids": ids,
                "text": self.targets[ids]}


def caption_targets(captions: list[str], run_dir: Path, accelerator, text_encoder: str | None) -> torch.Tensor:
    """Frozen MiniLM embeddings of the distinct captions, computed once per run (main process) and
    kept in the run folder, so a resumed run skips the text model."""
    path = run_dir / TARGETS_FILE
    if accelerator.is_main_process and not path.exists():
        from relcurate.models.text_encoder import MiniLMTextEncoder

        emb = MiniLMTextEncoder(text_encoder).encode_tensor(captions).cpu()
        tmp = path.with_suffix(".tmp")
        torch.save({"captions": captions, "embeddings": emb}, tmp)
        tmp.replace(path)
    accelerator.wait_for_everyone()
    saved = torch.load(path, weights_only=True)
    if saved["captions"] != captions:
        raise ValueError(f"{path} was computed for other captions; remove it to recompute")
    return saved["embeddings"]


def recall_at(emb: np.ndarray, keys: list[set], ks=(1, 5)) -> dict[int, float | None]:
    """Share of queries whose top-k neighbours (self excluded) include one sharing a key; queries
    with no other image sharing a key are left out."""
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)
    hits = {k: [] for k in ks}
    for q, mine in enumerate(keys):
        if not mine or not any(mine & keys[j] for j in range(len(keys)) if j != q):
            continue
        for k in ks:
            hits[k].append(any(mine & keys[j] for j in order[q, :k]))
    return {k: (float(np.mean(v)) if v else None) for k, v in hits.items()}


@torch.no_grad()
def evaluate_relsim(ws: Workspace, module: RelsimTrainModule, heldout: Sequence[Item], caption_index: dict[str, int],
                    targets: torch.Tensor, batch_size: int) -> dict[str, Any]:
    """Same-group and same-caption recall@1/@5 over the held-out images, held-out in-batch accuracy."""
    embedder = module.embedder
    by_image: dict[int, dict] = {}
    for it in heldout:
        d = by_image.setdefault(it.image_id, {"item": it, "groups": set(), "captions": set()})
        if it.group_id is not None:
            d["groups"].add(it.group_id)
        d["captions"].add(it.target)
    images = list(by_image.values())
    emb = embedder.embed(load_images(ws, [d["item"] for d in images]), batch_size=batch_size)
    row = {iid: n for n, iid in enumerate(by_image)}
    group_r = recall_at(emb, [d["groups"] for d in images])
    cap_r = recall_at(emb, [d["captions"] for d in images])
    accs, losses = [], []
    for part in chunks(list(heldout), batch_size):
        if len(part) < 2:
            continue
        ids = torch.tensor([caption_index[i.target] for i in part])
        img = torch.from_numpy(emb[[row[i.image_id] for i in part]])
        out = module.loss(img, targets[ids], ids)
        accs.append(float(out["accuracy"]) * len(part))
        losses.append(float(out["loss"]) * len(part))
    n = sum(len(p) for p in chunks(list(heldout), batch_size) if len(p) >= 2)
    return {"heldout_images": len(images), "heldout_pairs": len(heldout),
            "same_group_recall@1": group_r[1], "same_group_recall@5": group_r[5],
            "same_caption_recall@1": cap_r[1], "same_caption_recall@5": cap_r[5],
            "heldout_in_batch_accuracy": sum(accs) / n if n else None,
            "heldout_loss": sum(losses) / n if n else None, "temperature": module.loss.temperature}


@dataclass
class TrainResult:
    model_version: Any
    run_dir: Path
    metrics: dict[str, Any]
    steps: int
    resumed_from: int | None
    history: list[dict]
    reused: bool = False


def train_relsim(ws: Workspace, *, name: str = "relsim-ft", base: str | None = None,
                 settings: RelsimSettings | None = None, snapshot: TrainingSnapshot | None = None,
                 on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train relsim on the store's accepted captions and register the result (resumes a killed run)."""
    s = settings or RelsimSettings()
    base = resolve_base(ws, base, DEFAULT_BASE_MODEL)
    snap = snapshot or caption_snapshot(ws, "relsim", heldout_fraction=s.heldout_fraction, seed=s.split_seed,
                                        caption_source=s.caption_source)
    run_dir = run_dir_for(ws, name, snap, base, s.as_dict())
    done = already_registered(ws, run_dir)
    if done is not None:
        return TrainResult(done, run_dir, done.metrics, done.config.get("steps", 0), None, [], reused=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(s.loop, run_dir, name)
    torch.manual_seed(s.loop.seed)
    embedder = RelsimEmbedder.new(base, lora_r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                                  target_modules=s.lora_targets, modules_to_save=s.modules_to_save,
                                  device=accelerator.device, image_size=s.image_size,
                                  gradient_checkpointing=s.loop.gradient_checkpointing,
                                  train_query_token=s.train_query_token, seed=s.loop.seed, name=name)
    captions = sorted({i.target for i in snap.train + snap.heldout})
    index = {c: n for n, c in enumerate(captions)}
    targets = caption_targets(captions, run_dir, accelerator, s.text_encoder)
    loss = RelsimContrastiveLoss(s.temperature, learnable=s.learnable_temperature, symmetric=s.symmetric)
    module = RelsimTrainModule(embedder, loss.to(accelerator.device))
    task = RelsimTask(ws, module, snap.train, index, targets)
    config = {"kind": "relsim", "base": base, "settings": s.as_dict(), "snapshot_sha256": snap.sha256}
    result = run_loop(task, s.loop, accelerator, run_dir, run_name=name, config=config,
                      state_extra={"snapshot_sha256": snap.sha256}, on_step=on_step)
    mv = None
    if accelerator.is_main_process:
        trained = accelerator.unwrap_model(module)
        trained.eval()
        metrics = {**evaluate_relsim(ws, trained, snap.heldout, index, targets, min(s.loop.batch_size, 32)),
                   "train_loss": result.last_loss, "steps": result.steps, "train_samples_per_s": result.samples_per_s}
        tmp = run_dir / (FINAL + ".tmp")
        save_relsim_checkpoint(trained.embedder, tmp, temperature=trained.loss.temperature, global_step=result.steps,
                               snapshot_sha256=snap.sha256)
        final = publish_dir(tmp, run_dir / FINAL)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
        mv_config = {"backend": "relsim", "init": {"image_size": s.image_size}, "training": s.as_dict(),
                     "steps": result.steps, "trainer": "relcurate.training.relsim_trainer (accelerate loop)"}
        mv = register_trained(ws, run_dir, kind="relsim", name=name, base=base, adapter=final, config=mv_config,
                              metrics=metrics, snapshot=snap)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if mv is None:
        mv = already_registered(ws, run_dir)
    return TrainResult(mv, run_dir, mv.metrics if mv else {}, result.steps, result.resumed_from, result.history)
