"""Workspace-wide settings chosen in the app or the CLI, one JSON value per key (the
`workspace_setting` table): e.g. which relsim space the group builder searches by default.
Setting a key is an upsert in one transaction; setting the same value again changes nothing."""
from __future__ import annotations

from typing import Any

from relcurate.curation.store_scopes import Store, engine_of, reading
from relcurate.db.models import WorkspaceSetting, utcnow
from relcurate.db.write_retry import run_write

RELSIM_SPACE = "relsim_space"  # the group builder's default "more like this group" space


def get_setting(store: Store, key: str, default: Any = None) -> Any:
    with reading(store) as s:
        row = s.get(WorkspaceSetting, key)
        return default if row is None or row.value is None else row.value


def set_setting(store: Store, key: str, value: Any, *, user_id: int | None = None) -> bool:
    """Store `value` under `key`; False when it already held that value."""
    if not key or len(key) > 64:
        raise ValueError("setting keys have 1..64 characters")

    def write(s) -> bool:
        row = s.get(WorkspaceSetting, key, with_for_update=True)
        if row is not None and row.value == value:
            return False
        if row is None:
            s.add(WorkspaceSetting(key=key, value=value, updated_by=user_id))
            s.flush()  # a concurrent insert of the same key raises here and run_write retries
        else:
            row.value, row.updated_by, row.updated_at = value, user_id, utcnow()
            s.add(row)
        return True

    return run_write(engine_of(store), write)
