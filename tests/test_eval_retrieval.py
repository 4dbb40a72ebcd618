"""Retrieval study on the synthetic benchmark: held-out split from exports/splits, seeded
queries, self-matches excluded by id, ground-truth metrics with intervals, results on disk and
in the store."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from relcurate.evaluation import retrieval
from relcurate.evaluation.bootstrap import bootstrap_mean, paired_difference
from relcurate.evaluation.runs import get_run, read_result
from relcurate.testing.evaluation import build_eval_workspace, register_eval_models
from relcurate.workspace import Workspace


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval") / "ws"
    ws = build_eval_workspace(root)
    register_eval_models(ws)
    ws.engine.dispose()
    return root


@pytest.fixture
def ws(template, tmp_path):
    shutil.copytree(template, tmp_path / "ws")
    w = Workspace.open(tmp_path / "ws")
    yield w
    w.engine.dispose()


class HashText:
    """A deterministic stand-in text encoder (MiniLM has its own tests): same text, same vector."""
    dim = 8

    def encode(self, texts):
        out = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts]).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_bootstrap_interval_covers_the_mean_and_is_seeded():
    x = np.random.default_rng(0).normal(5, 1, 400)
    a, b = bootstrap_mean(x, seed=3), bootstrap_mean(x, seed=3)
    assert a == b and a.low < a.estimate < a.high and a.high - a.low < 0.3
    assert bootstrap_mean([np.nan, 1.0, 3.0]).n == 2
    d = paired_difference(x + 1, x)
    assert d.estimate == pytest.approx(1.0) and d.high - d.low < 1e-9


def test_retrieval_run(ws):
    cfg = retrieval.RetrievalConfig(methods=["oracle", "attribute"], n_queries=20, k=5, seed=1,
                                    split_weights={"train": 1, "test": 1}, resamples=200)
    run_id = retrieval.run_retrieval(ws, cfg, text_encoder=HashText())
    run = get_run(ws, run_id, "retrieval")
    assert run.status == "done"
    summary = read_result(ws, run)
    db = summary["database"]
    assert db["held_out"] > 20 and db["distractors"] > 0
    queries = summary["queries"]
    assert len(queries) == 20 and len(set(queries)) == 20
    rankings = retrieval.read_rankings(ws, run_id)
    for method in ("oracle:1", "attribute:1"):
        for q in queries:
            ranked = rankings[method][q]
            assert len(ranked) == 5 and q not in ranked  # self excluded by id
    m = summary["methods"]
    oracle, attr = m["oracle:1"]["metrics"], m["attribute:1"]["metrics"]
    # The oracle encodes the relation: its neighbours share the query's caption and group.
    assert oracle["caption_recall@5"]["estimate"] == 1.0
    assert oracle["caption_recall@5"]["estimate"] > attr["caption_recall@5"]["estimate"]
    assert oracle["caption_sim@1"]["estimate"] == pytest.approx(1.0, abs=1e-5)
    iv = attr["caption_recall@5"]
    assert iv["low"] <= iv["estimate"] <= iv["high"] and iv["n"] == 20
    assert run.metrics["oracle:1"]["caption_recall@5"] == 1.0
    # Same seed, same queries; another seed, other queries.
    again = read_result(ws, get_run(ws, retrieval.run_retrieval(ws, cfg, text_encoder=HashText())))
    assert again["queries"] == queries
    cfg.seed = 2
    other = read_result(ws, get_run(ws, retrieval.run_retrieval(ws, cfg, text_encoder=HashText())))
    assert other["queries"] != queries


def test_held_out_split_matches_the_export(ws):
    from relcurate.exports.snapshot import load_snapshot, snapshot_connection
    from relcurate.exports.splits import split_snapshot_images

    cfg = retrieval.RetrievalConfig(split_weights={"train": 1, "test": 1})
    db = retrieval.build_database(ws, cfg)
    with snapshot_connection(ws.engine) as conn:
        snap = load_snapshot(conn)
    assignment = split_snapshot_images(snap, db.captions_of, weights={"train": 1, "test": 1}, seed=0)
    assert set(db.held_out) == {i for i, s in assignment.split_of.items() if s == "test"}
    # A seed group never straddles the split.
    for members in snap.members.values():
        assert len({assignment.split_of[i] for i in members if i in assignment.split_of}) <= 1
    assert db.distractors and not set(db.distractors) & set(db.captions_of)
    assert retrieval.build_database(ws, retrieval.RetrievalConfig(split_weights={"train": 1, "test": 1},
                                                                  distractor_kind="synthetic")).distractors == db.distractors
    assert retrieval.build_database(ws, retrieval.RetrievalConfig(distractor_kind="parquet")).distractors == []
    sample = retrieval.build_database(ws, retrieval.RetrievalConfig(max_distractors=5, seed=4)).distractors
    assert len(sample) == 5 and set(sample) <= set(db.distractors)
    with pytest.raises(ValueError, match="held-out split"):
        retrieval.build_database(ws, retrieval.RetrievalConfig(held_out="val"))


def test_judge_a_retrieval_run(ws):
    from relcurate.evaluation.judge import JudgeConfig
    from relcurate.evaluation.judge_study import judge_retrieval
    from relcurate.testing.judge_server import StandInJudge

    cfg = retrieval.RetrievalConfig(methods=["oracle", "attribute"], n_queries=10, k=3, seed=0,
                                    split_weights={"train": 1, "test": 1}, resamples=100, caption_similarity=False)
    rid = retrieval.run_retrieval(ws, cfg)
    with StandInJudge() as server:
        jc = JudgeConfig(base_url=server.base_url, model="stand-in", concurrency=4)
        jid = judge_retrieval(ws, rid, jc, reference="oracle:1", resamples=100)
        asked = len(server.requests)
        assert 10 <= asked <= 20  # one per (method, query) pair, a pair both methods found asked once
        summary = read_result(ws, get_run(ws, jid, "judge"))
        rows = {r["method"]: r for r in summary["table"]}
        assert set(rows) == {"oracle:1", "attribute:1"} and rows["attribute:1"]["ok"] == 10
        assert rows["oracle:1"]["mean"]["n"] == 10 and "minus_reference" in rows["attribute:1"]
        assert get_run(ws, jid).parent_id == rid and get_run(ws, jid).status == "done"
        judge_retrieval(ws, rid, jc)  # the rerun is served from the store's cache
        assert len(server.requests) == asked


def test_whole_path_on_each_back_end(db_url, tmp_path):
    """Retrieval, judge (store cache), mining and an A/B study on SQLite and PostgreSQL."""
    from relcurate.evaluation import ab_study, mining
    from relcurate.evaluation.judge import JudgeConfig
    from relcurate.evaluation.judge_study import judge_retrieval
    from relcurate.testing.judge_server import StandInJudge

    w = build_eval_workspace(tmp_path / "ws", n_pool=16, db_url=db_url)
    try:
        register_eval_models(w)
        rid = retrieval.run_retrieval(w, retrieval.RetrievalConfig(
            methods=["oracle", "attribute"], n_queries=8, k=3, split_weights={"train": 1, "test": 1},
            caption_similarity=False, resamples=50))
        assert read_result(w, get_run(w, rid))["methods"]["oracle:1"]["metrics"]["caption_recall@3"]["estimate"] == 1.0
        with StandInJudge() as server:
            cfg = JudgeConfig(base_url=server.base_url, model="stand-in")
            judge_retrieval(w, rid, cfg, resamples=50)
            asked = len(server.requests)
            judge_retrieval(w, rid, cfg, resamples=50)
            assert len(server.requests) == asked > 0
        mid = mining.run_mining(w, relational="oracle", attribute="attribute", top=5, skip_grouped=True)
        assert len(read_result(w, get_run(w, mid))["pairs"]) == 5
        sid = ab_study.create_study(w, rid, method="oracle:1", baselines=["attribute:1"], n_triplets=3)
        trial = ab_study.next_trial(w, sid, 1)
        rankings = retrieval.read_rankings(w, rid)
        hits = {rankings["oracle:1"][trial.query_image_id][0], rankings["attribute:1"][trial.query_image_id][0]}
        assert {trial.left_image_id, trial.right_image_id} == hits and len(hits) == 2
        with pytest.raises(ab_study.StudyError, match="no method"):
            ab_study.create_study(w, rid, method="oracle:1", baselines=["clip:1"])
        ab_study.record_answer(w, trial.triplet_id, 1, "left", a_on_left=trial.a_on_left)
        assert ab_study.study_results(w, sid)["answers"] == 1
    finally:
        w.engine.dispose()
