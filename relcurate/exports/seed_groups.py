"""Seed groups out: ``seed_group.json`` in the reference layout and a richer ``seed_groups.jsonl``.

seed_group.json: a list of ``{"anonymous_caption": "\\"...\\"", "image_urls": [...]}`` for every
live group (not rejected, not split) with an accepted caption, in group order, formatted like the
reference file (4-space indent, ASCII escapes, no final newline). Captions get their literal
surrounding quotes back; a caption imported from such a file and never edited is written exactly
as it was read (the import records the original text), so import -> export is byte-identical.
Each member is listed by its first http(s) URL, or its source URI (``file://...``) if it has none.

seed_groups.jsonl: one object per live group (captioned or not), sorted by id, with its note,
status, members (hashes, URL, status) and caption with review status.
"""
from __future__ import annotations

import json
import os
from collections import Counter

from sqlalchemy import select

from relcurate.curation.groups.anonymity import normalise_caption
from relcurate.db.models import Caption, CaptionReview, User
from relcurate.exports.common import ExportResult, jsonl_line, require_exporter
from relcurate.exports.manifest import FileLedger
from relcurate.exports.runner import Written, run_export
from relcurate.exports.snapshot import EXCLUDED_GROUP_STATUSES, StoreSnapshot, load_snapshot, snapshot_connection
from relcurate.workspace import Workspace

SEED_GROUP_JSON = "seed_group.json"
SEED_GROUPS_JSONL = "seed_groups.jsonl"
IMPORT_REASON_PREFIX = "imported"  # CaptionReview.reason of the accept event an import records


def quoted(text: str) -> str:
    return f'"{text}"'


def reference_caption(text: str, literal: str | None) -> str:
    """The caption as the reference file writes it: the imported literal while the text is
    unchanged since the import, else the text in literal quotes."""
    if literal is not None and normalise_caption(literal) == text:
        return literal
    return quoted(text)


def dump_reference(records: list[dict]) -> str:
    return json.dumps(records, indent=4, ensure_ascii=True)


def _review_info(conn, caption_ids: list[int]) -> tuple[dict[int, str], dict[int, tuple[int, str]]]:
    """(caption id -> imported literal, caption id -> (number of review events, last action))."""
    literal: dict[int, str] = {}
    info: dict[int, tuple[int, str]] = {}
    wanted = set(caption_ids)
    q = select(CaptionReview.caption_id, CaptionReview.action, CaptionReview.text, CaptionReview.reason) \
        .order_by(CaptionReview.id)
    n: Counter = Counter()
    for cid, action, text, reason in conn.execute(q):
        if cid not in wanted:
            continue
        n[cid] += 1
        info[cid] = (n[cid], action)
        if action == "accept":
            if reason and reason.startswith(IMPORT_REASON_PREFIX) and text:
                literal[cid] = text
            else:
                literal.pop(cid, None)  # accepted again later: the text is the reviewer's now
    return literal, info


def _current_captions(conn, group_ids: list[int]) -> dict[int, dict]:
    """Per group the caption a reviewer sees: accepted, else newest proposed, else newest rejected."""
    rank = {"accepted": 0, "proposed": 1, "rejected": 2}
    best: dict[int, tuple] = {}
    wanted = set(group_ids)
    for cid, gid, text, status, source in conn.execute(
            select(Caption.id, Caption.group_id, Caption.text, Caption.status, Caption.source)
            .where(Caption.group_id.is_not(None))):
        if gid not in wanted:
            continue
        key = (rank.get(status, 3), -cid)
        if gid not in best or key < best[gid][0]:
            best[gid] = (key, {"id": cid, "text": text, "status": status, "source": source})
    return {g: v[1] for g, v in best.items()}


def export_seed_groups(ws: Workspace, out: str | os.PathLike, *, user: str | User,
                       exclude_statuses: tuple[str, ...] = EXCLUDED_GROUP_STATUSES,
                       overwrite: bool = False) -> ExportResult:
    require_exporter(ws.engine, user)
    with snapshot_connection(ws.engine) as conn:
        snap = load_snapshot(conn)
        live = snap.live_groups(tuple(exclude_statuses))
        current = _current_captions(conn, live)
        literal, reviews = _review_info(conn, [c["id"] for c in current.values()])

    def member_url(iid: int) -> str:
        return snap.http_url.get(iid) or snap.images[iid].source_uri

    def writer(s: StoreSnapshot, ledger: FileLedger) -> Written:
        records, lines = [], []
        no_url = 0
        for gid in live:
            g, ids = s.groups[gid], s.members.get(gid, [])
            cap = current.get(gid)
            if cap is not None and cap["status"] == "accepted":
                urls = [member_url(i) for i in ids]
                no_url += sum(i not in s.http_url for i in ids)
                records.append({"anonymous_caption": reference_caption(cap["text"], literal.get(cap["id"])),
                                "image_urls": urls})
            if cap is not None:
                n, last = reviews.get(cap["id"], (0, None))
                cap = {**cap, "review_events": n, "last_review_action": last}
            lines.append(jsonl_line({
                "group_id": gid, "name": g.name, "note": g.note, "status": g.status, "needs_split": g.needs_split,
                "source": g.source, "caption": cap,
                "members": [{"position": p, "image_id": i, "image_hash": s.identity.get(i, (None,))[0],
                             "sha256": s.images[i].sha256, "url": member_url(i), "status": s.images[i].status}
                            for p, i in enumerate(ids)],
            }))
        ledger.write_text(SEED_GROUP_JSON, dump_reference(records))
        ledger.write_text(SEED_GROUPS_JSONL, "".join(lines))
        counts = {"groups": len(live), "groups_in_seed_group_json": len(records),
                  "images_in_seed_group_json": sum(len(r["image_urls"]) for r in records),
                  "members_without_url": no_url,
                  "by_status": dict(sorted(Counter(s.groups[g].status for g in live).items()))}
        params = {"exclude_statuses": list(exclude_statuses)}
        warnings = [f"{no_url} member(s) have no http(s) URL; listed by their source URI"] if no_url else []
        return Written(params, counts, None, warnings)

    return run_export(ws, out, kind="seed-groups", user=user, writer=writer, overwrite=overwrite, snapshot=snap)
