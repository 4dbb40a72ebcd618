"""The people's A/B preference study: raters see a query and the top hits of two methods,
left/right at random, and answer A / B / Same; every triplet is seen by at least
`raters_per_triplet` people (the paper: 300 triplets per baseline, >= 3 raters, ~900 answers).

- Triplets come from a finished retrieval run: for each baseline, a seeded sample of queries
  whose top hits differ between the method and the baseline (a tie by construction says nothing).
- Left/right is decided per (triplet, rater) by a hash: random across raters, stable for one
  rater across reruns of the page. Answers are stored in method terms (a | b | same) with the
  side shown, one per (triplet, rater) by primary key: a double click never makes two.
- Results: per method pair preference and tie rates with bootstrap intervals over triplets,
  majority verdicts, and agreement between raters (Krippendorff's alpha, nominal, and the mean
  pairwise agreement).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sqlalchemy import func
from sqlmodel import select

from relcurate.db.engine import read_scope
from relcurate.db.models import AbAnswer, AbTriplet, Image
from relcurate.db.write_retry import run_write
from relcurate.evaluation.bootstrap import bootstrap_mean
from relcurate.evaluation.retrieval import read_rankings
from relcurate.evaluation.runs import RESULT_FORMAT, SUMMARY_FILE, finish_run, get_run, run_dir, start_run, write_json
from relcurate.workspace import Workspace

CHOICES = ("a", "b", "same")
SIDES = ("left", "right", "same")


class StudyError(ValueError):
    pass


@dataclass(frozen=True)
class Trial:
    """What one rater is shown: the query and two images, `a_on_left` saying which is which."""

    triplet_id: int
    study_id: int
    query_image_id: int
    left_image_id: int
    right_image_id: int
    a_on_left: bool
    answered: int  # answers so far (anyone)


def create_study(ws: Workspace, retrieval_run_id: int, *, method: str, baselines: Sequence[str],
                 n_triplets: int = 300, raters_per_triplet: int = 3, seed: int = 0, name: str | None = None,
                 created_by: int | None = None) -> int:
    get_run(ws, retrieval_run_id, "retrieval")
    rankings = read_rankings(ws, retrieval_run_id)
    missing = [m for m in [method, *baselines] if m not in rankings]
    if missing:
        raise StudyError(f"retrieval run {retrieval_run_id} has no method {', '.join(missing)}; "
                         f"it has {', '.join(sorted(rankings))}")
    if not baselines or method in baselines:
        raise StudyError("name at least one baseline, different from the method")
    if raters_per_triplet < 1:
        raise StudyError("raters_per_triplet must be at least 1")
    params = {"retrieval_run": retrieval_run_id, "method": method, "baselines": list(baselines),
              "n_triplets": n_triplets, "raters_per_triplet": raters_per_triplet, "seed": seed}
    run = start_run(ws, "ab", name or f"A/B: {method} vs {', '.join(baselines)}", params,
                    parent_id=retrieval_run_id, created_by=created_by)
    rows = []
    rng = np.random.default_rng([seed, 7])
    for b in baselines:
        eligible = sorted(q for q, ranked in rankings[method].items()
                          if ranked and rankings[b].get(q) and ranked[0] != rankings[b][q][0])
        chosen = rng.permutation(eligible)[:n_triplets].tolist()
        for q in chosen:
            rows.append({"query_image_id": int(q), "method_a": method, "method_b": b,
                         "image_a": rankings[method][q][0], "image_b": rankings[b][q][0]})
    order = rng.permutation(len(rows))

    def write(s) -> int:
        for pos, k in enumerate(order):
            s.add(AbTriplet(study_id=run.id, position=int(pos), **rows[int(k)]))
        return len(rows)

    n = run_write(ws.engine, write)
    finish_run(ws, run.id, status="open", metrics={"triplets": n, "answers": 0})
    return run.id


def a_on_left(triplet_id: int, user_id: int) -> bool:
    return hashlib.sha256(f"ab:{triplet_id}:{user_id}".encode()).digest()[0] < 128


def next_trial(ws: Workspace, study_id: int, user_id: int) -> Trial | None:
    """The triplet this rater should see next: one they have not answered, still short of its
    raters, fewest answers first (so triplets complete evenly), then in study order."""
    target = int(get_run(ws, study_id, "ab").params.get("raters_per_triplet", 3))
    with read_scope(ws.engine) as s:
        counts = (select(AbAnswer.triplet_id, func.count().label("n")).group_by(AbAnswer.triplet_id).subquery())
        mine = select(AbAnswer.triplet_id).where(AbAnswer.user_id == user_id)
        n = func.coalesce(counts.c.n, 0)
        row = s.exec(select(AbTriplet, n).outerjoin(counts, counts.c.triplet_id == AbTriplet.id)
                     .where(AbTriplet.study_id == study_id, AbTriplet.id.not_in(mine), n < target)
                     .order_by(n, AbTriplet.position).limit(1)).first()
    if row is None:
        return None
    t, answered = row
    left = a_on_left(t.id, user_id)
    return Trial(t.id, study_id, t.query_image_id, t.image_a if left else t.image_b,
                 t.image_b if left else t.image_a, left, int(answered))


def record_answer(ws: Workspace, triplet_id: int, user_id: int, side: str, *, a_on_left: bool,
                  lead_time_ms: int | None = None) -> str:
    """Store what the rater chose ("left" / "right" / "same" as seen); returns the stored choice in
    method terms. A second answer for the same (triplet, rater) keeps the first."""
    if side not in SIDES:
        raise StudyError(f"answer must be one of {SIDES}, not {side!r}")
    choice = "same" if side == "same" else ("a" if (side == "left") == a_on_left else "b")

    def write(s) -> str:
        existing = s.get(AbAnswer, (triplet_id, user_id))
        if existing is not None:
            return existing.choice
        if s.get(AbTriplet, triplet_id) is None:
            raise StudyError(f"no A/B triplet #{triplet_id}")
        s.add(AbAnswer(triplet_id=triplet_id, user_id=user_id, choice=choice, a_on_left=a_on_left,
                       lead_time_ms=lead_time_ms))
        s.flush()
        return choice

    return run_write(ws.engine, write)


def image_files(ws: Workspace, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """image id -> (sha256, ext) for the trial's images (the page turns them into bytes)."""
    with read_scope(ws.engine) as s:
        return {int(i): (sha, ext) for i, sha, ext in
                s.exec(select(Image.id, Image.sha256, Image.ext).where(Image.id.in_(list(ids)))).all() if sha}


def progress_of(ws: Workspace, study_id: int, user_id: int | None = None) -> dict:
    with read_scope(ws.engine) as s:
        triplets = s.exec(select(func.count()).select_from(AbTriplet).where(AbTriplet.study_id == study_id)).one()
        q = select(func.count()).select_from(AbAnswer).join(AbTriplet).where(AbTriplet.study_id == study_id)
        answers = s.exec(q).one()
        mine = s.exec(q.where(AbAnswer.user_id == user_id)).one() if user_id is not None else None
    return {"triplets": int(triplets), "answers": int(answers), "mine": mine}


def _agreement(by_triplet: dict[int, dict[int, str]]) -> dict:
    """Krippendorff's alpha (nominal) over triplets x raters, and mean pairwise agreement."""
    import krippendorff

    raters = sorted({u for v in by_triplet.values() for u in v})
    rated = [t for t, v in by_triplet.items() if len(v) >= 2]
    code = {c: k for k, c in enumerate(CHOICES)}
    pair_agree = []
    for t in rated:
        vals = list(by_triplet[t].values())
        pairs = [(x, y) for i, x in enumerate(vals) for y in vals[i + 1:]]
        pair_agree.append(np.mean([x == y for x, y in pairs]))
    alpha = None
    if rated and len(raters) >= 2:
        data = np.full((len(raters), len(rated)), np.nan)
        for j, t in enumerate(rated):
            for u, c in by_triplet[t].items():
                data[raters.index(u), j] = code[c]
        if len(np.unique(data[~np.isnan(data)])) > 1:
            alpha = float(krippendorff.alpha(reliability_data=data, value_domain=list(range(len(CHOICES))),
                                             level_of_measurement="nominal"))
        else:
            alpha = 1.0  # every answer the same: perfect agreement (alpha is undefined there)
    return {"krippendorff_alpha": alpha, "pairwise_agreement": float(np.mean(pair_agree)) if pair_agree else None,
            "triplets_with_2plus": len(rated), "raters": len(raters)}


def study_results(ws: Workspace, study_id: int, *, resamples: int = 1000, seed: int = 0, save: bool = True) -> dict:
    run = get_run(ws, study_id, "ab")
    with read_scope(ws.engine) as s:
        trips = {t.id: t for t in s.exec(select(AbTriplet).where(AbTriplet.study_id == study_id))}
        answers = s.exec(select(AbAnswer).join(AbTriplet).where(AbTriplet.study_id == study_id)).all()
    by_triplet: dict[int, dict[int, str]] = {}
    for a in answers:
        by_triplet.setdefault(a.triplet_id, {})[a.user_id] = a.choice
    pairs = []
    for key in sorted({(t.method_a, t.method_b) for t in trips.values()}):
        tids = [t for t, row in trips.items() if (row.method_a, row.method_b) == key and t in by_triplet]
        share = {c: np.array([np.mean([v == c for v in by_triplet[t].values()]) for t in tids]) for c in CHOICES}
        majority = {c: 0 for c in (*CHOICES, "split")}
        for t in tids:
            vals = list(by_triplet[t].values())
            counts = {c: vals.count(c) for c in CHOICES}
            top = max(counts.values())
            winners = [c for c, n in counts.items() if n == top]
            majority[winners[0] if len(winners) == 1 else "split"] += 1
        pairs.append({"method_a": key[0], "method_b": key[1], "triplets": len(tids),
                      "answers": int(sum(len(by_triplet[t]) for t in tids)),
                      "prefer_a": bootstrap_mean(share["a"], resamples=resamples, seed=seed).as_dict(),
                      "prefer_b": bootstrap_mean(share["b"], resamples=resamples, seed=seed).as_dict(),
                      "same": bootstrap_mean(share["same"], resamples=resamples, seed=seed).as_dict(),
                      "majority": majority,
                      "agreement": _agreement({t: by_triplet[t] for t in tids})})
    out = {"format": RESULT_FORMAT, "kind": "ab", "run_id": study_id, "params": run.params, "pairs": pairs,
           "agreement": _agreement(by_triplet), "triplets": len(trips), "answers": len(answers)}
    if save:
        write_json(run_dir(ws, "ab", study_id) / SUMMARY_FILE, out)
        finish_run(ws, study_id, status=run.status if run.status != "running" else "open",
                   metrics={"triplets": len(trips), "answers": len(answers),
                            "prefer_a": {f"{p['method_a']} vs {p['method_b']}": p["prefer_a"]["estimate"] for p in pairs}})
    return out
