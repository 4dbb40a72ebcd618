"""What every export shares: who may export, the result type, image placement modes, and the
exact JSON encodings (byte-identical output for the same store state depends on them)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, Callable

from sqlalchemy.engine import Engine
from sqlmodel import select

from relcurate.accounts import can
from relcurate.db.engine import read_scope
from relcurate.db.models import User

Progress = Callable[[int, int], None]  # (done, total), the same callback the ingest uses


class ExportError(Exception):
    """The export was refused or could not be written; nothing complete-looking was left."""


class ExportPermissionError(ExportError):
    pass


class ImageMode(StrEnum):
    copy = "copy"  # copy the original bytes into the export's images/ folder (default)
    link = "link"  # hard-link originals (fast, no extra space; editing an exported file edits the store)
    reference = "reference"  # write no image files; rows point at the workspace originals (absolute)


@dataclass
class ExportResult:
    kind: str
    path: Path
    manifest: dict[str, Any]
    manifest_id: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, Any]:
        return self.manifest["counts"]


def require_exporter(engine: Engine, user: str | User) -> User:
    """The active curator/admin doing the export, else ExportPermissionError."""
    name = user.username if isinstance(user, User) else str(user or "").strip()
    if not name:
        raise ExportPermissionError("say who is exporting (--as-user NAME or RELCURATE_USER)")
    with read_scope(engine) as s:
        row = s.exec(select(User).where(User.username == name)).first()
    if row is None or not row.active:
        raise ExportPermissionError(f"no active user {name!r}")
    if not can(row.role, "export"):
        raise ExportPermissionError(f"user {name!r} is {row.role}; only curators and admins may export")
    return row


def jsonl_line(obj: Any) -> str:
    """One JSON Lines record: json.dumps defaults (ASCII escapes, ', ' and ': '), sorted keys
    nowhere implied: callers pass dicts in the field order they want on disk."""
    return json.dumps(obj, ensure_ascii=True) + "\n"


def relsim_line(image_hash: str, caption: str, url_link: str) -> str:
    """Exactly ``json.dumps({"image_hash": h, "caption": c, "url_link": u}) + "\\n"``, 3x faster."""
    return ('{"image_hash": ' + encode_basestring_ascii(image_hash) + ', "caption": '
            + encode_basestring_ascii(caption) + ', "url_link": ' + encode_basestring_ascii(url_link) + "}\n")


def pretty_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def report_progress(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)
