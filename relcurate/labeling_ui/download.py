"""A file download that never leaves the signed-in session: an st.components.v2 element (no
iframe; its code is static/download.js) receives the bytes over the page's own websocket and
saves them from a blob: URL in the browser.

Why not st.download_button: it parks the bytes behind Streamlit's /media/ endpoint, which checks
no session (anyone holding the URL can fetch it; tests/test_ui_images_auth.py guards against
every such call). Here the bytes go only to the browser tab of the user the page already
checked, once: `offer` sends them in the one run after the user asked, later reruns send only
the token, and the browser keeps its blob for the link ("Save again").

The payload is base64 in the element's JSON, so a download is capped (MAX_BYTES); bigger files
are left to the workspace path.
"""
from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path

import streamlit as st

NAME = "relcurate_download"
MAX_BYTES = 64 * 1024**2  # base64 adds a third; well under Streamlit's 200 MB message cap
_K_PENDING = "dl_pending"  # element key -> (token, path) asked for, not sent yet
_K_SENT = "dl_sent"  # element key -> token of the bytes already in the browser
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_JS = (Path(__file__).parent / "static" / "download.js").read_text(encoding="utf-8")

_component = st.components.v2.component(NAME, js=_JS, isolate_styles=False)


def safe_file_name(name: str) -> str:
    """A file name the browser may save under (no path parts, no markup)."""
    cleaned = _SAFE_NAME.sub("_", Path(str(name)).name).strip("._") or "download"
    return cleaned[:120]


def request(key: str, path: Path) -> None:
    """The user asked for `path` (call from the button's callback, after the role check): it is
    sent in the next render of the element `key`."""
    st.session_state.setdefault(_K_PENDING, {})[key] = (uuid.uuid4().hex, Path(path))


def offer(key: str, file_name: str, mime: str = "application/zip") -> None:
    """Mount the element `key`: the bytes once (if asked for), the saved link afterwards."""
    pending = st.session_state.get(_K_PENDING, {}).pop(key, None)
    sent = st.session_state.setdefault(_K_SENT, {})
    name = safe_file_name(file_name)
    data: dict = {"name": name, "mime": mime}
    if pending is not None:
        token, path = pending
        size = path.stat().st_size
        if size > MAX_BYTES:
            st.info(f"{size:,} bytes is over the browser download cap ({MAX_BYTES:,}); "
                    "copy it from the workspace path.")
            return
        data.update(token=token, b64=base64.b64encode(path.read_bytes()).decode("ascii"), size=size)
        sent[key] = token
    elif key in sent:
        data["token"] = sent[key]
    else:
        return  # nothing asked for yet: no element
    _component(key=key, data=data)
