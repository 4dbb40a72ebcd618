"""An export started in the app (Debian Chromium + Playwright, Streamlit on loopback) produces the
same files as the CLI: a curator sets the split weights and folder name, starts the export, the
worker runs the job, the page picks up the finished job by itself, and the zip downloaded through
the browser holds exactly the files `relcurate export relsim` writes, byte for byte. The zip comes
over the signed-in page's websocket (a blob: URL in the tab): the browser requested no /media/ URL.

Skips with a reason when /usr/bin/chromium or the playwright package is missing."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relcurate.cli.export import app
from relcurate.db import jobs as job_store
from relcurate.jobs.worker import run_worker
from relcurate.testing.browser import (browser_skip_reason, chromium_browser, login, open_page, streamlit_server,
                                       wait_idle)
from relcurate.testing.exports import PASSWORD, build_curated
from relcurate.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def chromium():
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    with chromium_browser() as browser:
        yield browser


@pytest.fixture(scope="module")
def server(tmp_path_factory, chromium):
    tmp = tmp_path_factory.mktemp("browser-export")
    ws = Workspace.init(tmp / "ws")
    build_curated(ws, tmp)
    with streamlit_server(ws.root) as url:
        yield url, ws
    ws.engine.dispose()


def _fill(tab, key: str, text: str) -> None:
    box = tab.locator(f".st-key-{key} input")
    box.fill(text)
    box.press("Enter")
    wait_idle(tab)


def test_export_from_the_app_equals_the_cli(server, chromium, tmp_path):
    url, ws = server
    tab = chromium.new_page(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
    tab.set_default_timeout(60_000)
    try:
        login(tab, url, "cur", PASSWORD)
        open_page(tab, "Export")
        tab.get_by_role("heading", name="Export").first.wait_for()
        _fill(tab, "exp_splits_relsim_", "train=1,test=1")
        _fill(tab, "exp_name", "from-the-app")
        queued = tab.get_by_text("queued: exports/from-the-app")
        for _ in range(3):  # a click that beat a field's rerun is refused, and says so: click again
            tab.locator(".st-key-exp_start button").click()
            queued.or_(tab.get_by_text("settings changed since the preview")).first.wait_for()
            wait_idle(tab)
            if queued.count():
                break
        queued.wait_for()
        [job] = job_store.list_jobs(ws.engine, kind="export")
        assert job.state == "queued" and job.params["splits"] == {"train": 1.0, "test": 1.0}
        assert run_worker(ws, exit_when_idle=True) == 1  # the worker, outside any page request
        assert job_store.get_job(ws.engine, job.id).state == "done"
        button = tab.locator(f".st-key-exp_dl_{job.id} button")
        button.wait_for()  # the page refreshes itself while a job is live
        wait_idle(tab)
        media = []
        tab.on("request", lambda r: media.append(r.url) if "/media/" in r.url else None)
        with tab.expect_download() as info:
            button.click()
        zipped = tmp_path / "download.zip"
        info.value.save_as(zipped)
        assert info.value.suggested_filename == "from-the-app.zip"
        assert info.value.url.startswith("blob:") and media == []
        again = tab.locator(".rc-download-link")
        assert again.inner_text() == "Save from-the-app.zip again"
        with tab.expect_download() as second:  # the tab kept it: saved again without the server
            again.click()
        assert second.value.suggested_filename == "from-the-app.zip"
    finally:
        folder = os.environ.get("RELCURATE_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(Path(folder) / "export.png"), full_page=True)
        tab.close()

    cli_out = tmp_path / "cli"
    r = CliRunner().invoke(app, ["relsim", str(cli_out), "-w", str(ws.root), "--as-user", "cur",
                                 "--splits", "train=1,test=1"])
    assert r.exit_code == 0, r.output
    expected = {p.relative_to(cli_out).as_posix(): p.read_bytes() for p in cli_out.rglob("*") if p.is_file()}
    with zipfile.ZipFile(zipped) as zf:
        got = {n.removeprefix("from-the-app/"): zf.read(n) for n in zf.namelist()}
    assert sorted(got) == sorted(expected) and "manifest.json" in got
    assert got == expected  # manifest.json included: same store state, same bytes
