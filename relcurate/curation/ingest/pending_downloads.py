"""Download every `pending_download` image and ingest its bytes (resumable: only pending rows)."""
from __future__ import annotations

import asyncio
from typing import Callable

from sqlmodel import select

from relcurate.curation.ingest.download import Fetched, fetch_all
from relcurate.curation.ingest.imagecheck import Rejected
from relcurate.curation.ingest.store_writes import IngestReport, Processed, Quarantined, process_bytes, record_processed
from relcurate.curation.ingest.sources import SourceItem
from relcurate.db.engine import session_scope
from relcurate.db.models import Image, ImageSource, ImageStatus
from relcurate.workspace import Workspace

CHUNK = 128


def pending_items(ws: Workspace) -> list[SourceItem]:
    with session_scope(ws.engine) as s:
        rows = s.exec(
            select(ImageSource)
            .join(Image)
            .where(Image.status == ImageStatus.pending_download)
            .order_by(ImageSource.id)
        ).all()
        return [SourceItem(uri=r.uri, kind=r.kind, url=r.uri, alt_text=r.alt_text, ref_hash=r.ref_hash, where=r.uri)
                for r in rows if r.uri.startswith(("http://", "https://"))]


def download_pending(ws: Workspace, *, allow_private: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> IngestReport:
    report = IngestReport()
    items = pending_items(ws)
    cfg = ws.ingest
    for start in range(0, len(items), CHUNK):
        chunk = {it.uri: it for it in items[start : start + CHUNK]}
        fetched: dict[str, Fetched] = {}  # keyed by the URL asked for (a redirect changes r.url)
        asyncio.run(fetch_all(chunk, fetched.__setitem__, concurrency=cfg.download_concurrency,
                              timeout_s=cfg.download_timeout_s, max_bytes=cfg.max_download_bytes,
                              retries=cfg.download_retries, allow_private=allow_private))
        with session_scope(ws.engine) as s:
            for uri, it in chunk.items():
                r = fetched[uri]
                if r.data is not None:
                    record_processed(s, process_bytes(it, r.data, str(ws.root), cfg.max_pixels), report)
                    report.downloaded += 1
                elif r.retryable:
                    report.warnings.append(f"{uri}: {r.detail} (still pending; re-run to retry)")
                else:
                    record_processed(s, Processed(it, Rejected(None, 0, r.error or "download_failed", r.detail)), report)
        if progress:
            progress(min(start + CHUNK, len(items)), len(items))
    return report


__all__ = ["download_pending", "pending_items", "Quarantined"]
