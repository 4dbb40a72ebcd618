"""Score a pool of shards with a filter: decode in a data-loading pool, score in batches, write one
parquet file per shard, resumable per shard, split across processes by accelerate.

Layout of the output folder::

    manifest.json                 the shard list and model version (identical in every process)
    shards/<shard id>.parquet     key, url, sha256, p_yes, model_version, member, caption;
                                  schema metadata: counts and the shard's bad items
    bad.jsonl                     every bad item of the run, by shard and key (written at the end)

Engine (see ARCHITECTURE.md): processes come from `accelerate launch` (several GPUs or nodes, or
`--cpu`); each takes a contiguous slice of the shard list from its process index and world size,
so the same command scales with no code change and no scheduler of our own. Inside a process a
`torch.utils.data.DataLoader` (worker processes, each taking every n-th shard) decodes while the
model scores. A shard's file is written to a temporary name and renamed when the whole shard is
scored, so a killed run redoes at most the shards that were in flight. The split is recomputed on
every run, so a resume may use another number of processes.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch.utils.data
from PIL import Image

from relcurate.curation.pool.shards import BadItem, Sample, Shard, iter_samples
from relcurate.models.pool import as_score_fn, shard_bounds

MANIFEST = "manifest.json"
FORMAT = "relcurate-pool-scores/1"
META_KEY = b"relcurate_pool_shard"


@dataclass
class PoolProgress:
    """What one process has done so far (its own slice of the shards)."""

    shards_total: int
    shards_done: int = 0  # including shards finished by an earlier run
    shards_skipped: int = 0  # finished by an earlier run
    images: int = 0  # scored in this run
    bad: int = 0
    kept_preview: int = 0  # scored images with P(Yes) >= the preview threshold
    started: float = field(default_factory=time.monotonic)
    rank: int = 0
    world: int = 1

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def images_per_s(self) -> float:
        return self.images / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def keep_rate(self) -> float:
        return self.kept_preview / self.images if self.images else 0.0

    @property
    def eta_s(self) -> float | None:
        fresh = self.shards_done - self.shards_skipped
        left = self.shards_total - self.shards_done
        return None if fresh == 0 else self.elapsed_s / fresh * left


@dataclass(frozen=True)
class _Batch:
    shard_id: str
    samples: list[Sample]
    images: list[Image.Image]


@dataclass(frozen=True)
class _ShardEnd:
    shard_id: str
    n_samples: int
    bad: list[dict]


# -- worker side: read, fetch, decode ------------------------------------------------------------

def decode_image(data: bytes, max_pixels: int | None) -> Image.Image:
    """RGB image at most `max_pixels` (JPEG decodes at a reduced scale when it can: much cheaper)."""
    with Image.open(io.BytesIO(data)) as im:
        if max_pixels and im.width * im.height > max_pixels and im.format == "JPEG":
            scale = (max_pixels / (im.width * im.height)) ** 0.5
            im.draft("RGB", (max(1, int(im.width * scale)), max(1, int(im.height * scale))))
        im = im.convert("RGB")
    if max_pixels and im.width * im.height > max_pixels:
        from relcurate.models.qwen_common import limit_pixels

        im = limit_pixels(im, max_pixels)
    return im


def _fetch(samples: list[Sample], allow_private: bool, timeout_s: float, max_bytes: int) -> dict[str, Any]:
    """URL -> Fetched for samples without bytes (the ingest's fetcher: SSRF guard, caps, retries)."""
    from relcurate.curation.ingest.download import fetch_all

    got: dict[str, Any] = {}
    urls = sorted({s.url for s in samples if s.data is None and s.url})
    if urls:
        asyncio.run(fetch_all(urls, lambda u, r: got.__setitem__(u, r), allow_private=allow_private,
                              timeout_s=timeout_s, max_bytes=max_bytes, retries=1))
    return got


class ShardStream(torch.utils.data.IterableDataset):
    """Iterable of `_Batch` / `_ShardEnd` messages over shards; under a DataLoader each worker takes
    every n-th shard, so a shard's batches come from one worker, in order."""

    def __init__(self, shards: Sequence[Shard], *, batch_size: int, max_pixels: int | None,
                 allow_private_urls: bool = False, fetch_timeout_s: float = 30.0, max_bytes: int = 50_000_000):
        self.shards = list(shards)
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.allow_private_urls = allow_private_urls
        self.fetch_timeout_s = fetch_timeout_s
        self.max_bytes = max_bytes

    def __iter__(self) -> Iterator[_Batch | _ShardEnd]:
        info = torch.utils.data.get_worker_info()
        mine = self.shards if info is None else self.shards[info.id :: info.num_workers]
        for shard in mine:
            yield from self._one_shard(shard)

    def _one_shard(self, shard: Shard) -> Iterator[_Batch | _ShardEnd]:
        bad: list[dict] = []
        n = 0
        pending: list[Sample] = []
        for x in iter_samples(shard):
            if isinstance(x, BadItem):
                bad.append(x.as_dict())
                continue
            n += 1
            pending.append(x)
            if len(pending) >= self.batch_size:
                batch = self._decode(shard, pending, bad)
                pending = []
                if batch.samples:
                    yield batch
        if pending:
            batch = self._decode(shard, pending, bad)
            if batch.samples:
                yield batch
        yield _ShardEnd(shard.id, n, bad)

    def _decode(self, shard: Shard, samples: list[Sample], bad: list[dict]) -> _Batch:
        fetched = _fetch(samples, self.allow_private_urls, self.fetch_timeout_s, self.max_bytes)
        good, images = [], []
        for s in samples:
            data = s.data
            if data is None:
                r = fetched.get(s.url)
                if r is None or r.data is None:
                    reason = r.error if r is not None else "download_failed"
                    bad.append(BadItem(shard.path, s.key, reason, (r.detail if r else "") or s.url or "").as_dict())
                    continue
                data = r.data
            sha = hashlib.sha256(data).hexdigest()
            if s.sha256 and s.sha256 != sha:
                bad.append(BadItem(shard.path, s.key, "sha256_mismatch",
                                   f"metadata says {s.sha256}, bytes hash to {sha}").as_dict())
                continue
            try:
                im = decode_image(data, self.max_pixels)
            except Exception as exc:  # Pillow raises many types for a bad image
                bad.append(BadItem(shard.path, s.key, "undecodable_image",
                                   f"{s.member or s.url}: {type(exc).__name__}: {exc}"[:300]).as_dict())
                continue
            good.append(Sample(s.key, None, s.member, s.url, s.caption, sha))
            images.append(im)
        return _Batch(shard.id, good, images)


def _identity(x):
    return x


# -- main side: score and write ------------------------------------------------------------------

def shard_output(out_dir: str | Path, shard: Shard) -> Path:
    return Path(out_dir) / "shards" / f"{shard.id}.parquet"


def _manifest(shards: Sequence[Shard], model_version: str) -> dict:
    return {"format": FORMAT, "model_version": model_version,
            "shards": [{"id": s.id, "path": s.path, "kind": s.kind} for s in shards]}


def check_or_write_manifest(out_dir: Path, shards: Sequence[Shard], model_version: str) -> None:
    """Every process writes the same bytes (atomic rename), so no process needs to go first."""
    path = out_dir / MANIFEST
    manifest = _manifest(shards, model_version)
    if path.exists():
        old = json.loads(path.read_text())
        if old != manifest:
            what = "model version" if old.get("model_version") != model_version else "shard list"
            raise ValueError(f"{out_dir} was scored with another {what} "
                             f"({old.get('model_version')}, {len(old.get('shards', []))} shards); use a new --out")
        return
    tmp = path.with_name(f".{MANIFEST}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)


def _write_shard(path: Path, shard: Shard, samples: list[Sample], scores: list[np.ndarray],
                 end: _ShardEnd, model_version: str, rank: int, world: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p_yes = np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32)
    meta = {"shard": shard.path, "kind": shard.kind, "id": shard.id, "n_samples": end.n_samples,
            "n_scored": len(samples), "bad": end.bad, "rank": rank, "world": world}
    table = pa.table({
        "key": pa.array([s.key for s in samples], pa.string()),
        "url": pa.array([s.url for s in samples], pa.string()),
        "sha256": pa.array([s.sha256 for s in samples], pa.string()),
        "p_yes": pa.array(p_yes, pa.float32()),
        "model_version": pa.array([model_version] * len(samples), pa.string()),
        "member": pa.array([s.member for s in samples], pa.string()),
        "caption": pa.array([s.caption for s in samples], pa.string()),
    }).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)  # the shard counts as done only from here on


def process_state():
    """accelerate's view of this process (index, world size). On a machine without CUDA it is asked
    for the CPU explicitly: otherwise processes started by `accelerate launch --multi_gpu` /
    torchrun there would each believe they are alone (accelerate only forms a gloo group on CPU
    when told `cpu=True`)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def score_shards(
    shards: Sequence[Shard],
    scorer: Any,
    out_dir: str | Path,
    *,
    model_version: str,
    batch_size: int = 16,
    workers: int = 2,
    rank: int | None = None,
    world_size: int | None = None,
    preview_threshold: float = 0.5,
    allow_private_urls: bool = False,
    max_pixels: int | None = None,
    progress: Callable[[PoolProgress], None] | None = None,
) -> PoolProgress:
    """Score this process's slice of `shards` (skipping those already written); returns its progress.

    `max_pixels` defaults to the scorer's own (`QwenFilter.max_pixels`), so images are shrunk in
    the loader workers rather than in the scoring loop.
    """
    state = None
    if rank is None or world_size is None:
        state = process_state()
        rank, world_size = state.process_index, state.num_processes
    out = Path(out_dir)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    check_or_write_manifest(out, shards, model_version)
    start, stop = shard_bounds(len(shards), rank, world_size)
    mine = list(shards[start:stop])
    todo = [s for s in mine if not shard_output(out, s).exists()]
    for s in todo:  # half-written files of a killed run (this process owns these shards now)
        for stale in (out / "shards").glob(f".{s.id}.parquet.tmp*"):
            stale.unlink(missing_ok=True)
    prog = PoolProgress(shards_total=len(mine), shards_done=len(mine) - len(todo),
                        shards_skipped=len(mine) - len(todo), rank=rank, world=world_size)
    if progress:
        progress(prog)
    score = as_score_fn(scorer)
    if max_pixels is None:
        max_pixels = getattr(scorer, "max_pixels", None)
    by_id = {s.id: s for s in todo}
    if todo:
        stream = ShardStream(todo, batch_size=batch_size, max_pixels=max_pixels, allow_private_urls=allow_private_urls)
        n_workers = max(0, min(workers, len(todo)))
        loader = torch.utils.data.DataLoader(stream, batch_size=None, collate_fn=_identity, num_workers=n_workers,
                                             prefetch_factor=4 if n_workers else None)
        acc: dict[str, tuple[list[Sample], list[np.ndarray]]] = {}
        for msg in loader:
            samples, scores = acc.setdefault(msg.shard_id, ([], []))
            if isinstance(msg, _Batch):
                values = np.asarray(score(msg.images), dtype=np.float32).reshape(-1)
                samples.extend(msg.samples)
                scores.append(values)
                prog.images += len(values)
                prog.kept_preview += int((values >= preview_threshold).sum())
            else:
                shard = by_id[msg.shard_id]
                _write_shard(shard_output(out, shard), shard, samples, scores, msg, model_version, rank, world_size)
                del acc[msg.shard_id]
                prog.shards_done += 1
                prog.bad += len(msg.bad)
            if progress:
                progress(prog)
    if state is not None and world_size > 1:
        state.wait_for_everyone()  # so the main process's summary sees every shard
    return prog


# -- reading a scored pool back ------------------------------------------------------------------

@dataclass
class PoolSummary:
    out_dir: Path
    model_version: str
    shards_total: int
    shards_done: int
    missing: list[str]  # shard paths not finished
    n_samples: int
    n_scored: int
    bad: list[dict]

    @property
    def complete(self) -> bool:
        return not self.missing

    def bad_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for b in self.bad:
            counts[b["reason"]] = counts.get(b["reason"], 0) + 1
        return dict(sorted(counts.items()))


def read_manifest(out_dir: str | Path) -> dict:
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{out_dir}: no {MANIFEST}; run `relcurate pool score ... --out {out_dir}` first")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a relcurate pool score folder (format {manifest.get('format')!r})")
    return manifest


def manifest_shards(manifest: dict) -> list[Shard]:
    return [Shard(s["path"], s["kind"]) for s in manifest["shards"]]


def shard_meta(path: Path) -> dict:
    import pyarrow.parquet as pq

    return json.loads(pq.read_schema(path).metadata[META_KEY])


def summarize(out_dir: str | Path, extra_bad: Sequence[BadItem] = (), write_bad: bool = False) -> PoolSummary:
    """Counts and every bad item over all finished shards (`extra_bad`: e.g. missing shard files)."""
    out = Path(out_dir)
    manifest = read_manifest(out)
    shards = manifest_shards(manifest)
    missing, bad, n_samples, n_scored = [], [b.as_dict() for b in extra_bad], 0, 0
    for shard in shards:
        path = shard_output(out, shard)
        if not path.exists():
            missing.append(shard.path)
            continue
        meta = shard_meta(path)
        n_samples += meta["n_samples"]
        n_scored += meta["n_scored"]
        bad.extend(meta["bad"])
    if write_bad:
        tmp = out / f".bad.jsonl.tmp{os.getpid()}"
        tmp.write_text("".join(json.dumps(b, sort_keys=True) + "\n" for b in bad))
        os.replace(tmp, out / "bad.jsonl")
    return PoolSummary(out, manifest["model_version"], len(shards), len(shards) - len(missing), missing,
                       n_samples, n_scored, bad)
