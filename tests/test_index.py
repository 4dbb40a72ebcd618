"""VectorIndex over faiss: exact == numpy, approx recall, persistence, ids, group helpers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from relcurate.models import index as index_mod
from relcurate.models.index import (
    VectorIndex,
    brute_force_topk,
    centroid_search,
    group_centroid,
    l2_normalise,
    leave_one_out_neighbours,
    recall_at_k,
)

DIM = 64


def clustered(n: int, dim: int = DIM, n_clusters: int = 50, spread: float = 0.6,
              seed: int = 0) -> np.ndarray:
    """Unit vectors around fixed random cluster centres (cosine to centre ~0.85), like real
    embeddings; `seed` varies only the samples, so queries come from the data's distribution."""
    centres = l2_normalise(np.random.default_rng(1234).standard_normal((n_clusters, dim)))
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, dim)).astype(np.float32) * spread / np.sqrt(dim)
    return l2_normalise(centres[rng.integers(0, n_clusters, n)] + noise)


def sparse_ids(n: int, offset: int = 10**12) -> np.ndarray:
    return offset + 7 * np.arange(n, dtype=np.int64)  # not row numbers: catches id mix-ups


def test_brute_force_matches_full_sort() -> None:
    x, q = clustered(3000, seed=1), clustered(20, seed=2)
    for metric, scores in (("ip", q @ x.T), ("l2", ((q[:, None] - x[None]) ** 2).sum(-1))):
        order = np.argsort(-scores if metric == "ip" else scores, axis=1)[:, :10]
        s, i = brute_force_topk(q, x, 10, metric, chunk=700)  # several chunks
        np.testing.assert_array_equal(i, order)
        np.testing.assert_allclose(s, np.take_along_axis(scores, order, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_exact_matches_numpy_and_keeps_ids(metric: str) -> None:
    x, q, ids = clustered(5000), clustered(30, seed=3), sparse_ids(5000)
    idx = VectorIndex.build(x, ids, model_version="attribute@1", metric=metric)
    assert idx.kind == "exact" and len(idx) == 5000 and idx.model_version == "attribute@1"
    scores, found = idx.search(q, 10)
    ref_s, ref_rows = brute_force_topk(q, x, 10, metric)
    np.testing.assert_array_equal(found, ids[ref_rows])
    np.testing.assert_allclose(scores, ref_s, atol=1e-4)
    np.testing.assert_array_equal(np.sort(idx.ids), ids)


def test_approx_recall_on_clustered_data() -> None:
    x, ids = clustered(20_000, seed=4), sparse_ids(20_000)
    idx = VectorIndex.build(x, ids, kind="approx", model_version="m", target_recall=0.95)
    assert idx.kind == "approx" and idx.nprobe is not None and idx.tuned_recall >= 0.95
    q = clustered(300, seed=5)  # fresh queries, not in the index: tuning must generalise
    _, found = idx.search(q, 10)
    _, truth_rows = brute_force_topk(q, x, 10)
    assert recall_at_k(found, ids[truth_rows]) >= 0.9


def test_auto_kind_switches_on_size(monkeypatch: pytest.MonkeyPatch) -> None:
    x = clustered(4000, seed=6)
    assert VectorIndex.build(x, np.arange(4000)).kind == "exact"
    monkeypatch.setattr(index_mod, "APPROX_MIN_SIZE", 1000)
    assert VectorIndex.build(x, np.arange(4000)).kind == "approx"


@pytest.mark.parametrize("kind", ["exact", "approx"])
def test_save_load_round_trip(tmp_path: Path, kind: str) -> None:
    x, q, ids = clustered(6000, seed=7), clustered(25, seed=8), sparse_ids(6000)
    idx = VectorIndex.build(x, ids, kind=kind, model_version="relsim-lora@abc123")
    before = idx.search(q, 10)
    idx.save(tmp_path / "ix")
    loaded = VectorIndex.load(tmp_path / "ix", expected_model_version="relsim-lora@abc123")
    assert (loaded.kind, loaded.model_version, loaded.nprobe, len(loaded)) == \
        (kind, "relsim-lora@abc123", idx.nprobe, 6000)
    np.testing.assert_array_equal(loaded.ids, idx.ids)
    after = loaded.search(q, 10)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_allclose(after[0], before[0])
    with pytest.raises(ValueError, match="re-embed"):
        VectorIndex.load(tmp_path / "ix", expected_model_version="clip@1")


@pytest.mark.parametrize("kind", ["exact", "approx"])
def test_add_after_build_and_remove(kind: str) -> None:
    x = clustered(5000, seed=9)
    idx = VectorIndex.build(x[:4000], np.arange(4000), kind=kind, nprobe=8 if kind == "approx" else None)
    idx.add(x[4000:], np.arange(4000, 5000) + 10**9)
    assert len(idx) == 5000 and 10**9 + 4500 in idx
    _, found = idx.search(x[4500], 1)  # a vector finds itself under its new id
    assert found[0, 0] == 10**9 + 4500
    with pytest.raises(ValueError, match="already indexed"):
        idx.add(x[:2], [0, 123456])
    with pytest.raises(ValueError, match="unique"):
        idx.add(x[:2], [77777, 77777])
    with pytest.raises(ValueError, match="reserved"):
        idx.add(x[:1], [-1])
    assert idx.remove([10**9 + 4500, 3]) == 2
    assert len(idx) == 4998 and 3 not in idx
    _, found = idx.search(x[4500], 5)
    assert 10**9 + 4500 not in found


def test_small_and_empty_indexes() -> None:
    x = clustered(3, seed=10)
    scores, found = VectorIndex.build(x, [5, 6, 7]).search(x, 10)
    assert found.shape == (3, 10) and set(found[0]) == {5, 6, 7, -1}  # padded with -1
    assert found[0, 0] == 5 and np.isinf(scores[0, 3:]).all()
    empty = VectorIndex.empty(DIM, model_version="m")
    assert len(empty) == 0 and empty.search(x[0], 4)[1].tolist() == [[-1] * 4]
    empty.add(x, [1, 2, 3])
    assert empty.search(x[1], 1)[1][0, 0] == 2
    with pytest.raises(ValueError):
        empty.search(np.zeros((1, DIM + 1), np.float32), 1)


def test_centroid_search_excludes_members() -> None:
    x, ids = clustered(4000, seed=11), sparse_ids(4000)
    idx = VectorIndex.build(x, ids)
    members = np.array([10, 20, 30, 40])
    scores, found = centroid_search(idx, x[members], 10, exclude_ids=ids[members])
    assert found.shape == (10,) and not set(found) & set(ids[members])
    c = group_centroid(x[members])
    assert np.isclose(np.linalg.norm(c), 1.0)
    _, rows = brute_force_topk(c, x, 14)
    expected = [r for r in rows[0] if r not in members][:10]
    np.testing.assert_array_equal(found, ids[expected])
    assert np.all(np.diff(scores) <= 1e-6)


def test_leave_one_out_finds_planted_group() -> None:
    rng = np.random.default_rng(12)
    background = clustered(3000, seed=12)
    centre = l2_normalise(rng.standard_normal(DIM))
    group = l2_normalise(centre + 0.02 * rng.standard_normal((5, DIM)))  # a tight seed group
    x = np.concatenate([background, group])
    ids = np.arange(len(x)) + 100
    idx = VectorIndex.build(x, ids)
    group_ids = ids[-5:]
    results = leave_one_out_neighbours(idx, group, group_ids, k=10)
    assert [r.held_out_id for r in results] == group_ids.tolist()
    for r in results:
        assert r.rank == 0  # the held-out member is the nearest non-member
        others = set(group_ids.tolist()) - {r.held_out_id}
        assert not set(r.ids.tolist()) & others and len(r.ids) == 10
