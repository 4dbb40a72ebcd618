"""seed_group.json in the reference layout (byte-identical round trip of the real file) and the
richer seed_groups.jsonl."""
from __future__ import annotations

import json

from sqlmodel import select

from relcurate.testing.exports import build_curated, read_jsonl
from relcurate.accounts import create_user
from relcurate.curation.groups.captions import review_caption
from relcurate.curation.ingest.pipeline import ingest_source
from relcurate.db.engine import session_scope
from relcurate.db.models import Caption, User
from relcurate.exports.seed_groups import export_seed_groups, reference_caption
from relcurate.workspace import Workspace


def test_real_seed_file_round_trips_byte_identically(seed_group_file, sqlite_workspace, tmp_path):
    """import (as `relcurate ingest` does, no download) -> export -> the same bytes; and the export
    imported into another empty workspace exports the same bytes again. (SQLite only: the import
    of 532 groups takes ~15 s on PostgreSQL; the export queries run on both in the next tests.)"""
    workspace = sqlite_workspace
    create_user(workspace.engine, "cur", "password-123", "curator")
    ingest_source(workspace, seed_group_file, download=False)
    out = export_seed_groups(workspace, tmp_path / "out", user="cur")
    original = seed_group_file.read_bytes()
    assert (out.path / "seed_group.json").read_bytes() == original
    data = json.loads(original)
    assert out.counts["groups_in_seed_group_json"] == len(data) == 532
    assert out.counts["images_in_seed_group_json"] == sum(len(r["image_urls"]) for r in data)

    ws2 = Workspace.init(tmp_path / "ws2")
    create_user(ws2.engine, "cur", "password-123", "curator")
    ingest_source(ws2, out.path / "seed_group.json", download=False)
    again = export_seed_groups(ws2, tmp_path / "again", user="cur")
    assert (again.path / "seed_group.json").read_bytes() == original
    ws2.engine.dispose()


def test_reference_caption_quotes():
    assert reference_caption("A {X}.", None) == '"A {X}."'
    assert reference_caption("A {X}.", '"A {X}".') == '"A {X}".'  # imported literal kept
    assert reference_caption("A {Y}.", '"A {X}".') == '"A {Y}."'  # edited since: plain quotes


def test_export_of_curated_groups(workspace, tmp_path):
    ws = workspace
    cur = build_curated(ws, tmp_path)
    res = export_seed_groups(ws, tmp_path / "out", user="cur")
    ref = json.loads((res.path / "seed_group.json").read_text())
    assert all(list(r) == ["anonymous_caption", "image_urls"] for r in ref)
    # g0-g4 have accepted captions (g5 rejected group, g6 only proposed)
    assert len(ref) == 5 and all(r["anonymous_caption"].startswith('"') and r["anonymous_caption"].endswith('"')
                                 for r in ref)
    assert ref[4]["image_urls"][2] == "https://example.org/pics/a.png"
    assert ref[0]["image_urls"][0].startswith("file://")  # local images: listed by their source URI
    assert res.counts["members_without_url"] == 14 and res.warnings

    rich = read_jsonl(res.path / "seed_groups.jsonl")
    assert [r["group_id"] for r in rich] == sorted(cur.groups[g] for g in ("g0", "g1", "g2", "g3", "g4", "g6"))
    g0 = rich[0]
    assert g0["note"] == "note g0" and g0["caption"]["status"] == "accepted"
    assert [m["position"] for m in g0["members"]] == [0, 1, 2]
    assert all(len(m["sha256"]) == 64 and m["image_hash"] == m["sha256"] for m in g0["members"])
    assert rich[-1]["caption"]["status"] == "proposed"

    # a reviewer edits an accepted caption and accepts it again: the export follows it
    with session_scope(ws.engine) as s:
        rev = s.exec(select(User).where(User.username == "rev")).one()
        cap = s.exec(select(Caption).where(Caption.group_id == cur.groups["g0"])).one()
    # editing while accepting makes rev its last editor: a self-accept (one-person-team setting)
    review_caption(ws, cap.id, "accept", user_id=rev.id, text="The {Object} seen twice in {Place}.",
                   allow_errors=True, allow_self_accept=True)
    res2 = export_seed_groups(ws, tmp_path / "out2", user="cur")
    ref2 = json.loads((res2.path / "seed_group.json").read_text())
    assert ref2[0]["anonymous_caption"] == '"The {Object} seen twice in {Place}."'
    rich2 = read_jsonl(res2.path / "seed_groups.jsonl")
    assert rich2[0]["caption"]["last_review_action"] == "accept" and rich2[0]["caption"]["review_events"] >= 1
