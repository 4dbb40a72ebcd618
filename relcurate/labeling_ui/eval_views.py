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


TOOLTIP_SIDE = 112  # px: up to 1000 points go into one chart spec, so tooltip images stay small


def _small_jpeg(data: bytes | None) -> bytes | None:
    from io import BytesIO

    from PIL import Image as PILImage

    if not data:
        return None
    try:
        with PILImage.open(BytesIO(data)) as im:
            im = im.convert("RGB")
            im.thumbnail((TOOLTIP_SIDE, TOOLTIP_SIDE))
            out = BytesIO()
            im.save(out, format="JPEG", quality=75)
            return out.getvalue()
    except (OSError, ValueError, PILImage.DecompressionBombError):
        return None


@st.cache_data(max_entries=8, show_spinner=False)
def _tooltip_thumbs(root: str, image_ids: tuple[int, ...], _ws: Workspace) -> dict[int, bytes | None]:
    return {c.id: _small_jpeg(thumbnail_bytes(c.thumb)) for c in image_cards(_ws, list(image_ids))}


def thumbnails(ws: Workspace, image_ids: Sequence[int]) -> dict[int, bytes | None]:
    """Small JPEGs of these images for chart tooltips (cached per workspace and id list)."""
    return _tooltip_thumbs(str(ws.root), tuple(int(i) for i in image_ids), ws)


def run_label(run) -> str:
    return f"#{run.id} · {run.name} · {run.status} · {run.created_at:%Y-%m-%d %H:%M}"
