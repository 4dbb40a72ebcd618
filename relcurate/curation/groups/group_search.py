"""Finding images for a seed group: filtered browsing, "more like this group", "images like this one".

Embedding spaces live in ``<workspace>/vectors/<space>/`` as saved `VectorIndex` folders (index.faiss,
ids.npy, meta.json), so any model that saves its index there (relsim, CLIP) becomes a space the
curator can pick. The built-in space ``attribute`` (colour histogram + layout thumbnail,
models.baselines.AttributeEmbedder) needs no model: :func:`ensure_space` embeds the usable images
it lacks (from their thumbnails, in batches) whenever it is searched, so the feature works from the
first ingest. Candidates that are perceptual-hash near-duplicates of a member are flagged, since a
near copy of a member adds no new example of the relation.

"More like this group" gives two lists: the nearest neighbours of the members' centroid, and the
leave-one-out view (for each member, the centroid of the *others*: where that member ranks tells
how well it fits; the neighbours of those partial centroids are more candidates).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import exists, func, or_
from sqlmodel import Session, select

from relcurate.curation.catalog.browse import ImageCard, card_of
from relcurate.db.engine import read_scope
from relcurate.db.models import Caption, CurrentLabel, GroupMember, Image, ImageSource, ImageStatus
from relcurate.models.index import VectorIndex, group_centroid, leave_one_out_neighbours
from relcurate.models.protocols import Embedder
from relcurate.workspace import Workspace

BUILTIN_SPACE = "attribute"
LABEL_FILTERS = ("any", "yes", "no", "skip", "unlabelled")
MEMBERSHIP_FILTERS = ("any", "ungrouped", "grouped")
EMBED_BATCH = 128


@dataclass(frozen=True)
class BrowseFilter:
    """What the curator narrows candidates to. `text` searches alt-texts (image and sources),
    source URIs and captions (the image's own and those of groups it is in); `label` is the
    filter label any annotator currently gives ("unlabelled": none yet)."""

    text: str | None = None
    status: str | None = ImageStatus.ok
    source_kind: str | None = None
    label: str = "any"
    membership: str = "any"
    exclude_group: int | None = None  # hide this group's members


def _filtered(flt: BrowseFilter):
    q = select(Image.id)
    if flt.status:
        q = q.where(Image.status == flt.status)
    if flt.source_kind:
        q = q.where(exists().where(ImageSource.image_id == Image.id, ImageSource.kind == flt.source_kind))
    if flt.text and flt.text.strip():
        like = f"%{flt.text.strip()}%"
        in_group_caption = (select(GroupMember.image_id).join(Caption, Caption.group_id == GroupMember.group_id)
                            .where(Caption.text.ilike(like)))
        q = q.where(or_(
            Image.alt_text.ilike(like),
            exists().where(ImageSource.image_id == Image.id,
                           or_(ImageSource.alt_text.ilike(like), ImageSource.uri.ilike(like))),
            exists().where(Caption.image_id == Image.id, Caption.text.ilike(like)),
            Image.id.in_(in_group_caption),
        ))
    if flt.label not in LABEL_FILTERS:
        raise ValueError(f"label filter must be one of {LABEL_FILTERS}")
    if flt.label == "unlabelled":
        q = q.where(~exists().where(CurrentLabel.image_id == Image.id))
    elif flt.label != "any":
        q = q.where(exists().where(CurrentLabel.image_id == Image.id, CurrentLabel.answer == flt.label))
    if flt.membership not in MEMBERSHIP_FILTERS:
        raise ValueError(f"membership filter must be one of {MEMBERSHIP_FILTERS}")
    if flt.membership != "any":
        grouped = exists().where(GroupMember.image_id == Image.id)
        q = q.where(grouped if flt.membership == "grouped" else ~grouped)
    if flt.exclude_group is not None:
        q = q.where(~exists().where(GroupMember.image_id == Image.id, GroupMember.group_id == flt.exclude_group))
    return q


def browse(ws: Workspace, flt: BrowseFilter = BrowseFilter(), *, offset: int = 0,
           limit: int = 24) -> tuple[list[ImageCard], int]:
    """A page of matching images (by id) and the total count."""
    q = _filtered(flt)
    with read_scope(ws.engine) as s:
        total = s.exec(select(func.count()).select_from(q.subquery())).one()
        ids = list(s.exec(q.order_by(Image.id).offset(offset).limit(limit)))
        return _image_cards(s, ws, ids), int(total)


def image_cards(ws: Workspace, image_ids: Sequence[int]) -> list[ImageCard]:
    """Cards for these ids in the given order (unknown ids are left out)."""
    with read_scope(ws.engine) as s:
        return _image_cards(s, ws, image_ids)


def _image_cards(session: Session, ws: Workspace, image_ids: Sequence[int]) -> list[ImageCard]:
    rows = {r.id: r for r in session.exec(select(Image).where(Image.id.in_(list(image_ids))))} if image_ids else {}
    return [card_of(ws, rows[i]) for i in image_ids if i in rows]


def source_kinds(ws: Workspace) -> list[str]:
    with read_scope(ws.engine) as s:
        return sorted(s.exec(select(ImageSource.kind).distinct()))


def _allowed(session: Session, ids: Iterable[int], flt: BrowseFilter) -> set[int]:
    ids = [int(i) for i in ids if i != -1]
    if not ids:
        return set()
    return set(session.exec(_filtered(flt).where(Image.id.in_(ids))))


# --- embedding spaces ------------------------------------------------------------------------

_cache_lock = threading.Lock()
_space_locks: dict[str, threading.Lock] = {}
_index_cache: dict[str, tuple[int, VectorIndex]] = {}  # space dir -> (meta mtime_ns, index)


def space_dir(ws: Workspace, space: str) -> Path:
    if not space or "/" in space or "\\" in space or space.startswith("."):
        raise ValueError(f"bad space name {space!r}")
    return ws.vectors_dir / space


def available_spaces(ws: Workspace) -> list[str]:
    """The built-in space first, then every saved index under vectors/."""
    saved = ws.vectors_dir.glob("*/meta.json") if ws.vectors_dir.is_dir() else []
    return [BUILTIN_SPACE, *sorted(p.parent.name for p in saved if p.parent.name != BUILTIN_SPACE)]


def default_space(ws: Workspace) -> str:
    """The space "more like this group" searches unless told otherwise: the workspace setting
    (set when a relsim version is re-embedded and made the default), while its index exists;
    else the built-in one. Other spaces stay selectable side by side."""
    from relcurate.curation.workspace_settings import RELSIM_SPACE, get_setting

    chosen = get_setting(ws, RELSIM_SPACE)
    return chosen if chosen and chosen in available_spaces(ws) else BUILTIN_SPACE


def open_space(ws: Workspace, space: str) -> VectorIndex | None:
    """The saved index of a space (cached in memory until its files change), or None."""
    d = space_dir(ws, space)
    meta = d / "meta.json"
    try:
        mtime = meta.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    key = str(d)
    with _cache_lock:
        hit = _index_cache.get(key)
        if hit and hit[0] == mtime:
            return hit[1]
    index = VectorIndex.load(d)
    with _cache_lock:
        _index_cache[key] = (mtime, index)
    return index


def default_embedder() -> Embedder:
    from relcurate.models.baselines import AttributeEmbedder

    return AttributeEmbedder()


def _load_for_embedding(ws: Workspace, img: Image, thumbnails: bool) -> PILImage.Image | None:
    path = ws.thumb_path(img.sha256) if thumbnails else ws.image_path(img.sha256, img.ext)
    try:
        with PILImage.open(path) as im:
            im.draft("RGB", (512, 512))
            return im.convert("RGB")
    except (OSError, ValueError):
        return None


def ensure_space(ws: Workspace, embedder: Embedder | None = None, *, batch_size: int = EMBED_BATCH,
                 progress: Callable[[int, int], None] | None = None) -> VectorIndex:
    """Embed every usable image the space of `embedder` (default: the built-in one) lacks, in
    batches, and save the index. The attribute embedder reads thumbnails (it works at 64 px);
    other embedders read originals."""
    embedder = embedder or default_embedder()
    d = space_dir(ws, embedder.name)
    with _cache_lock:
        lock = _space_locks.setdefault(str(d), threading.Lock())
    with lock:
        index = open_space(ws, embedder.name) or VectorIndex.empty(embedder.dim, model_version=embedder.name)
        with read_scope(ws.engine) as s:
            rows = list(s.exec(select(Image).where(Image.status == ImageStatus.ok, Image.sha256.is_not(None))
                               .order_by(Image.id)))
        have = set(index.ids.tolist())
        todo = [r for r in rows if r.id not in have]
        if not todo:
            return index
        # Add to a private copy: searches running in other threads keep the cached object intact.
        index = VectorIndex.load(d) if (d / "meta.json").exists() else index
        thumbnails = embedder.name == BUILTIN_SPACE
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            loaded = [(r.id, _load_for_embedding(ws, r, thumbnails)) for r in batch]
            loaded = [(i, im) for i, im in loaded if im is not None]
            if loaded:
                index.add(embedder.embed([im for _, im in loaded]), [i for i, _ in loaded])
            if progress:
                progress(min(start + batch_size, len(todo)), len(todo))
        index.save(d)
        with _cache_lock:
            _index_cache[str(d)] = ((d / "meta.json").stat().st_mtime_ns, index)
        return index


def _space(ws: Workspace, space: str) -> VectorIndex:
    if space == BUILTIN_SPACE:
        return ensure_space(ws)
    index = open_space(ws, space)
    if index is None:
        raise ValueError(f"no embedding space {space!r} in {ws.vectors_dir}")
    return index


def vectors_of(index: VectorIndex, ids: Sequence[int]) -> tuple[list[int], np.ndarray]:
    """The stored vectors of those ids the index holds: (found ids, matrix row-aligned)."""
    return index.vectors(ids)


# --- neighbours ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Neighbour:
    image_id: int
    score: float  # cosine similarity (inner product of normalised vectors)
    near_duplicate_of: int | None = None  # a member it nearly copies (pHash), if any


@dataclass(frozen=True)
class MemberFit:
    image_id: int
    rank: int  # where the member ranks for the centroid of the others (0 = best); -1: beyond k


@dataclass(frozen=True)
class GroupNeighbours:
    space: str
    centroid: list[Neighbour]
    leave_one_out: list[Neighbour]
    member_fit: list[MemberFit]
    not_embedded: list[int]  # members this space has no vector for


def _hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _finish(session: Session, ws: Workspace, cands: list[tuple[int, float]], members: Sequence[int],
            flt: BrowseFilter | None, k: int) -> list[Neighbour]:
    flt = flt or BrowseFilter()
    ok = _allowed(session, [i for i, _ in cands], flt)
    kept = [(i, s) for i, s in cands if i in ok][:k]
    ids = [i for i, _ in kept] + list(members)
    phash = dict(session.exec(select(Image.id, Image.phash).where(Image.id.in_(ids))).all()) if ids else {}
    limit = ws.ingest.near_duplicate_distance
    out = []
    for i, s in kept:
        dup = next((m for m in members if phash.get(i) and phash.get(m)
                    and _hamming(phash[i], phash[m]) <= limit), None)
        out.append(Neighbour(i, float(s), dup))
    return out


def _search_filtered(session: Session, ws: Workspace, index: VectorIndex, query: np.ndarray,
                     members: Sequence[int], flt: BrowseFilter | None, k: int) -> list[Neighbour]:
    """Top-k of one query among images passing the filter: over-fetch, filter, widen if short."""
    fetch = k * 3
    while True:
        scores, ids = index.search(query, fetch, exclude_ids=members)
        cands = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]
        out = _finish(session, ws, cands, members, flt, k)
        if len(out) >= k or fetch >= len(index):
            return out
        fetch *= 4


def more_like_group(ws: Workspace, member_ids: Sequence[int], *, space: str | None = None, k: int = 12,
                    flt: BrowseFilter | None = None) -> GroupNeighbours:
    """Candidates for a group: centroid neighbours and leave-one-out neighbours (members excluded).
    `space` None: the workspace's default space (`default_space`)."""
    space = space or default_space(ws)
    index = _space(ws, space)
    found, vecs = vectors_of(index, member_ids)
    missing = [i for i in member_ids if i not in found]
    if not found:
        return GroupNeighbours(space, [], [], [], missing)
    with read_scope(ws.engine) as s:
        centroid = _search_filtered(s, ws, index, group_centroid(vecs), list(member_ids), flt, k)
        loo, fit = [], []
        if len(found) >= 2:
            results = leave_one_out_neighbours(index, vecs, found, k=k + len(member_ids))
            best: dict[int, tuple[int, float]] = {}  # candidate -> (times seen, best score)
            for r in results:
                fit.append(MemberFit(r.held_out_id, r.rank))
                for i, sc in zip(r.ids.tolist(), r.scores.tolist()):
                    if i in member_ids:
                        continue
                    n, b = best.get(i, (0, -np.inf))
                    best[i] = (n + 1, max(b, sc))
            ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
            loo = _finish(s, ws, [(i, sc) for i, (_, sc) in ranked], list(member_ids), flt, k)
    return GroupNeighbours(space, centroid, loo, fit, missing)


def like_image(ws: Workspace, image_id: int, *, space: str = BUILTIN_SPACE, k: int = 12,
               flt: BrowseFilter | None = None, exclude: Sequence[int] = ()) -> list[Neighbour]:
    """Nearest neighbours of one image (itself and `exclude` left out)."""
    index = _space(ws, space)
    found, vecs = vectors_of(index, [image_id])
    if not found:
        return []
    with read_scope(ws.engine) as s:
        return _search_filtered(s, ws, index, vecs, [image_id, *exclude], flt, k)


def split_vectors(ws: Workspace, member_ids: Sequence[int], *, space: str = BUILTIN_SPACE) -> np.ndarray | None:
    """Member vectors for splitting.suggest_split, or None when some member has none in the space."""
    found, vecs = vectors_of(_space(ws, space), member_ids)
    return vecs if found == list(member_ids) else None
