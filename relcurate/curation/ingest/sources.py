"""Readers that turn each kind of input into `SourceItem`s, one per image reference.

A reader never raises on a bad record: it yields a `BadRecord` naming the file and line/record,
so the ingest can report it and go on with everything else.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from relcurate.safe_names import hash_problem, is_within, text_problem, url_problem

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".jfif"}
# Image-like files we do not accept are still picked up, so they are quarantined with a reason
# ("unsupported_format") instead of vanishing; anything else in a folder (notes, JSON) is ignored.
CANDIDATE_EXTENSIONS = IMAGE_EXTENSIONS | {".ppm", ".pgm", ".pbm", ".pnm", ".ico", ".heic", ".heif", ".avif",
                                           ".jp2", ".j2k", ".tga", ".psd", ".svg", ".dng", ".cr2", ".nef"}


@dataclass(frozen=True)
class SourceItem:
    uri: str  # stable identity of this reference: file:// URI or the URL
    kind: str  # folder | url | jsonl | parquet | seed_group
    path: str | None = None  # local file to read (str with surrogateescape for odd names)
    url: str | None = None  # remote file to download when there is no local copy
    alt_text: str | None = None
    ref_hash: str | None = None  # the reference JSONL's image_hash
    where: str = ""  # "file:line" for messages
    warnings: tuple[str, ...] = field(default=())
    # (size, mtime_ns) of a local file when it was read: a changed file is read again (store_writes)
    stamp: tuple[int, int] | None = None


@dataclass(frozen=True)
class BadRecord:
    where: str
    reason: str
    detail: str


def display_path(path: str) -> str:
    """A printable, storable form of any path (invalid UTF-8 bytes become \\xNN escapes)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def file_uri(path: str) -> str:
    return "file://" + display_path(os.path.abspath(path))


def file_stamp(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of the file a path names (following links), None if it cannot be stat-ed."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_size, st.st_mtime_ns


def walk_folder(root: str | os.PathLike) -> Iterator[SourceItem | BadRecord]:
    """Recursive, sorted, never follows directory symlinks (so a link loop cannot hang it).

    A file symlink is followed only when its target lies inside the source root: a link named
    ``x.png`` pointing at ``/etc/passwd`` is reported, never read or copied into quarantine."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        yield BadRecord(display_path(root), "not_a_folder", "no such folder")
        return
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.splitext(name)[1].lower() not in CANDIDATE_EXTENSIONS:
                continue
            if os.path.islink(path) and os.path.exists(path) and not is_within(real_root, path):
                yield BadRecord(display_path(path), "symlink_outside_source",
                                f"symlink to {display_path(os.path.realpath(path))} leaves the source folder; not followed")
                continue
            yield SourceItem(uri=file_uri(path), kind="folder", path=path, where=display_path(path),
                             stamp=file_stamp(path))
        # Directory symlinks are listed in dirnames but not descended into; report loops.
        for d in list(dirnames):
            full = os.path.join(dirpath, d)
            if os.path.islink(full) and not os.path.exists(full):
                yield BadRecord(display_path(full), "unreadable", "broken or looping symlink")


def read_url_list(path: str | os.PathLike) -> Iterator[SourceItem | BadRecord]:
    """One URL per line; blank lines and # comments ignored."""
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        where = f"{display_path(os.fspath(path))}:{lineno}"
        problem = url_problem(url)
        if problem:
            yield BadRecord(where, "bad_url", problem)
            continue
        yield SourceItem(uri=url, kind="url", url=url, where=where)


def reference_hash(url: str) -> str:
    """The reference relsim convention: image_hash == md5(url_link) in hex."""
    return hashlib.md5(url.encode("utf-8")).hexdigest()


def read_reference_jsonl(path: str | os.PathLike, image_folder: str | os.PathLike | None = None,
                         check_md5: bool = True) -> Iterator[SourceItem | BadRecord]:
    """Rows `{"image_hash", "caption"?, "url_link"}`; images at `{image_folder}/{image_hash}.png`."""
    path = Path(path)
    folder = Path(image_folder) if image_folder else None
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            where = f"{display_path(str(path))}:{lineno}"
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield BadRecord(where, "bad_json", f"invalid JSON: {exc}")
                continue
            if not isinstance(row, dict):
                yield BadRecord(where, "bad_record", "a row must be a JSON object")
                continue
            image_hash, url = row.get("image_hash"), row.get("url_link") or None
            if not isinstance(image_hash, str) or not image_hash.strip():
                yield BadRecord(where, "bad_record", "missing image_hash")
                continue
            # The hash becomes <image_folder>/<hash>.png here and images/<hash>.png in exports.
            problem = hash_problem(image_hash)
            if problem:
                yield BadRecord(where, "bad_image_hash", problem)
                continue
            if url is not None and not isinstance(url, str):
                yield BadRecord(where, "bad_record", "url_link must be a string")
                continue
            if url is not None and (problem := url_problem(url)):
                yield BadRecord(where, "bad_url", problem)
                continue
            caption = row.get("caption")
            if caption is not None and (problem := text_problem(caption, "caption")):
                yield BadRecord(where, "bad_text", problem)
                continue
            warnings: list[str] = []
            if check_md5 and url and reference_hash(url) != image_hash:
                warnings.append(f"image_hash {image_hash} is not md5(url_link) {reference_hash(url)}")
            local = folder / f"{image_hash}.png" if folder else None
            try:
                has_local = local is not None and local.is_file()
            except OSError as exc:  # e.g. ENAMETOOLONG on an odd file system
                yield BadRecord(where, "unreadable", f"{image_hash}.png: {exc.strerror or exc}")
                continue
            if has_local and not is_within(folder, local):
                yield BadRecord(where, "symlink_outside_source",
                                f"{image_hash}.png links outside the image folder; not followed")
                continue
            if not has_local and not url:
                yield BadRecord(where, "missing_image", f"no {image_hash}.png in the image folder and no url_link")
                continue
            yield SourceItem(
                uri=url or f"relsim-hash:{image_hash}",
                kind="jsonl",
                path=str(local) if has_local else None,
                url=None if has_local else url,
                alt_text=caption if isinstance(caption, str) else None,
                ref_hash=image_hash,
                where=where,
                warnings=tuple(warnings),
                stamp=file_stamp(str(local)) if has_local else None,
            )


def read_parquet(path: str | os.PathLike) -> Iterator[SourceItem | BadRecord]:
    """LAION-style parquet: a `url`/`URL` column and an optional `caption`/`TEXT` column."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        yield BadRecord(display_path(os.fspath(path)), "bad_parquet", str(exc))
        return
    names = pf.schema_arrow.names
    url_col = next((c for c in ("url", "URL", "url_link") if c in names), None)
    text_col = next((c for c in ("caption", "TEXT", "text", "alt_text") if c in names), None)
    if url_col is None:
        yield BadRecord(display_path(os.fspath(path)), "bad_parquet", f"no url column (columns: {names})")
        return
    columns = [url_col] + ([text_col] if text_col else [])
    row_no = 0
    for batch in pf.iter_batches(columns=columns, batch_size=10_000):
        urls = batch.column(0).to_pylist()
        texts = batch.column(1).to_pylist() if text_col else [None] * len(urls)
        for url, text in zip(urls, texts):
            row_no += 1
            where = f"{display_path(os.fspath(path))}:row {row_no}"
            problem = url_problem(url)
            if problem:
                yield BadRecord(where, "bad_url", problem)
                continue
            if text is not None and (problem := text_problem(text, "caption")):
                yield BadRecord(where, "bad_text", problem)
                continue
            yield SourceItem(uri=url, kind="parquet", url=url, alt_text=text, where=where)
