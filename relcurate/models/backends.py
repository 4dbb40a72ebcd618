"""Model backends by name, the way task orders are registered (`register_strategy`).

A backend turns a stored model version (base path, adapter path, init keyword arguments) into an
object that speaks one of the role protocols (Filter, Captioner, Embedder). Built-ins are named
here as "module:function" so that listing or choosing one imports no torch; trainers and
baselines in other modules add theirs with `register_backend` (their module must be imported,
or named in `BUILTIN_BACKENDS`, before a version using them is loaded).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class LoadSpec:
    """What a backend needs, with workspace-relative paths already resolved."""

    base: str | None
    adapter: str | None
    device: str | None = None
    dtype: str | None = None
    init: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # "name:version", for messages


Loader = Callable[[LoadSpec], Any]

BUILTIN_BACKENDS: dict[str, str] = {
    "qwen-filter": "relcurate.models.qwen_filter:load_backend",
    "qwen-captioner": "relcurate.models.qwen_captioner:load_backend",
    "relsim": "relcurate.models.relsim_checkpoint:load_backend",
    "attribute": "relcurate.models.baselines:load_attribute_backend",
    "clip": "relcurate.models.baselines:load_clip_backend",
    "dinov2": "relcurate.models.baselines:load_dinov2_backend",
    "dreamsim": "relcurate.models.baselines:load_dreamsim_backend",
    "caption-text": "relcurate.models.caption_text:load_backend",
    "fast-head": "relcurate.models.linear_head:load_backend",  # active-learning linear probe
}
# The backend a version uses when its config names none: by kind (baselines by base model).
DEFAULT_BACKEND_OF_KIND = {"filter": "qwen-filter", "captioner": "qwen-captioner", "relsim": "relsim"}

_registered: dict[str, Loader] = {}


class UnknownBackend(LookupError):
    pass


def register_backend(name: str, loader: Loader | None = None):
    """Register `loader` under `name`; usable as a decorator. A later registration replaces an
    earlier one (tests and plugins may override a built-in)."""
    def add(fn: Loader) -> Loader:
        _registered[name] = fn
        return fn
    return add(loader) if loader is not None else add


def backend_names() -> list[str]:
    return sorted(set(BUILTIN_BACKENDS) | set(_registered))


def get_backend(name: str) -> Loader:
    if name in _registered:
        return _registered[name]
    if name in BUILTIN_BACKENDS:
        module, _, attr = BUILTIN_BACKENDS[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise UnknownBackend(f"unknown model backend {name!r}; known: {', '.join(backend_names())}")


def backend_for(kind: str, base_model: str | None, config: dict[str, Any]) -> str:
    """The backend name of a stored version: `config["backend"]` when set, else by kind."""
    if config.get("backend"):
        return str(config["backend"])
    kind = str(getattr(kind, "value", kind))
    if kind == "baseline":
        return "attribute" if base_model == "attribute" else "clip"
    try:
        return DEFAULT_BACKEND_OF_KIND[kind]
    except KeyError:
        raise UnknownBackend(f"no default backend for model kind {kind!r}") from None
