"""The Active learning admin page and the loop charts through AppTest: admin-only, buttons
enqueue jobs (a double click is one job; nothing runs in the request), the job list shows
states and errors, and the dashboard draws the loop's charts."""
from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from relcurate import accounts
from relcurate.curation.labeling import labels, leases
from relcurate.db import jobs
from relcurate.jobs.worker import run_worker
from relcurate.labeling_ui.loop_charts import composition_chart, learning_curve_chart, remaining_chart, yes_rate_chart
from relcurate.models.registry import register_model
from relcurate.testing.al_sim import store_vectors, synthetic_vectors
from relcurate.testing.apptest import goto, signed_in, titles, url_paths
from relcurate.testing.labeling import add_image_rows
from relcurate.training import filter_loop
from relcurate.training.fast_head import refresh_fast_head
from relcurate.workspace import Workspace

from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "relcurate" / "labeling_ui" / "app.py"


@pytest.fixture
def loop_ws(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    accounts.create_user(ws.engine, "boss", "admin-pw-123", "admin")
    ann = accounts.create_user(ws.engine, "ann", "annotator-pw", "annotator")
    ids = np.array(add_image_rows(ws.engine, 300), dtype=np.int64)
    leases.sync_pool(ws.engine, seed=0)
    x, truth = synthetic_vectors(300, dim=8, seed=2)
    store_vectors(ws, register_model(ws, kind="baseline", name="emb", base_model="attribute"), ids, x)
    truth_of = dict(zip(ids.tolist(), truth.tolist()))
    for _ in range(60):
        t = leases.next_task(ws.engine, ann.id)
        labels.record_label(ws.engine, image_id=t.image_id, user_id=ann.id,
                            answer="yes" if truth_of[t.image_id] else "no", request_id=t.request_id)
    filter_loop.configure_loop(ws, embedding="emb:1", every=20, strategy="mix")
    refresh_fast_head(ws, "emb:1")
    for _ in range(20):
        t = leases.next_task(ws.engine, ann.id)
        labels.record_label(ws.engine, image_id=t.image_id, user_id=ann.id,
                            answer="yes" if truth_of[t.image_id] else "no", request_id=t.request_id)
    refresh_fast_head(ws, "emb:1")
    yield ws
    ws.engine.dispose()


def _app(ws, monkeypatch, user, pw) -> AppTest:
    return signed_in(ws.root, monkeypatch, user, pw)


def _charts(at) -> int:
    return len(at.get("vega_lite_chart"))


def test_admin_enqueues_jobs_and_sees_their_outcome(loop_ws, monkeypatch):
    at = _app(loop_ws, monkeypatch, "boss", "admin-pw-123")
    assert "Active learning" in url_paths(at)
    goto(at, "active-learning")
    assert titles(at) == ["Active learning"]
    at.button(key="loop_refresh").click().run()
    at.button(key="loop_refresh").click().run()  # double click: still one live job
    assert any("queued" in s.value for s in at.success) or any("already" in s.value for s in at.success)
    at.button(key="loop_retrain").click().run()
    listed = jobs.list_jobs(loop_ws.engine)
    assert sorted(j.kind for j in listed) == ["fast-head-refresh", "filter-lora-retrain"]
    assert all(j.state == "queued" for j in listed)  # queued only: the page ran nothing
    run_worker(loop_ws, exit_when_idle=True)
    goto(at, "active-learning")
    frame = at.dataframe[0].value
    states = dict(zip(frame["kind"], frame["state"]))
    assert states == {"fast-head-refresh": "done", "filter-lora-retrain": "failed"}
    assert "needs a base model" in " ".join(frame["error"])  # no base given on the page: a clear failure
    assert _charts(at) >= 3  # composition, yes rate, positives remaining, learning curve


def test_annotator_cannot_open_the_page_but_sees_dashboard_charts(loop_ws, monkeypatch):
    at = _app(loop_ws, monkeypatch, "ann", "annotator-pw")
    assert "Active learning" not in url_paths(at)
    goto(at, "active-learning")
    assert "Active learning" not in titles(at)
    goto(at, "dashboard")
    assert _charts(at) >= 3


def test_captioner_and_relsim_buttons_tables_and_default_space(loop_ws, monkeypatch):
    from relcurate.curation.groups import caption_queue as cq
    from relcurate.curation.groups import captions, group_search
    from relcurate.models.workspace_scoring import build_workspace_index

    ws = loop_ws
    capv = register_model(ws, kind="captioner", name="cap", base_model="x")
    new = cq.record_generated(ws, capv.id, [cq.Generated(i, f"A {{Object}} split into {{Number}} parts {n}.", -1.0, True)
                                            for n, i in enumerate(add_image_rows(ws.engine, 3, start=1000))])
    captions.review_caption(ws, new[0], "accept", user_id=None)
    captions.review_caption(ws, new[1], "reject", user_id=None, reason="wrong")
    rel = register_model(ws, kind="relsim", name="rs", base_model="x", metrics={"same_caption_recall@1": 0.25})
    x, _ = synthetic_vectors(20, dim=8, seed=4)
    store_vectors(ws, rel, np.arange(1, 21, dtype=np.int64), x)
    build_workspace_index(ws, rel)

    at = _app(ws, monkeypatch, "boss", "admin-pw-123")
    goto(at, "active-learning")
    at.button(key="loop_caption_pool").click().run()
    at.button(key="loop_caption_pool").click().run()  # double click: one job
    at.button(key="loop_captioner_retrain").click().run()
    at.button(key="loop_relsim_retrain").click().run()
    kinds = sorted(j.kind for j in jobs.list_jobs(ws.engine))
    assert kinds == ["caption-pool", "captioner-retrain", "relsim-retrain"]
    assert all(j.state == "queued" for j in jobs.list_jobs(ws.engine))  # nothing ran in the request
    frames = [d.value for d in at.dataframe]
    outcomes = next(f for f in frames if "accepted_rate" in f.columns)
    assert outcomes.iloc[0]["model"] == "cap:1" and outcomes.iloc[0]["accepted"] == 1
    assert outcomes.iloc[0]["rejected"] == 1 and outcomes.iloc[0]["pending"] == 1
    versions = next(f for f in frames if "space" in f.columns)
    assert versions.iloc[0]["model"] == "rs:1" and versions.iloc[0]["same_caption_recall@1"] == 0.25
    assert _charts(at) >= 4  # the outcomes chart beside the filter loop's
    at.selectbox(key="loop_rel_space").select("rs-v1").run()
    at.button(key="loop_rel_use").click().run()
    assert group_search.default_space(ws) == "rs-v1"
    assert any("now searches" in s.value for s in at.success)


def test_chart_builders():
    rows = [{"strategy": "random", "leased": 1, "done": 10, "yes": 1, "yes_rate": 0.1},
            {"strategy": "positive", "leased": 0, "done": 5, "yes": 4, "yes_rate": 0.8}]
    assert composition_chart(rows).to_dict()["mark"]["type"] == "bar"
    assert yes_rate_chart(rows).to_dict()["data"]
    assert remaining_chart([{"version": 1, "labels": 60, "estimate": 20, "low": 10, "high": 30, "unlabeled": 240,
                             "audit_size": 60}]).to_dict()["layer"]
    assert learning_curve_chart([{"model": "fast-head", "version": 1, "split": "cv", "labels": 60, "f1": 0.5,
                                  "precision": 0.5, "recall": 0.5}]).to_dict()["mark"]["type"] == "line"
