"""A/B study for raters: a query and two retrieved images (left/right at random per rater);
answer with A (left), B (right) or S (same) on the keyboard or the buttons."""
from __future__ import annotations

import time

import streamlit as st

from relcurate.evaluation.ab_study import next_trial, progress_of, record_answer
from relcurate.evaluation.runs import list_runs
from relcurate.labeling_ui.eval_views import run_label, show_image_id
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.registry import PageContext

K_STUDY, K_SHOWN = "ab_study", "ab_shown_at"


def _answer(ctx: PageContext, triplet_id: int, side: str, a_left: bool) -> None:
    shown = st.session_state.pop(K_SHOWN, None)
    lead = int((time.monotonic() - shown[1]) * 1000) if shown and shown[0] == triplet_id else None
    record_answer(ctx.ws, triplet_id, ctx.user.id, side, a_on_left=a_left, lead_time_ms=lead)


def render(ctx: PageContext) -> None:
    st.title("A/B study")
    studies = [r for r in list_runs(ctx.ws, "ab") if r.status in ("open", "done")]
    if not studies:
        st.info("No A/B study yet. A curator creates one with `relcurate eval ab-create RUN ...`.")
        return
    labels = {r.id: run_label(r) for r in studies}
    study = st.selectbox("Study", list(labels), format_func=lambda i: labels[i], key=K_STUDY)
    prog = progress_of(ctx.ws, study, ctx.user.id)
    st.caption(f"you answered {prog['mine']} · all raters {prog['answers']} answers on {prog['triplets']} triplets")
    trial = next_trial(ctx.ws, study, ctx.user.id)
    if trial is None:
        st.success("Nothing left for you in this study: thank you!")
        return
    if st.session_state.get(K_SHOWN, (None,))[0] != trial.triplet_id:
        st.session_state[K_SHOWN] = (trial.triplet_id, time.monotonic())
    st.markdown("Which image shares the **same underlying logic** (relation, structure) as the query? "
                "Ignore colour, shape and subject.")
    q, left, right = st.columns(3)
    with q:
        st.subheader("Query")
        show_image_id(ctx.ws, trial.query_image_id)
    with left:
        st.subheader("A")
        show_image_id(ctx.ws, trial.left_image_id)
    with right:
        st.subheader("B")
        show_image_id(ctx.ws, trial.right_image_id)
    cols = st.columns(3)
    for col, (side, text, key) in zip(cols, (("left", "A", "A"), ("same", "Same", "S"), ("right", "B", "B"))):
        col.button(escape_md(text), key=f"ab_{side}", shortcut=key, width="stretch",
                   on_click=_answer, args=(ctx, trial.triplet_id, side, trial.a_on_left))
    st.caption("Keys: A = left, B = right, S = same")
