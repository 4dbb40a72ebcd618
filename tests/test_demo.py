"""The demo workspace: synthetic pool with ground truth, seed groups with captions awaiting
review, two accounts; re-running changes nothing."""
from __future__ import annotations

from sqlmodel import select

from relcurate.accounts import authenticate
from relcurate.curation.demo.build import build_demo
from relcurate.curation.catalog.stats import workspace_stats
from relcurate.curation.demo.synthetic import TEMPLATES
from relcurate.db.engine import read_scope
from relcurate.db.models import Image
from relcurate.workspace import Workspace


def test_build_demo_and_rebuild(tmp_path):
    result = build_demo(tmp_path / "demo", n_images=40)
    ws = Workspace.open(tmp_path / "demo")
    stats = workspace_stats(ws)
    n_groups = len(TEMPLATES) * 2
    assert stats["groups"]["by_status"] == {"captioned": n_groups}  # complete + a proposed caption
    assert stats["captions"]["by_status"] == {"proposed": n_groups}
    assert stats["images"]["ok"] == 40 + n_groups * 3 and stats["images"]["quarantined"] == 0
    assert set(result.credentials) == {"admin", "annotator"}
    assert authenticate(ws.engine, "admin", result.credentials["admin"]).role == "admin"
    assert authenticate(ws.engine, "annotator", result.credentials["annotator"]).role == "annotator"
    with read_scope(ws.engine) as s:
        truth = [img.meta["synthetic"] for img in s.exec(select(Image))]
    pool_relational = sum(t["relational"] for t in truth if not t["key"].count("-group"))
    assert pool_relational == 4  # 10% of the 40-image pool
    assert all(t["anonymous_caption"] for t in truth if t["relational"])

    again = build_demo(tmp_path / "demo", n_images=40)
    assert again.credentials == {}  # passwords are not reset or re-printed
    assert workspace_stats(ws) == stats


def test_demo_trains_relsim_and_group_builder_offers_its_space(tmp_path):
    """A reduced demo: the relsim is trained on the ground-truth captions, registered, the
    workspace embedded and indexed; group_search lists and searches the space; a rerun reuses it."""
    import numpy as np

    from relcurate.curation.groups import group_search
    from relcurate.models.registry import list_model_versions
    from relcurate.models.workspace_scoring import load_vectors
    from relcurate.training.demo_relsim import DemoRelsimSize, train_demo_relsim

    build_demo(tmp_path / "demo", n_images=40)
    ws = Workspace.open(tmp_path / "demo")
    size = DemoRelsimSize(steps=3, batch_size=8)
    first = train_demo_relsim(ws, size)
    mv = first.model_version
    assert not first.reused and mv.kind == "relsim" and mv.metrics["steps"] == 3
    ids, vecs = load_vectors(ws, mv)
    assert len(ids) == 40 + len(TEMPLATES) * 2 * 3 and vecs.shape[1] == 384 and np.isfinite(vecs).all()
    assert first.space in group_search.available_spaces(ws)
    group = sorted(ids.tolist())[:2]
    res = group_search.more_like_group(ws, group, space=first.space, k=5)
    assert len(res.centroid) == 5 and not {n.image_id for n in res.centroid} & set(group) and not res.not_embedded
    again = train_demo_relsim(ws, size)
    assert again.reused and again.model_version.id == mv.id
    assert len(list_model_versions(ws, kind="relsim")) == 1


def test_demo_configures_the_mixed_filter_loop_and_labeling_reranks(tmp_path):
    """The demo's filter loop: mixed strategy, a fast head refreshed every few labels by the worker's
    trigger; after that many labels the next task is queued by a model strategy and version."""
    from relcurate.curation.labeling import labels, leases
    from relcurate.jobs.worker import run_worker
    from relcurate.testing.labeling import add_users
    from relcurate.training import filter_loop
    from relcurate.training.demo_loop import DEMO_EVERY, configure_demo_loop

    build_demo(tmp_path / "demo", n_images=40)
    ws = Workspace.open(tmp_path / "demo")
    settings, message = configure_demo_loop(ws)
    assert "mixed" in message
    again, _ = configure_demo_loop(ws)  # a rerun reuses the embedding version
    assert again == settings == filter_loop.get_loop(ws)
    cfg = leases.get_config(ws.engine, leases.FILTER)
    assert cfg.strategy == "mix" and set(cfg.params["mix"]) == {"uncertainty", "positive", "diversity", "random"}
    assert settings.every == DEMO_EVERY and settings.enabled and settings.show_origin and settings.embedding
    uid = add_users(ws.engine, ["ann"])["ann"]
    with read_scope(ws.engine) as s:
        truth = {img.id: img.meta["synthetic"]["relational"] for img in s.exec(select(Image))}
    first = []
    # The demo's queue order is random (unseeded): label until a head has both answers to learn.
    while len(first) < DEMO_EVERY or len({truth[t.image_id] for t in first}) < 2:
        t = leases.next_task(ws.engine, uid)
        first.append(t)
        labels.record_label(ws.engine, image_id=t.image_id, user_id=uid, answer="yes" if truth[t.image_id] else "no",
                            request_id=t.request_id)
    assert {filter_loop.task_origin(ws, t) for t in first} == {"random"}  # no fast head yet
    assert filter_loop.maybe_enqueue_refresh(ws) is not None  # the worker's idle hook
    assert run_worker(ws, exit_when_idle=True, idle_hooks=[]) == 1
    origins = {filter_loop.task_origin(ws, leases.next_task(ws.engine, add_users(ws.engine, [f"u{n}"])[f"u{n}"]))
               for n in range(8)}
    assert any("fast-head v1" in o for o in origins), origins
