"""tiny.py builds real-class Qwen2.5-VL checkpoints; device.py picks device and dtype."""
from __future__ import annotations

import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

from relcurate.testing.models import noise_images
from relcurate.models.device import from_pretrained_kwargs, resolve_device, resolve_dtype
from relcurate.models.tiny import build_tiny_qwen


def test_real_vocab_ids_match_qwen25(tiny_qwen):
    tok = AutoProcessor.from_pretrained(tiny_qwen).tokenizer
    assert len(tok) == 151665  # Qwen2.5-VL's tokenizer size (the Qwen3 extras are dropped)
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>", "<|image_pad|>"]) == [151643, 151645, 151655]
    assert tok.encode("Yes") == [9454] and tok.encode("No") == [2753]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_bpe_vocab_has_single_yes_no_and_loads(tiny_qwen_bpe):
    processor = AutoProcessor.from_pretrained(tiny_qwen_bpe)
    model = AutoModelForImageTextToText.from_pretrained(tiny_qwen_bpe)
    tok = processor.tokenizer
    assert len(tok.encode("Yes")) == 1 and len(tok.encode("No")) == 1
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert model.get_input_embeddings().weight.shape[0] > len(tok)  # a spare row for <|query|>
    conv = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    text = processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    batch = processor(text=[text], images=noise_images(1, sizes=[(64, 64)]), return_tensors="pt")
    assert int((batch["input_ids"] == model.config.image_token_id).sum()) == 4  # 64x64 -> 4 tokens
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[-1] == model.config.text_config.vocab_size


def test_build_is_deterministic_per_seed(tmp_path):
    a = build_tiny_qwen(tmp_path / "a", vocab="bpe", seed=3)
    b = build_tiny_qwen(tmp_path / "b", vocab="bpe", seed=3)
    c = build_tiny_qwen(tmp_path / "c", vocab="bpe", seed=4)
    sa, sb, sc = (load_file(p / "model.safetensors") for p in (a, b, c))
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_device_defaults_and_overrides(monkeypatch):
    assert resolve_dtype("bf16") is torch.bfloat16
    assert resolve_dtype(None, torch.device("cpu")) is torch.float32
    assert resolve_device("cpu") == torch.device("cpu")
    kwargs = from_pretrained_kwargs("cpu", None, None)
    assert kwargs == {"dtype": torch.float32, "device_map": {"": "cpu"}}
    assert from_pretrained_kwargs("cpu", "bf16", "auto")["device_map"] == "auto"
    if not torch.cuda.is_available():
        assert resolve_device() == torch.device("cpu")


def test_size_batches_groups_similar_areas():
    from relcurate.models.qwen_common import size_batches

    assert size_batches([448 * 448] * 5, 2) == [[0, 1], [2, 3], [4]]  # equal sizes: full batches
    areas = [1000, 100, 1100, 120, 5000]
    batches = size_batches(areas, 4)
    assert batches == [[1, 3], [0, 2], [4]]  # no batch mixes areas more than 1.25x apart
    assert sorted(i for b in batches for i in b) == list(range(5))
