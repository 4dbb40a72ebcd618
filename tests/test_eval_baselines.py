"""The paper's baselines as registered backends, built tiny and random from config with the real
transformers classes: DINOv2 (CLS token), Qwen-T / CLIP-T (a Qwen caption through CLIP's text
tower); registering the ones whose weights are present locally."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from relcurate.evaluation.methods import register_paper_baselines, resolve_methods
from relcurate.models.caption_text import QWEN_T_PROMPT, cut_words
from relcurate.models.registry import load_model, register_model
from relcurate.testing.models import noise_images


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory) -> Path:
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8)
    path = tmp_path_factory.mktemp("tiny-dinov2")
    Dinov2Model(cfg).save_pretrained(path)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_clip_with_tokenizer(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    cfg = CLIPConfig(text_config={"vocab_size": 99, "hidden_size": 32, "intermediate_size": 64, "eos_token_id": 2,
                                  "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 40},
                     vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                                    "num_hidden_layers": 2, "num_attention_heads": 2}, projection_dim=24)
    path = tmp_path_factory.mktemp("tiny-clip-t")
    CLIPModel(cfg).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, **{chr(97 + i): 3 + i for i in range(26)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                            eos_token="[EOS]").save_pretrained(path)
    return path


def test_dinov2_backend_through_the_registry(sqlite_workspace, tiny_dinov2):
    from transformers import Dinov2Model

    mv = register_model(sqlite_workspace, kind="baseline", name="dinov2", base_model=str(tiny_dinov2),
                        config={"backend": "dinov2"})
    emb = load_model(sqlite_workspace, mv)
    images = noise_images(3, seed=2)
    x = emb.embed(images)
    assert x.shape == (3, 32) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    # The CLS token of last_hidden_state, as the reference computes it.
    pixels = emb.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        cls = Dinov2Model.from_pretrained(tiny_dinov2)(pixel_values=pixels).last_hidden_state[:, 0].numpy()
    cls /= np.linalg.norm(cls, axis=1, keepdims=True)
    assert np.allclose(x, cls, atol=1e-5)
    assert [m.label for m, _ in resolve_methods(sqlite_workspace, None)] == ["dinov2:1"]


def test_caption_text_backend_qwen_t(sqlite_workspace, tiny_qwen_bpe, tiny_clip_with_tokenizer):
    mv = register_model(sqlite_workspace, kind="baseline", name="qwen-t", base_model=str(tiny_qwen_bpe),
                        config={"backend": "caption-text",
                                "init": {"clip": str(tiny_clip_with_tokenizer), "max_new_tokens": 6}})
    emb = load_model(sqlite_workspace, mv)
    assert emb.captioner.prompt == QWEN_T_PROMPT
    x = emb.embed(noise_images(2, seed=1, sizes=[(56, 56), (64, 48)]))
    assert x.shape == (2, 24) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert len(emb.last_captions) == 2
    same = emb.encode_texts(["abc", "abc", "xyz"])
    assert np.allclose(same[0], same[1]) and not np.allclose(same[0], same[2])
    assert cut_words(" ".join(["w"] * 40)) == " ".join(["w"] * 30)
    with pytest.raises(ValueError, match="init.clip"):
        load_model(sqlite_workspace, register_model(sqlite_workspace, kind="baseline", name="bad", base_model="x",
                                                    config={"backend": "caption-text"}))


def test_register_paper_baselines_only_when_present(sqlite_workspace, tiny_dinov2):
    assert register_paper_baselines(sqlite_workspace, resolve=lambda repo: None) == []
    found = {"facebook/dinov2-large": str(tiny_dinov2)}
    added = register_paper_baselines(sqlite_workspace, resolve=found.get)
    assert added == ["dinov2-large:1"]
    assert register_paper_baselines(sqlite_workspace, resolve=found.get) == []  # idempotent
    (m, mv), = resolve_methods(sqlite_workspace, ["dinov2-large"])
    assert mv.config["backend"] == "dinov2" and load_model(sqlite_workspace, mv).dim == 32


def test_a_relsim_checkpoint_is_a_retrieval_method(sqlite_workspace, tiny_qwen_bpe, tmp_path):
    """A relsim version (tiny Qwen2.5-VL, saved in the reference checkpoint layout) loads through
    the registry and models/relsim_checkpoint, and its workspace vectors feed the evaluation."""
    from relcurate.evaluation.methods import method_vectors
    from relcurate.models.relsim_checkpoint import save_relsim_checkpoint
    from relcurate.models.relsim_embedder import RelsimEmbedder
    from relcurate.models.workspace_scoring import usable_images
    from relcurate.testing.groups import populate
    from relcurate.testing.models import perturb_trainable

    emb = RelsimEmbedder.new(tiny_qwen_bpe, image_size=56, batch_size=4)
    perturb_trainable(emb)
    ckpt = save_relsim_checkpoint(emb.eval(), tmp_path / "ckpt")
    populate(sqlite_workspace, tmp_path)
    mv = register_model(sqlite_workspace, kind="relsim", name="relsim-tiny", base_model=str(tiny_qwen_bpe),
                        adapter_path=str(ckpt), config={"init": {"image_size": 56}})
    (method, version), = resolve_methods(sqlite_workspace, ["relsim-tiny"])
    ids = [int(i) for i, _ in usable_images(sqlite_workspace)]
    x = method_vectors(sqlite_workspace, version, ids, batch_size=4)
    assert x.shape == (len(ids), 384) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-4)
    # The vectors are now stored: a second lookup reads them instead of embedding again.
    y = method_vectors(sqlite_workspace, version, ids[:3], embed_missing=False)
    assert np.allclose(y, x[:3], atol=1e-6) and method.kind == "relsim"
