"""The relsim training set exactly as the reference dataloader (`relsim.dataloader.ImageTextDataset`)
reads it: ``anonymous_captions_<split>.jsonl`` with one ``{"image_hash", "caption", "url_link"}``
per line, and the images as ``images/<image_hash>.png``.

Rows are (image, accepted caption) pairs: the accepted caption of every live group for each of its
members ("group"), the accepted per-image captions ("image"), or both (default; a pair that occurs
twice is written once). Rows are sorted by (image_hash, caption, url_link) so the same store state
always gives the same bytes (the reference loader shuffles anyway). Only images with bytes in the
store are exported unless `include_pending` (then a URL-only row has no image file, like a
reference row whose download failed). See snapshot.py for how image_hash and url_link are chosen.
"""
from __future__ import annotations

import os
from typing import Mapping, NamedTuple

from relcurate.db.models import ImageStatus, User
from relcurate.exports.common import ExportResult, ImageMode, Progress, relsim_line, report_progress
from relcurate.exports.images import place_images
from relcurate.exports.manifest import FileLedger
from relcurate.exports.runner import Written, run_export
from relcurate.exports.snapshot import StoreSnapshot
from relcurate.exports.splits import RELSIM_SPLITS, SplitAssignment, check_weights, split_snapshot_images
from relcurate.workspace import Workspace

CAPTION_SOURCES = ("both", "group", "image")
RELSIM_JSONL = "anonymous_captions_{split}.jsonl"


class RelsimRow(NamedTuple):
    image_hash: str
    caption: str
    url_link: str
    image_id: int


def relsim_rows(snap: StoreSnapshot, *, caption_source: str = "both", include_pending: bool = False) -> list[RelsimRow]:
    if caption_source not in CAPTION_SOURCES:
        raise ValueError(f"caption_source must be one of {CAPTION_SOURCES}, not {caption_source!r}")
    pairs: dict[tuple[int, str], None] = {}
    if caption_source in ("both", "group"):
        for gid in snap.live_groups():
            cap = snap.group_captions.get(gid)
            if cap is None:
                continue
            for iid in snap.members.get(gid, ()):
                pairs[(iid, cap[1])] = None
    if caption_source in ("both", "image"):
        for iid, texts in snap.image_captions.items():
            for text in texts:
                pairs[(iid, text)] = None
    usable = snap.usable_ids(include_pending)
    identity = snap.identity
    rows = [RelsimRow(identity[iid][0], text, identity[iid][1], iid)
            for iid, text in pairs if iid in usable and iid in identity]
    rows.sort()
    return rows


def rows_by_split(rows: list[RelsimRow], assignment: SplitAssignment, names: list[str]) -> dict[str, list[RelsimRow]]:
    out: dict[str, list[RelsimRow]] = {n: [] for n in names}
    for r in rows:
        out[assignment.split_of[r.image_id]].append(r)
    return out


def export_relsim(ws: Workspace, out: str | os.PathLike, *, user: str | User, caption_source: str = "both",
                  splits: Mapping[str, float] = RELSIM_SPLITS, seed: int = 0, images: ImageMode | str = ImageMode.copy,
                  include_pending: bool = False, url_link: str = "empty", overwrite: bool = False,
                  progress: Progress | None = None) -> ExportResult:
    """Write the relsim training set to `out` (see the module docstring). `images`: copy / link
    the files into ``images/`` (non-PNG originals are re-encoded as PNG), or ``reference`` to write
    only the JSONL files."""
    weights = check_weights(splits)
    mode = ImageMode(images)

    def writer(snap: StoreSnapshot, ledger: FileLedger) -> Written:
        rows = relsim_rows(snap, caption_source=caption_source, include_pending=include_pending)
        assignment = split_snapshot_images(snap, {r.image_id for r in rows}, weights=weights, seed=seed)
        warnings: list[str] = []
        image_files = 0
        if mode != ImageMode.reference:
            ok_ids = sorted({r.image_id for r in rows if snap.images[r.image_id].status == ImageStatus.ok})
            placed = place_images(ws, ledger, [snap.images[i] for i in ok_ids],
                                  {i: snap.identity[i][0] for i in ok_ids}, mode=mode, as_png=True, progress=progress)
            if placed.missing:
                warnings.append(f"{len(placed.missing)} images missing from the store were left out")
            dropped = set(ok_ids) - set(placed.paths)
            if dropped:
                rows = [r for r in rows if r.image_id not in dropped]
            image_files = len(placed.paths)
        per_split = rows_by_split(rows, assignment, list(weights))
        done = 0
        for name, split_rows in per_split.items():
            ledger.write_text(RELSIM_JSONL.format(split=name),
                              "".join(relsim_line(r.image_hash, r.caption, r.url_link) for r in split_rows))
            done += len(split_rows)
            report_progress(progress, done, len(rows))
        counts = {
            "rows": {n: len(v) for n, v in per_split.items()},
            "images": {n: len({r.image_id for r in v}) for n, v in per_split.items()},
            "image_files": image_files,
            "pending_rows": sum(snap.images[r.image_id].status != ImageStatus.ok for r in rows),
        }
        params = {"caption_source": caption_source, "images": mode.value, "include_pending": include_pending,
                  "url_link": url_link, "image_folder": None if mode == ImageMode.reference else "images",
                  "png": "originals that are not PNG are re-encoded as PNG"}
        splits_info = {"weights": weights, "seed": seed, "method": "group+near-duplicate components, sha256(seed, key)",
                       **assignment.summary()}
        return Written(params, counts, splits_info, warnings)

    return run_export(ws, out, kind="relsim", user=user, writer=writer, overwrite=overwrite, url_link_mode=url_link)
