"""The manifest every export writes last (``manifest.json``), and its row in ExportManifest.

manifest.json holds what was exported (kind, parameters and filters, split seed and weights), row
counts per split and class, the sha256 and size of every other file, the store fingerprint it was
taken from and the relcurate version. It holds no clock time, output path or user name, so the
same store state exported twice gives byte-identical folders; those go in the database row.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relcurate.db.engine import session_scope
from relcurate.db.models import ExportManifest
from relcurate.exports.atomic import fsync_path
from relcurate.exports.common import pretty_json

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
IMAGES_DIR = "images"


def relcurate_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("relcurate")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class FileLedger:
    """sha256 and size of each file written into a staging folder, recorded as it is written
    (copied originals reuse the store's sha256), so large exports are not read twice."""

    root: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, rel: str, sha256: str, size: int) -> None:
        self.files[rel] = {"bytes": size, "sha256": sha256}

    def write_text(self, rel: str, text: str, *, durable: bool = True) -> Path:
        return self.write_bytes(rel, text.encode("utf-8"), durable=durable)

    def write_bytes(self, rel: str, data: bytes, *, durable: bool = True) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        self.add(rel, hashlib.sha256(data).hexdigest(), len(data))
        return path

    def add_existing(self, rel: str) -> None:
        path = self.root / rel
        fsync_path(path)
        self.add(rel, sha256_file(path), path.stat().st_size)

    def complete(self) -> dict[str, dict[str, Any]]:
        """Every file under root (hashing any not yet recorded), sorted by path."""
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                rel = Path(dirpath, name).relative_to(self.root).as_posix()
                if rel != MANIFEST_NAME and rel not in self.files:
                    self.add_existing(rel)
        return dict(sorted(self.files.items()))


def build_manifest(kind: str, *, params: dict, splits: dict | None, counts: dict, store_state: dict,
                   files: dict) -> dict:
    return {
        "format": "relcurate-export",
        "manifest_version": MANIFEST_VERSION,
        "kind": kind,
        "relcurate_version": relcurate_version(),
        "params": params,
        "splits": splits,
        "counts": counts,
        "store_state": store_state,
        "files": files,
    }


def write_manifest(ledger: FileLedger, manifest: dict) -> None:
    ledger.write_text(MANIFEST_NAME, pretty_json(manifest))
    ledger.files.pop(MANIFEST_NAME, None)


def files_for_db(files: dict[str, dict]) -> dict:
    """The database row lists data files one by one but sums up the (possibly 100k) images."""
    out: dict[str, Any] = {}
    images = sorted((k, v) for k, v in files.items() if k.startswith(IMAGES_DIR + "/"))
    for k, v in files.items():
        if not k.startswith(IMAGES_DIR + "/"):
            out[k] = v
    if images:
        digest = hashlib.sha256("".join(f"{v['sha256']}  {k}\n" for k, v in images).encode()).hexdigest()
        out[IMAGES_DIR + "/"] = {"count": len(images), "bytes": sum(v["bytes"] for _k, v in images),
                                 "sha256_of_list": digest}
    return out


def record_export(engine, manifest: dict, path: Path, user_id: int | None) -> int:
    with session_scope(engine) as s:
        row = ExportManifest(kind=manifest["kind"], path=str(path), created_by=user_id,
                             params={"params": manifest["params"], "splits": manifest["splits"],
                                     "store_state": manifest["store_state"],
                                     "relcurate_version": manifest["relcurate_version"]},
                             counts=manifest["counts"], files=files_for_db(manifest["files"]))
        s.add(row)
        s.flush()
        return row.id
