"""Streaming readers for a web-scale pool: webdataset `.tar` shards as img2dataset writes them
(`KEY.jpg` + `KEY.json` + `KEY.txt` members) and parquet files (URLs + metadata, optionally the
image bytes in a `jpg`/`png`/`webp`/`image` column as img2dataset's parquet output has).

A reader never raises on bad data: it yields a `BadItem` naming the shard and key (truncated tar,
unreadable member, corrupt parquet, missing image) and goes on with the rest. Tars are read with
`webdataset`'s own tar iterators (the kept library for this format); its exception handler lets a
bad member be counted instead of ending the shard.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from braceexpand import braceexpand

IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")  # preference order
BYTES_COLUMNS = ("jpg", "jpeg", "png", "webp", "image", "image_bytes")
URL_COLUMNS = ("url", "URL", "url_link")
TEXT_COLUMNS = ("caption", "TEXT", "text", "alt_text")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Shard:
    path: str  # absolute
    kind: str  # "tar" | "parquet"

    @property
    def id(self) -> str:
        """File-name-safe and unique per path (two folders may both hold 00000.tar)."""
        stem = _ID_UNSAFE.sub("_", Path(self.path).name)[:80]
        return f"{stem}-{hashlib.sha1(self.path.encode('utf-8', 'surrogateescape')).hexdigest()[:10]}"


@dataclass(frozen=True)
class Sample:
    key: str
    data: bytes | None  # image bytes; None: fetch `url`
    member: str | None = None  # tar member or parquet column the bytes came from
    url: str | None = None
    caption: str | None = None
    sha256: str | None = None  # from the shard's metadata (img2dataset's compute_hash)


@dataclass(frozen=True)
class BadItem:
    shard: str
    key: str | None
    reason: str  # missing_shard | unknown_shard_kind | bad_tar | truncated_tar | unreadable_member |
    #              no_image | bad_parquet | bad_url | not_downloaded | undecodable_image | ...
    detail: str

    def as_dict(self) -> dict:
        return {"shard": self.shard, "key": self.key, "reason": self.reason, "detail": self.detail}


def shard_kind(path: str) -> str | None:
    name = path.lower()
    if name.endswith(".tar"):
        return "tar"
    if name.endswith(".parquet"):
        return "parquet"
    return None


def discover_shards(patterns: Iterable[str | os.PathLike]) -> tuple[list[Shard], list[BadItem]]:
    """Paths, brace ranges (`{00000..00099}.tar`), globs (`shards/*.tar`, `**`) or folders (their `.tar`/`.parquet` files), in the
    order given, each glob sorted, duplicates dropped: every process of a run sees the same list."""
    shards: list[Shard] = []
    bad: list[BadItem] = []
    seen: set[str] = set()
    expanded = []
    for pattern in patterns:
        pattern = os.fspath(pattern)
        # webdataset's shard notation, e.g. laion/{00000..23199}.tar (braceexpand ships with webdataset)
        expanded.extend(braceexpand(pattern) if "{" in pattern and ".." in pattern else [pattern])
    for pattern in expanded:
        if glob.has_magic(pattern):
            paths = sorted(glob.glob(pattern, recursive=True))
            if not paths:
                bad.append(BadItem(pattern, None, "missing_shard", "the pattern matches no file"))
        elif os.path.isdir(pattern):
            paths = sorted(os.path.join(pattern, n) for n in os.listdir(pattern) if shard_kind(n))
        else:
            paths = [pattern]
        for p in paths:
            full = os.path.abspath(p)
            if full in seen:
                continue
            seen.add(full)
            kind = shard_kind(full)
            if not os.path.isfile(full):
                bad.append(BadItem(full, None, "missing_shard", "no such file"))
            elif kind is None:
                bad.append(BadItem(full, None, "unknown_shard_kind", "expected a .tar or .parquet file"))
            else:
                shards.append(Shard(full, kind))
    return shards, bad


def iter_samples(shard: Shard) -> Iterator[Sample | BadItem]:
    if shard.kind == "tar":
        return _iter_tar(shard)
    if shard.kind == "parquet":
        return _iter_parquet(shard)
    raise ValueError(f"unknown shard kind {shard.kind!r}")


# -- webdataset tars ---------------------------------------------------------------------------

def _iter_tar(shard: Shard) -> Iterator[Sample | BadItem]:
    from webdataset.tariterators import base_plus_ext, group_by_keys, tar_file_iterator

    current: list[str | None] = [None]  # the member being read, so an error can name its key
    errors: list[BadItem] = []
    members_read = 0

    def select(fname: str) -> bool:
        current[0] = fname
        return True

    def handler(exn: Exception) -> bool:  # a bad member is counted; the shard goes on
        name = current[0]
        key = base_plus_ext(name)[0] if name else None
        errors.append(BadItem(shard.path, key, "unreadable_member", f"{name}: {_short(exn)}"))
        return True

    try:
        fh = open(shard.path, "rb")
    except OSError as exc:
        yield BadItem(shard.path, None, "unreadable_shard", _short(exc))
        return
    terminal: list[BaseException] = []
    with fh:
        def files():
            nonlocal members_read
            try:
                for f in tar_file_iterator(fh, handler=handler, select_files=select):
                    members_read += 1
                    f["__url__"] = shard.path
                    yield f
            except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
                # End the stream normally so the sample being grouped is still yielded.
                terminal.append(exc)

        try:
            for raw in group_by_keys(files(), handler=handler):
                yield from _drain(errors)
                yield _sample_from_members(shard, raw)
        except ValueError as exc:  # duplicate member names in one sample
            terminal.append(exc)
        yield from _drain(errors)
        if terminal:
            exc, name = terminal[0], current[0]
            if name is None:
                yield BadItem(shard.path, None, "bad_tar", _short(exc))
            else:
                yield BadItem(shard.path, base_plus_ext(name)[0], "truncated_tar",
                              f"after member {name} ({members_read} read): {_short(exc)}")


def _drain(errors: list[BadItem]) -> Iterator[BadItem]:
    while errors:
        yield errors.pop(0)


def _sample_from_members(shard: Shard, raw: dict) -> Sample | BadItem:
    key = str(raw["__key__"])
    suffix = next((s for s in IMAGE_SUFFIXES if s in raw), None)
    meta: dict = {}
    if "json" in raw:
        try:
            loaded = json.loads(raw["json"])
            meta = loaded if isinstance(loaded, dict) else {}
        except (ValueError, UnicodeDecodeError):
            meta = {}  # metadata is optional; the image still gets scored
    if suffix is None:
        members = sorted(k for k in raw if not k.startswith("__"))
        return BadItem(shard.path, key, "no_image", f"no image member (members: {', '.join(members) or 'none'})")
    caption = raw.get("txt")
    caption = caption.decode("utf-8", "replace") if isinstance(caption, bytes) else meta.get("caption")
    url = meta.get("url")
    sha = meta.get("sha256")
    return Sample(key=key, data=raw[suffix], member=f"{key}.{suffix}",
                  url=url if isinstance(url, str) else None,
                  caption=caption if isinstance(caption, str) else None,
                  sha256=sha if isinstance(sha, str) and SHA256_RE.match(sha) else None)


# -- parquet -----------------------------------------------------------------------------------

def _iter_parquet(shard: Shard, batch_rows: int = 1024) -> Iterator[Sample | BadItem]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(shard.path)
        schema = pf.schema_arrow
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        yield BadItem(shard.path, None, "bad_parquet", _short(exc))
        return
    names = schema.names
    bytes_col = next((c for c in BYTES_COLUMNS if c in names
                      and (pa.types.is_binary(schema.field(c).type) or pa.types.is_large_binary(schema.field(c).type))), None)
    url_col = next((c for c in URL_COLUMNS if c in names), None)
    if bytes_col is None and url_col is None:
        yield BadItem(shard.path, None, "bad_parquet", f"no url or image-bytes column (columns: {names})")
        return
    text_col = next((c for c in TEXT_COLUMNS if c in names), None)
    cols = {"key": "key" if "key" in names else None, "url": url_col, "text": text_col, "bytes": bytes_col,
            "sha256": "sha256" if "sha256" in names else None, "status": "status" if "status" in names else None,
            "error": "error_message" if "error_message" in names else None}
    wanted = sorted({c for c in cols.values() if c})
    row = 0
    try:
        for batch in pf.iter_batches(columns=wanted, batch_size=batch_rows):
            data = {c: batch.column(c).to_pylist() for c in wanted}
            for i in range(batch.num_rows):
                get = lambda role: data[cols[role]][i] if cols[role] else None  # noqa: E731
                key = get("key")
                key = str(key) if key is not None else f"{row:09d}"
                row += 1
                image, url, status = get("bytes"), get("url"), get("status")
                if image is None and status is not None and status != "success":
                    yield BadItem(shard.path, key, "not_downloaded", f"status {status}: {get('error') or ''}".strip())
                    continue
                if image is None and not (isinstance(url, str) and url.lower().startswith(("http://", "https://"))):
                    yield BadItem(shard.path, key, "bad_url", f"row {row}: no image bytes and not an http(s) URL: {str(url)[:200]!r}")
                    continue
                sha, text = get("sha256"), get("text")
                yield Sample(key=key, data=image, member=bytes_col if image is not None else None,
                             url=url if isinstance(url, str) else None,
                             caption=text if isinstance(text, str) else None,
                             sha256=sha if isinstance(sha, str) and SHA256_RE.match(sha) else None)
    except Exception as exc:  # a corrupt row group after good ones
        yield BadItem(shard.path, None, "bad_parquet", f"after row {row}: {_short(exc)}")


def _short(exc: BaseException) -> str:
    # webdataset appends " @ <file object>" to messages: drop it, the shard is named already.
    text = f"{type(exc).__name__}: {str(exc).split(' @ <')[0]}"
    return text if len(text) <= 300 else text[:297] + "..."
