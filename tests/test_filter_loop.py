"""The filter loop in a workspace: the fast head trained on consensus labels becomes a filter
model version, its predictions are stored, the strategies' heads re-rank the queue, every task
records strategy + model version, and the refresh runs as a worker job (never in a request)."""
from __future__ import annotations

import numpy as np
import pytest
from collections import Counter
from sqlalchemy import func
from sqlmodel import select

from relcurate.curation.labeling import labels, leases
from relcurate.curation.labeling.queue_heads import composition_by_strategy, head_sizes
from relcurate.db import jobs
from relcurate.db.engine import read_scope
from relcurate.db.models import Prediction, TaskAssignment
from relcurate.jobs.worker import run_worker
from relcurate.models.linear_head import LinearHead
from relcurate.models.registry import get_model_version, load_model, register_model
from relcurate.testing.al_sim import store_vectors, synthetic_vectors
from relcurate.testing.labeling import add_image_rows, add_users
from relcurate.training import filter_loop
from relcurate.training.fast_head import FastHeadError, HeadSettings, learning_curve, refresh_fast_head


@pytest.fixture
def loop_ws(workspace):
    eng = workspace.engine
    ids = np.array(add_image_rows(eng, 400), dtype=np.int64)
    leases.sync_pool(eng, seed=0)
    leases.set_config(eng, overlap_k=1, overlap_fraction=0.0)
    x, truth = synthetic_vectors(len(ids), dim=8, seed=3)
    emb = register_model(workspace, kind="baseline", name="synth-emb", base_model="attribute")
    store_vectors(workspace, emb, ids, x)
    users = add_users(eng, ["ann", "bob"])
    return workspace, ids, x, truth, users


def _label_n(eng, user_id, truth_of, n):
    done = []
    for _ in range(n):
        t = leases.next_task(eng, user_id)
        if t is None:
            break
        labels.record_label(eng, image_id=t.image_id, user_id=user_id, answer="yes" if truth_of[t.image_id] else "no",
                            request_id=t.request_id)
        done.append(t)
    return done


def test_refresh_registers_version_predictions_and_heads(loop_ws):
    ws, ids, x, truth, users = loop_ws
    eng = ws.engine
    truth_of = dict(zip(ids.tolist(), truth.tolist()))
    with pytest.raises(FastHeadError, match="at least one Yes and one No"):
        refresh_fast_head(ws, "synth-emb:1")
    first = _label_n(eng, users["ann"], truth_of, 60)
    assert {t.strategy for t in first} == {"random"} and all(t.model_version_id is None for t in first)
    res = refresh_fast_head(ws, "synth-emb:1", labels_seen=60, settings=HeadSettings(head_size=40))
    mv = get_model_version(ws, "fast-head")
    assert mv.id == res.model_version_id and mv.kind == "filter" and mv.config["backend"] == "fast-head"
    assert mv.trained_on["labels"] == 60 and mv.metrics["labels"] == 60
    with read_scope(eng) as s:
        n_pred = s.exec(select(func.count()).select_from(Prediction).where(Prediction.model_version_id == mv.id)).one()
    assert n_pred == len(ids)
    assert head_sizes(eng) == {"uncertainty": 40, "positive": 40, "diversity": 256}  # disjoint heads
    # The stored weights load back as a Filter "like any other version" and score vectors.
    # (Here the stored vectors are synthetic 8-d ones under an attribute-space version, so
    # loading says clearly that they disagree; with matching dims it scores raw images.)
    with pytest.raises(ValueError, match="8 weights but the embedder gives 320-d"):
        load_model(ws, mv)
    from PIL import Image as PILImage
    from relcurate.models.baselines import AttributeEmbedder
    probe = LinearHead(np.zeros(320), 0.0, AttributeEmbedder())
    assert probe.predict_proba([PILImage.new("RGB", (32, 32))]).tolist() == [0.5]

    # Uncertainty order: the next task is the open image whose P(Yes) is closest to 0.5.
    leases.set_config(eng, strategy="uncertainty")
    t = leases.next_task(eng, users["bob"])
    assert t.strategy == "uncertainty" and t.model_version_id == mv.id
    with read_scope(eng) as s:
        scores = dict(s.exec(select(Prediction.image_id, Prediction.score).where(Prediction.model_version_id == mv.id)).all())
        taken = set(s.exec(select(TaskAssignment.image_id)).all())
    open_scores = {i: sc for i, sc in scores.items() if i not in taken or i == t.image_id}
    best = min(open_scores, key=lambda i: abs(open_scores[i] - 0.5))
    assert abs(scores[t.image_id] - 0.5) <= abs(scores[best] - 0.5) + 1e-6

    # Positive mining: highest P(Yes) first.
    leases.release_task(eng, users["bob"], t.assignment_id)
    leases.set_config(eng, strategy="positive")
    t2 = leases.next_task(eng, users["bob"])
    assert t2.strategy == "positive"
    from relcurate.db.models import QueueRank
    with read_scope(eng) as s:
        unc = set(s.exec(select(QueueRank.image_id).where(QueueRank.strategy == "uncertainty")).all())
    assert scores[t2.image_id] >= max(sc for i, sc in scores.items() if i not in taken | unc) - 1e-6


def test_mix_quotas_record_strategy_and_model_and_fall_back(loop_ws):
    ws, ids, x, truth, users = loop_ws
    eng = ws.engine
    truth_of = dict(zip(ids.tolist(), truth.tolist()))
    _label_n(eng, users["ann"], truth_of, 60)
    res = refresh_fast_head(ws, "synth-emb:1", settings=HeadSettings(head_size=25, diversity_k=12))
    filter_loop.configure_loop(ws, embedding="synth-emb:1", every=20, strategy="mix",
                               mix={"uncertainty": 4, "positive": 3, "diversity": 2, "random": 1})
    got = _label_n(eng, users["bob"], truth_of, 50)
    by = Counter(t.strategy for t in got)
    assert by == {"uncertainty": 20, "positive": 15, "diversity": 10, "random": 5}, by
    assert all(t.model_version_id == res.model_version_id for t in got if t.strategy != "random")
    comp = {row["strategy"]: row for row in composition_by_strategy(eng)}
    assert comp["positive"]["done"] == 15 and comp["random"]["done"] == 60 + 5
    assert comp["positive"]["yes_rate"] > comp["random"]["yes_rate"]  # mining finds the rare Yes
    # Heads used up -> the random order takes over (and says so) instead of "pool empty".
    rest = _label_n(eng, users["bob"], truth_of, 40)
    assert len(rest) == 40
    assert Counter(t.strategy for t in rest)["random"] > 4


def test_worker_refreshes_after_n_new_labels_as_a_job(loop_ws):
    ws, ids, x, truth, users = loop_ws
    eng = ws.engine
    truth_of = dict(zip(ids.tolist(), truth.tolist()))
    filter_loop.configure_loop(ws, embedding="synth-emb:1", every=30, strategy="mix")
    _label_n(eng, users["ann"], truth_of, 20)
    assert filter_loop.maybe_enqueue_refresh(ws) is None  # 20 < 30 new labels
    _label_n(eng, users["ann"], truth_of, 15)
    enq = filter_loop.maybe_enqueue_refresh(ws)
    assert enq is not None and enq.created
    assert not filter_loop.maybe_enqueue_refresh(ws).created  # dedup: one live refresh job
    assert run_worker(ws, exit_when_idle=True, idle_hooks=[filter_loop.maybe_enqueue_refresh]) == 1
    job = jobs.get_job(eng, enq.job.id)
    assert job.state == "done", job.error
    assert job.result["labels"] == 35 and job.result["heads"]["uncertainty"] > 0
    assert filter_loop.maybe_enqueue_refresh(ws) is None  # nothing new since
    _label_n(eng, users["bob"], truth_of, 30)
    run_worker(ws, exit_when_idle=True, idle_hooks=[filter_loop.maybe_enqueue_refresh])
    assert get_model_version(ws, "fast-head").version == 2
    curve = learning_curve(ws)
    from relcurate.models.registry import list_model_versions
    assert [m.metrics["labels"] for m in list_model_versions(ws, kind="filter")] == [35, 65]
    # Out-of-fold metrics exist once both classes have at least two labels.
    assert curve and {r["labels"] for r in curve} <= {35, 65}
    v2 = get_model_version(ws, "fast-head")
    assert "positives_remaining" in v2.metrics and v2.metrics["positives_remaining"]["unlabeled"] == 400 - 65


def test_lora_retrain_job_without_a_base_fails_clearly(loop_ws):
    ws, *_ = loop_ws
    enq = filter_loop.enqueue_retrain(ws, requested_by=None)
    run_worker(ws, exit_when_idle=True)
    job = jobs.get_job(ws.engine, enq.job.id)
    assert job.state == "failed" and "needs a base model" in job.error and job.attempts == 1


def test_lora_retrain_job_trains_and_registers_a_filter_version(tmp_path, tiny_qwen_bpe):
    """The admin button's job end to end: the worker runs the real LoRA trainer (tiny model, two
    steps) and a new filter version appears; a second request returns the same version."""
    from relcurate.models.registry import get_model_version
    from relcurate.testing.training import build_training_workspace
    from relcurate.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws")
    build_training_workspace(ws, n_groups=8, yes_groups=3, pool=2)
    params = {"base": str(tiny_qwen_bpe), "name": "flt-job", "max_steps": 2, "batch_size": 4, "max_pixels": 56 * 56}
    enq = filter_loop.enqueue_retrain(ws, requested_by=None, params=params)
    run_worker(ws, exit_when_idle=True)
    job = jobs.get_job(ws.engine, enq.job.id)
    assert job.state == "done", job.error
    mv = get_model_version(ws, "flt-job")
    assert job.result["model_version_id"] == mv.id and mv.kind == "filter"
    ws.engine.dispose()
