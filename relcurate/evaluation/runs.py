"""Evaluation runs in the store (one `EvalRun` row each) and their versioned result folders.

A run's details live in files under `evaluations/<kind>-<id>/` (workspace-relative path in the
row), its headline metrics in the row, so pages list runs with one query and read details only
when opened. Result files carry `"format": RESULT_FORMAT`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import select

from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import EvalRun, utcnow
from relcurate.workspace import Workspace

RESULT_FORMAT = 1
KINDS = ("retrieval", "judge", "mining", "ab")
SUMMARY_FILE = "summary.json"


class RunNotFound(LookupError):
    pass


def json_safe(obj: Any) -> Any:
    """NaN / inf (an empty interval, an unmeasured metric) as null: strict JSON, which
    PostgreSQL's json type and other readers require."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


@dataclass(frozen=True)
class RunView:
    id: int
    kind: str
    name: str
    status: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    path: str | None
    parent_id: int | None
    created_at: datetime
    finished_at: datetime | None


def _view(r: EvalRun) -> RunView:
    return RunView(r.id, r.kind, r.name, r.status, dict(r.params), dict(r.metrics), r.path, r.parent_id,
                   r.created_at, r.finished_at)


def run_dir(ws: Workspace, kind: str, run_id: int) -> Path:
    return ws.root / "evaluations" / f"{kind}-{int(run_id):05d}"


def start_run(ws: Workspace, kind: str, name: str, params: dict[str, Any], *, parent_id: int | None = None,
              created_by: int | None = None) -> RunView:
    if kind not in KINDS:
        raise ValueError(f"unknown evaluation kind {kind!r}; expected one of {KINDS}")
    with session_scope(ws.engine) as s:
        row = EvalRun(kind=kind, name=name[:256], params=json_safe(params), parent_id=parent_id, created_by=created_by)
        s.add(row)
        s.flush()
        row.path = str(run_dir(ws, kind, row.id).relative_to(ws.root))
        s.add(row)
        s.flush()
        s.refresh(row)
        view = _view(row)
    run_dir(ws, kind, view.id).mkdir(parents=True, exist_ok=True)
    return view


def finish_run(ws: Workspace, run_id: int, *, metrics: dict[str, Any], status: str = "done") -> RunView:
    with session_scope(ws.engine) as s:
        row = s.get(EvalRun, run_id)
        if row is None:
            raise RunNotFound(f"no evaluation run {run_id}")
        row.metrics = json_safe(metrics)
        row.status = status
        row.finished_at = utcnow()
        s.add(row)
        s.flush()
        s.refresh(row)
        return _view(row)


def get_run(ws: Workspace, run_id: int, kind: str | None = None) -> RunView:
    with read_scope(ws.engine) as s:
        row = s.get(EvalRun, int(run_id))
        if row is None or (kind is not None and row.kind != kind):
            raise RunNotFound(f"no {kind or 'evaluation'} run {run_id}")
        return _view(row)


def list_runs(ws: Workspace, kind: str | None = None, *, status: str | None = None) -> list[RunView]:
    with read_scope(ws.engine) as s:
        q = select(EvalRun).order_by(EvalRun.id.desc())
        if kind:
            q = q.where(EvalRun.kind == kind)
        if status:
            q = q.where(EvalRun.status == status)
        return [_view(r) for r in s.exec(q)]


def write_json(path: Path, data: Any) -> Path:
    """Atomic JSON write (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(json_safe(data), indent=1, sort_keys=True, default=str, allow_nan=False))
    os.replace(tmp, path)
    return path


def read_result(ws: Workspace, run: RunView, name: str = SUMMARY_FILE) -> dict[str, Any]:
    if not run.path:
        raise RunNotFound(f"run {run.id} has no result folder")
    path = ws.root / run.path / name
    if not path.exists():
        raise RunNotFound(f"run {run.id}: {path} is missing (still running, or failed)")
    data = json.loads(path.read_text())
    if data.get("format") != RESULT_FORMAT:
        raise ValueError(f"{path}: unsupported result format {data.get('format')!r}")
    return data
