"""The kept list of a scored pool: every image with P(Yes) >= a threshold, or the top share of the
pool by `keep_rate` (the paper kept ~0.7% of LAION-2B). Written as one parquet file whose schema
metadata marks it as a keep list, so `relcurate ingest` recognises it (curation/ingest/keep_list.py).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

KEEP_META_KEY = b"relcurate_keep_list"
KEEP_FORMAT = "relcurate-keep-list/1"
DEFAULT_NAME = "keep.parquet"


@dataclass
class KeepResult:
    path: Path
    n_scored: int
    n_kept: int
    threshold: float  # the effective one (for --keep-rate: the lowest kept score)
    missing_shards: list[str]

    @property
    def keep_rate(self) -> float:
        return self.n_kept / self.n_scored if self.n_scored else 0.0


def write_keep_list(out_dir: str | Path, *, threshold: float | None = None, keep_rate: float | None = None,
                    dest: str | Path | None = None, allow_partial: bool = False) -> KeepResult:
    """Select and write the kept rows (key, url, sha256, p_yes, model_version, member, caption,
    shard, shard_kind, pool) in shard order. Streams shard by shard, so memory stays bounded for a
    LAION-sized pool: `keep_rate` first finds the k-th highest score keeping only the top k values
    (k = ceil(rate x scored); 16M floats for 0.7% of LAION-2B), ties at that score are taken in
    shard order then key order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    # Lazy: ingest reads keep lists through this module and should not pay for torch.
    from relcurate.curation.pool.scoring import manifest_shards, read_manifest, shard_output, summarize

    if (threshold is None) == (keep_rate is None):
        raise ValueError("give exactly one of threshold or keep_rate")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold} outside [0, 1]")
    if keep_rate is not None and not 0.0 < keep_rate <= 1.0:
        raise ValueError(f"keep rate {keep_rate} outside (0, 1]")
    out = Path(out_dir).resolve()
    manifest = read_manifest(out)
    summary = summarize(out)
    if summary.missing and not allow_partial:
        raise ValueError(f"{len(summary.missing)} of {summary.shards_total} shards are not scored yet "
                         f"(first: {summary.missing[0]}); resume `relcurate pool score` or pass --allow-partial")
    files = [(shard, shard_output(out, shard)) for shard in manifest_shards(manifest)]
    files = [(shard, path) for shard, path in files if path.exists()]
    if not files:
        raise ValueError(f"{out}: no scored shard")
    n = summary.n_scored
    tie_quota = None
    if keep_rate is not None:
        k = min(n, math.ceil(keep_rate * n - 1e-9))  # never rounds a non-empty share down to 0
        top = np.zeros(0, np.float32)
        for _, path in files:
            top = np.concatenate([top, pq.read_table(path, columns=["p_yes"])["p_yes"].to_numpy()])
            if len(top) > 2 * k:  # keep only the k highest seen so far
                top = np.partition(top, len(top) - k)[len(top) - k:]
        top = np.sort(top)[::-1][:k]
        cut = np.float32(top[-1]) if k else np.float32(np.inf)
        tie_quota = int(k - (top > cut).sum())
    else:
        cut = np.float32(threshold)
    dest = Path(dest) if dest else out / DEFAULT_NAME
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    meta = {"format": KEEP_FORMAT, "pool": str(out), "model_version": manifest["model_version"],
            "threshold": threshold, "keep_rate": keep_rate, "effective_threshold": float(cut) if np.isfinite(cut) else None,
            "n_scored": n, "missing_shards": summary.missing}
    writer, n_kept = None, 0
    try:
        for shard, path in files:
            t = pq.read_table(path).replace_schema_metadata(None)
            above = t.filter(pc.greater(t["p_yes"], pa.scalar(cut, pa.float32())))
            ties = t.filter(pc.equal(t["p_yes"], pa.scalar(cut, pa.float32()))).sort_by("key")
            if tie_quota is not None:
                ties, tie_quota = ties.slice(0, tie_quota), tie_quota - min(tie_quota, ties.num_rows)
            kept = pa.concat_tables([above, ties]).sort_by("key")
            m = kept.num_rows
            kept = (kept.append_column("shard", pa.array([shard.path] * m, pa.string()))
                    .append_column("shard_kind", pa.array([shard.kind] * m, pa.string()))
                    .append_column("pool", pa.array([str(out)] * m, pa.string())))
            if writer is None:
                schema = kept.schema.with_metadata({KEEP_META_KEY: json.dumps(meta).encode()})
                writer = pq.ParquetWriter(tmp, schema)
            writer.write_table(kept.cast(writer.schema))
            n_kept += m
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, dest)
    return KeepResult(dest, n, n_kept, float(cut) if np.isfinite(cut) else 1.0, summary.missing)


def read_keep_meta(path: str | Path) -> dict | None:
    """The keep-list metadata of a parquet file, or None when it is some other parquet."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:
        return None
    raw = meta.get(KEEP_META_KEY)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("format") == KEEP_FORMAT else None
