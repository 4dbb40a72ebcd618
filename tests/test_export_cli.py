"""`relcurate export ...` over the library: who may export, output and JSON summaries, and that an
export killed with SIGKILL midway leaves nothing that looks complete."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relcurate.testing.exports import build_curated
from relcurate.cli.export import app
from relcurate.exports.atomic import stale_partials
from relcurate.workspace import Workspace

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    ws = Workspace.init(tmp / "ws")
    cur = build_curated(ws, tmp)
    yield cur
    ws.engine.dispose()


@pytest.mark.parametrize("who", ["ann", "rev", "nobody", None])
def test_only_curators_and_admins_may_export(curated, tmp_path, monkeypatch, who):
    monkeypatch.delenv("RELCURATE_USER", raising=False)
    args = ["relsim", str(tmp_path / "out"), "-w", str(curated.ws.root)] + (["--as-user", who] if who else [])
    r = runner.invoke(app, args)
    assert r.exit_code == 3, r.output
    assert "refused" in r.output and not (tmp_path / "out").exists()


def test_every_command_as_curator_and_admin(curated, tmp_path, monkeypatch):
    ws = str(curated.ws.root)
    monkeypatch.setenv("RELCURATE_USER", "cur")  # the environment names the user
    for cmd, extra in (("relsim", ["--splits", "train=1,test=1"]), ("seed-groups", []), ("filter-sft", []),
                       ("captioner-sft", ["--per", "group"]), ("hf", ["--embed"])):
        out = tmp_path / cmd
        r = runner.invoke(app, [cmd, str(out), "-w", ws, "--json", *extra])
        assert r.exit_code == 0, r.output
        summary = json.loads(r.stdout)
        assert summary["path"] == str(out) and summary["manifest_id"] > 0
        assert json.loads((out / "manifest.json").read_text())["counts"] == summary["counts"]
    r = runner.invoke(app, ["relsim", str(tmp_path / "adm"), "-w", ws, "--as-user", "adm", "--images", "reference"])
    assert r.exit_code == 0 and "rows: train" in r.output
    r = runner.invoke(app, ["relsim", str(tmp_path / "adm"), "-w", ws, "--as-user", "adm"])
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(app, ["relsim", str(tmp_path / "bad"), "-w", ws, "--as-user", "adm", "--splits", "train"])
    assert r.exit_code == 2 and "bad split" in r.output


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from relcurate.workspace import Workspace
    from relcurate.exports.relsim_jsonl import export_relsim

    ws_dir, out, marker = sys.argv[1:4]

    def progress(done, total):
        Path(marker).write_text(f"{done}/{total}")  # images are in the staging folder now
        time.sleep(600)  # hold here until the test kills us

    export_relsim(Workspace.open(ws_dir), out, user="cur", progress=progress)
""")


def test_kill_9_midway_leaves_nothing_complete(curated, tmp_path):
    out, marker = tmp_path / "killed", tmp_path / "marker"
    script = tmp_path / "run_export.py"
    script.write_text(_KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(curated.ws.root), str(out), str(marker)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.stderr.read().decode() if proc.poll() is not None else "export never reported progress"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    assert not out.exists()  # nothing under the final name
    partial = stale_partials(out)
    assert len(partial) == 1 and partial[0].name.startswith(".killed.partial-")
    assert any((partial[0] / "images").iterdir())  # it was killed with work in progress...
    assert not (partial[0] / "manifest.json").exists()  # ...and no manifest: not complete-looking

    r = runner.invoke(app, ["relsim", str(out), "-w", str(curated.ws.root), "--as-user", "cur", "--json"])
    assert r.exit_code == 0, r.output
    assert (out / "manifest.json").exists() and not stale_partials(out)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".killed")) == []
