"""QwenCaptioner on a tiny real-class Qwen2.5-VL: prompts, batching, cleaning, checker hook."""
from __future__ import annotations

import pytest

from relcurate.testing.models import noise_images
from relcurate.models.protocols import Captioner
from relcurate.models.qwen_captioner import (
    CAPTION_PROMPT,
    GenerationSettings,
    QwenCaptioner,
    clean_caption,
)
from relcurate.models.qwen_common import encode_prompts, user_turn


@pytest.fixture(scope="module")
def captioner(tiny_qwen):
    return QwenCaptioner(tiny_qwen, batch_size=3, generation=GenerationSettings(max_new_tokens=6))


@pytest.mark.parametrize(
    "raw, clean",
    [
        ('  "A {Object} shaped like a {Shape}"  ', "A {Object} shaped like a {Shape}"),
        ("“{Animal} made of {Food}”\n", "{Animal} made of {Food}"),
        ("'\"nested quotes\"'", "nested quotes"),
        ('"truncated by max tokens', "truncated by max tokens"),
        ("the {Animal}s' {Object}", "the {Animal}s' {Object}"),  # an apostrophe is not a quote
        ("", ""),
    ],
)
def test_clean_caption(raw, clean):
    assert clean_caption(raw) == clean


def test_protocol_and_batched_equals_one_by_one(captioner):
    assert isinstance(captioner, Captioner)
    images = noise_images(4, seed=5)
    batched = captioner.caption(images)
    assert len(batched) == 4 and all(isinstance(c, str) for c in batched)
    assert batched == [captioner.caption([im])[0] for im in images]  # greedy: identical
    assert batched == captioner.caption(images)


def test_confidence_is_the_mean_token_logprob_and_batch_independent(captioner):
    """The captioner loop ranks captions by it: it must not depend on the batch a caption was in
    (left padding, padding after the end token)."""
    images = noise_images(3, seed=9)
    batched = captioner.caption_results(images)
    alone = [captioner.caption_results([im])[0] for im in images]
    for b, a in zip(batched, alone):
        assert b.confidence is not None and b.confidence <= 0.0
        assert b.confidence == pytest.approx(a.confidence, abs=1e-4)
    assert captioner.caption_group_result(images).confidence <= 0.0


def test_single_prompt_is_the_reference_prompt(captioner):
    convs = [user_turn(noise_images(1), CAPTION_PROMPT)]
    batch = encode_prompts(captioner.processor, convs)
    text = captioner.processor.tokenizer.decode(batch["input_ids"][0])
    assert text.endswith("<|vision_end|>" + CAPTION_PROMPT + "<|im_end|>\n<|im_start|>assistant\n")


def test_group_caption_uses_one_multi_image_prompt(captioner):
    seen = []
    original = captioner._generate

    def spy(conversations):
        seen.append(conversations)
        return original(conversations)

    captioner._generate = spy
    try:
        text = captioner.caption_group(noise_images(3, seed=6))
    finally:
        del captioner._generate
    assert isinstance(text, str)
    (convs,) = seen
    assert len(convs) == 1
    content = convs[0][0]["content"]
    assert [c["type"] for c in content] == ["image", "image", "image", "text"]
    assert "group of 3 images" in content[-1]["text"] and "{Object}" in content[-1]["text"]
    with pytest.raises(ValueError):
        captioner.caption_group([])


def test_checker_runs_on_cleaned_outputs(tiny_qwen, captioner):
    checked = []
    withcheck = QwenCaptioner(
        tiny_qwen, model=captioner.model, processor=captioner.processor,
        generation=captioner.generation, checker=lambda t: checked.append(t) or len(t),
    )  # fmt: skip
    results = withcheck.caption_results(noise_images(2, seed=7))
    assert checked == [r.text for r in results]
    assert [r.check for r in results] == [len(r.text) for r in results]
    assert all(r.text == clean_caption(r.raw) for r in results)


def test_sampling_is_configurable_and_seeded(tiny_qwen, captioner):
    settings = GenerationSettings(max_new_tokens=6, do_sample=True, temperature=1.5, top_p=0.95, seed=11)
    sampler = QwenCaptioner(tiny_qwen, model=captioner.model, processor=captioner.processor, generation=settings)
    images = noise_images(2, seed=8)
    assert sampler.caption(images) == sampler.caption(images)
    ids = captioner.processor.tokenizer(sampler.caption(images)[0], add_special_tokens=False)["input_ids"]
    assert len(ids) <= 8  # max_new_tokens respected (decode/re-encode may merge or split a little)
