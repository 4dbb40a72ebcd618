"""Near-duplicate review (curators): recorded pairs side by side; keep both, mark duplicate, or
merge into one canonical image. Decisions are append-only (who, when); nothing is deleted."""
from __future__ import annotations

import streamlit as st

from relcurate.curation.ingest import dedup_review
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.registry import PageContext
from relcurate.labeling_ui.widgets import image_tile, label_of, set_flash, show_flash

K_FLASH = "dups_flash"
K_ALL = "dups_show_decided"
PAGE_SIZE = 10
_DONE = {"keep_both": "kept both", "duplicate": "marked duplicate", "merge": "merged"}


def _decide(ctx: PageContext, a: int, b: int, decision: str, canonical: int | None, seen: int) -> None:
    # The request id names the pair and how many decisions it had when drawn: a double click
    # on the same drawing records one decision, a later change of mind records a new one.
    try:
        dedup_review.decide_pair(ctx.ws, a, b, decision, user_id=ctx.user.id, username=ctx.user.username,
                                 request_id=f"nd:{a}:{b}:{seen}", canonical_id=canonical)
    except dedup_review.DedupReviewError as exc:
        set_flash(K_FLASH, f"Images #{a} and #{b}: {exc}", "error")
        return
    keep = f" (#{canonical} is canonical)" if canonical else ""
    set_flash(K_FLASH, f"Images #{a} and #{b}: {_DONE[decision]}{keep}.")


def render(ctx: PageContext) -> None:
    st.title("Near-duplicates")
    show_flash(K_FLASH)
    pending = dedup_review.pending_count(ctx.ws)
    st.caption(f"{pending} pair{'s' if pending != 1 else ''} waiting for a decision")
    show_all = st.toggle("Show decided pairs too", key=K_ALL)
    pairs = dedup_review.list_pairs(ctx.ws, pending_only=not show_all, limit=PAGE_SIZE)
    if not pairs:
        st.success("No near-duplicate pairs to review.")
        return
    for pair in pairs:
        a, b = pair.image_a.id, pair.image_b.id
        with st.container(border=True, key=f"dups_pair_{a}_{b}"):
            status = f" · decided: **{_DONE[pair.decision]}**" if pair.decision else ""
            st.markdown(f"Images **#{a}** and **#{b}** · pHash distance {pair.distance}{status}")
            left, right = st.columns(2)
            for col, card in ((left, pair.image_a), (right, pair.image_b)):
                with col:
                    image_tile(card, label_of(card), prefix=f"#{card.id} · ")
            seen = len(dedup_review.history(ctx.ws, a, b))
            buttons = st.columns(4)
            for col, (label, decision, canonical) in zip(buttons, (
                    ("Keep both", "keep_both", None), ("Mark duplicate", "duplicate", None),
                    (f"Merge, keep #{a}", "merge", a), (f"Merge, keep #{b}", "merge", b))):
                col.button(label, key=f"dups_{decision}_{canonical or 0}_{a}_{b}", width="stretch",
                           on_click=_decide, args=(ctx, a, b, decision, canonical, seen))
            if seen:
                with st.expander("History"):
                    for d in dedup_review.history(ctx.ws, a, b):
                        keep = f", #{d.canonical_id} canonical" if d.canonical_id else ""
                        st.caption(f"{d.created_at:%Y-%m-%d %H:%M} · {escape_md(d.username)}: {_DONE[d.decision]}{keep}")
