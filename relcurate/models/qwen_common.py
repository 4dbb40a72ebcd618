"""Loading and prompting helpers shared by the Qwen2.5-VL filter, captioner and relsim embedder.

Nothing here knows the model size: the same code drives the tiny test models and the real
Qwen2.5-VL-7B-Instruct (bf16, one GPU per process, or `device_map="auto"`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from PIL import Image

from relcurate.models.device import from_pretrained_kwargs

# Qwen2-VL / Qwen2.5-VL chat template as shipped with the official checkpoints (a system turn is
# inserted when the conversation has none). The tiny test processors carry it too, so prompts, and
# hence token positions, are the same as with the real model.
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

DEFAULT_BASE_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"

def size_batches(areas: Sequence[int], batch_size: int, *, max_ratio: float = 1.25) -> list[list[int]]:
    """Indices grouped into batches of similar image area (so similar token counts).

    Sorted by area; a batch closes when full or when the next image is more than `max_ratio`
    times the first one's area, which bounds left-padding waste (padded positions cost a full
    forward pass each) at native resolution. Equal sizes (e.g. 448x448) give full batches.
    """
    if batch_size < 1:
        raise ValueError("batch size must be >= 1")
    batches: list[list[int]] = []
    for i in sorted(range(len(areas)), key=lambda k: areas[k]):
        if batches and len(batches[-1]) < batch_size and areas[i] <= max_ratio * areas[batches[-1][0]]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def load_processor(path: str | Path, *, padding_side: str = "left"):
    """AutoProcessor with left padding: batched prompts then all end at the last position."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(path))
    processor.tokenizer.padding_side = padding_side
    return processor


def load_qwen(
    model_path: str | Path,
    *,
    adapter_path: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    device_map: str | dict | None = None,
    is_trainable: bool = False,
    **model_kwargs: Any,
):
    """Qwen2.5-VL (optionally with a peft adapter on top), in eval mode unless trainable."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        str(model_path), **from_pretrained_kwargs(device, dtype, device_map), **model_kwargs
    )
    if adapter_path is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=is_trainable)
    if not is_trainable:
        model.eval()
    return model


def input_device(model: torch.nn.Module) -> torch.device:
    """Device of the token embeddings: where inputs must go (also with a device_map split).

    Not `.weight.device`: on peft's trainable-tokens wrapper `.weight` rebuilds the whole matrix.
    """
    return next(model.get_input_embeddings().parameters()).device


def to_device(batch: Any, device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in dict(batch).items()}


def single_token_id(tokenizer, text: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{text!r} is not a single token for this tokenizer: {ids}")
    return ids[0]


def limit_pixels(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """RGB copy scaled down (aspect kept) to at most `max_pixels`; `None` keeps the native size.

    The real processor accepts up to ~12.8 MP (~16k visual tokens); bounding it here keeps the
    filter/captioner cost predictable on large pools.
    """
    image = image.convert("RGB")
    if max_pixels is None or image.width * image.height <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (image.width * image.height))
    size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def user_turn(images: Iterable[Image.Image], text: str | None) -> list[dict[str, Any]]:
    """One user message: the images in order, then the text."""
    content: list[dict[str, Any]] = [{"type": "image", "image": im} for im in images]
    if text:
        content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def encode_prompts(
    processor,
    conversations: Sequence[list[dict[str, Any]]],
    *,
    add_generation_prompt: bool = True,
    cut_after: str | None = None,
):
    """Chat-template and tokenize a batch of conversations (left padded, with their images).

    `cut_after` truncates each templated text right after the first occurrence of that string (the
    relsim query token must be the last position). The processor's output, `mm_token_type_ids`
    included, is returned whole so it can be splatted into the model (`**batch`).
    """
    texts, images = [], []
    for conv in conversations:
        text = processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=add_generation_prompt)
        if cut_after is not None:
            text = text[: text.index(cut_after) + len(cut_after)]
        texts.append(text)
        for message in conv:
            if isinstance(message["content"], list):
                images += [c["image"] for c in message["content"] if c.get("type") == "image"]
    return processor(text=texts, images=images or None, padding=True, return_tensors="pt")
