"""The A/B preference study: >= 3 raters per triplet, random but stable left/right per rater,
idempotent answers, rates with intervals and rater agreement. (Triplets made from a retrieval run
are tested in test_eval_retrieval.py, on both back ends.)"""
from __future__ import annotations


import pytest

from relcurate.accounts import create_user
from relcurate.db.engine import session_scope
from relcurate.db.models import AbTriplet, Image
from relcurate.evaluation import ab_study as ab
from relcurate.evaluation.runs import get_run, start_run


def _users(ws, n):
    return [create_user(ws.engine, f"rater{i}", f"rater{i}-password", "annotator").id for i in range(n)]


def _manual_study(ws, n_triplets=4, raters=3):
    with session_scope(ws.engine) as s:
        imgs = [Image(sha256=f"{i:064x}", ext="png", source_uri=f"file:///{i}.png") for i in range(3 * n_triplets)]
        s.add_all(imgs)
        s.flush()
        ids = [im.id for im in imgs]
    run = start_run(ws, "ab", "manual", {"raters_per_triplet": raters})
    with session_scope(ws.engine) as s:
        for t in range(n_triplets):
            s.add(AbTriplet(study_id=run.id, query_image_id=ids[3 * t], method_a="relsim:1", method_b="clip:1",
                            image_a=ids[3 * t + 1], image_b=ids[3 * t + 2], position=t))
    return run.id


def test_every_triplet_gets_its_raters_and_answers_are_idempotent(workspace):
    study = _manual_study(workspace, n_triplets=4, raters=3)
    users = _users(workspace, 4)
    seen_left: dict[int, set[bool]] = {}
    for u in users:
        while (trial := ab.next_trial(workspace, study, u)) is not None:
            seen_left.setdefault(trial.triplet_id, set()).add(trial.a_on_left)
            assert trial.a_on_left == ab.a_on_left(trial.triplet_id, u)  # stable for this rater
            # Rater u prefers relsim's image (A) wherever it is shown; the first rater always says "same".
            side = "same" if u == users[0] else ("left" if trial.a_on_left else "right")
            assert ab.record_answer(workspace, trial.triplet_id, u, side, a_on_left=trial.a_on_left) in ("a", "same")
            # A double click (same or other side): the first answer stands.
            flipped = "right" if side == "left" else "left"
            assert ab.record_answer(workspace, trial.triplet_id, u, flipped, a_on_left=trial.a_on_left) == \
                ("same" if side == "same" else "a")
    prog = ab.progress_of(workspace, study)
    assert prog == {"triplets": 4, "answers": 12, "mine": None}  # 4 triplets x exactly 3 raters
    assert len(seen_left) == 4
    res = ab.study_results(workspace, study, resamples=100)
    (pair,) = res["pairs"]
    assert pair["triplets"] == 4 and pair["answers"] == 12
    assert pair["prefer_a"]["estimate"] + pair["same"]["estimate"] == pytest.approx(1.0)
    assert pair["prefer_b"]["estimate"] == 0.0
    assert 0 < pair["prefer_a"]["estimate"] < 1 and pair["prefer_a"]["low"] <= pair["prefer_a"]["high"]
    assert res["agreement"]["pairwise_agreement"] is not None
    assert get_run(workspace, study).metrics["answers"] == 12
    with pytest.raises(ab.StudyError):
        ab.record_answer(workspace, 10**6, users[0], "left", a_on_left=True)
    with pytest.raises(ab.StudyError):
        ab.record_answer(workspace, 1, users[0], "up", a_on_left=True)


def test_left_right_is_stable_per_rater_and_balanced():
    flags = [ab.a_on_left(t, u) for t in range(200) for u in range(5)]
    assert 0.4 < sum(flags) / len(flags) < 0.6
    assert ab.a_on_left(7, 3) == ab.a_on_left(7, 3)
