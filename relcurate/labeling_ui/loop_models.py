"""The captioner and relsim sections of the Active learning page: buttons that enqueue the
caption-pool / captioner-retrain / relsim-retrain jobs (dedup keys: a double click is one job),
review outcomes per captioner version, the relsim versions side by side and the choice of the
group builder's default space. Everything long runs in the worker; this module only calls the
library."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from relcurate.curation.groups import caption_queue
from relcurate.curation.groups import group_search as gs
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.loop_charts import caption_outcomes_chart
from relcurate.labeling_ui.registry import PageContext
from relcurate.training import captioner_loop, relsim_loop

K_FLASH = "loop_flash"  # the page's flash (pages_loop.K_FLASH)


def _base(key: str) -> dict:
    base = (st.session_state.get(key) or "").strip()
    return {"base": base} if base else {}


def _enqueue(ctx: PageContext, what: str) -> None:
    """on_click: enqueue one job and say what happened on the same rerun."""
    try:
        if what == "caption-pool":
            params = {"sample_size": int(st.session_state.get("loop_cap_sample", 50)),
                      "audit_share": float(st.session_state.get("loop_cap_audit", 20)) / 100}
            enq = captioner_loop.enqueue_caption_pool(ctx.ws, requested_by=ctx.user.id, params=params)
        elif what == "captioner-retrain":
            enq = captioner_loop.enqueue_captioner_retrain(ctx.ws, requested_by=ctx.user.id,
                                                           params=_base("loop_cap_base"))
        else:
            enq = relsim_loop.enqueue_relsim_retrain(ctx.ws, requested_by=ctx.user.id, params=_base("loop_rel_base"))
    except ValueError as exc:
        st.session_state[K_FLASH] = ("error", str(exc))
        return
    verb = "queued" if enq.created else f"already {enq.job.state}"
    st.session_state[K_FLASH] = ("success", f"Job {enq.job.id} ({enq.job.kind}) {verb}.")


def _use_space(ctx: PageContext) -> None:
    space = st.session_state.get("loop_rel_space")
    try:
        changed = relsim_loop.set_relsim_space(ctx.ws, space, user_id=ctx.user.id)
    except ValueError as exc:
        st.session_state[K_FLASH] = ("error", str(exc))
        return
    st.session_state[K_FLASH] = ("success", f"The group builder now searches {space} by default."
                                 if changed else f"{space} already was the default.")


def outcomes_frame(rows: list[dict]) -> pd.DataFrame:
    cols = ["model", "generated", "queued", "accepted", "edited", "rejected", "pending", "accepted_rate",
            "edited_rate", "rejected_rate"]
    return pd.DataFrame([{c: r[c] for c in cols} for r in rows], columns=cols)


def versions_frame(cmp: dict) -> pd.DataFrame:
    cols = ["model", "space", "default", "indexed", *relsim_loop.METRICS]
    return pd.DataFrame([{c: r.get(c) for c in cols} for r in cmp["versions"]], columns=cols)


def render_captioner(ctx: PageContext) -> None:
    st.subheader("Captioner loop")
    spec = caption_queue_spec(ctx)
    st.caption(escape_md(f"Latest captioner: {spec}. Caption-pool captions Yes / filter-kept images without an "
                         "accepted caption and queues a review sample: checker-flagged first, then the least "
                         "confident, plus a random audit share."))
    c = st.columns(3)
    c[0].number_input("Review sample size", min_value=0, max_value=10_000, value=50, key="loop_cap_sample")
    c[1].number_input("Random audit share (%)", min_value=0, max_value=100, value=20, key="loop_cap_audit")
    c[2].text_input("Base model for the retrain", key="loop_cap_base", placeholder="default: the latest captioner's")
    b = st.columns(2)
    b[0].button("Caption the pool", key="loop_caption_pool", type="primary", on_click=_enqueue,
                args=(ctx, "caption-pool"))
    b[1].button("Retrain captioner", key="loop_captioner_retrain", on_click=_enqueue, args=(ctx, "captioner-retrain"))
    rows = caption_queue.outcomes_by_version(ctx.ws)
    if rows:
        st.dataframe(outcomes_frame(rows), hide_index=True, key="loop_cap_outcomes")
        if any(r["reviewed"] for r in rows):
            st.altair_chart(caption_outcomes_chart(rows))
    else:
        st.caption("No model-written captions yet.")


def caption_queue_spec(ctx: PageContext) -> str:
    from relcurate.curation.groups.captions import latest_captioner

    spec = latest_captioner(ctx.ws)
    return f"{spec.name}:{spec.version}" if spec else "none registered"


def render_relsim(ctx: PageContext) -> None:
    st.subheader("relsim loop")
    default = gs.default_space(ctx.ws)
    st.metric("Group builder's default space", default)
    c = st.columns(2)
    c[0].text_input("Base model for the retrain", key="loop_rel_base", placeholder="default: the latest relsim's")
    c[0].button("Retrain relsim (then re-embed + index)", key="loop_relsim_retrain", on_click=_enqueue,
                args=(ctx, "relsim-retrain"))
    spaces = gs.available_spaces(ctx.ws)
    c[1].selectbox("Space", spaces, index=spaces.index(default) if default in spaces else 0, key="loop_rel_space")
    c[1].button("Make it the default", key="loop_rel_use", on_click=_use_space, args=(ctx,))
    cmp = relsim_loop.compare_versions(ctx.ws)
    if cmp["versions"]:
        st.dataframe(versions_frame(cmp), hide_index=True, key="loop_rel_versions")
    else:
        st.caption("No relsim versions yet.")
