"""Filter SFT: Qwen2.5-VL + LoRA learns to answer the paper's question "Yes"/"No" as the human
consensus does (adjudicated > gold > majority).

The user turn is image + question, the assistant turn opens, and the loss is cross-entropy on the
answer token restricted to the two answers ("Yes", "No") — exactly what `QwenFilter.predict_proba`
reads at inference (two-way softmax at `logits_to_keep=1`), so no full-vocabulary logits are
computed. Positives are rare (~10% in the paper): class weights n / (2 n_class) balance the loss.
Held-out: accuracy, F1 on Yes, Cohen's kappa vs the consensus, ECE, a threshold chosen for a target
precision or recall (stored with the version), and the keep rate that threshold gives on the
unlabeled pool.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from relcurate.models.protocols import FILTER_QUESTION
from relcurate.models.qwen_common import DEFAULT_BASE_MODEL, single_token_id
from relcurate.models.qwen_filter import DEFAULT_MAX_PIXELS, QwenFilter
from relcurate.training.common import chunks, load_images
from relcurate.training.filter_metrics import binary_metrics, choose_threshold, expected_calibration_error
from relcurate.training.loop import LoopSettings, make_accelerator, run_loop
from relcurate.training.relsim_trainer import TrainResult
from relcurate.training.sft_common import LORA_TARGETS, lora_qwen
from relcurate.training.snapshot import Item, TrainingSnapshot, filter_snapshot
from relcurate.training.versions import FINAL, already_registered, publish_dir, register_trained, resolve_base, run_dir_for
from relcurate.workspace import Workspace


@dataclass
class FilterSettings:
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    max_pixels: int = DEFAULT_MAX_PIXELS
    class_weights: bool = True
    threshold_target: str = "precision"  # or "recall"
    threshold_value: float = 0.9
    min_votes: int = 1  # 2: drop majority labels that rest on one annotator
    methods: tuple[str, ...] = ("adjudicated", "gold", "majority")
    heldout_fraction: float = 0.2
    split_seed: int = 0
    pool_limit: int = 2000  # unlabeled images scored for the keep rate
    loop: LoopSettings = field(default_factory=lambda: LoopSettings(epochs=3, batch_size=16, lr=1e-4))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = list(self.methods)
        d["loop"] = self.loop.as_dict()
        return d


class FilterTrainModule(nn.Module):
    def __init__(self, model, yes_id: int, no_id: int, weights: torch.Tensor | None) -> None:
        super().__init__()
        self.model = model
        self.answer_ids = [yes_id, no_id]
        self.register_buffer("weights", weights if weights is not None else torch.ones(2), persistent=False)

    def forward(self, inputs, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(**inputs, use_cache=False, logits_to_keep=1)
        logits = out.logits[:, -1, self.answer_ids].float()  # (B, 2): Yes, No
        loss = F.cross_entropy(logits, labels, weight=self.weights.to(logits.device))
        acc = (logits.argmax(-1) == labels).float().mean().detach()
        return {"loss": loss, "accuracy": acc}


class FilterTask:
    def __init__(self, ws: Workspace, module: FilterTrainModule, items: Sequence[Item], filt: QwenFilter) -> None:
        self.ws, self.module, self.items, self.filt = ws, module, list(items), filt

    def collate(self, items: Sequence[Item]) -> dict[str, Any]:
        labels = torch.tensor([0 if i.target == "yes" else 1 for i in items])
        return {"inputs": self.filt.prepare(load_images(self.ws, items)), "labels": labels}


def _proba(ws: Workspace, filt: QwenFilter, items: Sequence[Any], batch: int) -> np.ndarray:
    out = []
    for part in chunks(list(items), batch):
        out.append(filt.predict_proba(load_images(ws, part)))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def evaluate_filter(ws: Workspace, filt: QwenFilter, snap: TrainingSnapshot, s: FilterSettings) -> dict[str, Any]:
    y = np.array([i.target == "yes" for i in snap.heldout])
    p = _proba(ws, filt, snap.heldout, 16)
    thr = choose_threshold(y, p, target=s.threshold_target, value=s.threshold_value)
    pool = [Item(i, sha, ext, "", None) for i, sha, ext in snap.extra.get("pool", [])]
    pool_p = _proba(ws, filt, pool, 16)
    return {"heldout": len(y), "heldout_yes": int(y.sum()), **binary_metrics(y, p, thr["threshold"]),
            "at_0.5": binary_metrics(y, p, 0.5), "ece": expected_calibration_error(y, p), **thr,
            "pool_scored": len(pool), "pool_size": snap.extra.get("pool_size", 0),
            "keep_rate": float((pool_p >= thr["threshold"]).mean()) if len(pool) else None}


def train_filter(ws: Workspace, *, name: str = "filter-ft", base: str | None = None,
                 settings: FilterSettings | None = None, snapshot: TrainingSnapshot | None = None,
                 on_step: Callable[[int], None] | None = None) -> TrainResult:
    s = settings or FilterSettings()
    base = resolve_base(ws, base, DEFAULT_BASE_MODEL)
    snap = snapshot or filter_snapshot(ws, heldout_fraction=s.heldout_fraction, seed=s.split_seed,
                                       min_votes=s.min_votes, methods=tuple(s.methods), pool_limit=s.pool_limit)
    run_dir = run_dir_for(ws, name, snap, base, s.as_dict())
    done = already_registered(ws, run_dir)
    if done is not None:
        return TrainResult(done, run_dir, done.metrics, done.config.get("steps", 0), None, [], reused=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(s.loop, run_dir, name)
    model, processor = lora_qwen(base, device=accelerator.device, r=s.lora_r, alpha=s.lora_alpha,
                                 dropout=s.lora_dropout, targets=LORA_TARGETS, seed=s.loop.seed,
                                 gradient_checkpointing=s.loop.gradient_checkpointing)
    filt = QwenFilter(base, model=model, processor=processor, max_pixels=s.max_pixels)
    n_yes = sum(i.target == "yes" for i in snap.train)
    n = len(snap.train)
    weights = torch.tensor([n / (2 * n_yes), n / (2 * (n - n_yes))]) if s.class_weights else None
    module = FilterTrainModule(model, single_token_id(processor.tokenizer, "Yes"),
                               single_token_id(processor.tokenizer, "No"), weights)
    config = {"kind": "filter", "base": base, "settings": s.as_dict(), "snapshot_sha256": snap.sha256}
    result = run_loop(FilterTask(ws, module, snap.train, filt), s.loop, accelerator, run_dir, run_name=name,
                      config=config, state_extra={"snapshot_sha256": snap.sha256}, on_step=on_step)
    mv = None
    if accelerator.is_main_process:
        filt.model = accelerator.unwrap_model(module).model
        metrics = {**evaluate_filter(ws, filt, snap, s), "train_loss": result.last_loss, "steps": result.steps,
                   "train_samples_per_s": result.samples_per_s, "class_weights": weights.tolist() if weights is not None else None}
        tmp = run_dir / (FINAL + ".tmp")
        filt.model.save_pretrained(str(tmp))
        final = publish_dir(tmp, run_dir / FINAL)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
        mv_config = {"backend": "qwen-filter", "init": {"max_pixels": s.max_pixels, "question": FILTER_QUESTION},
                     "threshold": metrics["threshold"], "training": s.as_dict(), "steps": result.steps,
                     "trainer": "relcurate.training.filter_trainer (accelerate loop)"}
        mv = register_trained(ws, run_dir, kind="filter", name=name, base=base, adapter=final, config=mv_config,
                              metrics=metrics, snapshot=snap)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if mv is None:
        mv = already_registered(ws, run_dir)
    return TrainResult(mv, run_dir, mv.metrics if mv else {}, result.steps, result.resumed_from, result.history)


def run_retrain_job(ctx) -> dict:
    """The LoRA retrain job of the filter loop (`jobs/filter_loop.run_lora_retrain`). Params:
    `base` (a registered model or a path; needed: there is no hub here), `name`, `max_steps`,
    `batch_size`, `max_pixels`. A rerun resumes the same run folder or returns its version."""
    import dataclasses

    p = dict(ctx.params or {})
    if not p.get("base"):
        raise ValueError("the filter retrain needs a base model: enqueue it with params {'base': NAME_OR_PATH}")
    s = FilterSettings()
    loop_changes = {k: p[k] for k in ("max_steps", "batch_size", "epochs") if p.get(k) is not None}
    if loop_changes:
        s = dataclasses.replace(s, loop=dataclasses.replace(s.loop, **loop_changes))
    if p.get("max_pixels"):
        s = dataclasses.replace(s, max_pixels=int(p["max_pixels"]))
    ctx.log(f"filter LoRA retrain from {p['base']}")
    res = train_filter(ctx.ws, name=p.get("name") or "filter-ft", base=p["base"], settings=s,
                       on_step=lambda step: ctx.progress(min(0.99, step / max(1, s.loop.max_steps or step + 1)),
                                                         f"step {step}"))
    mv = res.model_version
    return {"model_version_id": getattr(mv, "id", None), "version": getattr(mv, "version", None),
            "steps": res.steps, "reused": res.reused, "metrics": res.metrics}
