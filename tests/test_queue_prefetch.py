"""`leases.next_tasks`: several leases held at once for the filter page's prefetch, on SQLite
and PostgreSQL, with the same queue order, overlap slots, expiry and undo as single leases."""
from __future__ import annotations

from datetime import timedelta

import pytest

from relcurate.curation.labeling import labels, leases
from relcurate.db.models import utcnow
from relcurate.testing.labeling import add_image_rows, add_users


def _decide(eng, user_id, task, answer="no"):
    return labels.record_label(eng, image_id=task.image_id, user_id=user_id, answer=answer,
                               request_id=task.request_id)


@pytest.fixture
def pool(workspace):
    eng = workspace.engine
    images = add_image_rows(eng, 8)
    users = add_users(eng, ["a", "b"])
    leases.set_config(eng, overlap_k=1, overlap_fraction=0.0, gold_rate=0.0)
    leases.sync_pool(eng, seed=4)
    return eng, images, users


def test_prefetch_walks_the_queue_order_and_holds_k(pool):
    eng, images, users = pool
    a = users["a"]
    first = leases.next_tasks(eng, a, 3)
    assert len(first) == 3 and len({t.image_id for t in first}) == 3
    again = leases.next_tasks(eng, a, 3)  # a rerun: the same leases, same order, same request ids
    assert [t.request_id for t in again] == [t.request_id for t in first]
    order = []
    held = first
    while held:
        _decide(eng, a, held[0])
        order.append(held[0].image_id)
        nxt = leases.next_tasks(eng, a, 3)
        assert [t.image_id for t in nxt[:len(held) - 1]] == [t.image_id for t in held[1:]]  # topped up at the end
        held = nxt
    assert sorted(order) == sorted(images)
    # The same order as one lease at a time (a fresh pool: the random order is fixed by the seed).
    b_order = []
    leases.set_config(eng, overlap_k=2, overlap_fraction=1.0)
    while (t := leases.next_task(eng, users["b"])) is not None:
        b_order.append(t.image_id)
        _decide(eng, users["b"], t)
    assert b_order == order


def test_prefetched_images_are_not_handed_to_others(pool):
    eng, images, users = pool
    mine = {t.image_id for t in leases.next_tasks(eng, users["a"], 5)}
    theirs = {t.image_id for t in leases.next_tasks(eng, users["b"], 5)}
    assert len(mine) == 5 and len(theirs) == 3 and not mine & theirs  # overlap 1: 8 images in all
    assert leases.next_tasks(eng, users["b"], 5) and leases.next_task(eng, users["b"]).image_id in theirs
    sizes = leases.queue_sizes(eng)
    assert sizes["open_images"] == 0 and sizes["leased_live"] == 8


def test_lapsed_prefetch_goes_back_to_the_pool(pool):
    eng, _, users = pool
    t0 = utcnow()
    held = leases.next_tasks(eng, users["a"], 4, now=t0)
    lapse = timedelta(seconds=leases.get_config(eng).lease_seconds + 1)
    theirs = leases.next_tasks(eng, users["b"], 8, now=t0 + lapse)
    assert {t.image_id for t in held} <= {t.image_id for t in theirs} and len(theirs) == 8


def test_undone_image_is_held_again_besides_the_prefetch(pool):
    eng, _, users = pool
    a = users["a"]
    held = leases.next_tasks(eng, a, 3)
    res = _decide(eng, a, held[0], "yes")
    after = leases.next_tasks(eng, a, 3)
    assert held[0].image_id not in {t.image_id for t in after}
    assert labels.undo_label(eng, user_id=a, label_id=res.label_id).undone
    back = leases.next_tasks(eng, a, 3)
    assert len(back) == 4 and back[-1].image_id == held[0].image_id  # leased again, newest last
    assert back[-1].request_id != held[0].request_id  # a new decision, a new request id
    assert leases.next_task(eng, a).image_id == held[0].image_id  # single-lease view: undone first


def test_prefetch_depth_is_bounded(pool):
    eng, _, users = pool
    for k in (0, leases.MAX_PREFETCH + 1):
        with pytest.raises(leases.QueueError):
            leases.next_tasks(eng, users["a"], k)
