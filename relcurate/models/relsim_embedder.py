"""relsim image embedder: Qwen2.5-VL + a learned `<|query|>` token + Linear(hidden, 384).

Each image is put in a user turn followed by the `<|query|>` token; the last-layer hidden state at
that token goes through the projection and is L2-normalised (the relsim paper / reference package
`relsim` 0.1.0). Differences from the reference, all for speed or correctness, none changing what
is computed for a given image:

* batched, left padded and cut right after `<|query|>`, so the query is the last position of every
  row; causal attention makes the tokens the reference appends after it irrelevant;
* the text backbone is called without the LM head (no full-vocabulary logits, no stored
  per-layer hidden states) and without a KV cache;
* the last decoder layer runs at the `<|query|>` position only, K/V excepted
  (`models/query_only_layer.py`; exact under causal attention), at training and inference;
* `mm_token_type_ids` is passed on, so M-RoPE positions are the multimodal ones (transformers 5
  silently falls back to 1-D positions without it);
* the `<|query|>` embedding is trainable (`trainable_token_indices`), where the reference adds the
  token after wrapping with LoRA and so never trains its row.

Preprocessing is the same at training and inference: centre-crop to a square and resize to
`image_size` x `image_size` (448 by default, Lanczos) — what the reference trains on. The reference
*scoring* API instead feeds images at native resolution, a train/test mismatch that also costs up to
~16k visual tokens per image; `image_size=None` reproduces it (native resolution, no crop).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from relcurate.models.qwen_common import (
    encode_prompts,
    input_device,
    load_processor,
    load_qwen,
    to_device,
    size_batches,
    user_turn,
)

QUERY_TOKEN = "<|query|>"
EMBED_DIM = 384  # all-MiniLM-L6-v2, the caption encoder the image side is aligned to
DEFAULT_IMAGE_SIZE = 448
LORA_TARGETS = ("q_proj", "v_proj")
# A tiny model built from config has a random vision tower: LoRA must reach it too (vision qkv and
# the MLPs, whose names the language model shares) for relations to be learnable at all.
VISION_AND_TEXT_TARGETS = ("q_proj", "v_proj", "qkv", "gate_proj", "up_proj", "down_proj")
# Every linear/conv layer of a tiny random model, the patch embedding and the vision merger
# included: a frozen random patch projection throws away most of a patch's shape information.
TINY_ALL_TARGETS = VISION_AND_TEXT_TARGETS + ("k_proj", "o_proj", "attn.proj", "patch_embed.proj",
                                              "merger.mlp.0", "merger.mlp.2")
# Every linear layer of the language model only (a regex: peft full-matches it against module
# names; the vision MLPs share the text MLPs' names). LoRA's half of a tiny run whose whole vision
# tower is trained in full (`modules_to_save=TINY_FULL_VISION`): a module cannot be both.
TINY_TEXT_TARGETS = r".*language_model\.layers\.\d+\..*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
TINY_FULL_VISION = ("visual",)


def relsim_preprocess(image: Image.Image, image_size: int | None = DEFAULT_IMAGE_SIZE) -> Image.Image:
    """RGB, centre-cropped to a square and resized to image_size² (Lanczos), as the reference trains.

    `image_size=None` returns the RGB image untouched (the reference scoring path).
    """
    image = image.convert("RGB")
    if image_size is None:
        return image
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return image.resize((image_size, image_size), Image.Resampling.LANCZOS)


def add_query_token(processor, model) -> int:
    """Register `<|query|>` (special) in the tokenizer; grow the embeddings only if needed.

    The 7B's embedding matrix has spare rows past the tokenizer (152,064 vs 151,665), so the new id
    usually already has a row; shrinking to len(tokenizer) would needlessly drop the others.
    """
    tok = processor.tokenizer
    tok.add_special_tokens({"additional_special_tokens": [QUERY_TOKEN]}, replace_extra_special_tokens=False)
    qid = tok.convert_tokens_to_ids(QUERY_TOKEN)
    grow_embeddings(model, qid + 1)
    return qid


def grow_embeddings(model, rows: int) -> None:
    """Resize the (untied or tied) token embeddings to at least `rows`; new rows = mean embedding.

    Deterministic, unlike transformers' random mean-resizing, so a model rebuilt from a checkpoint
    that does not store the row (frozen query token) gets exactly the same row back.
    """
    old = model.get_input_embeddings().weight
    if rows <= old.shape[0]:
        return
    n_old, mean = old.shape[0], old.detach().float().mean(0)
    model.resize_token_embeddings(rows, mean_resizing=False)
    with torch.no_grad():
        model.get_input_embeddings().weight[n_old:] = mean.to(old.dtype)


class RelsimEmbedder(nn.Module):
    """Qwen2.5-VL relsim embedder; an `Embedder` (name, dim, embed) and a trainable nn.Module.

    Build one with `RelsimEmbedder.new(base_model_path)` (fresh LoRA + projection, for training) or
    `relsim_checkpoint.load_relsim_checkpoint(dir, base_model)` (a relsim-format checkpoint, ours or
    the reference's; `save_relsim_checkpoint` writes one). `forward_embeddings(batch)` is differentiable; `embed` is the no-grad batched
    inference path.
    """

    def __init__(
        self,
        model: nn.Module,
        processor: Any,
        projection: nn.Linear,
        *,
        query_token_id: int,
        image_size: int | None = DEFAULT_IMAGE_SIZE,
        batch_size: int = 8,
        name: str = "relsim",
        query_only_last_layer: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.projection = projection
        self.processor = processor
        self.query_token_id = int(query_token_id)
        self.image_size = image_size
        self.batch_size = batch_size
        self.name = name
        self.dim = projection.out_features
        if processor.tokenizer.convert_tokens_to_ids(QUERY_TOKEN) != self.query_token_id:
            raise ValueError(f"processor maps {QUERY_TOKEN} to a different id than {self.query_token_id}")
        self.use_query_only_last_layer(query_only_last_layer)

    def use_query_only_last_layer(self, enabled: bool = True) -> bool:
        """Last decoder layer at the query position only (fast, same values) or in full; returns
        whether the fast path is on (False for a base it does not know). Acts on the model itself."""
        from relcurate.models.query_only_layer import set_query_only_last_layer  # imports transformers

        self.query_only_last_layer = set_query_only_last_layer(self._backbone().language_model, enabled)
        return self.query_only_last_layer

    # ---------------------------------------------------------------- construction
    @classmethod
    def new(
        cls,
        base_model_path: str | Path,
        *,
        lora_r: int = 16,
        lora_alpha: int = 32,
        lora_dropout: float = 0.05,
        target_modules: Sequence[str] | str = LORA_TARGETS,
        modules_to_save: Sequence[str] = (),
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        device_map: str | dict | None = None,
        image_size: int | None = DEFAULT_IMAGE_SIZE,
        batch_size: int = 8,
        gradient_checkpointing: bool = False,
        train_query_token: bool = True,
        seed: int = 0,
        name: str = "relsim",
    ) -> "RelsimEmbedder":
        """A trainable embedder: LoRA (r16, alpha32 on q/v by default) + trainable `<|query|>` row.

        `train_query_token=False` freezes the query row at its initial value, as the reference
        training effectively does. `modules_to_save` names modules trained in full (peft stores a
        copy of each in the adapter, which every peft loader, the reference's included, reads).
        """
        from peft import LoraConfig, get_peft_model

        processor = load_processor(base_model_path)
        model = load_qwen(base_model_path, device=device, dtype=dtype, device_map=device_map, is_trainable=True)
        qid = add_query_token(processor, model)
        config = LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
            modules_to_save=list(modules_to_save) or None,
            bias="none",
            task_type="CAUSAL_LM",
            trainable_token_indices={"embed_tokens": [qid]} if train_query_token else None,
        )
        torch.manual_seed(seed)
        model = get_peft_model(model, config)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            # transformers also hooks every input embedding, the vision patch embedding included, to
            # output requires_grad=True; only reentrant checkpointing needs that. Left on, a frozen
            # vision tower (q/v LoRA) builds a graph and is recomputed and run backward for nothing.
            model.disable_input_require_grads()
        hidden = model.get_base_model().config.get_text_config().hidden_size
        projection = nn.Linear(hidden, EMBED_DIM)  # float32 master weights, also under a bf16 model
        projection.to(_output_device(model))
        return cls(model, processor, projection, query_token_id=qid, image_size=image_size,
                   batch_size=batch_size, name=name)  # fmt: skip

    # ---------------------------------------------------------------- model calls
    def prepare(self, images: Sequence[Image.Image]):
        """Processor batch (CPU tensors) for these images; identical at training and inference."""
        convs = [user_turn([relsim_preprocess(im, self.image_size)], QUERY_TOKEN) for im in images]
        return encode_prompts(self.processor, convs, add_generation_prompt=False, cut_after=QUERY_TOKEN)

    def _backbone(self) -> nn.Module:
        # The multimodal model without the LM head: LoRA and trainable-token layers are injected in
        # place by peft, so calling it directly still applies the adapter.
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return base.model

    def forward_embeddings(self, batch: Any, *, normalize: bool = True) -> torch.Tensor:
        """(B, dim) float32 embeddings of a `prepare`d batch; keeps the autograd graph."""
        batch = to_device(batch, input_device(self.model))
        ids = batch["input_ids"]
        if not bool((ids[:, -1] == self.query_token_id).all()):
            raise ValueError(f"{QUERY_TOKEN} must be the last token of every row (left padding)")
        embeds = self._input_embeddings(ids)
        out = self._backbone()(**batch, inputs_embeds=embeds, use_cache=False, return_dict=True)
        hidden = out.last_hidden_state[:, -1]  # (B, 1, H) on the fast path, (B, L, H) otherwise
        proj = self.projection(hidden.to(self.projection.weight.device, torch.float32))
        return F.normalize(proj, dim=-1) if normalize else proj

    forward = forward_embeddings

    def _input_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the trainable `<|query|>` row, without copying the matrix.

        peft's trainable-tokens layer rebuilds the whole embedding matrix with `index_copy` on
        every forward (152,064 x 3,584 for the 7B: ~2 GB in fp32, 3-4 s per call on a CPU, and a
        dense gradient of that size). A plain lookup with the few trainable rows swapped in gives
        the same values and gradients. Falls back to the layer itself when there is no active,
        unmerged token adapter (or peft's internals change).
        """
        layer = self._backbone().get_input_embeddings()
        adapter = getattr(layer, "token_adapter", None)
        try:
            active = [a for a in adapter.active_adapters if a in adapter.trainable_tokens_delta]
            usable = isinstance(adapter.base_layer, nn.Embedding) and not adapter.merged
            usable = usable and not adapter.disable_adapters and active and adapter._get_embed_scale() is None
        except AttributeError:
            usable = False
        if not usable:
            return layer(ids)
        emb = adapter.base_layer(ids)
        for name in active:
            index = torch.as_tensor(adapter.token_indices[name], device=ids.device)
            match = ids.unsqueeze(-1) == index  # (B, L, k)
            rows = adapter.trainable_tokens_delta[name].to(emb.dtype)[match.int().argmax(-1)]
            emb = torch.where(match.any(-1, keepdim=True), rows, emb)
        return emb

    @torch.inference_mode()
    def embed(self, images: Sequence[Image.Image], *, batch_size: int | None = None) -> np.ndarray:
        """(N, dim) float32, L2-normalised. Images of equal size are batched together to limit padding."""
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        was_training = self.training
        self.eval()
        try:
            prepped = [relsim_preprocess(im, self.image_size) for im in images]
            out = np.empty((len(prepped), self.dim), dtype=np.float32)
            for idx in size_batches([im.width * im.height for im in prepped], batch_size or self.batch_size):
                convs = [user_turn([prepped[i]], QUERY_TOKEN) for i in idx]
                batch = encode_prompts(self.processor, convs, add_generation_prompt=False, cut_after=QUERY_TOKEN)
                out[list(idx)] = self.forward_embeddings(batch).cpu().numpy()
            return out
        finally:
            self.train(was_training)

    def score(self, a: Image.Image, b: Image.Image) -> float:
        """Cosine similarity of two images (one batched forward pass)."""
        ea, eb = self.embed([a, b])
        return float(ea @ eb)

    def score_many(self, a: Sequence[Image.Image], b: Sequence[Image.Image]) -> np.ndarray:
        """Row-wise cosine of aligned pairs (a[i], b[i]); all images embedded in batches."""
        if len(a) != len(b):
            raise ValueError("score_many needs two sequences of equal length")
        emb = self.embed(list(a) + list(b))
        return np.einsum("ij,ij->i", emb[: len(a)], emb[len(a) :])

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def _output_device(model: nn.Module) -> torch.device:
    """Device of the final norm (the last hidden state lands there, also under a device_map)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model.language_model.norm.weight.device
