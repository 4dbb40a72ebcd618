"""Filter labels on SQLite and PostgreSQL: idempotent writes, append-only history, undo, and
concurrent writers for one (image, annotator)."""
from __future__ import annotations

import threading

import pytest
from sqlmodel import select

from relcurate.testing.labeling import add_image_rows, add_users
from relcurate.curation.labeling import labels, leases
from relcurate.db.engine import read_scope
from relcurate.db.models import CurrentLabel, FilterLabel, TaskAssignment


@pytest.fixture
def store(workspace):
    eng = workspace.engine
    images = add_image_rows(eng, 6)
    users = add_users(eng, ["ann", "bob"])
    leases.sync_pool(eng, seed=0)
    return eng, images, users


def _events(eng, image_id=None):
    with read_scope(eng) as s:
        q = select(FilterLabel).order_by(FilterLabel.id)
        if image_id is not None:
            q = q.where(FilterLabel.image_id == image_id)
        return list(s.exec(q))


def _currents(eng):
    with read_scope(eng) as s:
        return list(s.exec(select(CurrentLabel)))


def test_record_is_idempotent_per_request(store):
    eng, images, users = store
    t = leases.next_task(eng, users["ann"])
    first = labels.record_label(eng, image_id=t.image_id, user_id=users["ann"], answer="yes",
                                request_id=t.request_id, lead_time_ms=812)
    again = labels.record_label(eng, image_id=t.image_id, user_id=users["ann"], answer="no",
                                request_id=t.request_id)  # a retried request: the first one stands
    assert not first.duplicate and again.duplicate and again.label_id == first.label_id
    assert [e.answer for e in _events(eng)] == ["yes"]
    assert _events(eng)[0].lead_time_ms == 812
    cur = labels.current_label(eng, t.image_id, users["ann"])
    assert cur.answer == "yes" and cur.label_id == first.label_id
    with pytest.raises(labels.LabelError):
        other = next(i for i in images if i != t.image_id)
        labels.record_label(eng, image_id=other, user_id=users["ann"], answer="yes", request_id=t.request_id)
    with pytest.raises(ValueError):
        labels.record_label(eng, image_id=t.image_id, user_id=users["ann"], answer="maybe", request_id="x")


def test_change_of_mind_appends_and_supersedes(store):
    eng, images, users = store
    img, ann = images[0], users["ann"]
    a = labels.record_label(eng, image_id=img, user_id=ann, answer="yes", request_id="r1")
    same = labels.record_label(eng, image_id=img, user_id=ann, answer="yes", request_id="r2")
    b = labels.record_label(eng, image_id=img, user_id=ann, answer="no", request_id="r3")
    assert same.duplicate and same.label_id == a.label_id
    assert b.supersedes_id == a.label_id
    history = labels.label_history(eng, img, ann)
    assert [(e.answer, e.supersedes_id) for e in history] == [("yes", None), ("no", a.label_id)]
    assert [(c.image_id, c.answer) for c in _currents(eng)] == [(img, "no")]
    assert labels.user_counts(eng, ann) == {"yes": 0, "no": 1, "skip": 0}
    # Another annotator's label on the same image is independent.
    labels.record_label(eng, image_id=img, user_id=users["bob"], answer="yes", request_id="r4")
    assert labels.current_labels(eng, img) == {"ann": "no", "bob": "yes"}


def test_undo_retracts_and_releases_the_image(store):
    eng, _, users = store
    ann = users["ann"]
    t1 = leases.next_task(eng, ann)
    r1 = labels.record_label(eng, image_id=t1.image_id, user_id=ann, answer="no", request_id=t1.request_id)
    t2 = leases.next_task(eng, ann)
    assert t2.image_id != t1.image_id
    undo = labels.undo_label(eng, user_id=ann, label_id=r1.label_id)
    assert undo.undone and undo.releasing and undo.image_id == t1.image_id
    assert labels.current_label(eng, t1.image_id, ann) is None
    assert [(e.answer, e.supersedes_id) for e in labels.label_history(eng, t1.image_id)] == [
        ("no", None), (labels.RETRACT, r1.label_id)]
    # The undone image comes back first, under a new request id; then the one after it.
    back = leases.next_task(eng, ann)
    assert back.image_id == t1.image_id and back.request_id != t1.request_id
    assert not labels.undo_label(eng, user_id=ann, label_id=r1.label_id).undone  # a double press
    r1b = labels.record_label(eng, image_id=back.image_id, user_id=ann, answer="yes", request_id=back.request_id)
    assert r1b.supersedes_id is None  # the retraction left no label in force
    assert leases.next_task(eng, ann).image_id == t2.image_id
    assert not labels.undo_label(eng, user_id=users["bob"], label_id=r1b.label_id).undone  # not bob's
    labels.record_label(eng, image_id=back.image_id, user_id=ann, answer="no", request_id="later")
    refused = labels.undo_label(eng, user_id=ann, label_id=r1b.label_id)
    assert not refused.undone and "later" in refused.reason
    with read_scope(eng) as s:
        ta = s.exec(select(TaskAssignment).where(TaskAssignment.image_id == t1.image_id)).one()
    assert ta.status == "done"


def test_undo_of_skip_refused_when_overlap_taken(store):
    eng, _, users = store
    leases.set_config(eng, overlap_fraction=0.0)  # one annotator per image
    t = leases.next_task(eng, users["ann"])
    r = labels.record_label(eng, image_id=t.image_id, user_id=users["ann"], answer="skip", request_id=t.request_id)
    tb = leases.next_task(eng, users["bob"])
    assert tb.image_id == t.image_id  # the skipped slot went back to the pool
    u = labels.undo_label(eng, user_id=users["ann"], label_id=r.label_id)
    assert u.undone and not u.releasing  # retracted, but ann is not handed a third annotator's slot
    assert leases.next_task(eng, users["ann"]).image_id != t.image_id


@pytest.mark.parametrize("same_request", [True, False])
def test_concurrent_writers_one_current_label(store, same_request):
    eng, images, users = store
    img, ann = images[1], users["ann"]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            labels.record_label(eng, image_id=img, user_id=ann, answer="yes" if i % 2 else "no",
                                request_id="same" if same_request else f"req-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    events = _events(eng, img)
    currents = [c for c in _currents(eng) if c.image_id == img]
    assert len(currents) == 1 and currents[0].label_id == events[-1].id
    if same_request:
        assert len(events) == 1
    # The history is one chain: every event supersedes the one before it.
    assert [e.supersedes_id for e in events] == [None] + [e.id for e in events[:-1]]
    assert all(events[i].answer != events[i + 1].answer for i in range(len(events) - 1))


def test_labels_per_hour(store):
    eng, images, users = store
    for i, img in enumerate(images[:3]):
        labels.record_label(eng, image_id=img, user_id=users["ann"], answer="yes", request_id=f"h{i}")
    r = labels.record_label(eng, image_id=images[3], user_id=users["bob"], answer="no", request_id="hb")
    labels.undo_label(eng, user_id=users["bob"], label_id=r.label_id)
    rows = labels.labels_per_hour(eng, hours=2)
    assert sum(r["labels"] for r in rows if r["username"] == "ann") == 3
    assert sum(r["labels"] for r in rows if r["username"] == "bob") == 1  # the undo is not a decision
    assert all(r["hour"].minute == 0 for r in rows)


def test_a_decision_naming_another_image_than_its_lease_is_refused(store):
    """A stray or forged decision: the request id of the shown task, but another image (or another
    annotator). The store refuses it and records nothing."""
    eng, images, users = store
    t = leases.next_task(eng, users["ann"])
    other = next(i for i in images if i != t.image_id)
    with pytest.raises(labels.LabelError, match="another image"):
        labels.record_label(eng, image_id=other, user_id=users["ann"], answer="yes", request_id=t.request_id)
    with pytest.raises(labels.LabelError, match="another image"):
        labels.record_label(eng, image_id=t.image_id, user_id=users["bob"], answer="yes", request_id=t.request_id)
    assert _events(eng) == []
    ok = labels.record_label(eng, image_id=t.image_id, user_id=users["ann"], answer="yes", request_id=t.request_id)
    assert not ok.duplicate and len(_events(eng)) == 1


def test_the_key_script_is_a_component_module_not_sanitised_markup():
    """The key handler used to go through st.html, whose sanitiser silently drops a script
    holding '<' before a letter; it is now the prefetch view's module (st.components.v2,
    never sanitised, never carrying user data): a default export, its settings from `data`,
    and no markup parsing of anything it is sent."""
    from relcurate.labeling_ui import prefetch

    js = prefetch._JS
    assert "export default function" in js and "component.data" in js
    assert "dwell_ms" in js and all(f'{k}: "{a}"' in js for k, a in (("y", "yes"), ("n", "no"), ("s", "skip")))
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "eval(" not in js


def test_label_remembers_the_model_whose_order_leased_the_image(workspace):
    """A label for an image leased by a model-driven task order carries that model version
    (the active-learning record); one that came another way carries none, an explicit one wins."""
    from relcurate.curation.labeling.task_order import RandomOrder, register_strategy
    from relcurate.db.engine import session_scope
    from relcurate.db.models import ModelVersion

    eng = workspace.engine
    images = add_image_rows(eng, 3)
    users = add_users(eng, ["ann", "bob"])
    with session_scope(eng) as s:
        mv = ModelVersion(kind="filter", name=f"al-{workspace.root.name}", base_model="tiny")
        s.add(mv)
        s.flush()
        mv_id = mv.id

    order = RandomOrder(name="test-labels-model-order", model_version_id=mv_id)  # e.g. uncertainty sampling
    register_strategy(order.name, lambda s, cfg: order, replace=True)
    leases.set_config(eng, strategy=order.name, overlap_fraction=0.0)
    leases.sync_pool(eng, seed=0)
    t = leases.next_task(eng, users["ann"])
    assert t.model_version_id == mv_id
    first = labels.record_label(eng, image_id=t.image_id, user_id=users["ann"], answer="yes", request_id="al-1")
    changed = labels.record_label(eng, image_id=t.image_id, user_id=users["ann"], answer="no", request_id="al-2")
    other = next(i for i in images if i != t.image_id)  # bob never leased it
    direct = labels.record_label(eng, image_id=other, user_id=users["bob"], answer="yes", request_id="al-3")
    explicit = labels.record_label(eng, image_id=other, user_id=users["ann"], answer="no", request_id="al-4",
                                   model_version_id=None)
    by_id = {e.id: e.model_version_id for e in _events(eng)}
    assert by_id[first.label_id] == mv_id and by_id[changed.label_id] == mv_id
    assert by_id[direct.label_id] is None and by_id[explicit.label_id] is None


def test_record_labels_batch_keeps_the_per_decision_guarantees(store):
    eng, images, users = store
    ann, bob = users["ann"], users["bob"]
    batch = [dict(image_id=images[2], user_id=bob, answer="yes", request_id="b1", source="label-studio"),
             dict(image_id=images[1], user_id=ann, answer="no", request_id="b2", lead_time_ms=1500),
             dict(image_id=images[1], user_id=ann, answer="yes", request_id="b3")]  # a change of mind
    out = labels.record_labels(eng, batch)
    assert [r.answer for r in out] == ["yes", "no", "yes"] and not any(r.duplicate for r in out)
    assert out[2].supersedes_id == out[1].label_id
    assert {(c.image_id, c.user_id): c.answer for c in _currents(eng)} == {(images[2], bob): "yes",
                                                                           (images[1], ann): "yes"}
    n = len(_events(eng))
    again = labels.record_labels(eng, batch)  # a re-run (retried pull) writes nothing
    assert all(r.duplicate for r in again) and len(_events(eng)) == n
    assert _events(eng, images[2])[0].source == "label-studio"
    with pytest.raises(labels.LabelError):
        labels.record_labels(eng, [dict(image_id=images[3], user_id=ann, answer="no", request_id="")])
    assert labels.record_labels(eng, []) == []
