"""Chat-format JSONL for fine-tuning Qwen2.5-VL as the filter or the captioner.

Each line::

    {"id": ..., "images": ["images/<image_hash>.<ext>", ...],
     "messages": [{"role": "user", "content": [{"type": "image", "image": "images/..."}, ...,
                                               {"type": "text", "text": PROMPT}]},
                  {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}],
     ...metadata}

`messages` is what `qwen_vl_utils.process_vision_info` and the processor's chat template take;
`images` repeats the paths for trainers that want them apart (TRL, LLaMA-Factory style). Paths
are relative to the export folder (images copied or linked into ``images/``, original bytes), or
absolute store paths with ``images="reference"``.

- filter_sft_<split>.jsonl: the paper's question -> "Yes"/"No" from the consensus label
  (adjudication, else gold, else majority; ties are left out), class counts in the manifest.
- captioner_sft_<split>.jsonl: member image -> accepted caption with the reference single-image
  prompt (``per="image"``), or all of a group's images -> its caption (``per="group"``).

Splits are group-aware (splits.py), rows sorted by image hash so output is deterministic.
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Callable, Mapping

from relcurate.db.models import User
from relcurate.exports.common import ExportResult, ImageMode, Progress, jsonl_line, report_progress, require_exporter
from relcurate.exports.images import place_images
from relcurate.exports.manifest import FileLedger
from relcurate.exports.relsim_jsonl import CAPTION_SOURCES, relsim_rows
from relcurate.exports.runner import Written, run_export
from relcurate.exports.snapshot import StoreSnapshot
from relcurate.exports.splits import SFT_SPLITS, check_weights, split_snapshot_images
from relcurate.models.protocols import CAPTION_PROMPT, FILTER_QUESTION, GROUP_CAPTION_PROMPT
from relcurate.workspace import Workspace

FILTER_SFT_JSONL = "filter_sft_{split}.jsonl"
CAPTIONER_SFT_JSONL = "captioner_sft_{split}.jsonl"
ANSWER_TEXT = {"yes": "Yes", "no": "No"}
PER_CHOICES = ("image", "group")

# consensus(engine, image_ids=None) -> {image_id: obj with .answer ("yes"/"no"/None) and .method}
ConsensusFn = Callable[..., Mapping[int, object]]


def chat_row(row_id: str, image_paths: list[str], prompt: str, answer: str, **meta) -> str:
    content = [{"type": "image", "image": p} for p in image_paths] + [{"type": "text", "text": prompt}]
    return jsonl_line({
        "id": row_id,
        "images": image_paths,
        "messages": [{"role": "user", "content": content},
                     {"role": "assistant", "content": [{"type": "text", "text": answer}]}],
        **meta,
    })


def _place(ws, snap: StoreSnapshot, ledger: FileLedger, ids, mode: ImageMode, progress) -> dict[int, str]:
    ids = sorted(set(ids))
    placed = place_images(ws, ledger, [snap.images[i] for i in ids], {i: snap.identity[i][0] for i in ids},
                          mode=mode, progress=progress)
    return placed.paths


def _default_consensus() -> ConsensusFn:
    from relcurate.curation.labeling.agreement import consensus

    return consensus


def export_filter_sft(ws: Workspace, out: str | os.PathLike, *, user: str | User,
                      splits: Mapping[str, float] = SFT_SPLITS, seed: int = 0,
                      images: ImageMode | str = ImageMode.copy, question: str = FILTER_QUESTION,
                      overwrite: bool = False, progress: Progress | None = None,
                      consensus_fn: ConsensusFn | None = None) -> ExportResult:
    weights, mode = check_weights(splits), ImageMode(images)
    require_exporter(ws.engine, user)
    labels = (consensus_fn or _default_consensus())(ws.engine)

    def writer(snap: StoreSnapshot, ledger: FileLedger) -> Written:
        decided = {i: c for i, c in labels.items()
                   if getattr(c, "answer", None) in ANSWER_TEXT and snap.usable(i) and i in snap.identity}
        ties = sum(1 for c in labels.values() if getattr(c, "answer", None) is None)
        paths = _place(ws, snap, ledger, decided, mode, progress)
        assignment = split_snapshot_images(snap, paths, weights=weights, seed=seed)
        per_split: dict[str, list[tuple[str, str]]] = {n: [] for n in weights}
        classes: dict[str, Counter] = {n: Counter() for n in weights}
        for iid in paths:
            c = decided[iid]
            answer, h = ANSWER_TEXT[c.answer], snap.identity[iid][0]
            split = assignment.split_of[iid]
            classes[split][answer] += 1
            per_split[split].append((h, chat_row(h, [paths[iid]], question, answer, label=answer,
                                                 consensus=getattr(c, "method", None))))
        for name, lines in per_split.items():
            lines.sort()
            ledger.write_text(FILTER_SFT_JSONL.format(split=name), "".join(line for _h, line in lines))
        counts = {"rows": {n: len(v) for n, v in per_split.items()},
                  "classes": {n: {"Yes": classes[n]["Yes"], "No": classes[n]["No"]} for n in weights},
                  "ties_left_out": ties, "labelled_images_not_exportable": len(labels) - ties - len(paths)}
        params = {"question": question, "images": mode.value, "label": "consensus: adjudication > gold > majority"}
        splits_info = {"weights": weights, "seed": seed, **assignment.summary()}
        return Written(params, counts, splits_info)

    return run_export(ws, out, kind="filter-sft", user=user, writer=writer, overwrite=overwrite)


def export_captioner_sft(ws: Workspace, out: str | os.PathLike, *, user: str | User, per: str = "image",
                         caption_source: str = "both", splits: Mapping[str, float] = SFT_SPLITS, seed: int = 0,
                         images: ImageMode | str = ImageMode.copy, overwrite: bool = False,
                         progress: Progress | None = None) -> ExportResult:

    if per not in PER_CHOICES:
        raise ValueError(f"per must be one of {PER_CHOICES}")
    if caption_source not in CAPTION_SOURCES:
        raise ValueError(f"caption_source must be one of {CAPTION_SOURCES}")
    weights, mode = check_weights(splits), ImageMode(images)

    def writer(snap: StoreSnapshot, ledger: FileLedger) -> Written:
        if per == "image":
            rows = relsim_rows(snap, caption_source=caption_source)
            units = [([r.image_id], r.caption, r.image_hash, {}) for r in rows]
        else:
            units = []
            for gid in snap.live_groups():
                cap = snap.group_captions.get(gid)
                ids = [i for i in snap.members.get(gid, []) if snap.usable(i) and i in snap.identity]
                if cap and ids:
                    units.append((ids, cap[1], f"group-{gid}", {"group_id": gid}))
        paths = _place(ws, snap, ledger, [i for ids, *_ in units for i in ids], mode, progress)
        assignment = split_snapshot_images(snap, paths, weights=weights, seed=seed)
        per_split: dict[str, list[tuple]] = {n: [] for n in weights}
        for ids, caption, row_id, meta in units:
            ids = [i for i in ids if i in paths]
            if not ids:
                continue
            prompt = CAPTION_PROMPT if per == "image" else GROUP_CAPTION_PROMPT.format(n=len(ids))
            hashes = tuple(snap.identity[i][0] for i in ids)
            line = chat_row(row_id, [paths[i] for i in ids], prompt, caption, **meta)
            per_split[assignment.split_of[ids[0]]].append((hashes, caption, line))
        done = 0
        for name, lines in per_split.items():
            lines.sort()
            ledger.write_text(CAPTIONER_SFT_JSONL.format(split=name), "".join(x[2] for x in lines))
            done += len(lines)
            report_progress(progress, done, len(units))
        counts = {"rows": {n: len(v) for n, v in per_split.items()},
                  "images": {n: sum(len(x[0]) for x in v) for n, v in per_split.items()}}
        params = {"per": per, "caption_source": caption_source if per == "image" else "group", "images": mode.value}
        splits_info = {"weights": weights, "seed": seed, **assignment.summary()}
        return Written(params, counts, splits_info)

    return run_export(ws, out, kind="captioner-sft", user=user, writer=writer, overwrite=overwrite)
