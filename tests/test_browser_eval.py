"""Evaluation pages in a real browser (Debian Chromium via Playwright, Streamlit on loopback):
the similarity-space tooltip shows the hovered image from an inline data URI (no /media/ URL
is ever requested), and the A/B study answers by keyboard."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from relcurate.accounts import create_user
from relcurate.evaluation import ab_study, retrieval
from relcurate.models.registry import load_model
from relcurate.models.workspace_scoring import embed_workspace
from relcurate.testing.browser import CHROMIUM, LAUNCH_ARGS, browser_skip_reason, login, open_page, streamlit_server, wait_idle
from relcurate.testing.evaluation import build_eval_workspace, register_eval_models

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    ws = build_eval_workspace(tmp_path_factory.mktemp("browser-eval") / "ws", n_pool=16)
    for mv in register_eval_models(ws):
        embed_workspace(ws, load_model(ws, mv), mv)
    rid = retrieval.run_retrieval(ws, retrieval.RetrievalConfig(
        methods=["oracle", "attribute"], n_queries=8, k=2, split_weights={"train": 1, "test": 1},
        caption_similarity=False, resamples=50))
    sid = ab_study.create_study(ws, rid, method="oracle:1", baselines=["attribute:1"], n_triplets=4)
    uid = create_user(ws.engine, "cur", "curator-password", "curator").id
    with streamlit_server(ws.root) as url:
        yield url, ws, sid, uid
    ws.engine.dispose()


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        pg = browser.new_page(viewport={"width": 1500, "height": 1100})
        pg.set_default_timeout(30_000)
        media: list[str] = []
        pg.on("request", lambda r: media.append(r.url) if "/media/" in r.url and "/static/" not in r.url else None)
        try:
            yield pg, media
        finally:
            if os.environ.get("RELCURATE_SCREENSHOTS"):
                Path(os.environ["RELCURATE_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
                pg.screenshot(path=str(Path(os.environ["RELCURATE_SCREENSHOTS"]) / "eval-last.png"), full_page=True)
            browser.close()


def test_similarity_space_tooltip_shows_the_image_inline(server, page):
    url, ws, _, _ = server
    pg, media = page
    login(pg, url, "cur", "curator-password")
    open_page(pg, "Similarity space")
    chart = pg.locator('[data-testid="stVegaLiteChart"]').first
    chart.wait_for()
    pg.wait_for_timeout(1000)  # vega renders after the element appears
    box = chart.bounding_box()
    found = None
    for fy in [i / 24 for i in range(1, 24)]:
        for fx in [i / 30 for i in range(1, 30)]:
            pg.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            img = pg.locator("#vg-tooltip-element img")
            if img.count() and img.first.is_visible():
                found = img.first.get_attribute("src")
                break
        if found:
            break
    assert found and found.startswith("data:image/"), "no tooltip with an image appeared over the points"
    assert media == []


def test_ab_study_answers_by_keyboard(server, page):
    url, ws, sid, uid = server
    pg, media = page
    login(pg, url, "cur", "curator-password")
    open_page(pg, "A/B study")
    pg.locator(".st-key-ab_left button").first.wait_for()
    before = ab_study.progress_of(ws, sid, uid)["mine"]
    pg.locator("h1", has_text="A/B study").first.click()  # focus the page, not a widget
    pg.keyboard.press("a")
    for _ in range(50):
        if ab_study.progress_of(ws, sid, uid)["mine"] > before:
            break
        pg.wait_for_timeout(200)
    wait_idle(pg)
    pg.keyboard.press("s")
    for _ in range(50):
        if ab_study.progress_of(ws, sid, uid)["mine"] > before + 1:
            break
        pg.wait_for_timeout(200)
    assert ab_study.progress_of(ws, sid, uid)["mine"] == before + 2
    choices = ab_study.study_results(ws, sid, save=False)["pairs"][0]
    assert choices["answers"] == 2 and choices["same"]["estimate"] == 0.5
    assert media == []
