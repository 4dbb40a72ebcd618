"""A finished export folder as one zip for download, and the manifest as the app shows it.

The zip holds every file of the folder (manifest.json too) under ``<name>/``, streamed file by
file into a temporary file in ``exports/.downloads/<name>/`` and renamed into place, so a large export
never sits in memory and a half-written zip never has the final name. Entries carry a fixed
timestamp, so the same folder always gives the same zip bytes; the zip is named after the
manifest's sha256, so it is rebuilt when the folder is overwritten and reused otherwise.
Only a curator or admin gets one (`require_exporter`, checked at the time of the request).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from relcurate.db.models import User
from relcurate.exports.common import ExportError, require_exporter
from relcurate.exports.manifest import MANIFEST_NAME, files_for_db, sha256_file
from relcurate.exports.params import export_path
from relcurate.workspace import Workspace

DOWNLOADS_DIR = ".downloads"  # hidden: never taken for an export folder
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
STORED_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".parquet", ".arrow", ".zip"}  # compressed already


def finished_export(ws: Workspace, name: str) -> Path:
    """exports/<name> if it is a complete export (has its manifest), else ExportError."""
    path = export_path(ws, name)
    if not (path / MANIFEST_NAME).is_file():
        raise ExportError(f"exports/{name} is not a finished export (no {MANIFEST_NAME})")
    return path


def manifest_for_display(ws: Workspace, name: str) -> dict[str, Any]:
    """The manifest with the per-image file list summed up (count, bytes, digest), as the store
    row keeps it: 100k image entries are no use on a page."""
    manifest = json.loads((finished_export(ws, name) / MANIFEST_NAME).read_text())
    manifest["files"] = files_for_db(manifest.get("files") or {})
    return manifest


def _members(root: Path) -> list[tuple[Path, str]]:
    out = []
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        for n in sorted(names):
            p = Path(dirpath, n)
            if p.is_symlink() or not p.is_file():
                raise ExportError(f"{p.relative_to(root)} in the export is not a plain file; refusing to zip it")
            out.append((p, p.relative_to(root).as_posix()))
        for d in dirs:
            if Path(dirpath, d).is_symlink():
                raise ExportError(f"{Path(dirpath, d).relative_to(root)} in the export is a link; refusing to zip it")
    return out


def _write_zip(root: Path, name: str, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w", allowZip64=True) as zf:
        for path, rel in _members(root):
            info = zipfile.ZipInfo(f"{name}/{rel}", FIXED_TIME)
            info.compress_type = zipfile.ZIP_STORED if path.suffix.lower() in STORED_SUFFIXES else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.file_size = path.stat().st_size
            with open(path, "rb") as src, zf.open(info, "w", force_zip64=info.file_size > 2**31) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def zip_export(ws: Workspace, name: str, *, user: str | User) -> Path:
    """The zip of exports/<name> (built now, or reused when the folder did not change)."""
    require_exporter(ws.engine, user)
    root = finished_export(ws, name)
    digest = sha256_file(root / MANIFEST_NAME)[:16]
    folder = ws.exports_dir / DOWNLOADS_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{digest}.zip"
    if final.is_file():
        return final
    for old in folder.glob("*.zip"):  # zips of earlier contents of this folder
        old.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".zip.partial", dir=folder)
    os.close(fd)
    try:
        _write_zip(root, name, Path(tmp))
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final
