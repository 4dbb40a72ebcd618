"""End to end in real Chromium (Debian's, driven by Playwright; Streamlit on loopback): an
annotator signs in, labels 10 images with the keyboard (Y / N), undoes the last decision (U),
and the store holds exactly what was pressed.

Skips with a reason when /usr/bin/chromium or playwright is missing (never `playwright
install`). RELCURATE_SCREENSHOTS=DIR keeps screenshots of the page.

The browser comes from a module-scoped `sync_playwright()`, not pytest-playwright's
session-scoped fixtures: those keep a Playwright loop running for the whole session, and any
other test that opens its own `sync_playwright()` afterwards then fails ("Sync API inside the
asyncio loop").
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlmodel import select

from relcurate.models.protocols import FILTER_QUESTION
from relcurate import accounts
from relcurate.curation.labeling import labels, leases
from relcurate.curation.intake import ingest_and_queue as ingest_source
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import CurrentLabel, FilterLabel
from relcurate.labeling_ui.prefetch import prefetch_depth
from relcurate.workspace import Workspace
from relcurate.testing.browser import (chromium_browser, browser_skip_reason, image_src, login, open_page,
                              streamlit_server, wait_idle, wait_image_change)

_SKIP = browser_skip_reason()
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]

PASSWORD = "annotator-password"


@pytest.fixture(scope="module")
def chromium():
    with chromium_browser() as browser:
        yield browser


@pytest.fixture
def tab(chromium):  # not "page": that name belongs to pytest-playwright's fixtures
    context = chromium.new_context(viewport={"width": 1400, "height": 950})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("filter_browser")
    ws = Workspace.init(tmp / "ws")
    accounts.create_user(ws.engine, "ann", PASSWORD, "annotator")
    folder = tmp / "photos"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(40):  # distinct pictures: every task has its own image URL
        PILImage.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(folder / f"p{i:02d}.png")
    ingest_source(ws, folder, workers=1)
    leases.set_config(ws.engine, strategy="sequential", overlap_fraction=0.0)
    leases.sync_pool(ws.engine)
    with streamlit_server(ws.root) as url:
        yield url, ws
    ws.engine.dispose()


def _shot(page, name: str) -> None:
    folder = os.environ.get("RELCURATE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_label_ten_with_keyboard_then_undo(served, tab):
    url, ws = served
    page = tab
    login(page, url, "ann", PASSWORD)
    open_page(page, "Filter labeling")
    page.get_by_text(FILTER_QUESTION).wait_for()
    page.wait_for_selector(".st-key-filter_image img")
    _shot(page, "filter-start")

    pressed = ["y" if i % 3 == 0 else "n" for i in range(10)]
    seen = [image_src(page)]
    assert page.evaluate("typeof window.__rcFilterKeys") == "object"  # the key handler is installed
    for key in pressed:
        page.wait_for_timeout(260)  # a person looks first: presses within the dwell are refused
        page.locator("body").press(key)  # the key handler listens on the document
        seen.append(wait_image_change(page, seen[-1]))
    assert len(set(seen)) == 11  # ten decisions, eleven different pictures
    _shot(page, "filter-after-ten")

    page.locator("body").press("u")  # undo the tenth decision: its image comes back
    back = wait_image_change(page, seen[-1])
    assert back == seen[-2]
    wait_idle(page)
    _shot(page, "filter-after-undo")

    ann = next(u.id for u in accounts.list_users(ws.engine) if u.username == "ann")
    with read_scope(ws.engine) as s:
        events = list(s.exec(select(FilterLabel).where(FilterLabel.user_id == ann).order_by(FilterLabel.id)))
        current = list(s.exec(select(CurrentLabel).where(CurrentLabel.user_id == ann).order_by(CurrentLabel.image_id)))
    decisions = [e for e in events if e.answer != labels.RETRACT]
    assert [e.answer for e in decisions] == ["yes" if k == "y" else "no" for k in pressed]
    assert all(e.lead_time_ms is not None for e in decisions)
    assert [(e.answer, e.supersedes_id) for e in events if e.answer == labels.RETRACT] == [
        (labels.RETRACT, decisions[-1].id)]
    assert len(current) == 9 and decisions[-1].image_id not in {c.image_id for c in current}
    assert [c.answer for c in current] == [e.answer for e in decisions[:9]]
    # The undone image is this annotator's task again.
    assert leases.next_task(ws.engine, ann).image_id == decisions[-1].image_id


BURST_GAP_MS = 30
BURST_DWELL_MS = 1500  # this test's workspace dwell: 5 presses fit in it even on a loaded 2-core machine


def _burst(page) -> float:
    """Five presses of N ~30 ms apart; returns the span between the first and the last as the
    page saw them (event timestamps: Playwright's presses take a round trip each, which a loaded
    machine stretches to ~100 ms)."""
    # on window, capturing: it sees each press before the page's own handler (which stops it)
    page.evaluate("""() => { window.__burst = [];
        if (!window.__burstOn) { window.__burstOn = true;
          window.addEventListener('keydown', (e) => window.__burst.push(e.timeStamp), true); } }""")
    for _ in range(5):
        page.keyboard.press("n")
        page.wait_for_timeout(BURST_GAP_MS)
    times = page.evaluate("window.__burst")
    assert len(times) == 5, times
    return times[-1] - times[0]


def test_a_burst_of_key_presses_decides_exactly_one_image(served, tab):
    """Five quick presses of N: the first decides the image on screen (shown long enough), the
    next image is protected by the dwell, so the other four are refused on screen. The workspace's
    dwell is set long for this test (the Labeling setup setting), so that the claim does not hang
    on how fast a loaded machine delivers the presses; the page's default is 200 ms."""
    url, ws = served
    page = tab
    leases.set_config(ws.engine, min_dwell_ms=BURST_DWELL_MS)
    try:
        page.wait_for_timeout(int(leases.CONFIG_TTL_S * 1000) + 200)  # the server's cached config expires
        login(page, url, "ann", PASSWORD)
        open_page(page, "Filter labeling")
        page.wait_for_selector(".st-key-filter_image img")
        page.wait_for_function(f"window.__rcPrefetch && window.__rcPrefetch.dwell === {BURST_DWELL_MS}")
        with read_scope(ws.engine) as s:
            before = len(s.exec(select(FilterLabel)).all())
        first = image_src(page)
        page.wait_for_timeout(BURST_DWELL_MS + 100)  # the shown image has been seen long enough
        span = _burst(page)
        wait_image_change(page, first)
        page.wait_for_timeout(600)  # anything still in flight lands
        wait_idle(page)
        with read_scope(ws.engine) as s:
            after = len(s.exec(select(FilterLabel)).all())
        assert span < BURST_DWELL_MS, f"the presses took {span:.0f} ms: too slow to test the dwell"
        assert after - before == 1, f"a burst over {span:.0f} ms decided {after - before} images"
        assert page.evaluate("window.__rcFilterKeys.refused") >= 4
    finally:
        leases.set_config(ws.engine, min_dwell_ms=leases.DEFAULT_DWELL_MS)
        page.wait_for_timeout(int(leases.CONFIG_TTL_S * 1000) + 200)


def test_layout_at_1024_and_zoom(served, chromium):
    """At 1024x768 the answer buttons keep their whole labels (no "Y.."); Z and a click on the
    image toggle zoom (the rendition at its own pixel size); a decision lands in the recent list."""
    url, _ws = served
    context = chromium.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        login(page, url, "ann", PASSWORD)
        open_page(page, "Filter labeling")
        page.wait_for_selector(".st-key-filter_image img")
        labels_shown = page.evaluate("""() => [...document.querySelectorAll('.st-key-filter_answers button p')]
            .map(p => [p.innerText, p.scrollWidth <= p.clientWidth + 1])""")
        assert [t for t, _ in labels_shown] == ["Yes (Y)", "No (N)", "Skip (S)"]
        assert all(fits for _, fits in labels_shown), labels_shown
        _shot(page, "filter-1024")
        sizes = "() => { const i = document.querySelector('.st-key-filter_image img'); return [i.clientWidth, i.naturalWidth]; }"
        fitted, natural = page.evaluate(sizes)
        assert fitted != natural  # stretched to the column (the test pictures are 160 px wide)
        page.locator("body").press("z")
        assert page.evaluate(sizes) == [natural, natural]
        page.locator(".st-key-filter_image img").click()
        assert page.evaluate(sizes)[0] == fitted
        first = image_src(page)
        page.wait_for_timeout(260)
        page.locator("body").press("y")
        wait_image_change(page, first)
        page.get_by_text("Your last answer").wait_for()
    finally:
        context.close()


SHOWN_ID = "() => { const i = document.querySelector('.st-key-filter_image img'); return i ? Number(i.dataset.imageId) : null; }"
SETTLED = "() => window.__rcPrefetch && window.__rcPrefetch.outbox.length === 0"


def _annotator(ws, page, url, name):
    user = accounts.create_user(ws.engine, name, PASSWORD, "annotator")
    login(page, url, name, PASSWORD)
    open_page(page, "Filter labeling")
    page.wait_for_selector(".st-key-filter_image img")
    return user.id


def _my_events(ws, user_id):
    with read_scope(ws.engine) as s:
        return list(s.exec(select(FilterLabel).where(FilterLabel.user_id == user_id).order_by(FilterLabel.id)))


def test_quick_decisions_through_the_prefetch_are_all_recorded_for_the_images_shown(served, tab):
    """Eight presses, each after the dwell but without waiting for the server: every one is
    recorded, in order, for exactly the image that was on screen when it was pressed."""
    url, ws = served
    page = tab
    uid = _annotator(ws, page, url, "quick")
    keys = ["y", "n", "n", "s", "y", "n", "y", "n"]
    shown = []
    for key in keys:
        page.wait_for_function("() => window.__rcPrefetch.paintedAt > 0")
        page.wait_for_timeout(230)  # just past the dwell: faster than a rerun round trip here
        shown.append(page.evaluate(SHOWN_ID))
        page.keyboard.press(key)
    page.wait_for_function(SETTLED)
    wait_idle(page)
    events = _my_events(ws, uid)
    names = {"y": "yes", "n": "no", "s": "skip"}
    assert [(e.image_id, e.answer) for e in events] == [(i, names[k]) for i, k in zip(shown, keys)]
    assert len(set(shown)) == len(keys) and all(e.lead_time_ms >= 200 for e in events)
    assert page.evaluate("window.__rcFilterKeys.failed") == 0


def test_a_decision_the_store_refuses_is_shown(served, tab):
    url, ws = served
    page = tab
    uid = _annotator(ws, page, url, "refused")
    held = leases.next_tasks(ws.engine, uid, prefetch_depth())  # what the page holds for this user
    # Another write already used the second task's request id for another image: the store
    # must refuse the decision on it.
    with session_scope(ws.engine) as s:
        s.add(FilterLabel(image_id=held[0].image_id, user_id=uid, answer="no", request_id=held[1].request_id,
                          source="human"))
    for _ in range(2):
        page.wait_for_function("() => window.__rcPrefetch.paintedAt > 0")
        page.wait_for_timeout(230)
        page.keyboard.press("y")
    failed = page.locator(".rc-pf-failed")
    failed.wait_for()
    assert f"image #{held[1].image_id}" in failed.inner_text() and "another decision" in failed.inner_text()
    page.wait_for_function(SETTLED)
    assert labels.current_label(ws.engine, held[0].image_id, uid).answer == "yes"
    assert labels.current_label(ws.engine, held[1].image_id, uid) is None
    _shot(page, "filter-refused")
