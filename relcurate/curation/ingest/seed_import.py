"""Import the reference `seed_group.json`: a list of {"anonymous_caption": "\"...\"", "image_urls": [...]}.

Each group becomes a SeedGroup with ordered members (images registered as pending downloads unless
their URL is already known) and one accepted caption (the paper's groups were verified by people),
with the literal surrounding quotes stripped. Groups with more than 10 images are imported and
flagged `needs_split`, never dropped. Re-importing the same file changes nothing.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import select

from relcurate.curation.groups.anonymity import normalise_caption
from relcurate.curation.ingest.store_writes import IngestReport, record_bad, register_pending
from relcurate.curation.ingest.sources import BadRecord, SourceItem, display_path

from relcurate.db.write_retry import run_write
from relcurate.safe_names import text_problem, url_problem
from relcurate.db.models import Caption, CaptionReview, CaptionStatus, GroupMember, GroupStatus, ImageSource, SeedGroup
from relcurate.workspace import Workspace

MIN_GROUP, MAX_GROUP = 2, 10
strip_quotes = normalise_caption  # the reference file wraps every caption in literal quotes


@dataclass
class SeedImportReport:
    groups_added: int = 0
    groups_known: int = 0
    needs_split: int = 0
    images: IngestReport = field(default_factory=IngestReport)


def group_key(caption: str, urls: list[str]) -> str:
    return hashlib.sha256(json.dumps([caption, urls]).encode()).hexdigest()[:20]


def import_seed_groups(ws: Workspace, path: str | Path) -> SeedImportReport:
    path = Path(path)
    report = SeedImportReport()
    where0 = display_path(str(path))
    try:
        data = json.loads(path.read_bytes())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        run_write(ws.engine, lambda s: record_bad(s, BadRecord(where0, "bad_json", f"cannot read seed groups: {exc}"),
                                                  report.images))
        return report
    if not isinstance(data, list):
        run_write(ws.engine, lambda s: record_bad(s, BadRecord(where0, "bad_record", "seed_group.json must be a JSON list"),
                                                  report.images))
        return report
    for idx, rec in enumerate(data):
        where = f"{where0}:record {idx}"
        # Per record, retried whole when a concurrent import registered the same URL first.
        part = run_write(ws.engine, lambda s: _import_record(s, path, idx, rec, where))
        report.groups_added += part.groups_added
        report.groups_known += part.groups_known
        report.needs_split += part.needs_split
        report.images.merge(part.images)
    return report


def _import_record(s, path: Path, idx: int, rec, where: str) -> SeedImportReport:
    report = SeedImportReport()
    bad = _validate(rec)
    if bad:
        record_bad(s, BadRecord(where, "bad_record", bad), report.images)
        return report
    caption = strip_quotes(rec["anonymous_caption"])
    urls = list(dict.fromkeys(u.strip() for u in rec["image_urls"]))  # ordered, deduplicated
    key = f"import:{group_key(caption, urls)}"
    if s.exec(select(SeedGroup.id).where(SeedGroup.source == key)).first() is not None:
        report.groups_known += 1
        return report
    too_big = len(urls) > MAX_GROUP
    group = SeedGroup(
        name=f"{path.stem}-{idx:04d}",
        status=GroupStatus.draft if too_big or len(urls) < MIN_GROUP else GroupStatus.verified,
        needs_split=too_big,
        source=key,
        note=f"imported from {path.name} record {idx}",
    )
    s.add(group)
    s.flush()
    for pos, url in enumerate(urls):
        image_id = s.exec(select(ImageSource.image_id).where(ImageSource.uri == url)).first()
        if image_id is None:
            image_id = register_pending(s, SourceItem(uri=url, kind="seed_group", url=url, where=where)).id
            report.images.pending_download += 1
        s.add(GroupMember(group_id=group.id, image_id=image_id, position=pos))
    cap = Caption(group_id=group.id, text=caption, source="import", status=CaptionStatus.accepted)
    s.add(cap)
    s.flush()
    # The accept event keeps the caption exactly as the file wrote it (quotes and all), so
    # an export of the unchanged caption reproduces the file byte for byte.
    s.add(CaptionReview(caption_id=cap.id, action="accept", text=rec["anonymous_caption"],
                        reason=f"imported from {path.name}"))
    report.groups_added += 1
    report.needs_split += too_big
    return report


def _validate(rec) -> str | None:
    if not isinstance(rec, dict):
        return "a record must be a JSON object"
    cap, urls = rec.get("anonymous_caption"), rec.get("image_urls")
    if not isinstance(cap, str) or not strip_quotes(cap):
        return "missing or empty anonymous_caption"
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u.strip() for u in urls):
        return "image_urls must be a non-empty list of strings"
    problem = text_problem(cap, "anonymous_caption")
    if problem:
        return problem
    # One bad URL rejects the whole record: a group missing a member must not become "verified".
    for pos, url in enumerate(urls):
        problem = url_problem(url.strip())
        if problem:
            return f"image_urls[{pos}]: {problem}"
    return None
