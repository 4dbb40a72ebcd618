"""Filter labeling: one large image, the paper's question, Yes / No / Skip (keys Y, N, S), Undo (U).

Every decision carries the request id of the task it was made on (bound to the image shown): a
repeat applies once, and the store refuses an id that names another image (labeling/labels.py).

In a browser the image, its alt-text and the keyboard belong to the prefetching view
(prefetch.py, static/filter_prefetch.js): the page leases the shown task and the next few, the
browser swaps to the next image the moment a key is accepted (after the minimum dwell on the
painted image, once per image; workspace setting, default 200 ms) and queues the decision,
which the next rerun records here (`_apply_browser_queue`) and acknowledges. The script also
takes over the Yes/No/Skip/Undo buttons, so a click decides the image on screen like a key;
their callbacks below decide the first held task, for a page without the script (AppTest).
"""
from __future__ import annotations

import time

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from relcurate.curation.labeling import labels, leases
from relcurate.curation.catalog.browse import get_image
from relcurate.curation.catalog.image_bytes import DISPLAY_MAX_SIDE
from relcurate.curation.labeling.guidelines import list_examples
from relcurate.models.protocols import FILTER_QUESTION
from relcurate.labeling_ui import prefetch
from relcurate.labeling_ui.registry import PageContext
from relcurate.training import filter_loop
from relcurate.labeling_ui.widgets import image_tile, set_flash, show_flash

K_UNDO = "filter_undo_stack"  # label ids decided in this session, newest last
K_SHOWN = "filter_shown"  # request id -> time.time() when first shown (lead time)
K_FLASH = "filter_flash"
K_RECENT = "filter_recent"  # [(image id, answer, label id)] decided in this session, newest first
RECENT_N = 5
K_FULL = "filter_full_res"  # image id shown at full resolution (one image: it is a big payload)
FULL_RES_MAX_SIDE = 8192  # "full resolution" up to this; larger originals are downscaled to it
SHORTCUTS = {"yes": "Y", "no": "N", "skip": "S"}
UNDO_KEY = "U"
SYNC_EVERY_S = 30


# Zoom (Z or a click on the image, see static/filter_prefetch.js): the display rendition (up to 1280 px)
# at its own pixel size, scrolled inside its box; again to fit. Answer buttons keep a minimum
# width and wrap to a second line in a narrow column instead of truncating their labels.
_CSS = """<style>
.st-key-filter_image img { cursor: zoom-in; }
.st-key-filter_image.rc-zoom { overflow: auto; max-height: 85vh; }
.st-key-filter_image.rc-zoom img { width: auto !important; max-width: none !important; cursor: zoom-out; }
.st-key-filter_answers [data-testid="stHorizontalBlock"] { flex-wrap: wrap; row-gap: 0.5rem; }
.st-key-filter_answers [data-testid="stColumn"] { min-width: 6.5rem; flex: 1 1 6.5rem; }
.st-key-filter_answers button p { white-space: nowrap; }
</style>"""


@st.cache_data(ttl=SYNC_EVERY_S, show_spinner=False)
def _sync(root: str, db_url: str) -> int:
    """Pool newly ingested images, at most every SYNC_EVERY_S per process (cheap when none)."""
    from relcurate.labeling_ui.resources import workspace_at

    return leases.sync_pool(workspace_at(root).engine)


@st.cache_data(ttl=120, show_spinner=False)
def _decisions_needed(root: str, db_url: str) -> int:
    from relcurate.labeling_ui.resources import workspace_at

    return leases.decisions_needed(workspace_at(root).engine)


def _decide(ctx: PageContext, task: leases.Task, answer: str) -> None:
    shown = st.session_state.get(K_SHOWN, {}).get(task.request_id)
    lead_ms = int((time.time() - shown) * 1000) if shown else None
    try:
        res = labels.record_label(ctx.ws.engine, image_id=task.image_id, user_id=ctx.user.id, answer=answer,
                                  request_id=task.request_id, lead_time_ms=lead_ms)
    except labels.LabelError as exc:
        set_flash(K_FLASH, exc, "warning")
        return
    if not res.duplicate:
        st.session_state.setdefault(K_UNDO, []).append(res.label_id)
        _remember(task.image_id, res.answer, res.label_id)


def _remember(image_id: int, answer: str, label_id: int) -> None:
    recent = [r for r in st.session_state.get(K_RECENT, []) if r[0] != image_id]
    st.session_state[K_RECENT] = [(image_id, answer, label_id), *recent][:RECENT_N]


def _change(ctx: PageContext, image_id: int, label_id: int, answer: str) -> None:
    """Change my answer on a recent image: a new label event superseding the old one (history
    stays append-only). The request id names the superseded event and the new answer, so a
    double click records one change."""
    try:
        res = labels.record_label(ctx.ws.engine, image_id=image_id, user_id=ctx.user.id, answer=answer,
                                  request_id=f"chg:{label_id}:{answer}")
    except labels.LabelError as exc:
        set_flash(K_FLASH, exc, "warning")
        return
    _remember(image_id, res.answer, res.label_id)
    if not res.duplicate:
        st.session_state.setdefault(K_UNDO, []).append(res.label_id)
    set_flash(K_FLASH, f"Image {image_id}: answer changed to {answer}.", "info")


def _recent(ctx: PageContext) -> None:
    recent = st.session_state.get(K_RECENT, [])
    if not recent:
        return
    title = "Your last answer" if len(recent) == 1 else f"Your last {len(recent)} answers"
    with st.expander(title, icon=":material/history:", expanded=True):
        for image_id, answer, label_id in recent:
            thumb, info = st.columns([1, 3], vertical_alignment="center")
            with thumb:
                image_tile(get_image(ctx.ws, image_id))
            with info:
                st.caption(f"#{image_id} · **{answer}**")
                others = [a for a in SHORTCUTS if a != answer]
                for col, other in zip(st.columns(len(others)), others):
                    col.button(f"Change to {other}", key=f"filter_recent_{image_id}_{other}", type="tertiary",
                               on_click=_change, args=(ctx, image_id, label_id, other))


def _undo(ctx: PageContext, label_id: int) -> None:
    stack: list[int] = st.session_state.setdefault(K_UNDO, [])
    res = labels.undo_label(ctx.ws.engine, user_id=ctx.user.id, label_id=label_id)
    if res.undone and res.releasing:
        prefetch.show_first(res.image_id)  # the undone image is leased again: it goes on screen now
    if label_id in stack:  # a double press finds it gone already
        stack.remove(label_id)
    st.session_state[K_RECENT] = [r for r in st.session_state.get(K_RECENT, []) if r[2] != label_id]
    if not res.undone and res.reason != "already undone":
        set_flash(K_FLASH, f"Could not undo: {res.reason}.", "warning")


def _guidelines(ctx: PageContext) -> None:
    examples = list_examples(ctx.ws.engine)
    with st.expander("Guidelines", icon=":material/help:"):
        st.markdown("Answer **Yes** when the image shows a relation, logic or structure that another image "
                    "could share with different objects (a visual pun, a layout, a transformation, an "
                    "analogy); **No** for an ordinary photo of things; **Skip** if you cannot tell.")
        if not examples:
            st.caption("No example images pinned yet.")
            return
        for answer, title in (("yes", "Clear Yes"), ("no", "Clear No")):
            chosen = [e for e in examples if e.answer == answer]
            if not chosen:
                continue
            st.markdown(f"**{title}**")
            cols = st.columns(2)  # the panel is narrow: two thumbnails a row stay legible
            for i, ex in enumerate(chosen[:6]):
                with cols[i % 2]:
                    image_tile(get_image(ctx.ws, ex.image_id), ex.note or None, max_len=200)


def _progress(ctx: PageContext) -> None:
    mine = labels.user_counts(ctx.ws.engine, ctx.user.id)
    done = leases.decisions_done(ctx.ws.engine)
    needed = _decisions_needed(str(ctx.ws.root), ctx.ws.db_url)
    st.caption(f"Mine: {mine['yes']} yes · {mine['no']} no · {mine['skip']} skipped")
    if needed:
        st.progress(min(1.0, done / needed), text=f"Project: {done:,} of about {needed:,} decisions")


def _apply_browser_queue(ctx: PageContext) -> None:
    """Record the decisions (and undos) the browser queued since the last rerun, in order.

    Each is settled once per browser tab and number (prefetch.applied); a refused one is sent
    back to be shown; one the store failed to save stays unacknowledged and the browser sends
    it again, so nothing is lost silently."""
    for op in prefetch.pending_ops():
        if op.kind == "undo":
            stack = st.session_state.get(K_UNDO, [])
            if stack:
                _undo(ctx, stack[-1])
            else:
                set_flash(K_FLASH, "Nothing to undo.", "info")
            prefetch.applied(op)
            continue
        if not prefetch.was_sent(op):
            prefetch.refuse(op, "this image was not shown to you here; nothing was recorded")
            continue
        try:
            res = labels.record_label(ctx.ws.engine, image_id=op.image_id, user_id=ctx.user.id, answer=op.answer,
                                      request_id=op.request_id, lead_time_ms=op.lead_ms)
        except labels.LabelError as exc:
            prefetch.refuse(op, str(exc))
            continue
        except (SQLAlchemyError, OSError) as exc:  # not saved: the browser keeps it and retries
            st.session_state[prefetch.K_ERROR] = type(exc).__name__
            return
        st.session_state[prefetch.K_ERROR] = None
        if not res.duplicate:
            st.session_state.setdefault(K_UNDO, []).append(res.label_id)
            _remember(op.image_id, res.answer, res.label_id)
        prefetch.applied(op)


def _on_screen(tasks: list[leases.Task]) -> leases.Task | None:
    """The task the browser last said it shows, else the first held one."""
    rid = prefetch.showing_request()
    return next((t for t in tasks if t.request_id == rid), tasks[0] if tasks else None)


def render(ctx: PageContext) -> None:
    st.title("Filter labeling")
    _sync(str(ctx.ws.root), ctx.ws.db_url)
    _apply_browser_queue(ctx)
    show_flash(K_FLASH)
    tasks = prefetch.ordered(leases.next_tasks(ctx.ws.engine, ctx.user.id, prefetch.prefetch_depth()))
    task = _on_screen(tasks)
    stack: list[int] = st.session_state.get(K_UNDO, [])

    # The images go out first: their delta reaches the browser while the rest of the page is
    # still being drawn.
    left, right = st.columns([3, 2], gap="large")
    with left:
        _image(ctx, tasks, task, can_undo=bool(stack))
    with right:
        st.markdown(f"#### {FILTER_QUESTION}")
        # The row wraps (static CSS below) rather than squeezing labels to "Y..": at 1024 px wide
        # with the sidebar open the right column is ~260 px.
        row = st.container(key="filter_answers").columns(3)
        for col, (answer, key) in zip(row, SHORTCUTS.items()):
            col.button(f"{answer.capitalize()} ({key})", key=f"filter_{answer}", width="stretch",
                       type="primary" if answer != "skip" else "secondary",
                       on_click=_decide, args=(ctx, task, answer), disabled=task is None)
        st.button(f"Undo ({UNDO_KEY})", key="filter_undo", icon=":material/undo:",
                  on_click=_undo, args=(ctx, stack[-1] if stack else -1), disabled=not stack,
                  help="Take back your last decision in this session")
        st.caption("Press **?** for the keys.")
        _progress(ctx)
        _recent(ctx)
        _guidelines(ctx)
    st.html(_CSS)


def _image(ctx: PageContext, tasks: list[leases.Task], task: leases.Task | None, *, can_undo: bool) -> None:
    if task is None:
        st.success("Nothing left to label for you right now. Thank you!")
    else:
        if task.request_id not in st.session_state.get(K_SHOWN, {}):
            st.session_state[K_SHOWN] = {task.request_id: time.time()}  # only the image on screen
    full_id = st.session_state.get(K_FULL)
    with st.container(key="filter_image"):
        # Mounted even when nothing is left: it still carries the acknowledgements.
        show_origin = ctx.can("curate") or filter_loop.get_loop(ctx.ws).show_origin
        prefetch.view(ctx.ws, tasks, dwell_ms=leases.min_dwell_ms(ctx.ws.engine), can_undo=can_undo,
                      full=(full_id, FULL_RES_MAX_SIDE) if full_id is not None else None,
                      origin=filter_loop.task_origins(ctx.ws, tasks).get if show_origin else None)
    if task is None:
        return
    card = get_image(ctx.ws, task.image_id)
    full = full_id == task.image_id
    big = card is not None and max(card.width or 0, card.height or 0) > DISPLAY_MAX_SIDE
    if big or full:
        # A button, not a toggle: a focused checkbox would swallow the answer keys.
        st.button("Fit rendition" if full else f"Full resolution ({card.width}x{card.height})",
                  key="filter_full", type="tertiary", icon=":material/zoom_in:", on_click=_full_res,
                  args=(None if full else task.image_id,), help="Z or a click on the image zooms")


def _full_res(image_id: int | None) -> None:
    st.session_state[K_FULL] = image_id
