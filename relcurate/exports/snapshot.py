"""One consistent read of everything an export needs, in a few bulk queries (no per-row ORM
objects: 114k rows load in well under a second on SQLite).

Image identity in exports (`image_hash`, `url_link`), per image, from its sources in insertion order:

1. a source imported from a reference relsim JSONL keeps that file's ``image_hash`` and
   ``url_link`` (so an exported set re-imports and re-exports byte-identically);
2. else the first http(s) source: ``image_hash = md5(url)`` (the reference convention),
   ``url_link = url``;
3. else (a local file): ``image_hash = sha256`` of the image bytes (64 hex characters; the store
   already keys images by it), ``url_link = ""`` — or the source URI (``file://...``) when asked.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from relcurate.safe_names import is_safe_stem
from relcurate.curation.ingest.dedup_review import resolve_canonical
from relcurate.curation.ingest.sources import reference_hash
from relcurate.db.engine import is_sqlite, read_scope
from relcurate.db.models import (
    Adjudication,
    Caption,
    CaptionReview,
    CaptionStatus,
    CurrentLabel,
    FilterLabel,
    GoldAnswer,
    GroupMember,
    GroupStatus,
    Image,
    ImageSource,
    ImageStatus,
    NearDuplicate,
    NearDuplicateDecision,
    SeedGroup,
)

RELSIM_PLACEHOLDER = "relsim-hash:"  # ImageSource.uri of a reference row that had no url_link
EXCLUDED_GROUP_STATUSES = (GroupStatus.rejected.value, GroupStatus.split.value)
URL_LINK_MODES = ("empty", "source-uri")


class ImageRow(NamedTuple):
    id: int
    sha256: str | None
    ext: str | None
    status: str
    source_uri: str
    split: str | None
    size_bytes: int | None


class GroupRow(NamedTuple):
    id: int
    name: str
    note: str | None
    status: str
    needs_split: bool
    source: str


@dataclass
class StoreSnapshot:
    images: dict[int, ImageRow]
    identity: dict[int, tuple[str, str]]  # image id -> (image_hash, url_link)
    http_url: dict[int, str]  # image id -> its first http(s) source
    groups: dict[int, GroupRow]
    members: dict[int, list[int]]  # group id -> image ids in position order
    group_captions: dict[int, tuple[int, str]]  # group id -> (caption id, text), accepted only
    image_captions: dict[int, list[str]]  # image id -> accepted per-image caption texts (id order)
    near_edges: list[tuple[int, int]]  # near-duplicate pairs not reviewed as "different"
    state: dict = field(default_factory=dict)

    def usable(self, image_id: int, include_pending: bool = False) -> bool:
        row = self.images.get(image_id)
        if row is None:
            return False
        return row.status == ImageStatus.ok or (include_pending and row.status == ImageStatus.pending_download)

    def usable_ids(self, include_pending: bool = False) -> set[int]:
        ok = (ImageStatus.ok.value, ImageStatus.pending_download.value) if include_pending else (ImageStatus.ok.value,)
        return {i for i, row in self.images.items() if row.status in ok}

    def live_groups(self, excluded: tuple[str, ...] = EXCLUDED_GROUP_STATUSES) -> list[int]:
        return sorted(g for g, row in self.groups.items() if row.status not in excluded)

    def split_key(self, image_id: int) -> str:
        """A store-independent identity for split hashing (same bytes or URL -> same key)."""
        row = self.images[image_id]
        return row.sha256 or ("uri:" + row.source_uri)


@contextmanager
def snapshot_connection(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction that sees one state of the store throughout: SQLite's deferred
    read transaction already does (WAL snapshot); PostgreSQL needs REPEATABLE READ."""
    if is_sqlite(engine):
        with read_scope(engine) as s:
            yield s.connection()
        return
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        with conn.begin() as tx:
            try:
                yield conn
            finally:
                tx.rollback()


def _fetch(conn: Connection, stmt) -> list[tuple]:
    """All rows as plain tuples straight from the DB-API cursor: for these few wide reads the
    per-row Result/Row machinery cost more than the query itself. Only constant literals are
    inlined, never user input."""
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cur = conn.connection.dbapi_connection.cursor()
    try:
        cur.execute(sql)
        return cur.fetchall()
    finally:
        cur.close()


def load_snapshot(conn: Connection, *, url_link_mode: str = "empty") -> StoreSnapshot:
    if url_link_mode not in URL_LINK_MODES:
        raise ValueError(f"url_link_mode must be one of {URL_LINK_MODES}")
    make_image = ImageRow._make
    images = {r[0]: make_image(r) for r in _fetch(conn, select(
        Image.id, Image.sha256, Image.ext, Image.status, Image.source_uri, Image.split, Image.size_bytes))}
    identity, http_url = _identities(conn, images, url_link_mode)
    groups = {r[0]: GroupRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in _fetch(conn, select(
        SeedGroup.id, SeedGroup.name, SeedGroup.note, SeedGroup.status, SeedGroup.needs_split, SeedGroup.source))}
    members: dict[int, list[int]] = {}
    for gid, iid in _fetch(conn, select(GroupMember.group_id, GroupMember.image_id)
                           .order_by(GroupMember.group_id, GroupMember.position, GroupMember.image_id)):
        members.setdefault(gid, []).append(iid)
    group_captions: dict[int, tuple[int, str]] = {}
    image_captions: dict[int, list[str]] = {}
    for cid, gid, iid, text in _fetch(conn, select(Caption.id, Caption.group_id, Caption.image_id, Caption.text)
                                      .where(Caption.status == CaptionStatus.accepted.value).order_by(Caption.id)):
        if gid is not None:
            group_captions[gid] = (cid, text)  # newest accepted wins (captions.py keeps one)
        elif iid is not None:
            texts = image_captions.setdefault(iid, [])
            if text not in texts:
                texts.append(text)
    _apply_merges(conn, members, image_captions)
    edges = [(a, b) for a, b, rev in _fetch(conn, select(NearDuplicate.image_a, NearDuplicate.image_b,
                                                         NearDuplicate.reviewed)) if rev != "different"]
    return StoreSnapshot(images, identity, http_url, groups, members, group_captions, image_captions,
                         sorted(edges), store_state(conn))


def _apply_merges(conn: Connection, members: dict[int, list[int]], image_captions: dict[int, list[str]]) -> None:
    """Curators' merges (curation/ingest/dedup_review.py): the canonical image takes the merged
    one's place in every group (once) and gets its image captions; the merged original stays in
    the store but is not exported for them."""
    canonical = resolve_canonical(_fetch(conn, select(
        NearDuplicateDecision.image_a, NearDuplicateDecision.image_b, NearDuplicateDecision.decision,
        NearDuplicateDecision.canonical_id).order_by(NearDuplicateDecision.id)))
    if not canonical:
        return
    for gid, ids in members.items():
        members[gid] = list(dict.fromkeys(canonical.get(i, i) for i in ids))
    for merged, to in canonical.items():
        texts = image_captions.pop(merged, None)
        if texts:
            keep = image_captions.setdefault(to, [])
            keep.extend(x for x in texts if x not in keep)


def _identities(conn: Connection, images: dict[int, ImageRow], url_link_mode: str):
    ref: dict[int, tuple[str, str]] = {}
    http: dict[int, str] = {}
    for iid, uri, ref_hash in _fetch(conn, select(ImageSource.image_id, ImageSource.uri, ImageSource.ref_hash)
                                     .order_by(ImageSource.id)):
        # A reference hash names the exported file (images/<hash>.png): one stored before input
        # was validated (``../../victim``) is ignored and the image falls back to md5(url)/sha256.
        if ref_hash and iid not in ref and is_safe_stem(ref_hash):
            ref[iid] = (ref_hash, "" if uri.startswith(RELSIM_PLACEHOLDER) else uri)
        if iid not in http and uri.startswith(("http://", "https://")):
            http[iid] = uri
    identity: dict[int, tuple[str, str]] = {}
    source_uri = url_link_mode == "source-uri"
    for iid, row in images.items():
        if iid in ref:
            identity[iid] = ref[iid]
        elif iid in http:
            identity[iid] = (reference_hash(http[iid]), http[iid])
        elif row.sha256:
            identity[iid] = (row.sha256, row.source_uri if source_uri else "")
    return identity, http


_COUNTED = (Image, ImageSource, SeedGroup, Caption, CaptionReview, FilterLabel, Adjudication)


def store_state(conn: Connection) -> dict:
    """A fingerprint of the store an export was taken from: schema revision, row counts and
    highest ids of the curated tables, image/caption/group counts by status, last group change.
    Two exports of the same state record the same fingerprint (no clock time in it)."""
    state: dict = {"backend": conn.dialect.name}
    try:
        state["schema_revision"] = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except Exception:  # a store created without alembic (tests with create_all)
        state["schema_revision"] = None
    tables: dict[str, dict] = {}
    for model in _COUNTED:
        n, top = conn.execute(select(func.count(), func.max(model.id))).one()
        tables[model.__tablename__] = {"rows": int(n), "max_id": top}
    for model in (GroupMember, NearDuplicate, CurrentLabel, GoldAnswer):
        tables[model.__tablename__] = {"rows": int(conn.execute(select(func.count()).select_from(model)).scalar())}
    state["tables"] = tables
    for name, col in (("images_by_status", Image.status), ("captions_by_status", Caption.status),
                      ("groups_by_status", SeedGroup.status)):
        state[name] = {k: int(v) for k, v in sorted(conn.execute(select(col, func.count()).group_by(col)).all())}
    last = conn.execute(select(func.max(SeedGroup.updated_at))).scalar()
    state["groups_last_updated"] = last.isoformat() if last is not None else None
    return state
