"""labeling_ui/widgets.py in AppTest: the one-shot flash, the image tile and the image card."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from relcurate.testing.apptest import as_displayed


def test_flash_is_shown_once_escaped_with_its_kind():
    def script():
        import streamlit as st

        from relcurate.labeling_ui.widgets import forget_drawn_flashes, set_flash, show_flash

        if st.session_state.get("step") is None:
            st.session_state["step"] = 1
            set_flash("k", "Bad **name** <b>x</b>", "error")
        show_flash("k")
        forget_drawn_flashes()  # as app.main does at the end of a run

    at = AppTest.from_function(script).run()
    assert [as_displayed(e.value) for e in at.error] == ["Bad **name** <b>x</b>"]  # literally, no markup
    at.run()
    assert not at.error  # shown once


def test_flash_survives_a_run_that_a_newer_rerun_replaced():
    """A second key or click while the page draws interrupts that run; the browser then shows only
    the newer run, which must draw the message again (in CI a "Saved" message never appeared)."""
    def script():
        import streamlit as st

        from relcurate.labeling_ui.widgets import forget_drawn_flashes, set_flash, show_flash

        if st.session_state.get("step") is None:
            st.session_state["step"] = 1
            set_flash("k", "Saved the caption.")
        show_flash("k")
        if not st.session_state.get("interrupted"):
            st.session_state["interrupted"] = True
            st.rerun()  # stands for the newer rerun: this run ends here, before forget_drawn_flashes
        forget_drawn_flashes()

    at = AppTest.from_function(script).run()
    assert [as_displayed(e.value) for e in at.success] == ["Saved the caption."]
    at.run()
    assert not at.success  # and still only once per finished run


def test_a_flash_set_after_it_was_drawn_waits_for_its_own_run():
    def script():
        import streamlit as st

        from relcurate.labeling_ui.widgets import forget_drawn_flashes, set_flash, show_flash

        step = st.session_state.get("step", 0)
        st.session_state["step"] = step + 1
        if step == 0:
            set_flash("k", "first")
        show_flash("k")
        if step == 0:
            set_flash("k", "second")  # e.g. a body action after the message was drawn
        forget_drawn_flashes()

    at = AppTest.from_function(script).run()
    assert [e.value for e in at.success] == ["first"]
    at.run()
    assert [e.value for e in at.success] == ["second"]
    at.run()
    assert not at.success


def test_tile_and_card_without_image_bytes(tmp_path):
    def script(thumb_dir: str):
        from pathlib import Path

        from relcurate.curation.catalog.browse import ImageCard
        from relcurate.labeling_ui.widgets import image_card, image_tile, label_of

        card = ImageCard(7, None, "quarantined", "file:///x/broken%20file.png", None, None, None,
                         Path(thumb_dir) / "none.jpg", None, "truncated")
        image_tile(card, label_of(card), prefix="#7 · ", with_reason=True)
        assert image_card(card, missing="nothing to show") is False

    at = AppTest.from_function(script, args=(str(tmp_path),)).run()
    assert not at.exception, at.exception
    assert [as_displayed(c.value) for c in at.caption] == ["[quarantined: truncated]", "#7 · broken%20file.png"]
    assert [i.value for i in at.info] == ["nothing to show"]
    assert at.get("imgs") == [] and not at.html
