"""The CLI over the library: init, ingest, stats --json, users, quarantine, demo; and kill -9 safety."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image as PILImage
from typer.testing import CliRunner

from relcurate.cli.main import app

runner = CliRunner()


def _images(folder: Path, n: int, size=(64, 48)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        # distinct content per index (i < 65536), so no two files are exact duplicates
        PILImage.new("RGB", size, (i % 256, (i // 256) * 40 % 256, (i * 13) % 256)).save(folder / f"img{i:04d}.png")


def test_init_ingest_stats_users(tmp_path, db_url):
    ws = tmp_path / "ws"
    r = runner.invoke(app, ["init", str(ws), "--db", db_url])
    assert r.exit_code == 0, r.output
    _images(tmp_path / "src", 5)
    (tmp_path / "src" / "broken.jpg").write_bytes(b"<html>")
    r = runner.invoke(app, ["ingest", str(tmp_path / "src"), "-w", str(ws), "--db", db_url, "--json", "--workers", "1"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["added"] == 5 and len(report["quarantined"]) == 1

    r = runner.invoke(app, ["stats", "-w", str(ws), "--db", db_url, "--json"])
    stats = json.loads(r.stdout)
    assert stats["schema_version"] == 1
    assert stats["images"]["ok"] == 5 and stats["images"]["quarantined_by_reason"] == {"not_an_image": 1}

    r = runner.invoke(app, ["users", "add", "alice", "--role", "curator", "-w", str(ws), "--db", db_url])
    assert r.exit_code == 0 and "password:" in r.output
    r = runner.invoke(app, ["users", "add", "alice", "-w", str(ws), "--db", db_url])
    assert r.exit_code == 2 and "exists" in r.output
    r = runner.invoke(app, ["users", "add", "bob", "--role", "wizard", "-w", str(ws), "--db", db_url])
    assert r.exit_code == 2
    r = runner.invoke(app, ["quarantine", "-w", str(ws), "--db", db_url, "--json"])
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["reason"] for x in rows] == ["not_an_image"] and rows[0]["where"].endswith("broken.jpg")


def test_errors_are_clear(tmp_path):
    r = runner.invoke(app, ["stats", "-w", str(tmp_path)])
    assert r.exit_code == 2 and "not a relcurate workspace" in r.output
    runner.invoke(app, ["init", str(tmp_path / "ws")])
    r = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "-w", str(tmp_path / "ws")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_kill_9_then_rerun_completes_consistently(tmp_path):
    """Kill the ingest mid-run with SIGKILL, re-run it, and check the store is complete and
    consistent: every file exactly once, each stored original present, no half rows."""
    from relcurate.curation.catalog.stats import workspace_stats
    from relcurate.workspace import Workspace

    ws_dir, src = tmp_path / "ws", tmp_path / "src"
    _images(src, 600, size=(320, 240))
    Workspace.init(ws_dir)
    cmd = [sys.executable, "-m", "relcurate.cli.main", "ingest", str(src), "-w", str(ws_dir), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ws = Workspace.open(ws_dir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until some, but not all, rows are committed
        n = workspace_stats(ws)["images"]["total"]
        if n > 0 or proc.poll() is not None:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = workspace_stats(ws)["images"]["ok"]
    assert partial < 600, "ingest finished before the kill; make the input larger"

    r = runner.invoke(app, ["ingest", str(src), "-w", str(ws_dir), "--json", "--workers", "2"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["already_known"] == partial and report["added"] == 600 - partial
    stats = workspace_stats(ws)
    assert stats["images"]["ok"] == 600 and stats["images"]["total"] == 600
    from sqlmodel import select

    from relcurate.db.engine import session_scope
    from relcurate.db.models import Image, ImageSource

    with session_scope(ws.engine) as s:
        imgs = s.exec(select(Image)).all()
        assert len(s.exec(select(ImageSource)).all()) == 600
        for img in imgs:
            assert ws.image_path(img.sha256, img.ext).exists()
            assert ws.thumb_path(img.sha256).exists()
    with ws.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
