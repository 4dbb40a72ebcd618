"""LoRA set-up shared by the filter and captioner SFT trainers."""
from __future__ import annotations

from typing import Sequence

import torch

LORA_TARGETS = ("q_proj", "v_proj")


def lora_qwen(base: str, *, device, r: int, alpha: int, dropout: float, targets: Sequence[str], seed: int,
              gradient_checkpointing: bool):
    """Qwen2.5-VL (frozen; bf16 on CUDA, fp32 on CPU) with a fresh LoRA adapter, and its processor."""
    from peft import LoraConfig, get_peft_model

    from relcurate.models.qwen_common import load_processor, load_qwen

    processor = load_processor(base)
    model = load_qwen(base, device=device, is_trainable=True)
    torch.manual_seed(seed)
    model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                                             bias="none", task_type="CAUSAL_LM"))
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # transformers hooks every input embedding (the vision patch embedding too) to require
        # grad; only reentrant checkpointing needs that, and with a frozen vision tower it would
        # build, recompute and back-propagate the tower's graph for nothing (as in relsim_embedder).
        model.disable_input_require_grads()
    return model, processor
