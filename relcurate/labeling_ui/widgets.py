"""The pieces every page draws the same way: the one-shot flash message, the thumbnail tile and
the large image card. Images go through `images.show_image` (inline, never a /media/ URL) and
every user-originated string through `escaping.escape_md`.
"""
from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Literal

import streamlit as st

from relcurate.curation.catalog.browse import ImageCard
from relcurate.curation.catalog.image_bytes import display_bytes, thumbnail_bytes
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.images import Width, show_image

FlashKind = Literal["success", "error", "warning", "info"]


# --- flash: a message kept across the rerun a button callback triggers -------------------------

DRAWN_FLASHES = "_flash_drawn"  # key -> the message show_flash drew in this run


def set_flash(key: str, text: object, kind: FlashKind = "success") -> None:
    """Keep `text` (raw; escaped when shown) for the next render of the page owning `key`."""
    st.session_state[key] = (kind, str(text))


def clear_flash(key: str) -> None:
    st.session_state[key] = None


def show_flash(key: str) -> None:
    """Draw the kept message, if any. It is forgotten when the run ends (`forget_drawn_flashes`,
    called by app.main), not here: a run that a newer rerun interrupts (a second key or click while
    the page is drawing) is replaced in the browser by that newer run, so the newer run must draw
    the message again or the person never sees what their action did."""
    msg = st.session_state.get(key)
    if msg:
        kind, text = msg
        getattr(st, kind)(escape_md(text))
        st.session_state.setdefault(DRAWN_FLASHES, {})[key] = msg


def forget_drawn_flashes() -> None:
    """End of a run that finished: each message drawn in it is done, unless an action set a newer
    one meanwhile (that one waits for its own run)."""
    for key, msg in (st.session_state.pop(DRAWN_FLASHES, None) or {}).items():
        if st.session_state.get(key) is msg:
            clear_flash(key)


# --- image tile: a thumbnail with one caption line --------------------------------------------

def label_of(card: ImageCard) -> str:
    """What names an image under its thumbnail: the alt-text, else the source's file name (raw)."""
    if card.alt_text and card.alt_text.strip():
        return card.alt_text
    return posixpath.basename(card.source_uri.rstrip("/")) or card.source_uri


def image_tile(card: ImageCard | None, caption: str | None = None, *, prefix: str | None = None,
               max_len: int = 120, with_alt: bool = False, with_reason: bool = False) -> None:
    """The thumbnail (or "[status]" when there is none) and a caption line: `prefix` (trusted
    markdown, e.g. "#12 · ") then `caption` (raw user text, escaped and cut to `max_len`).
    `with_alt`: the alt-text goes into the <img alt>; `with_reason`: the placeholder names the
    quarantine reason."""
    data = thumbnail_bytes(card.thumb) if card is not None else None
    if data:
        show_image(data, alt=card.alt_text if with_alt else None)
    elif card is not None:
        reason = f": {card.quarantine_reason}" if with_reason and card.quarantine_reason else ""
        st.caption(escape_md(f"[{card.status}{reason}]"))
    if caption is not None or prefix:
        st.caption((prefix or "") + (escape_md(caption, max_len=max_len) if caption else ""))


# --- image card: the large view of one image ----------------------------------------------------

@st.cache_data(max_entries=64, show_spinner=False)
def _large(original: str | None, thumb: str | None, max_side: int | None = None) -> bytes | None:
    kw = {"max_side": max_side} if max_side else {}
    return display_bytes(Path(original) if original else None, Path(thumb) if thumb else None, **kw)


def large_bytes(card: ImageCard | None, max_side: int | None = None) -> bytes | None:
    """Display-sized bytes of the original (falls back to the thumbnail), cached per process;
    `max_side` overrides the rendition's longest side (e.g. for a full-resolution view)."""
    if card is None:
        return None
    return _large(str(card.original) if card.original else None, str(card.thumb) if card.thumb else None,
                  max_side)


def image_card(card: ImageCard | None, *, missing: str, width: Width = "stretch",
               max_side: int | None = None) -> bool:
    """The image large, or `missing` (trusted markdown) as an info box; True when drawn."""
    data = large_bytes(card, max_side)
    if data:
        show_image(data, alt=card.alt_text, width=width)
        return True
    st.info(missing)
    return False


def alt_text_caption(card: ImageCard | None) -> None:
    """"Alt-text: ..." under a large image, when it has one."""
    if card is not None and card.alt_text:
        st.caption(f"Alt-text: {escape_md(card.alt_text, max_len=300)}")


# --- image picker: browse / search thumbnails, click one to choose it ---------------------------

PICKER_PAGE = 12


def _pick(target_key: str, image_id: int) -> None:
    st.session_state[target_key] = image_id


def _picker_page(key: str, delta: int) -> None:
    st.session_state[key] = max(0, int(st.session_state.get(key, 0)) + delta)


def image_picker(ws, prefix: str, target_key: str, *, columns: int = 6) -> None:
    """A search box and a page of usable images' thumbnails (catalog/browse.list_images); the
    "Choose" button under one writes its id into session_state[`target_key`] (e.g. the key of
    a number input drawn after this), so nobody has to type ids."""
    from relcurate.curation.catalog.browse import list_images

    page_key = f"{prefix}_pick_page"
    text = st.text_input("Search images (alt-text or file name)", key=f"{prefix}_pick_text",
                         on_change=lambda: st.session_state.__setitem__(page_key, 0))
    page = int(st.session_state.get(page_key, 0))
    cards, total = list_images(ws, status="ok", text=text or None, offset=page * PICKER_PAGE, limit=PICKER_PAGE)
    if not cards:
        st.caption("No images match.")
        return
    cols = st.columns(columns)
    for i, card in enumerate(cards):
        with cols[i % columns]:
            image_tile(card, label_of(card), prefix=f"#{card.id} · ", max_len=60)
            st.button("Choose", key=f"{prefix}_pick_{card.id}", type="tertiary",
                      on_click=_pick, args=(target_key, card.id))
    last = (total - 1) // PICKER_PAGE
    nav = st.columns([1, 2, 1])
    nav[0].button("Previous", key=f"{prefix}_pick_prev", disabled=page == 0, on_click=_picker_page, args=(page_key, -1))
    nav[1].caption(f"page {page + 1} of {last + 1} · {total} image{'s' if total != 1 else ''}")
    nav[2].button("Next", key=f"{prefix}_pick_next", disabled=page >= last, on_click=_picker_page, args=(page_key, 1))
