"""Versioned queue heads: a refresh writes its heads under a new generation in short
transactions and then serves it; readers see only the served generation. A crash mid-write
keeps the old heads served, racing refreshes never mix, old generations are pruned, and the
ranked pick stays a walk of queue_rank's primary key."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func
from sqlmodel import select

from relcurate.curation.labeling import leases, queue_heads
from relcurate.curation.labeling.leases import _CANDIDATES, _T
from relcurate.curation.labeling.queue_heads import (
    head_image_ids, head_sizes, issue_generation, prune_heads, serve_generation, stage_heads, write_heads)
from relcurate.curation.labeling.ranked_orders import RankedOrder
from relcurate.db.engine import read_scope
from relcurate.db.models import QueueConfig, QueueRank
from relcurate.testing.labeling import add_image_rows, add_users


@pytest.fixture
def pool(workspace):
    eng = workspace.engine
    ids = add_image_rows(eng, 60)
    leases.sync_pool(eng, seed=0)
    leases.set_config(eng, overlap_k=1, overlap_fraction=0.0, strategy="uncertainty")
    return eng, ids


def _heads(ids):
    """Two strategies' heads over `ids` (uncertainty in order, positive reversed)."""
    return {"uncertainty": (ids, [0.5] * len(ids)), "positive": (ids[::-1], None)}


def _rows(eng):
    with read_scope(eng) as s:
        return s.exec(select(QueueRank.generation, func.count()).group_by(QueueRank.generation)).all()


def _served(eng):
    with read_scope(eng) as s:
        return s.get(QueueConfig, leases.FILTER).heads_generation


def test_write_heads_serves_new_generation_and_prunes_old(pool):
    eng, ids = pool
    for round_, part in enumerate((ids[:10], ids[10:25], ids[25:31])):
        sizes = write_heads(eng, _heads(part), model_version_id=None, chunk=4)
        assert sizes == {"uncertainty": len(part), "positive": len(part)}
        assert head_sizes(eng) == sizes
        assert head_image_ids(eng, "uncertainty") == part and head_image_ids(eng, "positive") == part[::-1]
        assert _rows(eng) == [(round_ + 1, 2 * len(part))]  # only the served generation is left
    assert leases.next_task(eng, add_users(eng, ["a"])["a"]).image_id == ids[25]


def test_crash_mid_write_keeps_old_heads_served(pool, monkeypatch):
    eng, ids = pool
    write_heads(eng, _heads(ids[:8]), model_version_id=None, chunk=4)
    old = _served(eng)

    class Crash(RuntimeError):
        pass

    real, calls = queue_heads.run_write, []

    def crashing(engine, fn):  # the second staged chunk dies after its inserts, before commit
        calls.append(fn)
        if len(calls) == 3:  # issue, chunk 1, chunk 2
            def dying(s):
                fn(s)
                raise Crash
            return real(engine, dying)
        return real(engine, fn)

    monkeypatch.setattr(queue_heads, "run_write", crashing)
    with pytest.raises(Crash):
        write_heads(eng, _heads(ids[30:50]), model_version_id=None, chunk=4)
    monkeypatch.setattr(queue_heads, "run_write", real)

    assert _served(eng) == old
    assert head_image_ids(eng, "uncertainty") == ids[:8] and head_sizes(eng) == {"uncertainty": 8, "positive": 8}
    assert dict(_rows(eng)) == {old: 16, old + 1: 4}  # the first chunk was committed, not served
    t = leases.next_task(eng, add_users(eng, ["a"])["a"])
    assert (t.image_id, t.strategy) == (ids[0], "uncertainty")

    write_heads(eng, _heads(ids[40:45]), model_version_id=None, chunk=4)  # the next refresh prunes the orphan
    assert _rows(eng) == [(old + 2, 10)] and head_image_ids(eng, "uncertainty") == ids[40:45]


def test_racing_refreshes_never_mix_and_never_go_back(pool):
    eng, ids = pool
    a, b = issue_generation(eng), issue_generation(eng)
    assert b > a
    rows = lambda g, part: [("filter", g, "uncertainty", r, i, None, None) for r, i in enumerate(part)]  # noqa: E731
    stage_heads(eng, a, rows(a, ids[:5]), chunk=2)
    stage_heads(eng, b, rows(b, ids[10:13]), chunk=2)
    assert serve_generation(eng, b, model_version_id=None)
    assert prune_heads(eng, chunk=2) == 5  # A's rows so far
    stage_heads(eng, a, rows(a, ids[5:8]), chunk=2)  # A, slower, is still staging
    assert not serve_generation(eng, a, model_version_id=None)  # older than the served one: refused
    assert head_image_ids(eng, "uncertainty") == ids[10:13]
    assert prune_heads(eng) == 3 and _rows(eng) == [(b, 3)]


def test_readers_see_one_whole_generation_while_refreshes_race(pool):
    eng, ids = pool
    users = add_users(eng, ["r"])
    heads = [_heads(ids[0:12]), _heads(ids[20:32]), _heads(ids[40:52])]
    firsts = {h["uncertainty"][0][0] for h in heads}
    write_heads(eng, heads[0], model_version_id=None)
    wholes = [tuple(h["uncertainty"][0]) for h in heads]
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(k):
        try:
            for i in range(6):
                write_heads(eng, heads[(k + i) % 3], model_version_id=None, chunk=3, duty=1.0)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    seen_heads, seen_picks = set(), []
    writers = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for w in writers:
        w.start()
    threading.Thread(target=lambda: ([w.join() for w in writers], done.set())).start()
    while not done.is_set() or not seen_picks:
        seen_heads.add(tuple(head_image_ids(eng, "uncertainty")))
        t = leases.next_task(eng, users["r"])
        seen_picks.append((t.image_id, t.strategy))
        leases.release_task(eng, users["r"], t.assignment_id)
    assert not errors, errors
    assert seen_heads <= set(wholes), "a reader saw a mixed or partial head"
    assert all(s == "uncertainty" and i in firsts for i, s in seen_picks), "a pick saw no served head"
    served = _served(eng)
    assert _rows(eng) == [(served, 24)]


def test_ranked_pick_walks_the_primary_key(pool):
    eng, ids = pool
    write_heads(eng, _heads(ids[:20]), model_version_id=None)
    pick = RankedOrder("uncertainty").order(_CANDIDATES).limit(1)
    pg = eng.dialect.name == "postgresql"
    if pg:
        pick = pick.with_for_update(of=_T, skip_locked=True)
    sql = str(pick.params(q_kind="filter", q_user=1).compile(eng, compile_kwargs={"literal_binds": True}))
    with eng.connect() as c:
        if pg:
            # As at a million images: no cheaper plan than the key walk for the planner to take.
            c.exec_driver_sql("SET enable_seqscan = off")
            c.exec_driver_sql("SET enable_sort = off")
            plan = "\n".join(r[0] for r in c.exec_driver_sql("EXPLAIN " + sql))
        else:
            plan = "\n".join(str(r[-1]) for r in c.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
        c.rollback()
    if pg:
        assert "Index Scan using queue_rank_pkey on queue_rank" in plan, plan
        assert "generation = $" in plan or "generation = (InitPlan" in plan, plan  # by equality: a walk
        assert "Sort" not in plan, plan
    else:
        # The outer loop walks queue_rank's key (its autoindex) in rank order, then probes
        # label_task's key per row; no sort.
        first = plan.splitlines()[0]
        assert first.startswith("SEARCH queue_rank USING") and "(kind=? AND generation=? AND strategy=?)" in first, plan
        assert "SEARCH label_task USING INDEX sqlite_autoindex_label_task_1 (kind=? AND image_id=?)" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
