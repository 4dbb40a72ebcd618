"""Small helpers shared by the AppTest (in-process Streamlit) UI tests."""
from __future__ import annotations

import html
import re
from pathlib import Path

from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

APP = Path(__file__).resolve().parents[1] / "labeling_ui" / "app.py"


def open_app(ws_root, monkeypatch, *, timeout: float = 60) -> AppTest:
    """The app on workspace `ws_root`, first run done (the sign-in form), no idle sign-out."""
    from relcurate.labeling_ui import auth
    from relcurate.labeling_ui.resources import WORKSPACE_ENV

    monkeypatch.setenv(WORKSPACE_ENV, str(ws_root))
    monkeypatch.delenv(auth.IDLE_ENV, raising=False)
    return AppTest.from_file(str(APP), default_timeout=timeout).run()


def signed_in(ws_root, monkeypatch, username: str, password: str, *, timeout: float = 60) -> AppTest:
    """`open_app`, then signed in as `username`."""
    return sign_in(open_app(ws_root, monkeypatch, timeout=timeout), username, password)


def sign_in(at: AppTest, username: str, password: str) -> AppTest:
    """Fill the sign-in form and submit it (the form's button is the page's first)."""
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    return at.button[0].click().run()


def goto(at: AppTest, url_path: str) -> AppTest:
    """What a browser does for http://host/<url_path>: request the page whose hash is that path's.
    (AppTest.switch_page only knows file-based pages; ours are functions.)"""
    at._page_hash = calc_hash(url_path)
    return at.run()


def url_paths(at: AppTest) -> set[str]:
    """The pages the app registered in its last run (the default page has url_pathname '')."""
    return {info["page_name"] for info in at._registered_pages.values()}


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def as_displayed(markdown: str) -> str:
    """What a CommonMark renderer shows for escaped text: backslash escapes and entities resolved."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


def component_protos(at: AppTest, name: str) -> list:
    """The protos of the st.components.v2 elements named `name` (AppTest shows them as unknown)."""
    return [el.proto for el in at.get("bidi_component") if getattr(el.proto, "component_name", "") == name]


def prefetch_data(at: AppTest) -> dict:
    """The data the filter page sent its prefetching view in the last run (one mount)."""
    import json

    (proto,) = component_protos(at, "relcurate_filter_prefetch")
    return json.loads(proto.json)


def send_prefetch(at: AppTest, outbox: list[dict], *, tab: str = "tab-1", have: list[str] | None = None,
                  showing: str | None = None) -> AppTest:
    """What the browser's view does after a key press: set its `msg` state (a rerun)."""
    from relcurate.labeling_ui.prefetch import KEY

    at.session_state[KEY] = {"msg": {"tab": tab, "outbox": outbox, "have": have or [], "showing": showing}}
    return at.run()
