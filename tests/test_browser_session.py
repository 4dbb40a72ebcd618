"""In real Chromium: a reload keeps the session and the page; a bookmarked address shows the
sign-in form (no "Page not found") and then the page asked for; logout and a server-side
revocation both end the session for every later reload."""
from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from relcurate import accounts, web_sessions
from relcurate.testing.browser import chromium_browser, browser_skip_reason, login, streamlit_server, wait_idle
from relcurate.workspace import Workspace

_SKIP = browser_skip_reason()
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]
PASSWORD = "curator-password-1"


@pytest.fixture(scope="module")
def chromium():
    with chromium_browser() as browser:
        yield browser


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    ws = Workspace.init(tmp_path_factory.mktemp("session_browser") / "ws")
    user = accounts.create_user(ws.engine, "cur", PASSWORD, "curator")
    with streamlit_server(ws.root) as url:
        yield url, ws, user
    ws.engine.dispose()


@pytest.fixture
def tab(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def _signed_in(page) -> bool:
    wait_idle(page)
    return page.locator('[data-testid="stSidebar"]').get_by_text("Signed in as").count() > 0


def _sign_in_form(page) -> bool:
    """The sign-in form shows (waited for: right after a click the rerun may not have started, so
    an idle page can still be the old one)."""
    try:
        page.get_by_role("button", name="Sign in").wait_for(timeout=15_000)
    except PlaywrightTimeout:
        return False
    return True


def test_reload_keeps_the_session_and_the_page(served, tab):
    url, ws, _ = served
    login(tab, url, "cur", PASSWORD)
    tab.locator('[data-testid="stSidebarNav"] a', has_text="Browse").first.click()
    tab.wait_for_url("**/browse")
    wait_idle(tab)
    tab.reload()
    tab.wait_for_selector('[data-testid="stSidebar"]')
    assert _signed_in(tab) and tab.url.endswith("/browse")
    other = tab.context.new_page()  # a new tab of the same browser shares the cookie
    other.goto(url.rstrip("/") + "/browse")
    other.wait_for_selector('[data-testid="stSidebar"]')
    assert _signed_in(other)
    tab.locator('[data-testid="stSidebar"]').get_by_role("button", name="Log out").click()
    assert _sign_in_form(tab)
    tab.reload()
    assert _sign_in_form(tab) and not _signed_in(tab)


def test_bookmark_signs_in_to_the_page_asked_for(served, tab):
    url, _, _ = served
    tab.goto(url.rstrip("/") + "/browse")
    assert _sign_in_form(tab)
    assert tab.get_by_text("Page not found").count() == 0
    tab.get_by_role("textbox", name="Username").fill("cur")
    tab.get_by_role("textbox", name="Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_selector('[data-testid="stSidebar"]')
    assert _signed_in(tab) and tab.url.endswith("/browse")


def test_a_revoked_session_cannot_reload(served, tab):
    url, ws, user = served
    login(tab, url, "cur", PASSWORD)
    assert web_sessions.revoke_user_sessions(ws.engine, user.id) >= 1  # e.g. an admin's action
    tab.reload()
    assert _sign_in_form(tab) and not _signed_in(tab)
    cookies = {c["name"]: c["value"] for c in tab.context.cookies()}
    assert "relcurate_session" not in cookies or cookies["relcurate_session"] == ""
