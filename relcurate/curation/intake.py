"""Ingest a source, then let its new usable images join the filter-labeling pool.

The one place where the two concerns meet, so that ingest never reaches into labeling and the
labeling pool never reads source files. The CLI, the demo and tests call this.
"""
from __future__ import annotations

import os
from typing import Any

from relcurate.curation.ingest.dedup import record_near_duplicates
from relcurate.curation.ingest.pending_downloads import download_pending
from relcurate.curation.ingest.pipeline import ingest_source
from relcurate.curation.ingest.store_writes import IngestReport
from relcurate.curation.labeling.leases import sync_pool
from relcurate.workspace import Workspace


def ingest_and_queue(ws: Workspace, path: str | os.PathLike, **kwargs: Any) -> IngestReport:
    """`ingest_source` (same keyword arguments), then sync the labeling pool."""
    report = ingest_source(ws, path, **kwargs)
    queue_usable_images(ws)
    return report


def download_and_queue(ws: Workspace, *, allow_private: bool = False, progress=None) -> IngestReport:
    """Fetch every pending URL image, record near-duplicates, sync the labeling pool."""
    report = download_pending(ws, allow_private=allow_private, progress=progress)
    report.near_duplicates += record_near_duplicates(ws)
    queue_usable_images(ws)
    return report


def queue_usable_images(ws: Workspace) -> int:
    """Every usable image without a labeling task gets one, whichever run stored it: always the
    full anti-join pass, so an ingest killed after its last row write (this run adds nothing)
    or a concurrent ingest with lower ids is caught up. Idempotent."""
    return sync_pool(ws.engine, full=True)
