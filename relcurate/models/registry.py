"""Model registry in the store: every model version (kind, base, adapter, config, metrics, what it
was trained on) and loading a backend from it. Device and dtype are chosen automatically (cuda +
bf16 when present, CPU + fp32 otherwise) unless the caller says otherwise.

Paths are stored as given; relative ones are resolved against the workspace root, so a workspace
folder can move with its models.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import ModelKind, ModelVersion
from relcurate.models.backends import LoadSpec, UnknownBackend, backend_for, get_backend
from relcurate.workspace import Workspace


class ModelNotFound(LookupError):
    pass


def register_model(ws: Workspace, *, kind: str, name: str, base_model: str, adapter_path: str | None = None,
                   config: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                   trained_on: dict[str, Any] | None = None) -> ModelVersion:
    """Add the next version of `name` (1, 2, ...)."""
    kind = ModelKind(kind)
    with session_scope(ws.engine) as s:
        latest = s.exec(select(func.max(ModelVersion.version)).where(ModelVersion.name == name)).one()
        mv = ModelVersion(kind=kind, name=name, version=(latest or 0) + 1, base_model=str(base_model),
                          adapter_path=str(adapter_path) if adapter_path else None, config=config or {},
                          metrics=metrics or {}, trained_on=trained_on or {})
        s.add(mv)
        s.flush()
        s.refresh(mv)
        return mv


def get_model_version_by_id(ws: Workspace, mv_id: int) -> ModelVersion:
    with read_scope(ws.engine) as s:
        mv = s.get(ModelVersion, mv_id)
    if mv is None:
        raise ModelNotFound(f"no model version id {mv_id}")
    return mv


def get_model_version(ws: Workspace, name: str, version: int | None = None) -> ModelVersion:
    """A version of `name`; the latest when `version` is None. Also accepts "name:version"."""
    if version is None and ":" in name:
        name, _, v = name.rpartition(":")
        version = int(v)
    with read_scope(ws.engine) as s:
        q = select(ModelVersion).where(ModelVersion.name == name)
        q = q.where(ModelVersion.version == version) if version is not None else q.order_by(ModelVersion.version.desc())
        mv = s.exec(q).first()
    if mv is None:
        raise ModelNotFound(f"no model {name!r}" + (f" version {version}" if version is not None else ""))
    return mv


def list_model_versions(ws: Workspace, kind: str | None = None) -> list[ModelVersion]:
    with read_scope(ws.engine) as s:
        q = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)
        if kind:
            q = q.where(ModelVersion.kind == kind)
        return list(s.exec(q))


def update_model_version(ws: Workspace, mv_id: int, *, metrics: dict | None = None, config: dict | None = None) -> ModelVersion:
    """Merge new metrics/config keys into a version (e.g. evaluation results, vector paths)."""
    with session_scope(ws.engine) as s:
        mv = s.get(ModelVersion, mv_id)
        if mv is None:
            raise ModelNotFound(f"no model version id {mv_id}")
        if metrics:
            mv.metrics = {**mv.metrics, **metrics}
        if config:
            mv.config = {**mv.config, **config}
        s.add(mv)
        s.flush()
        s.refresh(mv)
        return mv


def resolve_path(ws: Workspace, path: str | None) -> str | None:
    """Relative paths live in the workspace; hub ids (org/name) that don't exist locally pass through."""
    if not path:
        return None
    p = Path(path)
    if p.is_absolute():
        return str(p)
    local = ws.root / p
    return str(local) if local.exists() else path


def load_model(ws: Workspace, mv: ModelVersion, *, device: str | None = None, dtype: str | None = None,
               **overrides: Any):
    """The backend object for a registered version: a Filter, Captioner or Embedder.
    `overrides` win over the version's stored `config["init"]` keyword arguments (a caller passes
    e.g. `checker=` for a captioner: the models layer knows nothing of curation rules)."""
    spec = LoadSpec(base=resolve_path(ws, mv.base_model), adapter=resolve_path(ws, mv.adapter_path),
                    device=device, dtype=dtype, init={**mv.config.get("init", {}), **overrides},
                    label=f"{mv.name}:{mv.version}")
    try:
        return get_backend(backend_for(mv.kind, mv.base_model, mv.config))(spec)
    except UnknownBackend as exc:
        raise ModelNotFound(f"model {spec.label}: {exc}") from None
