"""Fixtures for every layer. Database tests run on SQLite always and on PostgreSQL whenever
RELCURATE_TEST_PG_URL is set (a fresh schema per test, dropped afterwards)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

# Session-scoped tiny Qwen2.5-VL fixtures (tiny_qwen, tiny_qwen_bpe) for every test module.
pytest_plugins = ["relcurate.testing.models", "relcurate.testing.labelstudio"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PG_ENV = "RELCURATE_TEST_PG_URL"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request, tmp_path):
    """A fresh, empty database URL on each back end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = pg_base_url()
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    yield from _pg_schema_url(base)


def _pg_schema_url(base: str):
    from relcurate.db.engine import make_engine, normalise_url

    schema = f"rc_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(normalise_url(base)).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def workspace(db_url, tmp_path):
    from relcurate.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws", db_url=db_url)
    yield ws
    ws.engine.dispose()


@pytest.fixture
def sqlite_workspace(tmp_path):
    from relcurate.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws")
    yield ws
    ws.engine.dispose()


@pytest.fixture
def seed_group_file() -> Path:
    path = SHARED_DATA / "seed_group.json"
    if not path.exists():
        pytest.skip(f"real seed_group.json not found at {path} (third-party data, not in the repo)")
    return path
