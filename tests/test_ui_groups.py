"""The group builder page through AppTest (in-process, no browser): who may open it, starting a
group from an image, adding/reordering/removing members, completion rules, "more like this
group", the "also in" listing, splitting an oversized group, comparing curators."""
from __future__ import annotations

import re

import pytest

from relcurate.testing.apptest import as_displayed, url_paths as registered_pages
from relcurate.testing.groups import open_app, populate, shown_text
from relcurate.accounts import create_user
from relcurate.curation.groups import membership as groups
from relcurate.db.engine import read_scope
from relcurate.db.models import GroupStatus, SeedGroup
from relcurate.labeling_ui import pages_groups as page
from relcurate.workspace import Workspace

USERS = {"cur": "curator", "cur2": "curator", "rev": "reviewer", "ann": "annotator", "boss": "admin"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui-groups")
    ws = Workspace.init(tmp / "ws")
    ids = populate(ws, tmp)
    users = {name: create_user(ws.engine, name, f"{name}-password", role).id for name, role in USERS.items()}
    yield ws, ids, users
    ws.engine.dispose()


def as_user(env, monkeypatch, name: str, page_path: str | None = "groups"):
    ws = env[0]
    return open_app(ws, monkeypatch, name, f"{name}-password", page_path)


def select_group(at, gid: int):
    next(sb for sb in at.selectbox if sb.label == "Group").set_value(gid).run()
    assert not at.exception and at.session_state[page.K_GROUP] == gid


def members(ws, gid: int) -> list[int]:
    return groups.member_ids(ws, gid)


def group(ws, gid: int) -> SeedGroup:
    with read_scope(ws.engine) as s:
        return s.get(SeedGroup, gid)


@pytest.mark.parametrize("name, sees", [("cur", True), ("boss", True), ("rev", False), ("ann", False)])
def test_only_curators_and_admins_get_the_builder(env, monkeypatch, name, sees):
    at = as_user(env, monkeypatch, name)
    assert not at.exception
    assert ("Seed groups" in registered_pages(at)) is sees
    assert ("Seed groups" in [t.value for t in at.title]) is sees  # typing /groups does not open it


def test_build_a_group_from_one_image(env, monkeypatch):
    ws, ids, users = env
    at = as_user(env, monkeypatch, "cur")
    at.button(key=f"grp_start_browse_{ids['red0']}").click().run()
    gid = at.session_state[page.K_GROUP]
    assert group(ws, gid).created_by == users["cur"] and members(ws, gid) == [ids["red0"]]
    assert "Started a group" in shown_text(at)
    at.button(key="grp_to_complete").click().run()  # one image is not a group
    assert any("2-10 images, not 1" in as_displayed(e.value) for e in at.error)
    for key in ("red1", "red2"):
        at.button(key=f"grp_add_browse_{ids[key]}").click().run()
    assert members(ws, gid) == [ids["red0"], ids["red1"], ids["red2"]]
    at.button(key=f"grp_right_{ids['red0']}").click().run()
    at.button(key=f"grp_remove_{ids['red2']}").click().run()  # asks first
    assert members(ws, gid) == [ids["red1"], ids["red0"], ids["red2"]]
    at.button(key=f"grp_remove_yes_{ids['red2']}").click().run()
    assert members(ws, gid) == [ids["red1"], ids["red0"]]
    at.text_input(key=f"grp_name_{gid}").input("reds on tables")
    at.text_area(key=f"grp_note_{gid}").input("same {Fruit}, different {Object}")
    at.button[[b.label for b in at.button].index("Save name and note")].click().run()
    at.button(key="grp_to_complete").click().run()
    assert not at.exception
    g = group(ws, gid)
    assert (g.status, g.name, g.note) == (GroupStatus.complete, "reds on tables", "same {Fruit}, different {Object}")
    # complete groups keep taking members while they stay valid
    assert not at.button(key=f"grp_add_browse_{ids['red3']}").disabled


def test_more_like_this_group_and_the_also_in_listing(env, monkeypatch):
    ws, ids, users = env
    gid = groups.create_group(ws, "blues", [ids["blue0"], ids["blue1"]], created_by=users["cur"]).id
    other = groups.create_group(ws, "elsewhere", [ids["blue2"]], created_by=users["cur"]).id
    at = as_user(env, monkeypatch, "cur")
    select_group(at, gid)
    at.radio(key=page.K_MODE).set_value(page.MODES[1]).run()
    assert not at.exception
    suggested = [b.key for b in at.button if b.key and b.key.startswith("grp_add_centroid_")]
    first_three = {int(k.rsplit("_", 1)[1]) for k in suggested[:3]}
    assert first_three == {ids["blue2"], ids["blue3"], ids["blue4"]}  # the other blues first
    assert f"also in #{other} elsewhere" in shown_text(at)
    assert "Leave one out" in shown_text(at)
    at.button(key=f"grp_add_centroid_{ids['blue3']}").click().run()
    assert members(ws, gid) == [ids["blue0"], ids["blue1"], ids["blue3"]]
    # "images like this one" from a member tile
    at.button(key=f"grp_similar_{ids['blue0']}").click().run()
    assert at.radio(key=page.K_MODE).value == page.MODES[2]
    liked = [int(b.key.rsplit("_", 1)[1]) for b in at.button if b.key and b.key.startswith("grp_add_like_")]
    assert set(liked[:2]) <= {ids["blue2"], ids["blue4"]}


def test_split_an_oversized_group(env, monkeypatch):
    ws, ids, users = env
    twelve = [v for k, v in ids.items() if k[:-1] in ("red", "blue")] + [ids["green0"], ids["green1"]]
    gid = groups.create_group(ws, "too big", twelve, created_by=users["cur"]).id
    at = as_user(env, monkeypatch, "cur")
    select_group(at, gid)
    assert any("split it below" in as_displayed(w.value) for w in at.warning)
    at.radio(key=f"grp_split_method_{gid}").set_value("by similarity").run()
    at.button(key="grp_split").click().run()
    assert not at.exception
    assert group(ws, gid).status == GroupStatus.split
    kids = [g for g in groups.list_groups(ws) if g.source == f"split:{gid}"]
    assert sorted(k.n_members for k in kids) == [6, 6]
    assert at.session_state[page.K_GROUP] == kids[0].id


def test_an_oversized_group_shows_its_images_inline(env, monkeypatch):
    """The member tiles and the split preview of a >10 group are data: images: no st.image
    element, so nothing is put behind Streamlit's session-less /media/ endpoint."""
    ws, ids, users = env
    eleven = [v for k, v in ids.items() if k[:-1] in ("green", "blue")] + [ids["red4"]]
    gid = groups.create_group(ws, "oversized", eleven, created_by=users["cur"]).id
    at = as_user(env, monkeypatch, "cur")
    select_group(at, gid)
    assert any("split it below" in as_displayed(w.value) for w in at.warning)
    assert at.get("imgs") == []  # what st.image / col.image would have produced
    bodies = [h.proto.body for h in at.html]
    assert not any(re.search(r"(?<!/static)/media/", b) for b in bodies)
    srcs = [src for b in bodies for src in re.findall(r'<img\b[^>]*\bsrc="([^"]*)"', b)]
    assert all(src.startswith("data:image/") for src in srcs)
    # 11 member tiles + the 11 thumbnails of the suggested parts (+ the candidate grid)
    assert len(srcs) >= 2 * len(eleven)


def test_members_of_a_verified_group_are_fixed(env, monkeypatch):
    ws, ids, users = env
    from relcurate.curation.groups import captions

    gid = groups.create_group(ws, "done", [ids["green2"], ids["green3"]], status=GroupStatus.complete).id
    c = captions.add_group_caption(ws, gid, "A {Animal} resting on {Object} in {Place}.", source="human")
    captions.review_caption(ws, c.id, "accept", user_id=None)
    at = as_user(env, monkeypatch, "cur")
    select_group(at, gid)
    assert at.button(key=f"grp_remove_{ids['green2']}").disabled
    assert "members are fixed" in shown_text(at)
    at.button(key="grp_to_draft").click().run()
    assert group(ws, gid).status == GroupStatus.draft
    assert not at.button(key=f"grp_remove_{ids['green2']}").disabled


def test_compare_two_curators(env, monkeypatch):
    ws, ids, users = env
    groups.create_group(ws, "c2 reds", [ids["red0"], ids["red1"], ids["red3"]], created_by=users["cur2"])
    at = as_user(env, monkeypatch, "boss")
    at.selectbox(key="grp_cmp_a").set_value(users["cur"]).run()
    at.selectbox(key="grp_cmp_b").set_value(users["cur2"]).run()
    assert not at.exception
    table = at.dataframe[-1].value
    values = dict(zip(table["measure"], table["value"]))
    expected = groups.compare_curators(ws, users["cur"], users["cur2"])
    assert values["pairwise F1"] == f"{expected['f1']:.3f}" and values["images compared"] == str(expected["n_images"])
