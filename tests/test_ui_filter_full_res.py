"""Filter page (AppTest): an image larger than the display rendition offers full resolution,
for that image only; the default is the 1280-px rendition."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from relcurate import accounts
from relcurate.curation.intake import ingest_and_queue
from relcurate.labeling_ui import auth
from relcurate.labeling_ui.resources import WORKSPACE_ENV
from relcurate.testing.apptest import sign_in, goto, prefetch_data
from relcurate.testing.images import make_jpeg_folder
from relcurate.workspace import Workspace

APP = Path(__file__).resolve().parents[1] / "relcurate" / "labeling_ui" / "app.py"


def _shown_width(at: AppTest) -> int:
    """Pixel width of the first (shown) image the page sent its prefetching view."""
    item = prefetch_data(at)["items"][0]
    assert item["src"].startswith("data:image/jpeg;base64,")
    return item["w"]


def test_full_resolution_on_request(tmp_path, monkeypatch):
    ws = Workspace.init(tmp_path / "ws")
    accounts.create_user(ws.engine, "ann", "ann-password-1", "annotator")
    ingest_and_queue(ws, make_jpeg_folder(tmp_path / "src", 2, size=(2000, 1500))[0].parent, workers=1)
    monkeypatch.setenv(WORKSPACE_ENV, str(ws.root))
    monkeypatch.delenv(auth.IDLE_ENV, raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    sign_in(at, "ann", "ann-password-1")
    goto(at, "filter")
    assert not at.exception
    assert _shown_width(at) == 1280  # the display rendition, sharp at the shown size
    assert at.button(key="filter_full").label == "Full resolution (2000x1500)"
    at.button(key="filter_full").click().run()
    assert _shown_width(at) == 2000 and at.button(key="filter_full").label == "Fit rendition"
    at.button(key="filter_yes").click().run()  # the next image starts at the rendition again
    assert _shown_width(at) == 1280
    ws.engine.dispose()
