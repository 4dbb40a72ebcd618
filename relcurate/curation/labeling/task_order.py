"""Pluggable task orders for the labeling queue.

A strategy decides which open task an annotator gets next. It receives the candidate query
(open `LabelTask` rows of one kind that this annotator has not had) and returns it ordered, with
any joins it needs (e.g. a model's `Prediction` scores). The queue adds LIMIT and, on PostgreSQL,
``FOR UPDATE OF label_task SKIP LOCKED``, and records the strategy's `name` and
`model_version_id` on every `TaskAssignment` it hands out.

Make a strategy a frozen dataclass (hashable by value, like the built-in ones): the queue then
builds its pick statement once and reuses it. Keep orders index-friendly: an ``ORDER BY`` that an index serves (``order_key``, or a
precomputed per-model score column) keeps the next-task call in the millisecond range at a
million images; ``ORDER BY random()`` or an expression over a join does not.

The active-learning code registers its model-driven orders with `register_strategy`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

from sqlalchemy import Select
from sqlmodel import Session

from relcurate.db.models import LabelTask, QueueConfig


@runtime_checkable
class TaskOrder(Protocol):
    name: str  # recorded on TaskAssignment.strategy (≤ 32 characters)
    model_version_id: int | None  # the model whose scores chose the task, if any

    def order(self, candidates: Select) -> Select:
        """`candidates` selects LabelTask.image_id; return it ordered (joins allowed)."""
        ...


StrategyFactory = Callable[[Session, QueueConfig], TaskOrder]


@dataclass(frozen=True)
class RandomOrder:
    """A fixed random permutation (LabelTask.order_key, drawn once per task): every annotator
    walks the same shuffled list, so overlap images fill up early and no scan is random."""

    name: str = "random"
    model_version_id: int | None = None

    def order(self, candidates: Select) -> Select:
        # No tie-breaker column: ORDER BY exactly the index suffix keeps it a pure index walk.
        return candidates.order_by(LabelTask.order_key)


@dataclass(frozen=True)
class SequentialOrder:
    """By image id (ingest order): reproducible, for demos and tests."""

    name: str = "sequential"
    model_version_id: int | None = None

    def order(self, candidates: Select) -> Select:
        return candidates.order_by(LabelTask.image_id)


_REGISTRY: dict[str, StrategyFactory] = {
    "random": lambda _s, _cfg: RandomOrder(),
    "sequential": lambda _s, _cfg: SequentialOrder(),
}


class UnknownStrategy(KeyError):
    pass


def register_strategy(name: str, factory: StrategyFactory, *, replace: bool = False) -> None:
    """Make `name` selectable in QueueConfig.strategy. The factory gets the open session and the
    queue config (its `params` dict carries strategy settings, e.g. a model version id)."""
    if not name or len(name) > 32:
        raise ValueError("strategy name must have 1..32 characters")
    if name in _REGISTRY and not replace:
        raise ValueError(f"strategy {name!r} is already registered")
    _REGISTRY[name] = factory


def strategy_names() -> list[str]:
    return sorted(_REGISTRY)


def make_strategy(name: str, session: Session, config: QueueConfig) -> TaskOrder:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UnknownStrategy(f"unknown task order {name!r}; known: {', '.join(strategy_names())}") from None
    return factory(session, config)
