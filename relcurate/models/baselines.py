"""Baseline image embedders to compare relsim against.

- ``AttributeEmbedder``: colour histogram + coarse layout, pure numpy/PIL; always available, so
  every pipeline (search, "more like this", tests) runs even without any model weights.
- ``ClipEmbedder``: CLIP image embeddings (the paper's attribute-similarity baseline) from a
  local ``CLIPModel`` folder.
- ``Dinov2Embedder``: DINOv2 CLS token of the last hidden state (the paper's DINO baseline,
  ``facebook/dinov2-large``) from a local folder.
- ``load_dreamsim_backend``: dreamsim, when the ``dreamsim`` package and its weights are installed.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch


def _l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)).astype(np.float32)


class AttributeEmbedder:
    """HSV joint histogram (Hellinger) + mean-centred colour thumbnail, L2-normalised.

    The histogram captures palette, the thumbnail captures coarse layout; each block is
    normalised on its own, weighted, concatenated and renormalised so neither dominates by size.
    """

    name = "attribute"

    def __init__(self, hue_bins: int = 8, sat_bins: int = 4, val_bins: int = 4,
                 thumb: int = 8, work_size: int = 64,
                 hist_weight: float = 1.0, layout_weight: float = 1.0) -> None:
        if work_size % thumb:
            raise ValueError("work_size must be a multiple of thumb")
        self.bins = (hue_bins, sat_bins, val_bins)
        self.thumb = thumb
        self.work_size = work_size
        self.hist_weight = hist_weight
        self.layout_weight = layout_weight
        self.n_hist = hue_bins * sat_bins * val_bins
        self.dim = self.n_hist + thumb * thumb * 3

    def _pixels(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        size = (self.work_size, self.work_size)
        rgb = [im.convert("RGB").resize(size, Image.Resampling.BILINEAR) for im in images]
        rgb_arr = np.stack([np.asarray(im, dtype=np.uint8) for im in rgb])
        hsv_arr = np.stack([np.asarray(im.convert("HSV"), dtype=np.uint8) for im in rgb])
        return rgb_arr, hsv_arr

    def _histograms(self, hsv: np.ndarray) -> np.ndarray:
        n = hsv.shape[0]
        hb, sb, vb = self.bins
        h = hsv[..., 0].astype(np.int64) * hb // 256
        s = hsv[..., 1].astype(np.int64) * sb // 256
        v = hsv[..., 2].astype(np.int64) * vb // 256
        # One bincount for the whole batch: offset each image's bins by image index.
        flat = ((h * sb + s) * vb + v).reshape(n, -1) + np.arange(n)[:, None] * self.n_hist
        counts = np.bincount(flat.ravel(), minlength=n * self.n_hist).reshape(n, self.n_hist)
        return np.sqrt(counts / counts.sum(axis=1, keepdims=True))  # Hellinger: sqrt of frequencies

    def _layout(self, rgb: np.ndarray) -> np.ndarray:
        n, t, f = rgb.shape[0], self.thumb, self.work_size // self.thumb
        small = rgb.astype(np.float32).reshape(n, t, f, t, f, 3).mean(axis=(2, 4)) / 255.0
        small -= small.mean(axis=(1, 2, 3), keepdims=True)  # layout, not overall brightness
        return small.reshape(n, -1)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        rgb, hsv = self._pixels(images)
        hist = _l2_normalise(self._histograms(hsv)) * self.hist_weight
        layout = _l2_normalise(self._layout(rgb)) * self.layout_weight
        return _l2_normalise(np.concatenate([hist, layout], axis=1))


class ClipEmbedder:
    """CLIP image embeddings (``get_image_features``) from a local model folder, batched."""

    name = "clip"

    def __init__(self, model_path: str | Path, device: "str | torch.device | None" = None,
                 batch_size: int = 32, dtype: "torch.dtype | None" = None) -> None:
        import torch  # only here: the attribute baseline must not pay torch's import time
        from transformers import CLIPImageProcessor, CLIPModel

        dtype = dtype or torch.float32

        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.batch_size = batch_size
        self.processor = CLIPImageProcessor.from_pretrained(str(model_path))
        self.model = CLIPModel.from_pretrained(str(model_path), dtype=dtype).to(self.device).eval()
        self.dim: int = int(self.model.config.projection_dim)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self._embed(images)

    def _embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        out = np.zeros((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start:start + self.batch_size]]
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            feats = self.model.get_image_features(
                pixel_values=pixels.to(self.device, dtype=self.model.dtype))
            # transformers 5 returns a ModelOutput whose pooler_output is the projected embedding;
            # 4.x returned the tensor itself.
            if not isinstance(feats, torch.Tensor):
                feats = feats.pooler_output
            out[start:start + len(batch)] = feats.float().cpu().numpy()
        return _l2_normalise(out)


class Dinov2Embedder:
    """DINOv2 image embeddings: the CLS token of ``last_hidden_state`` (as the paper), batched."""

    name = "dinov2"

    def __init__(self, model_path: str | Path, device: "str | torch.device | None" = None,
                 batch_size: int = 32, dtype: "torch.dtype | None" = None) -> None:
        import torch
        from transformers import AutoImageProcessor, Dinov2Model

        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.batch_size = batch_size
        self.processor = AutoImageProcessor.from_pretrained(str(model_path))
        self.model = Dinov2Model.from_pretrained(str(model_path), dtype=dtype or torch.float32).to(self.device).eval()
        self.dim: int = int(self.model.config.hidden_size)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        out = np.zeros((len(images), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = [im.convert("RGB") for im in images[start:start + self.batch_size]]
                pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
                hidden = self.model(pixel_values=pixels.to(self.device, dtype=self.model.dtype)).last_hidden_state
                out[start:start + len(batch)] = hidden[:, 0].float().cpu().numpy()
        return _l2_normalise(out)


def available_embedders(clip_path: str | Path | None = None,
                        device: "str | torch.device | None" = None) -> dict[str, object]:
    """Baselines that can run here: attribute always, CLIP when a local folder is given."""
    found: dict[str, object] = {"attribute": AttributeEmbedder()}
    if clip_path is not None and Path(clip_path).is_dir():
        found["clip"] = ClipEmbedder(clip_path, device=device)
    return found


def load_attribute_backend(spec) -> AttributeEmbedder:
    """Backend "attribute" (models/backends.py): colour/texture statistics, no weights."""
    return AttributeEmbedder(**spec.init)


def load_clip_backend(spec) -> ClipEmbedder:
    """Backend "clip" (models/backends.py): CLIP image features from `spec.base`."""
    return ClipEmbedder(spec.base, device=spec.device, **spec.init)


def load_dinov2_backend(spec) -> Dinov2Embedder:
    """Backend "dinov2" (models/backends.py): DINOv2 CLS features from `spec.base`."""
    return Dinov2Embedder(spec.base, device=spec.device, **spec.init)


class _DreamsimEmbedder:
    name = "dreamsim"

    def __init__(self, model, preprocess, device, batch_size: int = 16) -> None:
        self.model, self.preprocess, self.device, self.batch_size = model, preprocess, device, batch_size
        self.dim = 0

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        parts = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                x = torch.cat([self.preprocess(im.convert("RGB")) for im in images[start:start + self.batch_size]])
                parts.append(self.model.embed(x.to(self.device)).float().cpu().numpy())
        out = np.concatenate(parts) if parts else np.zeros((0, max(self.dim, 1)), np.float32)
        self.dim = int(out.shape[1])
        return _l2_normalise(out)


def load_dreamsim_backend(spec) -> _DreamsimEmbedder:
    """Backend "dreamsim": the `dreamsim` package (not a dependency: install it and its weights
    to compare against it). `spec.base` is its cache folder."""
    try:
        from dreamsim import dreamsim
    except ImportError:
        raise RuntimeError("the dreamsim baseline needs `pip install dreamsim` and its weights") from None
    device = spec.device or "cpu"
    model, preprocess = dreamsim(pretrained=True, device=device, cache_dir=spec.base or "./models")
    return _DreamsimEmbedder(model, preprocess, device, **spec.init)
