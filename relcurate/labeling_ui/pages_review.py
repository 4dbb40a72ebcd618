"""Caption review (review): a group's images, its anonymous caption in a multi-line editor with the
anonymity checker's findings (redrawn when the box is left or Ctrl+Enter is pressed; a flagged
object noun can be marked "shown by every member"), and accept / save edit / reject with a reason.
A rejected caption shows its rejection reason above the images; refusals (checker errors, the
separation of duties) appear next to the buttons. Per-image
captions are reviewed on the same page from a reproducible random sample, or in the captioner
loop's queue (`caption_queue.review_queue`: checker-flagged and low-confidence model captions
first, plus the audit share), each shown with why it was queued and by which captioner version.

Everything the reviewer does is a `CaptionReview` event written by curation.groups.captions (which also
enforces the rules); the page only lays things out. Caption text from models or people is shown
escaped (a "<script>" caption reads as those characters) except inside the text box, which is a
plain input. Keyboard: A accept, E save edit, X reject, N / P next / previous (not while typing).

Every action is bound, when its button is drawn, to the group and caption on screen (`Bound`); a
callback whose binding is not what the page last drew, or whose caption was replaced meanwhile,
is refused with a message and changes nothing. After a save the page stays on that group even if
the save moved it out of the queue (e.g. an edit in "accepted"): Next / Previous moves on.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from relcurate.curation.groups import caption_queue
from relcurate.curation.groups import captions as cap
from relcurate.curation.groups.anonymity import CaptionCheck
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.navigation import switch_to
from relcurate.labeling_ui.registry import PageContext
from relcurate.labeling_ui.widgets import image_tile, set_flash, show_flash
from relcurate.workspace import Workspace

MODES = ("Group captions", "Image captions (sample)", "Captioner queue")
REASON_TEXT = {"flagged": "flagged by the anonymity checker", "low_confidence": "low model confidence",
               "audit": "random audit (the model was sure)"}
COLUMNS = 5
SHORTCUTS = {"accept": "A", "edit": "E", "reject": "X", "next": "N", "prev": "P"}
K_MODE, K_QUEUE, K_CURRENT, K_FLASH = "rev_mode", "rev_queue", "rev_current", "rev_flash"
K_SAMPLE_N, K_SEED = "rev_sample_n", "rev_seed"
K_SHOWN, K_STAY, K_ACT_MSG, K_JUMP = "rev_shown", "rev_stay", "rev_act_msg", "rev_jump"
K_QUEUED = "rev_queued"  # caption id -> QueuedCaption of the captioner queue drawn this run
K_GOTO_GROUP = "rev_goto_group"  # set by another page (the group builder's "Review caption" link)
K_GROUP_BUILDER = "grp_selected"  # the group builder's selected group (pages_groups.K_GROUP)


@dataclass(frozen=True)
class Target:
    """What one review screen is about: a group caption (by group) or a per-image caption."""

    kind: str  # "group" | "image"
    id: int  # group id or caption id


@dataclass(frozen=True)
class Bound:
    """What an action button acts on, fixed when it is drawn."""

    target: Target
    caption_id: int | None

    def name(self) -> str:
        return f"group #{self.target.id}" if self.target.kind == "group" else f"caption #{self.target.id}"


def bound_of(item: cap.ReviewItem, target: Target) -> Bound:
    return Bound(target, item.caption.id if item.caption else None)


def text_key(item: cap.ReviewItem) -> str:
    """The editor's widget key: new after every recorded event, so it then shows the stored text."""
    if item.caption is None:
        return f"rev_text_new_{item.group.id}"
    return f"rev_text_{item.caption.id}_{len(item.history)}"


def _escape_keep_edges(segment: str) -> str:
    """escape_md for a piece of a sentence: keeps one space at either edge (escape_md trims)."""
    if not segment:
        return ""
    if not segment.strip():
        return " "
    return (" " if segment[0].isspace() else "") + escape_md(segment) + (" " if segment[-1].isspace() else "")


def highlight(check: CaptionCheck) -> str:
    """The checked caption as escaped markdown with each finding's word marked (errors red,
    warnings orange)."""
    spans = sorted((f for f in check.findings if f.start is not None and f.end is not None), key=lambda f: f.start)
    out, at = [], 0
    for f in spans:
        if f.start < at:
            continue
        out.append(_escape_keep_edges(check.text[at:f.start]))
        colour = "red" if f.severity == "error" else "orange"
        out.append(f":{colour}-background[{escape_md(check.text[f.start:f.end])}]")
        at = f.end
    out.append(_escape_keep_edges(check.text[at:]))
    return "".join(out)


# --- actions (button callbacks) ----------------------------------------------------------------

def _next_after(order: list[int], current: int) -> int | None:
    if current not in order:
        return None
    pos = order.index(current)
    return order[pos + 1] if pos + 1 < len(order) else None


def _stale(ctx: PageContext, bound: Bound) -> str | None:
    """Why an action bound to `bound` must not run now (None: it may)."""
    shown = st.session_state.get(K_SHOWN)
    if shown != bound:
        now = shown.name() if isinstance(shown, Bound) else "nothing"
        return f"That action was for {bound.name()}, which is not on screen ({now} is): nothing was changed."
    if bound.target.kind == "group":
        current = cap.current_caption(ctx.ws, bound.target.id)
        if (current.id if current else None) != bound.caption_id:
            return (f"The caption of {bound.name()} changed since the page was drawn: nothing was changed; "
                    "read it again.")
    return None


def _review(ctx: PageContext, item: cap.ReviewItem, bound: Bound, order: list[int], action: str) -> None:
    stale = _stale(ctx, bound)
    if stale:
        set_flash(K_ACT_MSG, stale, "error")
        return
    key = text_key(item)
    text = st.session_state.get(key, "")
    force = bool(st.session_state.get(f"rev_force_{key}", False))
    reason = st.session_state.get(f"rev_reason_{key}", "")
    try:
        if bound.caption_id is None:
            out = cap.write_and_review(ctx.ws, bound.target.id, text, action, user_id=ctx.user.id, allow_errors=force)
        else:
            out = cap.review_caption(ctx.ws, bound.caption_id, action, user_id=ctx.user.id, text=text,
                                     reason=reason, allow_errors=force)
    except cap.CaptionError as exc:
        set_flash(K_ACT_MSG, exc, "error")  # drawn next to the buttons
        return
    verb = {"accept": "Accepted", "edit": "Saved", "reject": "Rejected"}[action]
    set_flash(K_FLASH, f"{verb} the caption of {bound.name()}." if out.changed else "Nothing changed.")
    st.session_state[K_CURRENT] = bound.target.id
    st.session_state[K_STAY] = bound.target.id  # stay on it even if it left the queue
    if action in ("accept", "reject") and out.changed:  # decided: move on
        st.session_state.pop(K_STAY, None)
        nxt = _next_after(order, bound.target.id)
        if nxt is not None:
            st.session_state[K_CURRENT] = nxt


def _share(ctx: PageContext, bound: Bound, noun: str, shared: bool) -> None:
    """Run from the editor fragment's body (not a callback), so it can rerun the whole page."""
    stale = _stale(ctx, bound)
    if stale or bound.caption_id is None:
        set_flash(K_ACT_MSG, stale or "Save the caption first, then mark shared nouns.", "error")
        st.rerun(scope="app")
    try:
        cap.mark_shared_noun(ctx.ws, bound.caption_id, noun, user_id=ctx.user.id, shared=shared)
    except cap.CaptionError as exc:
        set_flash(K_ACT_MSG, exc, "error")
        st.rerun(scope="app")
    st.session_state[K_STAY] = bound.target.id
    set_flash(K_FLASH, f"Marked {noun!r} as shown by every member of {bound.name()}." if shared
              else f"{noun!r} is no longer marked as shared in {bound.name()}.")
    st.rerun(scope="app")  # clicked inside the editor fragment: redraw the whole page (item, history)


def _propose(ctx: PageContext, group_id: int) -> None:
    spec = cap.latest_captioner(ctx.ws)
    try:
        model = _captioner(str(ctx.ws.root), ctx.ws, spec) if spec else None
        cap.propose_with_model(ctx.ws, group_id, model, model_version_id=spec.model_version_id if spec else None,
                               user_id=ctx.user.id)
    except cap.CaptionError as exc:
        set_flash(K_FLASH, exc, "error")
        return
    set_flash(K_FLASH, f"The captioner proposed a caption for group #{group_id}.")


@st.cache_resource(show_spinner="Loading the captioner…", max_entries=1)
def _captioner(root: str, _ws, spec: cap.CaptionerSpec):  # cached on (root, spec); _ws is not hashed
    return cap.load_captioner(_ws, spec)


def _go(current: int) -> None:
    st.session_state[K_CURRENT] = current
    st.session_state.pop(K_STAY, None)


def _queue_changed() -> None:
    st.session_state.pop(K_STAY, None)
    st.session_state.pop(K_CURRENT, None)


def _jump(ctx: PageContext) -> None:
    query = st.session_state.get(K_JUMP, "")
    gid = cap.find_review_group(ctx.ws, query)
    if gid is None:
        set_flash(K_FLASH, f"No reviewable group matches {query!r}.", "warning")
        return
    if gid not in cap.group_queue(ctx.ws, st.session_state.get(K_QUEUE, cap.QUEUES[0])):
        st.session_state[K_QUEUE] = "all"  # callbacks run before widgets: the selectbox follows
    st.session_state[K_MODE] = MODES[0]
    st.session_state[K_CURRENT] = gid
    st.session_state[K_STAY] = gid
    st.session_state[K_JUMP] = ""


# --- layout ----------------------------------------------------------------------------------

def _images(item: cap.ReviewItem) -> None:
    for row in range(0, len(item.members), COLUMNS):
        for col, card in zip(st.columns(COLUMNS), item.members[row:row + COLUMNS]):
            with col:
                image_tile(card, card.alt_text or "no alt-text", prefix=f"#{card.id} · ", max_len=120)


@st.fragment
def _editor(ctx: PageContext, item: cap.ReviewItem, bound: Bound) -> None:
    """The caption box (multi-line) and the checker's findings; editing reruns only this fragment."""
    key = text_key(item)
    st.session_state.setdefault(key, item.caption.text if item.caption else "")
    text = st.text_area("Anonymous caption", key=key, height=110,
                        placeholder="This image illustrates {Subject} ... (placeholders in curly braces)")
    if not (text or "").strip():
        st.caption("Write the caption: name what varies between the images with {Placeholders}.")
        return
    check = item.check(text)
    st.markdown(highlight(check))
    if not check.findings:
        st.success("The anonymity check found nothing.", icon=":material/verified:")
    for i, f in enumerate(check.findings):
        word = f" — **{escape_md(f.word)}**" if f.word else ""
        show = st.error if f.severity == "error" else st.warning
        if f.code == "object_noun" and f.word and item.caption is not None:
            c1, c2 = st.columns([4, 1], vertical_alignment="center")
            with c1:
                show(f"`{f.code}`{word}: {escape_md(f.message)}")
            if c2.button("Shown by every member", key=f"rev_share_{i}_{f.word.lower()}", icon=":material/done_all:",
                         help="The object is what the group shares: the checker then accepts the word (recorded).",
                         width="stretch"):
                _share(ctx, bound, f.word, True)
        else:
            show(f"`{f.code}`{word}: {escape_md(f.message)}")
    for noun in item.shared_nouns:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.caption(f"Marked as shown by every member: **{escape_md(noun)}**")
        if c2.button("Unmark", key=f"rev_unshare_{noun}"):
            _share(ctx, bound, noun, False)


def _actions(ctx: PageContext, item: cap.ReviewItem, bound: Bound, order: list[int]) -> None:
    key = text_key(item)
    c1, c2, c3 = st.columns([1, 1, 2], vertical_alignment="bottom")
    c1.button("Accept", key="rev_accept", type="primary", icon=":material/check:", shortcut=SHORTCUTS["accept"],
              on_click=_review, args=(ctx, item, bound, order, "accept"))
    c2.button("Save edit", key="rev_edit", icon=":material/save:", shortcut=SHORTCUTS["edit"],
              on_click=_review, args=(ctx, item, bound, order, "edit"))
    c3.checkbox("Accept despite checker errors", key=f"rev_force_{key}",
                help="Only when a finding is a false alarm; the review history records it.")
    if item.caption is not None:
        r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
        r1.text_input("Reason for rejecting", key=f"rev_reason_{key}", placeholder="e.g. describes only one image")
        r2.button("Reject", key="rev_reject", icon=":material/close:", shortcut=SHORTCUTS["reject"],
                  on_click=_review, args=(ctx, item, bound, order, "reject"))
    show_flash(K_ACT_MSG)  # "fix the errors" and refusals, next to the buttons they answer


def _history(item: cap.ReviewItem) -> None:
    if not item.history:
        return
    with st.expander(f"History ({len(item.history)} events)"):
        # st.dataframe draws cells as text: caption and reason strings are never markup here.
        st.dataframe(pd.DataFrame([{"when": e.created_at.strftime("%Y-%m-%d %H:%M:%S"), "who": e.username or "model",
                                    "action": e.action, "text": e.text or "", "reason": e.reason or ""}
                                   for e in item.history]), hide_index=True, width="stretch")


def _load(ws: Workspace, target: Target) -> cap.ReviewItem:
    return cap.group_review_item(ws, target.id) if target.kind == "group" else cap.image_review_item(ws, target.id)


def _queue(ctx: PageContext) -> tuple[str, list[int]]:
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    mode = c1.radio("Review", MODES, key=K_MODE, horizontal=True)
    if mode == MODES[0]:
        queue = c2.selectbox("Queue", cap.QUEUES, key=K_QUEUE, on_change=_queue_changed)
        c3.text_input("Jump to group", key=K_JUMP, placeholder="id or name", on_change=_jump, args=(ctx,))
        return "group", cap.group_queue(ctx.ws, queue)
    if mode == MODES[2]:
        # reviewed captions keep their place (status shown), so the order is stable while working
        queued = caption_queue.review_queue(ctx.ws)
        st.session_state[K_QUEUED] = {q.caption_id: q for q in queued}
        pending = sum(q.status == "proposed" for q in queued)
        c2.markdown(f"{pending} of {len(queued)} still to review")
        if st.session_state.get(K_CURRENT) not in st.session_state[K_QUEUED]:
            # entering the queue: start at the first caption nobody reviewed yet
            st.session_state[K_CURRENT] = next((q.caption_id for q in queued if q.status == "proposed"),
                                               queued[0].caption_id if queued else None)
        return "image", [q.caption_id for q in queued]
    st.session_state.setdefault(K_SAMPLE_N, 20)
    st.session_state.setdefault(K_SEED, 0)
    n = c2.number_input("Sample size", min_value=1, max_value=1000, key=K_SAMPLE_N, on_change=_queue_changed)
    seed = c3.number_input("Sample seed", min_value=0, key=K_SEED)
    # status=None: the sample must not change as its captions get reviewed
    return "image", cap.sample_image_captions(ctx.ws, int(n), seed=int(seed), status=None)


def _take_handoff() -> None:
    """A link from another page (the group builder) asked for one group."""
    gid = st.session_state.pop(K_GOTO_GROUP, None)
    if gid is not None:
        st.session_state[K_MODE] = MODES[0]
        st.session_state[K_QUEUE] = "all"
        st.session_state[K_CURRENT] = gid
        st.session_state[K_STAY] = gid


def render(ctx: PageContext) -> None:
    st.title("Caption review")
    _take_handoff()
    show_flash(K_FLASH)
    kind, order = _queue(ctx)
    current = st.session_state.get(K_CURRENT)
    left_queue = False
    if kind == "group" and current is not None and current not in order and st.session_state.get(K_STAY) == current:
        # the last save moved it out of this queue: keep it on screen, in its place in the order
        order = sorted([*order, current]) if order == sorted(order) else [current, *order]
        left_queue = True
    if not order:
        st.session_state[K_SHOWN] = None
        if kind == "group":
            st.info("Nothing in this queue.")
        elif st.session_state.get(K_MODE) == MODES[2]:
            st.info("The captioner queue is empty: the caption-pool job (Active learning page, or "
                    "`relcurate loop captioner`) fills it.")
        else:
            st.info("No per-image captions to review.")
        return
    if current not in order:
        current = next((i for i in order if current is not None and i >= current), order[0])
    st.session_state[K_CURRENT] = current
    pos = order.index(current)
    target = Target(kind, current)
    item = _load(ctx.ws, target)
    bound = bound_of(item, target)
    st.session_state[K_SHOWN] = bound  # what every action drawn below is bound to

    nav = st.columns([1, 3, 1], vertical_alignment="center")
    nav[0].button("Previous", key="rev_prev", icon=":material/chevron_left:", shortcut=SHORTCUTS["prev"],
                  disabled=pos == 0, on_click=_go, args=(order[max(pos - 1, 0)],))
    nav[2].button("Next", key="rev_next", icon=":material/chevron_right:", shortcut=SHORTCUTS["next"],
                  disabled=pos == len(order) - 1, on_click=_go, args=(order[min(pos + 1, len(order) - 1)],))
    if item.group is not None:
        title = f"Group #{item.group.id} · {escape_md(item.group.name)} · {item.group.status}"
    else:
        title = f"Image caption #{target.id} · {item.caption.status}"
    nav[1].markdown(f"**{title}**  \n{pos + 1} of {len(order)}")
    if left_queue:
        st.info(f"Group #{current} is no longer in the “{escape_md(st.session_state.get(K_QUEUE, ''))}” queue after "
                "your change; it stays here until you move on.", icon=":material/push_pin:")
    if item.group is not None and item.group.note:
        st.caption("Curator's note: " + escape_md(item.group.note))
    if item.group is not None and ctx.can("curate"):
        if st.button("Open in the group builder", key="rev_to_group", icon=":material/workspaces:", type="tertiary"):
            st.session_state[K_GROUP_BUILDER] = item.group.id
            switch_to("groups")
    rejection = item.last_rejection
    if kind == "image" and st.session_state.get(K_MODE) == MODES[2]:
        _why_queued(st.session_state.get(K_QUEUED, {}).get(current))
    if rejection is not None:
        who = escape_md(rejection.username or "model")
        st.warning(f"**Rejected** by {who} on {rejection.created_at:%Y-%m-%d %H:%M}: "
                   f"{escape_md(rejection.reason or 'no reason given')}", icon=":material/block:")
    _images(item)

    with st.container(border=True, key="rev_editor"):
        if item.caption is None:
            _no_caption(ctx, item)
        else:
            st.caption(f"caption #{item.caption.id} · {item.caption.status} · from {escape_md(item.caption.source)}")
        _editor(ctx, item, bound)
        _actions(ctx, item, bound, order)
    _history(item)


def _why_queued(q: caption_queue.QueuedCaption | None) -> None:
    if q is None:
        return
    parts = [f"Queued by captioner **{escape_md(q.model)}**", REASON_TEXT.get(q.reason, escape_md(q.reason))]
    if q.confidence is not None:
        parts.append(f"confidence {q.confidence:.3f}")
    if q.checker_codes:
        parts.append("checker: " + escape_md(", ".join(q.checker_codes)))
    st.info(" · ".join(parts), icon=":material/smart_toy:")


def _no_caption(ctx: PageContext, item: cap.ReviewItem) -> None:
    spec = cap.latest_captioner(ctx.ws)
    if spec is None:
        st.info("No captioner model is configured: write the caption yourself.")
        return
    st.button(f"Propose with {escape_md(spec.name)} v{spec.version}", key="rev_propose", icon=":material/auto_awesome:",
              on_click=_propose, args=(ctx, item.group.id))
