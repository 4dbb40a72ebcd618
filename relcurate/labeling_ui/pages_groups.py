"""Group builder (curate): pick or start a seed group, edit its members, status and note, find
candidates by browsing, "more like this group" or "images like this one", split oversized groups,
compare two curators' groupings.

All rules live in curation.groups (membership, splitting, group_search); this page only lays them
out. Every write runs in a button callback (one library call, one transaction), so the rerun it triggers already shows the
result, and a refused action comes back as a message instead of a traceback.
"""
from __future__ import annotations

from typing import Callable

import pandas as pd
import streamlit as st

from relcurate.curation.groups import group_search as gs, membership as gr, splitting
from relcurate.curation.catalog.browse import ImageCard
from relcurate.curation.catalog.image_bytes import IMAGE_STATUSES, thumbnail_bytes
from relcurate.db.models import GroupStatus
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.images import show_image
from relcurate.labeling_ui.navigation import switch_to
from relcurate.labeling_ui.registry import PageContext
from relcurate.labeling_ui.widgets import clear_flash, image_tile, label_of, set_flash, show_flash

PAGE_SIZE = 15
COLUMNS = 5
ALL = "all"
MODES = ("Browse", "More like this group", "Like one image")
MANUAL_TARGETS = {  # status buttons the curator gets (captioned/verified follow the captions)
    GroupStatus.complete: ("Mark complete", ":material/task_alt:"),
    GroupStatus.draft: ("Back to draft", ":material/edit:"),
    GroupStatus.rejected: ("Reject group", ":material/block:"),
}

# Session-state keys of this page.
K_GROUP, K_LIST_STATUS, K_FLASH = "grp_selected", "grp_list_status", "grp_flash"
K_MODE, K_PAGE, K_LIKE, K_SPACE, K_K = "grp_mode", "grp_page", "grp_like", "grp_space", "grp_k"
K_CONFIRM = "grp_confirm_remove"  # (group id, image id) awaiting "Yes, remove"
K_TO_REVIEW = "rev_goto_group"  # the review page opens this group (pages_review.K_GOTO_GROUP)
K_TEXT, K_STATUS, K_KIND, K_LABEL, K_MEMBERSHIP = "grp_f_text", "grp_f_status", "grp_f_kind", "grp_f_label", "grp_f_member"


# --- writes --------------------------------------------------------------------------------

def _act(ctx: PageContext, fn: Callable, *args, done: str | None = None, select: bool = False, **kwargs) -> None:
    """Run one library write in its own transaction and keep a message for the next render;
    `select`: the write returns a new group, which becomes the selected one."""
    try:
        out = fn(ctx.ws, *args, **kwargs)
    except (gr.GroupError, ValueError) as exc:
        set_flash(K_FLASH, exc, "error")
        return
    if select:
        st.session_state[K_GROUP] = out.id
    if done:
        set_flash(K_FLASH, done)
    else:
        clear_flash(K_FLASH)


def _ask_remove(group_id: int | None, image_id: int | None) -> None:
    """First click on a member's delete icon: ask (bound to that group and image) before removing."""
    st.session_state[K_CONFIRM] = None if group_id is None else (group_id, image_id)


def _remove_confirmed(ctx: PageContext, group_id: int, image_id: int) -> None:
    if st.session_state.pop(K_CONFIRM, None) != (group_id, image_id):
        set_flash(K_FLASH, "That removal was not the one asked for: nothing was removed.", "error")
        return
    _act(ctx, gr.remove_members, group_id, [image_id], done=f"Removed #{image_id} from group #{group_id}.")


def _start(ctx: PageContext, image_id: int) -> None:
    _act(ctx, gr.start_group, image_id, created_by=ctx.user.id, select=True,
         done=f"Started a group from image #{image_id}.")


def _new_empty(ctx: PageContext) -> None:
    _act(ctx, gr.new_empty_group, created_by=ctx.user.id, select=True, done="Opened an empty draft group.")


def _split(ctx: PageContext, gid: int, parts: list[list[int]]) -> None:
    try:
        kids = splitting.split_group(ctx.ws, gid, parts, created_by=ctx.user.id)
    except gr.GroupError as exc:
        set_flash(K_FLASH, exc, "error")
        return
    st.session_state[K_GROUP] = kids[0].id
    set_flash(K_FLASH, f"Split #{gid} into " + ", ".join(f"#{k.id}" for k in kids) + ".")


# --- pieces ----------------------------------------------------------------------------------

def _thumb(card: ImageCard) -> None:
    image_tile(card, label_of(card), prefix=f"#{card.id} · ", max_len=70)


def _in_groups(refs: list[gr.GroupRef]) -> None:
    if refs:
        st.caption("also in " + ", ".join(f"#{r.id} {escape_md(r.name, max_len=30)} ({r.status})" for r in refs))


def _group_label(g: gr.GroupSummary) -> str:
    split = " · needs split" if g.needs_split else ""
    return f"#{g.id} {g.name} [{g.status}] ({g.n_members}){split}"


def _picker(ctx: PageContext) -> int | None:
    c1, c2, c3 = st.columns([1, 3, 1], vertical_alignment="bottom")
    status = c1.selectbox("Groups with status", (ALL, *[s.value for s in GroupStatus]), key=K_LIST_STATUS)
    selected = st.session_state.get(K_GROUP)
    # include: keep the group being edited listed even when the filter hides it (a deleted one
    # is left out, and the selectbox falls back to "none" below)
    listed = gr.list_groups(ctx.ws, status=None if status == ALL else status, include=selected)
    labels = {g.id: _group_label(g) for g in listed}
    options = [None, *labels]
    # Not a keyed widget: the browser keeps a selectbox's value as its *label*, and ours change
    # (member count, status), which would drop the selection. The page keeps the id instead.
    chosen = c2.selectbox("Group", options, index=options.index(selected) if selected in options else 0,
                          format_func=lambda gid: "— choose a group, or start one from an image —"
                          if gid is None else labels[gid])
    if chosen != selected:
        st.session_state[K_GROUP] = chosen
    c3.button("New empty group", key="grp_new", icon=":material/add:", on_click=_new_empty, args=(ctx,))
    return chosen


def _details(ctx: PageContext, g: gr.GroupSummary) -> None:
    with st.form(f"grp_details_{g.id}", border=False):
        c1, c2 = st.columns([1, 2])
        name = c1.text_input("Name", value=g.name, key=f"grp_name_{g.id}")
        note = c2.text_area("Note on the shared logic", value=g.note or "", key=f"grp_note_{g.id}", height=68)
        if st.form_submit_button("Save name and note"):
            _act(ctx, gr.update_details, g.id, name=name, note=note, done="Saved.")
            st.rerun()


def _member_tile(ctx: PageContext, g: gr.GroupSummary, card: ImageCard, pos: int, n: int,
                 refs: list[gr.GroupRef], editable: bool) -> None:
    with st.container(border=True):
        _thumb(card)
        _in_groups(refs)
        with st.container(horizontal=True, gap="small"):
            st.button("", key=f"grp_left_{card.id}", icon=":material/arrow_back:", help="Move earlier",
                      type="tertiary", disabled=not editable or pos == 0,
                      on_click=_act, args=(ctx, gr.move_member, g.id, card.id, pos - 1))
            st.button("", key=f"grp_right_{card.id}", icon=":material/arrow_forward:", help="Move later",
                      type="tertiary", disabled=not editable or pos == n - 1,
                      on_click=_act, args=(ctx, gr.move_member, g.id, card.id, pos + 1))
            st.button("", key=f"grp_remove_{card.id}", icon=":material/delete:", help="Remove from the group",
                      type="tertiary", disabled=not editable, on_click=_ask_remove, args=(g.id, card.id))
            st.button("", key=f"grp_similar_{card.id}", icon=":material/image_search:", type="tertiary",
                      help="Images like this one", on_click=_like, args=(card.id,))
        if editable and st.session_state.get(K_CONFIRM) == (g.id, card.id):
            st.warning(f"Remove #{card.id} from the group?")
            with st.container(horizontal=True, gap="small"):
                st.button("Yes, remove", key=f"grp_remove_yes_{card.id}", type="primary",
                          on_click=_remove_confirmed, args=(ctx, g.id, card.id))
                st.button("Cancel", key=f"grp_remove_no_{card.id}", on_click=_ask_remove, args=(None, None))


def _like(image_id: int) -> None:
    st.session_state[K_LIKE] = image_id
    st.session_state[K_MODE] = MODES[2]


def _group_panel(ctx: PageContext, gid: int) -> tuple[list[int], bool]:
    """The selected group's editor; returns (member ids, whether members may change)."""
    try:
        detail = gr.group_detail(ctx.ws, gid)
    except gr.GroupError as exc:
        st.error(escape_md(exc))
        return [], False
    g, ids, refs = detail.summary, detail.member_ids, detail.other_groups
    problems, targets = detail.problems, detail.move_targets
    cards = gs.image_cards(ctx.ws, ids)
    editable = g.status in gr.EDITABLE
    with st.container(border=True, key="grp_panel"):
        st.subheader(f"#{g.id} " + escape_md(g.name))
        st.caption(f"status **{g.status}** · {g.n_members} images"
                   + (f" · by {escape_md(g.created_by)}" if g.created_by else "")
                   + f" · source {escape_md(g.source)}")
        if g.n_members > gr.MAX_MEMBERS or g.needs_split:
            st.warning(f"This group has {g.n_members} images (at most {gr.MAX_MEMBERS}); split it below.")
        elif problems and g.status == GroupStatus.draft:
            st.caption("To complete it: " + escape_md("; ".join(problems)))
        if not editable:
            st.info(f"A {g.status} group's members are fixed; move it back to draft to change them.")
        _details(ctx, g)
        with st.container(horizontal=True, gap="small"):
            for target in (t for t in MANUAL_TARGETS if t in gr.allowed_transitions(g.status)
                           and (t != GroupStatus.complete or g.status == GroupStatus.draft)):
                label, icon = MANUAL_TARGETS[target]
                st.button(label, key=f"grp_to_{target}", icon=icon, on_click=_act,
                          args=(ctx, gr.set_status, gid, target), kwargs={"done": f"Group #{gid} is {target}."})
        if not cards:
            st.info("No images yet: add some from the candidates below.")
        for row in range(0, len(cards), COLUMNS):
            for col, (pos, card) in zip(st.columns(COLUMNS), list(enumerate(cards))[row:row + COLUMNS]):
                with col:
                    _member_tile(ctx, g, card, pos, len(cards), refs.get(card.id, []), editable)
        if editable and cards and targets:
            _move_form(ctx, gid, ids, targets)
        if len(ids) > gr.MAX_MEMBERS or g.needs_split:
            _split_panel(ctx, gid, ids, cards)
    return ids, editable


def _move_form(ctx: PageContext, gid: int, ids: list[int], targets: list[gr.GroupSummary]) -> None:
    with st.expander("Move images to another group"):
        labels = {t.id: _group_label(t) for t in targets}
        chosen = st.multiselect("Images", ids, key=f"grp_move_ids_{gid}", format_func=lambda i: f"#{i}")
        target = st.selectbox("Target group", list(labels), key=f"grp_move_to_{gid}", format_func=labels.get)
        st.button("Move", key="grp_move", disabled=not chosen, on_click=_act,
                  args=(ctx, gr.transfer_members, gid, target, chosen),
                  kwargs={"done": f"Moved {len(chosen)} image(s) to #{target}."})


def _split_panel(ctx: PageContext, gid: int, ids: list[int], cards: list[ImageCard]) -> None:
    st.markdown("**Split into valid groups**")
    method = st.radio("Suggest parts", ("in order", "by similarity"), key=f"grp_split_method_{gid}",
                      horizontal=True, help="by similarity: balanced clustering in the built-in image space")
    vectors = None
    if method == "by similarity":
        with st.spinner("Embedding images…"):
            vectors = gs.split_vectors(ctx.ws, ids)
        if vectors is None:
            st.caption("Some images have no vector yet (not downloaded?); parts follow the order instead.")
    parts = splitting.suggest_split(ids, vectors)
    by_id = {c.id: c for c in cards}
    for n, part in enumerate(parts, 1):
        st.caption(f"Part {n}: {len(part)} images — " + ", ".join(f"#{i}" for i in part))
        cols = st.columns(gr.MAX_MEMBERS)
        for col, image_id in zip(cols, part):
            data = thumbnail_bytes(by_id[image_id].thumb) if image_id in by_id else None
            if data:
                with col:
                    show_image(data)
    st.button(f"Split into {len(parts)} groups", key="grp_split", type="primary", icon=":material/call_split:",
              on_click=_split, args=(ctx, gid, parts))


# --- candidates ------------------------------------------------------------------------------

def _filter_widgets(similar: bool) -> gs.BrowseFilter:
    c = st.columns([3, 1, 1, 1, 1])
    text = c[0].text_input("Search alt-text and captions", key=K_TEXT, on_change=_reset_page)
    status = "ok"  # similarity search only ever returns usable images
    if not similar:
        status = c[1].selectbox("Status", (*IMAGE_STATUSES, ALL), key=K_STATUS, on_change=_reset_page)
    kinds = [ALL, *st.session_state.get("grp_kinds", [])]
    kind = c[2].selectbox("Source", kinds, key=K_KIND, on_change=_reset_page)
    label = c[3].selectbox("Filter label", gs.LABEL_FILTERS, key=K_LABEL, on_change=_reset_page)
    membership = c[4].selectbox("In groups", gs.MEMBERSHIP_FILTERS, key=K_MEMBERSHIP, on_change=_reset_page)
    return gs.BrowseFilter(text=text or None, status=None if status == ALL else status,
                           source_kind=None if kind == ALL else kind, label=label, membership=membership)


def _reset_page() -> None:
    st.session_state[K_PAGE] = 0


def _add(ctx: PageContext, gid: int, image_id: int) -> None:
    _act(ctx, gr.add_members, gid, [image_id], done=f"Added image #{image_id} to group #{gid}.")


def _candidate_grid(ctx: PageContext, section: str, cards: list[ImageCard], gid: int | None, can_add: bool,
                    members: list[int], extra: dict[int, str] | None = None) -> None:
    if not cards:
        st.info("No images match.")
        return
    refs = gr.groups_of_images(ctx.ws, [c.id for c in cards], exclude_group=gid)
    for row in range(0, len(cards), COLUMNS):
        for col, card in zip(st.columns(COLUMNS), cards[row:row + COLUMNS]):
            with col, st.container(border=True):
                _thumb(card)
                if extra and extra.get(card.id):
                    st.caption(extra[card.id])
                _in_groups(refs.get(card.id, []))
                with st.container(horizontal=True, gap="small"):
                    if gid is not None:
                        st.button("Add", key=f"grp_add_{section}_{card.id}", icon=":material/add:",
                                  disabled=not can_add or card.id in members or card.status != "ok",
                                  on_click=_add, args=(ctx, gid, card.id))
                    else:
                        st.button("Start group", key=f"grp_start_{section}_{card.id}", icon=":material/add_circle:",
                                  disabled=card.status == "quarantined", on_click=_start, args=(ctx, card.id))
                    st.button("", key=f"grp_like_{section}_{card.id}", icon=":material/image_search:",
                              type="tertiary", help="Images like this one", on_click=_like, args=(card.id,))


def _neighbour_notes(neigh: list[gs.Neighbour]) -> dict[int, str]:
    notes = {}
    for n in neigh:
        note = f"similarity {n.score:.2f}"
        if n.near_duplicate_of is not None:
            note += f" · :orange[near-duplicate of #{n.near_duplicate_of}]"
        notes[n.image_id] = note
    return notes


def _candidates(ctx: PageContext, gid: int | None, members: list[int], can_add: bool) -> None:
    st.subheader("Find images")
    st.session_state.setdefault("grp_kinds", gs.source_kinds(ctx.ws))
    mode = st.radio("Find by", MODES, key=K_MODE, horizontal=True, label_visibility="collapsed")
    flt = _filter_widgets(similar=mode != MODES[0])
    if gid is not None:
        flt = gs.BrowseFilter(**{**flt.__dict__, "exclude_group": gid})
    if mode == MODES[0]:
        page = st.session_state.get(K_PAGE, 0)
        cards, total = gs.browse(ctx.ws, flt, offset=page * PAGE_SIZE, limit=PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        nav = st.columns([1, 2, 1])
        nav[0].button("Previous", key="grp_prev", disabled=page == 0, on_click=_move_page, args=(-1,))
        nav[1].caption(f"page {min(page, pages - 1) + 1} of {pages} · {total} images")
        nav[2].button("Next", key="grp_next", disabled=page >= pages - 1, on_click=_move_page, args=(1,))
        _candidate_grid(ctx, "browse", cards, gid, can_add, members)
        return
    c1, c2 = st.columns([2, 1])
    spaces = gs.available_spaces(ctx.ws)
    default = gs.default_space(ctx.ws)
    if st.session_state.get(K_SPACE) not in spaces:  # first visit, or the chosen space is gone
        st.session_state[K_SPACE] = default
    space = c1.selectbox("Embedding space", spaces, key=K_SPACE,
                         format_func=lambda sp: f"{sp} (default)" if sp == default else sp,
                         help="attribute: built-in colour/layout features; other spaces come from trained "
                              "models; the default is the relsim version the loop last re-embedded")
    st.session_state.setdefault(K_K, 12)
    k = c2.number_input("How many", min_value=1, max_value=60, key=K_K)
    if mode == MODES[1]:
        if not members:
            st.info("Choose a group with at least one image first.")
            return
        with st.spinner("Searching (the first search embeds the workspace's images)…"):
            res = gs.more_like_group(ctx.ws, members, space=space, k=int(k), flt=flt)
        if res.not_embedded:
            st.caption("Not in this space: " + ", ".join(f"#{i}" for i in res.not_embedded))
        st.markdown("**Nearest to the group's centroid**")
        _candidate_grid(ctx, "centroid", gs.image_cards(ctx.ws, [n.image_id for n in res.centroid]), gid,
                        can_add, members, _neighbour_notes(res.centroid))
        if res.member_fit:
            st.markdown("**Leave one out** — each member's rank when searched with the others' centroid "
                        "(a high rank hints at a member that does not fit)")
            st.dataframe(pd.DataFrame([{"member": f"#{f.image_id}", "rank": f.rank if f.rank >= 0 else f"> {k}"}
                                       for f in res.member_fit]).astype(str), hide_index=True)
            _candidate_grid(ctx, "loo", gs.image_cards(ctx.ws, [n.image_id for n in res.leave_one_out]), gid,
                            can_add, members, _neighbour_notes(res.leave_one_out))
        return
    st.session_state.setdefault(K_LIKE, None)
    like = st.number_input("Image id", min_value=1, step=1, key=K_LIKE,
                           placeholder="use the search icon on any image")
    if like is None:
        return
    with st.spinner("Searching…"):
        neigh = gs.like_image(ctx.ws, int(like), space=space, k=int(k), flt=flt, exclude=members)
    _candidate_grid(ctx, "like", gs.image_cards(ctx.ws, [n.image_id for n in neigh]), gid, can_add, members,
                    _neighbour_notes(neigh))


def _move_page(delta: int) -> None:
    st.session_state[K_PAGE] = max(0, st.session_state.get(K_PAGE, 0) + delta)


# --- agreement -------------------------------------------------------------------------------

def _compare(ctx: PageContext) -> None:
    curators = gr.curators_with_groups(ctx.ws)
    if len(curators) < 2:
        st.caption("Needs groups from at least two curators.")
        return
    labels = {uid: f"{name} ({n} groups)" for uid, name, n in curators}
    ids = list(labels)
    c1, c2, c3 = st.columns(3)
    a = c1.selectbox("Reference curator", ids, key="grp_cmp_a", format_func=labels.get)
    b = c2.selectbox("Compared curator", ids, index=1, key="grp_cmp_b", format_func=labels.get)
    universe = c3.radio("Images", ("common", "union"), key="grp_cmp_universe", horizontal=True,
                        help="common: only images both curators grouped")
    m = gr.compare_curators(ctx.ws, a, b, universe=universe)
    rows = [("pairwise precision", m["precision"]), ("pairwise recall", m["recall"]), ("pairwise F1", m["f1"]),
            ("adjusted Rand index", m["ari"]), ("images compared", m["n_images"])]
    st.dataframe(pd.DataFrame([(k, f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in rows],
                              columns=["measure", "value"]), hide_index=True, key="grp_cmp_table")


def render(ctx: PageContext) -> None:
    st.title("Seed groups")
    show_flash(K_FLASH)
    gid = _picker(ctx)
    if gid is not None and st.button("Review its caption", key="grp_to_review", icon=":material/rate_review:",
                                     type="tertiary", disabled=not ctx.can("review")):
        st.session_state[K_TO_REVIEW] = gid
        switch_to("review")
    members, can_add = _group_panel(ctx, gid) if gid is not None else ([], False)
    _candidates(ctx, gid, members, can_add)
    with st.expander("Compare two curators' groupings"):
        _compare(ctx)
