"""The query-only last decoder layer (models/query_only_layer.py) against the full forward on a
tiny Qwen2.5-VL: same embeddings, same gradients (LoRA on q/v and on every linear layer, the
trainable <|query|> row, the projection), with padding, with gradient checkpointing."""
from __future__ import annotations

import pytest
import torch

from relcurate.models.query_only_layer import QueryOnlyQwen2_5_VLDecoderLayer
from relcurate.models.relsim_embedder import LORA_TARGETS, TINY_ALL_TARGETS, RelsimEmbedder
from relcurate.testing.models import noise_images, perturb_trainable

SIZE = 56


def _embedder(base, **kw) -> RelsimEmbedder:
    # no LoRA dropout: the fast path draws dropout masks for fewer rows, so train-mode values would
    # differ by the random draw alone
    emb = RelsimEmbedder.new(base, image_size=SIZE, lora_dropout=0.0, seed=3, **kw)
    perturb_trainable(emb, seed=4)  # LoRA B starts at zero: perturb so every adapter matters
    return emb


def _final_norm_rows(emb: RelsimEmbedder, batch) -> int:
    """How many positions reach the model's final norm in one forward (1 on the fast path)."""
    seen = []
    norm = emb._backbone().language_model.norm
    handle = norm.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            emb.forward_embeddings(batch)
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize("native", [False, True], ids=["square", "native-padded"])
def test_fast_path_embedding_equals_full_forward(tiny_qwen, native):
    emb = _embedder(tiny_qwen).eval()
    emb.image_size = None if native else SIZE
    batch = emb.prepare(noise_images(3, seed=11))
    assert bool((batch["attention_mask"] == 0).any()) == native  # left padding exercised once
    layer = emb._backbone().language_model.layers[-1]
    assert emb.query_only_last_layer and type(layer) is QueryOnlyQwen2_5_VLDecoderLayer
    assert _final_norm_rows(emb, batch) == 1
    with torch.no_grad():
        fast = emb.forward_embeddings(batch)
        assert emb.use_query_only_last_layer(False) is False
        assert _final_norm_rows(emb, batch) == batch["input_ids"].shape[1]
        full = emb.forward_embeddings(batch)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-6)
    emb.use_query_only_last_layer(True)
    np_fast = emb.embed(noise_images(3, seed=11))
    torch.testing.assert_close(torch.from_numpy(np_fast), full, rtol=1e-5, atol=1e-6)


def _grads(emb: RelsimEmbedder, batch, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    emb.zero_grad(set_to_none=True)
    (emb.forward_embeddings(batch) * weights).sum().backward()
    return {n: p.grad.clone() for n, p in emb.named_parameters() if p.requires_grad and p.grad is not None}


@pytest.mark.parametrize("targets", [LORA_TARGETS, TINY_ALL_TARGETS], ids=["q-v", "all-linear"])
def test_fast_path_gradients_equal_full_forward(tiny_qwen, targets):
    emb = _embedder(tiny_qwen, target_modules=targets).train()
    batch = emb.prepare(noise_images(3, seed=12))
    weights = torch.randn(3, emb.dim, generator=torch.Generator().manual_seed(0))
    fast = _grads(emb, batch, weights)
    emb.use_query_only_last_layer(False)
    full = _grads(emb, batch, weights)
    assert fast.keys() == full.keys()
    last = f"layers.{len(emb._backbone().language_model.layers) - 1}."
    learned = [n for n in full if "lora_B" in n and last in n]
    assert any("q_proj" in n for n in learned) and any("v_proj" in n for n in learned)
    assert any("trainable_tokens_delta" in n for n in full) and "projection.weight" in full
    for name in full:
        torch.testing.assert_close(fast[name], full[name], rtol=1e-4, atol=1e-6, msg=name)
    assert all(full[n].abs().sum() > 0 for n in learned)


def test_fast_path_with_gradient_checkpointing(tiny_qwen):
    plain = _embedder(tiny_qwen).train()
    ckpt = _embedder(tiny_qwen, gradient_checkpointing=True).train()
    layer = ckpt._backbone().language_model.layers[-1]
    assert layer.gradient_checkpointing and type(layer) is QueryOnlyQwen2_5_VLDecoderLayer
    batch = plain.prepare(noise_images(2, seed=13))
    weights = torch.randn(2, plain.dim, generator=torch.Generator().manual_seed(1))
    plain.use_query_only_last_layer(False)
    full, recomputed = _grads(plain, batch, weights), _grads(ckpt, batch, weights)
    assert full.keys() == recomputed.keys()
    for name in full:
        torch.testing.assert_close(recomputed[name], full[name], rtol=1e-4, atol=1e-6, msg=name)


def test_fast_path_survives_an_accelerate_hook(tiny_qwen):
    """A device_map puts an accelerate hook on each layer, which binds the layer's forward then."""
    from accelerate.hooks import ModelHook, add_hook_to_module

    emb = _embedder(tiny_qwen).eval()
    emb.use_query_only_last_layer(False)
    add_hook_to_module(emb._backbone().language_model.layers[-1], ModelHook())
    batch = emb.prepare(noise_images(2, seed=14))
    assert _final_norm_rows(emb, batch) == batch["input_ids"].shape[1]
    emb.use_query_only_last_layer(True)
    assert _final_norm_rows(emb, batch) == 1


@pytest.mark.parametrize("targets", [LORA_TARGETS, TINY_ALL_TARGETS], ids=["frozen-vision", "vision-lora"])
def test_gradient_checkpointing_leaves_a_frozen_vision_tower_out_of_autograd(tiny_qwen, targets):
    """Non-reentrant checkpointing needs no requires-grad inputs; transformers' input hooks would
    otherwise make the frozen vision tower build a graph, be recomputed and run backward."""
    emb = _embedder(tiny_qwen, target_modules=targets, gradient_checkpointing=True).train()
    seen = []
    emb._backbone().visual.register_forward_hook(lambda m, a, out: seen.append(out.pooler_output[0].requires_grad))
    emb.forward_embeddings(emb.prepare(noise_images(2, seed=15))).sum().backward()
    vision_trained = targets == TINY_ALL_TARGETS
    assert seen == [vision_trained]
    vision_grads = [p.grad for n, p in emb.named_parameters() if p.requires_grad and "visual" in n]
    assert bool(vision_grads) == vision_trained and all(g is not None and g.abs().sum() > 0 for g in vision_grads)
    delta = next(p for n, p in emb.named_parameters() if "trainable_tokens_delta" in n)
    assert delta.grad is not None and delta.grad.abs().sum() > 0  # the text side still learns
