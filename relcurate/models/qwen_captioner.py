"""Anonymous captions with Qwen2.5-VL: one per image, or one shared by a whole seed group.

Single images use the reference captioner's prompt verbatim. A group is shown in one multi-image
prompt and asked for a single caption whose {Placeholders} cover what varies between members.
Generation is batched (left padding), greedy by default; sampling is configurable. Outputs lose
surrounding whitespace and literal quote characters (the seed data wraps captions in quotes).
An optional `checker` (e.g. curation.anonymity.check_caption) runs on every cleaned caption.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from PIL import Image

from relcurate.models.protocols import CAPTION_PROMPT, GROUP_CAPTION_PROMPT
from relcurate.models.qwen_common import (
    encode_prompts,
    input_device,
    limit_pixels,
    load_processor,
    load_qwen,
    to_device,
    size_batches,
    user_turn,
)

_QUOTE_PAIRS = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "`": "`", "„": "“"}
_LONE_QUOTES = '"“”«»`'  # not the apostrophe: "the cats'" must survive


def clean_caption(text: str) -> str:
    """Strip whitespace and literal quotes around a caption (also a lone quote left by truncation)."""
    text = text.strip()
    while len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text.strip(_LONE_QUOTES).strip()


@dataclass(frozen=True)
class GenerationSettings:
    """Greedy by default; `do_sample=True` uses temperature/top_p."""

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float | None = None  # None: keep the model's generation_config value
    seed: int | None = None  # sampling seed, for reproducible sampled captions


@dataclass(frozen=True)
class CaptionResult:
    text: str  # cleaned caption
    raw: str  # decoded model output
    check: Any = None  # the checker's verdict, if a checker was given
    confidence: float | None = None  # mean log-probability of the generated tokens (<= 0)


class QwenCaptioner:
    """`Captioner` backed by Qwen2.5-VL (+ optional LoRA adapter)."""

    def __init__(
        self,
        model_path: str | Path,
        adapter_path: str | Path | None = None,
        *,
        processor_path: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        device_map: str | dict | None = None,
        batch_size: int = 4,
        max_pixels: int | None = 768 * 768,
        group_max_pixels: int | None = 448 * 448,
        generation: GenerationSettings | None = None,
        prompt: str = CAPTION_PROMPT,
        group_prompt: str = GROUP_CAPTION_PROMPT,
        checker: Callable[[str], Any] | None = None,
        model: Any = None,
        processor: Any = None,
    ) -> None:
        self.processor = processor or load_processor(processor_path or model_path)
        self.model = model or load_qwen(model_path, adapter_path=adapter_path, device=device, dtype=dtype,
                                        device_map=device_map)  # fmt: skip
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.group_max_pixels = group_max_pixels
        self.generation = generation or GenerationSettings()
        self.prompt = prompt
        self.group_prompt = group_prompt
        self.checker = checker

    # ------------------------------------------------------------------ public API
    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        return [r.text for r in self.caption_results(images)]

    def caption_group(self, images: Sequence[Image.Image]) -> str:
        return self.caption_group_result(images).text

    def caption_results(self, images: Sequence[Image.Image]) -> list[CaptionResult]:
        """One cleaned (and checked) caption per image, in input order."""
        fitted = [limit_pixels(im, self.max_pixels) for im in images]
        out: list[tuple[str, float | None]] = [("", None)] * len(fitted)
        for idx in size_batches([im.width * im.height for im in fitted], self.batch_size):
            convs = [user_turn([fitted[i]], self.prompt) for i in idx]
            for i, gen in zip(idx, self._generate(convs)):
                out[i] = gen
        return [self._result(*gen) for gen in out]

    def caption_group_result(self, images: Sequence[Image.Image]) -> CaptionResult:
        """One caption for all images together (a single multi-image prompt)."""
        if len(images) == 0:
            raise ValueError("caption_group needs at least one image")
        fitted = [limit_pixels(im, self.group_max_pixels) for im in images]
        conv = user_turn(fitted, self.group_prompt.format(n=len(fitted)))
        return self._result(*self._generate([conv])[0])

    # ------------------------------------------------------------------ internals
    def _result(self, raw: str, confidence: float | None = None) -> CaptionResult:
        text = clean_caption(raw)
        return CaptionResult(text=text, raw=raw, check=self.checker(text) if self.checker else None,
                             confidence=confidence)

    def _generation_config(self):
        s = self.generation
        gc = copy.deepcopy(self.model.generation_config)
        gc.max_new_tokens = s.max_new_tokens
        gc.do_sample = s.do_sample
        if s.do_sample:
            gc.temperature, gc.top_p, gc.top_k = s.temperature, s.top_p, None
        else:  # unset sampling knobs so greedy decoding raises no "flag ignored" warnings
            gc.temperature = gc.top_p = gc.top_k = None
        if s.repetition_penalty is not None:
            gc.repetition_penalty = s.repetition_penalty
        if gc.pad_token_id is None:
            gc.pad_token_id = self.processor.tokenizer.pad_token_id
        return gc

    @torch.inference_mode()
    def _generate(self, conversations: list[list[dict]]) -> list[tuple[str, float | None]]:
        """(decoded new tokens, their mean log-probability) per conversation."""
        batch = encode_prompts(self.processor, conversations, add_generation_prompt=True)
        batch = to_device(batch, input_device(self.model))
        if self.generation.do_sample and self.generation.seed is not None:
            torch.manual_seed(self.generation.seed)
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(**batch, generation_config=self._generation_config(),
                                      return_dict_in_generate=True, output_logits=True)
        finally:
            self.model.train(was_training)
        new_tokens = out.sequences[:, batch["input_ids"].shape[1] :]
        texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        return list(zip(texts, self._mean_logprob(new_tokens, out.logits)))

    def _mean_logprob(self, tokens: torch.Tensor, logits: tuple[torch.Tensor, ...] | None) -> list[float | None]:
        """Mean log-probability (the model's raw logits, before any sampling warpers) of each row's
        tokens up to and including its first end token; padding after it is not counted."""
        if not logits:
            return [None] * tokens.shape[0]
        steps = min(len(logits), tokens.shape[1])
        lp = torch.stack([torch.log_softmax(logits[t].float(), dim=-1).gather(1, tokens[:, t : t + 1].to(logits[t].device))
                          .squeeze(1).cpu() for t in range(steps)], dim=1)
        eos = self._generation_config().eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        out: list[float | None] = []
        for row in range(tokens.shape[0]):
            ids = tokens[row, :steps].tolist()
            end = next((t + 1 for t, tok in enumerate(ids) if tok in eos), steps)
            out.append(float(lp[row, :end].mean()) if end else None)
        return out


def load_backend(spec) -> QwenCaptioner:
    """Backend "qwen-captioner" (models/backends.py); the caller may pass `checker=` in init."""
    return QwenCaptioner(spec.base, spec.adapter, device=spec.device, dtype=spec.dtype, **spec.init)
