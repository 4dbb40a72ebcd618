"""Dashboard: where the workspace stands (counts from curation.stats.workspace_stats)."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from relcurate.curation.catalog.stats import workspace_stats
from relcurate.labeling_ui.labeling_dashboard import render_labeling_section
from relcurate.labeling_ui.loop_charts import render_loop_charts
from relcurate.labeling_ui.registry import PageContext


def status_table(stats: dict) -> pd.DataFrame:
    """Long-form (kind, status, count) rows for the chart; every kind listed even when empty."""
    rows = [("images", k, stats["images"][k]) for k in ("ok", "pending_download", "quarantined")]
    for kind in ("groups", "captions"):
        by_status = stats[kind]["by_status"] or {"none yet": 0}
        rows += [(kind, status, n) for status, n in by_status.items()]
    rows += [("labels", answer, n) for answer, n in stats["labels"]["current_by_answer"].items()]
    table = pd.DataFrame(rows, columns=["kind", "status", "count"])
    table["bar"] = table["kind"] + ": " + table["status"]  # one bar per (kind, status), in this order
    return table


def render(ctx: PageContext) -> None:
    st.title("Dashboard")
    stats = workspace_stats(ctx.ws)
    images, labels, groups, captions = stats["images"], stats["labels"], stats["groups"], stats["captions"]

    st.subheader("Images")
    c = st.columns(4)
    c[0].metric("OK", images["ok"])
    c[1].metric("Pending download", images["pending_download"])
    c[2].metric("Quarantined", images["quarantined"])
    c[3].metric("Near-duplicate pairs", images["near_duplicate_pairs"])

    st.subheader("Curation")
    c = st.columns(4)
    c[0].metric("Labelled images", labels["labelled_images"], help=f"{labels['events']} label events in total")
    c[1].metric("Groups", groups["total"], help=f"{groups['needs_split']} flagged for splitting")
    c[2].metric("Captions", captions["total"])
    c[3].metric("Active users", stats["users"]["active"])

    table = status_table(stats)
    left, right = st.columns([3, 2])
    with left:
        chart = alt.Chart(table).mark_bar().encode(
            y=alt.Y("bar:N", sort=None, title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X("count:Q", title="count"),
            color=alt.Color("kind:N", legend=alt.Legend(orient="bottom")),
            tooltip=["kind", "status", "count"],
        ).properties(height=320)
        st.altair_chart(chart)
    with right:
        st.dataframe(table[["kind", "status", "count"]], hide_index=True, height=320)

    with st.expander("Quarantine and rejected records by reason"):
        reasons = [("image", r, n) for r, n in images["quarantined_by_reason"].items()]
        reasons += [("record", r, n) for r, n in stats["rejected_records"]["by_reason"].items()]
        if reasons:
            st.dataframe(pd.DataFrame(reasons, columns=["what", "reason", "count"]), hide_index=True)
        else:
            st.caption("Nothing quarantined.")
        st.caption("Details per file are on the Quarantine page.")

    render_labeling_section(ctx)  # queues, throughput, agreement (labeling_dashboard.py)
    render_loop_charts(ctx)  # strategies, positives remaining, learning curves (loop_charts.py)
