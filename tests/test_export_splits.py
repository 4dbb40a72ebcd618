"""Group-aware deterministic splits: no group or near-duplicate set crosses splits, assignment is a
pure function of content (stable when unrelated images arrive), pins win, proportions hold."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlmodel import select

from relcurate.testing.exports import build_curated, read_jsonl
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import Caption, NearDuplicate
from relcurate.exports.relsim_jsonl import export_relsim
from relcurate.exports.snapshot import load_snapshot, snapshot_connection
from relcurate.exports.splits import RELSIM_SPLITS, assign_splits, parse_splits
from relcurate.workspace import Workspace


def _key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _split(ids, links=(), edges=(), *, seed=0, weights=None, pinned=None, keys=None):
    return assign_splits(ids, key_of=keys or {i: _key(i) for i in range(100_000)}, links=links, edges=edges,
                         weights=weights or {"train": 1, "test": 1}, seed=seed, pinned=pinned)


def test_groups_and_near_duplicates_stay_together():
    ids = list(range(2000))
    links = [list(range(g, g + 5)) for g in range(0, 1000, 5)]  # 200 groups of 5
    edges = [(1000 + i, 1500 + i) for i in range(300)]  # near-duplicate pairs
    edges += [(4, 1001)]  # a near duplicate of a group member joins the group's component
    a = _split(ids, links, edges)
    for group in links:
        assert len({a.split_of[i] for i in group}) == 1
    for x, y in edges:
        assert a.split_of[x] == a.split_of[y]
    assert a.split_of[1001] == a.split_of[0] == a.split_of[1501]


def test_deterministic_and_independent_of_order_and_ids():
    ids = list(range(1000))
    links = [[i, i + 1] for i in range(0, 1000, 2)]
    a = _split(ids, links)
    b = _split(list(reversed(ids)), [list(reversed(g)) for g in reversed(links)])
    assert a.split_of == b.split_of
    # same content under other database ids -> same splits (keys, not ids, decide)
    shift = {i + 50_000: _key(i) for i in ids}
    c = _split([i + 50_000 for i in ids], [[x + 50_000 for x in g] for g in links], keys=shift)
    assert all(c.split_of[i + 50_000] == a.split_of[i] for i in ids)
    assert _split(ids, links, seed=1).split_of != a.split_of


def test_stable_when_unrelated_images_are_added():
    base = _split(range(3000), [[i, i + 1, i + 2] for i in range(0, 3000, 3)])
    grown = _split(range(6000), [[i, i + 1, i + 2] for i in range(0, 6000, 3)])
    assert all(grown.split_of[i] == base.split_of[i] for i in range(3000))


def test_proportions_follow_the_weights():
    a = _split(range(114_000), weights=RELSIM_SPLITS)
    share = a.sizes["test"] / 114_000
    assert abs(share - 14 / 114) < 0.005, share
    assert list(a.sizes) == ["train", "test"]


def test_pins_win_and_conflicts_are_counted():
    a = _split(range(10), [[0, 1, 2]], pinned={0: "test", 5: "train", 6: "val"})
    assert {a.split_of[i] for i in (0, 1, 2)} == {"test"} and a.split_of[5] == "train"
    assert a.pinned_components == 2 and a.pins_ignored == 1
    b = _split(range(4), [[0, 1, 2, 3]], pinned={0: "test", 1: "train", 2: "test"})
    assert {b.split_of[i] for i in range(4)} == {"test"} and b.pin_conflicts == 1


def test_parse_splits():
    assert parse_splits("train=100000, test=14000") == {"train": 100000.0, "test": 14000.0}
    for bad in ("train", "train=-1", "a/b=1", "train=0,test=0"):
        with pytest.raises(ValueError):
            parse_splits(bad)


def test_no_leakage_in_an_exported_set(tmp_path: Path):
    """The real export: each group's members and the near-duplicate pair share a split, and no
    image appears in two split files, over many seeds."""
    ws = Workspace.init(tmp_path / "ws")
    cur = build_curated(ws, tmp_path)
    with snapshot_connection(ws.engine) as conn:
        snap = load_snapshot(conn)
    hash_of = {iid: h for iid, (h, _u) in snap.identity.items()}
    # give the near-duplicate copy its own caption so both sides of the pair are exported
    with read_scope(ws.engine) as s:
        pair = s.exec(select(NearDuplicate)).first()
    with session_scope(ws.engine) as s:
        s.add(Caption(image_id=cur.ids["p00_dup"], text="Near copy {X}.", source="human", status="accepted"))
    for seed in range(8):
        out = export_relsim(ws, tmp_path / f"out{seed}", user="cur", seed=seed, splits={"train": 1, "test": 1},
                            images="reference").path
        split_of: dict[str, set[str]] = {}
        for split in ("train", "test"):
            for r in read_jsonl(out / f"anonymous_captions_{split}.jsonl"):
                split_of.setdefault(r["image_hash"], set()).add(split)
        assert all(len(v) == 1 for v in split_of.values())
        for name in ("g0", "g1", "g2", "g3"):
            members = [hash_of[i] for i in snap.members[cur.groups[name]]]
            assert len({next(iter(split_of[h])) for h in members}) == 1
        assert split_of[hash_of[pair.image_a]] == split_of[hash_of[pair.image_b]]
        assert split_of[hash_of[cur.ids["p00"]]] == split_of[hash_of[cur.ids["p00_dup"]]]
    ws.engine.dispose()
