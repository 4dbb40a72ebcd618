"""Grouping agreement between two curators: pairwise co-membership and adjusted Rand index."""

from __future__ import annotations

import random

import pytest

from relcurate.curation.groups.group_metrics import (
    adjusted_rand_index,
    labels_from_groups,
    pairwise_comembership,
)


def test_identical_groupings_agree_perfectly() -> None:
    groups = [["a", "b", "c"], ["d", "e"], ["f"]]
    assert pairwise_comembership(groups, groups) == {
        "precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 4, "fp": 0, "fn": 0}
    assert adjusted_rand_index(groups, [list(reversed(g)) for g in reversed(groups)]) == 1.0


def test_disjoint_co_membership_scores_zero() -> None:
    a = [[1, 2], [3, 4]]
    b = [[1, 3], [2, 4]]
    assert pairwise_comembership(a, b) == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 2, "fn": 2}
    # Hand-computed: contingency all ones, index 0; sum_a = sum_b = 2, C(4,2) = 6,
    # expected 2*2/6 = 2/3, max 2 -> (0 - 2/3) / (2 - 2/3) = -0.5 (below chance).
    assert adjusted_rand_index(a, b) == pytest.approx(-0.5)


def test_pairwise_hand_computed() -> None:
    # A pairs: ab ac bc de (4). B pairs: ab cd ce de (4). Shared: ab, de.
    a = [["a", "b", "c"], ["d", "e"]]
    b = [["a", "b"], ["c", "d", "e"]]
    assert pairwise_comembership(a, b) == {
        "precision": 0.5, "recall": 0.5, "f1": 0.5, "tp": 2, "fp": 2, "fn": 2}
    # B recovers 1 of A's 3 pairs and adds nothing: P = 1, R = 1/3, F1 = 0.5.
    r = pairwise_comembership([["x", "y", "z"]], [["x", "y"], ["z"]])
    assert (r["tp"], r["fp"], r["fn"]) == (1, 0, 2)
    assert r["precision"] == 1.0
    assert r["recall"] == pytest.approx(1 / 3)
    assert r["f1"] == pytest.approx(0.5)


def test_overlapping_groups_count_a_pair_once() -> None:
    # "b" is in two groups of A; the pair (a, b) is in both groups but counts once.
    a = [["a", "b", "c"], ["a", "b", "d"]]
    b = [["a", "b"], ["c", "d"]]
    # A pairs: ab ac bc ad bd (5); B pairs: ab cd. tp 1, fp 1, fn 4.
    r = pairwise_comembership(a, b)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 4)
    assert r["precision"] == 0.5 and r["recall"] == pytest.approx(0.2)


def test_universe_restricts_the_comparison() -> None:
    a = [["a", "b", "z"]]
    b = [["a", "b"], ["z", "q"]]
    assert pairwise_comembership(a, b, universe=["a", "b"])["f1"] == 1.0
    assert pairwise_comembership(a, b)["f1"] < 1.0


def test_no_pairs_on_either_side_is_agreement_one_side_only_is_zero() -> None:
    assert pairwise_comembership([["a"], ["b"]], [])["f1"] == 1.0
    r = pairwise_comembership([["a", "b"]], [["a"], ["b"]])
    assert (r["precision"], r["recall"], r["f1"], r["fn"]) == (0.0, 0.0, 0.0, 1)


def test_labels_first_group_wins_and_ungrouped_are_singletons() -> None:
    groups = [["a", "b"], ["b", "c"]]
    assert labels_from_groups(groups, ["a", "b", "c", "d", "e", "a"]) == [0, 0, 1, 2, 3]


def test_ari_hand_computed_with_ungrouped_images() -> None:
    # Universe a..f. A: {a,b,c} {d,e} f(singleton). B: {a,b} {c,d,e} f.
    # Contingency rows A, cols B: [[2,1,0],[0,2,0],[0,0,1]] -> index = 1 + 1 = 2;
    # row sums 3,2,1 -> sum_a = 3 + 1 = 4; col sums 2,3,1 -> sum_b = 1 + 3 = 4; C(6,2) = 15;
    # expected = 16/15, max = 4 -> ARI = (2 - 16/15) / (4 - 16/15) = (14/15) / (44/15) = 7/22.
    a = [["a", "b", "c"], ["d", "e"]]
    b = [["a", "b"], ["c", "d", "e"]]
    assert adjusted_rand_index(a, b, universe="abcdef") == pytest.approx(7 / 22)


def test_ari_degenerate_partitions() -> None:
    assert adjusted_rand_index([], [], universe=["a", "b", "c"]) == 1.0  # all singletons both
    assert adjusted_rand_index([["a", "b", "c"]], [["c", "b", "a"]]) == 1.0
    assert adjusted_rand_index([["a", "b", "c"]], [], universe="abc") == 0.0
    assert adjusted_rand_index([["a"]], [["a"]]) == 1.0  # fewer than two images


def test_ari_matches_scikit_learn_on_random_groupings() -> None:
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn not installed")
    rng = random.Random(0)
    universe = list(range(60))
    for _ in range(20):
        groupings = []
        for _ in range(2):
            items = rng.sample(universe, rng.randint(10, 60))
            cuts = sorted(rng.sample(range(1, len(items)), rng.randint(1, 8)))
            groupings.append([items[i:j] for i, j in zip([0, *cuts], [*cuts, len(items)])])
        a, b = groupings
        expected = metrics.adjusted_rand_score(labels_from_groups(a, universe),
                                               labels_from_groups(b, universe))
        assert adjusted_rand_index(a, b, universe) == pytest.approx(expected, abs=1e-12)
