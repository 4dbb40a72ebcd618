"""The one training loop all three trainers share: plain accelerate.

`accelerator.prepare` (DDP / FSDP / DeepSpeed from `accelerate launch` config, no code change),
gradient accumulation (`accelerator.accumulate`), bf16 autocast on CUDA and fp32 on CPU, AdamW
with a transformers schedule, gradient clipping, seeds, trackers, a rich progress bar (loss,
samples/s), and checkpoints every N optimizer steps that resume after kill -9: optimizer,
scheduler and every process's RNG through `save_state`/`load_state`, the data position through
a deterministic per-epoch order plus `skip_first_batches`.

A task gives: `module` (an nn.Module whose trainable parameters are the ones to learn; its
`forward(**batch)` returns a dict with "loss" and optional float metrics), `items` (the training
examples) and `collate(list_of_items) -> batch`.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch

from relcurate.training.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint, skip_model_weights
from relcurate.training.trackers import make_trackers


@dataclass
class LoopSettings:
    epochs: int = 3
    max_steps: int | None = None  # optimizer steps; None = all epochs
    batch_size: int = 64  # per process, per micro-batch
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 0
    schedule: str = "cosine"  # any transformers.get_scheduler name
    max_grad_norm: float | None = 1.0
    seed: int = 42
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    trackers: tuple[str, ...] = ("local",)
    mixed_precision: str = "auto"  # auto: bf16 on CUDA, none (fp32) on CPU
    gradient_checkpointing: bool = False
    progress: bool = True

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["trackers"] = list(self.trackers)
        return d


class Task(Protocol):
    module: torch.nn.Module
    items: Sequence[Any]

    def collate(self, items: Sequence[Any]) -> dict[str, Any]: ...


@dataclass
class LoopResult:
    steps: int
    resumed_from: int | None
    last_loss: float | None
    samples_per_s: float
    history: list[dict] = field(default_factory=list)


def mixed_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() else "no"


def make_accelerator(settings: LoopSettings, run_dir: Path, run_name: str):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    # cpu=True without CUDA: only then does accelerate read a torchrun/`accelerate launch` world on
    # the CPU as MULTI_CPU (gloo); otherwise every process would train alone as rank 0
    acc = Accelerator(cpu=not torch.cuda.is_available(), gradient_accumulation_steps=settings.grad_accum,
                      mixed_precision=mixed_precision(settings.mixed_precision),
                      log_with=make_trackers(settings.trackers, run_dir, run_name),
                      project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")))
    skip_model_weights(acc)
    return acc


def epoch_batches(n: int, batch_size: int, world: int, seed: int, epoch: int) -> list[list[int]]:
    """Per-process micro-batches of one epoch (accelerate deals them out round-robin), in an order
    that depends only on (seed, epoch): the same on every process and after a resume. Incomplete
    trailing batches are dropped (a contrastive batch of one learns nothing), unless the set is
    smaller than one global batch."""
    order = np.random.default_rng([seed, epoch]).permutation(n).tolist()
    size = batch_size
    if n < batch_size * world:
        size = max(1, n // world)
    full = (n // (size * world)) * size * world
    order = order[:full] if full else order
    return [order[i:i + size] for i in range(0, len(order), size)]


def _flat_config(cfg: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in _flat_config(v).items()})
        elif isinstance(v, (bool, int, float, str)) or v is None:
            out[k] = v
        else:
            out[k] = str(v)
    return out


def run_loop(task: Task, settings: LoopSettings, accelerator, run_dir: Path, *, run_name: str,
             config: dict[str, Any], state_extra: dict[str, Any] | None = None,
             on_step: Callable[[int], None] | None = None) -> LoopResult:
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    world = accelerator.num_processes
    n = len(task.items)
    per_epoch = math.ceil(len(epoch_batches(n, settings.batch_size, world, settings.seed, 0)) / world)
    total = settings.epochs * math.ceil(per_epoch / settings.grad_accum)  # a sync at every epoch end
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    if total < 1:
        raise ValueError("nothing to train: zero optimizer steps (check epochs / max_steps)")

    params = [p for p in task.module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr)
    # accelerate steps a prepared scheduler once per process per optimizer step
    scheduler = get_scheduler(settings.schedule, optimizer, num_warmup_steps=settings.warmup_steps * world,
                              num_training_steps=total * world)
    module, optimizer, scheduler = accelerator.prepare(task.module, optimizer, scheduler)
    accelerator.init_trackers(run_name, config=_flat_config(config))

    step, epoch, position, resumed = 0, 0, 0, None
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None:
        st = load_checkpoint(accelerator, module, ckpt)
        step, epoch, position, resumed = st["step"], st["epoch"], st["position"], st["step"]
    history: list[dict] = []
    losses: list[float] = []
    seen, t0 = 0, time.perf_counter()
    last_loss = None

    progress = _progress(settings.progress and accelerator.is_main_process, run_name, total, step)
    try:
        while step < total:
            batches = epoch_batches(n, settings.batch_size, world, settings.seed, epoch)
            # its own generator: a DataLoader iterator otherwise draws its base seed from the global
            # torch RNG, which a resumed run (restored RNG, one more iterator) would then be off by
            gen = torch.Generator().manual_seed(settings.seed * 100_003 + epoch)
            dl = DataLoader(list(range(n)), batch_sampler=batches, generator=gen,
                            collate_fn=lambda idx: task.collate([task.items[i] for i in idx]))
            dl = accelerator.prepare_data_loader(dl, device_placement=True)
            if position:
                dl = accelerator.skip_first_batches(dl, position)
            for batch in dl:
                with accelerator.accumulate(module):
                    out = module(**batch)
                    loss = out["loss"]
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and settings.max_grad_norm:
                        accelerator.clip_grad_norm_(module.parameters(), settings.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                position += 1
                losses.append(float(loss.detach()))
                seen += _batch_len(batch) * world
                if not accelerator.sync_gradients:
                    continue
                step += 1
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                last_loss = float(np.mean(losses))
                if step % settings.log_every == 0 or step == total:
                    mean = float(accelerator.reduce(torch.tensor(last_loss, device=accelerator.device), "mean"))
                    row = {"loss": mean, "lr": scheduler.get_last_lr()[0], "samples_per_s": rate, "epoch": epoch,
                           **{k: float(v) for k, v in out.items() if k != "loss" and _scalar(v)}}
                    accelerator.log(row, step=step)
                    history.append({"step": step, **row})
                losses = []
                progress(step, last_loss, rate)
                if step % settings.checkpoint_every == 0 and step < total:
                    save_checkpoint(accelerator, module, run_dir, step,
                                    {"epoch": epoch, "position": position, **(state_extra or {})},
                                    keep=settings.keep_checkpoints)
                if on_step is not None:
                    on_step(step)
                if step >= total:
                    break
            else:
                epoch, position = epoch + 1, 0
                continue
            break
    finally:
        progress.close()
    accelerator.wait_for_everyone()
    return LoopResult(step, resumed, last_loss, seen / max(time.perf_counter() - t0, 1e-9), history)


def _scalar(v) -> bool:
    return isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1)


def _batch_len(batch: dict) -> int:
    for v in batch.values():
        if isinstance(v, torch.Tensor):
            return int(v.shape[0])
    return 0


class _progress:
    """A rich progress bar with loss and samples/s on the main process; silent elsewhere."""

    def __init__(self, enabled: bool, label: str, total: int, start: int) -> None:
        self.bar = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())
        self.bar.start()
        self.task = self.bar.add_task(label, total=total, completed=start, info="")

    def __call__(self, step: int, loss: float | None, rate: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=f"loss {loss:.4f} · {rate:.1f} samples/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
