"""One real-browser flow (Debian Chromium driven by Playwright, Streamlit server on loopback):
a curator builds a group of three, writes a caption with a leaking word (multi-line editor), sees
the checker's warning when leaving the box, fixes it, and the keyboard shortcut to accept is
refused (separation of duties: they wrote it), so they save it for another reviewer.

Skips with a reason when /usr/bin/chromium or the playwright package is missing (never run
`playwright install`: it downloads). Set RELCURATE_SCREENSHOTS=DIR to keep screenshots.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from relcurate.testing.groups import populate
from relcurate.testing.browser import CHROMIUM, IDLE, LAUNCH_ARGS, browser_skip_reason, choose_option, streamlit_server
from relcurate.accounts import create_user
from relcurate.curation.groups import captions, membership as groups
from relcurate.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LEAKY = "A {Fruit} shown next to a teapot on a {Surface}."  # "teapot" names what red1 shows
CLEAN = "A {Fruit} shown next to an {Object} on a {Surface}."


@pytest.fixture(scope="module")
def playwright_sync():
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    return sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory, playwright_sync):
    tmp = tmp_path_factory.mktemp("browser")
    ws = Workspace.init(tmp / "ws")
    ids = populate(ws, tmp)
    create_user(ws.engine, "cur", "curator-password", "curator")
    with streamlit_server(ws.root) as url:
        yield url, ws, ids
    ws.engine.dispose()


@pytest.fixture
def browser_page(server, playwright_sync):
    with playwright_sync() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        pg = browser.new_page(viewport={"width": 1500, "height": 1100})
        pg.set_default_timeout(30_000)
        try:
            yield pg
        finally:
            shot(pg, "last")  # with RELCURATE_SCREENSHOTS: the state at the end (or failure)
            browser.close()


def shot(pg, name: str) -> None:
    folder = os.environ.get("RELCURATE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def idle(pg) -> None:
    pg.wait_for_selector(IDLE)


def click_key(pg, key: str) -> None:
    """Click the button Streamlit rendered for widget `key` (its container has class st-key-KEY)."""
    pg.locator(f".st-key-{key} button").first.click()


def test_build_group_fix_leaking_caption_accept(server, browser_page):
    url, ws, ids = server
    pg = browser_page
    pg.goto(url)
    pg.get_by_role("textbox", name="Username").fill("cur")
    pg.get_by_role("textbox", name="Password").fill("curator-password")
    pg.get_by_role("button", name="Sign in").click()
    # Navigate inside the app (a full page load would start a new, signed-out session).
    pg.locator('[data-testid="stSidebarNav"] a', has_text="Seed groups").click()
    pg.get_by_role("heading", name="Seed groups").wait_for()
    idle(pg)

    click_key(pg, f"grp_start_browse_{ids['red0']}")
    pg.get_by_text("Started a group from image").wait_for()
    idle(pg)
    for key in ("red1", "red2"):
        click_key(pg, f"grp_add_browse_{ids[key]}")
        pg.get_by_text(f"Added image #{ids[key]}").wait_for()
        idle(pg)
    click_key(pg, "grp_to_complete")
    pg.get_by_text("is complete").wait_for()
    idle(pg)
    shot(pg, "1-group-builder")
    gid = groups.list_groups(ws)[-1].id
    assert groups.member_ids(ws, gid) == [ids["red0"], ids["red1"], ids["red2"]]

    pg.locator('[data-testid="stSidebarNav"] a', has_text="Caption review").click()
    pg.get_by_role("heading", name="Caption review").wait_for()
    idle(pg)
    choose_option(pg, "rev_queue", "uncaptioned")
    box = pg.locator(f".st-key-rev_text_new_{gid} textarea")
    box.click()
    box.press_sequentially(LEAKY, delay=5)  # letters a/e/x/n/p must not fire the page's shortcuts
    pg.locator("h1").first.click()  # leaving the box submits it; the checker runs
    warning = pg.locator('[data-testid="stAlert"]', has_text="teapot")
    warning.wait_for()
    assert "alt_text_leak" in warning.inner_text()
    shot(pg, "2-leak-warning")
    box.click()
    box.press("Control+a")
    box.press_sequentially(CLEAN, delay=5)
    pg.locator("h1").first.click()
    pg.get_by_text("The anonymity check found nothing.").wait_for()
    idle(pg)
    assert captions.current_caption(ws, gid) is None  # typing alone wrote nothing
    pg.keyboard.press("a")  # the author may not accept their own caption
    pg.get_by_text("another reviewer must accept it").wait_for()
    idle(pg)
    assert captions.current_caption(ws, gid) is None and captions.accepted_caption(ws, gid) is None
    pg.keyboard.press("e")
    pg.get_by_text(f"Saved the caption of group #{gid}").wait_for()
    idle(pg)
    shot(pg, "3-saved")
    c = captions.current_caption(ws, gid)
    assert (c.text, c.status) == (CLEAN, "proposed")
    assert [e.action for e in captions.history(ws, c.id)] == ["propose"]
