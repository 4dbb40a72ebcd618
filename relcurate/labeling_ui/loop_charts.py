"""Active-learning charts (altair), for the dashboard and the active-learning admin page: queue
composition by strategy, labels per strategy that turned out Yes, positives remaining with its
interval, and learning curves per model version. Chart builders are pure (data in, chart out)
so tests check them without a browser; `render_loop_charts` gathers the data from the library."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from relcurate.curation.labeling.queue_heads import composition_by_strategy
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.registry import PageContext
from relcurate.training.fast_head import latest_fast_head, learning_curve


def composition_chart(rows: list[dict]) -> alt.Chart:
    df = pd.DataFrame([{"strategy": r["strategy"], "state": state, "tasks": r[state]}
                       for r in rows for state in ("leased", "done")])
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("strategy:N", title=None), x=alt.X("tasks:Q", stack=True), color=alt.Color("state:N"),
        tooltip=["strategy", "state", "tasks"]).properties(height=40 + 28 * max(1, len(rows)), title="Queue by strategy")


def yes_rate_chart(rows: list[dict]) -> alt.Chart:
    df = pd.DataFrame([{"strategy": r["strategy"], "yes": r["yes"], "done": r["done"],
                        "yes_rate": r["yes_rate"] or 0.0} for r in rows if r["done"]])
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("strategy:N", title=None), x=alt.X("yes_rate:Q", title="share answered Yes", axis=alt.Axis(format="%")),
        tooltip=["strategy", "yes", "done", alt.Tooltip("yes_rate:Q", format=".1%")],
    ).properties(height=40 + 28 * max(1, len(df)), title="Labels per strategy that turned out Yes")


def remaining_chart(history: list[dict]) -> alt.Chart:
    """Estimate with its interval per fast-head version (rule = interval, point = estimate)."""
    df = pd.DataFrame(history)
    base = alt.Chart(df).encode(x=alt.X("labels:Q", title="labels used"))
    return (base.mark_rule().encode(y=alt.Y("low:Q", title="Yes images remaining"), y2="high:Q")
            + base.mark_point(filled=True).encode(y="estimate:Q", tooltip=["version", "estimate", "low", "high",
                                                                             "unlabeled", "audit_size"])
            ).properties(height=240, title="Positives remaining (95% interval)")


def learning_curve_chart(rows: list[dict]) -> alt.Chart:
    df = pd.DataFrame(rows)
    df["series"] = df["model"] + " (" + df["split"] + ")"
    return alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("labels:Q", title="labels used"), y=alt.Y("f1:Q", title="F1", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("series:N", title=None), tooltip=["model", "version", "split", "labels", "f1", "precision", "recall"],
    ).properties(height=260, title="Learning curves (held-out = random audit sample, out of fold)")


def caption_outcomes_chart(rows: list[dict]) -> alt.Chart:
    """Review outcomes per captioner version (stacked shares of the reviewed captions)."""
    df = pd.DataFrame([{"model": r["model"], "outcome": k, "captions": r[k], "share": r[f"{k}_rate"] or 0.0}
                       for r in rows if r["reviewed"] for k in ("accepted", "edited", "rejected")])
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("model:N", title=None), x=alt.X("share:Q", stack="normalize", title="share of reviewed",
                                                  axis=alt.Axis(format="%")),
        color=alt.Color("outcome:N", scale=alt.Scale(domain=["accepted", "edited", "rejected"])),
        tooltip=["model", "outcome", "captions", alt.Tooltip("share:Q", format=".0%")],
    ).properties(height=40 + 28 * max(1, len(df) // 3), title="Review outcomes per captioner version")


def remaining_history(curve_versions) -> list[dict]:
    out = []
    for mv in curve_versions:
        r = (mv.metrics or {}).get("positives_remaining")
        if r:
            out.append({"version": mv.version, "labels": (mv.metrics or {}).get("labels", 0), **{
                k: r[k] for k in ("estimate", "low", "high", "unlabeled", "audit_size")}})
    return out


def render_loop_charts(ctx: PageContext) -> None:
    from relcurate.models.registry import list_model_versions

    st.subheader("Active learning")
    rows = composition_by_strategy(ctx.ws.engine)
    latest = latest_fast_head(ctx.ws)
    if latest is not None and (r := (latest.metrics or {}).get("positives_remaining")):
        st.metric("Yes images still unlabeled (estimate)", f"{r['estimate']:.0f}",
                  help=f"95% interval {r['low']:.0f}-{r['high']:.0f} of {r['unlabeled']} unlabeled, "
                       f"from fast head v{latest.version} and a random audit of {r['audit_size']}")
        st.caption(escape_md(f"interval {r['low']:.0f} to {r['high']:.0f}"))
    if not rows and latest is None:
        st.caption("No model-driven tasks yet: configure the filter loop on the Active learning page.")
        return
    left, right = st.columns(2)
    if rows:
        left.altair_chart(composition_chart(rows))
        if any(r["done"] for r in rows):
            right.altair_chart(yes_rate_chart(rows))
    fast = [mv for mv in list_model_versions(ctx.ws, kind="filter") if mv.name == (latest.name if latest else "")]
    hist = remaining_history(fast)
    if hist:
        st.altair_chart(remaining_chart(hist))
    curve = learning_curve(ctx.ws)
    if curve:
        st.altair_chart(learning_curve_chart(curve))
