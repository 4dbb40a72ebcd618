"""AppTest: the near-duplicate review page (pairs side by side, a decision recorded with who) and
the dashboard's "what to do next" links, gated by role."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from relcurate import accounts
from relcurate.curation.ingest import dedup_review
from relcurate.curation.intake import ingest_and_queue
from relcurate.labeling_ui import auth
from relcurate.labeling_ui.resources import WORKSPACE_ENV
from relcurate.testing.apptest import as_displayed, goto, sign_in, titles, url_paths
from relcurate.testing.images import make_near_copies_folder
from relcurate.workspace import Workspace

APP = Path(__file__).resolve().parents[1] / "relcurate" / "labeling_ui" / "app.py"
PW = {"cura": "curator-pw-1", "anno": "annotator-pw-1"}


@pytest.fixture
def app(tmp_path, monkeypatch):
    ws = Workspace.init(tmp_path / "ws")
    accounts.create_user(ws.engine, "cura", PW["cura"], "curator")
    accounts.create_user(ws.engine, "anno", PW["anno"], "annotator")
    ingest_and_queue(ws, make_near_copies_folder(tmp_path / "src"), workers=1)
    monkeypatch.setenv(WORKSPACE_ENV, str(ws.root))
    monkeypatch.delenv(auth.IDLE_ENV, raising=False)
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    yield ws, at
    ws.engine.dispose()


def _login(at, name):
    return sign_in(at, name, PW[name])


def test_curator_reviews_pairs_and_merge_is_recorded(app):
    ws, at = app
    _login(at, "cura")
    goto(at, "duplicates")
    assert titles(at) == ["Near-duplicates"] and not at.exception
    pending = dedup_review.pending_count(ws)
    assert pending >= 2
    assert f"{pending} pairs waiting" in " ".join(c.value for c in at.caption)
    first = dedup_review.list_pairs(ws)[0]
    a, b = first.image_a.id, first.image_b.id
    # the images are inline (show_image), never st.image's unauthenticated /media/ URLs
    assert sum("data:image/" in h.proto.body for h in at.get("html")) >= 2 and not at.get("imgs")
    at.button(key=f"dups_merge_{a}_{a}_{b}").click().run()
    assert not at.exception
    assert f"Images #{a} and #{b}: merged (#{a} is canonical)." == as_displayed(at.success[0].value)
    assert dedup_review.canonical_map(ws) == {b: a}
    assert [(d.decision, d.username) for d in dedup_review.history(ws, a, b)] == [("merge", "cura")]
    assert dedup_review.pending_count(ws) == pending - 1
    at.toggle(key="dups_show_decided").set_value(True).run()
    assert any("decided: **merged**" in m.value for m in at.markdown)


def test_annotator_cannot_open_the_page(app):
    _, at = app
    _login(at, "anno")
    assert "duplicates" not in url_paths(at)


def _links(at) -> dict[str, str]:
    return {el.proto.page: el.proto.label for el in at.get("page_link")}


def test_dashboard_links_what_to_do_next_by_role(app):
    ws, at = app
    _login(at, "cura")
    assert titles(at) == ["Dashboard"] and not at.exception
    links = _links(at)
    pairs = dedup_review.pending_count(ws)
    assert links["duplicates"] == f"{pairs} near-duplicate pairs to review"
    assert links["filter"].endswith("images waiting for filter labels")
    assert "adjudicate" not in links  # no disputes yet (and curators do not adjudicate)


def test_annotator_dashboard_links_only_labeling(app):
    _, at = app
    _login(at, "anno")
    links = _links(at)
    assert set(links) == {"filter"}
