"""relsim training-set export: reference field names and layout, hash rules, caption sources,
determinism, the reference dataloader reading it, and the round trip through an empty workspace."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlmodel import select

from relcurate.testing.exports import URLS, build_curated, read_jsonl
from relcurate.accounts import create_user
from relcurate.curation.ingest.pipeline import ingest_source
from relcurate.curation.ingest.sources import reference_hash
from relcurate.db.engine import read_scope
from relcurate.db.models import Caption, ExportManifest, Image
from relcurate.exports.common import ExportError
from relcurate.exports.relsim_jsonl import export_relsim
from relcurate.workspace import Workspace

TWO_WAY = {"train": 1, "test": 1}


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("curated")
    ws = Workspace.init(tmp / "ws")
    cur = build_curated(ws, tmp)
    yield cur
    ws.engine.dispose()


def _all_rows(out: Path) -> list[dict]:
    return read_jsonl(out / "anonymous_captions_train.jsonl") + read_jsonl(out / "anonymous_captions_test.jsonl")


def test_layout_and_fields(curated, tmp_path):
    ws = curated.ws
    res = export_relsim(ws, tmp_path / "out", user="cur", splits=TWO_WAY)
    out = res.path
    names = sorted(p.name for p in out.iterdir())
    assert names == ["anonymous_captions_test.jsonl", "anonymous_captions_train.jsonl", "images", "manifest.json"]
    rows = _all_rows(out)
    for line in (out / "anonymous_captions_train.jsonl").read_text().splitlines():
        assert list(json.loads(line)) == ["image_hash", "caption", "url_link"]  # reference field order
    for r in rows:
        img = out / "images" / f"{r['image_hash']}.png"
        assert img.exists()
        with PILImage.open(img) as im:
            assert im.format == "PNG"  # the JPEG originals were re-encoded
    # local files: image_hash is the content sha256 and url_link is empty
    p19 = next(r for r in rows if r["caption"] == "A {Thing} alone.")
    assert p19["url_link"] == "" and len(p19["image_hash"]) == 64
    # only accepted captions, rejected group g5 and proposed-only g6 left out
    captions = {r["caption"] for r in rows}
    assert not any("g5" in c or "g6" in c for c in captions) and "Not accepted {Y}." not in captions
    assert any("g4" in c for c in captions)  # a draft group with an accepted caption is included
    # sorted within each split, no duplicate lines
    for split in ("train", "test"):
        lines = (out / f"anonymous_captions_{split}.jsonl").read_text().splitlines()
        assert len(lines) == len(set(lines))
        keys = [(json.loads(x)["image_hash"], json.loads(x)["caption"]) for x in lines]
        assert keys == sorted(keys)
    counts = res.counts
    assert sum(counts["rows"].values()) == len(rows) == 3 * 4 + 2 + 4  # g0-g3 full, g4 minus URL, 4 image captions
    assert counts["image_files"] == len(list((out / "images").iterdir()))
    manifest = json.loads((out / "manifest.json").read_text())
    for rel, info in manifest["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == info["sha256"]
    assert manifest["splits"]["seed"] == 0 and manifest["relcurate_version"]
    with read_scope(ws.engine) as s:
        row = s.exec(select(ExportManifest).where(ExportManifest.id == res.manifest_id)).one()
        assert row.kind == "relsim" and row.path == str(out) and row.counts == counts
        assert row.files["images/"]["count"] == counts["image_files"]


def test_caption_sources_and_pending(curated, tmp_path):
    ws = curated.ws
    group = _all_rows(export_relsim(ws, tmp_path / "g", user="cur", splits=TWO_WAY, caption_source="group",
                                    images="reference").path)
    image = _all_rows(export_relsim(ws, tmp_path / "i", user="adm", splits=TWO_WAY, caption_source="image",
                                    images="reference").path)
    assert all("group" in r["caption"] for r in group) and len(group) == 14
    assert not any("group" in r["caption"] for r in image) and len(image) == 4
    assert not (tmp_path / "g" / "images").exists()
    pending = _all_rows(export_relsim(ws, tmp_path / "p", user="cur", splits=TWO_WAY, include_pending=True,
                                      images="reference").path)
    url_row = [r for r in pending if r["url_link"] == URLS[0]]
    assert len(url_row) == 1 and url_row[0]["image_hash"] == reference_hash(URLS[0])  # md5(url) convention
    local = _all_rows(export_relsim(ws, tmp_path / "s", user="cur", splits=TWO_WAY, url_link="source-uri",
                                    images="reference").path)
    assert all(r["url_link"].startswith("file://") for r in local)


def test_same_state_twice_is_byte_identical(curated, tmp_path):
    a = export_relsim(curated.ws, tmp_path / "a", user="cur").path
    b = export_relsim(curated.ws, tmp_path / "b", user="cur").path
    assert subprocess.run(["diff", "-r", str(a), str(b)], capture_output=True).returncode == 0


def test_refuses_existing_folder_and_overwrites_atomically(curated, tmp_path):
    out = tmp_path / "out"
    export_relsim(curated.ws, out, user="cur", images="reference")
    with pytest.raises(ExportError, match="already exists"):
        export_relsim(curated.ws, out, user="cur", images="reference")
    res = export_relsim(curated.ws, out, user="cur", overwrite=True)
    assert (res.path / "images").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old folders left


def test_round_trip_through_an_empty_workspace(db_url, tmp_path):
    """curated store -> relsim export -> `ingest` both JSONL files into an empty workspace ->
    export again: the JSONL files and images are byte-identical (on each back end)."""
    ws = Workspace.init(tmp_path / "ws", db_url=db_url)
    build_curated(ws, tmp_path)
    first = export_relsim(ws, tmp_path / "first", user="cur", splits=TWO_WAY, include_pending=True).path
    ws.engine.dispose()

    ws2 = Workspace.init(tmp_path / "ws2")
    create_user(ws2.engine, "cur", "password-123", "curator")
    for split in ("train", "test"):
        report = ingest_source(ws2, first / f"anonymous_captions_{split}.jsonl", download=False, workers=1)
        assert not report.quarantined
    with read_scope(ws2.engine) as s:
        caps = s.exec(select(Caption).where(Caption.image_id.is_not(None))).all()
        assert {c.source for c in caps} == {"import"} and {c.status for c in caps} == {"accepted"}
        assert {i.split for i in s.exec(select(Image))} == {"train", "test"}
    second = export_relsim(ws2, tmp_path / "second", user="cur", splits=TWO_WAY, include_pending=True).path
    for name in ("anonymous_captions_train.jsonl", "anonymous_captions_test.jsonl"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert sorted(p.name for p in (first / "images").iterdir()) == sorted(p.name for p in (second / "images").iterdir())
    for p in (first / "images").iterdir():
        assert p.read_bytes() == (second / "images" / p.name).read_bytes()
    # re-ingesting the same files adds nothing
    again = ingest_source(ws2, first / "anonymous_captions_train.jsonl", download=False, workers=1)
    assert again.added == 0 and "0 added" in again.warnings[-1]
    ws2.engine.dispose()


def test_reference_dataloader_reads_the_export(curated, tmp_path):
    """relsim 0.1.0's own ImageTextDataset (imports fine without a GPU) reads our files."""
    pytest.importorskip("qwen_vl_utils")
    from relcurate.testing.models import tiny_qwen_path
    from relsim.dataloader import ImageTextDataset, create_collate_fn
    from transformers import AutoProcessor

    out = export_relsim(curated.ws, tmp_path / "out", user="cur", splits=TWO_WAY).path
    processor = AutoProcessor.from_pretrained(tiny_qwen_path("bpe"))
    ds = ImageTextDataset([str(out / "anonymous_captions_train.jsonl"), str(out / "anonymous_captions_test.jsonl")],
                          processor, str(out / "images"), shuffle=False)
    rows = _all_rows(out)
    assert len(ds) == len(rows)
    items = [ds[i] for i in range(len(ds))]
    assert ds.corrupted_count == 0  # every image found and decoded (no black placeholders)
    assert [(it["image_id"], it["caption"]) for it in items] == [(r["image_hash"], r["caption"]) for r in rows]
    batch = create_collate_fn(processor)(items[:2])
    assert batch["input_ids"].shape[0] == 2 and batch["pixel_values"].shape[0] > 0


def test_link_mode_hard_links_png_originals(curated, tmp_path):
    ws = curated.ws
    out = export_relsim(ws, tmp_path / "out", user="cur", images="link").path
    linked = [p for p in (out / "images").iterdir() if p.stat().st_nlink > 1]
    converted = [p for p in (out / "images").iterdir() if p.stat().st_nlink == 1]
    assert linked and len(converted) == 2  # the two JPEG originals are re-encoded, not linked
    with pytest.raises(ValueError):
        export_relsim(ws, tmp_path / "bad", user="cur", url_link="nonsense")
    assert not (tmp_path / "bad").exists()
