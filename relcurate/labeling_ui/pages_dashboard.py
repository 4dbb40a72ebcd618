"""Dashboard: where the workspace stands (counts from curation.catalog.stats.workspace_stats)."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from relcurate.curation.catalog.next_steps import WorkWaiting, work_waiting
from relcurate.curation.catalog.stats import workspace_stats
from relcurate.labeling_ui import registry
from relcurate.labeling_ui.labeling_dashboard import CACHE_S, render_labeling_section
from relcurate.labeling_ui.loop_charts import render_loop_charts
from relcurate.labeling_ui.registry import PageContext

# (count field, page url_path, what the link says): shown only when the count is not zero and
# the user's role may open the page.
NEXT_STEPS = (
    ("open_images", "filter", "{n} images waiting for filter labels"),
    ("uncaptioned_groups", "groups", "{n} seed groups need a caption"),
    ("captions_to_review", "review", "{n} captions waiting for review"),
    ("disputes", "adjudicate", "{n} disputed images to adjudicate"),
    ("near_duplicates", "duplicates", "{n} near-duplicate pairs to review"),
)


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def _waiting(root: str, db_url: str) -> WorkWaiting:
    from relcurate.labeling_ui.resources import workspace_at

    return work_waiting(workspace_at(root))


def next_steps(ctx: PageContext, waiting: WorkWaiting) -> list[tuple[registry.PageSpec, str]]:
    """The (page, link text) pairs this user should see, in NEXT_STEPS order."""
    specs = {p.url_path: p for p in registry.pages_for(ctx.user.role)}
    out = []
    for field, url_path, text in NEXT_STEPS:
        n = getattr(waiting, field)
        if n and url_path in specs:
            out.append((specs[url_path], text.format(n=f"{n:,}")))
    return out


def _noop() -> None:  # a link target only: st.page_link matches pages by url_path
    pass


def render_next_steps(ctx: PageContext) -> None:
    steps = next_steps(ctx, _waiting(str(ctx.ws.root), ctx.ws.db_url))
    st.subheader("What to do next")
    if not steps:
        st.caption("Nothing is waiting for you.")
    for spec, text in steps:
        st.page_link(st.Page(_noop, title=spec.title, icon=spec.icon, url_path=spec.url_path), label=text,
                     icon=spec.icon)


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
    render_next_steps(ctx)

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
