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
    """Select and write the kept rows (key, url, sha256, p_yes, model_version, shard, shard_kind,
    member, caption, pool); ordered by score (highest first), ties by shard order then key."""
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
    tables = []
    for order, shard in enumerate(manifest_shards(manifest)):
        path = shard_output(out, shard)
        if not path.exists():
            continue
        t = pq.read_table(path).replace_schema_metadata(None)
        n = t.num_rows
        tables.append(t.append_column("shard", pa.array([shard.path] * n, pa.string()))
                       .append_column("shard_kind", pa.array([shard.kind] * n, pa.string()))
                       .append_column("_order", pa.array([order] * n, pa.int64())))
    if not tables:
        raise ValueError(f"{out}: no scored shard")
    table = pa.concat_tables(tables)
    table = table.sort_by([("p_yes", "descending"), ("_order", "ascending"), ("key", "ascending")])
    n = table.num_rows
    if keep_rate is not None:
        n_keep = min(n, math.ceil(keep_rate * n - 1e-9))  # never rounds a non-empty share down to 0
        kept = table.slice(0, n_keep)
        eff = float(kept["p_yes"][n_keep - 1].as_py()) if n_keep else 1.0
    else:
        kept = table.filter(pc.greater_equal(table["p_yes"], pa.scalar(threshold, pa.float32())))
        eff = float(threshold)
    kept = kept.drop_columns(["_order"]).append_column("pool", pa.array([str(out)] * kept.num_rows, pa.string()))
    meta = {"format": KEEP_FORMAT, "pool": str(out), "model_version": manifest["model_version"],
            "threshold": threshold, "keep_rate": keep_rate, "effective_threshold": eff,
            "n_scored": n, "n_kept": kept.num_rows, "missing_shards": summary.missing}
    kept = kept.replace_schema_metadata({KEEP_META_KEY: json.dumps(meta).encode()})
    dest = Path(dest) if dest else out / DEFAULT_NAME
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    pq.write_table(kept, tmp)
    os.replace(tmp, dest)
    return KeepResult(dest, n, kept.num_rows, eff, summary.missing)


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
