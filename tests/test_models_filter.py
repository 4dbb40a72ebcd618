"""QwenFilter on a tiny real-class Qwen2.5-VL: P(Yes) shape, batching, adapter loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from relcurate.testing.models import noise_images, perturb_trainable
from relcurate.models.protocols import FILTER_QUESTION, Filter
from relcurate.models.qwen_filter import QwenFilter


@pytest.fixture(scope="module")
def qfilter(tiny_qwen):
    return QwenFilter(tiny_qwen, batch_size=3)


def test_protocol_shape_and_range(qfilter):
    assert isinstance(qfilter, Filter)
    p = qfilter.predict_proba(noise_images(5))
    assert p.shape == (5,) and p.dtype == np.float32
    assert np.all((p > 0) & (p < 1))
    assert qfilter.predict_proba([]).shape == (0,)


def test_batched_equals_one_by_one_and_is_deterministic(qfilter):
    images = noise_images(5, seed=1)  # varied sizes: left padding differs per batch
    batched = qfilter.predict_proba(images)
    single = np.array([qfilter.predict_proba([im])[0] for im in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_array_equal(batched, qfilter.predict_proba(images))


def test_prompt_is_the_question_then_assistant_turn(qfilter):
    batch = qfilter.prepare(noise_images(2))
    text = qfilter.processor.tokenizer.decode(batch["input_ids"][0])
    assert FILTER_QUESTION in text
    assert text.endswith(FILTER_QUESTION + "<|im_end|>\n<|im_start|>assistant\n")


def test_mm_token_type_ids_are_passed_and_matter(qfilter):
    batch = qfilter.prepare(noise_images(2, seed=2))
    assert "mm_token_type_ids" in batch
    with torch.no_grad():
        full = qfilter.yes_no_logits(batch)
        dropped = qfilter.yes_no_logits({k: v for k, v in batch.items() if k != "mm_token_type_ids"})
    assert not torch.allclose(full, dropped)  # without it transformers falls back to 1-D positions


def test_adapter_is_loaded(tiny_qwen, qfilter, tmp_path):
    from peft import LoraConfig, get_peft_model

    from relcurate.models.qwen_common import load_qwen

    peft_model = get_peft_model(load_qwen(tiny_qwen), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    perturb_trainable(peft_model, scale=0.5)
    peft_model.save_pretrained(tmp_path / "adapter")
    images = noise_images(3, seed=3)
    tuned = QwenFilter(tiny_qwen, tmp_path / "adapter")
    in_memory = QwenFilter(tiny_qwen, model=peft_model.eval(), processor=qfilter.processor)
    np.testing.assert_allclose(tuned.predict_proba(images), in_memory.predict_proba(images), atol=1e-6)
    assert not np.allclose(tuned.predict_proba(images), qfilter.predict_proba(images), atol=1e-6)
