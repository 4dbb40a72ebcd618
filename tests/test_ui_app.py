"""The Streamlit app through streamlit.testing.v1.AppTest (in-process, no browser): sign-in,
role-gated navigation, escaping of user text, admin actions and session expiry.

One workspace per module (read-mostly); each test starts its own AppTest session. Tests that
change data use their own usernames so the order of tests does not matter.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from streamlit.testing.v1 import AppTest

from relcurate import accounts
from relcurate.curation.catalog.browse import list_images
from relcurate.curation.intake import ingest_and_queue as ingest_source
from relcurate.labeling_ui import auth, registry
from relcurate.labeling_ui.resources import WORKSPACE_ENV
from relcurate.workspace import Workspace
from relcurate.testing.apptest import as_displayed, goto, sign_in, titles, url_paths

APP = Path(__file__).resolve().parents[1] / "relcurate" / "labeling_ui" / "app.py"
SCRIPT_ALT = "<script>alert(1)</script>"
BAD_NAME = "<img src=x onerror=alert(2)>.png"
PASSWORDS = {"ann": "annotator-pw", "boss": "admin-pw-123", "locky": "locky-pw-123", "gone": "gone-pw-123"}


def _png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    PILImage.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def ui_ws(tmp_path_factory) -> Workspace:
    tmp = tmp_path_factory.mktemp("ui")
    ws = Workspace.init(tmp / "ws")
    for name, pw in PASSWORDS.items():
        accounts.create_user(ws.engine, name, pw, "admin" if name == "boss" else "annotator")
    folder = tmp / "photos"
    folder.mkdir()
    for i in range(3):
        _png(folder / f"photo_{i}.png", seed=i)
    (folder / BAD_NAME).write_bytes(b"this is not an image")  # quarantined, name is hostile HTML
    ingest_source(ws, folder, workers=1)
    # A reference-format JSONL gives an image with alt-text.
    ref = tmp / "ref"
    ref.mkdir()
    _png(ref / "f00d.png", seed=99)
    (tmp / "ref.jsonl").write_text(json.dumps({"image_hash": "f00d", "caption": SCRIPT_ALT}) + "\n")
    ingest_source(ws, tmp / "ref.jsonl", image_folder=ref, workers=1)
    yield ws
    ws.engine.dispose()


@pytest.fixture
def app(ui_ws, monkeypatch) -> AppTest:
    monkeypatch.setenv(WORKSPACE_ENV, str(ui_ws.root))
    monkeypatch.delenv(auth.IDLE_ENV, raising=False)
    return AppTest.from_file(str(APP), default_timeout=30).run()


def login(at: AppTest, username: str, password: str | None = None) -> AppTest:
    return sign_in(at, username, PASSWORDS.get(username, "") if password is None else password)


def everything_text(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "title", "header", "subheader", "error", "info", "success")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_logged_out_sees_only_the_login_page(app):
    assert not app.exception
    assert titles(app) == ["relcurate"]
    assert url_paths(app) == {"Sign in"}
    assert not app.sidebar.button  # no logout, no navigation
    for path in ("dashboard", "browse", "users"):  # typing a URL leads back to the sign-in form
        goto(app, path)
        assert not app.exception
        assert titles(app) == ["relcurate"] and app.text_input(key="login_password")


@pytest.mark.parametrize("username,password", [("ann", "wrong-password"), ("nobody", "whatever-pw")])
def test_wrong_password_or_unknown_user_rejected_with_one_generic_message(app, username, password):
    login(app, username, password)
    assert not app.exception
    assert [e.value for e in app.error] == [auth.GENERIC_FAILURE]
    assert titles(app) == ["relcurate"]
    assert auth.SESSION_KEY not in app.session_state


def test_repeated_failures_lock_the_username_even_for_the_right_password(app):
    for _ in range(auth.MAX_FAILURES):
        login(app, "locky", "not-the-password")
    login(app, "locky")  # correct password, but locked now
    assert "Too many failed attempts" in app.error[0].value
    assert auth.SESSION_KEY not in app.session_state


def test_annotator_gets_dashboard_and_browse_but_no_admin(app, ui_ws):
    login(app, "ann")
    assert not app.exception
    assert titles(app) == ["Dashboard"]
    pages = url_paths(app)
    assert {"Dashboard", "Browse images", "Quarantine"} <= pages and "Users" not in pages
    assert "ann" in app.sidebar.markdown[0].value and "annotator" in app.sidebar.markdown[0].value
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["OK"] == "4" and metrics["Quarantined"] == "1"

    goto(app, "browse")
    assert titles(app) == ["Browse images"]

    goto(app, "users")  # direct navigation to the admin page
    assert not app.exception
    assert "Users" not in titles(app)
    assert not [w for w in app.text_input if str(w.key).startswith("admin_")]
    assert not any("Add a user" in str(m.value) for m in app.markdown)
    assert "boss" not in everything_text(app)  # nothing from the user list leaks


def test_admin_adds_changes_and_disables_a_user(app, ui_ws):
    login(app, "boss")
    assert "Users" in url_paths(app)
    goto(app, "users")
    assert not app.exception and titles(app) == ["Users"]
    assert "ann" in set(app.dataframe[0].value["username"])

    app.text_input(key="admin_new_username").input("carol")
    app.selectbox(key="admin_new_role").set_value("reviewer")
    app.text_input(key="admin_new_password").input("carol-pw-123")
    app.text_input(key="admin_new_password2").input("carol-pw-123")
    next(b for b in app.button if b.label == "Add user").click().run()
    assert not app.exception
    assert "Added carol as reviewer" in app.success[0].value.replace("\\", "")
    assert accounts.authenticate(ui_ws.engine, "carol", "carol-pw-123").role == "reviewer"
    assert "carol" in set(app.dataframe[0].value["username"])

    # Change role, then disable.
    app.selectbox(key="admin_target").set_value("carol").run()
    carol = next(u for u in accounts.list_users(ui_ws.engine) if u.username == "carol")
    app.selectbox(key=f"admin_role_{carol.id}").set_value("curator")
    app.toggle(key=f"admin_active_{carol.id}").set_value(False)
    app.button(key="admin_apply").click().run()
    assert not app.exception and not app.error
    assert accounts.authenticate(ui_ws.engine, "carol", "carol-pw-123") is None  # disabled
    carol = next(u for u in accounts.list_users(ui_ws.engine) if u.username == "carol")
    assert carol.role == "curator" and not carol.active


def test_admin_cannot_remove_own_admin_access(app, ui_ws):
    login(app, "boss")
    goto(app, "users")
    app.selectbox(key="admin_target").set_value("boss").run()
    boss = next(u for u in accounts.list_users(ui_ws.engine) if u.username == "boss")
    app.selectbox(key=f"admin_role_{boss.id}").set_value("annotator")
    app.button(key="admin_apply").click().run()
    assert "cannot remove your own admin access" in app.error[0].value
    assert next(u for u in accounts.list_users(ui_ws.engine) if u.username == "boss").role == "admin"


def test_script_alt_text_is_shown_as_text_not_markup(app, ui_ws):
    login(app, "ann")
    goto(app, "browse")
    captions = [c.value for c in app.caption]
    hit = [c for c in captions if "script" in c]
    assert hit, captions
    for c in hit:
        assert "<" not in c and as_displayed(c) == SCRIPT_ALT

    # Open it: the large view shows the alt-text (escaped) and the sources.
    (card,), _ = list_images(ui_ws, text="alert(1)")
    assert card.alt_text == SCRIPT_ALT
    app.button(key=f"browse_open_{card.id}").click().run()
    assert not app.exception
    alt_md = next(m.value for m in app.markdown if m.value.startswith("**Alt-text:**"))
    assert "<script" not in alt_md and "&lt;script&gt;" in alt_md
    assert "relsim-hash:f00d" in set(app.dataframe[-1].value["source"])
    assert "<script" not in everything_text(app)


def test_browse_filters_by_status_and_text(app):
    login(app, "ann")
    goto(app, "browse")
    app.selectbox(key="browse_status").set_value("quarantined").run()
    assert "· 1 image" in " ".join(c.value for c in app.caption)
    shown = [c.value for c in app.caption if "onerror" in c.value]
    assert shown and all("<" not in c for c in shown)  # no raw HTML reaches the markdown renderer
    assert BAD_NAME in {as_displayed(c) for c in shown}  # the hostile file name shows as typed
    app.selectbox(key="browse_status").set_value("ok").run()
    app.text_input(key="browse_text").input("photo_1").run()
    assert "· 1 image" in " ".join(c.value for c in app.caption)
    app.text_input(key="browse_text").input("no such thing").run()
    assert app.info[0].value == "No images match."


def test_quarantine_page_lists_the_bad_file_in_a_dataframe(app):
    login(app, "ann")
    goto(app, "quarantine")
    assert titles(app) == ["Quarantine"]
    table = app.dataframe[0].value
    assert list(table.columns) == ["where", "reason", "detail"]
    assert table["where"].str.endswith(BAD_NAME).any()


def test_every_registered_page_renders_for_admin(app):
    login(app, "boss")
    for spec in registry.PAGES:
        goto(app, spec.url_path)
        assert not app.exception, (spec.url_path, app.exception)
        assert titles(app) == [spec.title]


def test_idle_session_expires_back_to_login(app):
    login(app, "ann")
    assert titles(app) == ["Dashboard"]
    entry = dict(app.session_state[auth.SESSION_KEY])
    entry["last_seen"] = time.time() - auth.DEFAULT_IDLE_HOURS * 3600 - 60
    app.session_state[auth.SESSION_KEY] = entry
    app.run()
    assert titles(app) == ["relcurate"]
    assert "expired" in app.info[0].value


def test_configured_idle_timeout_is_used(app, monkeypatch):
    monkeypatch.setenv(auth.IDLE_ENV, "0.5")
    login(app, "ann")
    entry = dict(app.session_state[auth.SESSION_KEY])
    entry["last_seen"] = time.time() - 40 * 60  # 40 min idle > 30 min configured
    app.session_state[auth.SESSION_KEY] = entry
    app.run()
    assert titles(app) == ["relcurate"]


def test_disabled_account_is_signed_out_at_the_next_click(app, ui_ws):
    login(app, "gone")
    assert titles(app) == ["Dashboard"]
    accounts.set_active(ui_ws.engine, "gone", False)
    try:
        app.run()
        assert titles(app) == ["relcurate"]
        assert "not active" in app.info[0].value
    finally:
        accounts.set_active(ui_ws.engine, "gone", True)


def test_logout_button(app):
    login(app, "ann")
    app.sidebar.button(key="logout").click().run()
    assert titles(app) == ["relcurate"]
    assert auth.SESSION_KEY not in app.session_state


def test_annotators_see_no_server_paths_and_only_their_own_figures(app, ui_ws):
    from relcurate.curation.catalog.redact import redact_location, redact_paths_in

    assert redact_location("/srv/in/captions.jsonl:12") == "captions.jsonl:12"
    assert redact_location("file:///srv/x/p.png") == "p.png"
    assert redact_location("https://example.org/a.png") == "https://example.org/a.png"
    assert redact_paths_in("cannot read /srv/in/a.png: truncated") == "cannot read a.png: truncated"
    login(app, "ann")
    assert not any("workspace:" in str(c.value) for c in app.sidebar.caption)
    text = everything_text(app)
    assert str(ui_ws.root) not in text
    goto(app, "quarantine")
    assert not app.exception
    shown = " ".join(str(v) for df in app.dataframe for v in df.value.to_numpy().ravel())
    assert shown and str(ui_ws.root.parent) not in shown  # the bad file is listed by its name only
