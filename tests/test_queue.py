"""The labeling queue on SQLite and PostgreSQL: pool sync, leases and expiry, overlap, skip,
gold mixing, pluggable orders and concurrent handout."""
from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import select

from relcurate.testing.labeling import add_image_rows, add_users
from relcurate.curation.labeling import labels, leases
from relcurate.curation.labeling.task_order import RandomOrder, register_strategy, strategy_names
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import Image, LabelTask, ModelVersion, TaskAssignment, utcnow


def _decide(eng, user_id, task, answer="yes"):
    return labels.record_label(eng, image_id=task.image_id, user_id=user_id, answer=answer, request_id=task.request_id)


def _drain(eng, user_id, answer="yes", limit=1000) -> list[leases.Task]:
    out = []
    while (t := leases.next_task(eng, user_id)) is not None and len(out) < limit:
        out.append(t)
        _decide(eng, user_id, t, answer)
    return out


def _assignments(eng):
    with read_scope(eng) as s:
        return list(s.exec(select(TaskAssignment)))


def test_sync_pool_incremental_and_full(workspace):
    eng = workspace.engine
    ok = add_image_rows(eng, 5)
    add_image_rows(eng, 1, start=100, status="quarantined")
    pending = add_image_rows(eng, 1, start=200, status="pending_download")
    assert leases.sync_pool(eng, seed=1) == 5
    assert leases.sync_pool(eng) == 0
    more = add_image_rows(eng, 2, start=300)
    assert leases.sync_pool(eng) == 2
    # A download finishing later makes an *older* id usable: only the full pass finds it.
    with session_scope(eng) as s:
        s.execute(update(Image).where(Image.id == pending[0]).values(status="ok"))
    assert leases.sync_pool(eng) == 0
    assert leases.sync_pool(eng, full=True) == 1
    with read_scope(eng) as s:
        pooled = set(s.exec(select(LabelTask.image_id)))
        keys = list(s.exec(select(LabelTask.order_key)))
    assert pooled == set(ok) | set(more) | set(pending)
    assert len(set(keys)) == len(keys) and all(0 <= k < leases.ORDER_KEY_SPAN for k in keys)


def test_overlap_k_annotators_then_exhausted(workspace):
    eng = workspace.engine
    images = add_image_rows(eng, 5)
    users = add_users(eng, ["a", "b", "c"])
    leases.set_config(eng, overlap_k=2, overlap_fraction=1.0)
    leases.sync_pool(eng, seed=2)
    got_a = [t.image_id for t in _drain(eng, users["a"])]
    got_b = [t.image_id for t in _drain(eng, users["b"])]
    assert sorted(got_a) == sorted(got_b) == sorted(images)
    assert leases.next_task(eng, users["c"]) is None  # every image has its two annotators
    assert all(t.strategy == "random" and t.model_version_id is None for t in _assignments(eng))
    sizes = leases.queue_sizes(eng)
    assert sizes["open_images"] == 0 and sizes["decisions_needed"] == 10 and sizes["decisions_done"] == 10
    # The random order is one fixed permutation shared by everybody.
    assert got_a == got_b


def test_overlap_fraction_mixes_one_and_k(workspace):
    eng = workspace.engine
    add_image_rows(eng, 400)
    leases.set_config(eng, overlap_k=3, overlap_fraction=0.25)
    leases.sync_pool(eng, seed=3)
    with read_scope(eng) as s:
        targets = Counter(s.exec(select(LabelTask.target)))
    assert set(targets) == {1, 3} and 60 < targets[3] < 140
    leases.set_config(eng, overlap_fraction=0.0)  # reconfiguring recomputes every target
    with read_scope(eng) as s:
        assert set(s.exec(select(LabelTask.target))) == {1}
    with pytest.raises(leases.QueueError):
        leases.set_config(eng, overlap_fraction=1.5)
    with pytest.raises(leases.QueueError):
        leases.set_config(eng, strategy="no-such-order")


def test_live_lease_is_resumed_and_expired_lease_returns(workspace):
    eng = workspace.engine
    images = add_image_rows(eng, 1)
    users = add_users(eng, ["a", "b"])
    leases.set_config(eng, overlap_fraction=0.0, lease_seconds=60)
    leases.sync_pool(eng)
    t0 = utcnow()
    ta = leases.next_task(eng, users["a"], now=t0)
    assert ta.image_id == images[0]
    again = leases.next_task(eng, users["a"], now=t0 + timedelta(seconds=20))
    assert again.assignment_id == ta.assignment_id and again.request_id == ta.request_id  # same shown task
    assert again.expires_at == ta.expires_at  # more than half the lease left: not rewritten
    again = leases.next_task(eng, users["a"], now=t0 + timedelta(seconds=40))
    assert again.expires_at == t0 + timedelta(seconds=100)  # extended from the last visit
    assert leases.next_task(eng, users["b"], now=t0 + timedelta(seconds=80)) is None
    # a walks away; after the lease lapses the image goes to b.
    tb = leases.next_task(eng, users["b"], now=t0 + timedelta(seconds=220))
    assert tb is not None and tb.image_id == images[0]
    statuses = {t.user_id: t.status for t in _assignments(eng)}
    assert statuses == {users["a"]: "expired", users["b"]: "leased"}
    # a's late answer is still kept (never lose a decision); the task is full.
    late = labels.record_label(eng, image_id=ta.image_id, user_id=users["a"], answer="no", request_id=ta.request_id)
    assert not late.duplicate
    assert leases.next_task(eng, users["a"], now=t0 + timedelta(seconds=230)) is None


def test_skip_and_release_give_the_slot_back(workspace):
    eng = workspace.engine
    add_image_rows(eng, 2)
    users = add_users(eng, ["a", "b"])
    leases.set_config(eng, overlap_fraction=0.0, strategy="sequential")
    leases.sync_pool(eng)
    t = leases.next_task(eng, users["a"])
    _decide(eng, users["a"], t, "skip")
    t2 = leases.next_task(eng, users["a"])
    assert t2.image_id != t.image_id  # a is not shown what a skipped
    assert leases.release_task(eng, users["a"], t2.assignment_id)
    assert not leases.release_task(eng, users["a"], t2.assignment_id)
    got_b = sorted(x.image_id for x in _drain(eng, users["b"]))
    assert got_b == sorted([t.image_id, t2.image_id])
    # a released t2, so a may get it back only if a slot is free: b holds it now.
    assert leases.next_task(eng, users["a"]) is None


def test_sign_out_releases_every_held_lease(workspace):
    """An annotator holding prefetched images signs out: all of them go back to the pool at once
    (another annotator gets them now, not after the leases run out); decided ones stay decided."""
    eng = workspace.engine
    images = add_image_rows(eng, 6)
    users = add_users(eng, ["a", "b"])
    leases.set_config(eng, overlap_fraction=0.0, strategy="sequential")
    leases.sync_pool(eng)
    held = leases.next_tasks(eng, users["a"], 4)
    assert len(held) == 4
    _decide(eng, users["a"], held[0], "yes")
    assert leases.release_held(eng, users["a"]) == 3
    assert leases.release_held(eng, users["a"]) == 0  # nothing left: a second sign-out is a no-op
    got_b = sorted(x.image_id for x in _drain(eng, users["b"]))
    assert got_b == sorted(set(images) - {held[0].image_id})
    assert held[0].image_id not in got_b


def test_gold_mixed_in_at_rate(workspace):
    eng = workspace.engine
    images = add_image_rows(eng, 12)
    users = add_users(eng, ["a", "b"])
    gold = images[:3]
    for i, img in enumerate(gold):
        leases.set_gold(eng, img, "yes" if i % 2 else "no", user_id=users["a"])
    leases.sync_pool(eng, seed=4)
    leases.set_config(eng, gold_rate=1.0, overlap_fraction=0.0)
    rng = random.Random(0)
    tasks = []
    while (t := leases.next_task(eng, users["a"], rng=rng)) is not None:
        tasks.append(t)
        _decide(eng, users["a"], t)
    assert [t.is_gold for t in tasks[:3]] == [True] * 3 and not any(t.is_gold for t in tasks[3:])
    assert {t.image_id for t in tasks[:3]} == set(gold) and all(t.strategy == "gold" for t in tasks[:3])
    assert sorted(t.image_id for t in tasks) == sorted(images)  # gold images are not in the pool too
    # Every annotator sees every gold image (no overlap limit on gold).
    got_b = _drain(eng, users["b"])
    assert {t.image_id for t in got_b if t.is_gold} == set(gold) and len(got_b) == 3
    assert leases.queue_sizes(eng)["gold_images"] == 3
    assert leases.remove_gold(eng, gold[0])
    # Back in the pool (it needs an ordinary annotator); b has already seen it.
    assert leases.next_task(eng, users["b"]) is None
    carol = add_users(eng, ["carol"])["carol"]
    leases.set_config(eng, gold_rate=0.0)
    assert leases.next_task(eng, carol).image_id == gold[0]
    with pytest.raises(leases.QueueError):
        leases.set_gold(eng, images[5], "skip")


def test_custom_strategy_is_recorded(workspace):
    eng = workspace.engine
    images = add_image_rows(eng, 4)
    users = add_users(eng, ["a"])
    with session_scope(eng) as s:
        mv = ModelVersion(kind="filter", name=f"f-{workspace.root.name}", base_model="tiny")
        s.add(mv)
        s.flush()
        mv_id = mv.id

    class NewestFirst:
        name = "test-newest-first"
        model_version_id = mv_id

        def order(self, candidates):
            return candidates.order_by(LabelTask.image_id.desc())

    if "test-newest-first" not in strategy_names():
        register_strategy("test-newest-first", lambda s, cfg: NewestFirst())
    else:
        register_strategy("test-newest-first", lambda s, cfg: NewestFirst(), replace=True)
    with pytest.raises(ValueError):
        register_strategy("random", lambda s, cfg: RandomOrder())
    leases.set_config(eng, strategy="test-newest-first", overlap_fraction=0.0)
    leases.sync_pool(eng)
    got = _drain(eng, users["a"])
    assert [t.image_id for t in got] == sorted(images, reverse=True)
    assert {(t.strategy, t.model_version_id) for t in _assignments(eng)} == {("test-newest-first", mv_id)}


def test_quarantined_after_pooling_is_skipped(workspace):
    eng = workspace.engine
    images = add_image_rows(eng, 3)
    users = add_users(eng, ["a"])
    leases.set_config(eng, strategy="sequential", overlap_fraction=0.0)
    leases.sync_pool(eng)
    with session_scope(eng) as s:
        s.execute(update(Image).where(Image.id == images[0]).values(status="quarantined"))
    assert [t.image_id for t in _drain(eng, users["a"])] == images[1:]
    assert leases.sync_pool(eng, full=True) == 0
    with read_scope(eng) as s:
        assert s.get(LabelTask, ("filter", images[0])).target == 0


def test_concurrent_handout_respects_overlap(workspace):
    eng = workspace.engine
    add_image_rows(eng, 30)
    users = add_users(eng, [f"u{i}" for i in range(6)])
    leases.set_config(eng, overlap_k=2, overlap_fraction=0.5)
    leases.sync_pool(eng, seed=5)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(users))

    def worker(uid: int) -> None:
        try:
            barrier.wait()
            _drain(eng, uid)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(u,)) for u in users.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with read_scope(eng) as s:
        targets = dict(s.exec(select(LabelTask.image_id, LabelTask.target)).all())
    per_image = Counter(a.image_id for a in _assignments(eng) if a.status == "done")
    assert dict(per_image) == targets  # each image exactly its target, never more


@pytest.fixture
def pg_pool(workspace):
    """(engine, user id) over 5 pooled images; PostgreSQL only (SQLite has no such settings)."""
    eng = workspace.engine
    if eng.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: lease transaction settings and round trips")
    add_image_rows(eng, 5)
    leases.sync_pool(eng, seed=0)
    return eng, add_users(eng, ["a"])["a"]


def test_lease_transaction_settings_on_postgresql(pg_pool, monkeypatch):
    """PostgreSQL: the live-lease read also applies the lease settings (no separate set_config
    round trip): the pick and the lease extension run with synchronous_commit and JIT off, and
    the settings end with the lease transaction (a label write after it commits synchronously)."""
    eng, uid = pg_pool
    seen = []

    def settings(conn):
        return conn.exec_driver_sql("SELECT current_setting('synchronous_commit'), current_setting('jit')").one()

    real_new, real_held = leases._lease_new, leases._held
    monkeypatch.setattr(leases, "_lease_new", lambda s, *a, **k: (seen.append(("new", *settings(s.connection()))),
                                                                   real_new(s, *a, **k))[1])
    monkeypatch.setattr(leases, "_held", lambda conn, *a, **k: (seen.append(("held", *settings(conn))),
                                                                 real_held(conn, *a, **k))[1])
    first = leases.next_task(eng, uid)  # no live lease: the settings row comes back alone
    again = leases.next_task(eng, uid)  # the same lease handed back
    assert again.assignment_id == first.assignment_id
    batch = leases.next_tasks(eng, uid, 2)
    assert [t.assignment_id for t in batch][:1] == [first.assignment_id] and len(batch) == 2
    assert seen[:2] == [("new", "off", "off"), ("held", "off", "off")]
    assert set(seen) == {("new", "off", "off"), ("held", "off", "off")}
    with session_scope(eng) as s:  # a pooled connection after a lease transaction
        assert tuple(settings(s.connection())) != ("off", "off")
        assert settings(s.connection())[0] == "on"


def test_next_task_statements_on_postgresql(pg_pool):
    """PostgreSQL: a warm next_task is two statements (live leases with the settings, then the
    one-statement pick-and-lease) between BEGIN and COMMIT: each round trip is a server wake-up,
    which is what its tail latency is made of on a loaded machine (bench/al_refresh.py)."""
    from sqlalchemy import event

    eng, uid = pg_pool
    leases.release_task(eng, uid, leases.next_task(eng, uid).assignment_id)  # warm: config cached, reclaim done
    statements = []
    listener = lambda _c, _cur, stmt, *_a: statements.append(stmt.split()[0])  # noqa: E731
    event.listen(eng, "before_cursor_execute", listener)
    try:
        task = leases.next_task(eng, uid)
    finally:
        event.remove(eng, "before_cursor_execute", listener)
    assert task is not None and statements == ["WITH", "WITH"]
