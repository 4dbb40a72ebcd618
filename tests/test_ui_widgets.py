"""labeling_ui/widgets.py in AppTest: the one-shot flash, the image tile and the image card."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from relcurate.testing.apptest import as_displayed


def test_flash_is_shown_once_escaped_with_its_kind():
    def script():
        import streamlit as st

        from relcurate.labeling_ui.widgets import set_flash, show_flash

        if st.session_state.get("step") is None:
            st.session_state["step"] = 1
            set_flash("k", "Bad **name** <b>x</b>", "error")
        show_flash("k")

    at = AppTest.from_function(script).run()
    assert [as_displayed(e.value) for e in at.error] == ["Bad **name** <b>x</b>"]  # literally, no markup
    at.run()
    assert not at.error  # shown once


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
