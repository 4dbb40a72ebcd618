"""The store: migrations agree with the models, upgrade from empty works, constraints hold."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select

from relcurate.db.engine import make_engine, session_scope
from relcurate.db.migrate import current_revision, head_revision, upgrade_to_head
from relcurate.db.models import CurrentLabel, FilterLabel, Image, ImageSource, User


def test_upgrade_from_empty_reaches_head_and_matches_models(db_url):
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    assert upgrade_to_head(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    names = set(inspect(engine).get_table_names())
    for table in ("image", "image_source", "app_user", "filter_label", "current_label", "seed_group",
                  "group_member", "caption", "caption_review", "model_version", "prediction",
                  "task_assignment", "export_manifest", "near_duplicate", "rejected_record"):
        assert table in names
    # Upgrading again is a no-op.
    assert upgrade_to_head(engine) == head_revision()
    engine.dispose()


def test_sqlite_pragmas(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_constraints(workspace):
    engine = workspace.engine
    with session_scope(engine) as s:
        u = User(username="ann", password_hash="x")
        img = Image(sha256="a" * 64, ext="png", source_uri="file:///a.png")
        s.add_all([u, img])
        s.flush()
        s.add(ImageSource(image_id=img.id, uri="file:///a.png", kind="folder"))
        ev = FilterLabel(image_id=img.id, user_id=u.id, answer="yes", request_id="r1")
        s.add(ev)
        s.flush()
        s.add(CurrentLabel(image_id=img.id, user_id=u.id, label_id=ev.id, answer="yes"))
        ids = (img.id, u.id, ev.id)
    with pytest.raises(IntegrityError):  # one current label per (image, annotator)
        with session_scope(engine) as s:
            s.add(CurrentLabel(image_id=ids[0], user_id=ids[1], label_id=ids[2], answer="no"))
    with pytest.raises(IntegrityError):  # content hash is unique
        with session_scope(engine) as s:
            s.add(Image(sha256="a" * 64, ext="png", source_uri="file:///b.png"))
    with pytest.raises(IntegrityError):  # foreign keys enforced (SQLite too)
        with session_scope(engine) as s:
            s.add(ImageSource(image_id=999_999, uri="file:///c.png", kind="folder"))
    with session_scope(engine) as s:
        assert len(s.exec(select(FilterLabel)).all()) == 1


def test_workspace_layout_and_reopen(tmp_path):
    from relcurate.workspace import Workspace, WorkspaceError

    ws = Workspace.init(tmp_path / "w")
    for sub in ("images", "thumbs", "quarantine", "models", "exports"):
        assert (ws.root / sub).is_dir()
    assert (ws.root / "relcurate.db").exists()
    again = Workspace.open(tmp_path / "w")
    assert again.db_url == ws.db_url
    assert ws.image_path("abcdef" + "0" * 58, "png").relative_to(ws.root).parts[:3] == ("images", "ab", "cd")
    with pytest.raises(WorkspaceError):
        Workspace.open(tmp_path / "nothing-here")
    Workspace.init(tmp_path / "w")  # re-init is idempotent


def test_sqlite_writer_waits_behind_another_past_the_poll_window(tmp_path, monkeypatch):
    """A writer that finds the write lock taken polls briefly, then waits in SQLite's busy
    handler; either way it gets the lock once the other commits, and the connection keeps its
    busy timeout."""
    import threading

    from relcurate.db import engine as engine_mod
    from relcurate.db.engine import SQLITE_BUSY_TIMEOUT_MS, make_engine
    from relcurate.db.write_retry import run_write

    monkeypatch.setattr(engine_mod, "SQLITE_POLL_FOR_S", 0.001)
    eng = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with eng.begin() as c:
        c.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    holder = eng.raw_connection()
    holder.cursor().execute("BEGIN IMMEDIATE")
    got, entered = [], threading.Event()

    def write(s):
        s.connection().exec_driver_sql("INSERT INTO t VALUES (1)")  # BEGIN IMMEDIATE runs first
        entered.set()
        return s.connection().exec_driver_sql("PRAGMA busy_timeout").scalar()

    th = threading.Thread(target=lambda: got.append(run_write(eng, write)))
    th.start()
    th.join(0.2)  # the writer is still waiting: the lock is held
    assert th.is_alive() and not entered.is_set()
    holder.commit()
    holder.close()
    th.join()
    assert got == [SQLITE_BUSY_TIMEOUT_MS]
    with eng.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
    eng.dispose()
