"""`relcurate labeling ...` commands (the sub-app on its own, through typer's runner)."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from relcurate.testing.labeling import add_image_rows, add_users
from relcurate.cli.labeling import app
from relcurate.curation.labeling import labels, leases

runner = CliRunner()


def test_labeling_commands(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    w = ["--workspace", str(ws.root)]
    imgs = add_image_rows(ws.engine, 4)
    users = add_users(ws.engine, ["ann", "bob"])

    r = runner.invoke(app, ["sync", *w])
    assert r.exit_code == 0 and "pooled 4 images" in r.output
    r = runner.invoke(app, ["config", "--overlap-fraction", "1.0", "--lease-minutes", "30", *w])
    assert r.exit_code == 0 and leases.get_config(ws.engine).lease_seconds == 1800
    assert runner.invoke(app, ["config", "--overlap-fraction", "2", *w]).exit_code == 2
    assert leases.min_dwell_ms(ws.engine) == 200  # never set: the default
    r = runner.invoke(app, ["config", "--min-dwell-ms", "350", *w])
    assert r.exit_code == 0 and "350" in r.output and leases.min_dwell_ms(ws.engine) == 350
    assert leases.get_config(ws.engine).lease_seconds == 1800  # the other settings stay
    r = runner.invoke(app, ["config", "--min-dwell-ms", "-1", *w])
    assert r.exit_code == 2 and "dwell" in r.output and leases.min_dwell_ms(ws.engine) == 350
    assert runner.invoke(app, ["gold", str(imgs[3]), "yes", *w]).exit_code == 0
    assert runner.invoke(app, ["gold", str(imgs[3]), "maybe", *w]).exit_code == 2

    for name, answer in (("ann", "yes"), ("bob", "no")):
        labels.record_label(ws.engine, image_id=imgs[0], user_id=users[name], answer=answer, request_id=f"c-{name}")
        labels.record_label(ws.engine, image_id=imgs[1], user_id=users[name], answer="no", request_id=f"d-{name}")
    r = runner.invoke(app, ["status", "--json", *w])
    sizes = json.loads(r.output)
    assert sizes["awaiting_adjudication"] == 1 and sizes["gold_images"] == 1

    r = runner.invoke(app, ["agreement", "--json", *w])
    rep = json.loads(r.output)
    assert rep["alpha_units"] == 2 and rep["pairs"][0]["n"] == 2

    out = tmp_path / "consensus.jsonl"
    r = runner.invoke(app, ["consensus", "--out", str(out), *w])
    assert r.exit_code == 0
    rows = {d["image_id"]: d for d in map(json.loads, out.read_text().splitlines())}
    assert rows[imgs[0]]["method"] == "tie" and rows[imgs[1]]["answer"] == "no" and rows[imgs[3]]["method"] == "gold"
