"""Putting image files into an export folder: originals copied or hard-linked (their sha256 is
already known), or re-encoded as PNG where a format demands `<image_hash>.png` files.

File names come only from the store's sha256 or a validated hash (`safe_names.is_safe_stem`),
and every destination is checked to lie inside the export folder before anything is written."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from PIL import Image as PILImage

from relcurate.exports.common import ImageMode, Progress, report_progress
from relcurate.exports.manifest import FileLedger
from relcurate.exports.snapshot import ImageRow
from relcurate.safe_names import is_safe_stem, is_within
from relcurate.workspace import Workspace


@dataclass
class PlacedImages:
    paths: dict[int, str] = field(default_factory=dict)  # image id -> path written in rows
    missing: list[int] = field(default_factory=list)  # originals absent from the store
    converted: int = 0


def png_bytes(src: Path) -> bytes:
    """The image (first frame) re-encoded as PNG: RGB, or RGBA when it has transparency.
    Deterministic for a given Pillow version."""
    with PILImage.open(src) as im:
        im.seek(0)
        has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
        im = im.convert("RGBA" if has_alpha else "RGB")
        buf = io.BytesIO()
        im.save(buf, "PNG")
    return buf.getvalue()


def _copy(src: Path, dst: Path, mode: ImageMode) -> None:
    if mode == ImageMode.link:
        try:
            os.link(src, dst)
            return
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    shutil.copyfile(src, dst)


def place_images(ws: Workspace, ledger: FileLedger, rows: Iterable[ImageRow], name_of: dict[int, str], *,
                 mode: ImageMode, as_png: bool = False, progress: Progress | None = None,
                 folder: str = "images") -> PlacedImages:
    """Write each image as ``folder/<name_of[id]>.<ext>`` (``.png`` when `as_png`, converting
    non-PNG originals). In reference mode nothing is written and paths are the absolute store paths."""
    rows = [r for r in rows if r.sha256 and r.ext]
    out = PlacedImages()
    if mode == ImageMode.reference:
        for r in rows:
            out.paths[r.id] = str(ws.image_path(r.sha256, r.ext))
        return out
    (ledger.root / folder).mkdir(parents=True, exist_ok=True)
    total = len(rows)

    def one(r: ImageRow) -> tuple[int, str | None, str | None, int, bool]:
        src = ws.image_path(r.sha256, r.ext)
        if not src.exists():
            return r.id, None, None, 0, False
        ext = "png" if as_png else r.ext
        name = name_of[r.id] if is_safe_stem(name_of[r.id]) else r.sha256
        rel = f"{folder}/{name}.{ext}"
        dst = ledger.root / rel
        if not is_safe_stem(name) or not is_safe_stem(ext) or not is_within(ledger.root, dst.parent):
            return r.id, None, None, 0, False  # never write outside the export folder
        if as_png and r.ext != "png":
            data = png_bytes(src)
            dst.write_bytes(data)
            return r.id, rel, hashlib.sha256(data).hexdigest(), len(data), True
        _copy(src, dst, mode)
        return r.id, rel, r.sha256, dst.stat().st_size, False

    seen: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for done, (iid, rel, sha, size, conv) in enumerate(pool.map(one, _unique_names(rows, name_of, seen)), 1):
            if rel is None:
                out.missing.append(iid)
            else:
                ledger.add(rel, sha, size)
                out.paths[iid] = rel
                out.converted += conv
            if done % 256 == 0 or done == total:
                report_progress(progress, done, total)
    return out


def _unique_names(rows: list[ImageRow], name_of: dict[int, str], seen: dict[str, int]):
    """Skip a second image that would take an already-used file name (a reference-hash clash);
    its rows are dropped by the caller because it gets no path."""
    for r in rows:
        name = name_of[r.id]
        if name in seen:
            continue
        seen[name] = r.id
        yield r
