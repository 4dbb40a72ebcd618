"""RelsimEmbedder on a tiny real-class Qwen2.5-VL: shapes, batching, query position, training
hooks, preprocessing, save/load in the relsim layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from relcurate.testing.models import noise_images, perturb_trainable
from relcurate.models.protocols import Embedder
from relcurate.models.relsim_checkpoint import (
    PROJECTION_FILE,
    describe_checkpoint,
    load_relsim_checkpoint,
    save_relsim_checkpoint,
    read_projection_config,
)
from relcurate.models.relsim_embedder import QUERY_TOKEN, RelsimEmbedder, relsim_preprocess

SIZE = 56  # 56x56 -> 4 visual tokens: fast; the 448 default is exercised by bench/embed.py


@pytest.fixture(scope="module")
def trained(tiny_qwen):
    """A 'trained' embedder: fresh LoRA/query/projection, then perturbed."""
    emb = RelsimEmbedder.new(tiny_qwen, image_size=SIZE, batch_size=3)
    perturb_trainable(emb)
    return emb.eval()


def test_protocol_shape_and_norm(trained):
    assert isinstance(trained, Embedder)
    assert trained.name == "relsim" and trained.dim == 384
    e = trained.embed(noise_images(4))
    assert e.shape == (4, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert trained.embed([]).shape == (0, 384)


def test_batched_equals_one_by_one_and_is_deterministic(trained):
    images = noise_images(5, seed=1)
    batched = trained.embed(images)
    single = np.concatenate([trained.embed([im]) for im in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_array_equal(batched, trained.embed(images))


def test_native_resolution_batches_with_padding(tiny_qwen, trained):
    native = RelsimEmbedder(trained.model, trained.processor, trained.projection,
                            query_token_id=trained.query_token_id, image_size=None, batch_size=4)  # fmt: skip
    images = noise_images(4, seed=2)  # different sizes -> different token counts -> left padding
    batch = native.prepare(images)
    assert (batch["attention_mask"] == 0).any()
    np.testing.assert_allclose(native.embed(images), np.concatenate([native.embed([im]) for im in images]), atol=1e-5)


def test_query_token_is_last_after_the_image(trained):
    batch = trained.prepare(noise_images(3, seed=3))
    ids = batch["input_ids"]
    assert (ids[:, -1] == trained.query_token_id).all()
    assert trained.processor.tokenizer.convert_ids_to_tokens(int(ids[0, -2])) == "<|vision_end|>"
    assert trained.query_token_id == 151665  # the reference checkpoint's id, tokenizer untouched otherwise
    assert int((ids == trained.query_token_id).sum()) == 3
    bad = {k: v for k, v in batch.items()}
    bad["input_ids"] = torch.roll(ids, 1, dims=1)
    with pytest.raises(ValueError, match="last token"):
        trained.forward_embeddings(bad)


def test_mm_token_type_ids_are_passed_and_matter(trained):
    batch = trained.prepare(noise_images(2, seed=4))
    assert "mm_token_type_ids" in batch
    with torch.no_grad():
        full = trained.forward_embeddings(batch)
        dropped = trained.forward_embeddings({k: v for k, v in batch.items() if k != "mm_token_type_ids"})
    assert not torch.allclose(full, dropped, atol=1e-4)


def test_preprocessing_centre_crops_then_resizes():
    image = Image.new("RGB", (300, 100), "blue")
    image.paste(Image.new("RGB", (100, 100), "red"), (100, 0))  # the centre square is red
    out = relsim_preprocess(image, 56)
    assert out.size == (56, 56) and out.getpixel((28, 28)) == (255, 0, 0)
    assert out.getpixel((0, 28))[0] > 200  # the blue sides were cropped away
    rgba = Image.new("RGBA", (40, 30))
    assert relsim_preprocess(rgba, None).size == (40, 30) and relsim_preprocess(rgba, None).mode == "RGB"


def test_trainable_parts_and_gradients(tiny_qwen):
    emb = RelsimEmbedder.new(tiny_qwen, image_size=SIZE)
    names = [n for n, p in emb.named_parameters() if p.requires_grad]
    assert any("lora_A" in n and "q_proj" in n for n in names) and any("v_proj" in n for n in names)
    assert any("trainable_tokens_delta" in n for n in names)
    assert "projection.weight" in names
    assert not any("visual" in n for n in names) and not any("lm_head" in n for n in names)
    emb.train()
    loss = emb.forward_embeddings(emb.prepare(noise_images(2, seed=5)))[:, 0].sum()
    loss.backward()
    delta = next(p for n, p in emb.named_parameters() if "trainable_tokens_delta" in n)
    assert delta.grad is not None and delta.grad.abs().sum() > 0  # the <|query|> row learns
    assert emb.projection.weight.grad.abs().sum() > 0


def test_score_and_score_many(trained):
    a, b, c = noise_images(3, seed=6)
    e = trained.embed([a, b, c])
    assert trained.score(a, b) == pytest.approx(float(e[0] @ e[1]), abs=1e-5)
    assert trained.score(a, a) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(trained.score_many([a, b], [c, a]), [e[0] @ e[2], e[1] @ e[0]], atol=1e-5)


def test_save_load_roundtrip_is_identical(tiny_qwen, trained, tmp_path):
    out = save_relsim_checkpoint(trained, tmp_path / "ckpt", global_step=7)
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", PROJECTION_FILE):
        assert (out / name).exists()
    cfg = read_projection_config(out)
    assert cfg["query_token_id"] == trained.query_token_id and cfg["global_step"] == 7
    assert tuple(cfg["projection"]["weight"].shape) == (384, 64)
    info = describe_checkpoint(out)
    assert info["lora_r"] == 16 and info["lora_alpha"] == 32 and sorted(info["target_modules"]) == ["q_proj", "v_proj"]
    images = noise_images(4, seed=7)
    loaded = load_relsim_checkpoint(out, tiny_qwen)
    assert loaded.image_size == SIZE  # recorded in our checkpoint
    np.testing.assert_allclose(loaded.embed(images), trained.embed(images), atol=1e-6)
    fresh = RelsimEmbedder.new(tiny_qwen, image_size=SIZE)
    assert not np.allclose(fresh.embed(images), trained.embed(images), atol=1e-4)


def test_fully_trained_vision_tower_saves_and_loads(tiny_qwen, tmp_path):
    """modules_to_save (the synthetic proof's vision tower trained in full, LoRA on the text layers
    only): every vision weight learns, and the saved copy is what a loader reads back."""
    from relcurate.models.relsim_embedder import TINY_FULL_VISION, TINY_TEXT_TARGETS

    emb = RelsimEmbedder.new(tiny_qwen, image_size=SIZE, target_modules=TINY_TEXT_TARGETS,
                             modules_to_save=TINY_FULL_VISION)
    names = [n for n, p in emb.named_parameters() if p.requires_grad]
    assert any("visual" in n and "patch_embed" in n for n in names) and any("visual" in n and "norm" in n for n in names)
    assert not any("visual" in n and "lora_" in n for n in names)  # the tower is trained in full, not LoRA'd
    assert any("language_model" in n and "lora_A" in n and "gate_proj" in n for n in names)
    perturb_trainable(emb)
    emb.eval()
    out = save_relsim_checkpoint(emb, tmp_path / "ckpt")
    images = noise_images(3, seed=9)
    np.testing.assert_allclose(load_relsim_checkpoint(out, tiny_qwen).embed(images), emb.embed(images), atol=1e-6)


def test_loader_rejects_mismatched_query_id(tiny_qwen, trained, tmp_path):
    out = save_relsim_checkpoint(trained, tmp_path / "ckpt")
    cfg = read_projection_config(out)
    cfg["query_token_id"] = 5
    torch.save(cfg, out / PROJECTION_FILE)
    with pytest.raises(ValueError, match=QUERY_TOKEN.replace("|", r"\|")):
        load_relsim_checkpoint(out, tiny_qwen)


def test_query_row_lookup_matches_peft_layer(trained):
    """Our copy-free lookup of the trainable <|query|> row gives exactly peft's values."""
    ids = trained.prepare(noise_images(2, seed=8))["input_ids"]
    layer = trained._backbone().get_input_embeddings()
    assert hasattr(layer, "token_adapter")  # the fast path is really taken
    with torch.no_grad():
        fast, reference = trained._input_embeddings(ids), layer(ids)
        base_row = layer.token_adapter.base_layer.weight[trained.query_token_id]
    torch.testing.assert_close(fast, reference, rtol=0, atol=0)
    assert not torch.equal(fast[0, -1], base_row)  # the perturbed (trained) row is used


def test_frozen_query_token_option(tiny_qwen):
    emb = RelsimEmbedder.new(tiny_qwen, image_size=SIZE, train_query_token=False)
    names = [n for n, p in emb.named_parameters() if p.requires_grad]
    assert not any("trainable_tokens" in n for n in names) and any("lora_B" in n for n in names)
    assert emb.embed(noise_images(1)).shape == (1, 384)


def test_embed_never_rebuilds_the_embedding_matrix(trained, monkeypatch):
    """peft's get_merged_weights copies vocab x hidden (2 GB for the 7B in fp32) on every call."""
    adapter = trained._backbone().get_input_embeddings().token_adapter

    def forbidden(*args, **kwargs):
        raise AssertionError("full embedding matrix rebuilt")

    monkeypatch.setattr(type(adapter), "get_merged_weights", forbidden)
    assert trained.embed(noise_images(2, seed=9)).shape == (2, 384)
    trained.train()
    try:
        trained.forward_embeddings(trained.prepare(noise_images(1, seed=9))).sum().backward()
    finally:
        trained.eval()
        trained.zero_grad(set_to_none=True)


def test_missing_checkpoint_folder_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_relsim_checkpoint(tmp_path / "missing", "unused-base")


def test_query_token_without_a_spare_row_grows_embeddings(tmp_path):
    """A base whose embedding matrix is exactly the tokenizer size: <|query|> needs a new row."""
    from relcurate.models.tiny import build_tiny_qwen, build_tokenizer

    path = build_tiny_qwen(tmp_path / "exact", vocab="bpe", vocab_rows=len(build_tokenizer("bpe")))
    for train_query in (True, False):
        emb = RelsimEmbedder.new(path, image_size=SIZE, train_query_token=train_query)
        assert emb.query_token_id == emb.model.get_base_model().get_output_embeddings().weight.shape[0] - 1
        perturb_trainable(emb)
        emb.eval()
        images = noise_images(2, seed=10)
        out = save_relsim_checkpoint(emb, tmp_path / f"ckpt-{train_query}")
        np.testing.assert_allclose(load_relsim_checkpoint(out, path).embed(images), emb.embed(images), atol=1e-6)
