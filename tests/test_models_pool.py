"""Pool scoring: sharding across ranks, resumable chunks, merge order, bad images."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from relcurate.testing.models import noise_images
from relcurate.models.pool import merge_shards, score_pool, shard_bounds


def _write_pool(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for k, im in enumerate(noise_images(n, seed=9)):
        path = folder / f"img{k:03d}.png"
        im.save(path)
        items.append((f"id-{k:03d}", path))
    return items


class MeanColour:
    """A cheap real scorer: per-image mean RGB (an 'embedding' of dim 3); counts images scored."""

    def __init__(self):
        self.calls = 0

    def embed(self, images):
        self.calls += len(images)
        return np.stack([np.asarray(im, dtype=np.float32).mean(axis=(0, 1)) for im in images])


@pytest.mark.parametrize("n, world", [(10, 3), (2, 4), (0, 2), (7, 1)])
def test_shard_bounds_cover_everything_once(n, world):
    spans = [shard_bounds(n, r, world) for r in range(world)]
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert max(b - a for a, b in spans) - min(b - a for a, b in spans) <= 1


def test_two_ranks_then_merge_in_input_order(tmp_path):
    items = _write_pool(tmp_path / "imgs", 11)
    scorer = MeanColour()
    for rank in (1, 0):  # order of completion does not matter
        score_pool(items, scorer, tmp_path / "out", batch_size=2, chunk_size=4, rank=rank, world_size=2)
    ids, values = merge_shards(tmp_path / "out")
    assert list(ids) == [i for i, _ in items]
    expected = MeanColour().embed([noise_images(11, seed=9)[k] for k in range(11)])
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert sorted(p.name for p in (tmp_path / "out").glob("shard-000-of-002*"))[:3] == [
        "shard-000-of-002.chunk-00000.ids.npy", "shard-000-of-002.chunk-00000.npy",
        "shard-000-of-002.chunk-00001.ids.npy",
    ]  # fmt: skip


def test_resume_skips_finished_chunks(tmp_path):
    items = _write_pool(tmp_path / "imgs", 9)
    out = tmp_path / "out"
    score_pool(items, MeanColour(), out, batch_size=2, chunk_size=3, rank=0, world_size=1)
    first_ids, first_values = merge_shards(out)
    # Simulate a crash in the middle chunk: its ids file (written last) is missing.
    (out / "shard-000-of-001.chunk-00001.ids.npy").unlink()
    with pytest.raises(ValueError, match="not finished"):
        merge_shards(out)
    partial_ids, _ = merge_shards(out, allow_partial=True)
    assert len(partial_ids) == 6
    scorer = MeanColour()
    progress = []
    score_pool(items, scorer, out, batch_size=2, chunk_size=3, rank=0, world_size=1,
               progress=lambda done, total: progress.append((done, total)))  # fmt: skip
    assert scorer.calls == 3  # only the unfinished chunk was recomputed
    assert progress[-1] == (9, 9)
    ids, values = merge_shards(out)
    assert list(ids) == list(first_ids)
    np.testing.assert_array_equal(values, first_values)


def test_rerun_with_other_items_is_refused(tmp_path):
    items = _write_pool(tmp_path / "imgs", 4)
    score_pool(items, MeanColour(), tmp_path / "out", rank=0, world_size=1)
    with pytest.raises(ValueError, match="different items"):
        score_pool(items[:3], MeanColour(), tmp_path / "out", rank=0, world_size=1)
    assert json.loads((tmp_path / "out" / "shard-000-of-001.json").read_text())["count"] == 4


def test_unreadable_image_becomes_nan_row_or_raises(tmp_path):
    items = _write_pool(tmp_path / "imgs", 3)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not an image")
    items.insert(1, ("broken", tmp_path / "imgs" / "broken.png"))
    with pytest.raises(Exception):
        score_pool(items, MeanColour(), tmp_path / "strict", rank=0, world_size=1)
    score_pool(items, MeanColour(), tmp_path / "lenient", rank=0, world_size=1, on_error="nan")
    ids, values = merge_shards(tmp_path / "lenient")
    assert list(ids) == [i for i, _ in items]
    assert np.isnan(values[1]).all() and not np.isnan(values[[0, 2, 3]]).any()


def test_default_rank_world_from_accelerate_and_a_real_filter(tiny_qwen, tmp_path):
    from relcurate.models.qwen_filter import QwenFilter

    items = _write_pool(tmp_path / "imgs", 5)
    qfilter = QwenFilter(tiny_qwen, batch_size=2)
    score_pool(items, qfilter, tmp_path / "out", batch_size=2, chunk_size=4)  # PartialState: 1 process
    ids, probs = merge_shards(tmp_path / "out")
    assert (tmp_path / "out" / "shard-000-of-001.json").exists()
    assert list(ids) == [i for i, _ in items] and probs.shape == (5,)
    images = [Image.open(p).convert("RGB") for _, p in items]
    np.testing.assert_allclose(probs, qfilter.predict_proba(images), atol=1e-5)
