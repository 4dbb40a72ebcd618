"""The caption review page through AppTest: roles, live checker findings, accept / edit / reject
as review events, writing a caption when no captioner is configured, escaping of caption text,
and the per-image caption sample."""
from __future__ import annotations

import re

import shutil

import pytest

from relcurate.testing.apptest import as_displayed, url_paths as registered_pages
from relcurate.testing.groups import open_app, populate, shown_text
from relcurate.accounts import create_user
from relcurate.curation.groups import captions, membership as groups
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import GroupStatus
from relcurate.labeling_ui import pages_review as page
from relcurate.workspace import Workspace

USERS = {"rev": "reviewer", "cur": "curator", "ann": "annotator"}
LEAKY = "A {Fruit} shown next to a teapot on a {Surface}."  # "teapot": in red1's alt-text
CLEAN = "A {Fruit} shown next to an {Object} on a {Surface}."
SCRIPT = "<script>alert(1)</script> {Subject} of the {Thing} in its {Stage} stage."


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Images and accounts, built once (ingest and password hashing are the slow parts)."""
    tmp = tmp_path_factory.mktemp("ui-review")
    ws = Workspace.init(tmp / "ws")
    ids = populate(ws, tmp)
    users = {name: create_user(ws.engine, name, f"{name}-password", role).id for name, role in USERS.items()}
    ws.engine.dispose()  # checkpoints the WAL: the folder is now a complete copy source
    return ws.root, ids, users


@pytest.fixture
def env(template, tmp_path):
    """Per test a fresh copy of the template workspace: the queues depend on every caption."""
    root, ids, users = template
    shutil.copytree(root, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    yield ws, ids, users
    ws.engine.dispose()


def complete_group(ws, ids, fam: str, caption: str | None = None) -> int:
    gid = groups.create_group(ws, f"{fam}s", [ids[f"{fam}{i}"] for i in range(3)], status=GroupStatus.complete).id
    if caption:
        captions.add_group_caption(ws, gid, caption, source="model")
    return gid


def open_review(env, monkeypatch, name: str = "rev"):
    return open_app(env[0], monkeypatch, name, f"{name}-password", "review")


def editor_key(at) -> str:
    return next(t.key for t in at.text_area if t.key.startswith("rev_text_"))


@pytest.mark.parametrize("name, sees", [("rev", True), ("cur", True), ("ann", False)])
def test_reviewers_and_curators_get_the_page(env, monkeypatch, name, sees):
    at = open_review(env, monkeypatch, name)
    assert not at.exception
    assert ("Caption review" in registered_pages(at)) is sees
    assert ("Caption review" in [t.value for t in at.title]) is sees


def test_fix_a_leaking_caption_and_accept(env, monkeypatch):
    ws, ids, users = env
    gid = complete_group(ws, ids, "red", LEAKY)
    at = open_review(env, monkeypatch)
    assert not at.exception
    assert any("alt_text_leak" in e.value and "teapot" in as_displayed(e.value) for e in at.error)
    at.button(key="rev_accept").click().run()  # refused: the checker found an error
    assert any("anonymity check found errors" in as_displayed(e.value) for e in at.error)
    key = editor_key(at)
    at.text_area(key=key).input(CLEAN).run()  # what typing does
    assert not at.error and "The anonymity check found nothing." in shown_text(at)
    at.button(key="rev_accept").click().run()  # separation of duties: rev's edit needs another reviewer
    assert "another reviewer must accept it" in shown_text(at) and captions.accepted_caption(ws, gid) is None
    at.button(key="rev_edit").click().run()  # saved; another reviewer accepts it
    at = open_review(env, monkeypatch, "cur")
    at.button(key="rev_accept").click().run()
    assert not at.exception and "Accepted the caption" in shown_text(at)
    assert captions.accepted_caption(ws, gid) == CLEAN
    cid = captions.current_caption(ws, gid).id
    events = captions.history(ws, cid)
    assert [(e.action, e.username) for e in events] == [("propose", None), ("edit", "rev"), ("accept", "cur")]
    assert "Nothing in this queue." in shown_text(at)  # the "to review" queue is done
    at.selectbox(key=page.K_QUEUE).set_value("accepted").run()
    assert f"Group #{gid}" in shown_text(at)


def test_reject_needs_a_reason_and_moves_on(env, monkeypatch):
    ws, ids, _ = env
    first = complete_group(ws, ids, "red", CLEAN)
    second = complete_group(ws, ids, "blue", "A {Vessel} near a {Landmark} at {Time}.")
    at = open_review(env, monkeypatch)
    assert f"Group #{first}" in shown_text(at)
    at.button(key="rev_reject").click().run()
    assert any("say why" in e.value for e in at.error)
    reason_key = next(t.key for t in at.text_input if t.key.startswith("rev_reason_"))
    at.text_input(key=reason_key).input("describes only one image")
    at.button(key="rev_reject").click().run()
    assert f"Group #{second}" in shown_text(at)  # moved on to the next group
    assert captions.group_queue(ws, "rejected") == [first]
    ev = captions.history(ws, captions.current_caption(ws, first).id)[-1]
    assert (ev.action, ev.reason) == ("reject", "describes only one image")
    assert "1 of 1" in shown_text(at)  # the rejected group left the "to review" queue
    assert at.button(key="rev_prev").disabled and at.button(key="rev_next").disabled


def test_write_a_caption_when_no_captioner_is_configured(env, monkeypatch):
    ws, ids, _ = env
    gid = complete_group(ws, ids, "green")
    at = open_review(env, monkeypatch)
    at.selectbox(key=page.K_QUEUE).set_value("uncaptioned").run()
    assert "No captioner model is configured" in shown_text(at)
    assert not [b for b in at.button if b.key == "rev_propose"]
    at.text_area(key=f"rev_text_new_{gid}").input("A {Animal} sitting on a {Object} near the {Place}.").run()
    at.button(key="rev_edit").click().run()  # save as a proposal, not accepted yet
    c = captions.current_caption(ws, gid)
    assert (c.source, c.status) == ("human", "proposed")
    with read_scope(ws.engine) as s:
        assert s.get(groups.SeedGroup, gid).status == GroupStatus.captioned


def test_caption_text_is_escaped(env, monkeypatch):
    ws, ids, _ = env
    complete_group(ws, ids, "blue", SCRIPT)
    at = open_review(env, monkeypatch)
    assert not at.exception
    raw = "\n".join(str(m.value) for m in at.markdown)
    assert "<script>" not in raw and "&lt;script&gt;" in raw
    # Shown as those characters (the checker highlights the tags as markup, so they are split).
    assert re.search(r"<script>.*alert\(1\).*</script>", shown_text(at))
    assert at.text_area(key=editor_key(at)).value == SCRIPT  # the editor holds the raw text


def test_per_image_caption_sample(env, monkeypatch):
    ws, ids, _ = env
    cids = [captions.add_image_caption(ws, ids[f"green{i}"], "A {Animal} resting on a {Object} by {Place}.",
                                       source="model").id for i in range(4)]
    at = open_review(env, monkeypatch)
    at.radio(key=page.K_MODE).set_value(page.MODES[1]).run()
    at.number_input(key=page.K_SAMPLE_N).set_value(3).run()
    assert not at.exception and "1 of 3" in shown_text(at)
    first = at.session_state[page.K_CURRENT] if page.K_CURRENT in at.session_state else None
    at.button(key="rev_accept").click().run()
    assert "Accepted the caption of caption #" in shown_text(at)
    sample = captions.sample_image_captions(ws, 3, seed=0, status=None)
    accepted = [c for c in cids if captions.history(ws, c)[-1].action == "accept"]
    assert accepted == [sample[0]] and first in (None, sample[0])
    assert "2 of 3" in shown_text(at)  # moved on within the same sample


def test_captioner_queue_in_queue_order_with_why_and_who(env, monkeypatch):
    """The captioner loop's queue: flagged first, then the least confident, plus the audit share,
    each shown with its reason and captioner version; it opens on the first unreviewed caption,
    and an accept moves on within the queue (reviewed ones keep their place)."""
    from relcurate.curation.groups import caption_queue as cq
    from relcurate.models.registry import register_model

    ws, ids, _ = env
    at = open_review(env, monkeypatch)
    at.radio(key=page.K_MODE).set_value(page.MODES[2]).run()
    assert not at.exception and "captioner queue is empty" in shown_text(at)
    capv = register_model(ws, kind="captioner", name="capper", base_model="x")
    gen = [cq.Generated(ids[f"green{i}"], f"A {{Animal}} resting on a {{Object}} by {{Place}} {i}.",
                        confidence=-float(i), checker_ok=i != 3, checker_codes=() if i != 3 else ("object_noun",))
           for i in range(5)]
    cids = cq.record_generated(ws, capv.id, gen)
    cq.draw_review_sample(ws, capv.id, size=3, audit_share=0.0)
    order = [q.caption_id for q in cq.review_queue(ws)]
    assert order[0] == cids[3]  # the flagged one first
    captions.review_caption(ws, order[0], "reject", user_id=None, reason="names a thing")
    at.run()
    assert not at.exception and "2 of 3 still to review" in shown_text(at)
    text = shown_text(at)
    assert "2 of 3" in text and "capper:1" in text and "low model confidence" in text  # opened on the 1st unreviewed
    assert at.session_state[page.K_CURRENT] == order[1]
    at.button(key="rev_accept").click().run()
    assert not at.exception and captions.history(ws, order[1])[-1].action == "accept"
    assert at.session_state[page.K_CURRENT] == order[2] and "1 of 3 still to review" in shown_text(at)
    at.button(key="rev_prev").click().run()
    assert at.session_state[page.K_CURRENT] == order[1]  # still in its place, now accepted


@pytest.mark.slow
def test_propose_with_the_registered_captioner(env, monkeypatch):
    """With a captioner model registered, the page offers it; its caption is proposed, then reviewed."""
    from relcurate.testing.models import tiny_qwen_path
    from relcurate.db.models import ModelKind, ModelVersion

    ws, ids, _ = env
    gid = complete_group(ws, ids, "red")
    with session_scope(ws.engine) as s:
        s.add(ModelVersion(kind=ModelKind.captioner, name="tiny", base_model=str(tiny_qwen_path("real"))))
    at = open_review(env, monkeypatch)
    at.selectbox(key=page.K_QUEUE).set_value("uncaptioned").run()
    assert "No captioner model is configured" not in shown_text(at)
    at.button(key="rev_propose").click().run()
    assert not at.exception and "The captioner proposed a caption" in shown_text(at)
    c = captions.current_caption(ws, gid)
    assert (c.source, c.status, c.model_version_id) == ("model", "proposed", 1)
    at.selectbox(key=page.K_QUEUE).set_value("to review").run()  # it left "uncaptioned"
    assert at.text_area(key=editor_key(at)).value == c.text  # the editor holds the proposal
