"""A linear probe over a registered embedding space, usable as a Filter: the "fast head" of the
active-learning loop. Its weights live in the model version's config (a few hundred floats), its
embedder is loaded through that embedder's own backend, so a fast-head version loads like any
other (`load_model`) and scores raw images; the loop itself scores cached vectors with
`predict_vectors` and never touches images.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from relcurate.models.backends import LoadSpec, get_backend


def sigmoid(z: np.ndarray) -> np.ndarray:
    """float32 logistic without overflow: exp(-|z|) once, then e/(1+e) or 1/(1+e) by sign. Whole
    array operations (the older masked two-branch form cost ~3x more at a million scores)."""
    z = np.asarray(z, dtype=np.float32)
    e = np.exp(-np.abs(z))
    num = np.where(z < 0, e, np.float32(1))
    e += 1
    return np.divide(num, e, out=num)


class LinearHead:
    """P(Yes) = sigmoid(x . coef + intercept) on the embedder's vectors."""

    def __init__(self, coef: Sequence[float], intercept: float, embedder: Any | None = None):
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = float(intercept)
        self.embedder = embedder
        if embedder is not None and int(getattr(embedder, "dim", len(self.coef))) != len(self.coef):
            raise ValueError(f"fast head has {len(self.coef)} weights but the embedder gives {embedder.dim}-d vectors")

    def predict_vectors(self, vectors: np.ndarray, *, chunk: int = 131_072) -> np.ndarray:
        """Chunked so a million-row memmap is scored without a second full-size copy."""
        out = np.empty(len(vectors), dtype=np.float32)
        for i in range(0, len(vectors), chunk):
            part = out[i:i + chunk]
            np.matmul(np.asarray(vectors[i:i + chunk], dtype=np.float32), self.coef, out=part)  # one BLAS call
            part += np.float32(self.intercept)
        return sigmoid(out)

    def predict_proba(self, images) -> np.ndarray:
        if self.embedder is None:
            raise RuntimeError("this fast head was loaded without its embedder")
        return self.predict_vectors(self.embedder.embed(images))


def load_backend(spec: LoadSpec) -> LinearHead:
    """`spec.init`: coef, intercept, and the embedder to load (`embedder_backend`,
    `embedder_init`; `spec.base` / `spec.adapter` are the embedder's own paths)."""
    init = dict(spec.init)
    try:
        coef, intercept, emb_backend = init["coef"], init["intercept"], init["embedder_backend"]
    except KeyError as exc:
        raise ValueError(f"fast head {spec.label}: config.init lacks {exc.args[0]!r}") from None
    emb_spec = LoadSpec(base=spec.base, adapter=spec.adapter, device=spec.device, dtype=spec.dtype,
                        init=dict(init.get("embedder_init") or {}), label=f"{spec.label} (embedder)")
    return LinearHead(coef, intercept, get_backend(emb_backend)(emb_spec))
