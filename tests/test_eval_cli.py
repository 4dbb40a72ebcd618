"""`relcurate eval ...` end to end on the synthetic benchmark (template oracle as the relational
embedder, see relcurate/testing/evaluation.py), the judge against a local stand-in server."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from relcurate.cli.main import app
from relcurate.testing.evaluation import build_eval_workspace, register_eval_models
from relcurate.testing.judge_server import StandInJudge

SECRET = "sk-cli-SECRET-not-to-be-printed"


def test_eval_commands(tmp_path, monkeypatch):
    ws = build_eval_workspace(tmp_path / "ws")
    register_eval_models(ws)
    w = ["-w", str(ws.root)]
    runner = CliRunner()

    def ok(*args):
        res = runner.invoke(app, [*args, *w])
        assert res.exit_code == 0, res.output
        return res.output

    out = json.loads(ok("eval", "retrieval", "-m", "oracle", "-m", "attribute", "-n", "12", "-k", "3",
                        "--splits", "train=1,test=1", "--no-caption-similarity", "--json"))
    rid = out["run_id"]
    assert out["metrics"]["oracle:1"]["caption_recall@3"]["estimate"] == 1.0
    assert "5 queries" in ok("eval", "retrieval", "-m", "oracle", "-n", "5", "-k", "3", "--splits",
                                    "train=1,test=1", "--no-caption-similarity")

    monkeypatch.setenv("RELCURATE_JUDGE_API_KEY", SECRET)
    with StandInJudge() as server:
        text = ok("eval", "judge", str(rid), "--base-url", server.base_url, "--model", "stand-in",
                  "--reference", "oracle:1", "--concurrency", "4")
        assert server.auth_headers and all(h == f"Bearer {SECRET}" for h in server.auth_headers)
    assert "from cache 0" in text and "LPIPS 4.56" in text and SECRET not in text

    # Endpoint and model from the workspace config, the key from a named environment variable.
    monkeypatch.setenv("MY_JUDGE_KEY", SECRET + "2")
    with StandInJudge() as server:
        cfg = ws.root / "relcurate.toml"
        cfg.write_text(cfg.read_text() + f'\n[judge]\nbase_url = "{server.base_url}"\nmodel = "stand-in"\n'
                       f'api_key_env = "MY_JUDGE_KEY"\nconcurrency = 2\n')
        text = ok("eval", "judge", str(rid), "-m", "attribute:1", "--max-requests", "3")
        assert server.auth_headers and all(h == f"Bearer {SECRET}2" for h in server.auth_headers)
        assert len(server.requests) <= 3 and SECRET not in text
    bad = runner.invoke(app, ["eval", "judge", str(rid), "--model", "", *w])
    assert bad.exit_code == 2 and "the judge needs model" in bad.output

    created = ok("eval", "ab-create", str(rid), "--method", "oracle:1", "-b", "attribute:1", "--triplets", "4")
    sid = int(created.split("#")[1].split(":")[0])
    assert json.loads(ok("eval", "ab-results", str(sid), "--json"))["triplets"] >= 1

    ok("models", "embed", "oracle")
    ok("models", "embed", "attribute")
    assert "pairs saved" in ok("eval", "mine", "--relational", "oracle", "--attribute", "attribute", "--top", "10")
    fig = tmp_path / "space.svg"
    assert "same logic, look different" in ok("eval", "space", "1", "--relational", "oracle", "--attribute",
                                              "attribute", "-o", str(fig))
    assert fig.read_text().lstrip().startswith("<svg")
    listing = ok("eval", "runs")
    for kind in ("retrieval", "judge", "ab", "mining"):
        assert kind in listing

    bad = runner.invoke(app, ["eval", "judge", "999", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", *w])
    assert bad.exit_code == 2 and "no retrieval run 999" in bad.output
    bad = runner.invoke(app, ["eval", "retrieval", "-m", "nope", *w])
    assert bad.exit_code == 2 and "no model 'nope'" in bad.output
    ws.engine.dispose()
