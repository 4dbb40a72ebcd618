"""The SFT trainers' model set-up (filter, captioner) under gradient checkpointing: the LoRA
adapters still get gradients, and the frozen vision tower stays out of autograd (non-reentrant
checkpointing needs no requires-grad inputs; transformers' input hooks would make the tower build
a graph, be recomputed and run backward for nothing)."""
from __future__ import annotations

import torch

from relcurate.models.qwen_filter import QwenFilter
from relcurate.testing.models import noise_images
from relcurate.training.sft_common import LORA_TARGETS, lora_qwen


def test_checkpointed_sft_model_trains_lora_without_the_frozen_vision_tower(tiny_qwen_bpe):
    model, processor = lora_qwen(str(tiny_qwen_bpe), device=torch.device("cpu"), r=4, alpha=8, dropout=0.0,
                                 targets=LORA_TARGETS, seed=0, gradient_checkpointing=True)
    model.train()
    filt = QwenFilter(str(tiny_qwen_bpe), model=model, processor=processor)
    seen = []
    model.get_base_model().model.visual.register_forward_hook(
        lambda m, a, out: seen.append(out.pooler_output[0].requires_grad))
    out = model(**filt.prepare(noise_images(2, seed=3)), use_cache=False, logits_to_keep=1)
    out.logits.float().sum().backward()
    assert seen == [False]  # the frozen tower built no graph
    lora = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    assert lora and any(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "visual" in n)
