"""Ingest: source items -> verified originals in the content-addressed store -> rows in the store.

Flow: readers (sources.py) yield items; items whose URI is already known are skipped unless the
local file changed since it was read (size or mtime: it is read again and the summary says
"changed") or `recheck` asks to re-verify quarantined ones; local files are read, decoded, hashed
and thumbnailed in worker processes (both cores), which also write the original and thumbnail
files atomically; the main process writes rows in small transactions. A kill -9 at any point
leaves either complete rows or nothing, and the re-run picks up whatever was not recorded. URL
items become `pending_download` rows and are fetched by download.py when the network allows.

Concurrent ingests (two processes, overlapping inputs, either back end) are safe: every write
transaction goes through `run_write`, so a unique-key race (same sha256, same URI) re-runs the
batch, which then sees the other writer's rows and takes the merge path.
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
from relcurate.curation.ingest.originals import store_original
from relcurate.curation.ingest.sources import BadRecord, SourceItem, display_path
from relcurate.db.engine import read_scope
from relcurate.db.write_retry import run_write
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
    changed: int = 0  # a known local file whose bytes changed (re-read, re-verified)
    rechecked: int = 0  # quarantined items verified again (--recheck)
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


def process_bytes(item: SourceItem, data: bytes, root: str, max_pixels: int, *,
                  quarantine_max_bytes: int | None = None, src: tuple[str, os.stat_result] | None = None) -> Processed:
    """Verify `data` and write the original, thumbnail or quarantine copy. `src` (path, stat
    taken before the read) lets the original be cloned from the source file instead of written
    from memory; a quarantine copy is kept only up to `quarantine_max_bytes` (the reason is
    recorded either way)."""
    result = check_image_bytes(data, name=item.where, max_pixels=max_pixels)
    base = Path(root)
    if isinstance(result, CheckedImage):
        store_original(base / image_relpath(result.sha256, result.ext), data, src)
        _atomic_write(base / thumb_relpath(result.sha256), result.thumbnail)
        result = dataclasses.replace(result, thumbnail=b"")  # don't ship it back over the pipe
    elif result.sha256:
        if quarantine_max_bytes is not None and len(data) > quarantine_max_bytes:
            result = dataclasses.replace(result, detail=f"{result.detail} (bytes not kept: {len(data)} > "
                                                        f"quarantine limit {quarantine_max_bytes})")
        else:
            _atomic_write(base / quarantine_relpath(result.sha256), data)
    return Processed(item, result)


def process_local(args: tuple) -> Processed:
    item, root, max_pixels, *rest = args
    q_cap = rest[0] if rest else None
    try:
        before = os.stat(item.path)
    except (OSError, ValueError):
        before = None
    data = read_image_file(item.path)  # never blocks on a FIFO; ELOOP/EACCES become Rejected
    if isinstance(data, Rejected):
        return Processed(item, data)
    return process_bytes(item, data, root, max_pixels, quarantine_max_bytes=q_cap,
                         src=(item.path, before) if before is not None else None)


# ---------------------------------------------------------------------------------------------
# Main-process side: bookkeeping in the store.

def known_uris(session: Session, uris: Sequence[str]) -> set[str]:
    return set(known_sources(session, uris))


def known_sources(session: Session, uris: Sequence[str]) -> dict[str, tuple[int | None, int | None, str]]:
    """uri -> (file_size, file_mtime_ns, image status) for the URIs already in the store."""
    found: dict[str, tuple[int | None, int | None, str]] = {}
    for i in range(0, len(uris), LOOKUP_CHUNK):
        chunk = list(uris[i : i + LOOKUP_CHUNK])
        for uri, size, mtime, status in session.exec(
                select(ImageSource.uri, ImageSource.file_size, ImageSource.file_mtime_ns, Image.status)
                .join(Image, Image.id == ImageSource.image_id).where(ImageSource.uri.in_(chunk))):
            found[uri] = (size, mtime, status)
    return found


def record_bad(session: Session, bad: BadRecord, report: IngestReport) -> None:
    report.quarantined.append(Quarantined(bad.where, bad.reason, bad.detail))
    exists = session.exec(select(RejectedRecord.id).where(RejectedRecord.location == bad.where)).first()
    if exists is None:
        session.add(RejectedRecord(location=bad.where, reason=bad.reason, detail=bad.detail))


def _add_source(session: Session, image_id: int, item: SourceItem) -> None:
    size, mtime = item.stamp or (None, None)
    session.add(ImageSource(image_id=image_id, uri=item.uri, kind=item.kind, alt_text=item.alt_text,
                            ref_hash=item.ref_hash, file_size=size, file_mtime_ns=mtime))


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
        if pending is not None and pending.id == existing.id:
            report.already_known += 1  # a concurrent ingest recorded this very source first
            return
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
             "ref_hash": p.item.ref_hash, "added_at": now,
             "file_size": (p.item.stamp or (None, None))[0], "file_mtime_ns": (p.item.stamp or (None, None))[1]}
            for i, p in zip(ids, fresh)
        ])
        for i, p in zip(ids, fresh):
            if isinstance(p.result, CheckedImage):
                report.added += 1
                report.new_image_ids.append(i)
            else:
                report.quarantined.append(Quarantined(p.item.where, p.result.reason, p.result.detail))
    for p in slow:
        record_processed(session, p, report)


def record_reread(session: Session, p: Processed, report: IngestReport, *, recheck: bool) -> None:
    """A known source read again (its file changed, or --recheck of a quarantined item)."""
    item, r = p.item, p.result
    src = session.exec(select(ImageSource).where(ImageSource.uri == item.uri)).first()
    if src is None:  # removed meanwhile: record it as new
        record_processed(session, p, report)
        return
    old = session.get(Image, src.image_id)
    if r.sha256 is None:  # could not read it now: keep the old stamp so the next run tries again
        report.quarantined.append(Quarantined(item.where, r.reason, r.detail))
        return
    src.file_size, src.file_mtime_ns = item.stamp or (None, None)
    if old is not None and old.sha256 == r.sha256:  # same bytes (touched, or re-verified)
        if old.status == ImageStatus.quarantined:
            report.rechecked += recheck
            if isinstance(r, CheckedImage):  # verifies now (limits changed)
                _set_result(old, item, r)
                report.added += 1
                report.new_image_ids.append(old.id)
            else:
                _set_result(old, item, r)
                report.quarantined.append(Quarantined(item.where, r.reason, r.detail))
        else:
            report.already_known += 1
        return
    report.changed += 1
    report.rechecked += recheck and old is not None and old.status == ImageStatus.quarantined
    target = session.exec(select(Image).where(Image.sha256 == r.sha256)).first()
    others = session.exec(select(ImageSource.id).where(ImageSource.image_id == src.image_id,
                                                       ImageSource.id != src.id)).first() if old else None
    if isinstance(r, Rejected):
        report.quarantined.append(Quarantined(item.where, r.reason, r.detail))
    fresh_content = target is None
    if target is None and old is not None and old.status != ImageStatus.ok and others is None:
        _set_result(old, item, r)  # a repaired quarantined file: same row, now verified
        target = old
    elif target is None:
        target = Image(source_uri=item.uri, alt_text=item.alt_text)
        _set_result(target, item, r)
        session.add(target)
        session.flush()
    else:
        report.duplicates_merged += isinstance(r, CheckedImage)
    if target.id != src.image_id:
        src.image_id = target.id
        session.flush()
        if old is not None and old.status != ImageStatus.ok and others is None:
            session.delete(old)  # a quarantine row nothing points at any more
    if fresh_content and isinstance(r, CheckedImage):
        report.added += 1
        report.new_image_ids.append(target.id)


def _set_result(img: Image, item: SourceItem, r: CheckedImage | Rejected) -> None:
    img.sha256, img.size_bytes = r.sha256, r.size_bytes
    img.dedup_done = False
    if isinstance(r, CheckedImage):
        img.status = ImageStatus.ok
        img.ext, img.width, img.height, img.phash = r.ext, r.width, r.height, r.phash
        img.meta = {"format": r.format, "mode": r.mode, "frames": r.frames}
        img.quarantine_reason = img.quarantine_detail = None
    else:
        img.status = ImageStatus.quarantined
        img.ext = img.width = img.height = img.phash = None
        img.quarantine_reason, img.quarantine_detail = r.reason, f"{item.where}: {r.detail}"


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


def _write(ws: Workspace, fn: Callable[[Session, IngestReport], None]) -> IngestReport:
    """One write transaction, retried whole on a concurrent writer's conflict; the counts of a
    failed attempt are thrown away with it."""
    def tx(s: Session) -> IngestReport:
        part = IngestReport()
        fn(s, part)
        return part

    return run_write(ws.engine, tx)


def ingest_items(
    ws: Workspace,
    items: Iterable[SourceItem | BadRecord],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
    recheck: bool = False,
) -> IngestReport:
    """Store every item: local ones are verified now, remote ones are registered as pending.
    A known local source is read again when its (size, mtime) changed, or with `recheck` when
    its image is quarantined."""
    report = IngestReport()
    items = list(items)
    good = [x for x in items if isinstance(x, SourceItem)]
    bads = [x for x in items if isinstance(x, BadRecord)]
    for chunk in _batched(bads, WRITE_BATCH):
        report.merge(_write(ws, lambda s, part, chunk=chunk: [record_bad(s, b, part) for b in chunk]))
    with read_scope(ws.engine) as s:
        known = known_sources(s, [x.uri for x in good])
    todo_local, todo_remote, reread, seen = [], [], set(), set()
    for it in good:
        report.warnings.extend(f"{it.where}: {w}" for w in it.warnings)
        if it.uri in seen:
            continue  # the same URI twice in one input is one source
        seen.add(it.uri)
        if it.uri in known:
            size, mtime, status = known[it.uri]
            changed = it.path is not None and it.stamp is not None and (size, mtime) != it.stamp
            if changed or (recheck and it.path is not None and status == ImageStatus.quarantined):
                reread.add(it.uri)
                todo_local.append(it)
            else:
                report.already_known += 1
            continue
        (todo_local if it.path else todo_remote).append(it)

    total, done = len(todo_local) + len(todo_remote), 0
    for batch in _batched(todo_remote, WRITE_BATCH):
        report.merge(_write(ws, lambda s, part, batch=batch: _register_all(s, batch, part)))
        done += len(batch)
        if progress:
            progress(done, total)

    if todo_local:
        root, max_px, q_cap = str(ws.root), ws.ingest.max_pixels, ws.ingest.quarantine_max_bytes
        n_workers = workers or default_workers()
        own = executor is None and n_workers > 1
        pool = executor or (ProcessPoolExecutor(max_workers=n_workers) if own else None)
        try:
            args = ((it, root, max_px, q_cap) for it in todo_local)
            results = pool.map(process_local, args, chunksize=8) if pool else map(process_local, args)
            for batch in _batched(results, WRITE_BATCH):
                report.merge(_write(ws, lambda s, part, batch=batch: _record_mixed(s, batch, part, reread, recheck)))
                done += len(batch)
                if progress:
                    progress(done, total)
        finally:
            if own:
                pool.shutdown()
    return report


def _register_all(session: Session, batch: list[SourceItem], report: IngestReport) -> None:
    known = known_uris(session, [it.uri for it in batch])  # another ingest may have got there first
    for it in batch:
        if it.uri in known:
            report.already_known += 1
        else:
            register_pending(session, it)
            report.pending_download += 1


def _record_mixed(session: Session, batch: list[Processed], report: IngestReport, reread: set[str],
                  recheck: bool) -> None:
    again = [p for p in batch if p.item.uri in reread]
    record_batch(session, [p for p in batch if p.item.uri not in reread], report)
    for p in again:
        record_reread(session, p, report, recheck=recheck)


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
