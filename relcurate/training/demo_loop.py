"""The demo's filter loop (issue 11, "the demo shows the loop"): the mixed task order, a fast head
over the demo's embedding space refreshed by the worker every few labels, and the filter page
showing which strategy and model version queued each image. The space is the demo relsim's when
it was trained, else the attribute baseline embedded here (300 thumbnails-sized images: a few
seconds). Re-running changes nothing that is already so."""
from __future__ import annotations

from relcurate.curation.labeling.al_select import DEFAULT_MIX
from relcurate.db.models import ModelKind, ModelVersion
from relcurate.models.registry import list_model_versions, register_model
from relcurate.training.filter_loop import LoopSettings, configure_loop
from relcurate.workspace import Workspace

DEMO_EVERY = 10  # labels between fast-head refreshes: the annotator sees the queue re-rank soon
DEMO_EMBEDDING = "demo-attribute"


def demo_embedding(ws: Workspace) -> ModelVersion:
    """The attribute-baseline version with finished vectors over the workspace (made once; no
    index, so the group builder does not list a second copy of its built-in attribute space)."""
    from relcurate.models.baselines import AttributeEmbedder
    from relcurate.models.registry import get_model_version_by_id
    from relcurate.models.workspace_scoring import embed_workspace

    found = [mv for mv in list_model_versions(ws, kind=ModelKind.baseline) if mv.name == DEMO_EMBEDDING]
    mv = found[-1] if found else register_model(ws, kind=ModelKind.baseline, name=DEMO_EMBEDDING,
                                                base_model="attribute")
    if not (mv.config or {}).get("vectors"):
        embed_workspace(ws, AttributeEmbedder(), mv, batch_size=64)  # resumable: finished chunks are kept
        mv = get_model_version_by_id(ws, mv.id)
    return mv


def configure_demo_loop(ws: Workspace, embedding: ModelVersion | None = None) -> tuple[LoopSettings, str]:
    """Mixed strategy, refresh every DEMO_EVERY labels, origin shown; returns (settings, message)."""
    emb = embedding or demo_embedding(ws)
    s = configure_loop(ws, embedding=f"{emb.name}:{emb.version}", every=DEMO_EVERY, strategy="mix",
                       mix=DEFAULT_MIX, enabled=True, show_origin=True)
    return s, (f"filter loop: mixed strategy, fast head over {s.embedding} refreshed by the worker every "
               f"{s.every} labels")
