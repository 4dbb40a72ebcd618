"""Labeling setup (admins): queue settings, the pool, gold questions and guideline examples."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from relcurate.curation.labeling import guidelines, leases
from relcurate.curation.catalog.browse import get_image
from relcurate.curation.labeling.task_order import strategy_names
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.registry import PageContext
from relcurate.labeling_ui.widgets import image_picker, image_tile, set_flash, show_flash

K_FLASH = "label_admin_flash"


def _done(message: str) -> None:
    set_flash(K_FLASH, message)
    st.rerun()


def _settings(ctx: PageContext) -> None:
    cfg = leases.get_config(ctx.ws.engine)
    names = strategy_names()
    with st.form("label_admin_queue"):
        st.markdown("**Queue settings**")
        c = st.columns(2)
        k = c[0].number_input("Annotators per overlap image (k)", 1, 50, int(cfg.overlap_k), key="la_k")
        frac = c[1].slider("Overlap fraction", 0.0, 1.0, float(cfg.overlap_fraction), 0.01, key="la_frac",
                           help="Share of images labelled by k annotators, for agreement figures")
        gold = c[0].slider("Gold rate", 0.0, 0.5, float(min(cfg.gold_rate, 0.5)), 0.01, key="la_gold",
                           help="Chance that the next task is a gold question with a known answer")
        lease = c[1].number_input("Lease (minutes)", 1, 24 * 60, max(1, cfg.lease_seconds // 60), key="la_lease")
        strategy = c[0].selectbox("Task order", names, index=names.index(cfg.strategy) if cfg.strategy in names else 0,
                                  key="la_strategy")
        dwell = c[1].number_input("Minimum dwell (ms)", 0, leases.MAX_DWELL_MS, leases.min_dwell_ms(ctx.ws.engine), step=50,
                                  key="la_dwell", help="How long an image must be on screen before a key counts "
                                                       "(stray presses on an image nobody saw are refused)")
        if st.form_submit_button("Save settings", type="primary"):
            try:
                leases.set_config(ctx.ws.engine, overlap_k=int(k), overlap_fraction=float(frac),
                                 gold_rate=float(gold), lease_seconds=int(lease) * 60, strategy=strategy,
                                 min_dwell_ms=int(dwell), user_id=ctx.user.id)
            except leases.QueueError as exc:
                st.error(escape_md(exc))
                return
            _done("Queue settings saved.")


def _pool(ctx: PageContext) -> None:
    st.markdown("**Pool**")
    sizes = leases.queue_sizes(ctx.ws.engine)
    st.dataframe(pd.DataFrame(list(sizes.items()), columns=["measure", "count"]), hide_index=True)
    if st.button("Sync pool (full)", key="la_sync", help="Add images that became usable since they were ingested"):
        n = leases.sync_pool(ctx.ws.engine, full=True)
        _done(f"Pool synchronised: {n} image{'s' if n != 1 else ''} added.")


def _choose_image(ctx: PageContext, prefix: str) -> None:
    """Pick the image from thumbnails (fills the form's image id) and show the chosen one."""
    with st.expander("Choose an image", expanded=True):
        image_picker(ctx.ws, prefix, f"{prefix}_image")
    chosen = st.session_state.get(f"{prefix}_image")
    if chosen:
        card = get_image(ctx.ws, int(chosen))
        c = st.columns([1, 5])
        with c[0]:
            image_tile(card, None, prefix=f"chosen: #{int(chosen)}")


def _image_picker(prefix: str) -> tuple[int, str, str, bool]:
    c = st.columns([1, 1, 2])
    image_id = c[0].number_input("Image id", min_value=1, step=1, key=f"{prefix}_image",
                                 help="Filled in when you choose an image above")
    answer = c[1].selectbox("Answer", ["yes", "no"], key=f"{prefix}_answer")
    note = c[2].text_input("Note", key=f"{prefix}_note", max_chars=guidelines.MAX_NOTE)
    return int(image_id), answer, note, st.form_submit_button("Save", type="primary")


def _gold(ctx: PageContext) -> None:
    st.markdown("**Gold questions** (known answers, mixed into queues at the gold rate)")
    _choose_image(ctx, "la_gold")
    with st.form("la_gold_form", clear_on_submit=True):
        image_id, answer, note, ok = _image_picker("la_gold")
    if ok:
        try:
            leases.set_gold(ctx.ws.engine, image_id, answer, user_id=ctx.user.id, note=note or None)
        except (leases.QueueError, ValueError) as exc:
            st.error(escape_md(exc))
        else:
            _done(f"Image {image_id} is a gold question ({answer}).")
    gold = leases.list_gold(ctx.ws.engine)
    if gold:
        st.dataframe(pd.DataFrame([{"image": g.image_id, "answer": g.answer, "note": g.note or ""} for g in gold]),
                     hide_index=True)
        c = st.columns([1, 1])
        target = c[0].selectbox("Remove gold question", [g.image_id for g in gold], key="la_gold_remove")
        if c[1].button("Remove", key="la_gold_remove_btn"):
            leases.remove_gold(ctx.ws.engine, int(target))
            _done(f"Image {target} is no longer a gold question.")


def _examples(ctx: PageContext) -> None:
    st.markdown("**Guideline examples** (shown to annotators as clear Yes / clear No)")
    _choose_image(ctx, "la_ex")
    with st.form("la_example_form", clear_on_submit=True):
        image_id, answer, note, ok = _image_picker("la_ex")
    if ok:
        try:
            guidelines.pin_example(ctx.ws.engine, image_id, answer, user_id=ctx.user.id, note=note)
        except (guidelines.GuidelineError, ValueError) as exc:
            st.error(escape_md(exc))
        else:
            _done(f"Image {image_id} pinned as a clear {answer}.")
    examples = guidelines.list_examples(ctx.ws.engine)
    cols = st.columns(6)
    for i, ex in enumerate(examples):
        with cols[i % 6]:
            image_tile(get_image(ctx.ws, ex.image_id), f"#{ex.image_id} clear {ex.answer}"
                       + (f": {ex.note}" if ex.note else ""), max_len=120)
            if st.button("Unpin", key=f"la_unpin_{ex.image_id}", type="tertiary"):
                guidelines.unpin_example(ctx.ws.engine, ex.image_id)
                _done(f"Image {ex.image_id} unpinned.")


def render(ctx: PageContext) -> None:
    st.title("Labeling setup")
    show_flash(K_FLASH)
    left, right = st.columns(2, gap="large")
    with left:
        _settings(ctx)
    with right:
        _pool(ctx)
    _gold(ctx)
    _examples(ctx)
