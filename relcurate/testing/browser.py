"""Run the Streamlit app on loopback and drive it with Debian Chromium (helpers, no tests here).

Used by tests/test_browser_filter.py and bench/label_latency.py. Never `playwright install`
(it downloads): the system /usr/bin/chromium is launched with the flags from the stack notes.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]  # the checkout holding relcurate/
APP = REPO / "relcurate" / "labeling_ui" / "app.py"
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Streamlit marks the app root with the script state; stale elements stay visible during a rerun.
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def browser_skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/setup-browser does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright==1.65.2)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(workspace_root: Path, *, startup_s: float = 90) -> Iterator[str]:
    """`streamlit run app.py` for this workspace on a free loopback port; yields the base URL.

    `--runner.postScriptGC false`: Streamlit's default full gc.collect() after every rerun holds
    the GIL for tens of milliseconds right when the browser fetches the new image (measured:
    key press -> next image decoded ~200 ms with it, ~100 ms without). `relcurate serve` should
    pass the same flag."""
    port = free_port()
    env = {**os.environ, "RELCURATE_WORKSPACE": str(workspace_root), "PYTHONPATH": str(REPO)}
    # A log file, not a pipe: nobody reads a pipe while the server runs, and a full one blocks it.
    log = tempfile.NamedTemporaryFile(prefix="streamlit-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--server.runOnSave", "false", "--runner.postScriptGC", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_s
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"streamlit did not start:\n{Path(log.name).read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        Path(log.name).unlink(missing_ok=True)


def wait_idle(page) -> None:
    page.wait_for_selector(IDLE)


def choose_option(page, key: str, option: str, *, tries: int = 3) -> None:
    """Pick `option` in the selectbox of widget `key`. A click that lands while a rerun redraws the
    box does not open its list, so open it again (up to `tries` times) before choosing.

    Waiting for IDLE after the choice is not enough to know its rerun ran: the attribute can still
    read "notRunning" before the rerun starts. Callers wait for something the new run draws."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    choice = page.get_by_role("option", name=option, exact=True)
    for attempt in range(tries):
        page.locator(f".st-key-{key}").click()
        try:
            choice.wait_for(timeout=5_000)
            break
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise
            wait_idle(page)
    choice.click()


def login(page, url: str, username: str, password: str) -> None:
    page.goto(url)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector('[data-testid="stSidebar"]')
    wait_idle(page)


def open_page(page, title: str) -> None:
    """Follow the sidebar link (as a person would; a typed URL works too since sessions survive reloads)."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_function("t => document.title.includes(t) || true", arg=title)
    wait_idle(page)


IMAGE_SELECTOR = ".st-key-filter_image img"


def image_src(page) -> str:
    return page.locator(IMAGE_SELECTOR).first.get_attribute("src") or ""


def wait_image_change(page, old_src: str) -> str:
    """Wait until the filter image shows another picture than `old_src`, then for the rerun to end."""
    page.wait_for_function(
        "([sel, old]) => { const i = document.querySelector(sel); return i && i.src && (old === '' || !i.src.endsWith(old)) "
        "&& i.complete && i.naturalWidth > 0; }", arg=[IMAGE_SELECTOR, old_src])
    wait_idle(page)
    return image_src(page)


@contextmanager
def chromium_browser():
    """Debian's Chromium under this module's own `sync_playwright()` (one per test module: a
    session-wide Playwright loop breaks any other module that opens its own)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()
