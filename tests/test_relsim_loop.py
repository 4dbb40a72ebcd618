"""The relsim loop: "relsim-retrain" (accepted captions) chains "relsim-reembed", which embeds the
workspace, rebuilds the index and makes the new space the group builder's default for "more like
this group"; older versions stay selectable and are compared side by side."""
from __future__ import annotations

import pytest

from relcurate.curation.groups import group_search as gs
from relcurate.db import jobs
from relcurate.jobs.worker import run_worker
from relcurate.models.registry import list_model_versions
from relcurate.testing.training import build_training_workspace
from relcurate.training import relsim_loop

PARAMS = {"max_steps": 2, "batch_size": 8, "image_size": 56}


@pytest.fixture
def rel_ws(sqlite_workspace):
    data = build_training_workspace(sqlite_workspace, n_groups=6, per_group=3, labels=False, pool=2)
    return sqlite_workspace, data


def test_retrain_reembed_index_becomes_the_group_builder_space(rel_ws, tiny_qwen_bpe):
    ws, data = rel_ws
    group = next(iter(data.groups.values()))
    assert gs.default_space(ws) == gs.BUILTIN_SPACE
    a = relsim_loop.enqueue_relsim_retrain(ws, params={"base": str(tiny_qwen_bpe), "name": "rs-a", **PARAMS})
    assert relsim_loop.enqueue_relsim_retrain(ws, params={"base": "other"}).job.id == a.job.id  # one job
    assert run_worker(ws, exit_when_idle=True, idle_hooks=[]) == 2  # the retrain enqueued the re-embed
    done = {j.kind: j for j in jobs.list_jobs(ws.engine)}
    assert all(j.state == "done" for j in done.values()), [j.error for j in done.values()]
    (mv_a,) = list_model_versions(ws, kind="relsim")
    space_a = relsim_loop.space_of(ws, mv_a)
    assert done["relsim-retrain"].result["reembed_job"] == done["relsim-reembed"].id
    assert done["relsim-reembed"].result["vectors"] == 6 * 3 + 2 and done["relsim-reembed"].result["space"] == space_a
    assert gs.default_space(ws) == space_a
    res = gs.more_like_group(ws, group, k=4)  # no space given: the loop's new one
    assert res.space == space_a and len(res.centroid) == 4 and not res.not_embedded

    # A second version: its space becomes the default; the first stays selectable side by side.
    relsim_loop.enqueue_relsim_retrain(ws, params={"base": str(tiny_qwen_bpe), "name": "rs-b", **PARAMS, "lr": 5e-3})
    assert run_worker(ws, exit_when_idle=True, idle_hooks=[]) == 2
    mv_b = next(mv for mv in list_model_versions(ws, kind="relsim") if mv.name == "rs-b")
    space_b = relsim_loop.space_of(ws, mv_b)
    assert gs.default_space(ws) == space_b and {space_a, space_b} <= set(gs.available_spaces(ws))
    cmp = relsim_loop.compare_versions(ws, group, k=4)
    rows = {r["model"]: r for r in cmp["versions"]}
    assert set(rows) == {f"rs-a:{mv_a.version}", f"rs-b:{mv_b.version}"}
    assert rows[f"rs-b:{mv_b.version}"]["default"] and not rows[f"rs-a:{mv_a.version}"]["default"]
    assert all(len(r["top_k"]) == 4 and "same_caption_recall@1" in r for r in rows.values())
    (pair,) = cmp["overlap"]
    assert 0.0 <= pair["overlap"] <= 1.0
    # switching back by "name:version" is a setting change, idempotent
    assert relsim_loop.set_relsim_space(ws, f"rs-a:{mv_a.version}") is True
    assert relsim_loop.set_relsim_space(ws, space_a) is False
    assert gs.more_like_group(ws, group, k=2).space == space_a
    with pytest.raises(ValueError, match="no embedding space"):
        relsim_loop.set_relsim_space(ws, "nowhere")


def test_retrain_without_base_or_data_fails_clearly(rel_ws):
    ws, _ = rel_ws
    relsim_loop.enqueue_relsim_retrain(ws)
    run_worker(ws, exit_when_idle=True, idle_hooks=[])
    (job,) = jobs.list_jobs(ws.engine)
    assert job.state == "failed" and "no relsim version is registered" in job.error
