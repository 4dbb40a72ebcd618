"""Small view helpers shared by the evaluation pages: image bytes for ids, inline thumbnails."""
from __future__ import annotations

from typing import Sequence

import streamlit as st

from relcurate.curation.catalog.browse import ImageCard, get_image
from relcurate.curation.catalog.image_bytes import display_bytes, thumbnail_bytes
from relcurate.curation.groups.group_search import image_cards
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.images import show_image
from relcurate.workspace import Workspace


def show_image_id(ws: Workspace, image_id: int, *, caption: str | None = None, large: bool = False) -> ImageCard | None:
    card = get_image(ws, int(image_id))
    data = None
    if card is not None:
        data = display_bytes(card.original, card.thumb) if large else (thumbnail_bytes(card.thumb)
                                                                       or display_bytes(card.original, card.thumb))
    if data:
        show_image(data, alt=card.alt_text, caption=caption)
    else:
        st.caption(escape_md(f"[image #{image_id} not available]"))
    return card


def thumbnails(ws: Workspace, image_ids: Sequence[int]) -> dict[int, bytes | None]:
    return {c.id: thumbnail_bytes(c.thumb) for c in image_cards(ws, list(image_ids))}


def run_label(run) -> str:
    return f"#{run.id} · {run.name} · {run.status} · {run.created_at:%Y-%m-%d %H:%M}"
