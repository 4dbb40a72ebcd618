"""Filter labeling, adjudication, labeling setup and the dashboard's labeling section through
streamlit.testing.v1.AppTest (in process, no browser), for every role.

One workspace per module; the queue runs in "sequential" order so the first task is known
(the image whose alt-text is a <script> tag). Tests that label use their own annotators.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from streamlit.testing.v1 import AppTest

from relcurate.models.protocols import FILTER_QUESTION
from relcurate import accounts
from relcurate.curation.catalog.browse import list_images
from relcurate.curation.labeling import agreement, guidelines, labels, leases
from relcurate.curation.intake import ingest_and_queue as ingest_source
from relcurate.labeling_ui import auth, registry
from relcurate.labeling_ui.pages_filter import K_RECENT, K_UNDO
from relcurate.labeling_ui.prefetch import prefetch_depth
from relcurate.labeling_ui.resources import WORKSPACE_ENV
from relcurate.workspace import Workspace
from relcurate.testing.apptest import as_displayed, component_protos, goto, prefetch_data, sign_in, titles, url_paths

APP = Path(__file__).resolve().parents[1] / "relcurate" / "labeling_ui" / "app.py"

SCRIPT_ALT = "<script>alert('x')</script> **bold**"
ROLES = {"ann": "annotator", "amy": "annotator", "abe": "annotator", "bob": "annotator", "rita": "reviewer",
         "cur": "curator", "boss": "admin"}


def _png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    PILImage.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def fws(tmp_path_factory) -> Workspace:
    tmp = tmp_path_factory.mktemp("filter_ui")
    ws = Workspace.init(tmp / "ws")
    for name, role in ROLES.items():
        accounts.create_user(ws.engine, name, f"{name}-password", role)
    ref = tmp / "ref"
    ref.mkdir()
    _png(ref / "beef.png", seed=1)  # ingested first: image id 1, the first sequential task
    (tmp / "ref.jsonl").write_text(json.dumps({"image_hash": "beef", "caption": SCRIPT_ALT}) + "\n")
    ingest_source(ws, tmp / "ref.jsonl", image_folder=ref, workers=1)
    folder = tmp / "photos"
    folder.mkdir()
    for i in range(12):
        _png(folder / f"p{i:02d}.png", seed=10 + i)
    ingest_source(ws, folder, workers=1)
    leases.set_config(ws.engine, strategy="sequential", overlap_k=2, overlap_fraction=1.0)
    leases.sync_pool(ws.engine, seed=0)
    yield ws
    ws.engine.dispose()


@pytest.fixture
def app(fws, monkeypatch) -> AppTest:
    monkeypatch.setenv(WORKSPACE_ENV, str(fws.root))
    monkeypatch.delenv(auth.IDLE_ENV, raising=False)
    return AppTest.from_file(str(APP), default_timeout=60).run()


def everything_text(at: AppTest) -> str:
    kinds = ("markdown", "caption", "title", "header", "subheader", "error", "info", "success", "warning")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def login(at: AppTest, username: str) -> AppTest:
    sign_in(at, username, f"{username}-password")
    assert not at.exception, at.exception
    return at


def uid(ws: Workspace, name: str) -> int:
    return next(u.id for u in accounts.list_users(ws.engine) if u.username == name)


def first_held(ws: Workspace, user_id: int) -> leases.Task:
    """The task the page shows first: the first of those it holds for the annotator."""
    return leases.next_tasks(ws.engine, user_id, prefetch_depth())[0]


def shown_request(at: AppTest) -> str:
    """The request id of the task on screen (the page records when it first showed it)."""
    (rid,) = at.session_state["filter_shown"].keys()
    return rid


def test_logged_out_cannot_reach_labeling_pages(app):
    for path in ("filter", "adjudicate", "label-setup"):
        goto(app, path)
        assert not app.exception
        assert titles(app) == ["relcurate"] and url_paths(app) == {"Sign in"}
        assert FILTER_QUESTION not in everything_text(app)


@pytest.mark.parametrize("name,allowed,refused", [
    ("ann", {"Filter labeling"}, {"Adjudication", "Labeling setup", "Users"}),
    ("rita", {"Filter labeling", "Adjudication"}, {"Labeling setup", "Users"}),
    ("cur", {"Filter labeling"}, {"Adjudication", "Labeling setup", "Users"}),
    ("boss", {"Filter labeling", "Adjudication", "Labeling setup", "Users"}, set()),
])
def test_role_gating(app, name, allowed, refused):
    login(app, name)
    pages = url_paths(app)
    assert allowed <= pages and not (refused & pages)
    # Typing the URL of any registered page the role may not use (admin, export, ...) shows nothing of it.
    role = ROLES[name]
    for spec in registry.PAGES:
        if accounts.can(role, spec.action):
            continue
        goto(app, spec.url_path)
        assert not app.exception and spec.title not in titles(app), spec.url_path
        assert not [b for b in app.button if str(b.key).startswith(("adjudicate_", "la_", "admin_"))]


def test_annotator_labels_with_buttons_and_undo(app, fws):
    ann = uid(fws, "ann")
    login(app, "ann")
    goto(app, "filter")
    assert not app.exception
    assert FILTER_QUESTION in everything_text(app)
    buttons = {b.key: b for b in app.button}
    # Keys go through the dwell-checking handler (static/filter_prefetch.js), never Streamlit
    # shortcuts, which would decide whatever image is on screen at the moment of the press.
    assert {k: buttons[f"filter_{k}"].proto.shortcut for k in ("yes", "no", "skip", "undo")} == dict.fromkeys(
        ("yes", "no", "skip", "undo"), "")
    assert [buttons[f"filter_{k}"].label for k in ("yes", "no", "skip")] == ["Yes (Y)", "No (N)", "Skip (S)"]
    assert buttons["filter_undo"].disabled
    (view,) = component_protos(app, "relcurate_filter_prefetch")
    assert "__rcFilterKeys" in view.js_content  # the key handler is installed with the view

    # The first task (sequential order) is the image with the hostile alt-text: sent as data and
    # written by the view with textContent (never parsed as markup), not into any markdown.
    first = first_held(fws, ann)
    assert first.image_id == 1 and shown_request(app) == first.request_id
    item = prefetch_data(app)["items"][0]
    assert item["image_id"] == 1 and item["alt"] == SCRIPT_ALT and item["src"].startswith("data:image/")
    assert "innerHTML" not in view.js_content and "insertAdjacentHTML" not in view.js_content
    assert "<script" not in everything_text(app)

    app.button(key="filter_yes").click().run()  # the same rerun shows the next image
    assert not app.exception
    cur = labels.current_label(fws.engine, 1, ann)
    assert cur.answer == "yes"
    event = labels.label_history(fws.engine, 1, ann)[-1]
    assert event.lead_time_ms is not None and event.lead_time_ms >= 0
    second = first_held(fws, ann)
    assert second.image_id == 2 and shown_request(app) == second.request_id
    assert app.session_state[K_UNDO] == [cur.label_id]
    assert not app.button(key="filter_undo").disabled

    app.button(key="filter_no").click().run()
    assert labels.current_label(fws.engine, 2, ann).answer == "no"
    app.button(key="filter_undo").click().run()  # takes back the "no" on image 2 ...
    assert labels.current_label(fws.engine, 2, ann) is None
    assert shown_request(app).split(":")[1] == str(second.assignment_id)  # ... and shows image 2 again
    app.button(key="filter_skip").click().run()
    assert labels.current_label(fws.engine, 2, ann).answer == "skip"
    assert labels.user_counts(fws.engine, ann) == {"yes": 1, "no": 0, "skip": 1}
    assert any("Mine: 1 yes" in c.value for c in app.caption)


def test_recent_answers_list_changes_one_answer_append_only(app, fws):
    accounts.create_user(fws.engine, "cleo", "cleo-password", "annotator")
    cleo = uid(fws, "cleo")
    login(app, "cleo")
    goto(app, "filter")
    decided = []
    for answer in ("yes", "no", "yes", "skip", "no", "yes"):
        decided.append(int(shown_request(app).split(":")[1]))
        app.button(key=f"filter_{answer}").click().run()
        assert not app.exception
    recent = app.session_state[K_RECENT]
    assert len(recent) == 5 and [r[1] for r in recent] == ["yes", "no", "skip", "yes", "no"]  # newest first
    image_id = recent[1][0]  # the "no" one before last
    assert f"filter_recent_{image_id}_no" not in {b.key for b in app.button}  # it is already "no"
    before = labels.label_history(fws.engine, image_id, cleo)
    app.button(key=f"filter_recent_{image_id}_yes").click().run()
    assert not app.exception
    assert labels.current_label(fws.engine, image_id, cleo).answer == "yes"
    after = labels.label_history(fws.engine, image_id, cleo)
    assert len(after) == len(before) + 1 and after[-1].supersedes_id == before[-1].id  # append-only
    assert app.session_state[K_RECENT][0][:2] == (image_id, "yes")
    assert any(f"Image {image_id}: answer changed to yes" in as_displayed(i.value) for i in app.info)
    shown = [c.value for c in app.caption if c.value.startswith(f"#{image_id} ")]
    assert shown and "**yes**" in shown[0]


def test_log_out_gives_the_prefetched_images_back(app, fws):
    from sqlmodel import select

    from relcurate.db.engine import read_scope
    from relcurate.db.models import TaskAssignment

    accounts.create_user(fws.engine, "lou", "lou-password", "annotator")
    lou = uid(fws, "lou")

    def held() -> int:
        with read_scope(fws.engine) as s:
            return len(s.exec(select(TaskAssignment).where(TaskAssignment.user_id == lou,
                                                           TaskAssignment.status == leases.LEASED)).all())

    login(app, "lou")
    goto(app, "filter")
    assert held() == prefetch_depth() > 1  # the shown image and the prefetched ones
    app.sidebar.button(key="logout").click().run()
    assert not app.exception and held() == 0


def test_empty_queue_says_so(app, fws):
    abe = uid(fws, "abe")
    while (t := leases.next_task(fws.engine, abe)) is not None:  # abe works through everything
        labels.record_label(fws.engine, image_id=t.image_id, user_id=abe, answer="no", request_id=t.request_id)
    login(app, "abe")
    goto(app, "filter")
    assert any("Nothing left to label" in s.value for s in app.success)
    assert app.button(key="filter_yes").disabled


def test_reviewer_adjudicates_a_disagreement(app, fws):
    amy, bob = uid(fws, "amy"), uid(fws, "bob")
    for user, answer in ((amy, "yes"), (bob, "no")):
        labels.record_label(fws.engine, image_id=5, user_id=user, answer=answer, request_id=f"adj-test-{user}")
    assert 5 in {d.image_id for d in agreement.disputes(fws.engine, limit=100)}
    login(app, "rita")
    goto(app, "adjudicate")
    assert not app.exception and titles(app) == ["Adjudication"]
    while f"image {5} ·" not in " ".join(c.value for c in app.caption):
        app.button(key="adjudicate_later").click().run()  # other tests' disputes come first
    votes = app.dataframe[0].value
    shown = dict(zip(votes["annotator"], votes["answer"]))
    assert shown["amy"] == "yes" and shown["bob"] == "no"  # (abe may have labelled it in another test)
    app.text_input(key="adjudicate_note").input("pattern is clear")
    app.button(key="adjudicate_no").click().run()
    assert not app.exception
    assert agreement.consensus(fws.engine, [5])[5].method == "adjudicated"
    assert agreement.consensus(fws.engine, [5])[5].answer == "no"
    assert agreement.adjudications(fws.engine, 5)[-1].note == "pattern is clear"
    assert 5 not in {d.image_id for d in agreement.disputes(fws.engine, limit=100)}


def test_admin_chooses_gold_and_example_images_from_thumbnails(app, fws):
    login(app, "boss")
    goto(app, "label-setup")
    app.text_input(key="la_gold_pick_text").input("p05").run()
    assert not app.exception
    [target] = [c.id for c in list_images(fws, text="p05")[0]]
    pick = [b for b in app.button if b.key and b.key.startswith("la_gold_pick_") and b.key[13:].isdigit()]
    assert [b.key for b in pick] == [f"la_gold_pick_{target}"]  # the search narrowed the thumbnails
    pick[0].click().run()
    assert app.number_input(key="la_gold_image").value == target
    assert any(f"chosen: #{target}" in c.value for c in app.caption)
    app.selectbox(key="la_gold_answer").set_value("yes")
    app.button(key="FormSubmitter:la_gold_form-Save").click().run()
    assert (target, "yes") in [(g.image_id, g.answer) for g in leases.list_gold(fws.engine)]
    # the example picker pages through every image
    app.button(key="la_ex_pick_next").click().run()
    assert any("page 2 of 2" in c.value for c in app.caption)
    chosen = next(b for b in app.button if b.key and b.key.startswith("la_ex_pick_") and b.key[11:].isdigit())
    chosen.click().run()
    app.button(key="FormSubmitter:la_example_form-Save").click().run()
    assert not app.exception
    assert int(chosen.key[11:]) in [e.image_id for e in guidelines.list_examples(fws.engine)]
    leases.remove_gold(fws.engine, target)
    guidelines.unpin_example(fws.engine, int(chosen.key[11:]))


def test_admin_sets_queue_gold_and_guidelines(app, fws):
    login(app, "boss")
    goto(app, "label-setup")
    assert not app.exception and titles(app) == ["Labeling setup"]
    app.slider(key="la_gold").set_value(0.05)
    app.selectbox(key="la_strategy").set_value("sequential")
    assert app.number_input(key="la_dwell").value == 200
    app.number_input(key="la_dwell").set_value(450)
    next(b for b in app.button if b.label == "Save settings").click().run()
    assert not app.exception and leases.get_config(fws.engine).gold_rate == pytest.approx(0.05)
    assert leases.min_dwell_ms(fws.engine) == 450
    goto(app, "filter")  # the admin labels too: the page hands the browser the new dwell
    assert prefetch_data(app)["dwell_ms"] == 450
    goto(app, "label-setup")

    app.number_input(key="la_ex_image").set_value(3)
    app.selectbox(key="la_ex_answer").set_value("yes")
    app.text_input(key="la_ex_note").input("a <b>visual</b> pun")
    app.button(key="FormSubmitter:la_example_form-Save").click().run()
    assert not app.exception
    assert [(e.image_id, e.answer) for e in guidelines.list_examples(fws.engine)] == [(3, "yes")]

    app.number_input(key="la_gold_image").set_value(13)
    app.selectbox(key="la_gold_answer").set_value("no")
    app.button(key="FormSubmitter:la_gold_form-Save").click().run()
    assert [(g.image_id, g.answer) for g in leases.list_gold(fws.engine)] == [(13, "no")]

    # Annotators see the pinned example (note escaped) in the guidelines panel.
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    login(at, "amy")
    goto(at, "filter")
    notes = [c.value for c in at.caption if "visual" in c.value]
    assert notes and "<b>" not in notes[0] and as_displayed(notes[0]) == "a <b>visual</b> pun"

    leases.remove_gold(fws.engine, 13)
    guidelines.unpin_example(fws.engine, 3)
    leases.set_config(fws.engine, gold_rate=0.0)


def test_dashboard_shows_labeling_charts(app, fws):
    login(app, "ann")
    assert titles(app) == ["Dashboard"]
    assert any(s.value == "Filter labeling" for s in app.subheader)
    metrics = {m.label: m.value for m in app.metric}
    assert "Decisions made" in metrics and "Krippendorff's α" in metrics


def test_queued_item_shows_strategy_and_model_to_staff_or_when_the_loop_says_so(fws, app, monkeypatch):
    from relcurate.testing.apptest import prefetch_data
    from relcurate.training import filter_loop

    def origins(at):  # travels with each prefetched image: the browser swaps without a rerun
        return [item.get("origin", "") for item in prefetch_data(at)["items"]]

    login(app, "boss")
    goto(app, "filter")
    assert origins(app) and all(o.startswith("sequential") for o in origins(app))  # admins always see it
    ann = AppTest.from_file(str(APP), default_timeout=60).run()
    login(ann, "ann")
    goto(ann, "filter")
    assert origins(ann) and not any(origins(ann))  # "positive" would tell an annotator the model's guess
    filter_loop.configure_loop(fws, show_origin=True)
    try:
        ann.run()
        assert origins(ann) and all(o.startswith("sequential") for o in origins(ann))
    finally:
        filter_loop.configure_loop(fws, show_origin=False)


def test_task_origin_never_reveals_gold(fws):
    from relcurate.training import filter_loop

    t = leases.Task(1, 1, "filter", leases.GOLD_STRATEGY, None, True, None, None)
    assert filter_loop.task_origin(fws, t) == "random"
