"""The similarity space of one query: attribute similarity (x) against relational similarity
(y), four named regions; hover shows the image (inline data URI), click opens it, and a picked
image can start a seed group with the query. Reads finished embedding runs only."""
from __future__ import annotations

import streamlit as st

from relcurate.curation.groups.membership import GroupError
from relcurate.evaluation.mining import add_image_to_group, draft_groups, start_group_from_images
from relcurate.evaluation.similarity_space import REGIONS, similarity_space, space_chart, thumbnail_uri
from relcurate.evaluation.spaces import SpaceUnavailable
from relcurate.labeling_ui.eval_views import show_image_id, thumbnails
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.registry import PageContext
from relcurate.models.registry import list_model_versions

K_PICK = "space_pick"


def embedded_models(ctx: PageContext) -> list[str]:
    return [f"{mv.name}:{mv.version}" for mv in list_model_versions(ctx.ws)
            if mv.kind in ("relsim", "baseline") and mv.config.get("vectors")]


def _start_group(ctx: PageContext, ids: list[int]) -> None:
    try:
        gid = start_group_from_images(ctx.ws, ids, user_id=ctx.user.id)
        st.session_state["space_msg"] = f"Draft seed group #{gid} holds images {', '.join(f'#{i}' for i in ids)}."
    except GroupError as exc:
        st.session_state["space_msg"] = f"Could not start a group: {exc}"


def _add(ctx: PageContext, group_id: int, image_id: int) -> None:
    try:
        added = add_image_to_group(ctx.ws, group_id, image_id)
        st.session_state["space_msg"] = (f"Image #{image_id} added to group #{group_id}." if added
                                         else f"Image #{image_id} is already in group #{group_id}.")
    except GroupError as exc:
        st.session_state["space_msg"] = f"Could not add the image: {exc}"


def render(ctx: PageContext) -> None:
    st.title("Similarity space")
    models = embedded_models(ctx)
    if len(models) < 2:
        st.info("Embed a relational and an attribute model first (`relcurate models embed NAME`).")
        return
    c1, c2, c3 = st.columns([2, 2, 1])
    rel = c1.selectbox("Relational (y)", models, index=0, key="space_rel")
    attr = c2.selectbox("Attribute (x)", models, index=min(1, len(models) - 1), key="space_attr")
    query = int(c3.number_input("Query image id", min_value=1, step=1, value=1, key="space_query"))
    try:
        pts = similarity_space(ctx.ws, query, relational=rel, attribute=attr)
    except SpaceUnavailable as exc:
        st.warning(escape_md(exc))
        return
    thumbs = {i: thumbnail_uri(b) for i, b in thumbnails(ctx.ws, pts.ids.tolist()).items()}
    left, right = st.columns([3, 1])
    with right:
        st.subheader("Query")
        show_image_id(ctx.ws, query)
        regions = pts.regions()
        for name in REGIONS.values():
            st.caption(escape_md(f"{name}: {regions.count(name)}"))
    with left:
        event = st.altair_chart(space_chart(pts, thumbnails=thumbs), on_select="rerun", selection_mode="pick",
                                key="space_chart")
    picked = (getattr(event, "selection", None) or {}).get("pick") or []
    if picked and picked[0].get("image_id") is not None:
        st.session_state[K_PICK] = int(picked[0]["image_id"])
    ids = pts.ids.tolist()
    current = st.session_state.get(K_PICK)
    choice = st.selectbox("Open image", [None, *ids], index=(ids.index(current) + 1) if current in ids else 0,
                          format_func=lambda i: "—" if i is None else f"#{i} ({regions[ids.index(i)]})",
                          key="space_open")
    if msg := st.session_state.pop("space_msg", None):
        st.success(escape_md(msg))
    if choice is not None:
        with st.container(border=True, key="space_detail"):
            show_image_id(ctx.ws, choice, large=True, caption=f"image #{choice}")
            if ctx.can("curate"):
                st.button("Start a seed group with the query and this image", key="space_group",
                          icon=":material/workspaces:", on_click=_start_group, args=(ctx, [query, int(choice)]))
                drafts = {g.id: g for g in draft_groups(ctx.ws, ctx.user.id)}
                if drafts:
                    gid = st.selectbox("Your draft groups", list(drafts), key="space_target",
                                       format_func=lambda g: escape_md(f"#{g} {drafts[g].name} ({drafts[g].n_members})"))
                    st.button("Add this image to the group", key="space_add", icon=":material/add:",
                              on_click=_add, args=(ctx, int(gid), int(choice)))
