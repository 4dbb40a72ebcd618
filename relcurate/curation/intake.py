"""Ingest a source, then let its new usable images join the filter-labeling pool.

The one place where the two concerns meet, so that ingest never reaches into labeling and the
labeling pool never reads source files. The CLI, the demo and tests call this.
"""
from __future__ import annotations

import os
from typing import Any

from relcurate.curation.ingest.pipeline import ingest_source
from relcurate.curation.ingest.store_writes import IngestReport
from relcurate.curation.labeling.leases import sync_pool
from relcurate.workspace import Workspace


def ingest_and_queue(ws: Workspace, path: str | os.PathLike, **kwargs: Any) -> IngestReport:
    """`ingest_source` (same keyword arguments), then sync the labeling pool."""
    report = ingest_source(ws, path, **kwargs)
    if report.new_image_ids or report.downloaded:
        # Downloads can make rows of earlier runs usable, so look at the whole pool then.
        sync_pool(ws.engine, full=bool(report.downloaded))
    return report
