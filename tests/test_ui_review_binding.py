"""The caption review page (AppTest): after a save in the "accepted" queue the page stays on that
group and the next key acts on it; a stale action is refused; an author cannot accept their own
caption (message next to the buttons); rejection reason up front; jump to a group; shared nouns;
links between the group builder and the review page; confirmation before removing a member."""
from __future__ import annotations

import shutil

import pytest

from relcurate.accounts import create_user
from relcurate.curation.groups import captions, membership as groups
from relcurate.db.models import GroupStatus
from relcurate.labeling_ui import pages_groups, pages_review as page
from relcurate.testing.groups import open_app, populate, shown_text
from relcurate.workspace import Workspace

CLEAN = "A {Fruit} shown next to an {Object} on a {Surface}."
EDITED = "A {Fruit} set beside an {Object} on a {Surface}."


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui-review-binding")
    ws = Workspace.init(tmp / "ws")
    ids = populate(ws, tmp)
    users = {n: create_user(ws.engine, n, f"{n}-password", role).id
             for n, role in (("rev", "reviewer"), ("cur", "curator"))}
    ws.engine.dispose()
    return ws.root, ids, users


@pytest.fixture
def env(template, tmp_path):
    root, ids, users = template
    shutil.copytree(root, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    yield ws, ids, users
    ws.engine.dispose()


def accepted_groups(ws, ids, users, n=3) -> list[int]:
    out = []
    for fam in ("red", "blue", "green")[:n]:
        gid = groups.create_group(ws, f"{fam}s", [ids[f"{fam}{i}"] for i in range(3)], status=GroupStatus.complete).id
        cid = captions.add_group_caption(ws, gid, CLEAN, source="model").id
        captions.review_caption(ws, cid, "accept", user_id=users["cur"])
        out.append(gid)
    return out


def _flat(node):
    """The page's elements in drawing order."""
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _flat(child)


def editor_key(at) -> str:
    return next(t.key for t in at.text_area if t.key.startswith("rev_text_"))


def test_edit_in_accepted_queue_stays_on_the_group(env, monkeypatch):
    ws, ids, users = env
    first, second, third = accepted_groups(ws, ids, users)
    at = open_app(ws, monkeypatch, "rev", "rev-password", "review")
    at.selectbox(key=page.K_QUEUE).set_value("accepted").run()
    at.button(key="rev_next").click().run()
    assert f"Group #{second}" in shown_text(at)
    at.text_area(key=editor_key(at)).input(EDITED).run()
    at.button(key="rev_edit").click().run()
    assert not at.exception
    text = shown_text(at)
    assert f"Saved the caption of group #{second}." in text and f"Group #{second} ·" in text
    assert "no longer in the" in text  # it left the "accepted" queue but stays on screen
    assert captions.current_caption(ws, second).text == EDITED
    # the next key (X) acts on the group on screen, not on another one
    reason = next(t.key for t in at.text_input if t.key.startswith("rev_reason_"))
    at.text_input(key=reason).input("too close to the alt-texts")
    at.button(key="rev_reject").click().run()
    assert f"Rejected the caption of group #{second}." in shown_text(at)
    assert captions.current_caption(ws, second).status == "rejected"
    assert captions.accepted_caption(ws, first) == CLEAN and captions.accepted_caption(ws, third) == CLEAN


def test_a_stale_action_is_refused(env, monkeypatch):
    ws, ids, users = env
    first, second, _ = accepted_groups(ws, ids, users)
    at = open_app(ws, monkeypatch, "rev", "rev-password", "review")
    at.selectbox(key=page.K_QUEUE).set_value("accepted").run()
    # the buttons on screen are bound to the first group; pretend the page now shows another
    at.session_state[page.K_SHOWN] = page.Bound(page.Target("group", second), None)
    at.button(key="rev_edit").click().run()
    assert f"That action was for group #{first}, which is not on screen" in shown_text(at)
    # another reviewer replaced the caption meanwhile: refused too
    at = open_app(ws, monkeypatch, "rev", "rev-password", "review")
    at.selectbox(key=page.K_QUEUE).set_value("accepted").run()
    new = captions.add_group_caption(ws, first, EDITED, source="human", user_id=users["cur"])
    captions.review_caption(ws, new.id, "accept", user_id=users["rev"])
    at.button(key="rev_accept").click().run()
    assert f"The caption of group #{first} changed since the page was drawn" in shown_text(at)


def test_author_cannot_accept_own_caption_message_next_to_buttons(env, monkeypatch):
    ws, ids, users = env
    gid = groups.create_group(ws, "reds", [ids[f"red{i}"] for i in range(3)], status=GroupStatus.complete).id
    captions.add_group_caption(ws, gid, CLEAN, source="human", user_id=users["cur"])
    at = open_app(ws, monkeypatch, "cur", "cur-password", "review")
    at.button(key="rev_accept").click().run()
    errors = [e.value for e in at.error]
    assert any("another reviewer must accept it" in e for e in errors)
    assert captions.accepted_caption(ws, gid) is None
    # drawn after the action buttons (not at the top of the page)
    nodes = list(_flat(at.main))
    button = next(i for i, n in enumerate(nodes) if getattr(n, "key", None) == "rev_accept")
    message = next(i for i, n in enumerate(nodes) if "another reviewer must accept it" in str(getattr(n, "value", "")))
    title = next(i for i, n in enumerate(nodes) if getattr(n, "type", None) == "title")
    assert title < button < message
    at = open_app(ws, monkeypatch, "rev", "rev-password", "review")
    at.button(key="rev_accept").click().run()
    assert captions.accepted_caption(ws, gid) == CLEAN


def test_uncaptioned_queue_shows_rejection_reason_up_front(env, monkeypatch):
    ws, ids, users = env
    fresh = groups.create_group(ws, "reds", [ids[f"red{i}"] for i in range(3)], status=GroupStatus.complete).id
    gid = groups.create_group(ws, "blues", [ids[f"blue{i}"] for i in range(3)], status=GroupStatus.complete).id
    cid = captions.add_group_caption(ws, gid, CLEAN, source="model").id
    captions.review_caption(ws, cid, "reject", user_id=users["cur"], reason="describes only one image")
    at = open_app(ws, monkeypatch, "rev", "rev-password", "review")
    at.selectbox(key=page.K_QUEUE).set_value("uncaptioned").run()
    assert f"Group #{gid} ·" in shown_text(at) and fresh != gid  # rejected first, though its id is higher
    assert any("describes only one image" in w.value and "Rejected" in w.value for w in at.warning)


def test_jump_to_group_by_id_and_name(env, monkeypatch):
    ws, ids, users = env
    first, second, third = accepted_groups(ws, ids, users)
    at = open_app(ws, monkeypatch, "rev", "rev-password", "review")
    at.text_input(key=page.K_JUMP).input(str(third)).run()
    assert f"Group #{third} ·" in shown_text(at)
    at.text_input(key=page.K_JUMP).input("blue").run()
    assert f"Group #{second} ·" in shown_text(at)
    at.text_input(key=page.K_JUMP).input("no such group").run()
    assert "No reviewable group matches" in shown_text(at)


def test_mark_a_flagged_object_noun_as_shared(env, monkeypatch):
    ws, ids, users = env
    gid = groups.create_group(ws, "blues", [ids[f"blue{i}"] for i in range(3)], status=GroupStatus.complete).id
    cid = captions.add_group_caption(ws, gid, "A {Fruit} placed right next to a bicycle on a {Surface}.",
                                     source="model").id
    at = open_app(ws, monkeypatch, "rev", "rev-password", "review")
    share = [b for b in at.button if b.key.startswith("rev_share_")]
    assert share and "bicycle" in share[0].key
    share[0].click().run()
    assert "Marked 'bicycle' as shown by every member" in shown_text(at)
    assert captions.shared_nouns(ws, cid) == ("bicycle",)
    at.button(key="rev_accept").click().run()
    assert captions.history(ws, cid)[-1].action == "accept"


def test_group_builder_links_and_confirms_removal(env, monkeypatch):
    ws, ids, users = env
    gid = groups.create_group(ws, "reds", [ids[f"red{i}"] for i in range(3)], status=GroupStatus.complete).id
    at = open_app(ws, monkeypatch, "cur", "cur-password", "groups")
    at.session_state[pages_groups.K_GROUP] = gid
    at.run()
    member = ids["red1"]
    at.button(key=f"grp_remove_{member}").click().run()
    assert f"Remove #{member} from the group?" in shown_text(at)
    assert member in groups.member_ids(ws, gid)  # only asked, nothing removed yet
    at.button(key=f"grp_remove_no_{member}").click().run()
    assert f"Remove #{member} from the group?" not in shown_text(at)
    at.button(key=f"grp_remove_{member}").click().run()
    at.button(key=f"grp_remove_yes_{member}").click().run()
    assert f"Removed #{member} from group #{gid}." in shown_text(at) and member not in groups.member_ids(ws, gid)
    at.button(key="grp_to_review").click().run()
    assert not at.exception and "Caption review" in [t.value for t in at.title]
    assert f"Group #{gid} ·" in shown_text(at)
    at.button(key="rev_to_group").click().run()
    assert "Seed groups" in [t.value for t in at.title]
