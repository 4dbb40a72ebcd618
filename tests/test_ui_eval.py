"""The evaluation pages through AppTest: the raters' A/B page (answers by button/shortcut, next
triplet at once), results (retrieval, judge, A/B), the similarity space (chart with inline
image tooltips, open an image, start a group) and mining (start a group from a pair)."""
from __future__ import annotations

import shutil

import pytest

from relcurate.accounts import create_user
from relcurate.curation.groups.membership import member_ids
from relcurate.db.engine import read_scope
from relcurate.db.models import SeedGroup
from relcurate.evaluation import ab_study, mining, retrieval
from relcurate.evaluation.judge import JudgeConfig
from relcurate.evaluation.judge_study import judge_retrieval
from relcurate.models.registry import load_model
from relcurate.models.workspace_scoring import embed_workspace
from relcurate.testing.apptest import titles, url_paths
from relcurate.testing.evaluation import build_eval_workspace, register_eval_models
from relcurate.testing.groups import open_app, shown_text
from relcurate.testing.judge_server import StandInJudge
from relcurate.workspace import Workspace
from sqlmodel import select

USERS = {"cur": "curator", "ann": "annotator", "ann2": "annotator"}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui-eval") / "ws"
    ws = build_eval_workspace(root)
    for mv in register_eval_models(ws):
        embed_workspace(ws, load_model(ws, mv), mv)
    rid = retrieval.run_retrieval(ws, retrieval.RetrievalConfig(
        methods=["oracle", "attribute"], n_queries=12, k=3, split_weights={"train": 1, "test": 1},
        caption_similarity=False, resamples=100))
    with StandInJudge() as server:
        judge_retrieval(ws, rid, JudgeConfig(base_url=server.base_url, model="stand-in"), resamples=100)
    sid = ab_study.create_study(ws, rid, method="oracle:1", baselines=["attribute:1"], n_triplets=5)
    mining.run_mining(ws, relational="oracle", attribute="attribute", top=15)
    for name, role in USERS.items():
        create_user(ws.engine, name, f"{name}-password", role)
    ws.engine.dispose()
    return root, sid


@pytest.fixture
def env(template, tmp_path):
    root, sid = template
    shutil.copytree(root, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    yield ws, sid
    ws.engine.dispose()


def uid(ws, name: str) -> int:
    from relcurate.db.models import User

    with read_scope(ws.engine) as s:
        return s.exec(select(User.id).where(User.username == name)).one()


def html_of(at) -> str:
    return "\n".join(str(h.proto.body) for h in at.get("html"))


def test_raters_answer_the_ab_study(env, monkeypatch):
    ws, sid = env
    at = open_app(ws, monkeypatch, "ann", "ann-password", "ab-study")
    assert not at.exception and titles(at) == ["A/B study"]
    assert "Similarity space" not in url_paths(at) and "Relationally close, visually far" not in url_paths(at)
    assert html_of(at).count("data:image/") >= 3  # query, A, B: inline, no /media/ URL
    ann = uid(ws, "ann")
    first = ab_study.next_trial(ws, sid, ann)
    at.button(key="ab_left").click().run()
    assert not at.exception
    assert ab_study.progress_of(ws, sid, ann)["mine"] == 1
    second = ab_study.next_trial(ws, sid, ann)
    assert second.triplet_id != first.triplet_id
    at.button(key="ab_same").click().run()
    assert ab_study.progress_of(ws, sid, ann)["mine"] == 2
    res = ab_study.study_results(ws, sid, save=False)
    assert res["answers"] == 2 and res["pairs"][0]["same"]["estimate"] == 0.5


def test_results_page_shows_every_kind(env, monkeypatch):
    ws, sid = env
    ann = uid(ws, "ann")
    ab_study.record_answer(ws, ab_study.next_trial(ws, sid, ann).triplet_id, ann, "left", a_on_left=True)
    at = open_app(ws, monkeypatch, "ann", "ann-password", "eval-results")
    assert not at.exception and titles(at) == ["Evaluation results"]
    assert at.dataframe and len(at.get("vega_lite_chart")) == 1
    at.radio(key="evr_kind").set_value("judge").run()
    assert not at.exception and "LPIPS 4" in shown_text(at)
    at.radio(key="evr_kind").set_value("ab").run()
    assert not at.exception and at.dataframe and len(at.get("vega_lite_chart")) == 1


def test_similarity_space_page(env, monkeypatch):
    ws, _ = env
    at = open_app(ws, monkeypatch, "cur", "cur-password", "similarity-space")
    assert not at.exception and titles(at) == ["Similarity space"]
    chart = at.get("vega_lite_chart")[0].proto
    spec = chart.spec + "".join(str(d.data) for d in chart.datasets)
    assert "same logic, look different" in spec and "data:image/" in spec  # hover images inline
    target = next(o for o in at.selectbox(key="space_open").options if o != "—")
    at.selectbox(key="space_open").select_index(1).run()
    assert not at.exception
    at.button(key="space_group").click().run()
    assert not at.exception and "Draft seed group" in shown_text(at)
    with read_scope(ws.engine) as s:
        g = s.exec(select(SeedGroup).where(SeedGroup.source == "mining")).one()
        assert member_ids(ws, g.id)[0] == 1 and len(member_ids(ws, g.id)) == 2
    # Add another image of the space to that draft group.
    at.selectbox(key="space_open").select_index(2).run()
    at.selectbox(key="space_target").set_value(g.id).run()
    at.button(key="space_add").click().run()
    assert not at.exception and "added to group" in shown_text(at)
    with read_scope(ws.engine) as s:
        assert len(member_ids(ws, g.id)) == 3
    assert target


def test_mining_page_starts_a_group_from_a_pair(env, monkeypatch):
    ws, _ = env
    at = open_app(ws, monkeypatch, "cur", "cur-password", "mining")
    assert not at.exception and titles(at) == ["Relationally close, visually far"]
    buttons = [b for b in at.button if str(b.key).startswith("mining_group_")]
    assert len(buttons) == 10
    _, _, a, b = buttons[0].key.split("_")
    buttons[0].click().run()
    assert not at.exception and f"started from images #{a} and #{b}" in shown_text(at)
    at.button(key="mining_next").click().run()
    assert "page 2 of 2" in shown_text(at)
    with read_scope(ws.engine) as s:
        g = s.exec(select(SeedGroup).where(SeedGroup.source == "mining")).one()
        assert member_ids(ws, g.id) == [int(a), int(b)]
