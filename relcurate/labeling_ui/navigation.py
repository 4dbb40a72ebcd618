"""Links between pages: switch to a registered page by its url path (pages are functions, so
st.switch_page needs a Page object with the same url path; its script hash is derived from it)."""
from __future__ import annotations

import streamlit as st


def switch_to(url_path: str) -> None:
    """Go to the page registered under `url_path` (call from the script body, not a callback)."""
    st.switch_page(st.Page(_placeholder, url_path=url_path))


def _placeholder() -> None:  # never run: only its url path identifies the page
    pass
