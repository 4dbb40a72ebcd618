"""Baseline embedders: numpy attribute features and CLIP via a tiny random CLIPModel."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from relcurate.models.baselines import AttributeEmbedder, ClipEmbedder, available_embedders
from relcurate.models.protocols import Embedder


def _solid(rgb: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Image.Image:
    return Image.new("RGB", size, rgb)


def _half(left_white: bool, size: int = 48) -> Image.Image:
    arr = np.zeros((size, size, 3), dtype=np.uint8)
    if left_white:
        arr[:, : size // 2] = 255
    else:
        arr[:, size // 2:] = 255
    return Image.fromarray(arr)


def _noise(seed: int, size: tuple[int, int] = (50, 37)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


# --- attribute baseline ---------------------------------------------------------------------

def test_attribute_shape_norm_protocol() -> None:
    emb = AttributeEmbedder()
    assert isinstance(emb, Embedder) and emb.name == "attribute"
    images = [_solid((200, 10, 10)), _noise(0), _half(True), _noise(1, (200, 90))]
    out = emb.embed(images)
    assert out.dtype == np.float32 and out.shape == (4, emb.dim)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert emb.embed([]).shape == (0, emb.dim)


def test_attribute_colour_similarity() -> None:
    red, dark_red, blue = AttributeEmbedder().embed(
        [_solid((220, 20, 20)), _solid((180, 30, 25)), _solid((20, 30, 220))])
    assert float(red @ dark_red) > float(red @ blue) + 0.3


def test_attribute_layout_separates_mirrored_halves() -> None:
    left, left2, right = AttributeEmbedder().embed([_half(True), _half(True, 64), _half(False)])
    # Identical palettes, so only the layout block can tell them apart.
    assert float(left @ left2) > 0.99
    assert float(left @ right) < 0.7


def test_attribute_batch_independent_and_modes() -> None:
    emb = AttributeEmbedder()
    images = [_noise(i) for i in range(5)]
    batch = emb.embed(images)
    singles = np.concatenate([emb.embed([im]) for im in images])
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    grey, rgba, pal = _noise(9).convert("L"), _noise(9).convert("RGBA"), _noise(9).convert("P")
    out = emb.embed([grey, rgba, pal])
    assert np.isfinite(out).all() and out.shape == (3, emb.dim)


# --- CLIP baseline ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config={"vocab_size": 99, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 16},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32,
                       "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
        projection_dim=24,
    )
    path = tmp_path_factory.mktemp("tiny_clip")
    CLIPModel(cfg).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32},
                       crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def test_clip_shape_norm_protocol(tiny_clip_dir: Path) -> None:
    emb = ClipEmbedder(tiny_clip_dir, batch_size=3)
    assert isinstance(emb, Embedder) and emb.name == "clip" and emb.dim == 24
    out = emb.embed([_noise(i) for i in range(7)])
    assert out.dtype == np.float32 and out.shape == (7, 24)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert emb.embed([]).shape == (0, 24)


def test_clip_batching_matches_reference_forward(tiny_clip_dir: Path) -> None:
    from transformers import CLIPImageProcessor, CLIPModel

    images = [_noise(i, (64 + i, 48)) for i in range(5)]
    chunked = ClipEmbedder(tiny_clip_dir, batch_size=2).embed(images)
    whole = ClipEmbedder(tiny_clip_dir, batch_size=64).embed(images)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)

    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    pixels = CLIPImageProcessor.from_pretrained(tiny_clip_dir)(images=images, return_tensors="pt")
    with torch.no_grad():
        ref = model.get_image_features(**pixels)
    ref = ref if isinstance(ref, torch.Tensor) else ref.pooler_output
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    np.testing.assert_allclose(whole, ref, atol=1e-5)
    assert not np.allclose(whole[0], whole[1])  # different images, different vectors


def test_available_embedders(tiny_clip_dir: Path, tmp_path: Path) -> None:
    assert set(available_embedders()) == {"attribute"}
    assert set(available_embedders(tmp_path / "missing")) == {"attribute"}
    assert set(available_embedders(tiny_clip_dir)) == {"attribute", "clip"}
