"""Filter-labeling section of the dashboard: throughput, positive rates, agreement, queue sizes.

All numbers come from the library (leases.queue_sizes, labels.labels_per_hour,
agreement.agreement_report); they involve full counts, so they are cached for CACHE_S.
"""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from relcurate.curation.labeling import agreement, labels, leases
from relcurate.labeling_ui.registry import PageContext

CACHE_S = 30
HOURS = 24


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def labeling_data(root: str, db_url: str) -> dict:
    from relcurate.labeling_ui.resources import workspace_at

    eng = workspace_at(root).engine
    return {"sizes": leases.queue_sizes(eng), "per_hour": labels.labels_per_hour(eng, hours=HOURS),
            "report": agreement.agreement_report(eng), "disputes": agreement.count_disputes(eng)}


def per_annotator_table(report: agreement.AgreementReport) -> pd.DataFrame:
    return pd.DataFrame(
        [{"annotator": a.username, "yes": a.yes, "no": a.no, "skip": a.skip, "positive rate": a.positive_rate,
          "gold n": a.gold_n, "gold accuracy": a.gold_accuracy} for a in report.annotators],
        columns=["annotator", "yes", "no", "skip", "positive rate", "gold n", "gold accuracy"])


def kappa_table(report: agreement.AgreementReport) -> pd.DataFrame:
    """Both (a, b) and (b, a) rows, so the heatmap is symmetric."""
    rows = []
    for p in report.pairs:
        for a, b in ((p.user_a, p.user_b), (p.user_b, p.user_a)):
            rows.append({"annotator": a, "with": b, "kappa": p.kappa, "n": p.n, "agreement": p.observed})
    return pd.DataFrame(rows, columns=["annotator", "with", "kappa", "n", "agreement"])


def queue_table(sizes: dict, disputes: int) -> pd.DataFrame:
    rows = [("open images", sizes["open_images"]), ("live leases", sizes["leased_live"]),
            ("done", sizes["done"]), ("skipped", sizes["skipped"]), ("expired leases", sizes["expired"]),
            ("awaiting adjudication", disputes), ("gold questions", sizes["gold_images"])]
    return pd.DataFrame(rows, columns=["queue", "count"])


def _kappa_heatmap(table: pd.DataFrame) -> alt.Chart:
    base = alt.Chart(table).encode(x=alt.X("with:N", title=None), y=alt.Y("annotator:N", title=None))
    cells = base.mark_rect().encode(
        color=alt.Color("kappa:Q", scale=alt.Scale(domain=[-1, 1], scheme="redblue"), title="κ"),
        tooltip=["annotator", "with", alt.Tooltip("kappa:Q", format=".2f"), "n",
                 alt.Tooltip("agreement:Q", format=".0%")])
    text = base.mark_text(fontSize=11).encode(text=alt.Text("kappa:Q", format=".2f"))
    return (cells + text).properties(height=max(160, 36 * table["annotator"].nunique()))


def own_figures_only(ctx: PageContext) -> bool:
    """Annotators see their own figures; reviewers, curators and admins see everyone's."""
    return not (ctx.can("review") or ctx.can("adjudicate"))


def render_labeling_section(ctx: PageContext) -> None:
    data = labeling_data(str(ctx.ws.root), ctx.ws.db_url)
    sizes, report = data["sizes"], data["report"]
    mine_only = own_figures_only(ctx)

    st.subheader("Filter labeling")
    c = st.columns(4)
    done, needed = sizes["decisions_done"], sizes["decisions_needed"]
    c[0].metric("Decisions made", f"{done:,}", help=f"of {needed:,} the overlap settings ask for")
    c[1].metric("Open images", f"{sizes['open_images']:,}")
    c[2].metric("Awaiting adjudication", data["disputes"])
    c[3].metric("Krippendorff's α", "—" if report.alpha is None else f"{report.alpha:.2f}",
                help=f"nominal, over {report.alpha_units} images with two or more yes/no labels")

    left, right = st.columns(2)
    with left:
        st.markdown(f"**Labels per hour** (last {HOURS} h)")
        per_hour = pd.DataFrame(data["per_hour"], columns=["hour", "username", "labels"])
        if mine_only:
            per_hour = per_hour[per_hour["username"] == ctx.user.username]
        if per_hour.empty:
            st.caption("No decisions in this period.")
        else:
            st.bar_chart(per_hour, x="hour", y="labels", color="username", height=260, x_label="", y_label="labels")
    with right:
        st.markdown("**Queue**")
        st.bar_chart(queue_table(sizes, data["disputes"]), x="queue", y="count", horizontal=True, height=260,
                     x_label="", y_label="count")  # with horizontal=True, x_label names the category axis

    table = per_annotator_table(report)
    if mine_only:
        table = table[table["annotator"] == ctx.user.username]
    left, right = st.columns(2)
    with left:
        st.markdown("**Positive rate and gold accuracy per annotator**")
        if table.empty:
            st.caption("No labels yet.")
        else:
            long = table.melt(id_vars="annotator", value_vars=["positive rate", "gold accuracy"],
                              var_name="measure", value_name="rate").dropna()
            st.bar_chart(long, x="annotator", y="rate", color="measure", stack=False, height=260,
                         x_label="", y_label="rate")
    with right:
        st.markdown("**Cohen's κ per annotator pair**")
        kappas = kappa_table(report).dropna(subset=["kappa"])
        if mine_only:
            kappas = kappas[kappas["annotator"] == ctx.user.username]
        if kappas.empty:
            st.caption("Needs images labelled by two annotators (set an overlap fraction).")
        else:
            st.altair_chart(_kappa_heatmap(kappas), width="stretch")
    with st.expander("Per-annotator numbers"):
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"positive rate": st.column_config.NumberColumn(format="percent"),
                                    "gold accuracy": st.column_config.NumberColumn(format="percent")})
