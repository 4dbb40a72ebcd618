"""Group-aware, deterministic train/test splits.

Images are joined into components by seed-group membership (live groups: not rejected, not
split) and by near-duplicate edges (exact duplicates are one image already). A whole component
goes to one split, chosen by hashing (seed, the component's smallest image key) into [0, 1) and
cutting at the cumulative split weights. So every member of a group and every near duplicate of
one share a split, the result depends only on the data (not on database ids or insertion order),
and adding unrelated images never moves existing ones.

Pinned splits (`Image.split`, set when a split file is imported) win: a component with pins goes
to the split most of its pinned members name (ties: the earlier split in the weights).
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

# The paper's relsim training data: 100k training and 14k test images.
RELSIM_SPLITS: dict[str, float] = {"train": 100_000, "test": 14_000}
SFT_SPLITS: dict[str, float] = {"train": 9, "test": 1}


def parse_splits(spec: str) -> dict[str, float]:
    """``"train=100000,test=14000"`` -> {"train": 100000.0, "test": 14000.0} (weights, any scale)."""
    out: dict[str, float] = {}
    for part in spec.split(","):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"bad split {part!r}; write NAME=WEIGHT[,NAME=WEIGHT...]")
        out[name] = float(weight)
    return check_weights(out)


def check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    weights = {str(k): float(v) for k, v in weights.items()}
    if not weights or any(v < 0 for v in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"split weights must be non-negative with a positive sum: {weights}")
    for name in weights:
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"split names are letters, digits, '-' and '_': {name!r}")
    return weights


def unit_hash(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass
class SplitAssignment:
    split_of: dict[int, str]  # image id -> split
    components: int = 0
    pinned_components: int = 0
    pin_conflicts: int = 0  # components whose pinned members named different splits
    pins_ignored: int = 0  # pins naming a split this export does not have
    sizes: dict[str, int] = field(default_factory=dict)  # images per split

    def summary(self) -> dict:
        return {"components": self.components, "pinned_components": self.pinned_components,
                "pin_conflicts": self.pin_conflicts, "pins_ignored": self.pins_ignored,
                "images": dict(self.sizes)}


def assign_splits(image_ids: Iterable[int], *, key_of: Mapping[int, str], links: Iterable[Iterable[int]],
                  edges: Iterable[tuple[int, int]], weights: Mapping[str, float], seed: int = 0,
                  pinned: Mapping[int, str | None] | None = None) -> SplitAssignment:
    """Split of every image in `image_ids`. `links` are sets to keep together (groups), `edges`
    pairs (near duplicates); both may mention images outside `image_ids` (they still connect).
    `key_of` gives each image a stable content key (see StoreSnapshot.split_key)."""
    weights = check_weights(weights)
    names = list(weights)
    total = sum(weights.values())
    cuts, acc = [], 0.0
    for n in names:
        acc += weights[n] / total
        cuts.append(acc)
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = parent.setdefault(x, x)
        while root != parent[root]:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    wanted = list(dict.fromkeys(image_ids))
    for x in wanted:
        find(x)
    for group in links:
        group = list(group)
        for other in group[1:]:
            union(group[0], other)
    for a, b in edges:
        union(a, b)

    comp_key: dict[int, str] = {}
    comp_pins: dict[int, Counter] = {}
    result = SplitAssignment({})
    pinned = pinned or {}
    for x in parent:
        r = find(x)
        k = key_of.get(x)
        if k is not None and (r not in comp_key or k < comp_key[r]):
            comp_key[r] = k
        pin = pinned.get(x)
        if pin:
            if pin in weights:
                comp_pins.setdefault(r, Counter())[pin] += 1
            else:
                result.pins_ignored += 1

    chosen: dict[int, str] = {}
    for x in wanted:
        r = find(x)
        if r in chosen:
            result.split_of[x] = chosen[r]
            continue
        pins = comp_pins.get(r)
        if pins:
            best = max(pins.values())
            split = next(n for n in names if pins.get(n) == best)
            result.pinned_components += 1
            result.pin_conflicts += len(pins) > 1
        else:
            u = unit_hash(seed, comp_key.get(r, f"id:{r}"))
            split = next((n for n, c in zip(names, cuts) if u < c), names[-1])
        chosen[r] = split
        result.split_of[x] = split
    result.components = len(chosen)
    result.sizes = {n: 0 for n in names}
    for s in result.split_of.values():
        result.sizes[s] += 1
    return result


def split_snapshot_images(snap, image_ids: Iterable[int], *, weights: Mapping[str, float], seed: int) -> SplitAssignment:
    """`assign_splits` over a StoreSnapshot: live groups link, near duplicates join, pins win."""
    image_ids = list(image_ids)
    links = [snap.members.get(g, []) for g in snap.live_groups()]
    keys = {i: snap.split_key(i) for i in snap.images}
    pins = {i: row.split for i, row in snap.images.items() if row.split}
    return assign_splits(image_ids, key_of=keys, links=links, edges=snap.near_edges, weights=weights,
                         seed=seed, pinned=pins)


def empty_split_warnings(rows: Mapping[str, int], weights: Mapping[str, float],
                         components: int | None = None) -> list[str]:
    """One warning per split that asked for data (weight > 0) but got no row."""
    total = sum(int(v) for v in rows.values())
    if not total:
        return ["the export has no rows at all"]
    out = []
    for name, n in rows.items():
        if int(n) == 0 and float(weights.get(name, 0)) > 0:
            share = float(weights[name]) / sum(float(w) for w in weights.values())
            out.append(f"the {name} split is empty: {total} rows in {components or '?'} group/near-duplicate "
                       f"component(s) and none landed in {name} ({share:.1%} of the weight); "
                       f"give {name} more weight or try another seed")
    return out
