"""Run folders and the model version a finished run registers.

A run's folder is `<workspace>/models/runs/<name>-<key>/`, where `key` hashes the data snapshot,
the base model and the settings: running the same command again resumes (or, when finished,
returns the version it already registered) instead of starting over or registering twice.
Registration goes through `models.registry.register_model`, so pages, `models embed /
score-filter` and exports use the new version at once.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from relcurate.db.models import ModelVersion
from relcurate.models.registry import ModelNotFound, get_model_version, get_model_version_by_id, register_model
from relcurate.training.snapshot import TrainingSnapshot
from relcurate.workspace import Workspace

REGISTERED = "registered.json"
FINAL = "final"


def resolve_base(ws: Workspace, base: str | None, default: str) -> str:
    """A registered model ("name" or "name:version": its base model), or a path / hub id as is."""
    if not base:
        return default
    if not Path(base).exists():
        try:
            return get_model_version(ws, base).base_model
        except (ModelNotFound, ValueError):
            pass
    return base


def run_dir_for(ws: Workspace, name: str, snapshot: TrainingSnapshot, base: str, settings: dict[str, Any]) -> Path:
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or name.startswith("."):
        raise ValueError(f"model name {name!r}: use letters, digits, '-', '_' and '.'")
    body = json.dumps({"snapshot": snapshot.sha256, "base": base, "settings": _result_settings(settings)},
                      sort_keys=True, default=str)
    key = hashlib.sha256(body.encode()).hexdigest()[:12]
    return ws.models_dir / "runs" / f"{name}-{key}"


# Settings that change how a run is watched or saved, not what it computes: a rerun with another
# progress/tracker/checkpoint choice still resumes the same run.
_NOT_IN_KEY = ("progress", "trackers", "log_every", "checkpoint_every", "keep_checkpoints")


def _result_settings(settings: dict[str, Any]) -> dict[str, Any]:
    out = dict(settings)
    if isinstance(out.get("loop"), dict):
        out["loop"] = {k: v for k, v in out["loop"].items() if k not in _NOT_IN_KEY}
    return out


def workspace_relative(ws: Workspace, path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ws.root.resolve()))
    except ValueError:
        return str(path)


def already_registered(ws: Workspace, run_dir: Path) -> ModelVersion | None:
    marker = run_dir / REGISTERED
    if not marker.exists():
        return None
    try:
        return get_model_version_by_id(ws, int(json.loads(marker.read_text())["model_version_id"]))
    except (ModelNotFound, KeyError, ValueError):
        return None


def publish_dir(tmp: Path, final: Path) -> Path:
    """Move a fully written folder into place (replacing a stale one)."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def register_trained(ws: Workspace, run_dir: Path, *, kind: str, name: str, base: str, adapter: Path,
                     config: dict[str, Any], metrics: dict[str, Any], snapshot: TrainingSnapshot) -> ModelVersion:
    """Register the version (once per run folder) and remember it in the run folder."""
    existing = already_registered(ws, run_dir)
    if existing is not None:
        return existing
    trained_on = {**snapshot.summary(), "run_dir": workspace_relative(ws, run_dir)}
    mv = register_model(ws, kind=kind, name=name, base_model=base, adapter_path=workspace_relative(ws, adapter),
                        config=config, metrics=metrics, trained_on=trained_on)
    tmp = run_dir / (REGISTERED + ".tmp")
    tmp.write_text(json.dumps({"model_version_id": mv.id, "name": mv.name, "version": mv.version}))
    os.replace(tmp, run_dir / REGISTERED)
    return mv
