"""Issue 15: no input can stop a run, escape its folder or be lost. One regression test per finding
(on SQLite and PostgreSQL where a store is involved) and the whole hostile corpus through the CLI."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select
from typer.testing import CliRunner

from relcurate.curation.ingest.download import RefusedURL, check_url, fetch_all
from relcurate.curation.ingest.pipeline import ingest_source
from relcurate.curation.ingest.sources import file_uri, read_reference_jsonl, read_url_list
from relcurate.curation.ingest.store_writes import ingest_items, quarantine_report
from relcurate.curation.ingest.sources import walk_folder
from relcurate.curation.intake import download_and_queue, ingest_and_queue
from relcurate.db.engine import session_scope
from relcurate.db.models import AuditEvent, Image, ImageSource, LabelTask, NearDuplicate, RejectedRecord, SeedGroup
from relcurate.testing.hostile import loopback_server, make_hostile_corpus, png_bytes, tree_state
from relcurate.testing.images import OK, make_mixed_folder, realistic_jpegs

REPO = Path(__file__).resolve().parents[1]


def _count(ws, model, *where) -> int:
    with session_scope(ws.engine) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def _image_of(ws, uri: str) -> Image | None:
    with session_scope(ws.engine) as s:
        return s.exec(select(Image).join(ImageSource).where(ImageSource.uri == uri)).first()


def _places(ws) -> list[tuple[str, str]]:
    return [(where, reason) for where, reason, _ in quarantine_report(ws)]


def _assert_rejected(ws, place: str, reason: str) -> None:
    found = [(w, r) for w, r in _places(ws) if place in w]
    assert found, f"{place}: not reported (have {_places(ws)})"
    assert any(r == reason for _, r in found), f"{place}: {found} is not {reason}"


@pytest.fixture
def server():
    with loopback_server() as url:
        yield url


# -- 1. path traversal through imported names ------------------------------------------------

def test_traversal_hashes_rejected_at_read_and_never_exported(workspace, tmp_path):
    outside = tmp_path / "victim.png"
    outside.write_bytes(png_bytes((1, 2, 3)))
    folder = tmp_path / "data" / "images"
    folder.mkdir(parents=True)
    (folder / "good.png").write_bytes(png_bytes((200, 0, 0)))
    jsonl = tmp_path / "data" / "anonymous_captions_train.jsonl"
    jsonl.write_text("\n".join([
        json.dumps({"image_hash": "good", "caption": "a {Object}", "url_link": ""}),
        json.dumps({"image_hash": "../../victim", "caption": "x", "url_link": ""}),
        json.dumps({"image_hash": str(outside.with_suffix("")), "caption": "x", "url_link": ""}),
    ]) + "\n")
    ingest_source(workspace, jsonl, image_folder=folder, workers=1)
    _assert_rejected(workspace, f"{jsonl.name}:2", "bad_image_hash")
    _assert_rejected(workspace, f"{jsonl.name}:3", "bad_image_hash")
    assert _count(workspace, Image, Image.status == "ok") == 1

    # A hash stored before validation existed must not name an export file either.
    with session_scope(workspace.engine) as s:
        src = s.exec(select(ImageSource).where(ImageSource.ref_hash == "good")).one()
        src.ref_hash = "../../../victim"
    from relcurate.accounts import create_user
    from relcurate.exports.relsim_jsonl import export_relsim
    from relcurate.exports.sft import export_captioner_sft

    create_user(workspace.engine, "cur", "password123", "curator")
    before = outside.read_bytes()
    out = tmp_path / "exports" / "deep" / "er"
    out.parent.mkdir(parents=True)
    for fn, name in ((export_relsim, "relsim"), (export_captioner_sft, "sft")):
        result = fn(workspace, out / name, user="cur")
        for dirpath, _d, files in os.walk(result.path):
            for f in files:
                assert Path(dirpath, f).resolve().is_relative_to(result.path.resolve())
        names = os.listdir(result.path / "images")
        assert names and all(".." not in n and "/" not in n for n in names)
    assert outside.read_bytes() == before
    assert {n for n in os.listdir(tmp_path) if not n.startswith("store.db")} == {"victim.png", "data", "exports", "ws"}


# -- 2. one bad record never stops the file ---------------------------------------------------

def test_bad_text_and_long_hash_are_one_rejected_record_each(workspace, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rows = []
    for i in range(4):
        (folder / f"h{i}.png").write_bytes(png_bytes((40 * i, 100, 200)))
        rows.append(json.dumps({"image_hash": f"h{i}", "caption": f"good {i}", "url_link": ""}))
    rows.insert(1, '{"image_hash": "h0", "caption": "lone \\udcff", "url_link": ""}')
    rows.insert(3, '{"image_hash": "h1", "caption": "nul \\u0000 here", "url_link": ""}')
    rows.insert(5, json.dumps({"image_hash": "b" * 300, "caption": "x", "url_link": ""}))
    jsonl = tmp_path / "anonymous_captions_train.jsonl"
    jsonl.write_text("\n".join(rows) + "\n")
    report = ingest_source(workspace, jsonl, image_folder=folder, workers=1)
    assert report.added == 4
    _assert_rejected(workspace, f"{jsonl.name}:2", "bad_text")
    _assert_rejected(workspace, f"{jsonl.name}:4", "bad_text")
    _assert_rejected(workspace, f"{jsonl.name}:6", "bad_image_hash")
    detail = next(d for w, _r, d in quarantine_report(workspace) if w.endswith(":6"))
    assert len(detail) < 200  # the message does not echo the whole input


# -- 3. malformed URLs are records, and never block other downloads ---------------------------

def test_malformed_urls_rejected_when_read(tmp_path):
    urls = tmp_path / "u.txt"
    urls.write_text("http://127.0.0.1:99999/x.png\nhttp://[::1\nfile:///etc/passwd\njavascript:alert(1)\n"
                    "ftp://h/x.png\nnot a url\nhttp://ok.example/x.png\nhttp://a b/x.png\n")
    got = list(read_url_list(urls))
    bad = [g for g in got if not hasattr(g, "uri")]
    assert [b.where.rsplit(":", 1)[1] for b in bad] == ["1", "2", "3", "4", "5", "6", "8"]
    assert all(b.reason == "bad_url" for b in bad)


def test_seed_record_with_bad_url_is_rejected_not_verified(workspace, tmp_path):
    seed = tmp_path / "seed_group.json"
    seed.write_text(json.dumps([
        {"anonymous_caption": "\"ok {Object}\"", "image_urls": ["http://a.example/1.png", "http://a.example/2.png"]},
        {"anonymous_caption": "\"bad\"", "image_urls": ["http://a.example/3.png", "javascript:alert(1)"]},
    ]))
    ingest_source(workspace, seed, download=False)
    assert _count(workspace, SeedGroup) == 1
    _assert_rejected(workspace, "seed_group.json:record 1", "bad_record")


def test_a_stored_malformed_url_does_not_block_the_good_ones(workspace, server, tmp_path):
    from relcurate.curation.ingest.sources import SourceItem
    from relcurate.curation.ingest.store_writes import register_pending

    with session_scope(workspace.engine) as s:  # as an older version would have stored them
        for bad in ("http://127.0.0.1:99999/x.png", "http://[::1"):
            register_pending(s, SourceItem(uri=bad, kind="url", url=bad))
    urls = tmp_path / "u.txt"
    urls.write_text(f"{server}/red.png\n{server}/blue.png\n")
    report = ingest_source(workspace, urls, allow_private_urls=True)
    assert report.downloaded == 2
    assert _count(workspace, Image, Image.status == "pending_download") == 0
    _assert_rejected(workspace, "http://[::1", "bad_url")
    _assert_rejected(workspace, "99999", "bad_url")


# -- 4. overall download deadlines -----------------------------------------------------------

def test_slow_drip_server_is_cut_off_by_the_deadlines(server):
    from relcurate.testing.hostile import drip_requests

    results = {}
    before = drip_requests()
    asyncio.run(fetch_all([f"{server}/drip"], results.__setitem__, timeout_s=5.0, retries=10,
                          allow_private=True, backoff_s=0.05, attempt_deadline_s=0.6, url_deadline_s=1.5))
    r = results[f"{server}/drip"]
    assert r.data is None and r.retryable
    assert "deadline" in r.detail or "longer than" in r.detail
    # The URL's deadline (1.5 s) ends the retries: at most 3 attempts of 0.6 s, not 1 + 10.
    assert 1 <= drip_requests() - before <= 3


def test_deadline_settings_reach_the_downloader(sqlite_workspace, server, tmp_path):
    ws = sqlite_workspace
    ws.ingest.download_attempt_deadline_s, ws.ingest.download_url_deadline_s = 0.5, 1.0
    urls = tmp_path / "u.txt"
    urls.write_text(f"{server}/drip\n{server}/red.png\n")
    from relcurate.testing.hostile import drip_requests

    before = drip_requests()
    report = ingest_source(ws, urls, allow_private_urls=True)
    assert 1 <= drip_requests() - before <= 2  # the workspace's 1.0 s URL deadline: two 0.5 s attempts at most
    assert report.downloaded == 1
    assert any("/drip" in w and "pending" in w for w in report.warnings)


# -- 5. post-ingest steps catch up after a kill -------------------------------------------------

def test_post_ingest_steps_catch_up_after_a_kill(workspace, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, data in enumerate(realistic_jpegs(3, (96, 72), seed=5)):
        (src / f"p{i}.jpg").write_bytes(data)
    (src / "p0_copy.png").write_bytes(_reencode(src / "p0.jpg"))  # a near-duplicate of p0
    # "Killed after the last row write": rows stored, no near-duplicates, no labeling tasks.
    ingest_items(workspace, walk_folder(src), workers=1)
    assert _count(workspace, LabelTask) == 0 and _count(workspace, NearDuplicate) == 0
    again = ingest_and_queue(workspace, src, workers=1)
    assert again.added == 0
    assert _count(workspace, LabelTask) == _count(workspace, Image, Image.status == "ok") == 4
    assert _count(workspace, NearDuplicate) >= 1
    pairs = _count(workspace, NearDuplicate)
    ingest_and_queue(workspace, src, workers=1)  # idempotent
    assert _count(workspace, NearDuplicate) == pairs and _count(workspace, LabelTask) == 4


def _reencode(path: Path) -> bytes:
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    with PILImage.open(path) as im:
        im.convert("RGB").save(buf, "PNG")
    return buf.getvalue()


# -- 6. changed and repaired files are read again; --recheck ----------------------------------

def test_changed_and_repaired_files_are_read_again(workspace, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = realistic_jpegs(3, (120, 90), seed=9)
    (src / "fixme.jpg").write_bytes(good[0][: len(good[0]) // 2])  # truncated
    (src / "swap.jpg").write_bytes(good[1])
    first = ingest_source(workspace, src, workers=1)
    assert first.added == 1 and len(first.quarantined) == 1
    fixme, swap = file_uri(str(src / "fixme.jpg")), file_uri(str(src / "swap.jpg"))
    old_swap = _image_of(workspace, swap)

    (src / "fixme.jpg").write_bytes(good[0])  # repaired
    (src / "swap.jpg").write_bytes(good[2])  # replaced
    os.utime(src / "swap.jpg", ns=(time.time_ns(), time.time_ns() + 5_000_000))
    again = ingest_source(workspace, src, workers=1)
    assert again.changed == 2 and again.added == 2 and again.quarantined == []
    assert _image_of(workspace, fixme).status == "ok"
    new_swap = _image_of(workspace, swap)
    assert new_swap.sha256 != old_swap.sha256
    assert _count(workspace, Image, Image.status == "quarantined") == 0  # the stale quarantine row went
    assert _count(workspace, Image, Image.id == old_swap.id) == 1  # the old image is kept, not deleted
    assert ingest_source(workspace, src, workers=1).already_known == 2  # stable afterwards


def test_recheck_reverifies_quarantined_items(workspace, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(realistic_jpegs(1, (200, 150), seed=3)[0])
    workspace.ingest.max_pixels = 1000  # too strict: quarantined as a "bomb"
    assert len(ingest_source(workspace, src, workers=1).quarantined) == 1
    workspace.ingest.max_pixels = 64_000_000
    assert ingest_source(workspace, src, workers=1).already_known == 1  # unchanged file: skipped
    report = ingest_source(workspace, src, workers=1, recheck=True)
    assert report.rechecked == 1 and report.added == 1
    assert _image_of(workspace, file_uri(str(src / "a.jpg"))).status == "ok"


# -- 7. concurrent ingests of overlapping inputs ----------------------------------------------

_CHILD = """
import sys
from relcurate.workspace import Workspace
from relcurate.curation.intake import ingest_and_queue
ws = Workspace.open(sys.argv[1], db_url=sys.argv[2])
for src in sys.argv[3:]:
    ingest_and_queue(ws, src, workers=1, download=False)
"""


def test_two_concurrent_ingests_record_everything_once(workspace, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    jpegs = realistic_jpegs(24, (64, 48), seed=11)
    for i, data in enumerate(jpegs):
        (a / f"i{i}.jpg").write_bytes(data)
        if i % 2 == 0:
            (b / f"i{i}.jpg").write_bytes(data)  # same bytes, other path: one image, two sources
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # Each child ingests both folders in opposite order, so the same URIs and shas collide.
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(workspace.root), workspace.db_url, *order],
                              env=env, stderr=subprocess.PIPE, text=True)
             for order in ((str(a), str(b)), (str(b), str(a)))]
    for p in procs:
        _out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
    assert _count(workspace, Image) == 24
    assert _count(workspace, ImageSource) == 36
    assert _count(workspace, LabelTask) == 24


def test_two_concurrent_relsim_imports_add_each_caption_once(workspace, tmp_path):
    from relcurate.db.models import Caption

    rel = tmp_path / "r"
    (rel / "images").mkdir(parents=True)
    rows = []
    for i, data in enumerate(realistic_jpegs(6, (64, 48), seed=31)):
        (rel / "images" / f"h{i}.png").write_bytes(_reencode_bytes(data))
        rows.append(json.dumps({"image_hash": f"h{i}", "caption": f"{{Object}} {i}", "url_link": ""}))
    jsonl = rel / "anonymous_captions_train.jsonl"
    jsonl.write_text("\n".join(rows) + "\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(workspace.root), workspace.db_url, str(jsonl)],
                              env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
    assert _count(workspace, Image) == 6
    assert _count(workspace, Caption) == 6


def _reencode_bytes(data: bytes) -> bytes:
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    with PILImage.open(io.BytesIO(data)) as im:
        im.save(buf, "PNG")
    return buf.getvalue()


def test_pool_sync_racing_another_writer_skips_its_tasks(workspace, tmp_path):
    import threading

    from sqlalchemy import insert

    from relcurate.curation.labeling.leases import sync_pool

    src = tmp_path / "src"
    src.mkdir()
    for i, data in enumerate(realistic_jpegs(5, (64, 48), seed=21)):
        (src / f"i{i}.jpg").write_bytes(data)
    ingest_items(workspace, walk_folder(src), workers=1)
    with session_scope(workspace.engine) as s:
        first = s.exec(select(func.min(Image.id))).one()
    # Another writer has inserted a task for `first` but not committed yet: the sync sees no task
    # there, inserts one too, waits on the other's lock, and must skip it rather than crash.
    conn = workspace.engine.connect()
    tx = conn.begin()
    conn.execute(insert(LabelTask).values(kind="filter", image_id=first, order_key=1, sample_u=0.5, target=1,
                                          assigned=0, is_open=True))
    outcome: list = []
    t = threading.Thread(target=lambda: outcome.append(_try(lambda: sync_pool(workspace.engine, full=True))))
    t.start()
    time.sleep(1.0)
    tx.commit()
    conn.close()
    t.join(60)
    assert outcome and not isinstance(outcome[0], BaseException), outcome
    assert _count(workspace, LabelTask) == 5


def _try(fn):
    try:
        return fn()
    except BaseException as exc:  # reported by the test, not lost in the thread
        return exc


# -- 8. symlinks out of the tree; quarantine cap -----------------------------------------------

def test_symlink_out_of_tree_not_followed_and_quarantine_capped(workspace, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    secret = tmp_path / "passwd"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 10)
    os.symlink(secret, src / "x.png")
    os.symlink("real.png", src / "inside.png")
    (src / "real.png").write_bytes(png_bytes((9, 9, 9)))
    (src / "junk.jpg").write_bytes(b"junk " * 5000)
    (src / "small_junk.jpg").write_bytes(b"junk")
    workspace.ingest.quarantine_max_bytes = 1000
    ingest_source(workspace, src, workers=1)
    _assert_rejected(workspace, "x.png", "symlink_outside_source")
    assert _image_of(workspace, file_uri(str(src / "inside.png"))).status == "ok"
    kept = [p.read_bytes() for p in (workspace.root / "quarantine").iterdir()]
    assert b"junk" in kept and not any(b"root:" in k for k in kept)
    assert all(len(k) <= 1000 for k in kept)
    big = _image_of(workspace, file_uri(str(src / "junk.jpg")))
    assert big.quarantine_reason == "not_an_image" and "not kept" in big.quarantine_detail


# -- 9. the CLI is an operator tool with an audit trail ------------------------------------------

def test_cli_account_changes_are_audited_with_the_operator(sqlite_workspace):
    from relcurate.cli.main import app

    ws, runner = sqlite_workspace, CliRunner()
    args = ["-w", str(ws.root)]
    r = runner.invoke(app, ["users", "add", "bob", "--role", "annotator", "--password", "password123",
                            "--operator", "alice-ops", *args])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "role", "bob", "admin", *args], env={"RELCURATE_OPERATOR": "carol"})
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "passwd", "bob", *args], env={"RELCURATE_OPERATOR": "carol"})
    pw = r.output.rsplit(":", 1)[1].strip()
    with session_scope(ws.engine) as s:
        events = [(e.channel, e.actor, e.action, e.target, json.dumps(e.detail))
                  for e in s.exec(select(AuditEvent).order_by(AuditEvent.id))]
    assert [e[:4] for e in events] == [("cli", "alice-ops", "user.create", "bob"), ("cli", "carol", "user.role", "bob"),
                                       ("cli", "carol", "user.password", "bob")]
    assert all(pw not in e[4] and "password123" not in e[4] for e in events)  # never the secret
    listing = runner.invoke(app, ["users", "audit", *args]).output
    assert "carol" in listing and pw not in listing
    help_text = runner.invoke(app, ["export", "relsim", "--help"]).output
    flat = " ".join("".join(c if c.isascii() else " " for c in help_text).split())
    assert "not a permission check" in flat
    readme = (REPO / "README.md").read_text()
    assert "operator tool" in readme and "security boundary" in readme


# -- 10. names ending in a dot ------------------------------------------------------------------

@pytest.mark.parametrize("host", ["localhost.", "LOCALHOST", "127.0.0.1.", "foo.localhost.", "[::1]", "0x7f.0.0.1."])
def test_loopback_spellings_refused_without_the_resolver(host):
    def resolver(*a, **k):
        if host == "0x7f.0.0.1.":  # not an IP literal to Python: resolved, by the normalised name
            assert a[0] == "0x7f.0.0.1"
            return [(2, 1, 6, "", ("127.0.0.1", 80))]
        raise AssertionError(f"resolver called for {a[0]!r}")

    with pytest.raises(RefusedURL):
        check_url(f"http://{host}/x.png", resolve=resolver)


# -- the whole hostile corpus through `relcurate ingest` ------------------------------------------

def test_cli_ingest_of_the_hostile_corpus(workspace, server, tmp_path):
    from relcurate.cli.main import app

    corpus = make_hostile_corpus(tmp_path / "corpus", server)
    outside_before = tree_state(tmp_path / "corpus")
    runner = CliRunner()
    r = runner.invoke(app, ["ingest", *map(str, corpus.inputs), "--allow-private-urls", "--workers", "1", "--json",
                            "-w", str(workspace.root), "--db", workspace.db_url])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{"):])
    assert _count(workspace, AuditEvent, AuditEvent.action == "ingest", AuditEvent.channel == "cli") == 1

    folder = corpus.inputs[0]
    for rel, outcome in corpus.folder_expected.items():
        img = _image_of(workspace, file_uri(os.path.join(str(folder), rel)))
        if outcome == "symlink_outside_source":
            assert img is None
            _assert_rejected(workspace, rel, outcome)
        elif outcome in (OK, "duplicate"):
            assert img is not None and img.status == "ok", rel
        else:
            assert img is not None and img.status == "quarantined" and img.quarantine_reason == outcome, rel
    for place, reason in corpus.rejected:
        _assert_rejected(workspace, place, reason)
    for url in corpus.good_urls:
        img = _image_of(workspace, url)
        assert img is not None and img.status == "ok", url
    with session_scope(workspace.engine) as s:
        hashes = set(s.exec(select(ImageSource.ref_hash).where(ImageSource.ref_hash.is_not(None))))
    assert set(corpus.relsim_good_hashes) <= hashes
    # every good item once: sources unique by construction, images unique by content
    with session_scope(workspace.engine) as s:
        shas = [x for x in s.exec(select(Image.sha256).where(Image.sha256.is_not(None)))]
    assert len(shas) == len(set(shas))
    assert report["quarantined"] and _count(workspace, Image, Image.status == "pending_download") == 0

    # nothing written outside the workspace: the corpus tree (victim, secret) is untouched
    assert tree_state(tmp_path / "corpus") == outside_before
    assert not any(corpus.secret.read_bytes() in p.read_bytes()
                   for p in (workspace.root / "quarantine").iterdir())

    # and the exports stay inside their folder
    from relcurate.accounts import create_user

    create_user(workspace.engine, "cur", "password123", "curator")
    out = tmp_path / "exp"
    for kind in ("relsim", "captioner-sft"):
        r = runner.invoke(app, ["export", kind, str(out / kind), "--as-user", "cur", "-w", str(workspace.root),
                                "--db", workspace.db_url])
        assert r.exit_code == 0, r.output
    assert tree_state(tmp_path / "corpus") == outside_before
    assert {n for n in os.listdir(tmp_path) if not n.startswith("store.db")} == {"corpus", "exp", "ws"}
    again = runner.invoke(app, ["ingest", *map(str, corpus.inputs), "--allow-private-urls", "--workers", "1", "--json",
                                "-w", str(workspace.root), "--db", workspace.db_url])
    assert again.exit_code == 0
    assert json.loads(again.output[again.output.index("{"):])["added"] == 0
