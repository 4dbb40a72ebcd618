"""Caption review in a real browser (Debian Chromium + Playwright, Streamlit on loopback):
after saving an edit in the "accepted" queue the page stays on that group and the next key acts
on it; the author of a caption cannot accept it with the keyboard, another reviewer can; a flagged
object noun marked "shown by every member" (inside the editor fragment) clears the finding.

Skips with a reason when /usr/bin/chromium or the playwright package is missing."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from relcurate.accounts import create_user
from relcurate.curation.groups import captions, membership as groups
from relcurate.db.models import GroupStatus
from relcurate.testing.browser import CHROMIUM, LAUNCH_ARGS, browser_skip_reason, choose_option, streamlit_server, wait_idle
from relcurate.testing.groups import populate
from relcurate.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLEAN = "A {Fruit} shown next to an {Object} on a {Surface}."
EDITED = "A {Fruit} set beside an {Object} on a {Surface}."


@pytest.fixture(scope="module")
def playwright_sync():
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    return sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory, playwright_sync):
    tmp = tmp_path_factory.mktemp("browser-review")
    ws = Workspace.init(tmp / "ws")
    ids = populate(ws, tmp)
    users = {n: create_user(ws.engine, n, f"{n}-password", role).id
             for n, role in (("rev", "reviewer"), ("cur", "curator"))}
    gids = []
    for fam in ("red", "blue", "green"):
        gid = groups.create_group(ws, f"{fam}s", [ids[f"{fam}{i}"] for i in range(3)], status=GroupStatus.complete).id
        cid = captions.add_group_caption(ws, gid, CLEAN, source="model").id
        captions.review_caption(ws, cid, "accept", user_id=users["cur"])
        gids.append(gid)
    with streamlit_server(ws.root) as url:
        yield url, ws, gids, ids
    ws.engine.dispose()


@pytest.fixture
def pw(playwright_sync):
    with playwright_sync() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


PAGES: list = []


@pytest.fixture(autouse=True)
def _screenshots(pw, request):
    """With RELCURATE_SCREENSHOTS=DIR: each page's state at the end (or failure)."""
    yield
    folder = os.environ.get("RELCURATE_SCREENSHOTS")
    for i, pg in enumerate(PAGES):
        if folder and not pg.is_closed():
            Path(folder).mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(Path(folder) / f"{request.node.name}-{i}.png"), full_page=True)
    PAGES.clear()


def review_page(browser, url: str, user: str):
    pg = browser.new_page(viewport={"width": 1500, "height": 1100})
    PAGES.append(pg)
    pg.set_default_timeout(30_000)
    pg.goto(url)
    pg.get_by_role("textbox", name="Username").fill(user)
    pg.get_by_role("textbox", name="Password").fill(f"{user}-password")
    pg.get_by_role("button", name="Sign in").click()
    pg.locator('[data-testid="stSidebarNav"] a', has_text="Caption review").click()
    pg.get_by_role("heading", name="Caption review").wait_for()
    wait_idle(pg)
    return pg


def shows(pg, text: str):
    """The app's own text (never the text box's contents): a locator to wait for."""
    return pg.locator('[data-testid="stMarkdownContainer"]', has_text=text).first


def press(pg, key: str) -> None:
    """A page shortcut: focus off any input first (the shortcuts ignore keys typed into one)."""
    pg.locator("h1").first.click()
    pg.keyboard.press(key)


# Each step waits for something the run it caused draws, not only for IDLE: right after a click
# or key the app can still read "notRunning" before that rerun starts (under load in CI a key
# then reached the page before the button it meant was drawn, and was lost).

def test_edit_stays_on_group_and_author_cannot_accept(server, pw):
    url, ws, (first, second, third), _ = server
    pg = review_page(pw, url, "rev")
    choose_option(pg, "rev_queue", "accepted")
    shows(pg, "1 of 3").wait_for()  # the accepted queue is drawn (with its Next button)
    wait_idle(pg)
    press(pg, "n")
    shows(pg, f"Group #{second} ·").wait_for()
    wait_idle(pg)
    box = pg.locator(".st-key-rev_editor textarea")
    box.click()
    box.press("Control+a")
    box.press_sequentially(EDITED, delay=5)
    pg.locator("h1").first.click()  # leaving the box sends its text; the editor fragment reruns
    shows(pg.locator(".st-key-rev_editor"), "set beside").wait_for()  # the checker ran on the new text
    wait_idle(pg)
    press(pg, "e")
    shows(pg, f"Saved the caption of group #{second}.").wait_for()
    wait_idle(pg)
    assert shows(pg, f"Group #{second} ·").is_visible()  # still on the edited group
    assert captions.current_caption(ws, second).text == EDITED
    # the next key acts on the group on screen: rev edited it, so accepting is refused
    press(pg, "a")
    shows(pg, "another reviewer must accept it").wait_for()
    wait_idle(pg)
    assert captions.accepted_caption(ws, second) is None
    assert captions.accepted_caption(ws, first) == CLEAN and captions.accepted_caption(ws, third) == CLEAN
    # another reviewer (the curator did not write or edit it) accepts it
    other = review_page(pw, url, "cur")
    shows(other, f"Group #{second} ·").wait_for()  # "to review" holds only this group
    press(other, "a")
    shows(other, f"Accepted the caption of group #{second}.").wait_for()
    assert captions.accepted_caption(ws, second) == EDITED


def jump_to(pg, gid: int) -> None:
    """Open one group by the "Jump to group" box, whatever the queue holds (so this test does not
    depend on what an earlier test left in "to review")."""
    box = pg.get_by_role("textbox", name="Jump to group")
    box.fill(str(gid))
    box.press("Enter")
    shows(pg, f"Group #{gid} ·").wait_for()
    wait_idle(pg)


def test_mark_a_flagged_noun_as_shared_then_accept(server, pw):
    url, ws, _, ids = server
    gid = groups.create_group(ws, "more reds", [ids["red3"], ids["red4"]], status=GroupStatus.complete).id
    cid = captions.add_group_caption(ws, gid, "A {Fruit} placed right next to a bicycle on a {Surface}.",
                                     source="model").id
    pg = review_page(pw, url, "rev")
    jump_to(pg, gid)
    pg.locator('[data-testid="stAlert"]', has_text="bicycle").first.wait_for()
    pg.locator(".st-key-rev_share_0_bicycle button").first.click()
    pg.get_by_text("Marked 'bicycle' as shown by every member").wait_for()
    pg.get_by_text("The anonymity check found nothing.").wait_for()  # the whole page was redrawn
    wait_idle(pg)
    assert captions.shared_nouns(ws, cid) == ("bicycle",)
    press(pg, "a")
    shows(pg, f"Accepted the caption of group #{gid}.").wait_for()
    assert captions.accepted_caption(ws, gid).endswith("bicycle on a {Surface}.")
