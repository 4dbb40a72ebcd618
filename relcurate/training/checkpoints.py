"""Atomic, resumable checkpoint folders for accelerate training runs.

`<run>/checkpoints/step-00000040/` holds accelerate's `save_state` (optimizer, scheduler, RNG of
every process, gradient scaler), the trainable weights only (`trainable.pt`: LoRA, the query row,
projection, temperature; never the frozen 7B base), and `trainer_state.json` (step, data position,
snapshot hash). It is written as `.tmp-step-…`, every file fsynced, a `COMPLETE` marker written
last, then renamed into place, so a folder without the marker (a kill -9 mid-write) is never taken
for a whole checkpoint and is removed by the next save.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

MARKER = "COMPLETE"
STATE_FILE = "trainer_state.json"
TRAINABLE_FILE = "trainable.pt"
_NAME = re.compile(r"^step-(\d{8})$")


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and (p / MARKER).is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    done = complete_checkpoints(run_dir)
    return done[-1] if done else None


def read_state(ckpt: Path) -> dict[str, Any]:
    return json.loads((ckpt / STATE_FILE).read_text())


def trainable_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().cpu().clone() for k, p in module.named_parameters() if p.requires_grad}


def load_trainable_state(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(module.named_parameters())
    missing = [k for k in state if k not in params]
    if missing:
        raise ValueError(f"checkpoint has parameters this model lacks: {missing[:3]}")
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v.to(params[k].device, params[k].dtype))


def _fsync_tree(path: Path) -> None:
    for d, _dirs, files in os.walk(path):
        for f in files:
            fd = os.open(os.path.join(d, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(d))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(accelerator, module: torch.nn.Module, run_dir: Path, step: int, state: dict[str, Any],
                    keep: int = 2) -> Path:
    """Collective: every process calls it (accelerate saves each process's RNG state)."""
    root = checkpoint_root(run_dir)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-step-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():  # a complete one for this step already (resumed exactly here)
            shutil.rmtree(final)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        torch.save(trainable_state(accelerator.unwrap_model(module)), tmp / TRAINABLE_FILE)
        (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=1, sort_keys=True))
        _fsync_tree(tmp)
        marker = tmp / MARKER
        marker.write_text("ok\n")
        _fsync_tree(tmp)
        os.replace(tmp, final)
        _fsync_dir(root)
        for old in complete_checkpoints(run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, module: torch.nn.Module, ckpt: Path) -> dict[str, Any]:
    """Restore optimizer/scheduler/RNG (accelerate) and the trainable weights; returns the state."""
    accelerator.load_state(str(ckpt))
    load_trainable_state(accelerator.unwrap_model(module), torch.load(ckpt / TRAINABLE_FILE, map_location="cpu",
                                                                      weights_only=True))
    return read_state(ckpt)


def skip_model_weights(accelerator) -> None:
    """accelerate's save_state/load_state would write/read the full model (15 GB for the 7B) on
    every checkpoint; the frozen base never changes, so the hooks drop it and `trainable.pt`
    carries the weights that do."""
    def on_save(models, weights, output_dir):
        weights.clear()

    def on_load(models, input_dir):
        models.clear()

    accelerator.register_save_state_pre_hook(on_save)
    accelerator.register_load_state_pre_hook(on_load)
