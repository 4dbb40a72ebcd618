""""Relationally close, visually far": browse a mining run's pairs (relational minus attribute
similarity) and start a seed group from one. The mining itself runs from `relcurate eval mine`."""
from __future__ import annotations

import streamlit as st

from relcurate.curation.groups.membership import GroupError
from relcurate.evaluation.mining import start_group_from_images
from relcurate.evaluation.runs import RunNotFound, list_runs, read_result
from relcurate.labeling_ui.eval_views import run_label, show_image_id
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.registry import PageContext

PAGE_SIZE = 10
K_PAGE = "mining_page"


def _start(ctx: PageContext, a: int, b: int) -> None:
    try:
        gid = start_group_from_images(ctx.ws, [a, b], user_id=ctx.user.id)
        st.session_state["mining_msg"] = f"Draft seed group #{gid} started from images #{a} and #{b}."
    except GroupError as exc:
        st.session_state["mining_msg"] = f"Could not start a group: {exc}"


def _move(delta: int) -> None:
    st.session_state[K_PAGE] = max(0, st.session_state.get(K_PAGE, 0) + delta)


def render(ctx: PageContext) -> None:
    st.title("Relationally close, visually far")
    runs = [r for r in list_runs(ctx.ws, "mining") if r.status == "done"]
    if not runs:
        st.info("No mining run yet: `relcurate eval mine --relational relsim:1 --attribute clip:1`.")
        return
    labels = {r.id: run_label(r) for r in runs}
    run_id = st.selectbox("Mining run", list(labels), format_func=lambda i: escape_md(labels[i]), key="mining_run")
    run = next(r for r in runs if r.id == run_id)
    try:
        pairs = read_result(ctx.ws, run)["pairs"]
    except (RunNotFound, ValueError) as exc:
        st.error(escape_md(exc))
        return
    if msg := st.session_state.pop("mining_msg", None):
        st.success(escape_md(msg))
    pages = max(1, -(-len(pairs) // PAGE_SIZE))
    page = min(st.session_state.get(K_PAGE, 0), pages - 1)
    nav = st.columns([1, 2, 1])
    nav[0].button("Previous", key="mining_prev", on_click=_move, args=(-1,), disabled=page == 0)
    nav[1].caption(f"page {page + 1} of {pages} · {len(pairs)} pairs · "
                   f"{escape_md(run.params.get('relational'))} minus {escape_md(run.params.get('attribute'))}")
    nav[2].button("Next", key="mining_next", on_click=_move, args=(1,), disabled=page >= pages - 1)
    for rank, p in enumerate(pairs[page * PAGE_SIZE:(page + 1) * PAGE_SIZE], start=page * PAGE_SIZE + 1):
        with st.container(border=True):
            c1, c2, c3 = st.columns([2, 2, 2])
            with c1:
                show_image_id(ctx.ws, p["a"], caption=f"#{p['a']}")
            with c2:
                show_image_id(ctx.ws, p["b"], caption=f"#{p['b']}")
            with c3:
                st.markdown(f"**{rank}.** relational {p['relational']:.3f} · attribute {p['attribute']:.3f} · "
                            f"gap **{p['gap']:.3f}**")
                st.button("Start a seed group", key=f"mining_group_{p['a']}_{p['b']}", icon=":material/workspaces:",
                          on_click=_start, args=(ctx, int(p["a"]), int(p["b"])))
