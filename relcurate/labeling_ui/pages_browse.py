"""Thumbnail browser: status filter, text search over alt-text and source, paging, large view."""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from relcurate.curation.catalog.redact import redact_location
from relcurate.curation.catalog.browse import ImageCard, get_image, image_sources, list_images
from relcurate.curation.catalog.image_bytes import IMAGE_STATUSES
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.registry import PageContext
from relcurate.labeling_ui.widgets import image_card, image_tile, label_of

PAGE_SIZE = 24
COLUMNS = 6
ALL = "all"

# Session-state keys of this page.
K_STATUS, K_TEXT, K_PAGE, K_SELECTED = "browse_status", "browse_text", "browse_page", "browse_selected"


def _reset_page() -> None:
    st.session_state[K_PAGE] = 0


def _move(delta: int) -> None:
    st.session_state[K_PAGE] = max(0, st.session_state.get(K_PAGE, 0) + delta)


def _select(image_id: int | None) -> None:
    st.session_state[K_SELECTED] = image_id


def _detail(ctx: PageContext, image_id: int) -> None:
    card = get_image(ctx.ws, image_id)
    if card is None:
        _select(None)
        return
    with st.container(border=True, key="browse_detail"):
        left, right = st.columns([3, 2])
        with left:
            image_card(card, missing=f"No image to show (status: {card.status}).", width="content")
        with right:
            st.button("Close", key="browse_close", icon=":material/close:", on_click=_select, args=(None,))
            st.markdown(f"**Alt-text:** {escape_md(card.alt_text) if card.alt_text else '—'}")
            facts = {"id": card.id, "status": card.status,
                     "size": f"{card.width}×{card.height}" if card.width else "—",
                     "sha256": card.sha256 or "—"}
            if card.quarantine_reason:
                facts["quarantine reason"] = card.quarantine_reason
            st.dataframe(pd.DataFrame(list(facts.items()), columns=["field", "value"]).astype(str),
                         hide_index=True)
            sources = image_sources(ctx.ws, card.id) or [card.source_uri]
            if not ctx.can("curate"):  # file names, not the server's folders
                sources = [redact_location(x) for x in sources]
            st.markdown(f"**Sources** ({len(sources)})")
            st.dataframe(pd.DataFrame({"source": sources}), hide_index=True)


def _tile(card: ImageCard) -> None:
    with st.container(border=True):
        image_tile(card, label_of(card), max_len=90, with_alt=True, with_reason=True)
        st.button("Open", key=f"browse_open_{card.id}", on_click=_select, args=(card.id,),
                  type="tertiary", icon=":material/open_in_full:")


def render(ctx: PageContext) -> None:
    st.title("Browse images")
    f1, f2 = st.columns([1, 3])
    status = f1.selectbox("Status", (*IMAGE_STATUSES, ALL), key=K_STATUS, on_change=_reset_page)
    text = f2.text_input("Search alt-text and source", key=K_TEXT, on_change=_reset_page,
                         placeholder="words from the alt-text, a file name or URL")

    selected = st.session_state.get(K_SELECTED)
    if selected is not None:
        _detail(ctx, int(selected))

    page = st.session_state.get(K_PAGE, 0)
    cards, total = list_images(ctx.ws, status=None if status == ALL else status, text=text or None,
                               offset=page * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if page >= pages:  # the filter shrank the result under the current page
        st.session_state[K_PAGE] = page = pages - 1
        cards, _ = list_images(ctx.ws, status=None if status == ALL else status, text=text or None,
                               offset=page * PAGE_SIZE, limit=PAGE_SIZE)

    nav = st.columns([1, 2, 1])
    nav[0].button("Previous", key="browse_prev", icon=":material/chevron_left:", on_click=_move, args=(-1,),
                  disabled=page == 0)
    nav[1].caption(f"page {page + 1} of {pages} · {total} image{'' if total == 1 else 's'}")
    nav[2].button("Next", key="browse_next", icon=":material/chevron_right:", on_click=_move, args=(1,),
                  disabled=page >= pages - 1)

    if not cards:
        st.info("No images match.")
        return
    for row_start in range(0, len(cards), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, card in zip(cols, cards[row_start:row_start + COLUMNS]):
            with col:
                _tile(card)
