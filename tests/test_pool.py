"""Filtering a web-scale pool: shard readers, resumable scoring (in-process, kill -9, accelerate
launch with 2 CPU processes), the keep list, and its ingest with provenance."""
from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from sqlmodel import select

from relcurate.curation.pool.keep import write_keep_list
from relcurate.curation.pool.scoring import decode_image, score_shards, shard_meta, shard_output, summarize
from relcurate.curation.pool.shards import discover_shards
from relcurate.testing.models import noise_images
from relcurate.testing.pool import jpeg_bytes, truncate, write_parquet_shard, write_pool, write_wds_shard

REPO = Path(__file__).resolve().parents[1]


class MeanGrey:
    """A cheap deterministic 'filter': P(Yes) = mean brightness."""

    def predict_proba(self, images):
        return np.array([np.asarray(im, dtype=np.float32).mean() / 255.0 for im in images], dtype=np.float32)


def _scores(out: Path) -> dict[tuple[str, str], float]:
    """(shard file name, key) -> P(Yes) over every finished shard."""
    got = {}
    for path in sorted((out / "shards").glob("*.parquet")):
        meta = shard_meta(path)
        for row in pq.read_table(path).to_pylist():
            got[(Path(meta["shard"]).name, row["key"])] = row["p_yes"]
    return got


@pytest.fixture
def served(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_corrupt_shards_are_reported_by_shard_and_key_and_never_stop_the_run(tmp_path):
    pool = tmp_path / "pool"
    paths = write_pool(pool, n_tar=3, n_parquet=1, per_shard=5)
    truncate(paths[1], 0.6)  # truncated tar: the samples before the cut still count
    write_wds_shard(pool / "00009.tar", noise_images(3, seed=5), first_key=90_000, extra={1: b"\xff\xd8 not a jpeg"})
    (pool / "junk.tar").write_bytes(b"not a tar at all" * 64)
    (pool / "zz.parquet").write_bytes(b"PAR1 but corrupt")
    shards, missing = discover_shards([str(pool / "*.tar"), pool / "*.parquet", tmp_path / "gone.tar"])
    assert [m.reason for m in missing] == ["missing_shard"]
    seen = []
    prog = score_shards(shards, MeanGrey(), tmp_path / "out", model_version="grey:1", rank=0, world_size=1, workers=2,
                        preview_threshold=0.0, progress=lambda p: seen.append((p.shards_done, p.images, p.eta_s)))
    assert prog.shards_done == len(shards) == 7
    assert seen[0] == (0, 0, None) and seen[-1][:2] == (7, prog.images) and seen[-1][2] == 0
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)  # live progress only moves forward
    assert prog.keep_rate == 1.0 and prog.images_per_s > 0 and prog.bad >= 5
    summary = summarize(tmp_path / "out", extra_bad=missing, write_bad=True)
    assert summary.complete
    bad = {(Path(b["shard"]).name, b["key"], b["reason"]) for b in summary.bad}
    assert ("00009.tar", "000090001", "undecodable_image") in bad
    assert ("junk.tar", None, "bad_tar") in bad
    assert ("zz.parquet", None, "bad_parquet") in bad
    assert ("gone.tar", None, "missing_shard") in bad
    assert any(name == "00001.tar" and reason == "truncated_tar" and key for name, key, reason in bad)
    scores = _scores(tmp_path / "out")
    assert len([k for k in scores if k[0] == "00001.tar"]) >= 2  # what came before the cut
    assert ("00009.tar", "000090000") in scores and ("00009.tar", "000090002") in scores
    assert len([k for k in scores if k[0] in ("00000.tar", "00002.tar", "00003.parquet")]) == 15
    lines = (tmp_path / "out" / "bad.jsonl").read_text().splitlines()
    assert len(lines) == len(summary.bad) and all(json.loads(x)["reason"] for x in lines)


def test_tiny_filter_scores_match_predict_proba_and_resume_redoes_only_missing_shards(tiny_qwen_bpe, tmp_path):
    from relcurate.models.qwen_filter import QwenFilter

    paths = write_pool(tmp_path / "pool", n_tar=2, n_parquet=1, per_shard=3)
    shards, _ = discover_shards([tmp_path / "pool"])
    qf = QwenFilter(tiny_qwen_bpe, batch_size=4)
    out = tmp_path / "out"
    score_shards(shards, qf, out, model_version="tiny:1", batch_size=4, rank=0, world_size=1)
    first = _scores(out)
    assert len(first) == 9
    table = pq.read_table(shard_output(out, shards[0])).to_pylist()
    assert set(table[0]) == {"key", "url", "sha256", "p_yes", "model_version", "member", "caption"}
    assert table[0]["model_version"] == "tiny:1" and len(table[0]["sha256"]) == 64
    with __import__("tarfile").open(paths[0]) as tar:
        images = [decode_image(tar.extractfile(f"{r['key']}.jpg").read(), qf.max_pixels) for r in table]
    np.testing.assert_allclose([r["p_yes"] for r in table], qf.predict_proba(images), atol=1e-6)
    # A killed run leaves shards without output: only those are redone.
    shard_output(out, shards[1]).unlink()
    prog = score_shards(shards, qf, out, model_version="tiny:1", batch_size=4, rank=0, world_size=1)
    assert prog.shards_skipped == 2 and prog.images == 3
    assert _scores(out) == first
    with pytest.raises(ValueError, match="another model version"):
        score_shards(shards, qf, out, model_version="tiny:2", rank=0, world_size=1)


def test_two_ranks_split_the_shards_and_together_cover_them(tmp_path):
    write_pool(tmp_path / "pool", n_tar=4, n_parquet=1, per_shard=2)
    shards, _ = discover_shards([tmp_path / "pool"])
    for rank in (1, 0):
        score_shards(shards, MeanGrey(), tmp_path / "out", model_version="grey:1", rank=rank, world_size=2)
    ranks = [shard_meta(shard_output(tmp_path / "out", s))["rank"] for s in shards]
    assert ranks == [0, 0, 0, 1, 1]
    score_shards(shards, MeanGrey(), tmp_path / "one", model_version="grey:1", rank=0, world_size=1, workers=0)
    assert _scores(tmp_path / "out") == _scores(tmp_path / "one")


def _assert_same(got: dict, want: dict) -> None:
    """Same keys; scores equal up to float32 rounding (thread counts differ between processes)."""
    assert sorted(got) == sorted(want)
    np.testing.assert_allclose([got[k] for k in sorted(want)], [want[k] for k in sorted(want)], rtol=0, atol=1e-6)


def _cli_env():
    return dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


def _workspace_with_tiny_filter(tmp_path, tiny_path):
    from relcurate.models.registry import register_model
    from relcurate.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws")
    register_model(ws, kind="filter", name="tinyfilter", base_model=str(tiny_path))
    return ws


@pytest.fixture(scope="module")
def cli_pool(tiny_qwen_bpe, tmp_path_factory):
    """A workspace with the tiny filter, 6 small shards, and the uninterrupted in-process CLI run."""
    from typer.testing import CliRunner

    from relcurate.cli.main import app

    tmp_path = tmp_path_factory.mktemp("cli-pool")
    ws = _workspace_with_tiny_filter(tmp_path, tiny_qwen_bpe)
    write_pool(tmp_path / "pool", n_tar=5, n_parquet=1, per_shard=2)
    glob_arg = str(tmp_path / "pool" / "*")
    common = ["--model", "tinyfilter", "-w", str(ws.root), "--batch-size", "2", "--workers", "1"]
    res = CliRunner().invoke(app, ["pool", "score", glob_arg, "--out", str(tmp_path / "ref"), *common])
    assert res.exit_code == 0, res.output
    assert "shards scored" in res.output and "6 of 6" in res.output
    reference = _scores(tmp_path / "ref")
    assert len(reference) == 12
    return tmp_path, glob_arg, common, reference


@pytest.mark.slow
def test_cli_kill9_mid_run_then_resume_equals_uninterrupted(cli_pool):
    tmp_path, glob_arg, common, reference = cli_pool
    # kill -9 as soon as the first shard is on disk, then resume with the same command.
    cmd = [sys.executable, "-m", "relcurate.cli.main", "pool", "score", glob_arg, "--out", str(tmp_path / "run"), *common]
    proc = subprocess.Popen(cmd, env=_cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and not list((tmp_path / "run" / "shards").glob("*.parquet")):
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its DataLoader workers
    except ProcessLookupError:
        pass  # already gone: the assertion below says so
    proc.wait()
    done_at_kill = len(list((tmp_path / "run" / "shards").glob("*.parquet")))
    assert 1 <= done_at_kill < 6, "the run was not interrupted mid-way"
    resumed = subprocess.run(cmd, env=_cli_env(), capture_output=True, text=True, timeout=250)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done_at_kill} shards already done" in resumed.stdout
    _assert_same(_scores(tmp_path / "run"), reference)


@pytest.mark.slow
def test_same_command_under_accelerate_launch_with_two_processes(cli_pool):
    tmp_path, glob_arg, common, reference = cli_pool
    # On one machine accelerate 1.15's `--cpu` flag starts a single process (multi-CPU needs an
    # mpirun hostfile); `--multi_gpu` starts 2 through torchrun, and without CUDA they form a gloo
    # group (curation/pool/scoring.process_state). Shards split, same scores, one summary.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "-m", "relcurate.cli.main", "pool", "score", glob_arg, "--out", str(tmp_path / "acc"), *common]
    ran = subprocess.run(launch, env=_cli_env(), capture_output=True, text=True, timeout=280)
    assert ran.returncode == 0, ran.stderr[-3000:]
    _assert_same(_scores(tmp_path / "acc"), reference)
    metas = [shard_meta(p) for p in (tmp_path / "acc" / "shards").glob("*.parquet")]
    assert sorted(m["rank"] for m in metas) == [0, 0, 0, 1, 1, 1] and {m["world"] for m in metas} == {2}
    assert ran.stdout.count("pool score summary") == 1  # only the main process summarises


def test_keep_threshold_and_keep_rate(tmp_path):
    write_pool(tmp_path / "pool", n_tar=2, n_parquet=1, per_shard=10)
    shards, _ = discover_shards([tmp_path / "pool"])
    out = tmp_path / "out"
    score_shards(shards, MeanGrey(), out, model_version="grey:1", rank=0, world_size=1)
    all_scores = sorted(_scores(out).values(), reverse=True)
    res = write_keep_list(out, keep_rate=0.1)
    assert res.n_scored == 30 and res.n_kept == 3 and res.threshold == pytest.approx(all_scores[2])
    rows = pq.read_table(res.path).to_pylist()
    assert sorted((r["p_yes"] for r in rows), reverse=True) == pytest.approx(all_scores[:3])
    assert {"key", "url", "sha256", "p_yes", "model_version", "shard", "shard_kind", "member", "pool"} <= set(rows[0])
    res = write_keep_list(out, threshold=float(all_scores[4]), dest=tmp_path / "k.parquet")
    assert res.n_kept == 5
    with pytest.raises(ValueError, match="exactly one"):
        write_keep_list(out)
    shard_output(out, shards[0]).unlink()
    with pytest.raises(ValueError, match="not scored yet"):
        write_keep_list(out, keep_rate=0.5)
    assert write_keep_list(out, keep_rate=1.0, allow_partial=True).n_kept == 20


def test_keep_rate_ties_are_cut_deterministically(tmp_path):
    class Flat:
        def predict_proba(self, images):
            return np.full(len(images), 0.5, dtype=np.float32)

    write_pool(tmp_path / "pool", n_tar=2, n_parquet=0, per_shard=4)
    shards, _ = discover_shards([tmp_path / "pool"])
    score_shards(shards, Flat(), tmp_path / "out", model_version="flat:1", rank=0, world_size=1, workers=0)
    res = write_keep_list(tmp_path / "out", keep_rate=0.5)
    rows = pq.read_table(res.path).to_pylist()
    assert res.n_kept == 4 and [Path(r["shard"]).name for r in rows] == ["00000.tar"] * 4
    assert res.threshold == 0.5


def test_keep_list_ingests_with_provenance_from_shards_and_urls(workspace, tmp_path, served):
    from relcurate.curation.ingest.pipeline import detect_kind
    from relcurate.curation.intake import ingest_and_queue
    from relcurate.db.engine import read_scope
    from relcurate.db.models import Image as ImageRow, ImageSource

    www, base = served
    pool = tmp_path / "pool"
    pool.mkdir()
    tar_images = noise_images(4, seed=11)
    keys = write_wds_shard(pool / "00000.tar", tar_images, url_base=f"{base}/img")
    (www / "img").mkdir()
    for key, im in zip(keys, tar_images):
        (www / "img" / f"{key}.jpg").write_bytes(jpeg_bytes(im))
    url_images = noise_images(3, seed=12)
    for k, im in enumerate(url_images):
        (www / f"u{k}.jpg").write_bytes(jpeg_bytes(im))
    write_parquet_shard(pool / "urls.parquet", urls=[f"{base}/u{k}.jpg" for k in range(3)] + [f"{base}/missing.jpg"],
                        first_key=500)
    shards, _ = discover_shards([pool / "00000.tar", pool / "urls.parquet"])
    out = tmp_path / "out"
    score_shards(shards, MeanGrey(), out, model_version="grey:1", rank=0, world_size=1, allow_private_urls=True)
    summary = summarize(out)
    assert summary.n_scored == 7 and [b["reason"] for b in summary.bad] == ["http_error"]
    keep = write_keep_list(out, threshold=0.0)  # all 7
    assert detect_kind(keep.path) == "keep_list" and detect_kind(pool / "urls.parquet") == "parquet"
    (pool / "00000.tar").rename(pool / "moved.tar")  # one tar row must now come from its URL...
    write_wds_shard(pool / "00000.tar", tar_images[:3])  # ...the shard lost its last sample
    report = ingest_and_queue(workspace, keep.path, allow_private_urls=True, workers=1)
    assert report.added == 7 and report.pending_download == report.downloaded == 4 and not report.quarantined
    with read_scope(workspace.engine) as s:
        rows = s.exec(select(ImageSource, ImageRow).join(ImageRow)).all()
    assert len(rows) == 7 and all(img.status == "ok" for _, img in rows)
    by_key = {src.provenance["key"]: src for src, _ in rows}
    src = by_key[keys[0]]
    assert src.kind == "pool" and src.uri.endswith(f"00000.tar#{keys[0]}")
    assert src.provenance["shard"] == str(pool / "00000.tar") and src.provenance["model_version"] == "grey:1"
    assert src.provenance["pool"] == str(out.resolve()) and src.provenance["threshold"] == 0.0
    assert src.provenance["score"] == pytest.approx(_scores(out)[("00000.tar", keys[0])])
    assert by_key[keys[3]].uri == f"{base}/img/{keys[3]}.jpg"  # fetched from its URL
    assert by_key["000000500"].uri == f"{base}/u0.jpg"
    again = ingest_and_queue(workspace, keep.path, allow_private_urls=True, workers=1)
    assert again.added == 0 and again.already_known == 7
    with read_scope(workspace.engine) as s:
        assert len(s.exec(select(ImageSource)).all()) == 7


def test_keep_list_sha_mismatch_is_set_aside(workspace, tmp_path):
    from relcurate.curation.intake import ingest_and_queue

    pool = tmp_path / "pool"
    pool.mkdir()
    images = noise_images(2, seed=4)
    write_wds_shard(pool / "a.tar", images)
    shards, _ = discover_shards([pool / "a.tar"])
    score_shards(shards, MeanGrey(), tmp_path / "out", model_version="grey:1", rank=0, world_size=1)
    keep = write_keep_list(tmp_path / "out", threshold=0.0)
    write_wds_shard(pool / "a.tar", list(reversed(images)))  # same keys, other bytes
    report = ingest_and_queue(workspace, keep.path, download=False, workers=1)
    assert report.added == 0 and {q.reason for q in report.quarantined} == {"sha256_mismatch"}
    assert all("a.tar#" in q.detail for q in report.quarantined)


def test_cli_keep_and_ingest_of_the_keep_list(tmp_path):
    from typer.testing import CliRunner

    from relcurate.cli.main import app
    from relcurate.workspace import Workspace

    write_pool(tmp_path / "pool", n_tar=2, n_parquet=0, per_shard=5)
    shards, _ = discover_shards([tmp_path / "pool"])
    score_shards(shards, MeanGrey(), tmp_path / "out", model_version="grey:1", rank=0, world_size=1, workers=0)
    runner = CliRunner()
    res = runner.invoke(app, ["pool", "keep", str(tmp_path / "out"), "--keep-rate", "0.2"])
    assert res.exit_code == 0, res.output
    assert "kept 2 of 10" in res.output
    assert runner.invoke(app, ["pool", "keep", str(tmp_path / "out")]).exit_code == 2
    assert runner.invoke(app, ["pool", "keep", str(tmp_path / "nowhere"), "--threshold", "0.5"]).exit_code == 2
    ws = Workspace.init(tmp_path / "ws")
    res = runner.invoke(app, ["ingest", str(tmp_path / "out" / "keep.parquet"), "-w", str(ws.root), "--json",
                              "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output[res.output.index("{"):])["added"] == 2
    res = runner.invoke(app, ["pool", "score", str(tmp_path / "none*.tar"), "--model", "x", "--out",
                              str(tmp_path / "o2"), "-w", str(ws.root)])
    assert res.exit_code == 2  # no such model (checked before the shards)
