"""The frame every export runs in: permission check, one consistent read of the store, a staging
folder renamed into place after the manifest is written, and the ExportManifest row."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from relcurate.db.models import User
from relcurate.exports.atomic import staged_dir
from relcurate.exports.common import ExportResult, require_exporter
from relcurate.exports.manifest import FileLedger, build_manifest, record_export, write_manifest
from relcurate.exports.snapshot import StoreSnapshot, load_snapshot, snapshot_connection
from relcurate.workspace import Workspace


@dataclass
class Written:
    """What a format writer reports back for the manifest."""

    params: dict[str, Any]
    counts: dict[str, Any]
    splits: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


Writer = Callable[[StoreSnapshot, FileLedger], Written]


def run_export(ws: Workspace, out: str | os.PathLike, *, kind: str, user: str | User, writer: Writer,
               overwrite: bool = False, url_link_mode: str = "empty",
               snapshot: StoreSnapshot | None = None) -> ExportResult:
    who = require_exporter(ws.engine, user)
    if snapshot is None:
        with snapshot_connection(ws.engine) as conn:  # closed before any file is written
            snapshot = load_snapshot(conn, url_link_mode=url_link_mode)
    final = Path(out).absolute()
    with staged_dir(final, overwrite=overwrite) as stage:
        ledger = FileLedger(stage)
        written = writer(snapshot, ledger)
        manifest = build_manifest(kind, params=written.params, splits=written.splits, counts=written.counts,
                                  store_state=snapshot.state, files=ledger.complete())
        write_manifest(ledger, manifest)
    manifest_id = record_export(ws.engine, manifest, final, who.id)
    return ExportResult(kind, final, manifest, manifest_id, written.warnings)
