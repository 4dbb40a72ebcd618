"""`relcurate loop filter ...`, `relcurate loop jobs` and `relcurate worker` (in-process, and a
real process stopped with SIGTERM)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
from typer.testing import CliRunner

from relcurate.cli.main import app
from relcurate.curation.labeling import labels, leases
from relcurate.models.registry import get_model_version, register_model
from relcurate.testing.al_sim import store_vectors, synthetic_vectors
from relcurate.testing.labeling import add_image_rows, add_users
from relcurate.workspace import Workspace

runner = CliRunner()


def test_loop_filter_commands_and_worker_once(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    ids = np.array(add_image_rows(ws.engine, 200), dtype=np.int64)
    leases.sync_pool(ws.engine, seed=0)
    x, truth = synthetic_vectors(200, dim=8, seed=1)
    store_vectors(ws, register_model(ws, kind="baseline", name="emb", base_model="attribute"), ids, x)
    uid = add_users(ws.engine, ["ann"])["ann"]
    truth_of = dict(zip(ids.tolist(), truth.tolist()))
    for _ in range(60):
        t = leases.next_task(ws.engine, uid)
        labels.record_label(ws.engine, image_id=t.image_id, user_id=uid, answer="yes" if truth_of[t.image_id] else "no",
                            request_id=t.request_id)
    w = ["-w", str(ws.root)]
    r = runner.invoke(app, ["loop", "filter", "configure", "--embedding", "nope:1", *w])
    assert r.exit_code == 2 and "no model" in r.output
    r = runner.invoke(app, ["loop", "filter", "configure", "--mix", "uncertainty=40,bogus", *w])
    assert r.exit_code != 0
    r = runner.invoke(app, ["loop", "filter", "configure", "--embedding", "emb:1", "--every", "25", "--strategy", "mix",
                            "--mix", "uncertainty=40,positive=30,diversity=20,random=10", *w])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["loop", "filter", "refresh", *w])
    assert r.exit_code == 0 and "queued" in r.output
    r = runner.invoke(app, ["loop", "filter", "refresh", *w])
    assert "already queued" in r.output  # one live refresh job
    r = runner.invoke(app, ["worker", "--once", "--no-auto-refresh", *w])
    assert r.exit_code == 0, r.output
    assert get_model_version(ws, "fast-head").version == 1
    r = runner.invoke(app, ["loop", "filter", "status", *w])
    assert r.exit_code == 0 and "positives remaining" in r.output and "fast-head:1" in r.output
    r = runner.invoke(app, ["loop", "jobs", *w])
    assert r.exit_code == 0 and "fast-head" in r.output and "done" in r.output
    ws.engine.dispose()


def test_worker_process_stops_cleanly_on_sigterm(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(p) for p in sys.path if p])}
    proc = subprocess.Popen([sys.executable, "-c", "from relcurate.cli.main import app; app()", "worker",
                             "-w", str(ws.root), "--poll", "0.2"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 60
        line = ""
        while time.time() < deadline and "waiting for jobs" not in line:
            line = proc.stderr.readline()
        assert "waiting for jobs" in line
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
        assert proc.returncode == 0 and "worker stopped after 0 job(s)" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
    ws.engine.dispose()


def test_loop_captioner_and_relsim_commands(tmp_path):
    """Enqueue (a second call is the same job), run-now errors, status tables, the default space."""
    import json as _json

    from relcurate.curation.groups import caption_queue as cq
    from relcurate.curation.groups import group_search as gs
    from relcurate.models.workspace_scoring import build_workspace_index

    ws = Workspace.init(tmp_path / "ws")
    ids = add_image_rows(ws.engine, 12)
    w = ["-w", str(ws.root)]
    r = runner.invoke(app, ["loop", "captioner", "caption", "--here", *w])
    assert r.exit_code == 2 and "no captioner version" in r.output
    first = runner.invoke(app, ["loop", "captioner", "caption", "--sample", "5", *w])
    again = runner.invoke(app, ["loop", "captioner", "caption", "--sample", "5", *w])
    assert first.exit_code == 0 and "queued" in first.output and "already queued" in again.output
    assert first.output.split()[1] == again.output.split()[1]  # the same job id
    r = runner.invoke(app, ["loop", "captioner", "retrain", "--base", "tiny", "--max-steps", "2", *w])
    assert r.exit_code == 0 and "captioner-retrain" in r.output

    capv = register_model(ws, kind="captioner", name="cap", base_model="x")
    cq.record_generated(ws, capv.id, [cq.Generated(i, "A {Object} split into {Number} parts.", -1.0 - n, n != 0,
                                                   () if n else ("object_noun",)) for n, i in enumerate(ids[:3])])
    cq.draw_review_sample(ws, capv.id, size=2, audit_share=0.0)
    r = runner.invoke(app, ["loop", "captioner", "status", *w])
    assert r.exit_code == 0 and "cap:1" in r.output and "flagged" in r.output and "low_confidence" in r.output

    r = runner.invoke(app, ["loop", "relsim", "retrain", "--base", "tiny", *w])
    assert r.exit_code == 0 and "relsim-retrain" in r.output
    rel = register_model(ws, kind="relsim", name="rs", base_model="x", metrics={"same_caption_recall@1": 0.5})
    x, _ = synthetic_vectors(12, dim=8, seed=2)
    store_vectors(ws, rel, np.array(ids), x)
    build_workspace_index(ws, get_model_version(ws, "rs"))
    r = runner.invoke(app, ["loop", "relsim", "use", "nowhere", *w])
    assert r.exit_code == 2 and "no embedding space" in r.output
    r = runner.invoke(app, ["loop", "relsim", "use", "rs:1", *w])
    assert r.exit_code == 0 and "rs-v1" in r.output and gs.default_space(ws) == "rs-v1"
    r = runner.invoke(app, ["loop", "relsim", "compare", "--json", *w])
    out = _json.loads(r.output)
    assert out["default_space"] == "rs-v1" and out["versions"][0]["same_caption_recall@1"] == 0.5
    r = runner.invoke(app, ["loop", "relsim", "reembed", "rs:1", *w])
    assert r.exit_code == 0 and "relsim-reembed" in r.output
    r = runner.invoke(app, ["loop", "jobs", *w])
    for kind in ("caption-pool", "captioner-retrain", "relsim-retrain", "relsim-reembed"):
        assert kind in r.output
