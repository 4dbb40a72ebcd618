"""Job handlers by name, the way task orders and model backends are registered.

A handler is `fn(ctx: JobContext) -> dict` (the dict becomes the job's result). Built-ins are
named here as "module:function" so listing them imports no torch; trainers, exports and pool
scoring add theirs with `register_handler` (their module must be imported by the worker, or
named in BUILTIN_HANDLERS).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

Handler = Callable[[Any], dict]

BUILTIN_HANDLERS: dict[str, str] = {
    "fast-head-refresh": "relcurate.jobs.filter_loop:run_fast_head_refresh",
    "filter-lora-retrain": "relcurate.jobs.filter_loop:run_lora_retrain",
    "export": "relcurate.jobs.export_job:run_export_job",
    "caption-pool": "relcurate.jobs.captioner_loop:run_caption_pool",
    "captioner-retrain": "relcurate.jobs.captioner_loop:run_captioner_retrain",
    "relsim-retrain": "relcurate.jobs.relsim_loop:run_relsim_retrain",
    "relsim-reembed": "relcurate.jobs.relsim_loop:run_relsim_reembed",
}

_registered: dict[str, Handler] = {}


class UnknownHandler(LookupError):
    pass


def register_handler(name: str, handler: Handler | None = None, *, replace: bool = False):
    """Register `handler` for jobs of kind `name`; usable as a decorator."""
    if not name or len(name) > 64:
        raise ValueError("handler name must have 1..64 characters")

    def add(fn: Handler) -> Handler:
        if name in _registered and not replace and _registered[name] is not fn:
            raise ValueError(f"job handler {name!r} is already registered")
        _registered[name] = fn
        return fn

    return add(handler) if handler is not None else add


def unregister_handler(name: str) -> None:
    _registered.pop(name, None)


def handler_names() -> list[str]:
    return sorted(set(BUILTIN_HANDLERS) | set(_registered))


def get_handler(name: str) -> Handler:
    if name in _registered:
        return _registered[name]
    if name in BUILTIN_HANDLERS:
        module, _, attr = BUILTIN_HANDLERS[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise UnknownHandler(f"no job handler {name!r}; known: {', '.join(handler_names())}")
