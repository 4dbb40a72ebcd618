"""Caption-based baselines (the paper's Qwen-T / CLIP-T): caption each image with a Qwen2.5-VL
captioner, cut the caption to 30 words, and embed it with CLIP's text tower.

- Qwen-T: the base Qwen2.5-VL with the paper's abstract-description prompt (`QWEN_T_PROMPT`).
- CLIP-T (as relcurate registers it): the same pipeline with the anonymous captioner (its LoRA
  adapter and the reference's single-image prompt: `prompt="anonymous"`); the paper does not
  publish its exact CLIP-T recipe, so this is a documented choice.

Backend "caption-text": `spec.base` / `spec.adapter` = the captioner, `init["clip"]` = a local
CLIP folder (its tokenizer too, unless `init["tokenizer"]` names another).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from relcurate.models.protocols import CAPTION_PROMPT

QWEN_T_PROMPT = ("Describe this image in an abstract manner, focusing on the relationships and structures "
                 "within it rather than on specific attributes or semantic content. Use no more than 30 words.")
PROMPTS = {"qwen-t": QWEN_T_PROMPT, "anonymous": CAPTION_PROMPT}
MAX_WORDS = 30


def cut_words(text: str, n: int = MAX_WORDS) -> str:
    return " ".join(text.split()[:n])


class CaptionTextEmbedder:
    def __init__(self, captioner, clip_path: str | Path, *, tokenizer: str | Path | None = None,
                 device=None, batch_size: int = 32, name: str = "caption-text") -> None:
        import torch
        from transformers import AutoTokenizer, CLIPModel

        self.name = name
        self.captioner = captioner
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer or clip_path))
        self.model = CLIPModel.from_pretrained(str(clip_path)).to(self.device).eval()
        self.dim: int = int(self.model.config.projection_dim)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)
        self.last_captions: list[str] = []

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), self.dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                feats = self.model.get_text_features(input_ids=batch["input_ids"],
                                                     attention_mask=batch.get("attention_mask"))
                if not isinstance(feats, torch.Tensor):
                    feats = feats.pooler_output
                out[start:start + len(feats)] = feats.float().cpu().numpy()
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        captions = [cut_words(c) for c in self.captioner.caption(list(images))]
        self.last_captions = captions
        return self.encode_texts(captions)


def load_backend(spec) -> CaptionTextEmbedder:
    from relcurate.models.qwen_captioner import GenerationSettings, QwenCaptioner

    init = dict(spec.init)
    clip = init.pop("clip", None)
    if not clip:
        raise ValueError(f"model {spec.label}: the caption-text backend needs init.clip (a local CLIP folder)")
    prompt = init.pop("prompt", "qwen-t")
    captioner = QwenCaptioner(spec.base, spec.adapter, device=spec.device, dtype=spec.dtype,
                              prompt=PROMPTS.get(prompt, prompt),
                              generation=GenerationSettings(max_new_tokens=int(init.pop("max_new_tokens", 64))),
                              batch_size=int(init.pop("caption_batch_size", 4)))
    return CaptionTextEmbedder(captioner, clip, tokenizer=init.pop("tokenizer", None), device=spec.device,
                               name=init.pop("name", "caption-text"), **init)
