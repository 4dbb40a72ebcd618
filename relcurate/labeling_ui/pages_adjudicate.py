"""Adjudication (reviewers): images whose annotators disagree, one at a time; the reviewer's
Yes / No (keys Y, N) overrides the majority in the consensus label. Later (L) passes over an
image for this session.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from relcurate.curation.labeling import agreement
from relcurate.curation.catalog.browse import get_image
from relcurate.models.protocols import FILTER_QUESTION
from relcurate.labeling_ui.registry import PageContext
from relcurate.labeling_ui.widgets import alt_text_caption, image_card, set_flash, show_flash

K_AFTER = "adjudicate_after"  # image id passed over with "Later" (the queue is ordered by id)
K_NOTE = "adjudicate_note"
K_FLASH = "adjudicate_flash"


def _decide(ctx: PageContext, image_id: int, answer: str) -> None:
    note = st.session_state.get(K_NOTE, "")
    # One decision per disputed image through this page: a double click repeats the same key.
    agreement.adjudicate(ctx.ws.engine, image_id=image_id, user_id=ctx.user.id, answer=answer,
                         note=note.strip() or None, request_id=f"adj:{image_id}")
    st.session_state[K_NOTE] = ""
    set_flash(K_FLASH, f"Image {image_id}: decided {answer}.")


def _later(image_id: int) -> None:
    st.session_state[K_AFTER] = image_id


def _restart() -> None:
    st.session_state[K_AFTER] = 0


def render(ctx: PageContext) -> None:
    st.title("Adjudication")
    show_flash(K_FLASH)
    pending = agreement.count_disputes(ctx.ws.engine)
    st.caption(f"{pending} disputed image{'s' if pending != 1 else ''} waiting")
    after = int(st.session_state.get(K_AFTER, 0))
    todo = agreement.disputes(ctx.ws.engine, limit=1, after_image_id=after)
    if not todo:
        if after and pending:
            st.info("You passed over the remaining disputes.")
            st.button("Start again from the first", key="adjudicate_restart", on_click=_restart)
        else:
            st.success("No disagreements to resolve.")
        return
    dispute = todo[0]
    left, right = st.columns([3, 2], gap="large")
    with left:
        card = get_image(ctx.ws, dispute.image_id)
        image_card(card, missing="This image cannot be shown.")
        alt_text_caption(card)
    with right:
        st.markdown(f"**{FILTER_QUESTION}**")
        st.caption(f"image {dispute.image_id} · {dispute.yes} yes / {dispute.no} no")
        # A dataframe draws usernames as plain text, never markup.
        st.dataframe(pd.DataFrame(sorted(dispute.votes.items()), columns=["annotator", "answer"]),
                     hide_index=True, width="stretch")
        st.text_input("Note (optional)", key=K_NOTE, max_chars=500)
        c = st.columns(3)
        c[0].button("Yes", key="adjudicate_yes", shortcut="Y", type="primary", width="stretch",
                    on_click=_decide, args=(ctx, dispute.image_id, "yes"))
        c[1].button("No", key="adjudicate_no", shortcut="N", type="primary", width="stretch",
                    on_click=_decide, args=(ctx, dispute.image_id, "no"))
        c[2].button("Later", key="adjudicate_later", shortcut="L", width="stretch",
                    on_click=_later, args=(dispute.image_id,))
