"""Hugging Face `datasets` output: a DatasetDict saved to disk (``hf/``, open it with
``datasets.load_from_disk``), the same rows as parquet shards in the Hub layout
(``data/<split>-00000-of-0000N.parquet``), and optionally a push to the Hub.

The Arrow files are written directly with pyarrow in the exact layout ``save_to_disk`` produces
(stream-format shards, ``state.json``, ``dataset_info.json``, ``dataset_dict.json``), because
``Dataset.save_to_disk`` always embeds image files and re-reads every row; writing the tables
ourselves keeps images by path when asked, streams embedded bytes shard by shard, and makes the
files (fingerprint included) a pure function of the exported rows.

Images: ``Image()`` feature. ``embed_images=False`` (default) stores the absolute path of the
workspace original (small, fast, but tied to this machine: `push_to_hub` embeds the bytes on
upload); ``embed_images=True`` stores the original bytes (portable).

Datasets: ``relsim`` (image, image_hash, caption, url_link; the rows and splits of the relsim
JSONL export) and ``filter`` (image, image_hash, label: ClassLabel No/Yes from the consensus
label, consensus method).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from relcurate.db.models import ImageStatus, User
from relcurate.exports.common import ExportError, ExportResult, Progress, report_progress, require_exporter
from relcurate.exports.manifest import FileLedger
from relcurate.exports.relsim_jsonl import relsim_rows
from relcurate.exports.runner import Written, run_export
from relcurate.exports.snapshot import StoreSnapshot
from relcurate.exports.splits import RELSIM_SPLITS, SFT_SPLITS, check_weights, split_snapshot_images
from relcurate.workspace import Workspace, image_relpath

HF_DIR = "hf"
PARQUET_DIR = "data"
DATASETS = ("relsim", "filter")
MAX_SHARD_BYTES = 500_000_000  # the datasets library's default shard size
MAX_SHARD_ROWS = 1_000_000
BATCH_ROWS_BY_PATH = 10_000
BATCH_ROWS_EMBEDDED = 100  # keeps a batch of image bytes small (and parquet row groups Hub-sized)
FILTER_CLASSES = ["No", "Yes"]


def features_for(dataset: str):
    from datasets import ClassLabel, Features, Image, Value

    if dataset == "relsim":
        return Features({"image": Image(), "image_hash": Value("string"), "caption": Value("string"),
                         "url_link": Value("string")})
    return Features({"image": Image(), "image_hash": Value("string"), "label": ClassLabel(names=FILTER_CLASSES),
                     "consensus": Value("string")})


def _shard_bounds(sizes: list[int], max_bytes: int, max_rows: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) row ranges, each under both limits (at least one row each; one
    empty shard for an empty split, so every split loads)."""
    bounds, start, acc = [], 0, 0
    for i, size in enumerate(sizes):
        if i > start and (acc + size > max_bytes or i - start >= max_rows):
            bounds.append((start, i))
            start, acc = i, 0
        acc += size
    bounds.append((start, len(sizes)))
    return bounds


class _Rows:
    """Column lists for one split; `image` entries are (path, image row) or None."""

    def __init__(self, columns: list[str]):
        self.columns = {c: [] for c in columns}
        self.images: list[tuple[str, Any] | None] = []
        self.sizes: list[int] = []

    def __len__(self) -> int:
        return len(self.images)


def _image_struct(entries, embed: bool) -> pa.StructArray:
    paths, blobs, mask = [], [], []
    for e in entries:
        if e is None:
            paths.append(None)
            blobs.append(None)
            mask.append(True)
            continue
        path, name = e
        mask.append(False)
        if embed:
            with open(path, "rb") as fh:
                blobs.append(fh.read())
            paths.append(name)
        else:
            blobs.append(None)
            paths.append(path)
    return pa.StructArray.from_arrays([pa.array(blobs, pa.binary()), pa.array(paths, pa.string())],
                                      names=["bytes", "path"], mask=pa.array(mask, pa.bool_()))


def write_split(ledger: FileLedger, split: str, rows: _Rows, schema: pa.Schema, info_json: str, *,
                embed: bool, max_shard_bytes: int, progress: Progress | None, done: int, total: int) -> int:
    """Arrow shards + state.json + dataset_info.json under hf/<split>/, parquet under data/."""
    bounds = _shard_bounds(rows.sizes if embed else [0] * len(rows), max_shard_bytes, MAX_SHARD_ROWS)
    n = len(bounds)
    split_dir = ledger.root / HF_DIR / split
    split_dir.mkdir(parents=True, exist_ok=True)
    (ledger.root / PARQUET_DIR).mkdir(exist_ok=True)
    step = BATCH_ROWS_EMBEDDED if embed else BATCH_ROWS_BY_PATH
    fp = hashlib.sha256()
    data_files = []
    for k, (lo, hi) in enumerate(bounds):
        arrow_rel = f"{HF_DIR}/{split}/data-{k:05d}-of-{n:05d}.arrow"
        parquet_rel = f"{PARQUET_DIR}/{split}-{k:05d}-of-{n:05d}.parquet"
        with pa.OSFile(str(ledger.root / arrow_rel), "wb") as sink, pa.ipc.new_stream(sink, schema) as aw, \
                pq.ParquetWriter(str(ledger.root / parquet_rel), schema) as pw:
            for b in range(lo, max(hi, lo + 1), step):
                e = min(hi, b + step)
                arrays = [_image_struct(rows.images[b:e], embed)]
                arrays += [pa.array(rows.columns[c][b:e], schema.field(c).type) for c in list(rows.columns)]
                batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
                aw.write_batch(batch)
                pw.write_batch(batch)
                report_progress(progress, done + e, total)
        ledger.add_existing(arrow_rel)
        ledger.add_existing(parquet_rel)
        fp.update(ledger.files[arrow_rel]["sha256"].encode())
        data_files.append({"filename": Path(arrow_rel).name})
    state = {"_data_files": data_files, "_fingerprint": fp.hexdigest()[:16], "_format_columns": None,
             "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False, "_split": split}
    ledger.write_text(f"{HF_DIR}/{split}/state.json", json.dumps(state, indent=2, sort_keys=True))
    ledger.write_text(f"{HF_DIR}/{split}/dataset_info.json", info_json)
    return done + len(rows)


def _info_json(features, dataset: str) -> str:
    from datasets import DatasetInfo
    from datasets.utils.py_utils import asdict  # the serialiser save_to_disk uses (features-aware)

    info = asdict(DatasetInfo(description=f"relcurate {dataset} export", features=features,
                              dataset_name=f"relcurate-{dataset}"))
    return json.dumps({k: info[k] for k in sorted(info)}, indent=2)


def _hub_token(token: str | None) -> str:
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise ExportError("pushing to the Hub needs a token: pass --token or set HF_TOKEN")
    return found


def export_hf(ws: Workspace, out: str | os.PathLike, *, user: str | User, dataset: str = "relsim",
              embed_images: bool = False, caption_source: str = "both", splits: Mapping[str, float] | None = None,
              seed: int = 0, include_pending: bool = False, max_shard_bytes: int = MAX_SHARD_BYTES,
              push_to_hub: str | None = None, token: str | None = None, private: bool = True,
              overwrite: bool = False, progress: Progress | None = None, consensus_fn=None) -> ExportResult:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}")
    weights = check_weights(splits or (RELSIM_SPLITS if dataset == "relsim" else SFT_SPLITS))
    require_exporter(ws.engine, user)
    hub_token = _hub_token(token) if push_to_hub else None
    labels = None
    if dataset == "filter":
        from relcurate.exports.sft import ANSWER_TEXT, _default_consensus

        labels = {i: c for i, c in (consensus_fn or _default_consensus())(ws.engine).items()
                  if getattr(c, "answer", None) in ANSWER_TEXT}
    features = features_for(dataset)
    schema = features.arrow_schema

    root = str(ws.root)

    def image_entry(snap: StoreSnapshot, iid: int):
        row = snap.images[iid]
        if row.status != ImageStatus.ok or not row.sha256:
            return None
        # plain strings: pathlib per row cost more than the rest of the row (114k rows)
        return f"{root}/{image_relpath(row.sha256, row.ext)}", f"{snap.identity[iid][0]}.{row.ext}"

    def writer(snap: StoreSnapshot, ledger: FileLedger) -> Written:
        # items: (image id, column values in schema order after "image"), sorted by image hash
        if dataset == "relsim":
            items = [(r.image_id, (r.image_hash, r.caption, r.url_link))
                     for r in relsim_rows(snap, caption_source=caption_source, include_pending=include_pending)]
        else:
            usable = snap.usable_ids()
            items = sorted(((i, (snap.identity[i][0], FILTER_CLASSES.index(ANSWER_TEXT[c.answer]),
                                 getattr(c, "method", None)))
                            for i, c in labels.items() if i in usable and i in snap.identity),
                           key=lambda x: x[1][0])
        assignment = split_snapshot_images(snap, {i for i, _ in items}, weights=weights, seed=seed)
        cols = [c for c in schema.names if c != "image"]
        grouped: dict[str, list] = {n: [] for n in weights}
        split_of = assignment.split_of
        for item in items:
            grouped[split_of[item[0]]].append(item)
        per_split = {}
        for name, its in grouped.items():
            rows = per_split[name] = _Rows(cols)
            rows.images = [image_entry(snap, iid) for iid, _v in its]
            rows.sizes = [snap.images[iid].size_bytes or 0 for iid, _v in its]
            values = list(zip(*(v for _i, v in its))) or [()] * len(cols)
            rows.columns = {c: list(vals) for c, vals in zip(cols, values)}
        info = _info_json(features, dataset)
        done = 0
        for name, rows in per_split.items():
            done = write_split(ledger, name, rows, schema, info, embed=embed_images, max_shard_bytes=max_shard_bytes,
                               progress=progress, done=done, total=len(items))
        ledger.write_text(f"{HF_DIR}/dataset_dict.json", json.dumps({"splits": list(weights)}))
        counts: dict[str, Any] = {"rows": {n: len(r) for n, r in per_split.items()},
                                  "rows_without_image": {n: sum(e is None for e in r.images) for n, r in per_split.items()}}
        if dataset == "filter":
            counts["classes"] = {n: {c: r.columns["label"].count(k) for k, c in enumerate(FILTER_CLASSES)}
                                 for n, r in per_split.items()}
        params = {"dataset": dataset, "embed_images": embed_images, "caption_source": caption_source if dataset == "relsim" else None,
                  "include_pending": include_pending, "max_shard_bytes": max_shard_bytes,
                  "layout": {"save_to_disk": HF_DIR, "parquet": PARQUET_DIR}}
        splits_info = {"weights": weights, "seed": seed, **assignment.summary()}
        return Written(params, counts, splits_info)

    result = run_export(ws, out, kind=f"hf-{dataset}", user=user, writer=writer, overwrite=overwrite)
    if push_to_hub:
        from datasets import load_from_disk

        load_from_disk(str(result.path / HF_DIR)).push_to_hub(push_to_hub, token=hub_token, private=private)
        result.warnings.append(f"pushed to https://huggingface.co/datasets/{push_to_hub}")
    return result
