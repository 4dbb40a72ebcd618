"""The data a training run learns from, read once from the store and frozen.

A `TrainingSnapshot` lists every training item (image id, target, the seed group it belongs to),
the ids it was derived from (labels / captions / groups), a sha256 over that list, and the
deterministic train / held-out split. The split reuses `exports.splits` (seed groups and near
duplicates are kept whole on one side, so no group is in both), hashed on image content, so the
same store state and seed always give the same split and the same hash.

Too little data raises `TooLittleData`, naming what is needed and what the store has.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from relcurate.exports.relsim_jsonl import relsim_rows
from relcurate.exports.snapshot import StoreSnapshot, load_snapshot, snapshot_connection
from relcurate.exports.splits import split_snapshot_images
from relcurate.workspace import Workspace

TRAIN, HELDOUT = "train", "heldout"


class TooLittleData(ValueError):
    """The store does not hold enough data for this training run (the message says how much)."""


@dataclass(frozen=True)
class Item:
    image_id: int
    sha256: str
    ext: str
    target: str  # caption text, or "yes"/"no" for the filter
    group_id: int | None  # the seed group the target came from (None: per-image caption / label)
    source_id: int | None = None  # caption id when known


@dataclass
class TrainingSnapshot:
    kind: str  # filter | captioner | relsim
    train: list[Item]
    heldout: list[Item]
    used: dict[str, list[int]]  # "labelled_images"/"captions"/"groups"/"images" -> ids, sorted
    params: dict[str, Any] = field(default_factory=dict)
    split_info: dict[str, Any] = field(default_factory=dict)
    store_state: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. unlabeled pool ids for the filter

    @property
    def sha256(self) -> str:
        """Hash of the item list and the ids used: two runs with the same hash saw the same data."""
        body = {"kind": self.kind, "params": self.params, "used": self.used,
                "train": [_item_key(i) for i in self.train], "heldout": [_item_key(i) for i in self.heldout]}
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def summary(self) -> dict[str, Any]:
        """What goes into `ModelVersion.trained_on`: ids, hash, sizes, split (no image bytes)."""
        return {"kind": self.kind, "sha256": self.sha256, "params": self.params, "used": self.used,
                "sizes": {TRAIN: len(self.train), HELDOUT: len(self.heldout)},
                "train_images": sorted({i.image_id for i in self.train}),
                "heldout_images": sorted({i.image_id for i in self.heldout}),
                "split": self.split_info, "store_state": self.store_state}


def _item_key(i: Item) -> list:
    return [i.sha256, i.target, i.group_id]


def read_store(ws: Workspace) -> StoreSnapshot:
    with snapshot_connection(ws.engine) as conn:
        return load_snapshot(conn)


def _split(snap: StoreSnapshot, items: list[Item], heldout_fraction: float, seed: int):
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), not {heldout_fraction}")
    ids = sorted({i.image_id for i in items})
    assignment = split_snapshot_images(snap, ids, weights={TRAIN: 1 - heldout_fraction, HELDOUT: heldout_fraction},
                                       seed=seed)
    train = [i for i in items if assignment.split_of[i.image_id] == TRAIN]
    held = [i for i in items if assignment.split_of[i.image_id] == HELDOUT]
    info = {"heldout_fraction": heldout_fraction, "seed": seed,
            "method": "exports.splits: seed groups + near duplicates whole, sha256(seed, content key)",
            **assignment.summary()}
    return train, held, info


def _sort(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda i: (i.sha256, i.target, i.group_id or 0))


def _require(kind: str, what: str, have: int, need: int, hint: str) -> None:
    if have < need:
        raise TooLittleData(f"{kind} training needs at least {need} {what}; the store has {have}. {hint}")


def caption_snapshot(ws: Workspace, kind: str, *, heldout_fraction: float = 0.2, seed: int = 0,
                     caption_source: str = "both", min_train: int = 4, min_heldout: int = 2,
                     min_groups: int = 2) -> TrainingSnapshot:
    """(image, accepted caption) pairs, as the relsim export writes them; for relsim and the captioner."""
    snap = read_store(ws)
    rows = relsim_rows(snap, caption_source=caption_source)
    group_of_pair: dict[tuple[int, str], tuple[int, int]] = {}
    for gid in snap.live_groups():
        cap = snap.group_captions.get(gid)
        if cap:
            for iid in snap.members.get(gid, ()):
                group_of_pair.setdefault((iid, cap[1]), (gid, cap[0]))
    items = []
    for r in rows:
        row = snap.images[r.image_id]
        gid, cid = group_of_pair.get((r.image_id, r.caption), (None, None))
        items.append(Item(r.image_id, row.sha256, row.ext, r.caption, gid, cid))
    groups = sorted({i.group_id for i in items if i.group_id is not None})
    hint = "Accept more anonymous captions for seed groups (caption review page or `relcurate captions`)."
    _require(kind, "image-caption pairs", len(items), min_train + min_heldout, hint)
    _require(kind, "seed groups with an accepted caption", len(groups), min_groups, hint)
    train, held, info = _split(snap, items, heldout_fraction, seed)
    _require(kind, "training pairs after the held-out split", len(train), min_train, hint)
    _require(kind, "held-out pairs (whole groups go to one side)", len(held), min_heldout,
             hint + " Or raise --heldout-fraction.")
    used = {"captions": sorted({i.source_id for i in items if i.source_id is not None}), "groups": groups,
            "images": sorted({i.image_id for i in items})}
    return TrainingSnapshot(kind, _sort(train), _sort(held), used,
                            {"caption_source": caption_source, "heldout_fraction": heldout_fraction, "seed": seed},
                            info, snap.state)


ConsensusFn = Callable[..., Mapping[int, Any]]


def filter_snapshot(ws: Workspace, *, heldout_fraction: float = 0.2, seed: int = 0, min_votes: int = 1,
                    methods: tuple[str, ...] = ("adjudicated", "gold", "majority"), min_train: int = 4,
                    min_heldout: int = 2, min_per_class: int = 1, pool_limit: int = 2000,
                    consensus_fn: ConsensusFn | None = None) -> TrainingSnapshot:
    """Consensus filter labels (adjudicated > gold > majority; ties and skip-only images left out).

    `min_votes=2` drops majority labels resting on a single annotator (adjudicated and gold ones
    are always kept); `methods` chooses which consensus kinds count. The unlabeled pool (up to
    `pool_limit` usable images, by content hash) is kept for the keep-rate metric.
    """
    if consensus_fn is None:
        from relcurate.curation.labeling.agreement import consensus as consensus_fn
    labels = consensus_fn(ws.engine)
    snap = read_store(ws)
    items, skipped = [], {"tie": 0, "method": 0, "votes": 0, "unusable": 0}
    for iid, c in sorted(labels.items()):
        answer, method = getattr(c, "answer", None), getattr(c, "method", "")
        if answer not in ("yes", "no"):
            skipped["tie"] += 1
        elif method not in methods:
            skipped["method"] += 1
        elif method == "majority" and (c.yes + c.no) < min_votes:
            skipped["votes"] += 1
        elif not snap.usable(iid) or not snap.images[iid].sha256:
            skipped["unusable"] += 1
        else:
            row = snap.images[iid]
            items.append(Item(iid, row.sha256, row.ext, answer, None))
    hint = "Label more images on the filter page (or lower --min-votes)."
    yes = sum(i.target == "yes" for i in items)
    _require("filter", "labelled images", len(items), min_train + min_heldout, hint)
    _require("filter", "images with a 'yes' consensus", yes, 2 * min_per_class, hint)
    _require("filter", "images with a 'no' consensus", len(items) - yes, 2 * min_per_class, hint)
    train, held, info = _split(snap, items, heldout_fraction, seed)
    _require("filter", "training labels after the held-out split", len(train), min_train, hint)
    _require("filter", "held-out labels", len(held), min_heldout, hint + " Or raise --heldout-fraction.")
    for name, part in (("training", train), ("held-out", held)):
        for cls in ("yes", "no"):
            _require("filter", f"'{cls}' labels in the {name} split", sum(i.target == cls for i in part),
                     min_per_class, hint)
    labelled = set(labels)
    pool = sorted((row.sha256, i) for i, row in snap.images.items() if i not in labelled and snap.usable(i) and row.sha256)
    extra = {"pool": [(i, snap.images[i].sha256, snap.images[i].ext) for _h, i in pool[:pool_limit]],
             "pool_size": len(pool)}
    used = {"labelled_images": sorted(i.image_id for i in items), "images": sorted(i.image_id for i in items)}
    params = {"heldout_fraction": heldout_fraction, "seed": seed, "min_votes": min_votes, "methods": list(methods)}
    info["left_out"] = skipped
    return TrainingSnapshot("filter", _sort(train), _sort(held), used, params, info, snap.state, extra)
