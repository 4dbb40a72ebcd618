"""Import a relsim training JSONL (``{"image_hash", "caption", "url_link"}`` per line, images at
``<image_folder>/<image_hash>.png``) with its captions.

The images go through the normal ingest (the source keeps the row's image_hash as `ref_hash`);
then each row's caption becomes an accepted per-image caption (source "import", text exactly as
in the file, plus an "accept" review event naming the file), and — when the file is one split of
a training set (``..._train.jsonl``, ``..._test.jsonl``, or `split` given) — the images are pinned
to that split (`Image.split`, only where not pinned yet). So a relsim export imported into an
empty workspace re-exports byte-identically: same hashes, captions, URLs and splits.

Re-importing the same file adds nothing.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import insert, select, text, update

from relcurate.curation.ingest.store_writes import IngestReport, ingest_items
from relcurate.curation.ingest.sources import SourceItem, read_reference_jsonl
from relcurate.db.engine import session_scope
from relcurate.db.write_retry import is_postgres
from relcurate.db.models import Caption, CaptionReview, CaptionStatus, Image, ImageSource, utcnow
from relcurate.workspace import Workspace

CHUNK = 500
_CAPTION_LOCK = 0x72656C73696D  # "relsim": advisory lock key for caption imports
_SPLIT_RE = re.compile(r"(?:^|[_\-.])(train|test|val|valid|validation|dev)$", re.IGNORECASE)
# The reference training set's file names: anonymous_captions_train.jsonl / _test.jsonl.
_TRAINING_FILE_RE = re.compile(r"^anonymous_captions(?:_[A-Za-z0-9\-]+)?\.jsonl$")


@dataclass
class RelsimImportReport:
    images: IngestReport = field(default_factory=IngestReport)
    split: str | None = None
    captions_added: int = 0
    captions_known: int = 0
    rows_without_caption: int = 0
    rows_unmatched: int = 0  # the row's image did not make it into the store (bad/quarantined)
    pinned: int = 0
    pin_conflicts: int = 0  # already pinned to another split: left as it was

    def summary(self) -> str:
        return (f"relsim captions: {self.captions_added} added, {self.captions_known} already there, "
                f"{self.rows_without_caption} rows without caption, {self.rows_unmatched} rows without a stored image; "
                f"split {self.split or '-'}: {self.pinned} images pinned, {self.pin_conflicts} pinned elsewhere")


def split_from_name(path: str | os.PathLike) -> str | None:
    """``anonymous_captions_train.jsonl`` -> "train"; None when the name names no split."""
    m = _SPLIT_RE.search(Path(path).stem)
    return m.group(1).lower() if m else None


def is_relsim_training_file(path: str | os.PathLike) -> bool:
    return bool(_TRAINING_FILE_RE.match(Path(path).name))


def import_relsim_jsonl(ws: Workspace, jsonl: str | os.PathLike, image_folder: str | os.PathLike | None = None, *,
                        split: str | None = None, workers: int | None = None,
                        progress: Callable[[int, int], None] | None = None,
                        recheck: bool = False) -> RelsimImportReport:
    jsonl = Path(jsonl)
    items = list(read_reference_jsonl(jsonl, image_folder))
    report = RelsimImportReport(split=split or split_from_name(jsonl))
    report.images = ingest_items(ws, items, workers=workers, progress=progress, recheck=recheck)
    rows = [(it.ref_hash, it.alt_text) for it in items if isinstance(it, SourceItem)]
    with session_scope(ws.engine) as s:
        if is_postgres(s):
            # Captions have no unique key: serialise concurrent imports so the "already there"
            # check below sees the other's captions (SQLite writers are serial already).
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CAPTION_LOCK})
        image_of = _images_by_ref_hash(s, sorted({h for h, _ in rows}))
        matched = sorted(set(image_of.values()))
        existing = _accepted_image_captions(s, matched)
        new: list[tuple[int, str]] = []
        for ref_hash, caption in rows:
            iid = image_of.get(ref_hash)
            if iid is None:
                report.rows_unmatched += 1
            elif not isinstance(caption, str) or not caption.strip():
                report.rows_without_caption += 1
            elif (iid, caption) in existing:
                report.captions_known += 1
            else:
                existing.add((iid, caption))
                new.append((iid, caption))
        _insert_accepted(s, new, reason=f"imported from {jsonl.name}")
        report.captions_added = len(new)
        if report.split:
            report.pinned, report.pin_conflicts = _pin_split(s, matched, report.split)
    return report


def _images_by_ref_hash(s, hashes: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in range(0, len(hashes), CHUNK):
        chunk = hashes[i:i + CHUNK]
        for ref_hash, iid in s.execute(select(ImageSource.ref_hash, ImageSource.image_id)
                                       .where(ImageSource.ref_hash.in_(chunk)).order_by(ImageSource.id)):
            out.setdefault(ref_hash, iid)  # the first source with this hash names the image
    return out


def _accepted_image_captions(s, image_ids: list[int]) -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    for i in range(0, len(image_ids), CHUNK):
        chunk = image_ids[i:i + CHUNK]
        found.update(s.execute(select(Caption.image_id, Caption.text).where(
            Caption.image_id.in_(chunk), Caption.status == CaptionStatus.accepted)).all())
    return found


def _insert_accepted(s, new: list[tuple[int, str]], *, reason: str) -> None:
    if not new:
        return
    now = utcnow()
    for i in range(0, len(new), CHUNK):
        chunk = new[i:i + CHUNK]
        ids = s.scalars(insert(Caption).returning(Caption.id, sort_by_parameter_order=True), [
            {"image_id": iid, "group_id": None, "text": text, "source": "import", "status": CaptionStatus.accepted.value,
             "model_version_id": None, "created_at": now} for iid, text in chunk]).all()
        s.execute(insert(CaptionReview), [
            {"caption_id": cid, "user_id": None, "action": "accept", "text": text, "reason": reason, "created_at": now}
            for cid, (_iid, text) in zip(ids, chunk)])


def _pin_split(s, image_ids: list[int], split: str) -> tuple[int, int]:
    pinned = conflicts = 0
    for i in range(0, len(image_ids), CHUNK):
        chunk = image_ids[i:i + CHUNK]
        current = dict(s.execute(select(Image.id, Image.split).where(Image.id.in_(chunk))).all())
        todo = [iid for iid in chunk if current.get(iid) is None]
        conflicts += sum(1 for iid in chunk if current.get(iid) not in (None, split))
        if todo:
            s.execute(update(Image).where(Image.id.in_(todo)).values(split=split))
            pinned += len(todo)
    return pinned, conflicts
