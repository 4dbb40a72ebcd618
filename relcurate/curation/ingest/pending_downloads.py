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
from relcurate.db.write_retry import run_write
from relcurate.safe_names import url_problem
from relcurate.db.models import Image, ImageSource, ImageStatus
from relcurate.workspace import Workspace

CHUNK = 128


def pending_items(ws: Workspace, report: IngestReport | None = None) -> list[SourceItem]:
    """Every pending URL. A malformed one stored by an older version (``http://[::1``, port
    99999) is quarantined here with its reason instead of failing every later download run."""
    with session_scope(ws.engine) as s:
        rows = s.exec(
            select(ImageSource)
            .join(Image)
            .where(Image.status == ImageStatus.pending_download)
            .order_by(ImageSource.id)
        ).all()
        items, bad = [], []
        for r in rows:
            it = SourceItem(uri=r.uri, kind=r.kind, url=r.uri, alt_text=r.alt_text, ref_hash=r.ref_hash, where=r.uri)
            problem = url_problem(r.uri)
            (bad if problem else items).append((it, problem))
        report = report if report is not None else IngestReport()
        for it, problem in bad:
            record_processed(s, Processed(it, Rejected(None, 0, "bad_url", problem)), report)
        return [it for it, _ in items]


def download_pending(ws: Workspace, *, allow_private: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> IngestReport:
    report = IngestReport()
    items = pending_items(ws, report)
    cfg = ws.ingest
    for start in range(0, len(items), CHUNK):
        chunk = {it.uri: it for it in items[start : start + CHUNK]}
        fetched: dict[str, Fetched] = {}  # keyed by the URL asked for (a redirect changes r.url)
        asyncio.run(fetch_all(chunk, fetched.__setitem__, concurrency=cfg.download_concurrency,
                              timeout_s=cfg.download_timeout_s, max_bytes=cfg.max_download_bytes,
                              retries=cfg.download_retries, allow_private=allow_private,
                              attempt_deadline_s=cfg.download_attempt_deadline_s,
                              url_deadline_s=cfg.download_url_deadline_s))
        processed = {uri: process_bytes(it, r.data, str(ws.root), cfg.max_pixels,
                                        quarantine_max_bytes=cfg.quarantine_max_bytes)
                     for uri, it in chunk.items() if (r := fetched[uri]).data is not None}
        report.merge(run_write(ws.engine, lambda s: _record_chunk(s, chunk, fetched, processed)))
        if progress:
            progress(min(start + CHUNK, len(items)), len(items))
    return report


def _record_chunk(s, chunk: dict[str, SourceItem], fetched: dict[str, Fetched],
                  processed: dict[str, Processed]) -> IngestReport:
    report = IngestReport()
    for uri, it in chunk.items():
        r = fetched[uri]
        still_pending = s.exec(select(Image.id).join(ImageSource).where(
            ImageSource.uri == uri, Image.status == ImageStatus.pending_download)).first()
        if still_pending is None:
            continue  # a concurrent download run recorded it first
        if r.data is not None:
            record_processed(s, processed[uri], report)
            report.downloaded += 1
        elif r.retryable:
            report.warnings.append(f"{uri}: {r.detail} (still pending; re-run to retry)")
        else:
            record_processed(s, Processed(it, Rejected(None, 0, r.error or "download_failed", r.detail)), report)
    return report


__all__ = ["download_pending", "pending_items", "Quarantined"]
