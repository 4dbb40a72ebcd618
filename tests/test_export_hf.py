"""Hugging Face export: loadable with datasets.load_from_disk, Image feature by path or embedded,
parquet shards with the features, deterministic bytes, sharding, and the Hub token check."""
from __future__ import annotations

import subprocess

import pyarrow.parquet as pq
import pytest

from relcurate.testing.exports import build_curated, read_jsonl
from relcurate.exports.common import ExportError
from relcurate.exports.hf import _shard_bounds, export_hf
from relcurate.exports.relsim_jsonl import export_relsim
from relcurate.workspace import Workspace

datasets = pytest.importorskip("datasets")
TWO_WAY = {"train": 1, "test": 1}


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf")
    ws = Workspace.init(tmp / "ws")
    cur = build_curated(ws, tmp)
    yield cur
    ws.engine.dispose()


@pytest.mark.parametrize("embed", [False, True], ids=["by-path", "embedded"])
def test_load_from_disk_matches_the_relsim_rows(curated, tmp_path, embed):
    ws = curated.ws
    res = export_hf(ws, tmp_path / "hf", user="cur", splits=TWO_WAY, embed_images=embed, include_pending=True)
    ref = export_relsim(ws, tmp_path / "jsonl", user="cur", splits=TWO_WAY, include_pending=True,
                        images="reference").path
    dd = datasets.load_from_disk(str(res.path / "hf"))
    assert isinstance(dd, datasets.DatasetDict) and list(dd) == ["train", "test"]
    assert isinstance(dd["train"].features["image"], datasets.Image)
    for split in ("train", "test"):
        rows = read_jsonl(ref / f"anonymous_captions_{split}.jsonl")
        ds = dd[split]
        assert ds["image_hash"] == [r["image_hash"] for r in rows]
        assert ds["caption"] == [r["caption"] for r in rows]
        assert ds["url_link"] == [r["url_link"] for r in rows]
        raw = ds.with_format("arrow")["image"].to_pylist()
        for r, cell, item in zip(rows, raw, ds):
            if r["url_link"].startswith("https://"):  # the pending URL image: no picture
                assert cell is None and item["image"] is None
                continue
            assert item["image"].size[0] > 0
            if embed:
                assert cell["bytes"] and not cell["path"].startswith("/")
            else:
                assert cell["bytes"] is None and cell["path"].startswith(str(ws.root))
    assert res.counts["rows"] == {k: len(read_jsonl(ref / f"anonymous_captions_{k}.jsonl")) for k in TWO_WAY}
    # parquet shards in the Hub layout carry the same rows and the features
    for split in ("train", "test"):
        table = pq.read_table(res.path / "data" / f"{split}-00000-of-00001.parquet")
        assert table.column("image_hash").to_pylist() == dd[split]["image_hash"]
        features = datasets.Features.from_arrow_schema(table.schema)
        assert isinstance(features["image"], datasets.Image)


def test_parquet_loads_with_load_dataset(curated, tmp_path):
    res = export_hf(curated.ws, tmp_path / "hf", user="cur", splits=TWO_WAY, embed_images=True)
    dd = datasets.load_dataset("parquet", data_dir=str(res.path / "data"), cache_dir=str(tmp_path / "cache"))
    assert sorted(dd) == ["test", "train"] and dd["train"][0]["image"].size[0] > 0


def test_same_state_twice_is_byte_identical(curated, tmp_path):
    a = export_hf(curated.ws, tmp_path / "a", user="cur", embed_images=True).path
    b = export_hf(curated.ws, tmp_path / "b", user="cur", embed_images=True).path
    assert subprocess.run(["diff", "-r", str(a), str(b)], capture_output=True).returncode == 0


def test_small_shards_and_filter_dataset(curated, tmp_path):
    from relcurate.curation.labeling.agreement import Consensus

    ws, ids = curated.ws, curated.ids
    labels = {ids[k]: Consensus(ids[k], a, "majority", 1, 0) for k, a in
              (("p00", "yes"), ("p19", "no"), ("p20", "yes"), ("j101", "no"))}
    res = export_hf(ws, tmp_path / "f", user="cur", dataset="filter", embed_images=True, max_shard_bytes=1,
                    splits={"all": 1}, consensus_fn=lambda engine: labels)
    ds = datasets.load_from_disk(str(res.path / "hf"))["all"]
    assert ds.features["label"].names == ["No", "Yes"]
    assert sorted(ds.features["label"].int2str(x) for x in ds["label"]) == ["No", "No", "Yes", "Yes"]
    assert len(list((res.path / "hf" / "all").glob("data-*.arrow"))) == 4  # one image per shard
    assert res.counts["classes"] == {"all": {"No": 2, "Yes": 2}}


def test_shard_bounds():
    assert _shard_bounds([], 10, 5) == [(0, 0)]
    assert _shard_bounds([4, 4, 4, 4], 10, 100) == [(0, 2), (2, 4)]
    assert _shard_bounds([1] * 5, 100, 2) == [(0, 2), (2, 4), (4, 5)]
    assert _shard_bounds([50, 1], 10, 100) == [(0, 1), (1, 2)]


def test_push_needs_a_token(curated, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no cached login either
    with pytest.raises(ExportError, match="token"):
        export_hf(curated.ws, tmp_path / "x", user="cur", push_to_hub="someone/relsim")
    assert not (tmp_path / "x").exists()
