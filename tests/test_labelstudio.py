"""Label Studio as a second front end, against a real Label Studio server (one per session,
relcurate.testing.labelstudio). Annotations are made through Label Studio's REST API."""
from __future__ import annotations

import hashlib
import http.server
import json
import logging
import threading

import httpx
import pytest
from sqlmodel import select

from relcurate.curation.labeling import agreement, labels, leases
from relcurate.curation.labelstudio import mapping, projects
from relcurate.curation.labelstudio.connection import LabelStudioError, LSClient, LSConfig, load_config, save_config
from relcurate.curation.labelstudio.pull import pull
from relcurate.curation.labelstudio.push import push_filter
from relcurate.curation.labelstudio.server import free_port
from relcurate.curation.labelstudio.webhooks import SECRET_HEADER, WebhookReceiver, register_webhook
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import FilterLabel, LSTask, ModelKind, Prediction
from relcurate.models.registry import register_model
from relcurate.testing.labeling import add_image_rows, add_users
from relcurate.workspace import Workspace


def _choice(answer: str) -> list[dict]:
    return [{"from_name": "answer", "to_name": "image", "type": "choices", "value": {"choices": [answer]}}]


def _annotate(client: LSClient, task_id: int, answer: str, user_id: int, lead: float = 2.5) -> int:
    return client.post(f"/api/tasks/{task_id}/annotations/",
                       {"result": _choice(answer), "lead_time": lead, "completed_by": user_id})["id"]


def _ls_user(client: LSClient, email: str) -> int:
    for uid, e in client.users().items():
        if e == email:
            return uid
    return client.post("/api/users/", {"email": email, "username": email.split("@")[0]})["id"]


def _store_counts(ws: Workspace) -> tuple[int, int]:
    with read_scope(ws.engine) as s:
        return (len(list(s.exec(select(FilterLabel.id)))), len(list(s.exec(select(LSTask.id)))))


@pytest.fixture
def ls_ws(ls_server, db_url):
    """A workspace under the Label Studio document root, connected to the session's server,
    with 51 pooled images (one of them gold) and filter predictions for all."""
    ws = Workspace.init(ls_server.new_root() / "ws", db_url=db_url)
    save_config(ws, LSConfig(ls_server.url, ls_server.token, document_root=str(ls_server.document_root)))
    ids = add_image_rows(ws.engine, 51)
    leases.set_config(ws.engine, strategy="sequential", overlap_fraction=0.0)
    leases.set_gold(ws.engine, ids[0], "yes")
    leases.sync_pool(ws.engine)
    mv = register_model(ws, kind=ModelKind.filter, name="filt", base_model="tiny")
    # P(Yes) spread over (0, 1); image ids[37] is the most uncertain (0.5 exactly).
    p = {i: round(0.02 + 0.96 * ((k * 7) % 60) / 59, 4) for k, i in enumerate(ids)}
    p[ids[37]] = 0.5
    with session_scope(ws.engine) as s:
        s.add_all([Prediction(model_version_id=mv.id, image_id=i, score=v) for i, v in p.items()])
    yield ws, ids, p, mv
    ws.engine.dispose()


def test_push_next_annotate_pull_agreement_idempotent(ls_server, ls_ws):
    ws, ids, p, mv = ls_ws
    client = LSClient.from_workspace(ws)
    res = push_filter(ws, client, batch=20)
    assert (res.pushed, res.already, res.model_version, res.problems) == (50, 0, "filt:1", [])
    info = client.get(f"/api/projects/{res.project_id}")
    assert (info["maximum_annotations"], info["overlap_cohort_percentage"]) == (2, 0)  # the queue's overlap
    assert info["label_config"] == projects.filter_label_config() and info["model_version"] == "filt:1"
    tmap = mapping.task_map(ws, projects.project_record(ws, client.url, "filter").id)
    pushed = sorted(t.image_id for t in tmap.values())
    assert pushed == ids[1:51]  # the queue's order (sequential), gold image excluded
    # Uncertainty sampling: Label Studio serves the lowest-score (least confident) task first.
    nxt = client.get(f"/api/projects/{res.project_id}/next")
    assert tmap[nxt["id"]].image_id == ids[37]
    assert nxt["data"]["p_yes"] == 0.5 and nxt["predictions"][0]["score"] == 0.5
    task_of = {t.image_id: tid for tid, t in tmap.items()}

    # Two annotators; the second is mapped to an existing relcurate account.
    bob_rc = add_users(ws.engine, ["bob"])["bob"]
    admin_ls, bob_ls = _ls_user(client, "admin@example.com"), _ls_user(client, "bob@example.com")
    mapping.map_user(ws, client.url, "bob@example.com", "bob")
    first = ids[1:11]
    ann = {}
    for k, image_id in enumerate(first):
        ann[("admin", image_id)] = _annotate(client, task_of[image_id], "Yes" if k < 6 else "No", admin_ls)
        ann[("bob", image_id)] = _annotate(client, task_of[image_id], "Yes" if k < 4 or k == 9 else "No", bob_ls)
    out = pull(ws, client)
    assert (out.new, out.updated, out.deleted, out.problems) == (20, 0, 0, [])
    with read_scope(ws.engine) as s:
        events = list(s.exec(select(FilterLabel).where(FilterLabel.source == "label-studio")))
    assert len(events) == 20 and {e.lead_time_ms for e in events} == {2500}
    assert {e.model_version_id for e in events} == {mv.id}
    assert labels.current_labels(ws.engine, first[0]) == {"bob": "yes", "ls:admin@example.com": "yes"}
    rep = agreement.agreement_report(ws.engine)
    (pair,) = rep.pairs
    assert pair.n == 10 and pair.observed == pytest.approx(0.7)  # disagree on k = 4, 5, 9
    assert agreement.count_disputes(ws.engine) == 3

    # Re-push and re-pull change nothing.
    before = _store_counts(ws)
    again = push_filter(ws, client)
    assert (again.pushed, again.already) == (0, 50)
    out = pull(ws, client)
    assert (out.changed, out.unchanged) == (0, 20)
    assert _store_counts(ws) == before

    # An update is a new event superseding the old; a deletion is an undo event.
    client.patch(f"/api/annotations/{ann[('bob', first[4])]}/", {"result": _choice("Yes")})
    client.delete(f"/api/annotations/{ann[('bob', first[9])]}/")
    out = pull(ws, client)
    assert (out.new, out.updated, out.deleted) == (0, 1, 1)
    hist = labels.label_history(ws.engine, first[4], bob_rc)
    assert [h.answer for h in hist] == ["no", "yes"] and hist[1].supersedes_id == hist[0].id
    hist = labels.label_history(ws.engine, first[9], bob_rc)
    assert [h.answer for h in hist] == ["yes", "retract"]
    assert labels.current_label(ws.engine, first[9], bob_rc) is None
    assert agreement.count_disputes(ws.engine) == 1
    assert pull(ws, client).changed == 0

    # An annotation on a task relcurate never pushed: a clear message, nothing else changes.
    before = _store_counts(ws)
    stray = client.post(f"/api/projects/{res.project_id}/import", [{"data": {"image": "/x.png"}}],
                        return_task_ids="true")["task_ids"][0]
    _annotate(client, stray, "Yes", admin_ls)
    # A deleted task: reported, its labels kept, never pushed again.
    client.delete(f"/api/tasks/{task_of[first[0]]}/")
    out = pull(ws, client)
    assert out.changed == 0 and out.deleted_tasks == 1
    assert any(f"task {stray}" in m and "unknown to relcurate" in m for m in out.problems)
    assert any(f"task {task_of[first[0]]}" in m and "deleted in Label Studio" in m for m in out.problems)
    assert _store_counts(ws) == before
    assert labels.current_labels(ws.engine, first[0]) == {"bob": "yes", "ls:admin@example.com": "yes"}
    assert push_filter(ws, client).pushed == 0


def test_hand_edited_label_config_is_refused(ls_server, ls_ws):
    ws, ids, p, mv = ls_ws
    client = LSClient.from_workspace(ws)
    res = push_filter(ws, client, limit=5)
    edited = projects.filter_label_config().replace('value="No"', 'value="Nope"')
    client.patch(f"/api/projects/{res.project_id}", {"label_config": edited})
    before = _store_counts(ws)
    for call in (lambda: push_filter(ws, client, limit=10), lambda: pull(ws, client)):
        with pytest.raises(LabelStudioError, match="edited by hand"):
            call()
    assert _store_counts(ws) == before
    assert push_filter(ws, client, limit=10, restore_config=True).pushed == 10


def test_webhook_ingested_and_secret_checked(ls_server, ls_ws):
    ws, ids, p, mv = ls_ws
    if ws.engine.dialect.name != "sqlite":
        pytest.skip("one back end is enough for the webhook path (same Ingestor as pull)")
    client = LSClient.from_workspace(ws)
    res = push_filter(ws, client, limit=5)
    port = free_port()
    register_webhook(ws, client, f"http://127.0.0.1:{port}/")
    secret = load_config(ws).webhook_secret
    receiver = WebhookReceiver(ws, LSClient.from_workspace(ws), secret, port=port)
    receiver.start()
    try:
        tmap = mapping.task_map(ws, projects.project_record(ws, client.url, "filter").id)
        tid = next(iter(tmap))
        admin_ls = _ls_user(client, "admin@example.com")
        ann_id = _annotate(client, tid, "No", admin_ls, lead=1.25)
        assert receiver.wait_idle(20) and receiver.stats.ingested.new == 1
        (event,) = labels.label_history(ws.engine, tmap[tid].image_id)
        assert (event.answer, event.source, event.lead_time_ms) == ("no", "label-studio", 1250)
        # The next pull finds nothing new: the webhook already ingested it.
        assert pull(ws, client).changed == 0
        client.delete(f"/api/annotations/{ann_id}/")
        assert receiver.wait_idle(20) and receiver.stats.ingested.deleted == 1
        # Without the secret (or with a wrong one) nothing is ingested.
        before = _store_counts(ws)
        body = json.dumps({"action": "ANNOTATION_CREATED", "project": {"id": res.project_id},
                           "annotation": {"id": 999999, "task": tid, "completed_by": admin_ls,
                                          "result": _choice("Yes")}})
        for headers in ({}, {SECRET_HEADER: "wrong"}):
            r = httpx.post(receiver.url, content=body, headers=headers)
            assert r.status_code == 403
        assert receiver.stats.refused == 2 and _store_counts(ws) == before
    finally:
        receiver.stop()


class _NotLS(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_bad_connections_are_clear_and_never_show_the_token(ls_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-token-value-never-shown"
    with pytest.raises(LabelStudioError, match="refused the token") as exc:
        LSClient(ls_server.url, secret).check()
    assert secret not in str(exc.value)
    with pytest.raises(LabelStudioError, match="not reachable"):
        LSClient(f"http://127.0.0.1:{free_port()}", secret).check()
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotLS)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        with pytest.raises(LabelStudioError, match="does not look like a Label Studio server"):
            LSClient(f"http://127.0.0.1:{other.server_address[1]}", secret).check()
    finally:
        other.shutdown()
    with pytest.raises(LabelStudioError, match="not a Label Studio URL"):
        LSClient("ftp://example", secret)
    assert secret not in caplog.text
    assert secret not in repr(LSClient(ls_server.url, secret)) and secret not in repr(LSConfig("http://x", secret))


def test_cli_connect_push_pull_never_prints_the_token(ls_server, caplog):
    from typer.testing import CliRunner

    from relcurate.cli.main import app

    caplog.set_level(logging.DEBUG)
    ws = Workspace.init(ls_server.new_root() / "ws")
    add_image_rows(ws.engine, 3)
    leases.sync_pool(ws.engine)
    run = CliRunner().invoke
    w = ["-w", str(ws.root)]
    r = run(app, ["labelstudio", "connect", "--url", ls_server.url, "--token", "wrong-token", *w])
    assert r.exit_code == 2 and "refused the token" in r.output and "wrong-token" not in r.output
    r = run(app, ["labelstudio", "connect", "--url", ls_server.url, "--token", ls_server.token,
                  "--document-root", str(ls_server.document_root), *w])
    assert r.exit_code == 0, r.output
    assert "connected to Label Studio 1.23.2" in r.output and ls_server.token not in r.output
    assert oct(ws.root.joinpath("labelstudio.toml").stat().st_mode & 0o777) == "0o600"
    r = run(app, ["labelstudio", "push", "filter", *w])
    assert r.exit_code == 0 and "3 new task(s)" in r.output, r.output
    r = run(app, ["labelstudio", "pull", *w])
    assert r.exit_code == 0 and "0 new" in r.output, r.output
    assert ls_server.token not in caplog.text + r.output


LEAKY = "A {Fruit} shown next to a teapot on a {Surface}."  # "teapot": red1's alt-text
CLEAN = "A {Fruit} shown next to {Object} on a {Surface}."


def _caption_result(text: str, verdict: str) -> list[dict]:
    return [{"from_name": "caption", "to_name": "images", "type": "textarea", "value": {"text": [text]}},
            {"from_name": "verdict", "to_name": "images", "type": "choices", "value": {"choices": [verdict]}}]


def test_caption_review_in_label_studio_goes_through_the_anonymity_checker(ls_server):
    from relcurate.curation.groups import captions, membership
    from relcurate.curation.labelstudio.push import push_captions
    from relcurate.db.models import GroupStatus, Image
    from relcurate.testing.groups import populate

    root = ls_server.new_root()
    ws = Workspace.init(root / "ws")
    # One Label Studio user edits and accepts: a self-accept, which a one-person team allows
    # ([review] allow_self_accept); without it the pull reports the refusal and writes nothing.
    ws.review.allow_self_accept = True
    save_config(ws, LSConfig(ls_server.url, ls_server.token, document_root=str(ls_server.document_root)))
    ids = populate(ws, root / "src")
    with session_scope(ws.engine) as s:
        gids = [membership.create_group(ws, fam, [ids[f"{fam}{i}"] for i in range(3)],
                                        status=GroupStatus.complete).id for fam in ("red", "blue")]
        cids = [captions.add_group_caption(ws, g, LEAKY, source="model").id for g in gids]
    client = LSClient.from_workspace(ws)
    res = push_captions(ws, client)
    assert (res.pushed, push_captions(ws, client).pushed) == (2, 0)
    tmap = mapping.task_map(ws, projects.project_record(ws, client.url, "caption").id)
    task_of = {t.caption_id: tid for tid, t in tmap.items()}
    task = client.get(f"/api/tasks/{task_of[cids[0]]}")
    assert task["data"]["caption"] == LEAKY and len(task["data"]["images"]) == 3
    # Label Studio serves the image store's bytes through its local-files storage.
    with read_scope(ws.engine) as s:
        img = s.get(Image, ids["red0"])
    r = httpx.get(ls_server.url + task["data"]["images"][0], headers={"Authorization": f"Token {ls_server.token}"})
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == img.sha256

    admin_ls = _ls_user(client, "admin@example.com")
    leaky_ann = client.post(f"/api/tasks/{task_of[cids[0]]}/annotations/",
                            {"result": _caption_result(LEAKY, "Accept"), "completed_by": admin_ls})["id"]
    client.post(f"/api/tasks/{task_of[cids[1]]}/annotations/",
                {"result": _caption_result(CLEAN, "Accept"), "completed_by": admin_ls})
    out = pull(ws, client, "caption")
    assert out.new == 1 and any("alt_text_leak" in m for m in out.problems)
    with read_scope(ws.engine) as s:
        assert [e.action for e in captions.history(ws, cids[0])] == ["propose"]  # the checker refused it
        assert [e.action for e in captions.history(ws, cids[1])] == ["propose", "edit", "accept"]
        assert captions.accepted_caption(ws, gids[1]) == CLEAN
    client.patch(f"/api/annotations/{leaky_ann}/", {"result": _caption_result(CLEAN, "Accept")})
    out = pull(ws, client, "caption")
    assert (out.new, out.problems) == (1, [])
    assert pull(ws, client, "caption").changed == 0
    with read_scope(ws.engine) as s:
        assert captions.accepted_caption(ws, gids[0]) == CLEAN
    ws.engine.dispose()


def test_serve_workspace_connects_and_serves_the_image_store(ls_server, tmp_path):
    """`relcurate labelstudio serve`'s library call, warm from the cached data folder: local
    files are rooted at the workspace, and the workspace is connected to the server."""
    import shutil

    from PIL import Image as PILImage

    from relcurate.curation.ingest.pipeline import ingest_source
    from relcurate.curation.labelstudio.server import find_executable, serve_workspace
    from relcurate.testing.labelstudio import cached_data_dir

    ws = Workspace.init(tmp_path / "ws")
    folder = ws.root / "labelstudio"
    folder.mkdir()
    shutil.copytree(cached_data_dir(find_executable()), folder / "data")
    (folder / "admin.toml").write_text(f'email = "admin@example.com"\npassword = "pw-{free_port()}"\n'
                                       f'token = "{ls_server.token}"\nport = {free_port()}\n')
    src = tmp_path / "src"
    src.mkdir()
    PILImage.new("RGB", (32, 24), (10, 200, 30)).save(src / "a.png")
    ingest_source(ws, src, workers=1)
    leases.sync_pool(ws.engine)
    server, login = serve_workspace(ws)
    try:
        cfg = load_config(ws)
        assert cfg.url == server.url and cfg.document_root is None and server.url != ls_server.url
        client = LSClient.from_workspace(ws)
        assert push_filter(ws, client).pushed == 1
        (tid,) = mapping.task_map(ws, projects.project_record(ws, client.url, "filter").id)
        url = client.get(f"/api/tasks/{tid}")["data"]["image"]
        r = httpx.get(server.url + url, headers={"Authorization": f"Token {ls_server.token}"})
        assert r.status_code == 200 and r.content == next(ws.root.glob("images/*/*/*.png")).read_bytes()
    finally:
        server.stop()
    ws.engine.dispose()
