"""Exports from a params dict (what the Export page queues): every format gives the same bytes
as `relcurate export ...`, the split preview matches what is written, an empty test split warns,
bad params and unsafe names are refused with a clear message, and the download zip holds the
whole folder and is only made for curators and admins."""
from __future__ import annotations

import os
import subprocess
import zipfile

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from relcurate.cli.export import app
from relcurate.curation.labeling import labels
from relcurate.db.engine import read_scope
from relcurate.db.models import User
from relcurate.exports.archive import manifest_for_display, zip_export
from relcurate.exports.common import ExportError, ExportPermissionError
from relcurate.exports.params import (ExportParamsError, export_path, parse_export_params, run_export_params,
                                      suggest_name)
from relcurate.exports.preview import preview_export
from relcurate.testing.exports import build_curated
from relcurate.workspace import Workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """The curated export workspace plus a few filter labels (so filter-sft has rows)."""
    tmp = tmp_path_factory.mktemp("params")
    ws = Workspace.init(tmp / "ws")
    cur = build_curated(ws, tmp)
    with read_scope(ws.engine) as s:
        uid = {u.username: u.id for u in s.exec(select(User))}
    for n, (key, answer) in enumerate([("p00", "yes"), ("p03", "no"), ("p08", "yes"), ("p19", "no"), ("p22", "yes")]):
        labels.record_label(ws.engine, image_id=cur.ids[key], user_id=uid["ann"], answer=answer, request_id=f"r{n}")
    yield cur
    ws.engine.dispose()


CASES = [  # (params, the same export's CLI arguments)
    ({"format": "relsim", "splits": "train=1,test=1", "seed": 3, "caption_source": "group", "include_pending": True},
     ["relsim", "--splits", "train=1,test=1", "--seed", "3", "--caption-source", "group", "--include-pending"]),
    ({"format": "relsim", "images": "reference", "url_link": "source-uri"},
     ["relsim", "--images", "reference", "--url-link", "source-uri"]),
    ({"format": "seed-groups", "exclude_statuses": ["rejected"]}, ["seed-groups", "--exclude-status", "rejected"]),
    ({"format": "filter-sft", "splits": {"train": 1, "test": 1}, "seed": 1}, ["filter-sft", "--splits", "train=1,test=1", "--seed", "1"]),
    ({"format": "captioner-sft", "per": "group", "splits": "train=2,test=1"},
     ["captioner-sft", "--per", "group", "--splits", "train=2,test=1"]),
    ({"format": "captioner-sft", "caption_source": "image", "images": "link"},
     ["captioner-sft", "--caption-source", "image", "--images", "link"]),
    ({"format": "hf", "embed": True, "splits": "train=1,test=1"}, ["hf", "--embed", "--splits", "train=1,test=1"]),
    ({"format": "hf", "dataset": "filter", "include_pending": True}, ["hf", "--dataset", "filter", "--include-pending"]),
]


@pytest.mark.parametrize("params,cli", CASES, ids=[f"{i}-{c[0]['format']}" for i, c in enumerate(CASES)])
def test_params_path_equals_the_cli_byte_for_byte(curated, tmp_path, params, cli):
    ws = curated.ws
    name = f"case-{CASES.index((params, cli))}"
    preview = preview_export(ws, {**params, "name": name})
    result = run_export_params(ws, {**params, "name": name}, user="cur")
    assert result.path == ws.exports_dir / name and result.manifest_id > 0
    r = runner.invoke(app, [cli[0], str(tmp_path / "cli"), "-w", str(ws.root), "--as-user", "cur", *cli[1:]])
    assert r.exit_code == 0, r.output
    # manifest.json included: it holds no clock time, path, user or id, so it is identical too
    diff = subprocess.run(["diff", "-r", str(tmp_path / "cli"), str(result.path)], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout[:2000]
    if preview.splits is not None:  # the preview predicted the written split sizes
        assert {k: v["rows"] for k, v in preview.splits.items()} == result.counts["rows"]


def _seed_with(ws, empty: bool) -> int:
    return next(s for s in range(200) if (preview_export(ws, {"format": "relsim", "name": "x", "seed": s})
                                          .splits["test"]["rows"] == 0) == empty)


def test_default_split_that_leaves_test_empty_warns(curated):
    ws = curated.ws
    seed = _seed_with(ws, empty=True)
    pv = preview_export(ws, {"format": "relsim", "name": "empty-test", "seed": seed})
    assert pv.splits["test"] == {"rows": 0, "images": 0} and pv.splits["train"]["rows"] == pv.rows > 0
    assert len(pv.warnings) == 1 and "test split is empty" in pv.warnings[0]
    result = run_export_params(ws, {"format": "relsim", "name": "empty-test", "seed": seed}, user="cur")
    assert result.counts["rows"]["test"] == 0
    assert result.warnings == pv.warnings  # the writer's result carries the same warning
    ok = preview_export(ws, {"format": "relsim", "name": "fine", "seed": _seed_with(ws, empty=False)})
    assert ok.splits["test"]["rows"] > 0 and ok.warnings == []


@pytest.mark.parametrize("params,message", [
    ({"name": "x"}, "format: must be one of"),
    ({"format": "pdf", "name": "x"}, "format: must be one of"),
    ({"format": "relsim"}, "name: say which folder"),
    ({"format": "relsim", "name": "x", "per": "group"}, "unknown option.*per"),
    ({"format": "relsim", "name": "x", "push_to_hub": "me/data"}, "unknown option.*push_to_hub"),
    ({"format": "relsim", "name": "x", "splits": "train"}, "splits: bad split"),
    ({"format": "relsim", "name": "x", "splits": {"train": -1}}, "splits: split weights must be non-negative"),
    ({"format": "relsim", "name": "x", "splits": {"train": "9"}}, "splits: split weights must be numbers"),
    ({"format": "relsim", "name": "x", "splits": "tr/ain=1"}, "split names are letters"),
    ({"format": "relsim", "name": "x", "seed": -1}, "seed: must be a whole number"),
    ({"format": "relsim", "name": "x", "seed": "3"}, "seed: must be a whole number"),
    ({"format": "relsim", "name": "x", "images": "symlink"}, "images: must be one of copy, link, reference"),
    ({"format": "relsim", "name": "x", "include_pending": "yes"}, "include_pending: must be true or false"),
    ({"format": "relsim", "name": "x", "group_aware": False}, "group_aware: splits always keep"),
    ({"format": "seed-groups", "name": "x", "exclude_statuses": ["gone"]}, "exclude_statuses: a list of group statuses"),
    ({"format": "hf", "name": "x", "dataset": "captions"}, "dataset: must be one of relsim, filter"),
])
def test_bad_params_give_clear_errors(params, message):
    with pytest.raises(ExportParamsError, match=message):
        parse_export_params(params)


@pytest.mark.parametrize("name", ["../outside", "a/b", "/abs", ".hidden", "", "x" * 65, "a\x00b", "..", "é", 7])
def test_names_never_become_paths(curated, name):
    with pytest.raises(ExportParamsError, match="name"):
        parse_export_params({"format": "relsim", "name": name})


def test_a_link_in_exports_is_refused(curated, tmp_path):
    ws = curated.ws
    os.symlink(tmp_path, ws.exports_dir / "linked")
    try:
        with pytest.raises(ExportParamsError, match="link"):
            export_path(ws, "linked")
    finally:
        (ws.exports_dir / "linked").unlink()


def test_normalised_params_fill_the_cli_defaults():
    req = parse_export_params({"format": "relsim", "name": "r", "splits": ""})
    assert req.as_params() == {"format": "relsim", "name": "r", "overwrite": False, "caption_source": "both",
                               "seed": 0, "images": "copy", "include_pending": False, "url_link": "empty",
                               "splits": {"train": 100000.0, "test": 14000.0}}
    assert parse_export_params(req.as_params()) == req
    assert parse_export_params({"format": "hf", "name": "h", "dataset": "filter"}).weights == {"train": 9.0, "test": 1.0}
    assert parse_export_params({"format": "seed-groups", "name": "s"}).weights is None


def test_suggested_names_move_on_once_taken(curated):
    ws = curated.ws
    first = suggest_name(ws, "filter-sft")
    assert first == suggest_name(ws, "filter-sft")  # stable until the folder exists
    run_export_params(ws, {"format": "filter-sft", "name": first}, user="adm")
    assert suggest_name(ws, "filter-sft") != first


def test_zip_holds_every_file_and_only_for_curators_and_admins(curated):
    ws = curated.ws
    res = run_export_params(ws, {"format": "relsim", "name": "zipped", "splits": "train=1,test=1"}, user="cur")
    for who in ("ann", "rev", "nobody"):
        with pytest.raises(ExportPermissionError):
            zip_export(ws, "zipped", user=who)
    z = zip_export(ws, "zipped", user="adm")
    assert z.parent.parent == ws.exports_dir / ".downloads"
    on_disk = {p.relative_to(res.path).as_posix(): p.read_bytes() for p in res.path.rglob("*") if p.is_file()}
    with zipfile.ZipFile(z) as zf:
        assert zf.testzip() is None
        zipped = {n.removeprefix("zipped/"): zf.read(n) for n in zf.namelist()}
    assert zipped == on_disk and "manifest.json" in zipped and any(k.startswith("images/") for k in zipped)
    first = z.read_bytes()
    assert zip_export(ws, "zipped", user="cur") == z  # reused while the folder is unchanged
    z.unlink()
    assert zip_export(ws, "zipped", user="cur").read_bytes() == first  # deterministic bytes
    run_export_params(ws, {"format": "relsim", "name": "zipped", "overwrite": True, "seed": 5,
                           "splits": "train=1,test=1"}, user="cur")
    again = zip_export(ws, "zipped", user="cur")
    assert again != z and not z.exists()  # a new folder content gets a new zip, the old one goes
    shown = manifest_for_display(ws, "zipped")
    assert shown["kind"] == "relsim" and shown["files"]["images/"]["count"] == res.counts["image_files"]
    with pytest.raises(ExportError, match="not a finished export"):
        zip_export(ws, "no-such-export", user="cur")
    with pytest.raises(ExportParamsError):
        zip_export(ws, "../ws", user="cur")


def test_refusals_come_from_the_export_frame(curated):
    with pytest.raises(ExportPermissionError):
        run_export_params(curated.ws, {"format": "relsim", "name": "by-ann"}, user="ann")
    assert not (curated.ws.exports_dir / "by-ann").exists()
