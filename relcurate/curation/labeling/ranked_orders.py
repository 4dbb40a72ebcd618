"""The model-driven task orders: uncertainty, positive mining, diversity, and a quota mix.

Each refresh of the fast head stores the head of every strategy's ranking in `queue_rank`
under a new generation and then serves it (`queue_heads.write_heads`); an order here walks that
table's primary key (kind, generation, strategy, rank) with the served generation read in the
same statement, and probes `label_task` by primary key, so the next-task call stays an index
walk at a million images and never sees a half-written or half-pruned head. When a head is used
up before the next refresh, the order falls back to the random order (recorded as "random" on
the task: the record says what really chose it).

The mix picks a sub-strategy per handed-out task by smooth weighted round robin over its quotas
(exact shares per process, no randomness to test around) and records the sub-strategy's name
and the ranking model version on the TaskAssignment.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Select, and_, bindparam, select
from sqlmodel import Session

from relcurate.curation.labeling.al_select import DEFAULT_MIX, MODEL_STRATEGIES, normalise_mix
from relcurate.curation.labeling.task_order import RandomOrder, TaskOrder, register_strategy, strategy_names
from relcurate.db.models import LabelTask, QueueConfig, QueueRank

MIX = "mix"


@dataclass(frozen=True)
class RankedOrder:
    """Walk the stored head of strategy `name`; then `fallbacks` (the queue tries them in turn)."""

    name: str
    model_version_id: int | None = None
    fallbacks: tuple = (RandomOrder(),)

    def order(self, candidates: Select) -> Select:
        return (candidates.join(QueueRank, and_(QueueRank.kind == LabelTask.kind,
                                                QueueRank.image_id == LabelTask.image_id))
                .where(QueueRank.kind == bindparam("q_kind"), QueueRank.generation == served_generation(),
                       QueueRank.strategy == self.name)
                .order_by(QueueRank.rank))


def served_generation(kind=None):
    """The served generation of `kind`'s heads as a scalar subquery (default: the `q_kind` bind
    parameter of the next-task pick). Read in the same statement as the rows, it always matches
    them: a config cached for seconds could name a generation already pruned. Evaluated once
    per statement, so the walk is still by equality on the key's first three columns."""
    kind = bindparam("q_kind") if kind is None else kind
    return select(QueueConfig.heads_generation).where(QueueConfig.kind == kind).scalar_subquery()


def _model_version(cfg: QueueConfig) -> int | None:
    mv = (cfg.params or {}).get("model_version_id")
    return int(mv) if mv is not None else None


def _ranked(name: str):
    return lambda _s, cfg: RankedOrder(name, _model_version(cfg))


class _RoundRobin:
    """Smooth weighted round robin (as in nginx): over any window the picks follow the quotas
    as closely as integers allow."""

    def __init__(self, mix: dict[str, float]):
        self.mix, self.current = mix, {k: 0.0 for k in mix}
        self.lock = threading.Lock()

    def next(self) -> str:
        with self.lock:
            for k, w in self.mix.items():
                self.current[k] += w
            best = max(self.current, key=self.current.get)
            self.current[best] -= 1.0
            return best


_rr: dict[tuple, _RoundRobin] = {}


def mix_choice(mix: dict[str, float] | None) -> str:
    norm = normalise_mix(mix)
    key = tuple(sorted(norm.items()))
    rr = _rr.get(key)
    if rr is None:
        rr = _rr.setdefault(key, _RoundRobin(norm))
    return rr.next()


def _mix_factory(_s: Session, cfg: QueueConfig) -> TaskOrder:
    name = mix_choice((cfg.params or {}).get("mix") or DEFAULT_MIX)
    if name == "random":
        return RandomOrder()
    return RankedOrder(name, _model_version(cfg))


def _register() -> None:
    known = set(strategy_names())
    for name in MODEL_STRATEGIES:
        if name not in known:
            register_strategy(name, _ranked(name))
    if MIX not in known:
        register_strategy(MIX, _mix_factory)


_register()
