"""Checkpoint interop with the reference package `relsim` 0.1.0 (PyPI), both directions.

The reference is run unmodified; only its module globals are patched, inside these tests:

1. `Qwen2_5_VLForConditionalGeneration.from_pretrained` -> it hard-codes
   "Qwen/Qwen2.5-VL-7B-Instruct" in bf16; we load the tiny model instead, in float32 so the
   comparison is exact (our CPU default is float32 too).
2. transformers 5 API drift: the processor now also returns `mm_token_type_ids`, and the
   reference's `QwenWithQueryToken.forward(input_ids, attention_mask, pixel_values, image_grid_thw)`
   would raise TypeError on it. We switch that output off (`return_mm_token_type_ids=False`) and
   give the model a forward pre-hook that rebuilds it from `input_ids` (image token -> 1), which is
   how transformers 4.57 (the reference's pin) derived the M-RoPE positions. Without the hook
   transformers 5 would silently use 1-D positions.
3. `QwenWithQueryToken` hard-codes `hidden_size=3584` for its projection; the subclass reads it
   from the model config (the tiny model's hidden size is 64).

Inputs are 56x56 images with our embedder at image_size=56, so our centre-crop+resize is the
identity and the reference's native-resolution scoring sees the same pixels (as 448x448 would for
the 7B). The reference also needs `qwen-vl-utils` (installed with --no-deps, see requirements-dev).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from relcurate.testing.models import noise_images, perturb_trainable
from relcurate.models.relsim_checkpoint import _saved_embedding_rows, load_relsim_checkpoint, save_relsim_checkpoint
from relcurate.models.relsim_embedder import RelsimEmbedder

relsim = pytest.importorskip("relsim", reason="reference package relsim==0.1.0 not installed")
rs = pytest.importorskip("relsim.relsim_score")
from relsim.relsim_model import QwenWithQueryToken  # noqa: E402

SIZE = 56


def _add_mm_token_type_ids(module, args, kwargs):
    ids = kwargs.get("input_ids")
    if ids is not None and kwargs.get("mm_token_type_ids") is None:
        kwargs["mm_token_type_ids"] = (ids == module.config.image_token_id).int()
    return args, kwargs


def _reference_base(path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    model.register_forward_pre_hook(_add_mm_token_type_ids, with_kwargs=True)
    return model


def _reference_processor(path):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(path)
    processor.return_mm_token_type_ids = False
    return processor


class _QueryWrapper(QwenWithQueryToken):
    def __init__(self, base_model, processor, hidden_size=3584):
        hidden = base_model.get_base_model().config.get_text_config().hidden_size
        super().__init__(base_model, processor, hidden_size=hidden)


@pytest.fixture
def patched_reference(monkeypatch, tiny_qwen):
    class BaseShim:
        @staticmethod
        def from_pretrained(name, **kwargs):
            assert name == "Qwen/Qwen2.5-VL-7B-Instruct"  # the reference's hard-coded base
            return _reference_base(tiny_qwen)

    class ProcessorShim:
        @staticmethod
        def from_pretrained(path, **kwargs):
            return _reference_processor(path)

    monkeypatch.setattr(rs, "Qwen2_5_VLForConditionalGeneration", BaseShim)
    monkeypatch.setattr(rs, "AutoProcessor", ProcessorShim)
    monkeypatch.setattr(rs, "QwenWithQueryToken", _QueryWrapper)
    return rs


def _reference_embed(api, images):
    return np.concatenate([api.embed(img).cpu().numpy() for img in images])


def test_reference_loader_reads_our_checkpoint(patched_reference, tiny_qwen, tmp_path):
    ours = RelsimEmbedder.new(tiny_qwen, image_size=SIZE)
    perturb_trainable(ours)  # LoRA, the <|query|> row and the projection all differ from init
    save_relsim_checkpoint(ours.eval(), tmp_path / "ours")

    model, preprocess = relsim.relsim(pretrained=True, checkpoint_dir=str(tmp_path / "ours"))
    images = noise_images(3, sizes=[(SIZE, SIZE)] * 3)
    theirs = _reference_embed(model, [preprocess(im) for im in images])
    np.testing.assert_allclose(ours.embed(images), theirs, atol=1e-5)
    assert model(preprocess(images[0]), preprocess(images[1])) == pytest.approx(ours.score(images[0], images[1]), abs=1e-5)


@pytest.mark.parametrize("save_embedding_layers", ["auto", True])
def test_our_loader_reads_a_reference_checkpoint(tiny_qwen, tmp_path, save_embedding_layers):
    """Train-side layout of relsim/train_relsim.py: LoRA first, then the query token (and a resize
    to len(tokenizer)), then the same three save calls. With True, peft also stores the resized
    full embedding matrices, as it does whenever it detects a vocabulary change."""
    from peft import LoraConfig, get_peft_model

    processor = _reference_processor(tiny_qwen)
    base = get_peft_model(
        _reference_base(tiny_qwen),
        LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], lora_dropout=0.05,
                   bias="none", task_type="CAUSAL_LM"),
    )  # fmt: skip
    model = _QueryWrapper(base, processor)
    perturb_trainable(model, seed=2)
    model.eval()
    out = tmp_path / "reference"
    os.makedirs(out)
    model.base_model.save_pretrained(out, save_embedding_layers=save_embedding_layers)
    torch.save({"projection": model.projection.state_dict(), "query_token_id": model.query_token_id,
                "global_step": 500, "epoch": 0}, out / "projection_and_config.pt")  # fmt: skip
    processor.save_pretrained(out)
    # the reference shrank 152,064 rows to len(tokenizer); with True the adapter carries them
    assert _saved_embedding_rows(out) == (151666 if save_embedding_layers is True else None)

    images = noise_images(3, seed=4, sizes=[(SIZE, SIZE)] * 3)
    theirs = _reference_embed(rs._RelSimClass(model, processor), images)
    loaded = load_relsim_checkpoint(out, tiny_qwen, image_size=SIZE)
    assert loaded.query_token_id == model.query_token_id == 151665
    np.testing.assert_allclose(loaded.embed(images), theirs, atol=1e-5)
