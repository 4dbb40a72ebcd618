"""Read and write relsim checkpoints in the layout of the reference package (`relsim` 0.1.0).

A checkpoint directory holds
  * the peft adapter (`adapter_config.json`, `adapter_model.safetensors`) of the LoRA'd Qwen2.5-VL,
  * the processor, whose tokenizer contains `<|query|>`,
  * `projection_and_config.pt` = {"projection": state_dict of Linear(hidden, 384),
    "query_token_id": int, ...}.
The base model is not in it (the reference hard-codes `Qwen/Qwen2.5-VL-7B-Instruct`).

Ours go the other way too: `relsim.relsim(pretrained=True, checkpoint_dir=...)` loads a checkpoint
written by `save_relsim_checkpoint`. Extra keys we add to the .pt file are ignored by the reference.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from relcurate.models.qwen_common import DEFAULT_BASE_MODEL, load_processor, load_qwen
from relcurate.models.relsim_embedder import (
    DEFAULT_IMAGE_SIZE,
    EMBED_DIM,
    QUERY_TOKEN,
    RelsimEmbedder,
    _output_device,
    grow_embeddings,
)

PROJECTION_FILE = "projection_and_config.pt"
FORMAT = "relsim-0.1"


def save_relsim_checkpoint(embedder: RelsimEmbedder, out_dir: str | Path, **extra: Any) -> Path:
    """Write adapter + processor + projection_and_config.pt; `extra` keys go into the .pt dict."""
    if not hasattr(embedder.model, "save_pretrained") or not hasattr(embedder.model, "peft_config"):
        raise TypeError("only a peft (LoRA) relsim model can be saved in the relsim layout")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    embedder.model.save_pretrained(str(out))
    embedder.processor.save_pretrained(str(out))
    payload = {
        "projection": {k: v.detach().cpu() for k, v in embedder.projection.state_dict().items()},
        "query_token_id": embedder.query_token_id,
        "hidden_size": embedder.projection.in_features,
        "embed_dim": embedder.projection.out_features,
        "image_size": embedder.image_size,
        "format": FORMAT,
        **extra,
    }
    torch.save(payload, out / PROJECTION_FILE)
    return out


def resolve_checkpoint_dir(checkpoint_dir: str | Path) -> Path:
    """A local folder as is; an "owner/name" that is not a local path is fetched from the Hugging
    Face Hub (or its cache), as the reference does for e.g. thaoshibe/relsim-qwenvl25-lora."""
    path = Path(checkpoint_dir)
    if path.is_dir():
        return path
    text = str(checkpoint_dir)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")) and not path.exists():
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=text))
    raise FileNotFoundError(f"no relsim checkpoint folder at {path}")


def read_projection_config(checkpoint_dir: str | Path) -> dict[str, Any]:
    # weights_only: the file holds tensors, ints and strings only (the reference's keys included).
    return torch.load(Path(checkpoint_dir) / PROJECTION_FILE, map_location="cpu", weights_only=True)


def _saved_embedding_rows(checkpoint_dir: Path) -> int | None:
    """Rows of a full embedding matrix stored in the adapter, if any.

    peft stores the whole embed_tokens/lm_head when the vocabulary size differs from the base
    model's (the reference resizes to len(tokenizer) before saving); the base must then be resized
    to the same size before the adapter is loaded.
    """
    path = checkpoint_dir / "adapter_model.safetensors"
    if not path.exists():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            if key.endswith("embed_tokens.weight") and "trainable_tokens" not in key:
                return int(f.get_slice(key).get_shape()[0])
    return None


def load_relsim_checkpoint(
    checkpoint_dir: str | Path,
    base_model: str | Path | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    device_map: str | dict | None = None,
    image_size: int | None | str = "auto",
    batch_size: int = 8,
    trainable: bool = False,
    name: str = "relsim",
) -> RelsimEmbedder:
    """A `RelsimEmbedder` from a relsim-layout checkpoint (ours or the reference's).

    `checkpoint_dir` is a folder or a Hub repo id. `base_model` defaults to
    `Qwen/Qwen2.5-VL-7B-Instruct`, as in the reference. `image_size="auto"` uses the size recorded
    in our checkpoints, else 448 (what the reference trains at).
    """
    ckpt = resolve_checkpoint_dir(checkpoint_dir)
    cfg = read_projection_config(ckpt)
    processor = load_processor(ckpt)
    qid = processor.tokenizer.convert_tokens_to_ids(QUERY_TOKEN)
    if qid != int(cfg["query_token_id"]):
        raise ValueError(f"tokenizer maps {QUERY_TOKEN} to {qid} but the checkpoint says {cfg['query_token_id']}")

    model = load_qwen(base_model or DEFAULT_BASE_MODEL, device=device, dtype=dtype, device_map=device_map,
                      is_trainable=trainable)  # fmt: skip
    rows = model.get_input_embeddings().weight.shape[0]
    saved_rows = _saved_embedding_rows(ckpt)
    if saved_rows is not None and saved_rows != rows:
        model.resize_token_embeddings(saved_rows, mean_resizing=False)
    elif qid >= rows:
        grow_embeddings(model, qid + 1)

    from peft import PeftModel

    model = PeftModel.from_pretrained(model, str(ckpt), is_trainable=trainable)
    if not trainable:
        model.eval()

    state = cfg["projection"]
    out_features, in_features = state["weight"].shape
    hidden = model.get_base_model().config.get_text_config().hidden_size
    if in_features != hidden:
        raise ValueError(f"projection expects hidden size {in_features}, base model has {hidden}")
    projection = nn.Linear(in_features, out_features)
    projection.load_state_dict({k: v.float() for k, v in state.items()})
    projection.to(_output_device(model))
    if image_size == "auto":
        image_size = cfg.get("image_size", DEFAULT_IMAGE_SIZE)
    embedder = RelsimEmbedder(model, processor, projection, query_token_id=qid, image_size=image_size,
                              batch_size=batch_size, name=name)  # fmt: skip
    embedder.train(trainable)
    return embedder


def describe_checkpoint(checkpoint_dir: str | Path) -> dict[str, Any]:
    """Small summary (for CLI/logs): LoRA settings, query id, projection shape."""
    ckpt = Path(checkpoint_dir)
    cfg = read_projection_config(ckpt)
    adapter = json.loads((ckpt / "adapter_config.json").read_text())
    out_f, in_f = cfg["projection"]["weight"].shape
    return {
        "lora_r": adapter.get("r"),
        "lora_alpha": adapter.get("lora_alpha"),
        "target_modules": adapter.get("target_modules"),
        "trainable_token_indices": adapter.get("trainable_token_indices"),
        "query_token_id": int(cfg["query_token_id"]),
        "projection": [int(in_f), int(out_f)],
        "image_size": cfg.get("image_size"),
        "embed_dim_ok": int(out_f) == EMBED_DIM,
    }


def load_backend(spec) -> RelsimEmbedder:
    """Backend "relsim" (models/backends.py): the adapter path is the checkpoint folder."""
    if spec.adapter is None:
        raise ValueError(f"relsim model {spec.label} has no checkpoint (adapter_path)")
    return load_relsim_checkpoint(spec.adapter, spec.base, device=spec.device, dtype=spec.dtype, **spec.init)
