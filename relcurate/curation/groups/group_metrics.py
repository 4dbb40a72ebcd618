"""Agreement between two curators' groupings of the same images.

A grouping is an iterable of groups, each a collection of image ids (any hashable). Seed groups
may overlap (an image can serve two relational logics), so two measures are offered:

* :func:`pairwise_comembership` handles overlap natively: a pair of images is *co-member* when
  some group contains both. Grouping A is the reference, B the candidate: precision is the share
  of B's co-member pairs that A also has, recall the share of A's pairs that B recovers.
* :func:`adjusted_rand_index` needs a partition, so each image gets exactly one label: the *first*
  group (in iteration order) that contains it -- pass lists, not sets, of groups for a
  deterministic result -- and images of the universe that no group contains are singletons.
  Computed from the contingency table with numpy (scikit-learn is only a transitive dependency
  here, so it is not imported; the tests check the two agree when it is installed).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable
from itertools import combinations

import numpy as np

Grouping = Iterable[Collection[Hashable]]


def _pairs(groups: Grouping, universe: frozenset | None) -> set[frozenset]:
    pairs: set[frozenset] = set()
    for group in groups:
        members = set(group) if universe is None else set(group) & universe
        # Sort by repr so combinations() is deterministic for mixed id types; pairs are unordered.
        pairs.update(frozenset(p) for p in combinations(sorted(members, key=repr), 2))
    return pairs


def pairwise_comembership(groups_a: Grouping, groups_b: Grouping,
                          universe: Iterable[Hashable] | None = None) -> dict:
    """Precision / recall / F1 of B's co-member pairs against A's (A = reference).

    `universe`, when given, restricts the comparison to those images (ids outside it are
    dropped from every group). Returns ``{"precision", "recall", "f1", "tp", "fp", "fn"}``.
    When neither grouping has any pair the two agree perfectly: all three scores are 1.0; a 0/0
    ratio otherwise (e.g. B has no pairs but A has) scores 0.0.
    """
    uni = None if universe is None else frozenset(universe)
    a, b = _pairs(groups_a, uni), _pairs(groups_b, uni)
    tp, fp, fn = len(a & b), len(b - a), len(a - b)
    if not a and not b:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 0, "fp": 0, "fn": 0}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def labels_from_groups(groups: Grouping, universe: Iterable[Hashable]) -> list[int]:
    """One cluster label per universe image (in universe order): the index of the first group
    containing it; images in no group get fresh singleton labels. Ids outside the universe are
    ignored."""
    items = list(dict.fromkeys(universe))
    label: dict[Hashable, int] = {}
    n_groups = 0
    for gi, group in enumerate(groups):
        n_groups = gi + 1
        for item in group:
            label.setdefault(item, gi)  # first group wins
    out, fresh = [], n_groups
    for item in items:
        if item in label:
            out.append(label[item])
        else:
            out.append(fresh)
            fresh += 1
    return out


def _comb2(x: np.ndarray) -> int:
    x = x.astype(np.int64)
    return int((x * (x - 1) // 2).sum())


def adjusted_rand_index(groups_a: Grouping, groups_b: Grouping,
                        universe: Iterable[Hashable] | None = None) -> float:
    """Adjusted Rand index (Hubert & Arabie) of the two groupings over `universe` (default: every
    id either grouping mentions). 1.0 for identical partitions, about 0 for chance-level
    agreement, negative below chance. Degenerate cases where both partitions are trivial in the
    same way (all singletons, or one cluster, or fewer than two images) return 1.0, as
    scikit-learn does."""
    groups_a = [list(g) for g in groups_a]
    groups_b = [list(g) for g in groups_b]
    if universe is None:
        universe = dict.fromkeys(i for g in groups_a + groups_b for i in g)
    la = np.asarray(labels_from_groups(groups_a, universe))
    lb = np.asarray(labels_from_groups(groups_b, universe))
    n = la.size
    if n < 2:
        return 1.0
    _, ia = np.unique(la, return_inverse=True)
    _, ib = np.unique(lb, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    index = _comb2(table)
    sum_a, sum_b = _comb2(table.sum(axis=1)), _comb2(table.sum(axis=0))
    expected = sum_a * sum_b / (n * (n - 1) // 2)
    maximum = (sum_a + sum_b) / 2
    if maximum == expected:  # both partitions trivial in the same way
        return 1.0
    return float((index - expected) / (maximum - expected))
