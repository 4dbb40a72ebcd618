"""Small helpers shared by the AppTest (in-process Streamlit) UI tests."""
from __future__ import annotations

import html
import re

from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash


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
