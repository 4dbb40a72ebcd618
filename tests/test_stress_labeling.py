"""Stress: 20 annotator clients x 200 decisions at once, through the library calls the filter
page makes (next_task -> record_label, sometimes undo_label), with random double submits
(a retried request, or two submits racing in two threads). On SQLite and PostgreSQL.

Checked afterwards: no errors, no decision lost, no (image, annotator) with two current labels,
no duplicate event for a repeated request, no image handed out beyond its overlap, and the
queue's maintained counters equal to a recount.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
from sqlmodel import select

from relcurate.testing.labeling import add_image_rows, add_users
from relcurate.curation.labeling import labels, leases
from relcurate.db.engine import read_scope
from relcurate.db.models import CurrentLabel, FilterLabel, LabelTask, TaskAssignment

CLIENTS = 20
DECISIONS = 200
IMAGES = 4000  # with k=3 on 10%: 4,800 decisions wanted > 4,000 made, so nobody runs dry


@pytest.mark.slow
def test_concurrent_annotators(workspace):
    eng = workspace.engine
    add_image_rows(eng, IMAGES)
    users = list(add_users(eng, [f"ann{i:02d}" for i in range(CLIENTS)]).values())
    leases.set_config(eng, overlap_k=3, overlap_fraction=0.1, gold_rate=0.0)
    leases.sync_pool(eng, seed=7)

    errors: list[BaseException] = []
    final: dict[tuple[int, int], tuple[int, str]] = {}  # (image, user) -> (label id, answer) in force
    submits = Counter()
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(user_id: int, seed: int) -> None:
        rng = random.Random(seed)
        mine: dict[int, tuple[int, str]] = {}
        try:
            start.wait()
            made = 0
            while made < DECISIONS:
                task = leases.next_task(eng, user_id)
                assert task is not None, "pool ran dry"
                answer = rng.choices(["yes", "no", "skip"], weights=[10, 85, 5])[0]
                kw = dict(image_id=task.image_id, user_id=user_id, request_id=task.request_id, lead_time_ms=900)
                roll = rng.random()
                racer = None
                if roll < 0.08:  # two submits racing (a double click in one JS tick), maybe different keys
                    other = rng.choice(["yes", "no"])
                    racer = threading.Thread(target=_quiet, args=(errors, labels.record_label, eng), kwargs={**kw, "answer": other})
                    racer.start()
                res = labels.record_label(eng, answer=answer, **kw)
                if roll >= 0.08 and roll < 0.16:  # a retried request after a lost response
                    again = labels.record_label(eng, answer=answer, **kw)
                    assert again.duplicate and again.label_id == res.label_id
                if racer is not None:
                    racer.join()
                with read_scope(eng) as s:  # whichever racer won is the label in force
                    cur = s.get(CurrentLabel, (task.image_id, user_id))
                mine[task.image_id] = (cur.label_id, cur.answer)
                made += 1
                if rng.random() < 0.03:  # undo, then decide the same image again
                    u = labels.undo_label(eng, user_id=user_id, label_id=cur.label_id)
                    assert u.undone
                    if u.releasing:
                        back = leases.next_task(eng, user_id)
                        assert back.image_id == task.image_id
                        r2 = labels.record_label(eng, image_id=back.image_id, user_id=user_id, answer="no",
                                                 request_id=back.request_id)
                        mine[task.image_id] = (r2.label_id, "no")
                    else:
                        del mine[task.image_id]
                        made -= 1
            with lock:
                submits[user_id] = made
                final.update({(img, user_id): v for img, v in mine.items()})
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(u, i)) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    assert not errors, errors[:3]
    assert sum(submits.values()) == CLIENTS * DECISIONS

    with read_scope(eng) as s:
        currents = list(s.exec(select(CurrentLabel)))
        events = list(s.exec(select(FilterLabel)))
        tasks = {t.image_id: t for t in s.exec(select(LabelTask))}
        assignments = list(s.exec(select(TaskAssignment)))

    # Nothing lost, nothing doubled: the labels in force are exactly what the clients saw.
    assert {(c.image_id, c.user_id): (c.label_id, c.answer) for c in currents} == final
    assert len(currents) == CLIENTS * DECISIONS
    assert len({e.request_id for e in events}) == len(events)
    by_id = {e.id: e for e in events}
    for c in currents:
        assert by_id[c.label_id].answer == c.answer
    # Overlap respected and counters consistent with a recount.
    counting = Counter(a.image_id for a in assignments if a.status in leases.COUNTING)
    for image_id, t in tasks.items():
        assert counting[image_id] <= t.target, (image_id, counting[image_id], t.target)
        assert t.assigned == counting[image_id]
        assert t.is_open == (t.assigned < t.target)
    # Every decision except skips completed its assignment.
    done = Counter(a.status for a in assignments)
    assert done["leased"] == 0
    print(f"\n{CLIENTS}x{DECISIONS} decisions on {eng.dialect.name}: {elapsed:.1f} s, "
          f"{len(events)} events, statuses {dict(done)}")


def _quiet(errors: list, fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)
