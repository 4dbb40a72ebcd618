"""Caption proposal and review: append-only history, idempotent actions, the anonymity check on
accept, one accepted caption per group, group status following captions, review queues,
per-image sampling, and proposals from a real (tiny) Qwen2.5-VL captioner."""
from __future__ import annotations

import pytest
from sqlmodel import select

from relcurate.testing.groups import populate
from relcurate.accounts import create_user
from relcurate.curation.groups import captions, membership as groups
from relcurate.curation.groups.captions import CaptionError
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import CaptionReview, GroupStatus, Image, ImageStatus, ModelKind, ModelVersion, SeedGroup

LEAKY = "A {Fruit} shown next to a teapot on a {Surface}."  # "teapot": red1's alt-text
CLEAN = "A {Fruit} shown next to {Object} on a {Surface}."


@pytest.fixture
def reds(workspace, tmp_path):
    """(workspace, complete group of three red images whose alt-texts mention an apple, reviewer)."""
    ids = populate(workspace, tmp_path)
    user = create_user(workspace.engine, "rev", "reviewer-pw", "reviewer")
    gid = groups.create_group(workspace, "reds", [ids["red0"], ids["red1"], ids["red2"]],
                              status=GroupStatus.complete).id
    return workspace, gid, user.id


def group_status(ws, gid):
    with read_scope(ws.engine) as s:
        return s.get(SeedGroup, gid).status


def test_review_history_is_append_only_and_idempotent(reds):
    ws, gid, uid = reds
    cap = captions.add_group_caption(ws, gid, f'"{LEAKY}"', source="model")  # literal quotes stripped
    cid = cap.id
    assert cap.text == LEAKY
    assert group_status(ws, gid) == GroupStatus.captioned
    with pytest.raises(CaptionError, match="alt_text_leak"):
        captions.review_caption(ws, cid, "accept", user_id=uid)
    out = captions.review_caption(ws, cid, "edit", user_id=uid, text=CLEAN)
    assert out.events == ["edit"] and out.caption.status == "proposed"
    assert captions.review_caption(ws, cid, "edit", user_id=uid, text=f"  {CLEAN} ").events == []
    before = [(e.id, e.action, e.text) for e in captions.history(ws, cid)]
    # uid edited it: one-person-team setting (separation of duties is tested in test_caption_duties.py)
    assert captions.review_caption(ws, cid, "accept", user_id=uid, allow_self_accept=True).events == ["accept"]
    assert captions.review_caption(ws, cid, "accept", user_id=uid).events == []  # double click
    assert group_status(ws, gid) == GroupStatus.verified
    assert captions.accepted_caption(ws, gid) == CLEAN
    with pytest.raises(CaptionError, match="why"):
        captions.review_caption(ws, cid, "reject", user_id=uid, reason="  ")
    assert captions.review_caption(ws, cid, "reject", user_id=uid, reason="too vague").events == ["reject"]
    assert captions.review_caption(ws, cid, "reject", user_id=uid, reason="again").events == []
    assert captions.accepted_caption(ws, gid) is None
    assert group_status(ws, gid) == GroupStatus.complete  # no live caption left
    events = captions.history(ws, cid)
    assert [(e.id, e.action, e.text) for e in events[:len(before)]] == before  # earlier events untouched
    assert [e.action for e in events] == ["propose", "edit", "accept", "reject"]
    assert events[0].text == LEAKY and events[-1].reason == "too vague" and events[-1].username == "rev"
    assert events[0].user_id is None  # proposed by the model


def test_accept_with_edited_text_and_overruling_the_checker(reds):
    ws, gid, uid = reds
    cid = captions.add_group_caption(ws, gid, LEAKY, source="model").id
    out = captions.review_caption(ws, cid, "accept", user_id=uid, text=CLEAN, allow_self_accept=True)
    assert out.events == ["edit", "accept"] and out.caption.text == CLEAN
    second = captions.add_group_caption(ws, gid, LEAKY, source="human").id
    forced = captions.review_caption(ws, second, "accept", user_id=uid, allow_errors=True)
    assert forced.events == ["accept"]
    assert captions.accepted_caption(ws, gid) == LEAKY
    # only one accepted caption per group: the first was superseded
    rows = {e.action: e for e in captions.history(ws, cid)}
    assert rows["reject"].reason == f"superseded by caption #{second}"
    assert captions.history(ws, second)[-1].reason == "accepted despite checker errors"
    assert captions.accepted_group_captions(ws) == {gid: LEAKY}
    with pytest.raises(CaptionError, match="empty"):
        captions.add_group_caption(ws, gid, ' "" ', source="human")
    with pytest.raises(CaptionError, match="unknown review action"):
        captions.review_caption(ws, cid, "approve", user_id=uid)
    with pytest.raises(CaptionError, match="no caption"):
        captions.review_caption(ws, 10_000_000, "accept", user_id=uid)


def test_review_queues_and_items(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    ids = populate(ws, tmp_path)
    uid = create_user(ws.engine, "rev", "reviewer-pw", "reviewer").id
    make = lambda fam: groups.create_group(ws, fam, [ids[f"{fam}{i}"] for i in range(3)],  # noqa: E731
                                           status=GroupStatus.complete).id
    g_red, g_blue, g_green = make("red"), make("blue"), make("green")
    g_draft = groups.create_group(ws, "draft", [ids["plain"]]).id
    c_blue = captions.add_group_caption(ws, g_blue, CLEAN, source="model").id
    captions.add_group_caption(ws, g_green, CLEAN, source="model")
    c_green = captions.add_group_caption(ws, g_green, "The {Thing} resting on {Place} in {Light}.",
                                         source="model").id
    captions.review_caption(ws, c_green, "accept", user_id=uid)
    queues = {q: captions.group_queue(ws, q) for q in captions.QUEUES}
    assert queues == {"to review": [g_blue], "uncaptioned": [g_red], "accepted": [g_green],
                      "rejected": [], "all": [g_red, g_blue, g_green]}
    assert g_draft not in queues["all"]  # drafts are not ready for captions
    captions.review_caption(ws, c_blue, "reject", user_id=uid, reason="wrong logic")
    assert captions.group_queue(ws, "rejected") == [g_blue]
    out = captions.write_and_review(ws, g_red, LEAKY, "edit", user_id=uid)
    assert out.events == ["propose"] and out.caption.source == "human"
    item = captions.group_review_item(ws, g_red)
    assert [c.id for c in item.members] == [ids["red0"], ids["red1"], ids["red2"]]
    assert item.group.status == GroupStatus.captioned and item.caption.text == LEAKY
    assert any("apple" in a for a in item.alt_texts)
    assert "alt_text_leak" in {f.code for f in item.check(LEAKY).findings} and item.check(CLEAN).ok
    assert [e.action for e in item.history] == ["propose"]
    green = captions.group_review_item(ws, g_green)
    assert green.caption.id == c_green  # the accepted one, not the newer-or-older proposal


def test_per_image_caption_sampling(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    ids = populate(ws, tmp_path)
    cids = [captions.add_image_caption(ws, ids[f"blue{i}"], f"A {{Vessel}} number {i} at {{Place}}.",
                                       source="model").id for i in range(5)]
    captions.review_caption(ws, cids[0], "reject", user_id=None, reason="no")
    sample = captions.sample_image_captions(ws, 2, seed=3)
    assert sample == captions.sample_image_captions(ws, 2, seed=3) and len(sample) == 2
    assert set(sample) <= set(cids[1:])
    assert captions.sample_image_captions(ws, 10) == cids[1:]
    assert captions.sample_image_captions(ws, 10, status=None) == cids
    item = captions.image_review_item(ws, cids[1])
    assert item.group is None and [c.id for c in item.members] == [ids["blue1"]]
    assert any("boat" in a for a in item.alt_texts)
    with pytest.raises(CaptionError):
        captions.image_review_item(ws, 10_000_000)


@pytest.mark.slow
def test_propose_with_a_real_tiny_captioner(sqlite_workspace, tmp_path):
    from relcurate.testing.models import tiny_qwen_path
    from relcurate.models.qwen_captioner import GenerationSettings

    ws = sqlite_workspace
    ids = populate(ws, tmp_path)
    gid = groups.create_group(ws, "reds", [ids["red0"], ids["red1"]], status=GroupStatus.complete).id
    with session_scope(ws.engine) as s:
        pending = Image(source_uri="https://example.org/later.png", status=ImageStatus.pending_download)
        s.add(pending)
        s.flush()
    bad = groups.create_group(ws, "waiting", [ids["red2"], pending.id]).id
    assert captions.latest_captioner(ws) is None
    with pytest.raises(CaptionError, match="no captioner"):
        captions.propose_with_model(ws, gid, None)
    path = tiny_qwen_path("real")
    with session_scope(ws.engine) as s:
        s.add(ModelVersion(kind=ModelKind.captioner, name="tiny", base_model=str(path)))
    spec = captions.latest_captioner(ws)
    assert spec.name == "tiny" and spec.adapter_path is None
    model = captions.load_captioner(ws, spec, generation=GenerationSettings(max_new_tokens=8))
    assert model.checker is not None  # generated captions come with the anonymity checker's findings
    expected = model.caption_group(captions.group_images(ws, gid))  # greedy: deterministic
    view = captions.propose_with_model(ws, gid, model, model_version_id=spec.model_version_id)
    assert view.source == "model" and view.model_version_id == spec.model_version_id
    assert view.text == captions.normalise_caption(expected) and view.status == "proposed"
    assert group_status(ws, gid) == GroupStatus.captioned
    with read_scope(ws.engine) as s:
        assert [r.action for r in s.exec(select(CaptionReview).where(CaptionReview.caption_id == view.id))] == ["propose"]
    with pytest.raises(CaptionError, match="not available"):
        captions.propose_with_model(ws, bad, model)
