"""Ingest the kept list of a filtered pool (`relcurate pool keep`): each kept image is read back
from its shard (one streaming pass per shard) or, when the shard is gone or lacks it, fetched from
its URL; then the usual ingest checks and quarantine apply. Provenance (pool, shard, key, model
version, score, threshold) goes on the image's source row (`image_source.provenance`).

Source URIs: `file:///abs/shard.tar#KEY` for bytes read from a shard, the URL otherwise, so a
re-run changes nothing and the same shard image never becomes two sources.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from sqlalchemy import update

from relcurate.curation.ingest.sources import IMAGE_EXTENSIONS, BadRecord, SourceItem, display_path, file_uri
from relcurate.curation.ingest.store_writes import IngestReport, ingest_items
from relcurate.curation.pool.keep import read_keep_meta
from relcurate.curation.pool.shards import Sample, Shard, iter_samples
from relcurate.db.engine import session_scope
from relcurate.db.models import ImageSource
from relcurate.workspace import Workspace

KIND = "pool"


def is_keep_list(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(".parquet") and read_keep_meta(path) is not None


def _rows(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _staged_name(data: bytes, member: str | None) -> str:
    """Content hash + a whitelisted extension: no name from the shard becomes a path."""
    ext = os.path.splitext(member or "")[1].lower()
    return hashlib.sha256(data).hexdigest() + (ext if ext in IMAGE_EXTENSIONS else ".img")


def read_keep_list(path: str | os.PathLike, staging: Path) -> tuple[list[SourceItem | BadRecord], dict[str, dict]]:
    """Items to ingest (shard bytes staged under `staging`) and provenance by source URI."""
    path = Path(path)
    meta = read_keep_meta(path) or {}
    try:
        rows = _rows(path)
    except Exception as exc:
        return [BadRecord(display_path(str(path)), "bad_parquet", str(exc))], {}
    by_shard: dict[tuple[str, str], dict[str, int]] = {}
    for i, row in enumerate(rows):
        if row.get("member") is None:
            continue  # scored from its URL (a URL-only parquet): the shard holds no bytes
        by_shard.setdefault((row.get("shard") or "", row.get("shard_kind") or ""), {})[str(row.get("key"))] = i
    found: dict[int, tuple[str, Sample]] = {}  # row index -> (staged path, sample)
    for (shard_path, kind), keys in by_shard.items():
        if kind not in ("tar", "parquet") or not os.path.isfile(shard_path):
            continue  # fall back to URLs below
        for x in iter_samples(Shard(shard_path, kind)):
            if isinstance(x, Sample) and x.data is not None and x.key in keys:
                dest = staging / _staged_name(x.data, x.member)
                dest.write_bytes(x.data)
                found[keys.pop(x.key)] = (str(dest), x)
                if not keys:
                    break
    items: list[SourceItem | BadRecord] = []
    provenance: dict[str, dict] = {}
    for i, row in enumerate(rows):
        where = f"{display_path(str(path))}:row {i + 1}"
        key, shard, url = str(row.get("key")), row.get("shard") or "", row.get("url")
        prov = {"pool": row.get("pool") or meta.get("pool"), "shard": shard, "key": key,
                "model_version": row.get("model_version") or meta.get("model_version"),
                "score": row.get("p_yes"), "threshold": meta.get("effective_threshold"), "keep_list": str(path.resolve())}
        if i in found:
            staged, sample = found[i]
            expected = row.get("sha256")
            got = os.path.basename(staged).split(".")[0]
            if expected and expected != got:
                items.append(BadRecord(where, "sha256_mismatch",
                                       f"{shard}#{key}: bytes hash to {got}, the keep list says {expected}"))
                continue
            uri = f"{file_uri(shard)}#{key}"
            items.append(SourceItem(uri=uri, kind=KIND, path=staged, alt_text=row.get("caption"), where=f"{where} ({shard}#{key})"))
        elif isinstance(url, str) and url.lower().startswith(("http://", "https://")):
            uri = url
            warn = () if row.get("shard_kind") == "parquet" and row.get("member") is None else (
                f"{shard}#{key} not readable from its shard; fetching {url}",)
            items.append(SourceItem(uri=url, kind=KIND, url=url, alt_text=row.get("caption"), where=where, warnings=warn))
        else:
            items.append(BadRecord(where, "missing_image", f"{shard}#{key} is not in its shard and has no http(s) URL"))
            continue
        provenance[uri] = prov
    return items, provenance


def _record_provenance(ws: Workspace, provenance: dict[str, dict]) -> None:
    """Idempotent: the same keep list writes the same values; a later keep list of another pool
    does not overwrite the first one's provenance on a shared source."""
    uris = list(provenance)
    for i in range(0, len(uris), 256):
        with session_scope(ws.engine) as s:
            for uri in uris[i : i + 256]:
                s.exec(update(ImageSource).where(ImageSource.uri == uri, ImageSource.provenance.is_(None))
                       .values(provenance=provenance[uri]))


def ingest_keep_list(ws: Workspace, path: str | os.PathLike, *, workers: int | None = None,
                     progress: Callable[[int, int], None] | None = None) -> IngestReport:
    """Ingest every kept image (URL-only ones become pending downloads, fetched by the caller)."""
    root = ws.root / "staging"
    root.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="keep-", dir=root))
    try:
        items, provenance = read_keep_list(path, staging)
        report = ingest_items(ws, items, workers=workers, progress=progress)
        _record_provenance(ws, provenance)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    meta = read_keep_meta(path) or {}
    report.warnings.append(f"keep list of {meta.get('pool')} scored by {meta.get('model_version')} "
                           f"(threshold {meta.get('effective_threshold')}): {len(items)} rows")
    return report
