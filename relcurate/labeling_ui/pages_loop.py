"""Active learning (admins): the filter loop's settings, buttons that enqueue a fast-head refresh
or a LoRA retrain (the worker runs them: nothing long happens in this request), the captioner and
relsim loops (loop_models.py), the job list with state, progress and errors, and the loop's charts."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from relcurate import accounts
from relcurate.db import jobs as job_store
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.loop_charts import render_loop_charts
from relcurate.labeling_ui.loop_models import render_captioner, render_relsim
from relcurate.labeling_ui.registry import PageContext
from relcurate.training import filter_loop

K_FLASH = "loop_flash"


def _enqueue(ctx: PageContext, what: str) -> None:
    """on_click: enqueue, and say what happened on the same rerun. Dedup keys make a double
    click one job."""
    try:
        if what == "refresh":
            enq = filter_loop.enqueue_refresh(ctx.ws, requested_by=ctx.user.id)
        else:
            base = (st.session_state.get("loop_retrain_base") or "").strip()
            enq = filter_loop.enqueue_retrain(ctx.ws, requested_by=ctx.user.id, params={"base": base} if base else None)
    except ValueError as exc:
        st.session_state[K_FLASH] = ("error", str(exc))
        return
    verb = "queued" if enq.created else f"already {enq.job.state}"
    st.session_state[K_FLASH] = ("success", f"Job {enq.job.id} ({enq.job.kind}) {verb}.")


def jobs_frame(jobs, names: dict[int, str] | None = None) -> pd.DataFrame:
    names = names or {}
    return pd.DataFrame([{
        "id": j.id, "kind": j.kind, "state": j.state, "progress": float(j.progress),
        "note": j.progress_note or "", "attempts": f"{j.attempts}/{j.max_attempts}",
        "error": (j.error or "").splitlines()[0][:200] if j.error else "",
        "requested by": names.get(j.requested_by, j.requested_by or ""), "created": j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
    } for j in jobs], columns=["id", "kind", "state", "progress", "note", "attempts", "error", "requested by", "created"])


def render(ctx: PageContext) -> None:
    st.title("Active learning")
    flash = st.session_state.pop(K_FLASH, None)
    if flash:
        (st.error if flash[0] == "error" else st.success)(escape_md(flash[1]))
    loop = filter_loop.get_loop(ctx.ws)
    now, seen = filter_loop.labels_since_refresh(ctx.ws, loop)
    c = st.columns(3)
    c[0].metric("Embedding space", loop.embedding or "not set")
    c[1].metric("Refresh every", f"{loop.every} labels")
    c[2].metric("New labels since last fast head", max(0, now - seen))
    if not loop.embedding:
        st.info(escape_md("Set the embedding space first: relcurate loop filter configure --embedding NAME:VERSION"))
    b = st.columns(2)
    b[0].button("Refresh fast head now", key="loop_refresh", type="primary", on_click=_enqueue, args=(ctx, "refresh"),
                disabled=not loop.embedding)
    b[1].text_input("Base model for the LoRA retrain", key="loop_retrain_base",
                    placeholder="a registered model or a local path", help="The job fails clearly without one.")
    b[1].button("Retrain filter (LoRA)", key="loop_retrain", on_click=_enqueue, args=(ctx, "retrain"))
    st.caption("Both run in the background worker (relcurate worker); this page only queues them.")
    render_captioner(ctx)
    render_relsim(ctx)

    st.subheader("Jobs")
    counts = job_store.job_counts(ctx.ws.engine)
    st.caption(escape_md(", ".join(f"{k}: {v}" for k, v in counts.items())))
    jobs = job_store.list_jobs(ctx.ws.engine, limit=50)
    if jobs:
        names = accounts.usernames_by_id(ctx.ws.engine)
        st.dataframe(jobs_frame(jobs, names), hide_index=True,
                     column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)})
        failed = [j for j in jobs if j.state == "failed"]
        for j in failed[:5]:
            with st.expander(escape_md(f"Job {j.id} ({j.kind}) failed: log")):
                st.code(j.log_tail or "", language=None)
    else:
        st.caption("No jobs yet.")
    render_loop_charts(ctx)
