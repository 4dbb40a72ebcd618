"""Evaluation results: retrieval metrics, judge scores and A/B preferences, with intervals.
Reads finished runs only (the work runs from `relcurate eval ...`)."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from relcurate.evaluation.ab_study import study_results
from relcurate.evaluation.runs import RunNotFound, list_runs, read_result
from relcurate.labeling_ui.eval_views import run_label
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.registry import PageContext


def _interval_chart(df: pd.DataFrame, value: str, title: str):
    base = alt.Chart(df).encode(y=alt.Y("method:N", sort=None, title=None))
    bars = base.mark_bar(opacity=0.7).encode(x=alt.X(f"{value}:Q", title=title))
    errs = base.mark_errorbar(ticks=True).encode(x="low:Q", x2="high:Q")
    return (bars + errs).properties(height=40 * max(1, len(df)) + 40)


def _fmt(d: dict | None) -> str:
    if not d or d.get("n", 0) == 0:
        return "—"
    return f"{d['estimate']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


def _retrieval(data: dict) -> None:
    db = data["database"]
    st.caption(f"{db['held_out']} held-out + {db['distractors']} distractors · {len(data['queries'])} queries · "
               f"k = {data['params']['k']} · seed {data['params']['seed']}")
    rows, chart_rows = [], []
    for label, m in data["methods"].items():
        row = {"method": label}
        for key, iv in m["metrics"].items():
            row[key] = _fmt(iv)
        rows.append(row)
        key = next(k for k in m["metrics"] if k.startswith("caption_recall"))
        iv = m["metrics"][key]
        chart_rows.append({"method": label, "value": iv["estimate"], "low": iv["low"], "high": iv["high"]})
    st.dataframe(pd.DataFrame(rows).astype(str), hide_index=True)
    st.altair_chart(_interval_chart(pd.DataFrame(chart_rows), "value", "same-caption recall@k (95% interval)"))


def _judge(data: dict) -> None:
    rows, chart_rows = [], []
    for r in data["table"]:
        rows.append({"method": r["method"], "mean score": _fmt(r["mean"]),
                     f"minus {data['reference']}": _fmt(r.get("minus_reference")),
                     "ok": r["ok"], "invalid": r["invalid"], "failed": r["failed"], "capped": r["capped"]})
        chart_rows.append({"method": r["method"], "value": r["mean"]["estimate"], "low": r["mean"]["low"],
                           "high": r["mean"]["high"]})
    st.dataframe(pd.DataFrame(rows).astype(str), hide_index=True)
    st.altair_chart(_interval_chart(pd.DataFrame(chart_rows), "value", "mean judge score, 0-10 (95% interval)"))
    st.caption("Paper (GPT-4o at temperature 0.7, its own data): "
               + escape_md(", ".join(f"{k} {v}" for k, v in data["paper_scores"].items())))


def _ab(data: dict) -> None:
    rows = []
    for p in data["pairs"]:
        alpha = p["agreement"]["krippendorff_alpha"]
        rows.append({"A vs B": f"{p['method_a']} vs {p['method_b']}", "triplets": p["triplets"],
                     "answers": p["answers"], "prefer A": _fmt(p["prefer_a"]), "prefer B": _fmt(p["prefer_b"]),
                     "same": _fmt(p["same"]), "Krippendorff alpha": "—" if alpha is None else f"{alpha:.2f}"})
    if not rows:
        st.info("No answers yet.")
        return
    st.dataframe(pd.DataFrame(rows).astype(str), hide_index=True)
    shares = pd.DataFrame([{"pair": f"{p['method_a']} vs {p['method_b']}", "answer": label, "share": p[key]["estimate"]}
                           for p in data["pairs"] for key, label in (("prefer_a", "prefer A"), ("same", "same"),
                                                                     ("prefer_b", "prefer B"))])
    st.altair_chart(alt.Chart(shares).mark_bar().encode(
        x=alt.X("share:Q", stack="normalize", title="share of answers (mean per triplet)"),
        y=alt.Y("pair:N", title=None), color=alt.Color("answer:N", sort=["prefer A", "same", "prefer B"]),
        order=alt.Order("answer:N")).properties(height=40 * len(data["pairs"]) + 40))


def render(ctx: PageContext) -> None:
    st.title("Evaluation results")
    kind = st.radio("Kind", ("retrieval", "judge", "ab"), horizontal=True, key="evr_kind",
                    format_func={"retrieval": "Retrieval", "judge": "LLM judge", "ab": "A/B study"}.get)
    runs = [r for r in list_runs(ctx.ws, kind) if r.status != "running"]
    if not runs:
        st.info("No finished run of this kind yet (`relcurate eval --help`).")
        return
    labels = {r.id: run_label(r) for r in runs}
    run_id = st.selectbox("Run", list(labels), format_func=lambda i: escape_md(labels[i]), key=f"evr_run_{kind}")
    run = next(r for r in runs if r.id == run_id)
    if run.status == "failed":
        st.error(f"This run failed: {escape_md(run.metrics.get('error', ''))}")
        return
    try:
        if kind == "ab":
            _ab(study_results(ctx.ws, run.id, save=False, resamples=500))
            return
        data = read_result(ctx.ws, run)
    except (RunNotFound, ValueError) as exc:
        st.error(escape_md(exc))
        return
    (_retrieval if kind == "retrieval" else _judge)(data)
