"""One call per input path: detect its kind, read it, ingest it, download what is pending,
record near-duplicates. Ingest knows nothing of labeling: `curation/intake.py` adds the pool step."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from relcurate.curation.ingest import sources
from relcurate.curation.ingest.dedup import record_near_duplicates
from relcurate.curation.ingest.keep_list import ingest_keep_list, is_keep_list
from relcurate.curation.ingest.store_writes import IngestReport, ingest_items
from relcurate.curation.ingest.pending_downloads import download_pending
from relcurate.curation.ingest.relsim_import import import_relsim_jsonl, is_relsim_training_file
from relcurate.curation.ingest.seed_import import import_seed_groups
from relcurate.workspace import Workspace

KINDS = ("folder", "urls", "jsonl", "parquet", "seed_groups", "keep_list")


def detect_kind(path: str | os.PathLike) -> str:
    p = Path(path)
    if p.is_dir():
        return "folder"
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        return "keep_list" if is_keep_list(p) else "parquet"
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".json":
        return "seed_groups"
    if suffix in (".txt", ".urls", ".lst", ""):
        return "urls"
    raise ValueError(f"{path}: cannot tell what kind of source this is; pass --kind ({', '.join(KINDS)})")


def read_items(path: str | os.PathLike, kind: str, image_folder: str | os.PathLike | None = None):
    if kind == "folder":
        return sources.walk_folder(path)
    if kind == "urls":
        return sources.read_url_list(path)
    if kind == "jsonl":
        folder = image_folder if image_folder is not None else _default_image_folder(Path(path))
        return sources.read_reference_jsonl(path, folder)
    if kind == "parquet":
        return sources.read_parquet(path)
    raise ValueError(f"unknown source kind {kind!r}")


def _default_image_folder(jsonl: Path) -> Path | None:
    """The reference layout keeps images beside the JSONL in `images/` (or the same folder)."""
    for cand in (jsonl.parent / "images", jsonl.parent):
        if cand.is_dir():
            return cand
    return None


def ingest_source(ws: Workspace, path: str | os.PathLike, *, kind: str | None = None,
                  image_folder: str | os.PathLike | None = None, download: bool = True,
                  allow_private_urls: bool = False, workers: int | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  relsim_captions: bool | None = None, recheck: bool = False) -> IngestReport:
    """`relsim_captions` (reference JSONL only): also import each row's caption as an accepted
    per-image caption and pin the split named by the file (relsim_import.py). Default: yes for
    files named like the reference training set (``anonymous_captions_<split>.jsonl``, which is
    what `relcurate export relsim` writes), no otherwise (the caption stays alt-text only).
    `recheck`: verify quarantined local items again (their files may have been repaired)."""
    kind = kind or detect_kind(path)
    if kind == "jsonl" and (relsim_captions if relsim_captions is not None else is_relsim_training_file(path)):
        folder = image_folder if image_folder is not None else _default_image_folder(Path(path))
        rel = import_relsim_jsonl(ws, path, folder, workers=workers, progress=progress, recheck=recheck)
        report = rel.images
        report.warnings.append(rel.summary())
    elif kind == "seed_groups":
        seed = import_seed_groups(ws, path)
        report = seed.images
        report.warnings.append(
            f"seed groups: {seed.groups_added} added, {seed.groups_known} already known, "
            f"{seed.needs_split} flagged for splitting (more than 10 images)"
        )
    elif kind == "keep_list":  # a filtered pool's kept images (relcurate pool keep)
        report = ingest_keep_list(ws, path, workers=workers, progress=progress)
    else:
        report = ingest_items(ws, read_items(path, kind, image_folder), workers=workers, progress=progress,
                              recheck=recheck)
    if download and (report.pending_download or kind != "folder"):
        # Every pending row, not only this run's: an earlier run of this input may have been
        # killed before its downloads (a re-run then registers nothing new).
        fetched = download_pending(ws, allow_private=allow_private_urls, progress=progress)
        report.merge(fetched)
    report.near_duplicates += record_near_duplicates(ws)  # every image not searched yet
    return report  # the labeling pool is the caller's business (curation/intake.py)
