"""Ingest: source items -> verified originals in the content-addressed store -> rows in the store.

Flow: readers (sources.py) yield items; items whose URI is already known are skipped (so a re-run
changes nothing); local files are read, fully decoded, hashed and thumbnailed in worker processes
(both cores), which also write the original and thumbnail files atomically; the main process
writes rows in small transactions. A kill -9 at any point leaves either complete rows or nothing,
and the re-run picks up whatever was not recorded. URL items become `pending_download` rows and
are fetched by download.py when the network allows.
"""
from __future__ import annotations

import dataclasses
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from sqlalchemy import delete, insert, update
from sqlmodel import Session, select

from relcurate.curation.ingest.imagecheck import CheckedImage, Rejected, check_image_bytes, read_image_file
from relcurate.curation.ingest.sources import BadRecord, SourceItem, display_path
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import (
    GroupMember,
    Image,
    ImageSource,
    ImageStatus,
    RejectedRecord,
    utcnow,
)
from relcurate.workspace import Workspace, image_relpath, quarantine_relpath, thumb_relpath

WRITE_BATCH = 256
LOOKUP_CHUNK = 500

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class Quarantined:
    where: str
    reason: str
    detail: str


@dataclass
class IngestReport:
    added: int = 0
    duplicates_merged: int = 0  # new source for an image already stored
    already_known: int = 0  # source URI seen before: skipped
    pending_download: int = 0
    downloaded: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    near_duplicates: int = 0
    new_image_ids: list[int] = field(default_factory=list)

    def merge(self, other: "IngestReport") -> None:
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, a + b)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("new_image_ids")
        return d


@dataclass(frozen=True)
class Processed:
    item: SourceItem
    result: CheckedImage | Rejected


# ---------------------------------------------------------------------------------------------
# Worker side (runs in a process pool): read, verify, write files. No database access here.

_made_dirs: set[Path] = set()  # per process: skip the mkdir syscalls for folders already made


def _atomic_write(path: Path, data: bytes) -> None:
    """Write-then-rename, so a kill -9 never leaves a partial file under a final name."""
    if path.exists():
        return  # content-addressed: same name, same bytes
    parent = path.parent
    if parent not in _made_dirs:
        parent.mkdir(parents=True, exist_ok=True)
        _made_dirs.add(parent)
    tmp = parent / f".tmp-{os.getpid()}-{path.name}"  # unique per process and content
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def process_bytes(item: SourceItem, data: bytes, root: str, max_pixels: int) -> Processed:
    result = check_image_bytes(data, name=item.where, max_pixels=max_pixels)
    base = Path(root)
    if isinstance(result, CheckedImage):
        _atomic_write(base / image_relpath(result.sha256, result.ext), data)
        _atomic_write(base / thumb_relpath(result.sha256), result.thumbnail)
        result = dataclasses.replace(result, thumbnail=b"")  # don't ship it back over the pipe
    elif result.sha256:
        _atomic_write(base / quarantine_relpath(result.sha256), data)
    return Processed(item, result)


def process_local(args: tuple[SourceItem, str, int]) -> Processed:
    item, root, max_pixels = args
    data = read_image_file(item.path)  # never blocks on a FIFO; ELOOP/EACCES become Rejected
    if isinstance(data, Rejected):
        return Processed(item, data)
    return process_bytes(item, data, root, max_pixels)


# ---------------------------------------------------------------------------------------------
# Main-process side: bookkeeping in the store.

def known_uris(session: Session, uris: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(uris), LOOKUP_CHUNK):
        chunk = list(uris[i : i + LOOKUP_CHUNK])
        found.update(session.exec(select(ImageSource.uri).where(ImageSource.uri.in_(chunk))))
    return found


def record_bad(session: Session, bad: BadRecord, report: IngestReport) -> None:
    report.quarantined.append(Quarantined(bad.where, bad.reason, bad.detail))
    exists = session.exec(select(RejectedRecord.id).where(RejectedRecord.location == bad.where)).first()
    if exists is None:
        session.add(RejectedRecord(location=bad.where, reason=bad.reason, detail=bad.detail))


def _add_source(session: Session, image_id: int, item: SourceItem) -> None:
    session.add(ImageSource(image_id=image_id, uri=item.uri, kind=item.kind, alt_text=item.alt_text, ref_hash=item.ref_hash))


def register_pending(session: Session, item: SourceItem) -> Image:
    """A URL we know of but have no bytes for yet."""
    img = Image(source_uri=item.uri, alt_text=item.alt_text, status=ImageStatus.pending_download)
    session.add(img)
    session.flush()
    _add_source(session, img.id, item)
    return img


def merge_into(session: Session, loser_id: int, winner_id: int) -> None:
    """Fold a placeholder image row (pending download) into the stored image with the same bytes."""
    session.exec(update(ImageSource).where(ImageSource.image_id == loser_id).values(image_id=winner_id))
    winner_groups = set(session.exec(select(GroupMember.group_id).where(GroupMember.image_id == winner_id)))
    for m in list(session.exec(select(GroupMember).where(GroupMember.image_id == loser_id))):
        if m.group_id in winner_groups:
            session.delete(m)
        else:
            session.exec(
                update(GroupMember)
                .where(GroupMember.group_id == m.group_id, GroupMember.image_id == loser_id)
                .values(image_id=winner_id)
            )
    session.flush()
    session.exec(delete(Image).where(Image.id == loser_id))


def record_processed(session: Session, p: Processed, report: IngestReport) -> None:
    item, r = p.item, p.result
    pending = session.exec(select(Image).join(ImageSource).where(ImageSource.uri == item.uri)).first()
    existing = session.exec(select(Image).where(Image.sha256 == r.sha256)).first() if r.sha256 else None
    if isinstance(r, Rejected):
        report.quarantined.append(Quarantined(item.where, r.reason, r.detail))
    if existing is not None:
        if pending is not None and pending.id != existing.id:
            merge_into(session, pending.id, existing.id)
        elif pending is None:
            _add_source(session, existing.id, item)
        if existing.alt_text is None and item.alt_text:
            existing.alt_text = item.alt_text
        report.duplicates_merged += isinstance(r, CheckedImage)
        return
    img = pending or Image(source_uri=item.uri, alt_text=item.alt_text)
    img.sha256 = r.sha256
    img.size_bytes = r.size_bytes
    if isinstance(r, CheckedImage):
        img.status = ImageStatus.ok
        img.ext, img.width, img.height, img.phash = r.ext, r.width, r.height, r.phash
        img.meta = {"format": r.format, "mode": r.mode, "frames": r.frames}
        report.added += 1
    else:
        img.status = ImageStatus.quarantined
        img.quarantine_reason, img.quarantine_detail = r.reason, f"{item.where}: {r.detail}"
    session.add(img)
    session.flush()
    if pending is None:
        _add_source(session, img.id, item)
    if isinstance(r, CheckedImage):
        report.new_image_ids.append(img.id)


def record_batch(session: Session, batch: list[Processed], report: IngestReport) -> None:
    """Record many results at once. The common case (new content, new URI) becomes two bulk
    INSERTs; merges with pending rows or stored duplicates take the per-item path."""
    uris = [p.item.uri for p in batch]
    shas = [p.result.sha256 for p in batch if p.result.sha256]
    known_uri = set(session.exec(select(ImageSource.uri).where(ImageSource.uri.in_(uris))))
    known_sha = set(session.exec(select(Image.sha256).where(Image.sha256.in_(shas)))) if shas else set()
    fresh: list[Processed] = []
    slow: list[Processed] = []
    for p in batch:
        sha = p.result.sha256
        if p.item.uri in known_uri or (sha and sha in known_sha):
            slow.append(p)
            continue
        if sha:
            known_sha.add(sha)  # a second copy within this batch takes the slow (merge) path
        fresh.append(p)
    if fresh:
        now = utcnow()
        ids = session.scalars(
            insert(Image).returning(Image.id, sort_by_parameter_order=True),
            [_image_row(p, now) for p in fresh],
        ).all()
        session.execute(insert(ImageSource), [
            {"image_id": i, "uri": p.item.uri, "kind": p.item.kind, "alt_text": p.item.alt_text,
             "ref_hash": p.item.ref_hash, "added_at": now} for i, p in zip(ids, fresh)
        ])
        for i, p in zip(ids, fresh):
            if isinstance(p.result, CheckedImage):
                report.added += 1
                report.new_image_ids.append(i)
            else:
                report.quarantined.append(Quarantined(p.item.where, p.result.reason, p.result.detail))
    for p in slow:
        record_processed(session, p, report)


def _image_row(p: Processed, now) -> dict:
    r, item = p.result, p.item
    row = {"sha256": r.sha256, "size_bytes": r.size_bytes, "source_uri": item.uri, "alt_text": item.alt_text,
           "added_at": now, "ext": None, "width": None, "height": None, "phash": None, "meta": {},
           "quarantine_reason": None, "quarantine_detail": None}
    if isinstance(r, CheckedImage):
        row.update(status=ImageStatus.ok, ext=r.ext, width=r.width, height=r.height, phash=r.phash,
                   meta={"format": r.format, "mode": r.mode, "frames": r.frames})
    else:
        row.update(status=ImageStatus.quarantined, quarantine_reason=r.reason,
                   quarantine_detail=f"{item.where}: {r.detail}")
    return row


def _batched(it: Iterable, n: int) -> Iterator[list]:
    batch: list = []
    for x in it:
        batch.append(x)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def ingest_items(
    ws: Workspace,
    items: Iterable[SourceItem | BadRecord],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> IngestReport:
    """Store every item: local ones are verified now, remote ones are registered as pending."""
    report = IngestReport()
    items = list(items)
    good = [x for x in items if isinstance(x, SourceItem)]
    with session_scope(ws.engine) as s:
        for bad in (x for x in items if isinstance(x, BadRecord)):
            record_bad(s, bad, report)
        known = known_uris(s, [x.uri for x in good])
    todo_local, todo_remote, seen = [], [], set(known)
    for it in good:
        report.warnings.extend(f"{it.where}: {w}" for w in it.warnings)
        if it.uri in seen:
            report.already_known += 1
            continue
        seen.add(it.uri)  # the same URI twice in one input is one source
        (todo_local if it.path else todo_remote).append(it)

    total, done = len(todo_local) + len(todo_remote), 0
    for batch in _batched(todo_remote, WRITE_BATCH):
        with session_scope(ws.engine) as s:
            for it in batch:
                register_pending(s, it)
        report.pending_download += len(batch)
        done += len(batch)
        if progress:
            progress(done, total)

    if todo_local:
        root, max_px = str(ws.root), ws.ingest.max_pixels
        n_workers = workers or default_workers()
        own = executor is None and n_workers > 1
        pool = executor or (ProcessPoolExecutor(max_workers=n_workers) if own else None)
        try:
            args = ((it, root, max_px) for it in todo_local)
            results = pool.map(process_local, args, chunksize=8) if pool else map(process_local, args)
            for batch in _batched(results, WRITE_BATCH):
                with session_scope(ws.engine) as s:
                    record_batch(s, batch, report)
                done += len(batch)
                if progress:
                    progress(done, total)
        finally:
            if own:
                pool.shutdown()
    return report


def quarantine_report(ws: Workspace) -> list[tuple[str, str, str]]:
    """(where, reason, detail) for every quarantined image and rejected record."""
    with read_scope(ws.engine) as s:
        rows = [
            (i.source_uri, i.quarantine_reason or "", i.quarantine_detail or "")
            for i in s.exec(select(Image).where(Image.status == ImageStatus.quarantined).order_by(Image.id))
        ]
        rows += [(r.location, r.reason, r.detail) for r in s.exec(select(RejectedRecord).order_by(RejectedRecord.id))]
    return rows


__all__ = [
    "IngestReport",
    "Quarantined",
    "ingest_items",
    "process_bytes",
    "quarantine_report",
    "display_path",
]
