"""Anonymous-captioner SFT: Qwen2.5-VL + LoRA learns to write the accepted caption of a seed group.

Samples are one image per sample with the reference's single-image prompt (each member paired with
its group's caption, as the reference trains), or with `per="group"` the whole group in one
multi-image prompt. The loss is on the answer tokens only (caption + `<|im_end|>`): logits are
computed for the last positions only (`logits_to_keep`), not the whole prompt. Unlike the reference
(whose test file is its training file) metrics come from held-out *groups*: anonymity-checker pass
rate of the generated captions, MiniLM cosine to the accepted caption, and how much captions of the
same group's images agree with each other.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from relcurate.models.protocols import CAPTION_PROMPT, GROUP_CAPTION_PROMPT
from relcurate.models.qwen_captioner import GenerationSettings, QwenCaptioner
from relcurate.models.qwen_common import DEFAULT_BASE_MODEL, limit_pixels, user_turn
from relcurate.training.common import load_images
from relcurate.training.loop import LoopSettings, make_accelerator, run_loop
from relcurate.training.relsim_trainer import TrainResult
from relcurate.training.sft_common import LORA_TARGETS, lora_qwen
from relcurate.training.snapshot import Item, TrainingSnapshot, caption_snapshot
from relcurate.training.versions import FINAL, already_registered, publish_dir, register_trained, resolve_base, run_dir_for
from relcurate.workspace import Workspace

ANSWER_END = "<|im_end|>"


@dataclass
class CaptionerSettings:
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    per: str = "image"  # or "group": the whole group in one prompt
    max_pixels: int = 448 * 448
    group_max_pixels: int = 448 * 448
    heldout_fraction: float = 0.2
    split_seed: int = 0
    eval_limit: int = 200  # held-out images captioned for the metrics
    eval_max_new_tokens: int = 64
    text_encoder: str | None = None
    loop: LoopSettings = field(default_factory=lambda: LoopSettings(epochs=20, batch_size=8, lr=2e-4,
                                                                   weight_decay=0.0, warmup_steps=50,
                                                                   schedule="linear"))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loop"] = self.loop.as_dict()
        return d


@dataclass(frozen=True)
class Sample:
    items: tuple[Item, ...]  # one image, or a whole group
    caption: str


def samples(items: Sequence[Item], per: str) -> list[Sample]:
    if per == "image":
        return [Sample((i,), i.target) for i in items]
    if per != "group":
        raise ValueError("per must be 'image' or 'group'")
    by_group: dict[tuple, list[Item]] = defaultdict(list)
    for i in items:
        by_group[(i.group_id if i.group_id is not None else f"image-{i.image_id}", i.target)].append(i)
    return [Sample(tuple(v), k[1]) for k, v in sorted(by_group.items(), key=lambda kv: str(kv[0]))]


class CaptionerTrainModule(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        keep = int((labels != -100).sum(-1).max()) + 1  # the answer and the position before it
        out = self.model(**inputs, use_cache=False, logits_to_keep=keep)
        logits = out.logits[:, :-1].float()
        target = labels[:, -(keep - 1):].to(logits.device)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)
        return {"loss": loss}


class CaptionerTask:
    def __init__(self, ws: Workspace, module: CaptionerTrainModule, items: Sequence[Sample], processor,
                 s: CaptionerSettings) -> None:
        self.ws, self.module, self.items, self.processor, self.s = ws, module, list(items), processor, s

    def collate(self, batch: Sequence[Sample]) -> dict[str, Any]:
        tok = self.processor.tokenizer
        convs, texts, answers = [], [], []
        for smp in batch:
            images = load_images(self.ws, smp.items)
            if len(images) == 1 and self.s.per == "image":
                conv = user_turn([limit_pixels(images[0], self.s.max_pixels)], CAPTION_PROMPT)
            else:
                conv = user_turn([limit_pixels(im, self.s.group_max_pixels) for im in images],
                                 GROUP_CAPTION_PROMPT.format(n=len(images)))
            convs.append(conv)
            answers.append(smp.caption + ANSWER_END)
        for conv, ans in zip(convs, answers):
            texts.append(self.processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=True) + ans)
        images = [c["image"] for conv in convs for c in conv[0]["content"] if c.get("type") == "image"]
        inputs = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        ids = inputs["input_ids"]
        labels = torch.full_like(ids, -100)
        for row, ans in enumerate(answers):
            ans_ids = tok(ans, add_special_tokens=False)["input_ids"]
            n = len(ans_ids)
            if ids[row, -n:].tolist() != ans_ids:  # left padding: the answer ends every row
                raise ValueError(f"answer tokens of {ans!r} did not survive templating")
            labels[row, -n:] = ids[row, -n:]
        return {"inputs": inputs, "labels": labels}


def evaluate_captioner(ws: Workspace, captioner: QwenCaptioner, heldout: Sequence[Item], s: CaptionerSettings) -> dict:
    from relcurate.curation.groups.anonymity import check_caption
    from relcurate.models.text_encoder import MiniLMTextEncoder

    items = list(heldout)[: s.eval_limit]
    if not items:
        return {"heldout_captioned": 0}
    if s.per == "group":
        units = samples(items, "group")
        gen = [captioner.caption_group(load_images(ws, u.items)) for u in units]
        refs, groups = [u.caption for u in units], [u.items[0].group_id for u in units]
    else:
        gen = captioner.caption(load_images(ws, items))
        refs, groups = [i.target for i in items], [i.group_id for i in items]
    passed = [check_caption(g).ok for g in gen]
    enc = MiniLMTextEncoder(s.text_encoder)
    g_emb, r_emb = enc.encode(gen), enc.encode(refs)
    cos = (g_emb * r_emb).sum(-1)
    agree, exact = [], []
    by_group: dict[Any, list[int]] = defaultdict(list)
    for n, gid in enumerate(groups):
        if gid is not None:
            by_group[gid].append(n)
    for rows in by_group.values():
        for a in range(len(rows)):
            for b in range(a + 1, len(rows)):
                agree.append(float(g_emb[rows[a]] @ g_emb[rows[b]]))
                exact.append(gen[rows[a]] == gen[rows[b]])
    return {"heldout_captioned": len(gen), "heldout_groups": len(by_group),
            "anonymity_pass_rate": float(np.mean(passed)), "minilm_cosine_to_accepted": float(cos.mean()),
            "same_group_caption_cosine": float(np.mean(agree)) if agree else None,
            "same_group_exact_agreement": float(np.mean(exact)) if exact else None,
            "examples": [{"generated": g, "accepted": r} for g, r in list(zip(gen, refs))[:5]]}


def train_captioner(ws: Workspace, *, name: str = "captioner-ft", base: str | None = None,
                    settings: CaptionerSettings | None = None, snapshot: TrainingSnapshot | None = None,
                    on_step: Callable[[int], None] | None = None) -> TrainResult:
    s = settings or CaptionerSettings()
    base = resolve_base(ws, base, DEFAULT_BASE_MODEL)
    snap = snapshot or caption_snapshot(ws, "captioner", heldout_fraction=s.heldout_fraction, seed=s.split_seed,
                                        caption_source="group" if s.per == "group" else "both")
    run_dir = run_dir_for(ws, name, snap, base, s.as_dict())
    done = already_registered(ws, run_dir)
    if done is not None:
        return TrainResult(done, run_dir, done.metrics, done.config.get("steps", 0), None, [], reused=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(s.loop, run_dir, name)
    model, processor = lora_qwen(base, device=accelerator.device, r=s.lora_r, alpha=s.lora_alpha,
                                 dropout=s.lora_dropout, targets=LORA_TARGETS, seed=s.loop.seed,
                                 gradient_checkpointing=s.loop.gradient_checkpointing)
    module = CaptionerTrainModule(model)
    task = CaptionerTask(ws, module, samples(snap.train, s.per), processor, s)
    config = {"kind": "captioner", "base": base, "settings": s.as_dict(), "snapshot_sha256": snap.sha256}
    result = run_loop(task, s.loop, accelerator, run_dir, run_name=name, config=config,
                      state_extra={"snapshot_sha256": snap.sha256}, on_step=on_step)
    mv = None
    if accelerator.is_main_process:
        trained = accelerator.unwrap_model(module).model
        init = {"max_pixels": s.max_pixels, "group_max_pixels": s.group_max_pixels}
        captioner = QwenCaptioner(base, model=trained, processor=processor, **init,
                                  generation=GenerationSettings(max_new_tokens=s.eval_max_new_tokens))
        metrics = {**evaluate_captioner(ws, captioner, snap.heldout, s), "train_loss": result.last_loss,
                   "steps": result.steps, "train_samples_per_s": result.samples_per_s}
        tmp = run_dir / (FINAL + ".tmp")
        trained.save_pretrained(str(tmp))
        final = publish_dir(tmp, run_dir / FINAL)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
        mv_config = {"backend": "qwen-captioner", "init": init, "training": s.as_dict(), "steps": result.steps,
                     "trainer": "relcurate.training.captioner_trainer (accelerate loop)"}
        mv = register_trained(ws, run_dir, kind="captioner", name=name, base=base, adapter=final, config=mv_config,
                              metrics=metrics, snapshot=snap)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if mv is None:
        mv = already_registered(ws, run_dir)
    return TrainResult(mv, run_dir, mv.metrics if mv else {}, result.steps, result.resumed_from, result.history)
