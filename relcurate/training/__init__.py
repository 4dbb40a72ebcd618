"""Trainers that learn from the store: the filter, the anonymous captioner and relsim."""
from __future__ import annotations

from typing import Any

KINDS = ("filter", "captioner", "relsim")


def train_model(kind: str, ws, **kwargs: Any):
    """Dispatch to train_filter / train_captioner / train_relsim (imported lazily: torch)."""
    if kind == "relsim":
        from relcurate.training.relsim_trainer import train_relsim as fn
    elif kind == "filter":
        from relcurate.training.filter_trainer import train_filter as fn
    elif kind == "captioner":
        from relcurate.training.captioner_trainer import train_captioner as fn
    else:
        raise ValueError(f"unknown trainer {kind!r}; one of {', '.join(KINDS)}")
    return fn(ws, **kwargs)
