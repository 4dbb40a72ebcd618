"""Separation of duties on captions (the writer / last editor cannot accept, unless the workspace
allows self-accepts, recorded), object nouns marked as shown by every member, and the
"uncaptioned" queue opening on rejected captions. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from relcurate.accounts import create_user
from relcurate.curation.groups import captions, membership as groups
from relcurate.curation.groups.captions import CaptionError, SelfAcceptError
from relcurate.db.models import GroupStatus
from relcurate.testing.groups import populate
from relcurate.workspace import Workspace, WorkspaceError

NOUNY = "A {Fruit} placed right next to a bicycle on a {Surface}."  # "bicycle": an object noun
CLEAN = "A {Fruit} placed right next to a {Vehicle} on a {Surface}."


@pytest.fixture
def team(workspace, tmp_path):
    ids = populate(workspace, tmp_path)
    users = {n: create_user(workspace.engine, n, f"{n}-password", role).id
             for n, role in (("ann", "curator"), ("bob", "reviewer"), ("root", "admin"))}
    gid = groups.create_group(workspace, "blues", [ids[f"blue{i}"] for i in range(3)],
                              status=GroupStatus.complete).id
    return workspace, gid, users


def test_writer_and_last_editor_cannot_accept(team):
    ws, gid, u = team
    cid = captions.add_group_caption(ws, gid, CLEAN, source="human", user_id=u["ann"]).id
    with pytest.raises(SelfAcceptError, match="you wrote caption"):
        captions.review_caption(ws, cid, "accept", user_id=u["ann"])
    captions.review_caption(ws, cid, "edit", user_id=u["root"], text=CLEAN.replace("placed", "set"))
    with pytest.raises(SelfAcceptError, match="last edited"):  # admins are not exempt
        captions.review_caption(ws, cid, "accept", user_id=u["root"])
    with pytest.raises(SelfAcceptError):  # accepting with new text makes you its last editor
        captions.review_caption(ws, cid, "accept", user_id=u["bob"], text=CLEAN)
    assert captions.accepted_caption(ws, gid) is None
    assert [e.action for e in captions.history(ws, cid)] == ["propose", "edit"]  # refusals record nothing
    out = captions.review_caption(ws, cid, "accept", user_id=u["bob"])
    assert out.events == ["accept"] and captions.history(ws, cid)[-1].reason is None
    with pytest.raises(SelfAcceptError):  # writing and accepting in one go is a self-accept too
        captions.write_and_review(ws, gid, CLEAN, "accept", user_id=u["bob"])


def test_workspace_setting_allows_self_accept_and_records_it(team):
    ws, gid, u = team
    cfg = ws.root / "relcurate.toml"
    assert "allow_self_accept = false" in cfg.read_text()
    cfg.write_text(cfg.read_text().replace("allow_self_accept = false", "allow_self_accept = true"))
    solo = Workspace.open(ws.root, db_url=ws.db_url_setting)
    assert solo.review.allow_self_accept
    cid = captions.add_group_caption(solo, gid, CLEAN, source="human", user_id=u["ann"]).id
    assert captions.review_caption(solo, cid, "accept", user_id=u["ann"]).events == ["accept"]
    assert captions.history(solo, cid)[-1].reason == captions.SELF_ACCEPT
    with pytest.raises(SelfAcceptError):  # a bare Engine has no config: the default holds
        captions.review_caption(ws.engine, captions.add_group_caption(ws, gid, NOUNY, source="human",
                                                                      user_id=u["ann"]).id,
                                "accept", user_id=u["ann"], allow_errors=True)
    cfg.write_text(cfg.read_text().replace("allow_self_accept = true", 'allow_self_accept = "yes"'))
    with pytest.raises(WorkspaceError, match="allow_self_accept"):
        Workspace.open(ws.root)


def test_shared_nouns_are_recorded_and_pass_the_checker(team):
    ws, gid, u = team
    cid = captions.add_group_caption(ws, gid, NOUNY, source="model").id
    with pytest.raises(CaptionError, match="object_noun"):
        captions.review_caption(ws, cid, "accept", user_id=u["bob"])
    assert captions.mark_shared_noun(ws, cid, "Bicycle", user_id=u["ann"]) is True
    assert captions.mark_shared_noun(ws, cid, "bicycle", user_id=u["ann"]) is False  # double click
    assert captions.shared_nouns(ws, cid) == ("bicycle",)
    item = captions.group_review_item(ws, gid)
    assert item.shared_nouns == ("bicycle",) and item.check(NOUNY).ok
    ev = [e for e in captions.history(ws, cid) if e.action == "share_noun"]
    assert [(e.text, e.username) for e in ev] == [("bicycle", "ann")]
    assert captions.review_caption(ws, cid, "accept", user_id=u["bob"]).events == ["accept"]
    with pytest.raises(CaptionError, match="not a noun"):
        captions.mark_shared_noun(ws, cid, "<b>x</b>", user_id=u["ann"])
    assert captions.mark_shared_noun(ws, cid, "bicycle", user_id=u["ann"], shared=False) is True
    assert captions.shared_nouns(ws, cid) == ()


def test_uncaptioned_queue_opens_on_rejected_captions(team, tmp_path):
    ws, gid, u = team
    fresh = groups.create_group(ws, "empty-ish", [1, 2], status=GroupStatus.complete).id
    later = groups.create_group(ws, "rejected later", [3, 4], status=GroupStatus.complete).id
    cid = captions.add_group_caption(ws, later, CLEAN, source="model").id
    captions.review_caption(ws, cid, "reject", user_id=u["bob"], reason="describes one image")
    queue = captions.group_queue(ws, "uncaptioned")
    assert queue[0] == later and set(queue) == {gid, fresh, later}
    item = captions.group_review_item(ws, later)
    assert item.last_rejection.reason == "describes one image" and item.last_rejection.username == "bob"


def test_find_review_group_by_id_or_name(team):
    ws, gid, _ = team
    draft = groups.create_group(ws, "draft blues", [1], status=GroupStatus.draft).id
    assert captions.find_review_group(ws, str(gid)) == gid
    assert captions.find_review_group(ws, f"#{gid}") == gid
    assert captions.find_review_group(ws, "BLUE") == gid  # any case; the draft is not reviewable
    assert captions.find_review_group(ws, str(draft)) is None
    assert captions.find_review_group(ws, "nothing like it") is None and captions.find_review_group(ws, " ") is None
