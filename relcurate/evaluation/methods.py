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


# The paper's baselines by hub id: (registered name, backend). Registered when present locally.
PAPER_BASELINES = {
    "openai/clip-vit-large-patch14": ("clip-l14", "clip"),
    "facebook/dinov2-large": ("dinov2-large", "dinov2"),
}


def local_snapshot(repo_id: str) -> str | None:
    """The hub cache folder of `repo_id` if it is already on this machine (never downloads)."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached, no hub library, offline: all mean "not here"
        return None


def register_paper_baselines(ws: Workspace, *, resolve=local_snapshot) -> list[str]:
    """Register each paper baseline whose weights are present locally and not registered yet;
    returns the "name:version" labels added. dreamsim and the caption baselines need more than a
    folder (a package, a captioner): register those with `relcurate models register`."""
    from relcurate.models.registry import register_model

    have = {mv.base_model for mv in list_model_versions(ws)}
    added = []
    for repo_id, (name, backend) in PAPER_BASELINES.items():
        path = resolve(repo_id)
        if not path or path in have or repo_id in have:
            continue
        mv = register_model(ws, kind="baseline", name=name, base_model=path,
                            config={"backend": backend, "hub_id": repo_id})
        added.append(f"{mv.name}:{mv.version}")
    return added
