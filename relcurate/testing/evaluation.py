"""Evaluation test helpers: a synthetic workspace with accepted ground-truth captions, and a
"template oracle" embedder standing in for a trained relsim model.

Why an oracle: the ranking, similarity-space and page tests need an embedder that knows
relations exactly and costs nothing (a trained tiny relsim takes ~2 min and is right ~80% of the
time; tests/test_eval_mining.py uses one for the claim itself). The oracle maps an image's pixels (digest) to its
synthetic template (one-hot, plus a small per-image jitter); non-relational images get a
random direction. It is registered as backend "test-template-oracle" and loads through the
model registry like any version, so the code under test is the real path.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image as PILImage
from sqlmodel import select

from relcurate.curation.demo import synthetic
from relcurate.curation.demo.build import build_demo
from relcurate.curation.groups.captions import review_caption
from relcurate.db.engine import read_scope
from relcurate.db.models import Caption, CaptionStatus, Image, ImageStatus, ModelVersion
from relcurate.models.backends import register_backend
from relcurate.models.registry import register_model
from relcurate.workspace import Workspace

ORACLE_BACKEND = "test-template-oracle"
_TEMPLATES = sorted(synthetic.TEMPLATES)


def pixel_digest(image: PILImage.Image) -> str:
    rgb = image.convert("RGB")
    return hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()


class TemplateOracleEmbedder:
    name = "template-oracle"

    def __init__(self, truth_file: str, jitter: float = 0.05) -> None:
        self.truth: dict[str, str | None] = json.loads(Path(truth_file).read_text())
        self.jitter = jitter
        self.dim = len(_TEMPLATES) + 32

    def embed(self, images: Sequence[PILImage.Image]) -> np.ndarray:
        out = np.zeros((len(images), self.dim), np.float32)
        for r, im in enumerate(images):
            digest = pixel_digest(im)
            rng = np.random.default_rng(int(digest[:12], 16))
            template = self.truth.get(digest)
            if template in _TEMPLATES:
                out[r, _TEMPLATES.index(template)] = 1.0
                out[r, len(_TEMPLATES):] = rng.normal(0, self.jitter, 32)
            else:
                out[r, len(_TEMPLATES):] = rng.normal(0, 1, 32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@register_backend(ORACLE_BACKEND)
def load_oracle(spec) -> TemplateOracleEmbedder:
    return TemplateOracleEmbedder(**spec.init)


def build_eval_workspace(root: Path, *, n_pool: int = 40, db_url: str | None = None) -> Workspace:
    """The demo workspace (synthetic pool + 32 three-image seed groups, one per template twice)
    with every ground-truth caption accepted, so images have captions and groups to score."""
    if db_url:
        Workspace.init(root, db_url=db_url).engine.dispose()  # the demo then reuses this config
    build_demo(root, n_images=n_pool)
    ws = Workspace.open(root)
    with read_scope(ws.engine) as s:
        proposed = s.exec(select(Caption.id).where(Caption.status == CaptionStatus.proposed)).all()
    for cid in proposed:
        review_caption(ws, cid, "accept", user_id=None, allow_errors=True)
    return ws


def synthetic_truth(ws: Workspace) -> dict[int, dict]:
    """image id -> {"template", "color", "key", "relational"} from the demo manifest."""
    manifest = {r["key"]: r for r in synthetic.read_manifest(ws.root / "demo-source" / synthetic.MANIFEST_NAME)}
    out = {}
    with read_scope(ws.engine) as s:
        for iid, meta in s.exec(select(Image.id, Image.meta).where(Image.status == ImageStatus.ok)).all():
            syn = (meta or {}).get("synthetic")
            if syn:
                rec = manifest[syn["key"]]
                out[int(iid)] = {"template": syn["template"], "key": syn["key"], "relational": syn["relational"],
                                 "color": rec["attributes"]["color"]}
    return out


def register_eval_models(ws: Workspace) -> tuple[ModelVersion, ModelVersion]:
    """(oracle "relsim" version, attribute baseline version), both loadable by the registry."""
    truth = synthetic_truth(ws)
    digests: dict[str, str | None] = {}
    with read_scope(ws.engine) as s:
        rows = s.exec(select(Image.id, Image.sha256, Image.ext).where(Image.status == ImageStatus.ok)).all()
    for iid, sha, ext in rows:
        with PILImage.open(ws.image_path(sha, ext)) as im:
            digests[pixel_digest(im)] = truth.get(int(iid), {}).get("template")
    truth_file = ws.models_dir / "template-oracle.json"
    truth_file.write_text(json.dumps(digests))
    oracle = register_model(ws, kind="relsim", name="oracle", base_model="template-oracle",
                            config={"backend": ORACLE_BACKEND, "init": {"truth_file": str(truth_file)}})
    attribute = register_model(ws, kind="baseline", name="attribute", base_model="attribute")
    return oracle, attribute
