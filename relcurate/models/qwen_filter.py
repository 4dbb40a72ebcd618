"""Interesting-image filter on Qwen2.5-VL: P("Yes") to the paper's annotator question.

The image and question go in one user turn; the assistant turn is opened and the next-token logits
of "Yes" and "No" (single tokens in Qwen's vocabulary) are compared with a two-way softmax, so the
probability does not depend on how much mass the model puts on other tokens. Only the last
position's logits are computed (`logits_to_keep=1`). An optional peft adapter holds a fine-tuned
filter; `yes_no_logits` is differentiable for the trainer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from relcurate.models.protocols import FILTER_QUESTION
from relcurate.models.qwen_common import (
    encode_prompts,
    input_device,
    limit_pixels,
    load_processor,
    load_qwen,
    single_token_id,
    to_device,
    size_batches,
    user_turn,
)

DEFAULT_MAX_PIXELS = 448 * 448  # ~256 visual tokens per image


class QwenFilter:
    """`Filter` backed by Qwen2.5-VL (+ optional LoRA adapter)."""

    def __init__(
        self,
        model_path: str | Path,
        adapter_path: str | Path | None = None,
        *,
        processor_path: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        device_map: str | dict | None = None,
        batch_size: int = 8,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        question: str = FILTER_QUESTION,
        model: Any = None,
        processor: Any = None,
    ) -> None:
        """`model`/`processor` may be passed already loaded (e.g. by a trainer); else they are loaded."""
        self.processor = processor or load_processor(processor_path or model_path)
        self.model = model or load_qwen(model_path, adapter_path=adapter_path, device=device, dtype=dtype,
                                        device_map=device_map)  # fmt: skip
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.question = question
        tok = self.processor.tokenizer
        self.yes_id = single_token_id(tok, "Yes")
        self.no_id = single_token_id(tok, "No")

    def prepare(self, images: Sequence[Image.Image]):
        """Processor batch: each image + the question, ending where the answer token would go."""
        convs = [user_turn([limit_pixels(im, self.max_pixels)], self.question) for im in images]
        return encode_prompts(self.processor, convs, add_generation_prompt=True)

    def yes_no_logits(self, batch: Any) -> torch.Tensor:
        """(B, 2) float32 logits of ("Yes", "No") for the next token; keeps the autograd graph."""
        batch = to_device(batch, input_device(self.model))
        out = self.model(**batch, use_cache=False, logits_to_keep=1)
        return out.logits[:, -1, [self.yes_id, self.no_id]].float()

    @torch.inference_mode()
    def predict_proba(self, images: Sequence[Image.Image]) -> np.ndarray:
        """P(Yes) per image, float32, in input order."""
        if len(images) == 0:
            return np.zeros(0, dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            fitted = [limit_pixels(im, self.max_pixels) for im in images]
            probs = np.empty(len(fitted), dtype=np.float32)
            for idx in size_batches([im.width * im.height for im in fitted], self.batch_size):
                convs = [user_turn([fitted[i]], self.question) for i in idx]
                batch = encode_prompts(self.processor, convs, add_generation_prompt=True)
                probs[list(idx)] = torch.softmax(self.yes_no_logits(batch), dim=-1)[:, 0].cpu().numpy()
            return probs
        finally:
            self.model.train(was_training)


def load_backend(spec) -> QwenFilter:
    """Backend "qwen-filter" (models/backends.py)."""
    return QwenFilter(spec.base, spec.adapter, device=spec.device, dtype=spec.dtype, **spec.init)
