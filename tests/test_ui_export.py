"""The Export page through AppTest: curators and admins only (annotators and reviewers neither see
nor reach it), the split preview and its empty-test warning, bad settings shown as errors, the
button queues one job however often it is clicked (nothing runs in the request), and a finished
job shows its manifest, workspace path and a download button whose zip reaches only this session
(inline over the websocket, once; never a /media/ URL), with the role checked again at the click."""
from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from relcurate import accounts
from relcurate.db import jobs as job_store
from relcurate.exports.archive import DOWNLOADS_DIR
from relcurate.exports.preview import preview_export
from relcurate.jobs.worker import run_worker
from relcurate.testing.apptest import as_displayed, component_protos, goto, signed_in, titles, url_paths
from relcurate.testing.exports import PASSWORD, build_curated
from relcurate.workspace import Workspace

APP = Path(__file__).resolve().parents[1] / "relcurate" / "labeling_ui" / "app.py"


@pytest.fixture
def curated(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    cur = build_curated(ws, tmp_path)
    yield cur
    ws.engine.dispose()


def _app(ws, monkeypatch, user) -> AppTest:
    return signed_in(ws.root, monkeypatch, user, PASSWORD)


def _preview(at):
    """The split preview table (the one with a "split" column), or None."""
    return next((d.value for d in at.dataframe if "split" in d.value.columns), None)


def _frame(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _shown(elements) -> str:
    return " ".join(as_displayed(e.value) for e in elements)


@pytest.mark.parametrize("user", ["ann", "rev"])
def test_annotators_and_reviewers_neither_see_nor_reach_it(curated, monkeypatch, user):
    at = _app(curated.ws, monkeypatch, user)
    assert "Export" not in url_paths(at)
    goto(at, "export")
    assert "Export" not in titles(at)
    assert not _has(at, "exp_start") and not at.get("download_button")


def _has(at, key: str) -> bool:
    try:
        at.button(key=key)
        return True
    except KeyError:
        return False


@pytest.mark.parametrize("user", ["cur", "adm"])
def test_curators_and_admins_open_it(curated, monkeypatch, user):
    at = goto(_app(curated.ws, monkeypatch, user), "export")
    assert "Export" in url_paths(at) and titles(at) == ["Export"]
    assert at.text_input(key="exp_name").value == "relsim-1"
    assert _preview(at)["split"].tolist() == ["train", "test"]


def test_preview_warning_enqueue_once_and_finished_job(curated, monkeypatch):
    ws = curated.ws
    seed = next(s for s in range(200) if preview_export(ws, {"format": "relsim", "name": "x", "seed": s})
                .splits["test"]["rows"] == 0)
    at = goto(_app(ws, monkeypatch, "cur"), "export")
    at.number_input(key="exp_seed").set_value(seed).run()
    assert "test split is empty" in _shown(at.warning)
    frame = _preview(at)
    assert dict(zip(frame["split"], frame["rows"]))["test"] == 0
    # bad settings: an error, and the button is off
    at.text_input(key="exp_name").input("../outside").run()
    assert "name" in _shown(at.error) and at.button(key="exp_start").disabled
    at.text_input(key="exp_name").input("my-relsim").run()
    at.button(key="exp_start").click().run()
    at.button(key="exp_start").click().run()  # a double click: still one job
    assert "already queued" in _shown(at.info)
    queued = job_store.list_jobs(ws.engine, kind="export")
    assert [j.state for j in queued] == ["queued"]  # the page ran nothing itself
    assert queued[0].params["name"] == "my-relsim" and queued[0].params["seed"] == seed
    assert queued[0].requested_by == next(u.id for u in accounts.list_users(ws.engine) if u.username == "cur")
    assert at.get("progress")  # the live job's progress bar
    assert _frame(at, "requested by")["requested by"].tolist() == ["cur"]  # a name, not a user id
    assert run_worker(ws, exit_when_idle=True) == 1
    at.run()
    assert job_store.get_job(ws.engine, queued[0].id).state == "done"
    assert _has(at, f"exp_dl_{queued[0].id}") and not _downloads(at)  # no bytes until asked
    assert str(ws.exports_dir / "my-relsim") in [c.value for c in at.code]
    manifest = at.json[0].value
    assert '"kind": "relsim"' in manifest and '"seed": ' + str(seed) in manifest
    assert "test split is empty" in _shown(at.warning)  # the job result's warning
    # the same folder again: refused on the page until "replace" is ticked
    assert "already exists" in _shown(at.warning) and at.button(key="exp_start").disabled
    at.checkbox(key="exp_overwrite").check().run()
    assert not at.button(key="exp_start").disabled
    at.button(key="exp_start").click().run()
    assert job_store.list_jobs(ws.engine, kind="export")[0].params["overwrite"] is True


def test_a_field_edited_and_clicked_in_one_go_queues_nothing_stale(curated, monkeypatch):
    """Streamlit hands on_click the args of the run that drew the button: a name typed and the
    button clicked without Enter (one rerun) must not queue the old name. Nothing is queued, the
    page says why, and the next click queues what is shown."""
    ws = curated.ws
    at = goto(_app(ws, monkeypatch, "cur"), "export")
    suggested = at.text_input(key="exp_name").value
    at.text_input(key="exp_name").input("typed-name")  # no run: the edit rides on the click
    at.button(key="exp_start").click().run()
    assert job_store.list_jobs(ws.engine, kind="export") == []
    assert "settings changed since the preview" in _shown(at.info)
    at.text_input(key="exp_splits_relsim_").input("train=3,test=1")
    at.button(key="exp_start").click().run()  # the splits too
    assert job_store.list_jobs(ws.engine, kind="export") == []
    at.button(key="exp_start").click().run()
    [job] = job_store.list_jobs(ws.engine, kind="export")
    assert job.params["name"] == "typed-name" != suggested
    assert job.params["splits"] == {"train": 3.0, "test": 1.0}
    at.selectbox(key="exp_format").select("seed-groups").run()  # widgets that go away are no change
    at.text_input(key="exp_name").input("groups-a").run()
    at.button(key="exp_start").click().run()
    assert [j.params["name"] for j in job_store.list_jobs(ws.engine, kind="export")].count("groups-a") == 1


def test_format_switch_and_seed_groups_have_no_split(curated, monkeypatch):
    at = goto(_app(curated.ws, monkeypatch, "adm"), "export")
    at.selectbox(key="exp_format").set_value("seed-groups").run()
    assert at.text_input(key="exp_name").value == "seed-groups-1"
    assert _preview(at) is None
    at.button(key="exp_start").click().run()
    assert "queued" in _shown(at.success)
    assert job_store.list_jobs(curated.ws.engine, kind="export")[0].params["exclude_statuses"] == ["rejected", "split"]


def _downloads(at) -> list[dict]:
    return [json.loads(p.json) for p in component_protos(at, "relcurate_download")]


def _finished_job(curated, monkeypatch, user="cur"):
    ws = curated.ws
    at = goto(_app(ws, monkeypatch, user), "export")
    at.text_input(key="exp_name").input("to-download").run()
    at.button(key="exp_start").click().run()
    assert run_worker(ws, exit_when_idle=True) == 1
    [job] = job_store.list_jobs(ws.engine, kind="export")
    return at.run(), job


def test_download_goes_inline_once_and_equals_the_folder(curated, monkeypatch):
    at, job = _finished_job(curated, monkeypatch)
    at.button(key=f"exp_dl_{job.id}").click().run()
    assert not at.exception
    [sent] = _downloads(at)
    assert sent["name"] == "to-download.zip" and sent["mime"] == "application/zip"
    raw = base64.b64decode(sent["b64"])
    assert len(raw) == sent["size"]
    folder = curated.ws.exports_dir / "to-download"
    expected = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        got = {n.removeprefix("to-download/"): zf.read(n) for n in zf.namelist()}
    assert got == expected
    at.run()  # a rerun sends the token only: the bytes went once
    [again] = _downloads(at)
    assert again["token"] == sent["token"] and "b64" not in again


def test_download_rechecks_the_role_at_the_click(curated, monkeypatch):
    at, job = _finished_job(curated, monkeypatch)
    accounts.set_role(curated.ws.engine, "cur", "annotator")  # demoted while the page was open
    at.button(key=f"exp_dl_{job.id}").click().run()
    assert not _downloads(at) and "Export" not in titles(at)  # the click's check refused; the page is gone
    assert not list((curated.ws.exports_dir / DOWNLOADS_DIR).rglob("*.zip"))  # no zip was built for them
    accounts.set_role(curated.ws.engine, "cur", "curator")
    goto(at, "export")
    assert not _downloads(at)  # nothing queued for delivery survived the refusal
