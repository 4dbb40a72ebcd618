"""Images drawn inline as `data:` URIs, so none is ever fetchable without a signed-in session.

`st.image` puts the bytes in Streamlit's media file manager and gives the browser a
`/media/<hash>.jpg` URL; that endpoint checks no session, so anyone holding (or guessing from
the bytes) the URL can fetch the image for as long as the session keeps it. An
`<img src="data:...">` travels inside the signed-in session's own websocket message instead:
there is no separate URL, and the media endpoint stays empty.

`st.html` is used (not `st.markdown`): it is sanitised by DOMPurify, whose default profile keeps
`data:` URIs on `<img>`, while markdown's URL filter would strip them. Every user-originated
string (alt-text, caption) is HTML-escaped here; DOMPurify is the second line of defence.
"""
from __future__ import annotations

import base64
import html
from io import BytesIO
from typing import Literal

import streamlit as st
from PIL import Image as PILImage

Width = Literal["stretch", "content"] | int

_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
MIMES = frozenset(_FORMATS.values())
ALT_MAX = 300  # as on the pages' "Alt-text:" captions


def probe(data: bytes) -> tuple[str, tuple[int, int] | None]:
    """(mime type, (width, height)) from the header only; ("image/jpeg", None) when unreadable.

    The size goes into the <img> so the browser reserves the box before decoding: a new image
    element (st.html replaces its content on every change) then never collapses for a frame.
    """
    try:
        with PILImage.open(BytesIO(data)) as img:  # lazy: reads the header, decodes nothing
            return _FORMATS.get(img.format or "", "image/jpeg"), img.size
    except (OSError, ValueError, PILImage.DecompressionBombError):
        return "image/jpeg", None


def _attr_text(text: object, max_len: int) -> str:
    """User text as one escaped line for an HTML attribute (quotes included)."""
    s = " ".join(str(text).split())
    if len(s) > max_len:
        s = s[: max_len - 1] + "…"
    return html.escape(s, quote=True)


def data_uri(data: bytes, mime: str | None = None) -> str:
    mime = mime or probe(data)[0]
    if mime not in MIMES:  # the type goes into the URI unescaped: only known values
        raise ValueError(f"unsupported image type {mime!r}; expected one of {sorted(MIMES)}")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_html(data: bytes, *, alt: str | None = None, caption: str | None = None,
               width: Width = "stretch", mime: str | None = None) -> str:
    """The `<img>` (and caption) markup for `data`; see `show_image`."""
    if width == "stretch":
        size = "width:100%;height:auto;"
    elif width == "content":
        size = "max-width:100%;height:auto;"
    elif isinstance(width, int) and not isinstance(width, bool) and width > 0:
        size = f"width:{width}px;max-width:100%;height:auto;"
    else:
        raise ValueError(f"width must be 'stretch', 'content' or a positive int, not {width!r}")
    sniffed, dims = probe(data)
    box = f' width="{dims[0]}" height="{dims[1]}"' if dims else ""
    out = (f'<img src="{data_uri(data, mime or sniffed)}" alt="{_attr_text(alt or "", ALT_MAX)}"{box} '
           f'style="display:block;border-radius:0.5rem;{size}">')  # st.image's corners
    if caption:
        # st.image's caption look: small, muted, centred under the picture.
        out += (f'<div style="font-size:0.875rem;opacity:0.6;text-align:center;margin-top:0.25rem">'
                f"{html.escape(' '.join(str(caption).split()))}</div>")
    return f'<figure style="margin:0">{out}</figure>'


def show_image(data: bytes, *, alt: str | None = None, caption: str | None = None,
               width: Width = "stretch", mime: str | None = None) -> None:
    """Draw `data` like `st.image(data, width=..., caption=..., alt=...)`, without a /media/ URL.

    `mime` is read from the bytes' header when not given. `width`: "stretch" fills the column,
    "content" keeps the natural size (never wider than the column), an int is pixels.
    Pass display-sized bytes (curation.catalog.image_bytes.display_bytes / thumbnail_bytes): they go
    base64-encoded (+33 %) into the page's websocket message.
    """
    st.html(image_html(data, alt=alt, caption=caption, width=width, mime=mime))
