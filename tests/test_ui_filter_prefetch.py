"""The filter page's prefetch protocol through AppTest (no browser): the page sends the held
tasks with their images; the decisions the browser queues are recorded once each, for exactly
the images they name, acknowledged, refused visibly when the store says no, and kept for a
retry when the store fails. The browser side is tests/test_browser_filter.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from relcurate import accounts
from relcurate.curation.intake import ingest_and_queue
from relcurate.curation.labeling import labels, leases
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import FilterLabel
from relcurate.labeling_ui import auth
from relcurate.labeling_ui.prefetch import DEFAULT_DEPTH
from relcurate.labeling_ui.resources import WORKSPACE_ENV
from relcurate.testing.apptest import sign_in, goto, prefetch_data, send_prefetch
from relcurate.workspace import Workspace
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "relcurate" / "labeling_ui" / "app.py"


@pytest.fixture
def page(tmp_path, monkeypatch):
    ws = Workspace.init(tmp_path / "ws")
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(9):
        PILImage.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    ingest_and_queue(ws, folder, workers=1)
    leases.set_config(ws.engine, strategy="sequential", overlap_fraction=0.0)
    leases.sync_pool(ws.engine)
    user = accounts.create_user(ws.engine, "ann", "ann-password-1", "annotator")
    monkeypatch.setenv(WORKSPACE_ENV, str(ws.root))
    monkeypatch.delenv(auth.IDLE_ENV, raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    sign_in(at, "ann", "ann-password-1")
    goto(at, "filter")
    assert not at.exception, at.exception
    yield at, ws, user.id
    ws.engine.dispose()


def _decision(seq: int, item: dict, answer: str, lead_ms: int = 400) -> dict:
    return {"seq": seq, "op": "decide", "rid": item["rid"], "image_id": item["image_id"], "answer": answer,
            "lead_ms": lead_ms}


def _events(ws, user_id):
    with read_scope(ws.engine) as s:
        return list(s.exec(select(FilterLabel).where(FilterLabel.user_id == user_id).order_by(FilterLabel.id)))


def test_queued_decisions_are_recorded_once_for_the_images_shown(page):
    at, ws, uid = page
    data = prefetch_data(at)
    items = data["items"]
    assert len(items) == DEFAULT_DEPTH and data["ack"] == 0 and not data["empty"]
    assert all(it["src"].startswith("data:image/") for it in items)
    assert "path" not in str(data) and str(ws.root) not in str(data)  # no server locations
    answers = ["yes", "no", "skip"]
    outbox = [_decision(i + 1, it, a, 300 + i) for i, (it, a) in enumerate(zip(items, answers))]
    send_prefetch(at, outbox, have=[f"{it['rid']}|fit" for it in items])
    assert not at.exception
    events = _events(ws, uid)
    assert [(e.image_id, e.answer, e.lead_time_ms) for e in events] == [
        (it["image_id"], a, 300 + i) for i, (it, a) in enumerate(zip(items, answers))]
    data = prefetch_data(at)
    assert data["ack"] == 3 and data["refused"] == []
    # Topped up: the undecided one first, then new leases; bytes only for what the tab lacks.
    assert data["items"][0]["rid"] == items[3]["rid"] and "src" not in data["items"][0]
    assert len(data["items"]) == DEFAULT_DEPTH and all("src" in it for it in data["items"][1:])
    at.run()  # a rerun with the same state applies nothing again
    send_prefetch(at, outbox)  # nor does the browser sending the same queue again
    assert len(_events(ws, uid)) == 3 and prefetch_data(at)["ack"] == 3
    assert at.session_state["filter_undo_stack"] == [e.id for e in events]


def test_a_decision_for_an_image_not_sent_is_refused(page):
    at, ws, uid = page
    item = prefetch_data(at)["items"][0]
    other = leases.next_tasks(ws.engine, uid, DEFAULT_DEPTH)[-1]
    forged = [{**_decision(1, item, "yes"), "image_id": other.image_id},  # the shown task, another image
              {"seq": 2, "op": "decide", "rid": "free-form-id", "image_id": item["image_id"], "answer": "yes"}]
    send_prefetch(at, forged)
    data = prefetch_data(at)
    assert _events(ws, uid) == [] and data["ack"] == 2
    assert [(r["seq"], "not shown to you" in r["message"]) for r in data["refused"]] == [(1, True), (2, True)]


def test_store_refusal_is_sent_back_and_the_rest_is_recorded(page):
    at, ws, uid = page
    items = prefetch_data(at)["items"]
    # Someone else's write already used the second task's request id for another image.
    with session_scope(ws.engine) as s:
        s.add(FilterLabel(image_id=items[0]["image_id"], user_id=uid, answer="no", request_id=items[1]["rid"],
                          source="human"))
    send_prefetch(at, [_decision(1, items[1], "yes"), _decision(2, items[2], "no")])
    data = prefetch_data(at)
    assert data["ack"] == 2
    (refused,) = data["refused"]
    assert refused["seq"] == 1 and refused["image_id"] == items[1]["image_id"]
    assert "used for another decision" in refused["message"]
    assert labels.current_label(ws.engine, items[2]["image_id"], uid).answer == "no"


def test_a_failed_save_is_kept_for_the_retry(page, monkeypatch):
    at, ws, uid = page
    items = prefetch_data(at)["items"]
    real = labels.record_label

    def down(*a, **kw):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(labels, "record_label", down)
    outbox = [_decision(1, items[0], "yes")]
    send_prefetch(at, outbox)
    data = prefetch_data(at)
    assert data["ack"] == 0 and data["error"] == "OperationalError" and _events(ws, uid) == []
    monkeypatch.setattr(labels, "record_label", real)
    send_prefetch(at, outbox)  # the browser's retry
    data = prefetch_data(at)
    assert data["ack"] == 1 and data["error"] is None
    assert [e.image_id for e in _events(ws, uid)] == [items[0]["image_id"]]


def test_queued_undo_follows_the_decisions_and_shows_the_image_again(page):
    at, ws, uid = page
    items = prefetch_data(at)["items"]
    rev = prefetch_data(at)["front_rev"]
    send_prefetch(at, [_decision(1, items[0], "yes"), _decision(2, items[1], "no"), {"seq": 3, "op": "undo"}])
    data = prefetch_data(at)
    assert data["ack"] == 3 and data["front_rev"] == rev + 1
    assert labels.current_label(ws.engine, items[1]["image_id"], uid) is None  # the "no" was taken back
    assert labels.current_label(ws.engine, items[0]["image_id"], uid).answer == "yes"
    first = data["items"][0]
    assert first["image_id"] == items[1]["image_id"] and first["rid"] != items[1]["rid"]  # a new lease
    send_prefetch(at, [_decision(4, first, "skip")], tab="tab-1")
    assert labels.current_label(ws.engine, items[1]["image_id"], uid).answer == "skip"
