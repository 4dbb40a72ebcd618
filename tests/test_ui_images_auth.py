"""No image of the app is fetchable without a signed-in session.

`st.image` serves its bytes at `/media/<hash>.<ext>`, an endpoint that checks no session: anyone
with the URL (or the image bytes, which the hash is computed from) could fetch it. The app draws
every image inline instead (relcurate/labeling_ui/images.py, `<img src="data:...">` in st.html).

- unit: the markup (escaping of alt-text and caption, the data: URI, sizes);
- static: no page module calls a media-producing Streamlit function;
- AppTest (in process): an admin opens every page with images on screen (filter with pinned
  guideline examples, browse grid and large view, seed groups, caption review, adjudication,
  labeling setup): no `st.image` element, only inline data: images;
- real Chromium (Debian's, Playwright; skips with a reason when missing): after signing in and
  labelling by keyboard on the filter page and opening the browse page's large view, the page
  holds no /media/ URL, the browser requested none, and a cookie-less request for the URL
  st.image would have given each shown image is answered 404. A control run of a one-line
  `st.image` app shows that same URL computation finds (and leaks) an st.image picture.
"""
from __future__ import annotations

import ast
import base64
import json
import os
import re
import urllib.error
import urllib.request
from urllib.parse import urlparse
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image as PILImage
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from relcurate.testing import browser as st_browser
from relcurate.testing.apptest import signed_in
from relcurate.testing.groups import populate
from relcurate import accounts
from relcurate.curation.groups import captions
from relcurate.curation.labeling import guidelines, labels, leases
from relcurate.curation.groups.membership import create_group
from relcurate.db.models import GroupStatus
from relcurate.labeling_ui.images import image_html, show_image
from relcurate.labeling_ui.prefetch import prefetch_depth
from relcurate.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "relcurate" / "labeling_ui" / "app.py"
UI_DIR = REPO / "relcurate" / "labeling_ui"
HOSTILE_ALT = '"><script>alert(1)</script> **x**'
USERS = {"boss": "admin", "eve": "admin", "amy": "annotator", "bob": "annotator"}
IMG_SRC = re.compile(r'<img\b[^>]*\bsrc="([^"]*)"')
# Streamlit's media endpoint (the app's own fonts live under ./static/media/, a different route).
MEDIA_URL = re.compile(r"(?<!/static)/media/")
# Streamlit calls that put bytes behind a /media/ URL (st.logo too, with bytes or a file).
MEDIA_CALLS = {"image", "audio", "video", "download_button", "pyplot", "logo"}


def _jpeg(size=(40, 30), colour=(200, 30, 30)) -> bytes:
    out = BytesIO()
    PILImage.new("RGB", size, colour).save(out, "JPEG", quality=85)
    return out.getvalue()


def _decode_src(src: str) -> bytes:
    head, _, b64 = src.partition(",")
    assert head in ("data:image/jpeg;base64", "data:image/png;base64"), head[:60]
    return base64.b64decode(b64)


# -- the markup -----------------------------------------------------------------------------

def test_image_html_inlines_the_bytes_and_escapes_user_text():
    data = _jpeg()
    markup = image_html(data, alt=HOSTILE_ALT + "\n second line", caption="<b>cap</b> & co")
    (src,) = IMG_SRC.findall(markup)
    assert _decode_src(src) == data and src.startswith("data:image/jpeg;base64,")
    assert "<script" not in markup and "<b>" not in markup
    assert 'alt="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt; **x** second line"' in markup
    assert "&lt;b&gt;cap&lt;/b&gt; &amp; co</div>" in markup
    assert 'width="40" height="30"' in markup  # the box is reserved before decoding
    assert "/media/" not in markup


def test_image_html_types_and_widths():
    out = BytesIO()
    PILImage.new("RGBA", (8, 6)).save(out, "PNG")
    png = out.getvalue()
    assert IMG_SRC.findall(image_html(png))[0].startswith("data:image/png;base64,")
    assert "width:100%" in image_html(png)
    assert 'style="display:block;border-radius:0.5rem;max-width:100%;height:auto;"' in image_html(png, width="content")
    assert "width:120px" in image_html(png, width=120)
    for bad in (0, -3, True, "wide"):
        with pytest.raises(ValueError):
            image_html(png, width=bad)
    with pytest.raises(ValueError):
        image_html(png, mime='image/png" onerror="alert(1)')
    # Bytes that are no image still give an inert <img> (the browser shows a broken icon).
    assert IMG_SRC.findall(image_html(b"not an image"))[0].startswith("data:image/jpeg;base64,")


def test_show_image_emits_html_and_no_media_element():
    def script():
        from relcurate.labeling_ui.images import show_image as show
        from PIL import Image as PImage
        from io import BytesIO as B

        buf = B()
        PImage.new("RGB", (10, 10), (1, 2, 3)).save(buf, "JPEG")
        show(buf.getvalue(), caption="hello")

    at = AppTest.from_function(script).run()
    assert not at.exception
    assert at.get("imgs") == [] and len(at.html) == 1
    assert IMG_SRC.findall(at.html[0].proto.body)[0].startswith("data:image/jpeg;base64,")
    assert show_image.__module__ == "relcurate.labeling_ui.images"


def _media_calls(source: str, name: str = "<src>") -> list[str]:
    """Every `<anything>.image(...)`-style media call: on `st` itself, on a column, a container,
    a sidebar, `st.columns(2)[0]`... (each Streamlit container has the same media methods)."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MEDIA_CALLS:
            found.append(f"{name}:{node.lineno} {ast.unparse(node.func)}")
    return found


def test_no_page_calls_a_media_producing_streamlit_function():
    found = []
    for path in sorted(UI_DIR.glob("*.py")):
        if path.name != "images.py":  # the one module that draws images (inline, never via /media/)
            found += _media_calls(path.read_text(), path.name)
    assert found == [], "use relcurate.labeling_ui.images.show_image instead: " + ", ".join(found)


def test_the_media_guard_sees_calls_on_any_container():
    src = ("import streamlit as st\nst.image(b'')\ncol, _ = st.columns(2)\ncol.image(b'')\n"
           "st.sidebar.image(b'')\nst.columns(2)[0].image(b'')\nwith st.container() as c:\n    c.image(b'')\n")
    assert sorted(f.split(" ", 1)[1] for f in _media_calls(src)) == sorted(
        ["st.image", "col.image", "st.sidebar.image", "st.columns(2)[0].image", "c.image"])


# -- every page in process ------------------------------------------------------------------

@pytest.fixture(scope="module")
def iws(tmp_path_factory) -> tuple[Workspace, dict[str, int], dict[str, int]]:
    """Images, groups, a caption to review, a dispute and pinned examples: every page shows images."""
    tmp = tmp_path_factory.mktemp("img_auth")
    ws = Workspace.init(tmp / "ws")
    ids = populate(ws, tmp)
    users = {n: accounts.create_user(ws.engine, n, f"{n}-password", r).id for n, r in USERS.items()}
    gid = create_group(ws, "reds", [ids[f"red{i}"] for i in range(3)], status=GroupStatus.complete).id
    captions.add_group_caption(ws, gid, "A {Fruit} next to an {Object} on a {Surface}.", source="model")
    create_group(ws, "blues", [ids[f"blue{i}"] for i in range(3)], created_by=users["boss"])
    leases.set_config(ws.engine, strategy="sequential", overlap_k=2, overlap_fraction=1.0)
    leases.sync_pool(ws.engine, seed=0)
    for name, answer in (("amy", "yes"), ("bob", "no")):
        labels.record_label(ws.engine, image_id=ids["green0"], user_id=users[name], answer=answer,
                            request_id=f"img-auth-{name}")
    guidelines.pin_example(ws.engine, ids["green1"], "yes", user_id=users["boss"], note="<i>clear</i>")
    guidelines.pin_example(ws.engine, ids["green2"], "no", user_id=users["boss"])
    yield ws, ids, users
    ws.engine.dispose()


def _goto(at: AppTest, url_path: str) -> AppTest:
    at._page_hash = calc_hash(url_path)  # what a browser does for http://host/<url_path>
    return at.run()


def _inline_images(at: AppTest) -> list[str]:
    """data: sources in st.html markup and in the filter page's prefetching view's data."""
    srcs = [src for h in at.html for src in IMG_SRC.findall(h.proto.body)]
    return srcs + [it["src"] for el in at.get("bidi_component") for it in json.loads(el.proto.json or "{}")
                   .get("items", []) if "src" in it]


@pytest.mark.parametrize("url_path", ["filter", "browse", "groups", "review", "adjudicate", "label-setup"])
def test_every_page_draws_its_images_inline(iws, monkeypatch, url_path):
    ws, _, users = iws
    at = signed_in(ws.root, monkeypatch, "boss", "boss-password")
    _goto(at, url_path)
    if url_path == "browse":  # the large view too
        at.button(key=next(b.key for b in at.button if (b.key or "").startswith("browse_open_"))).click().run()
    assert not at.exception, at.exception
    assert at.get("imgs") == []  # no st.image: nothing was put behind /media/
    srcs = _inline_images(at)
    assert srcs and all(s.startswith("data:image/") for s in srcs)
    for src in srcs:
        PILImage.open(BytesIO(_decode_src(src))).verify()  # real pictures, not placeholders
    if url_path == "browse":
        assert len(srcs) > 12  # the grid's thumbnails and the large view
    if url_path == "filter":
        # The held tasks (the shown one and the prefetched next ones) and the two pinned examples.
        assert len(srcs) == 2 + len(leases.next_tasks(ws.engine, users["boss"], prefetch_depth()))


# -- real browser ---------------------------------------------------------------------------

_SKIP = st_browser.browser_skip_reason()
browser = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


@pytest.fixture(scope="module")
def chromium():
    with st_browser.chromium_browser() as browser:
        yield browser


def _media_url(data: bytes, mime: str = "image/jpeg") -> str:
    """The /media/ path st.image gives these bytes (no resize: images under the content width)."""
    from streamlit.runtime.memory_media_file_storage import _calculate_file_id, get_extension_for_mimetype

    return f"/media/{_calculate_file_id(data, mime)}{get_extension_for_mimetype(mime)}"


def _status(url: str) -> int:
    """HTTP status of a cookie-less GET (what anyone holding the URL gets)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _page_images(page) -> list[str]:
    return page.eval_on_selector_all("img", "els => els.map(e => e.getAttribute('src') || '')")


def _assert_inline_only(page) -> list[bytes]:
    """Every <img> is a decoded data: image and no /media/ URL is anywhere in the DOM."""
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    srcs = _page_images(page)
    assert srcs and all(s.startswith("data:image/") for s in srcs), [s[:80] for s in srcs]
    assert not MEDIA_URL.search(page.content())
    return [_decode_src(s) for s in srcs]


def _shot(page, name: str) -> None:
    folder = os.environ.get("RELCURATE_SCREENSHOTS")  # keep screenshots to look at the pages
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(600)  # let an expander finish opening
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@browser
@pytest.mark.browser
@pytest.mark.slow
def test_signed_in_pages_have_no_media_urls_and_media_serves_nothing(iws, chromium):
    ws, _, _ = iws
    requested: list[str] = []
    with st_browser.streamlit_server(ws.root) as url:
        context = chromium.new_context(viewport={"width": 1400, "height": 950})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("request", lambda r: requested.append(r.url))
        try:
            st_browser.login(page, url, "eve", "eve-password")
            st_browser.open_page(page, "Filter labeling")
            page.wait_for_selector(st_browser.IMAGE_SELECTOR)
            page.get_by_text("Guidelines").click()  # the pinned examples' thumbnails
            page.wait_for_function("() => document.querySelectorAll('img').length >= 3")
            shown = _assert_inline_only(page)
            _shot(page, "images-filter")
            first = st_browser.image_src(page)
            st_browser.wait_idle(page)
            page.wait_for_timeout(400)  # past the key handler's minimum dwell (a person looks first)
            page.locator("body").press("n")  # keyboard labelling: the next image, inline too
            st_browser.wait_image_change(page, first)
            shown += _assert_inline_only(page)

            st_browser.open_page(page, "Browse images")
            page.locator("button", has_text="Open").first.click()
            page.wait_for_selector(".st-key-browse_detail img")
            st_browser.wait_idle(page)
            shown += _assert_inline_only(page)
            _shot(page, "images-browse")
            assert len(_page_images(page)) > 12  # thumbnail grid + large view
        finally:
            context.close()

        assert not [u for u in requested if urlparse(u).path.startswith("/media/")]
        assert len(set(shown)) >= 10
        # Anyone with the URL st.image would have used for these exact bytes: nothing there.
        for data in set(shown):
            assert _status(url + _media_url(data)) == 404
        assert _status(url + "/media/" + "0" * 56 + ".jpg") == 404


@browser
@pytest.mark.browser
@pytest.mark.slow
def test_control_st_image_is_fetchable_without_a_session(tmp_path, chromium, monkeypatch):
    """Why the app avoids st.image, and proof that `_media_url` names the URL st.image uses."""
    data = _jpeg((50, 40), (10, 120, 200))
    (tmp_path / "pic.jpg").write_bytes(data)
    script = tmp_path / "control_app.py"
    script.write_text("from pathlib import Path\nimport streamlit as st\n"
                      f"st.image(Path({str(tmp_path / 'pic.jpg')!r}).read_bytes())\n")
    monkeypatch.setattr(st_browser, "APP", script)
    with st_browser.streamlit_server(tmp_path) as url:
        context = chromium.new_context()
        page = context.new_page()
        try:
            page.goto(url)
            page.wait_for_selector('[data-testid="stImage"] img')
            src = page.locator('[data-testid="stImage"] img').get_attribute("src")
            assert src.endswith(_media_url(data))
            # While that session lives, a cookie-less client fetches the picture.
            with urllib.request.urlopen(url + _media_url(data), timeout=10) as r:
                assert r.status == 200 and r.read() == data
        finally:
            context.close()
