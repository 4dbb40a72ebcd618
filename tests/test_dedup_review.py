"""Near-duplicates: the second signal rejects the demo's false pHash pairs and keeps true copies;
curators' decisions are append-only, idempotent and drive the canonical map (both back ends)."""
from __future__ import annotations

import pytest
from sqlmodel import select

from relcurate.curation.demo import synthetic
from relcurate.curation.ingest.dedup import find_near_duplicates, record_near_duplicates
from relcurate.curation.ingest.dedup_review import (DedupReviewError, canonical_map, decide_pair, history,
                                                    list_pairs, pending_count)
from relcurate.curation.ingest.sources import walk_folder
from relcurate.curation.ingest.store_writes import ingest_items
from relcurate.db.engine import read_scope
from relcurate.db.models import Image, NearDuplicate, NearDuplicateDecision
from relcurate.testing.images import make_near_copies_folder


def _copies_folder(tmp_path):
    return make_near_copies_folder(tmp_path / "src")


def _pairs(ws):
    with read_scope(ws.engine) as s:
        return [(p.image_a, p.image_b) for p in s.exec(select(NearDuplicate)).all()]


def _ids_by_name(ws):
    with read_scope(ws.engine) as s:
        return {img.source_uri.rsplit("/", 1)[-1]: img.id for img in s.exec(select(Image)).all()}


def test_second_signal_keeps_true_copies(workspace, tmp_path):
    ingest_items(workspace, walk_folder(_copies_folder(tmp_path)), workers=1)
    record_near_duplicates(workspace)
    ids = _ids_by_name(workspace)
    pairs = set(_pairs(workspace))
    p0 = ids["p0.jpg"]
    assert tuple(sorted((p0, ids["p0_small.jpg"]))) in pairs
    assert tuple(sorted((p0, ids["p0_bright.png"]))) in pairs
    assert all(ids["p1.jpg"] not in p and ids["p2.jpg"] not in p for p in pairs)


def test_demo_flat_shapes_give_no_false_pair(sqlite_workspace, tmp_path):
    """pHash alone pairs the synthetic demo's flat shapes (a green cross and a red triangle at
    distance 0); with the second signal none is recorded."""
    ws = sqlite_workspace
    src = tmp_path / "demo"
    pool = list(synthetic.generate_pool(300, seed=0))
    synthetic.write_pool(src, pool)
    ingest_items(ws, walk_folder(src), workers=1)
    with read_scope(ws.engine) as s:
        rows = s.exec(select(Image.id, Image.phash).where(Image.phash.is_not(None))).all()
    ids, hashes = [r[0] for r in rows], [r[1] for r in rows]
    before = find_near_duplicates(ids, hashes, set(ids), ws.ingest.near_duplicate_distance)
    assert len(before) >= 5  # what pHash alone would have recorded
    assert record_near_duplicates(ws) == 0 and _pairs(ws) == []


def test_threshold_is_a_workspace_setting(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    ws.ingest.near_duplicate_min_similarity = -1.0  # every pHash candidate passes
    src = tmp_path / "demo"
    synthetic.write_pool(src, list(synthetic.generate_pool(300, seed=0)))
    ingest_items(ws, walk_folder(src), workers=1)
    assert record_near_duplicates(ws) >= 5


def test_decisions_are_append_only_idempotent_and_merge(workspace, tmp_path):
    ingest_items(workspace, walk_folder(_copies_folder(tmp_path)), workers=1)
    record_near_duplicates(workspace)
    ids = _ids_by_name(workspace)
    p0, small = ids["p0.jpg"], ids["p0_small.jpg"]
    n = pending_count(workspace)
    assert n >= 2 and {(v.image_a.id, v.image_b.id) for v in list_pairs(workspace)} >= {tuple(sorted((p0, small)))}

    first = decide_pair(workspace, small, p0, "keep_both", user_id=None, username="cur", request_id="r1")
    assert decide_pair(workspace, small, p0, "keep_both", user_id=None, username="cur", request_id="r1") == first
    assert pending_count(workspace) == n - 1
    assert canonical_map(workspace) == {}
    decide_pair(workspace, p0, small, "merge", user_id=None, username="cur2", request_id="r2", canonical_id=p0)
    assert canonical_map(workspace) == {small: p0}
    hist = history(workspace, p0, small)
    assert [(d.decision, d.username) for d in hist] == [("keep_both", "cur"), ("merge", "cur2")]
    with read_scope(workspace.engine) as s:
        assert s.get(NearDuplicate, tuple(sorted((p0, small)))).reviewed == "same"
        assert len(s.exec(select(NearDuplicateDecision)).all()) == 2
        assert s.get(Image, small) is not None  # originals are never deleted
    with pytest.raises(DedupReviewError, match="canonical"):
        decide_pair(workspace, p0, small, "merge", user_id=None, username="c", request_id="r3", canonical_id=999)
    with pytest.raises(DedupReviewError, match="unknown decision"):
        decide_pair(workspace, p0, small, "delete", user_id=None, username="c", request_id="r4")
    with pytest.raises(DedupReviewError, match="not a recorded"):
        decide_pair(workspace, ids["p1.jpg"], ids["p2.jpg"], "duplicate", user_id=None, username="c", request_id="r5")


def test_merge_replaces_the_image_in_exports_and_closes_its_labeling_task(tmp_path):
    from relcurate.curation.labeling.leases import sync_pool
    from relcurate.db.models import LabelTask
    from relcurate.exports.snapshot import load_snapshot, snapshot_connection
    from relcurate.testing.exports import build_curated
    from relcurate.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws")
    cur = build_curated(ws, tmp_path)
    sync_pool(ws.engine, full=True)
    p00, dup = cur.ids["p00"], cur.ids["p00_dup"]
    decide_pair(ws, p00, dup, "merge", user_id=None, username="cur", request_id="m1", canonical_id=dup)
    with snapshot_connection(ws.engine) as conn:
        snap = load_snapshot(conn)
    g0 = snap.members[cur.groups["g0"]]
    assert dup in g0 and p00 not in g0 and len(g0) == 3
    with read_scope(ws.engine) as s:
        assert not any(t.is_open for t in s.exec(select(LabelTask).where(LabelTask.image_id == p00)).all())
        assert s.get(Image, p00) is not None
