"""The filter page's prefetching image view: an st.components.v2 component (runs in the page's
own DOM, no iframe, no build step; its code is static/filter_prefetch.js).

Python sends the tasks leased to the signed-in annotator (`leases.next_tasks`: the shown one and
the next few) with their display-sized images as inline `data:` URIs; the browser shows the
first, and an accepted key press (after the dwell, keyed to the paint of the shown image) swaps
to the next prefetched image at once and queues the decision {seq, request id, image id,
answer}. The queue reaches Python as the component's state value `msg`, which also reruns the
page; the page records every decision newer than the last one applied for that browser tab
(`pending_ops` / `applied`: a rerun never applies one twice, and the store's request id refuses
a double label anyway), then acknowledges the highest applied number in the next render. A
refused decision comes back in `refused` and stays on screen; one the store could not save
(database down) is not acknowledged, and the browser sends it again.

Security: only images already leased to this user are sent; a decision is applied only for a
request id this session was sent, for the image it was sent with; no file paths or URLs leave
the server; user text (alt-text) goes as JSON data and the script writes it with textContent.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from relcurate.curation.catalog.browse import get_image
from relcurate.curation.labeling import leases
from relcurate.labeling_ui.images import data_uri, probe
from relcurate.labeling_ui.widgets import large_bytes

KEY = "filter_pf"  # the component's key: its state value (st.session_state[KEY]["msg"]) is the browser's queue
K_APPLIED = "filter_pf_applied"  # {tab id: highest seq applied}
K_REFUSED = "filter_pf_refused"  # [{tab, seq, image_id, message}], newest last
K_SENT = "filter_pf_sent"  # request id -> image id of every task sent to this session (recent ones)
K_FRONT = "filter_pf_front"  # image id to show first (the one just undone)
K_FRONT_REV = "filter_pf_front_rev"  # bumped when the browser must show the first task again
K_ERROR = "filter_pf_error"  # why the last save failed (the browser retries), or None
DEPTH_ENV = "RELCURATE_FILTER_PREFETCH"
DEFAULT_DEPTH = 4  # the shown image and three more: enough for a fast annotator between reruns
ANSWERS = ("yes", "no", "skip")
ALT_MAX = 300
_KEEP_SENT = 256
_KEEP_REFUSED = 20
_JS = (Path(__file__).parent / "static" / "filter_prefetch.js").read_text(encoding="utf-8")


def _noop() -> None:
    """A state callback, so that `msg` is a declared state of the component."""


_component = st.components.v2.component("relcurate_filter_prefetch", js=_JS, isolate_styles=False)


def prefetch_depth() -> int:
    """Tasks held and sent at once (env RELCURATE_FILTER_PREFETCH, default 4). 1 means no
    prefetch: every next image waits for the server (the round-trip baseline)."""
    try:
        depth = int(os.environ.get(DEPTH_ENV, "") or DEFAULT_DEPTH)
    except ValueError:
        depth = DEFAULT_DEPTH
    return max(1, min(depth, leases.MAX_PREFETCH))


@dataclass(frozen=True)
class Op:
    """One queued browser action: a decision on a shown task, or an undo of the last decision."""

    tab: str
    seq: int
    kind: str  # "decide" | "undo"
    request_id: str = ""
    image_id: int = 0
    answer: str = ""
    lead_ms: int | None = None


def _message() -> dict:
    state = st.session_state.get(KEY)
    msg = state.get("msg") if isinstance(state, dict) else None
    return msg if isinstance(msg, dict) else {}


def _parse(tab: str, raw: object) -> Op | None:
    """An outbox entry from the browser, or None when malformed (never trusted as is)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("seq"), int) or raw["seq"] < 1:
        return None
    if raw.get("op") == "undo":
        return Op(tab, raw["seq"], "undo")
    rid, image_id, answer, lead = raw.get("rid"), raw.get("image_id"), raw.get("answer"), raw.get("lead_ms")
    if raw.get("op") != "decide" or not isinstance(rid, str) or not 0 < len(rid) <= 64:
        return None
    if not isinstance(image_id, int) or answer not in ANSWERS:
        return None
    return Op(tab, raw["seq"], "decide", rid, image_id, answer, lead if isinstance(lead, int) else None)


def pending_ops() -> list[Op]:
    """The browser's queued actions not applied yet in this session, oldest first."""
    msg = _message()
    tab = msg.get("tab")
    if not isinstance(tab, str) or not 0 < len(tab) <= 64 or not isinstance(msg.get("outbox"), list):
        return []
    done = st.session_state.get(K_APPLIED, {}).get(tab, 0)
    ops = [op for op in (_parse(tab, raw) for raw in msg["outbox"][:200]) if op is not None and op.seq > done]
    return sorted(ops, key=lambda op: op.seq)


def applied(op: Op) -> None:
    """`op` is settled (recorded, or refused for good): never apply it again."""
    marks = st.session_state.setdefault(K_APPLIED, {})
    marks[op.tab] = max(marks.get(op.tab, 0), op.seq)
    while len(marks) > 8:  # old tabs of this session
        marks.pop(next(iter(marks)))


def refuse(op: Op, message: str) -> None:
    """Settle `op` as refused; the browser shows `message` with the image number."""
    refused = st.session_state.setdefault(K_REFUSED, [])
    refused.append({"tab": op.tab, "seq": op.seq, "image_id": op.image_id, "message": message})
    del refused[:-_KEEP_REFUSED]
    applied(op)


def was_sent(op: Op) -> bool:
    """The decision names a task this session sent, with the image it was sent with."""
    return st.session_state.get(K_SENT, {}).get(op.request_id) == op.image_id


def show_first(image_id: int | None) -> None:
    """Make the browser show this image now (after an undo leased it again)."""
    st.session_state[K_FRONT] = image_id
    st.session_state[K_FRONT_REV] = st.session_state.get(K_FRONT_REV, 0) + 1


def showing_request() -> str | None:
    """The request id the browser said it shows, as of its last message."""
    rid = _message().get("showing")
    return rid if isinstance(rid, str) else None


def ordered(tasks: list[leases.Task]) -> list[leases.Task]:
    """Tasks in showing order: the one just undone first, then the order they were leased."""
    front = st.session_state.get(K_FRONT)
    if front is not None and not any(t.image_id == front for t in tasks):
        st.session_state[K_FRONT] = front = None  # decided (or gone): back to the queue order
    return sorted(tasks, key=lambda t: t.image_id != front)


def _item(ws, task: leases.Task, full_side: int | None, have: set[str], origin: str = "") -> dict:
    full = full_side is not None
    card = get_image(ws, task.image_id)
    variant = "full" if full else "fit"
    item = {"rid": task.request_id, "image_id": task.image_id, "v": variant,
            "alt": " ".join(str(card.alt_text).split())[:ALT_MAX] if card is not None and card.alt_text else "",
            "origin": origin}
    data = large_bytes(card, full_side)
    if not data:
        return {**item, "missing": True}
    dims = probe(data)[1]
    item["w"], item["h"] = dims if dims else (None, None)
    if f"{task.request_id}|{variant}" not in have:  # the browser holds it already: not again
        item["src"] = data_uri(data)
    return item


def view(ws, tasks: list[leases.Task], *, dwell_ms: int, full: tuple[int, int] | None, can_undo: bool,
         origin=None) -> None:
    """Mount the component with these tasks (in showing order) and the acknowledgements;
    `full` = (image id, longest side) of the one image asked for at full resolution;
    `origin(request id)` = what queued it (strategy, model version), shown with that image (travels per
    item: the browser swaps images without a rerun, so a page caption would name the wrong one)."""
    msg = _message()
    tab = msg.get("tab") if isinstance(msg.get("tab"), str) else ""
    have = {h for h in msg.get("have", []) if isinstance(h, str)} if isinstance(msg.get("have"), list) else set()
    sent = st.session_state.setdefault(K_SENT, {})
    for task in tasks:
        sent[task.request_id] = task.image_id
    for rid in list(sent)[:-_KEEP_SENT]:
        del sent[rid]
    data = {
        "tab": tab,
        "ack": st.session_state.get(K_APPLIED, {}).get(tab, 0),
        "refused": [r for r in st.session_state.get(K_REFUSED, []) if r["tab"] == tab],
        "error": st.session_state.get(K_ERROR),
        "items": [_item(ws, t, full[1] if full and full[0] == t.image_id else None, have,
                        (origin(t.request_id) or "") if origin else "") for t in tasks],
        "front_rev": st.session_state.get(K_FRONT_REV, 0),
        "dwell_ms": dwell_ms,
        "empty": not tasks,
        "can_undo": can_undo,
    }
    _component(key=KEY, data=data, default={"msg": None}, on_msg_change=_noop)
