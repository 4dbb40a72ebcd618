"""The three model roles (plus the text encoder) as small protocols.

Every consumer (curation, training, UI) talks to these, never to a backend class, so a tiny
test model, a baseline and the real Qwen2.5-VL-7B are interchangeable.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image

FILTER_QUESTION = (
    "Can you see any relational pattern, logic, or structure in this image that could be useful "
    "for creating or linking to another image?"
)

# The reference captioner's single-image prompt, verbatim (training and inference).
CAPTION_PROMPT = (
    "You are given a single image.\n"
    "Carefully analyze it to understand its underlying logic, layout, structure, or creative concept. "
    "Then generate a single, reusable anonymous caption that could describe any image following the "
    "same concept.\n"
    "The caption must:\n"
    "- Fully capture the general logic or analogy of the image.\n"
    "- Include placeholders (e.g., {Object}, {Word}, {Character}, {Meaning}, {Color}, etc.) wherever "
    "variations can occur.\n"
    "- Be concise and standalone.\n"
    "Important: Only output the anonymous caption. Do not provide any explanations or additional text."
)

GROUP_CAPTION_PROMPT = (
    "You are given a group of {n} images that all follow the same underlying concept.\n"
    "Carefully analyze them together to find the logic, layout, structure, or creative concept they "
    "share. Then generate a single, reusable anonymous caption that describes every image in the group "
    "and any other image following the same concept.\n"
    "The caption must:\n"
    "- Capture the logic or analogy common to all the images, not details of any single one.\n"
    "- Use placeholders (e.g., {{Object}}, {{Word}}, {{Character}}, {{Meaning}}, {{Color}}, etc.) for "
    "everything that differs between the images; use the same placeholder name for the same role.\n"
    "- Be concise and standalone.\n"
    "Important: Only output the anonymous caption. Do not provide any explanations or additional text."
)


@runtime_checkable
class Filter(Protocol):
    """Interesting-image filter: P(Yes) to the paper's question, one float per image."""

    def predict_proba(self, images: Sequence[Image.Image]) -> np.ndarray: ...


@runtime_checkable
class Captioner(Protocol):
    """Anonymous captions: one per single image, or one for a whole seed group."""

    def caption(self, images: Sequence[Image.Image]) -> list[str]: ...

    def caption_group(self, images: Sequence[Image.Image]) -> str: ...


@runtime_checkable
class Embedder(Protocol):
    """Image -> L2-normalised float32 vectors of size `dim` (relsim, CLIP, attribute baseline)."""

    name: str
    dim: int

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray: ...


@runtime_checkable
class TextEncoder(Protocol):
    """Text -> L2-normalised float32 vectors (all-MiniLM-L6-v2: 384-d)."""

    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...
