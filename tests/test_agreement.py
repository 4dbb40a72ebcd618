"""Agreement statistics, the adjudication queue and the consensus label."""
from __future__ import annotations

import numpy as np
import pytest

from relcurate.testing.labeling import add_image_rows, add_users
from relcurate.curation.labeling import agreement, labels, leases


def test_cohen_kappa_by_hand():
    a = ["yes", "yes", "no", "no", "yes", "no", "no", "no"]
    b = ["yes", "no", "no", "no", "yes", "no", "yes", "no"]
    # observed 6/8; chance: a yes 3/8, b yes 3/8 -> pe = 9/64 + 25/64 = 34/64
    po, pe = 6 / 8, 34 / 64
    assert agreement.cohen_kappa(a, b) == pytest.approx((po - pe) / (1 - pe))
    assert agreement.cohen_kappa(["yes"] * 3, ["yes"] * 3) is None  # chance agreement is 1
    assert agreement.cohen_kappa([], []) is None
    assert agreement.cohen_kappa(["yes", "no"], ["no", "yes"]) == pytest.approx(-1.0)


def test_nominal_alpha_matches_krippendorff_reference():
    # Krippendorff's reliability example (3 coders, 15 units, values 1..4; nan = missing),
    # as units x values counts. Published nominal alpha: 0.691.
    data = np.array([[np.nan] * 5 + [3, 4, 1, 2, 1, 1, 3, 3, np.nan, 3],
                     [1, np.nan, 2, 1, 3, 3, 4, 3] + [np.nan] * 7,
                     [np.nan, np.nan, 2, 1, 3, 4, 4, np.nan, 2, 1, 1, 3, 3, np.nan, 4]])
    counts = np.stack([(data == v).sum(axis=0) for v in (1, 2, 3, 4)], axis=1)
    assert agreement.nominal_alpha(counts) == pytest.approx(0.691358, abs=1e-6)
    assert agreement.nominal_alpha(np.array([[2, 0], [3, 0]])) is None  # one value only
    assert agreement.nominal_alpha(np.array([[1, 0], [0, 1]])) is None  # no unit has a pair
    # Two coders in perfect agreement over both values.
    assert agreement.nominal_alpha(np.array([[2, 0], [0, 2], [2, 0]])) == pytest.approx(1.0)


@pytest.fixture
def labelled(workspace):
    """Three annotators on six images, a gold image, known answers."""
    eng = workspace.engine
    imgs = add_image_rows(eng, 7)
    users = add_users(eng, ["ann", "bob", "cy"])
    rev = add_users(eng, ["rita"], role="reviewer")["rita"]
    leases.set_gold(eng, imgs[6], "yes")
    table = {  # image index -> answers of ann, bob, cy (None: no label)
        0: ("yes", "yes", "yes"),
        1: ("yes", "no", None),  # tie -> dispute
        2: ("no", "no", "yes"),  # majority no, still a dispute
        3: ("no", "no", None),
        4: ("yes", "skip", "no"),  # the skip does not count
        5: ("no", None, None),  # single label
        6: ("yes", "no", "yes"),  # gold (yes): bob wrong; gold disagreements are not disputes
    }
    for i, answers in table.items():
        for name, ans in zip(("ann", "bob", "cy"), answers):
            if ans:
                labels.record_label(eng, image_id=imgs[i], user_id=users[name], answer=ans, request_id=f"{i}-{name}")
    return eng, imgs, users, rev, table


def test_agreement_report(labelled):
    eng, imgs, users, _, table = labelled
    rep = agreement.agreement_report(eng)
    pairs = {(p.user_a, p.user_b): p for p in rep.pairs}
    ab = pairs[("ann", "bob")]
    la = [table[i][0] for i in (0, 1, 2, 3, 6)]
    lb = [table[i][1] for i in (0, 1, 2, 3, 6)]
    assert ab.n == 5 and ab.observed == pytest.approx(3 / 5)
    assert ab.kappa == pytest.approx(agreement.cohen_kappa(la, lb))
    assert pairs[("ann", "cy")].n == 4 and pairs[("bob", "cy")].n == 3
    # alpha over the units with >= 2 yes/no labels: 0, 1, 2, 3, 4, 6.
    units = [(3, 0), (1, 1), (1, 2), (0, 2), (1, 1), (2, 1)]
    assert rep.alpha_units == 6
    assert rep.alpha == pytest.approx(agreement.nominal_alpha(np.array(units)))
    by_name = {a.username: a for a in rep.annotators}
    assert (by_name["ann"].yes, by_name["ann"].no, by_name["ann"].skip) == (4, 3, 0)
    assert by_name["bob"].skip == 1 and by_name["bob"].positive_rate == pytest.approx(1 / 5)
    assert by_name["bob"].gold_n == 1 and by_name["bob"].gold_accuracy == 0.0
    assert by_name["cy"].gold_accuracy == 1.0


def test_disputes_adjudication_and_consensus(labelled):
    eng, imgs, users, rev, _ = labelled
    assert agreement.count_disputes(eng) == 3
    queue_ = agreement.disputes(eng)
    assert [d.image_id for d in queue_] == [imgs[1], imgs[2], imgs[4]]
    assert queue_[1].votes == {"ann": "no", "bob": "no", "cy": "yes"} and (queue_[1].yes, queue_[1].no) == (1, 2)

    c = agreement.consensus(eng)
    assert c[imgs[0]].answer == "yes" and c[imgs[0]].method == "majority"
    assert c[imgs[1]].answer is None and c[imgs[1]].method == "tie"
    assert c[imgs[2]].answer == "no"
    assert c[imgs[5]].answer == "no" and (c[imgs[5]].yes, c[imgs[5]].no) == (0, 1)
    assert c[imgs[6]].answer == "yes" and c[imgs[6]].method == "gold"

    first = agreement.adjudicate(eng, image_id=imgs[2], user_id=rev, answer="yes", request_id="adj-2")
    assert agreement.adjudicate(eng, image_id=imgs[2], user_id=rev, answer="no", request_id="adj-2") == first
    agreement.adjudicate(eng, image_id=imgs[1], user_id=rev, answer="no")
    agreement.adjudicate(eng, image_id=imgs[1], user_id=rev, answer="yes", note="second look")  # latest wins
    with pytest.raises(agreement.AdjudicationError):
        agreement.adjudicate(eng, image_id=imgs[1], user_id=rev, answer="skip")
    assert [d.image_id for d in agreement.disputes(eng)] == [imgs[4]]
    c = agreement.consensus(eng, [imgs[1], imgs[2], imgs[3]])
    assert set(c) == {imgs[1], imgs[2], imgs[3]}
    assert (c[imgs[1]].answer, c[imgs[1]].method) == ("yes", "adjudicated")
    assert (c[imgs[2]].answer, c[imgs[2]].method) == ("yes", "adjudicated")  # reviewer beats majority
    assert [a.answer for a in agreement.adjudications(eng, imgs[1])] == ["no", "yes"]


def test_empty_store_report(workspace):
    rep = agreement.agreement_report(workspace.engine)
    assert rep.pairs == [] and rep.alpha is None and rep.alpha_units == 0 and rep.annotators == []
    assert agreement.consensus(workspace.engine) == {} and agreement.count_disputes(workspace.engine) == 0
