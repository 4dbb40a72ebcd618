"""Agreement between annotators, gold accuracy, the adjudication queue and the consensus label.

Only yes/no labels in force (`CurrentLabel`) count; a skip is "no opinion". Measures:

- Cohen's kappa for every annotator pair on the images both labelled (scikit-learn);
- Krippendorff's alpha (nominal) over every image with at least two labels (the `krippendorff`
  package, from per-image value counts, so any number of annotators per image works);
- per annotator: answer counts, positive rate yes/(yes+no), accuracy on gold images.

Disagreements (an image with both a yes and a no, not gold, not yet adjudicated) form the
adjudication queue. The consensus label that exports use is, per image: the latest reviewer
adjudication, else the gold answer, else the majority of yes/no labels (a tie has none).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import case, exists, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from relcurate.db.write_retry import run_write
from relcurate.db.engine import read_scope
from relcurate.db.models import Adjudication, Answer, CurrentLabel, GoldAnswer, Image, User, utcnow

DECISIVE = (Answer.yes.value, Answer.no.value)


class AdjudicationError(ValueError):
    pass


# -- the statistics themselves --------------------------------------------------------------

def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two aligned label sequences; None when undefined (no items, or both
    annotators used one and the same single answer, so chance agreement is 1)."""
    if len(a) != len(b):
        raise ValueError("label sequences differ in length")
    if not a or len(set(a) | set(b)) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score  # heavy import, only when needed

    k = float(cohen_kappa_score(list(a), list(b), labels=list(DECISIVE)))
    return None if math.isnan(k) else k


def nominal_alpha(value_counts: np.ndarray) -> float | None:
    """Krippendorff's alpha (nominal) from a units x values count matrix; None when undefined
    (fewer than two pairable values, or a single value used throughout)."""
    import krippendorff

    vc = np.asarray(value_counts, dtype=float)
    vc = vc[vc.sum(axis=1) >= 2] if vc.size else vc  # units with one label carry no pair
    if vc.size == 0 or np.count_nonzero(vc.sum(axis=0)) < 2:
        return None
    a = float(krippendorff.alpha(value_counts=vc, level_of_measurement="nominal"))
    return None if math.isnan(a) else a


# -- report over the store ------------------------------------------------------------------

@dataclass(frozen=True)
class PairAgreement:
    user_a: str
    user_b: str
    n: int  # images both labelled yes/no
    observed: float  # raw agreement
    kappa: float | None


@dataclass(frozen=True)
class AnnotatorSummary:
    user_id: int
    username: str
    yes: int
    no: int
    skip: int
    gold_n: int
    gold_correct: int

    @property
    def positive_rate(self) -> float | None:
        n = self.yes + self.no
        return self.yes / n if n else None

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_n if self.gold_n else None


@dataclass(frozen=True)
class AgreementReport:
    pairs: list[PairAgreement]
    alpha: float | None
    alpha_units: int  # images with at least two yes/no labels
    annotators: list[AnnotatorSummary] = field(default_factory=list)


def _multi_labelled(s: Session) -> list[tuple[int, int, str]]:
    """(image_id, user_id, answer) for every yes/no label on an image with two or more of them."""
    multi = (select(CurrentLabel.image_id).where(CurrentLabel.answer.in_(DECISIVE))
             .group_by(CurrentLabel.image_id).having(func.count() >= 2))
    return list(s.exec(select(CurrentLabel.image_id, CurrentLabel.user_id, CurrentLabel.answer)
                       .where(CurrentLabel.answer.in_(DECISIVE), CurrentLabel.image_id.in_(multi))).all())


def agreement_report(engine: Engine, *, min_pair_items: int = 1) -> AgreementReport:
    with read_scope(engine) as s:
        names = dict(s.exec(select(User.id, User.username)).all())
        rows = _multi_labelled(s)
        counts = s.exec(select(CurrentLabel.user_id, CurrentLabel.answer, func.count())
                        .group_by(CurrentLabel.user_id, CurrentLabel.answer)).all()
        gold = s.exec(select(CurrentLabel.user_id, CurrentLabel.answer == GoldAnswer.answer, func.count())
                      .join(GoldAnswer, GoldAnswer.image_id == CurrentLabel.image_id)
                      .where(CurrentLabel.answer.in_(DECISIVE))
                      .group_by(CurrentLabel.user_id, CurrentLabel.answer == GoldAnswer.answer)).all()

    by_image: dict[int, dict[int, str]] = defaultdict(dict)
    for image_id, user_id, answer in rows:
        by_image[image_id][user_id] = answer

    pairs: list[PairAgreement] = []
    by_pair: dict[tuple[int, int], tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for votes in by_image.values():
        for ua, ub in combinations(sorted(votes), 2):
            la, lb = by_pair[(ua, ub)]
            la.append(votes[ua])
            lb.append(votes[ub])
    for (ua, ub), (la, lb) in sorted(by_pair.items()):
        if len(la) < min_pair_items:
            continue
        observed = sum(x == y for x, y in zip(la, lb)) / len(la)
        pairs.append(PairAgreement(names.get(ua, str(ua)), names.get(ub, str(ub)), len(la), observed,
                                   cohen_kappa(la, lb)))

    vc = np.array([[sum(a == v for a in votes.values()) for v in DECISIVE] for votes in by_image.values()])
    alpha = nominal_alpha(vc) if len(vc) else None

    per_user: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for user_id, answer, n in counts:
        per_user[user_id][answer] += int(n)
    for user_id, correct, n in gold:
        per_user[user_id]["gold_n"] += int(n)
        if correct:
            per_user[user_id]["gold_correct"] += int(n)
    annotators = [AnnotatorSummary(uid, names.get(uid, str(uid)), c["yes"], c["no"], c["skip"],
                                   c["gold_n"], c["gold_correct"])
                  for uid, c in sorted(per_user.items(), key=lambda kv: names.get(kv[0], ""))]
    return AgreementReport(pairs=pairs, alpha=alpha, alpha_units=len(by_image), annotators=annotators)


# -- adjudication ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Dispute:
    image_id: int
    votes: dict[str, str]  # username -> yes/no

    @property
    def yes(self) -> int:
        return sum(v == Answer.yes for v in self.votes.values())

    @property
    def no(self) -> int:
        return sum(v == Answer.no for v in self.votes.values())


def _disputed_ids():
    """Images whose yes/no labels disagree, not gold, never adjudicated (a subquery)."""
    return (select(CurrentLabel.image_id)
            .where(CurrentLabel.answer.in_(DECISIVE),
                   ~exists().where(Adjudication.image_id == CurrentLabel.image_id),
                   ~exists().where(GoldAnswer.image_id == CurrentLabel.image_id))
            .group_by(CurrentLabel.image_id)
            .having(func.min(CurrentLabel.answer) != func.max(CurrentLabel.answer)))


def count_disputes(engine: Engine) -> int:
    with read_scope(engine) as s:
        return int(s.exec(select(func.count()).select_from(_disputed_ids().subquery())).one())


def disputes(engine: Engine, *, limit: int = 50, after_image_id: int = 0) -> list[Dispute]:
    """The adjudication queue, oldest image first."""
    with read_scope(engine) as s:
        ids = list(s.exec(_disputed_ids().where(CurrentLabel.image_id > after_image_id)
                          .order_by(CurrentLabel.image_id).limit(limit)))
        if not ids:
            return []
        rows = s.exec(select(CurrentLabel.image_id, User.username, CurrentLabel.answer)
                      .join(User, User.id == CurrentLabel.user_id)
                      .where(CurrentLabel.image_id.in_(ids), CurrentLabel.answer.in_(DECISIVE))
                      .order_by(User.username)).all()
    votes: dict[int, dict[str, str]] = defaultdict(dict)
    for image_id, username, answer in rows:
        votes[image_id][username] = answer
    return [Dispute(i, votes[i]) for i in ids]


def adjudicate(engine: Engine, *, image_id: int, user_id: int, answer: str, note: str | None = None,
               request_id: str | None = None) -> int:
    """Record a reviewer's decision (append-only; the latest wins). Returns its id; with a
    `request_id` a repeated request returns the first decision's id and writes nothing."""
    answer = Answer(answer).value
    if answer not in DECISIVE:
        raise AdjudicationError("an adjudication is yes or no")

    def tx(s: Session) -> int:
        if request_id is not None:
            seen = s.exec(select(Adjudication.id).where(Adjudication.request_id == request_id)).first()
            if seen is not None:
                return seen
        if s.get(Image, image_id) is None:
            raise AdjudicationError(f"no image {image_id}")
        adj = Adjudication(image_id=image_id, user_id=user_id, answer=answer, note=note or None,
                           request_id=request_id, created_at=utcnow())
        s.add(adj)
        s.flush()
        return adj.id

    return run_write(engine, tx)


def adjudications(engine: Engine, image_id: int) -> list[Adjudication]:
    with read_scope(engine) as s:
        return list(s.exec(select(Adjudication).where(Adjudication.image_id == image_id).order_by(Adjudication.id)))


# -- consensus ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Consensus:
    image_id: int
    answer: str | None  # yes / no, or None for a tie
    method: str  # adjudicated | gold | majority | tie
    yes: int
    no: int


def _chunks(ids: list[int], n: int = 5000) -> Iterable[list[int]]:
    for i in range(0, len(ids), n):
        yield ids[i:i + n]


def consensus(engine: Engine, image_ids: Iterable[int] | None = None) -> dict[int, Consensus]:
    """The consensus label of every labelled (or adjudicated, or gold) image, or of `image_ids`."""
    wanted = None if image_ids is None else sorted(set(image_ids))
    tally: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    adjudicated: dict[int, str] = {}
    gold: dict[int, str] = {}
    yes_q = func.sum(case((CurrentLabel.answer == Answer.yes.value, 1), else_=0))
    with read_scope(engine) as s:
        def labels(q):
            return q.where(CurrentLabel.answer.in_(DECISIVE)).group_by(CurrentLabel.image_id)

        base_l = select(CurrentLabel.image_id, yes_q, func.count())
        latest = (select(Adjudication.image_id, func.max(Adjudication.id).label("mid"))
                  .group_by(Adjudication.image_id))
        for part in ([None] if wanted is None else list(_chunks(wanted))):
            ql, qa, qg = labels(base_l), latest, select(GoldAnswer.image_id, GoldAnswer.answer)
            if part is not None:
                ql = ql.where(CurrentLabel.image_id.in_(part))
                qa = qa.where(Adjudication.image_id.in_(part))
                qg = qg.where(GoldAnswer.image_id.in_(part))
            for image_id, n_yes, n in s.exec(ql).all():
                tally[image_id] = [int(n_yes or 0), int(n) - int(n_yes or 0)]
            sub = qa.subquery()
            for image_id, ans in s.exec(select(Adjudication.image_id, Adjudication.answer)
                                        .join(sub, Adjudication.id == sub.c.mid)).all():
                adjudicated[image_id] = ans
            gold.update(s.exec(qg).all())

    out: dict[int, Consensus] = {}
    for image_id in sorted(set(tally) | set(adjudicated) | set(gold)):
        y, n = tally.get(image_id, [0, 0])
        if image_id in adjudicated:
            out[image_id] = Consensus(image_id, adjudicated[image_id], "adjudicated", y, n)
        elif image_id in gold:
            out[image_id] = Consensus(image_id, gold[image_id], "gold", y, n)
        elif y != n:
            out[image_id] = Consensus(image_id, Answer.yes.value if y > n else Answer.no.value, "majority", y, n)
        else:
            out[image_id] = Consensus(image_id, None, "tie", y, n)
    return out
