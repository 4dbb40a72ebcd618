"""Retrieval methods: registered embedder versions and their vectors over a set of images.

Every method is a model version in the registry (relsim versions, the attribute baseline, CLIP,
DINOv2, caption-text baselines); its vectors come from the workspace embedding run
(`models/workspace_scoring`: sharded, resumable), computed here only when missing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from relcurate.db.models import ModelVersion
from relcurate.models.index import l2_normalise
from relcurate.models.registry import get_model_version, list_model_versions, load_model
from relcurate.models.workspace_scoring import embed_workspace, load_vectors, vectors_dir
from relcurate.workspace import Workspace

EMBEDDER_KINDS = ("relsim", "baseline")
Progress = Callable[[int, int], None]


class MethodError(ValueError):
    pass


@dataclass(frozen=True)
class Method:
    label: str  # "name:version"
    model_version_id: int
    kind: str
    base_model: str


def resolve_methods(ws: Workspace, names: Sequence[str] | None) -> list[tuple[Method, ModelVersion]]:
    """The named versions ("name" = latest, "name:version"), or every registered embedder."""
    if names:
        mvs = [get_model_version(ws, n) for n in names]
    else:
        mvs = [mv for mv in list_model_versions(ws) if mv.kind in EMBEDDER_KINDS]
    out, seen = [], set()
    for mv in mvs:
        if mv.kind not in EMBEDDER_KINDS:
            raise MethodError(f"{mv.name}:{mv.version} is a {mv.kind} model, not an embedder")
        label = f"{mv.name}:{mv.version}"
        if label not in seen:
            seen.add(label)
            out.append((Method(label, mv.id, str(mv.kind), mv.base_model), mv))
    if not out:
        raise MethodError("no embedder is registered; register one with `relcurate models register`")
    return out


def method_vectors(ws: Workspace, mv: ModelVersion, image_ids: Sequence[int], *, batch_size: int = 16,
                   progress: Progress | None = None, embed_missing: bool = True) -> np.ndarray:
    """Unit vectors row-aligned with `image_ids`; embeds the workspace first when needed."""
    wanted = np.asarray(image_ids, dtype=np.int64)

    def lookup() -> np.ndarray | None:
        if not (vectors_dir(ws, mv) / "").exists():
            return None
        try:
            ids, vecs = load_vectors(ws, mv)
        except (ValueError, FileNotFoundError):
            return None
        row = {int(i): k for k, i in enumerate(ids)}
        if any(int(i) not in row for i in wanted):
            return None
        return l2_normalise(vecs[[row[int(i)] for i in wanted]])

    found = lookup()
    if found is None and embed_missing:
        try:
            embed_workspace(ws, load_model(ws, mv), mv, batch_size=batch_size, progress=progress)
        except ValueError as exc:  # shards written for another image list
            raise MethodError(f"{mv.name}:{mv.version}: {exc}") from exc
        found = lookup()
    if found is None:
        raise MethodError(f"{mv.name}:{mv.version} has no vectors for every image of the database "
                          f"(images added since it was embedded, or unreadable ones); "
                          f"re-embed with `relcurate models embed {mv.name}:{mv.version}`")
    return found
