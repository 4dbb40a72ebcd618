"""How an export request would split, computed from one read of the store without writing a
file: rows and images per split, so the Export page can warn before anything runs (a default
split that leaves the test set empty on a small workspace).

The rows are chosen as each format's writer chooses them (same helpers, same split call). The
writers can still drop a row whose original file is missing from the store; the manifest of the
finished export has the exact counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from relcurate.exports.params import ExportRequest, export_path, parse_export_params
from relcurate.exports.relsim_jsonl import relsim_rows
from relcurate.exports.snapshot import StoreSnapshot, load_snapshot, snapshot_connection
from relcurate.exports.splits import empty_split_warnings, split_snapshot_images
from relcurate.workspace import Workspace


@dataclass
class ExportPreview:
    format: str
    name: str
    exists: bool  # exports/<name> is already there
    splits: dict[str, dict[str, int]] | None  # split -> {"rows": n, "images": m}; None: no splits
    components: int = 0  # group / near-duplicate components the split assigns
    rows: int = 0
    warnings: list[str] = field(default_factory=list)


def _filter_units(ws: Workspace, snap: StoreSnapshot) -> list[tuple[int, ...]]:
    from relcurate.exports.sft import ANSWER_TEXT, _default_consensus

    labels = _default_consensus()(ws.engine)
    return [(i,) for i, c in sorted(labels.items())
            if getattr(c, "answer", None) in ANSWER_TEXT and snap.usable(i) and i in snap.identity]


def _units(ws: Workspace, snap: StoreSnapshot, req: ExportRequest) -> list[tuple[int, ...]]:
    """The image ids of each row the writer would write; the first one decides the row's split."""
    o = req.options
    if req.format == "relsim" or (req.format == "hf" and o["dataset"] == "relsim"):
        return [(r.image_id,) for r in relsim_rows(snap, caption_source=o["caption_source"],
                                                   include_pending=o["include_pending"])]
    if req.format == "filter-sft" or req.format == "hf":
        return _filter_units(ws, snap)
    if o["per"] == "image":  # captioner-sft
        rows = relsim_rows(snap, caption_source=o["caption_source"])
        return [(r.image_id,) for r in rows if snap.images[r.image_id].sha256]
    units = []
    for gid in snap.live_groups():
        ids = tuple(i for i in snap.members.get(gid, []) if snap.usable(i) and i in snap.identity)
        if snap.group_captions.get(gid) and ids:
            units.append(ids)
    return units


def preview_request(ws: Workspace, req: ExportRequest) -> ExportPreview:
    exists = export_path(ws, req.name).exists()
    out = ExportPreview(req.format, req.name, exists, None)
    if exists and not req.overwrite:
        out.warnings.append(f"exports/{req.name} already exists: choose another name or allow overwriting")
    if req.weights is None:  # seed groups: nothing to split
        return out
    with snapshot_connection(ws.engine) as conn:
        snap = load_snapshot(conn)
    units = _units(ws, snap, req)
    ids = {i for u in units for i in u}
    assignment = split_snapshot_images(snap, ids, weights=req.weights, seed=req.options["seed"])
    rows = {n: 0 for n in req.weights}
    images: dict[str, set[int]] = {n: set() for n in req.weights}
    for u in units:
        rows[assignment.split_of[u[0]]] += 1
    for i in ids:
        images[assignment.split_of[i]].add(i)
    out.splits = {n: {"rows": rows[n], "images": len(images[n])} for n in req.weights}
    out.components, out.rows = assignment.components, len(units)
    out.warnings.extend(empty_split_warnings(rows, req.weights, assignment.components))
    return out


def preview_export(ws: Workspace, params: Mapping[str, Any]) -> ExportPreview:
    """Validate `params` (ExportParamsError if bad) and preview the split; writes nothing."""
    return preview_request(ws, parse_export_params(params))
