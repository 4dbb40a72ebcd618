"""Model registry and whole-workspace scoring (embeddings, filter predictions, index)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlmodel import select

from relcurate.testing.models import tiny_qwen_path
from relcurate.curation.ingest.pipeline import ingest_source
from relcurate.db.engine import read_scope
from relcurate.db.models import Prediction
from relcurate.models.baselines import AttributeEmbedder
from relcurate.models.registry import (ModelNotFound, get_model_version, list_model_versions, load_model,
                                       register_model, update_model_version)
from relcurate.models.workspace_scoring import (build_workspace_index, embed_workspace, load_vectors,
                                                load_workspace_index, score_filter_workspace, usable_images)


@pytest.fixture
def ws_with_images(workspace, tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        PILImage.fromarray(rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)).save(src / f"{i}.png")
    (src / "bad.png").write_bytes(b"nope")
    ingest_source(workspace, src, workers=1)
    return workspace


def test_versions_and_lookup(workspace):
    a1 = register_model(workspace, kind="baseline", name="attr", base_model="attribute")
    a2 = register_model(workspace, kind="baseline", name="attr", base_model="attribute", metrics={"x": 1})
    assert (a1.version, a2.version) == (1, 2)
    assert get_model_version(workspace, "attr").version == 2
    assert get_model_version(workspace, "attr", 1).id == a1.id
    assert get_model_version(workspace, "attr:1").id == a1.id
    with pytest.raises(ModelNotFound):
        get_model_version(workspace, "nope")
    with pytest.raises(ValueError):
        register_model(workspace, kind="oracle", name="x", base_model="y")
    update_model_version(workspace, a2.id, metrics={"auc": 0.9})
    assert get_model_version(workspace, "attr").metrics == {"x": 1, "auc": 0.9}
    assert [m.version for m in list_model_versions(workspace, kind="baseline")] == [1, 2]
    assert isinstance(load_model(workspace, a1), AttributeEmbedder)


def test_embed_workspace_resumable_and_indexed(ws_with_images):
    ws = ws_with_images
    mv = register_model(ws, kind="baseline", name="attr", base_model="attribute")
    emb = load_model(ws, mv)
    out = embed_workspace(ws, emb, mv, batch_size=5, chunk_size=4)
    ids, vecs = load_vectors(ws, mv)
    assert len(ids) == len(usable_images(ws)) == 12 and vecs.shape == (12, emb.dim)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    embed_workspace(ws, emb, mv, batch_size=5, chunk_size=4)  # resume: nothing recomputed
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.npy")} == mtimes
    assert get_model_version(ws, "attr").config["vectors"].startswith("vectors/")
    build_workspace_index(ws, mv)
    index = load_workspace_index(ws, mv)
    scores, hits = index.search(vecs[:1], 1)
    assert hits[0, 0] == ids[0]


def test_sharded_embedding_matches_single_process(ws_with_images):
    ws = ws_with_images
    one = register_model(ws, kind="baseline", name="single", base_model="attribute")
    two = register_model(ws, kind="baseline", name="sharded", base_model="attribute")
    emb = AttributeEmbedder()
    embed_workspace(ws, emb, one)
    for rank in (1, 0):  # two "processes", finishing in any order
        embed_workspace(ws, emb, two, rank=rank, world_size=2)
    a, b = load_vectors(ws, one), load_vectors(ws, two)
    assert np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1])


def test_filter_predictions_stored(ws_with_images, tmp_path):
    ws = ws_with_images
    mv = register_model(ws, kind="filter", name="tinyfilter", base_model=str(tiny_qwen_path("bpe")))
    flt = load_model(ws, mv)
    n = score_filter_workspace(ws, flt, mv, batch_size=4)
    assert n == 12
    with read_scope(ws.engine) as s:
        preds = s.exec(select(Prediction).where(Prediction.model_version_id == mv.id)).all()
    assert len(preds) == 12 and all(0.0 <= p.score <= 1.0 for p in preds)
    assert score_filter_workspace(ws, flt, mv, batch_size=4) == 12  # re-run: same rows, no duplicates


def test_models_cli(ws_with_images):
    from typer.testing import CliRunner

    from relcurate.cli.main import app

    runner = CliRunner()
    w = ["-w", str(ws_with_images.root), "--db", ws_with_images.db_url]
    r = runner.invoke(app, ["models", "register", "attr", "--kind", "baseline", "--base", "attribute", *w])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["models", "embed", "attr", *w])
    assert r.exit_code == 0 and "index: 12 vectors" in r.output, r.output
    r = runner.invoke(app, ["models", "score-filter", "attr", *w])
    assert r.exit_code == 2 and "not a filter" in r.output
    r = runner.invoke(app, ["models", "register", "x", "--kind", "oracle", "--base", "y", *w])
    assert r.exit_code == 2


def test_registered_embedding_space_is_offered_to_the_group_builder(ws_with_images):
    from relcurate.curation.groups import group_search

    ws = ws_with_images
    mv = register_model(ws, kind="baseline", name="attr", base_model="attribute")
    embed_workspace(ws, load_model(ws, mv), mv)
    build_workspace_index(ws, mv)
    assert "attr-v1" in group_search.available_spaces(ws)
    ids = [int(i) for i, _ in usable_images(ws)[:3]]
    found = group_search.more_like_group(ws, ids, space="attr-v1", k=5)
    assert found.space == "attr-v1" and found.not_embedded == []
    cands = [n.image_id for n in found.centroid]
    assert len(cands) == 5 and not set(cands) & set(ids)
