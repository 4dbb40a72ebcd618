"""Seed-group rules on SQLite and PostgreSQL: membership edits, status transitions, splitting,
membership listing, curator agreement; plus splitting the real oversized seed groups."""
from __future__ import annotations

import numpy as np
import pytest
from sqlmodel import select

from relcurate.accounts import create_user
from relcurate.curation.groups import captions, membership as groups, splitting
from relcurate.curation.groups.membership import GroupError
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import Caption, CaptionStatus, GroupMember, GroupStatus, Image, ImageStatus, SeedGroup


def add_images(ws, n: int, status: str = ImageStatus.ok, start: int = 0) -> list[int]:
    """Bare image rows (rules only look at ids and status; no files needed)."""
    with session_scope(ws.engine) as s:
        rows = [Image(sha256=None if status == ImageStatus.pending_download else f"{status[0]}{start + i:063d}",
                      ext="png", source_uri=f"test://{status}/{start + i}", status=status) for i in range(n)]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def positions(ws, gid: int) -> list[tuple[int, int]]:
    with read_scope(ws.engine) as s:
        return list(s.exec(select(GroupMember.position, GroupMember.image_id)
                           .where(GroupMember.group_id == gid).order_by(GroupMember.position)))


def make(ws, ids, status=GroupStatus.draft, **kw) -> int:
    return groups.create_group(ws, "g", ids, status=status, **kw).id


def status_of(ws, gid: int) -> str:
    with read_scope(ws.engine) as s:
        return s.get(SeedGroup, gid).status


def test_membership_edits_keep_positions_contiguous(workspace):
    a, b, c, d, e = add_images(workspace, 5)
    gid = groups.start_group(workspace, a).id
    assert groups.add_members(workspace, gid, [b, c, b, a]) == [b, c]  # duplicates and members skipped
    assert groups.add_members(workspace, gid, [d], position=1) == [d]
    assert groups.member_ids(workspace, gid) == [a, d, b, c]
    groups.move_member(workspace, gid, c, 0)
    assert groups.member_ids(workspace, gid) == [c, a, d, b]
    groups.move_member(workspace, gid, c, 99)  # clamped to the end
    groups.reorder_members(workspace, gid, [b, a, d, c])
    assert groups.remove_members(workspace, gid, [a, e]) == [a]
    assert positions(workspace, gid) == [(0, b), (1, d), (2, c)]
    with pytest.raises(GroupError, match="exactly once"):
        groups.reorder_members(workspace, gid, [b, d])
    with pytest.raises(GroupError, match="not in group"):
        groups.move_member(workspace, gid, e, 0)


def test_starting_twice_reuses_the_users_draft(sqlite_workspace):
    ws = sqlite_workspace
    a, b = add_images(ws, 2)
    uid = create_user(ws.engine, "cur", "curator-pw", "curator").id
    first = groups.start_group(ws, a, created_by=uid).id
    assert groups.start_group(ws, a, created_by=uid).id == first  # double click
    assert groups.start_group(ws, b, created_by=uid).id != first
    empty = groups.new_empty_group(ws, created_by=uid).id
    assert groups.new_empty_group(ws, created_by=uid).id == empty
    groups.add_members(ws, first, [b])
    assert groups.start_group(ws, a, created_by=uid).id != first  # that draft has moved on
    assert groups.start_group(ws, a).id != groups.start_group(ws, a).id  # no user: no reuse


def test_quarantined_unknown_and_pending_images(sqlite_workspace):
    ok = add_images(sqlite_workspace, 2)
    bad = add_images(sqlite_workspace, 1, ImageStatus.quarantined)
    pending = add_images(sqlite_workspace, 1, ImageStatus.pending_download)
    gid = make(sqlite_workspace, ok)
    with pytest.raises(GroupError, match="quarantined"):
        groups.add_members(sqlite_workspace, gid, bad)
    with pytest.raises(GroupError, match="unknown"):
        groups.add_members(sqlite_workspace, gid, [10_000_000])
    groups.add_members(sqlite_workspace, gid, pending)  # a draft may hold an image still downloading ...
    with pytest.raises(GroupError, match="not downloaded"):  # ... but cannot be completed with it
        groups.set_status(sqlite_workspace, gid, GroupStatus.complete)
    with pytest.raises(GroupError, match="quarantined"):
        make(sqlite_workspace, ok + bad)


def test_completion_needs_two_to_ten(sqlite_workspace):
    for n, ok in [(1, False), (2, True), (10, True), (11, False)]:
        gid = make(sqlite_workspace, add_images(sqlite_workspace, n, start=100 * n))
        if ok:
            groups.set_status(sqlite_workspace, gid, GroupStatus.complete)
        else:
            with pytest.raises(GroupError, match="2-10"):
                groups.set_status(sqlite_workspace, gid, GroupStatus.complete)
        assert status_of(sqlite_workspace, gid) == (GroupStatus.complete if ok else GroupStatus.draft)


def test_status_transitions_and_caption_conditions(workspace):
    ids = add_images(workspace, 3)
    gid = make(workspace, ids, status=GroupStatus.complete)
    with pytest.raises(GroupError, match="cannot become"):
        groups.set_status(workspace, gid, GroupStatus.verified)  # complete -> verified skips captioned
    with pytest.raises(GroupError, match="caption that is not rejected"):
        groups.set_status(workspace, gid, GroupStatus.captioned)
    cap = captions.add_group_caption(workspace, gid, "A {Subject} shown at {Stage} of its growth.", source="human")
    assert status_of(workspace, gid) == GroupStatus.captioned  # follows its captions
    with pytest.raises(GroupError, match="reopen"):
        groups.add_members(workspace, gid, add_images(workspace, 1, start=50))
    with pytest.raises(GroupError, match="accepted caption"):
        groups.set_status(workspace, gid, GroupStatus.verified)
    captions.review_caption(workspace, cap.id, "accept", user_id=None)
    assert status_of(workspace, gid) == GroupStatus.verified
    groups.set_status(workspace, gid, GroupStatus.rejected)
    with pytest.raises(GroupError, match="cannot become"):
        groups.set_status(workspace, gid, GroupStatus.complete)
    groups.set_status(workspace, gid, GroupStatus.draft)  # reopen
    groups.update_details(workspace, gid, name="  renamed ", note="same {Subject}, growing")
    with pytest.raises(GroupError, match="name"):
        groups.update_details(workspace, gid, name="  ")
    with read_scope(workspace.engine) as s:
        g = s.get(SeedGroup, gid)
        assert (g.status, g.name, g.note) == (GroupStatus.draft, "renamed", "same {Subject}, growing")


def test_editing_a_complete_group_revalidates(sqlite_workspace):
    a, b, c = add_images(sqlite_workspace, 3)
    gid = make(sqlite_workspace, [a, b, c], status=GroupStatus.complete)
    groups.remove_members(sqlite_workspace, gid, [c])
    assert status_of(sqlite_workspace, gid) == GroupStatus.complete  # still 2 valid members
    groups.remove_members(sqlite_workspace, gid, [b])
    assert status_of(sqlite_workspace, gid) == GroupStatus.draft  # 1 member: back to draft


def test_transfer_and_membership_listing(workspace):
    a, b, c, d = add_images(workspace, 4)
    g1, g2 = make(workspace, [a, b, c]), make(workspace, [d, a])
    assert groups.transfer_members(workspace, g1, g2, [c, d]) == [c]  # d is not in g1
    assert groups.member_ids(workspace, g1) == [a, b] and groups.member_ids(workspace, g2) == [d, a, c]
    listing = groups.groups_of_images(workspace, [a, b, c], exclude_group=g1)
    with pytest.raises(GroupError, match="same"):
        groups.transfer_members(workspace, g1, g1, [a])
    assert [r.id for r in listing[a]] == [g2] and listing[b] == [] and [r.id for r in listing[c]] == [g2]
    both = groups.groups_of_images(workspace, [a])
    summaries = groups.list_groups(workspace)
    assert [r.id for r in both[a]] == [g1, g2]
    assert [(x.id, x.n_members) for x in summaries] == [(g1, 2), (g2, 3)]


def test_list_groups_filters(sqlite_workspace):
    ids = add_images(sqlite_workspace, 12)
    g_small = make(sqlite_workspace, ids[:2], note="colour {Shift}")
    g_big = make(sqlite_workspace, ids)
    assert [g.id for g in groups.list_groups(sqlite_workspace, needs_split=True)] == [g_big]
    assert [g.id for g in groups.list_groups(sqlite_workspace, text="shift")] == [g_small]
    assert [g.id for g in groups.list_groups(sqlite_workspace, status=GroupStatus.complete)] == []


@pytest.mark.parametrize("n, sizes", [(2, [2]), (10, [10]), (11, [6, 5]), (19, [10, 9]), (21, [7, 7, 7]),
                                      (91, [10] + [9] * 9)])
def test_split_sizes(n, sizes):
    assert splitting.split_sizes(n) == sizes
    assert all(groups.MIN_MEMBERS <= s <= groups.MAX_MEMBERS for s in sizes)


def test_suggest_split_by_order_and_by_vectors():
    ids = list(range(100, 114))
    assert splitting.suggest_split(ids) == [ids[:7], ids[7:]]
    # Two clear clusters interleaved in the order: vectors put each cluster in its own part.
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:2]
    labels = np.arange(14) % 2
    vecs = centres[labels] + rng.normal(0, 0.05, (14, 8)).astype(np.float32)
    parts = splitting.suggest_split(ids, vecs)
    assert sorted(map(len, parts)) == [7, 7]
    assert {frozenset(p) for p in parts} == {frozenset(i for i, l in zip(ids, labels) if l == c) for c in (0, 1)}
    assert parts[0][0] == ids[0] and all(p == sorted(p) for p in parts)  # order kept inside parts


def test_split_group_rules_and_result(workspace):
    ok = add_images(workspace, 12)
    user = create_user(workspace.engine, "cur", "curator-pw", "curator")
    gid = groups.create_group(workspace, "big", ok, note="a {Thing} in {Steps}").id
    captions.add_group_caption(workspace, gid, "A {Thing} changing over {Steps} steps.", source="import")
    cap = captions.add_group_caption(workspace, gid, "The {Thing} seen in {Count} stages.", source="import")
    captions.review_caption(workspace, cap.id, "accept", user_id=None)
    bad_parts = {
        "at least two parts": [ok],
        "each part needs": [ok[:1], ok[1:]],
        "not in group": [ok[:6], ok[6:11] + [10_000_000]],
        "more than one part": [ok[:6], ok[5:12]],
        "not placed": [ok[:6], ok[6:11]],
    }
    for message, parts in bad_parts.items():
        with pytest.raises(GroupError, match=message):
            splitting.split_group(workspace, gid, parts)
    children = [c.id for c in splitting.split_group(workspace, gid, splitting.suggest_split(ok), created_by=user.id)]
    with read_scope(workspace.engine) as s:
        parent = s.get(SeedGroup, gid)
        assert parent.status == GroupStatus.split and f"#{children[0]}" in parent.note
        for n, cid in enumerate(children):
            child = s.get(SeedGroup, cid)
            assert child.source == f"split:{gid}" and child.created_by == user.id
            assert child.status == GroupStatus.captioned and child.name == f"big ({n + 1}/2)"
            caps = list(s.exec(select(Caption).where(Caption.group_id == cid)))
            # The accepted caption is inherited, but only as a proposal to confirm per part.
            assert [(c.text, c.status) for c in caps] == [("The {Thing} seen in {Count} stages.",
                                                            CaptionStatus.proposed)]
        assert [len(groups.member_ids(workspace, c)) for c in children] == [6, 6]
    again = splitting.split_group(workspace, gid, splitting.suggest_split(ok))  # a double click: same parts
    assert [k.id for k in again] == children
    with pytest.raises(GroupError, match="already split"):
        splitting.split_group(workspace, gid, [ok[:4], ok[4:]])


def test_split_keeps_parts_with_pending_images_as_drafts(sqlite_workspace):
    ok = add_images(sqlite_workspace, 9)
    pending = add_images(sqlite_workspace, 3, ImageStatus.pending_download)
    gid, small = make(sqlite_workspace, ok + pending), make(sqlite_workspace, ok[:4])
    kids = splitting.split_group(sqlite_workspace, gid, [ok[:6], ok[6:] + pending])
    assert [k.status for k in kids] == [GroupStatus.complete, GroupStatus.draft]
    left = splitting.split_group(sqlite_workspace, small, [ok[:2]], allow_leftovers=True)
    assert len(left) == 1 and groups.member_ids(sqlite_workspace, left[0].id) == ok[:2]


def test_compare_curators(workspace):
    ids = add_images(workspace, 8)
    ann = create_user(workspace.engine, "ann", "curator-pw", "curator")
    bob = create_user(workspace.engine, "bob", "curator-pw", "curator")
    make(workspace, ids[0:3], created_by=ann.id)
    make(workspace, ids[3:6], created_by=ann.id)
    make(workspace, ids[0:3], created_by=bob.id)
    make(workspace, ids[3:5], created_by=bob.id)
    make(workspace, [ids[5], ids[7]], created_by=bob.id)  # ids[7] is only in bob's grouping
    rejected = make(workspace, ids[0:6], created_by=bob.id)
    groups.set_status(workspace, rejected, GroupStatus.rejected)  # rejected groups do not count
    common = groups.compare_curators(workspace, ann.id, bob.id)
    union = groups.compare_curators(workspace, ann.id, bob.id, universe="union")
    listed = groups.curators_with_groups(workspace)
    # Over the 6 images both grouped: ann's pairs 3+3, bob's 3+1 (+ none for {5,7} restricted to {5}).
    assert (common["tp"], common["fp"], common["fn"], common["n_images"]) == (4, 0, 2, 6)
    assert common["precision"] == 1.0 and common["recall"] == pytest.approx(4 / 6)
    assert -1.0 <= common["ari"] < 1.0
    assert (union["fp"], union["n_images"]) == (1, 7)
    assert [(name, n) for _, name, n in listed] == [("ann", 2), ("bob", 4)]
    same = groups.compare_groupings([[1, 2], [3, 4]], [[2, 1], [4, 3]])
    assert same["f1"] == 1.0 and same["ari"] == 1.0


def test_real_oversized_seed_groups_split_into_valid_parts(sqlite_workspace, seed_group_file):
    from relcurate.curation.ingest.seed_import import import_seed_groups

    import_seed_groups(sqlite_workspace, seed_group_file)
    big = groups.list_groups(sqlite_workspace, needs_split=True)
    sizes = {g.id: g.n_members for g in big}
    assert len(big) == 10 and min(sizes.values()) == 11  # the lead's count: 10 groups above 10
    for g in big:
        parts = splitting.suggest_split(groups.member_ids(sqlite_workspace, g.id))
        kids = splitting.split_group(sqlite_workspace, g.id, parts)
        assert all(2 <= len(groups.member_ids(sqlite_workspace, k.id)) <= 10 for k in kids)
        # imported images are still downloads-to-be: parts wait as drafts with the caption
        assert {k.status for k in kids} == {GroupStatus.draft}
    assert groups.list_groups(sqlite_workspace, needs_split=True) == []
    assert len(groups.list_groups(sqlite_workspace, status=GroupStatus.split)) == 10
    verified = groups.list_groups(sqlite_workspace, status=GroupStatus.verified)[0].id
    cap = captions.current_caption(sqlite_workspace, verified)
    # rejecting an imported caption
    captions.review_caption(sqlite_workspace, cap.id, "reject", user_id=None, reason="too specific")
    # its images are still to be downloaded, so the group cannot be complete: back to draft
    assert status_of(sqlite_workspace, verified) == GroupStatus.draft


def test_cli_list_split_compare(sqlite_workspace):
    import json

    from typer.testing import CliRunner

    from relcurate.cli.groups import app

    ws = sqlite_workspace
    ids = add_images(ws, 14)
    ann = create_user(ws.engine, "ann", "curator-pw", "curator")
    bob = create_user(ws.engine, "bob", "curator-pw", "curator")
    big = make(ws, ids[:12], created_by=ann.id)
    make(ws, ids[12:], created_by=bob.id)
    run = CliRunner().invoke
    w = ["-w", str(ws.root)]
    listed = run(app, ["list", "--needs-split", "--json", *w])
    assert listed.exit_code == 0 and [json.loads(x)["id"] for x in listed.stdout.splitlines()] == [big]
    dry = run(app, ["split", "--all-oversized", "--dry-run", *w])
    assert dry.exit_code == 0 and f"#{big}: 12 images" in dry.stdout
    with read_scope(ws.engine) as s:
        assert s.get(SeedGroup, big).status == GroupStatus.draft  # dry run changed nothing
    done = run(app, ["split", str(big), *w])
    assert done.exit_code == 0 and "split into" in done.stdout
    with read_scope(ws.engine) as s:
        assert s.get(SeedGroup, big).status == GroupStatus.split
    assert run(app, ["split", "--all-oversized", *w]).exit_code == 2  # nothing left to split
    cmp = run(app, ["compare", "ann", "bob", "--universe", "union", "--json", *w])
    assert cmp.exit_code == 0 and json.loads(cmp.stdout)["n_images"] == 14
    assert run(app, ["compare", "ann", "nobody", *w]).exit_code == 2
