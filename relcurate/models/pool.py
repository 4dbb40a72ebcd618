"""Score a large image pool (filter probabilities or embeddings) in streamed, resumable shards.

Items are `(image_id, path)` pairs. Process `rank` of `world` takes a contiguous slice of them and
writes chunks to `out_dir`:

    shard-{rank:03d}-of-{world:03d}.json                 what this shard covers (checked on resume)
    shard-{rank:03d}-of-{world:03d}.chunk-{c:05d}.npy     scores, float32, (n,) or (n, dim)
    shard-{rank:03d}-of-{world:03d}.chunk-{c:05d}.ids.npy image ids of those rows

Each file is written to a temporary name and renamed, ids last, so a chunk counts as finished only
when its ids file exists; re-running skips finished chunks. Rank and world default to
`accelerate.PartialState()`, so `accelerate launch -m ...` spreads the same call over GPUs or
nodes with no code change (give each process its own device, see models.device). `merge_shards`
puts everything back together in input order.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from PIL import Image

ScoreFn = Callable[[list[Image.Image]], np.ndarray]
Progress = Callable[[int, int], None]  # (items done in this shard, items in this shard)


def as_score_fn(scorer: Any) -> ScoreFn:
    """A Filter (predict_proba), an Embedder (embed) or a plain callable on a list of images."""
    for attr in ("predict_proba", "embed"):
        if hasattr(scorer, attr):
            return getattr(scorer, attr)
    if callable(scorer):
        return scorer
    raise TypeError(f"{type(scorer).__name__} has neither predict_proba nor embed and is not callable")


def load_rgb(path: str | Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous, balanced slice [start, stop) of n items for `rank` (the first n % world get one more)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside world size {world}")
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _shard_name(rank: int, world: int) -> str:
    return f"shard-{rank:03d}-of-{world:03d}"


def _ids_digest(ids: Sequence[str]) -> str:
    h = hashlib.sha1()
    for i in ids:
        h.update(str(i).encode())
        h.update(b"\0")
    return h.hexdigest()


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _default_rank_world() -> tuple[int, int]:
    from accelerate import PartialState

    state = PartialState()
    return state.process_index, state.num_processes


def score_pool(
    items: Sequence[tuple[str, str | Path]],
    scorer: Any,
    out_dir: str | Path,
    *,
    batch_size: int = 32,
    chunk_size: int = 1024,
    rank: int | None = None,
    world_size: int | None = None,
    progress: Progress | None = None,
    load_image: Callable[[str | Path], Image.Image] = load_rgb,
    on_error: str = "raise",
) -> Path:
    """Score this process's shard of `items`, skipping chunks already on disk; returns out_dir.

    `on_error="nan"` turns an unreadable image into a NaN row (ids stay aligned) instead of
    stopping a long run. Images are decoded in a background thread while the model works.
    """
    if on_error not in ("raise", "nan"):
        raise ValueError("on_error must be 'raise' or 'nan'")
    if chunk_size < 1 or batch_size < 1:
        raise ValueError("chunk_size and batch_size must be >= 1")
    if rank is None or world_size is None:
        rank, world_size = _default_rank_world()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    score = as_score_fn(scorer)
    start, stop = shard_bounds(len(items), rank, world_size)
    mine = list(items[start:stop])
    name = _shard_name(rank, world_size)
    _check_or_write_manifest(out / f"{name}.json", mine, start, len(items), chunk_size)

    total, done = len(mine), 0
    with ThreadPoolExecutor(max_workers=1) as loader:
        for c, chunk_start in enumerate(range(0, total, chunk_size)):
            chunk = mine[chunk_start : chunk_start + chunk_size]
            ids_path = out / f"{name}.chunk-{c:05d}.ids.npy"
            if ids_path.exists():  # finished in an earlier run
                done += len(chunk)
                continue
            parts = []
            for images, bad in _prefetched(loader, chunk, batch_size, load_image, on_error):
                parts.append(_score_batch(score, images, bad))
                done += len(images)
                if progress is not None:
                    progress(done, total)
            _atomic_save(out / f"{name}.chunk-{c:05d}.npy", np.concatenate(parts).astype(np.float32))
            _atomic_save(ids_path, np.array([i for i, _ in chunk], dtype=str))
    if progress is not None:
        progress(done, total)
    return out


def _check_or_write_manifest(path: Path, mine: list, start: int, n_total: int, chunk_size: int) -> None:
    manifest = {
        "start": start,
        "count": len(mine),
        "n_total": n_total,
        "chunk_size": chunk_size,
        "n_chunks": -(-len(mine) // chunk_size),
        "ids_sha1": _ids_digest([i for i, _ in mine]),
    }
    if path.exists():
        old = json.loads(path.read_text())
        if old != manifest:
            raise ValueError(f"{path} was written for different items or chunking; use a new out_dir")
        return
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)


def _prefetched(
    loader: ThreadPoolExecutor, chunk: list, batch_size: int, load_image: Callable, on_error: str
) -> Iterator[tuple[list[Image.Image], list[int]]]:
    """Yield (images, indices of unreadable ones) per batch, decoding the next batch in the background."""

    def load(batch: list) -> tuple[list[Image.Image], list[int]]:
        images, bad = [], []
        for k, (_, path) in enumerate(batch):
            try:
                images.append(load_image(path))
            except Exception:
                if on_error == "raise":
                    raise
                images.append(Image.new("RGB", (28, 28)))
                bad.append(k)
        return images, bad

    batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    pending = loader.submit(load, batches[0]) if batches else None
    for b in range(len(batches)):
        result = pending.result()
        pending = loader.submit(load, batches[b + 1]) if b + 1 < len(batches) else None
        yield result


def _score_batch(score: ScoreFn, images: list[Image.Image], bad: list[int]) -> np.ndarray:
    bad_set = set(bad)
    good = [k for k in range(len(images)) if k not in bad_set]
    values = np.asarray(score([images[k] for k in good]), dtype=np.float32) if good else None
    if not bad:
        return values
    if values is None:
        raise ValueError("every image of a batch failed to load; cannot infer the output shape")
    full = np.full((len(images),) + values.shape[1:], np.nan, dtype=np.float32)
    full[good] = values
    return full


def merge_shards(out_dir: str | Path, *, allow_partial: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores) of every finished chunk, in input order; checks the run is complete."""
    out = Path(out_dir)
    manifests = sorted(out.glob("shard-*-of-*.json"))
    if not manifests:
        raise FileNotFoundError(f"no shard manifests in {out}")
    worlds = {p.name.split("-of-")[1].split(".")[0] for p in manifests}
    if len(worlds) != 1:
        raise ValueError(f"{out} mixes runs with different world sizes: {sorted(worlds)}")
    world = int(worlds.pop())
    if len(manifests) != world and not allow_partial:
        raise ValueError(f"{len(manifests)} of {world} shards started in {out}")
    ids, values = [], []
    for manifest_path in manifests:
        manifest = json.loads(manifest_path.read_text())
        stem = manifest_path.name[: -len(".json")]
        for c in range(manifest["n_chunks"]):
            ids_path = out / f"{stem}.chunk-{c:05d}.ids.npy"
            if not ids_path.exists():
                if allow_partial:
                    continue
                raise ValueError(f"{stem} chunk {c} is not finished; re-run score_pool to resume")
            ids.append(np.load(ids_path))
            values.append(np.load(out / f"{stem}.chunk-{c:05d}.npy"))
    if not ids:
        return np.array([], dtype=str), np.zeros((0,), dtype=np.float32)
    return np.concatenate(ids), np.concatenate(values)
