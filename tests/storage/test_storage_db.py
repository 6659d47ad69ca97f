"""Engine setup: URL selection, SQLite pragmas, write transactions and garbage collection with rows."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest
from sqlalchemy import select, text

from storage import repository as repo
from storage.db import database_url, make_engine, write_transaction
from storage.gc import collect_garbage
from storage.migrate import upgrade_to_head
from storage.models import Image, User


def test_database_url_defaults_and_override(tmp_path, monkeypatch):
    monkeypatch.delenv("RR_DATABASE_URL", raising=False)
    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path))
    assert database_url() == f"sqlite:///{tmp_path.resolve()}/studio.sqlite3"
    monkeypatch.setenv("RR_DATABASE_URL", "postgresql+psycopg://u:p@db/studio")
    assert database_url() == "postgresql+psycopg://u:p@db/studio"


def test_postgres_needs_psycopg3():
    with pytest.raises(ValueError, match="psycopg"):
        make_engine("postgresql+psycopg2://u:p@localhost/db")


def test_sqlite_pragmas(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/nested/db.sqlite3")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    engine.dispose()


def test_write_transaction_takes_the_write_lock_and_rolls_back(tmp_path):
    path = tmp_path / "db.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    with write_transaction(engine) as session:
        repo.get_or_create_user(session, "holder")
        other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")  # the write lock is already held: BEGIN IMMEDIATE worked
        assert other.execute("SELECT count(*) FROM users").fetchone() == (0,)  # readers are not blocked
        other.close()
    with pytest.raises(RuntimeError), write_transaction(engine) as session:
        repo.get_or_create_user(session, "ghost")
        raise RuntimeError("fail mid-transaction")
    with engine.connect() as connection:
        assert connection.scalars(select(User.id)).all() == ["holder"]
    engine.dispose()


def test_gc_removes_rows_and_files_of_deleted_sessions(engine, factory, store, make_image, make_critique,
                                                      new_user_id):
    with write_transaction(factory) as s:
        owner = repo.get_or_create_user(s, new_user_id()).id
        sid = repo.create_session(s, owner_id=owner, task="t2i", request="gc me").id
        kept_sid = repo.create_session(s, owner_id=owner, task="t2i", request="keep me").id
        gone = repo.record_candidate(s, store=store, session_id=sid, owner_id=owner, request="gc me",
                                 image=make_image(7001), critique=make_critique(), round_index=0).image_sha256
        kept = repo.record_candidate(s, store=store, session_id=kept_sid, owner_id=owner, request="keep me",
                                 image=make_image(7002), critique=make_critique(), round_index=0).image_sha256
    in_flight = store.put(make_image(7003)).sha256  # a round that has written its file, not its rows
    with write_transaction(factory) as s:
        repo.delete_session(s, sid, owner)
    assert gone not in collect_garbage(factory, store, grace_s=3600)  # too young
    long_ago = time.time() - 7200
    for sha in (gone, kept):
        os.utime(store.path(sha), (long_ago, long_ago))
    with write_transaction(factory) as s:  # make the image rows old too
        s.execute(text("UPDATE images SET created_at = :t WHERE sha256 IN (:a, :b)"),
                  {"t": "2000-01-01 00:00:00", "a": gone, "b": kept})
    deleted = collect_garbage(factory, store, grace_s=3600)
    assert gone in deleted and kept not in deleted and in_flight not in deleted
    assert store.exists(kept) and store.exists(in_flight) and not store.exists(gone)
    with factory() as s:
        assert s.get(Image, gone) is None and s.get(Image, kept) is not None


def test_dropping_a_scratch_database_waits_out_a_passing_refusal(monkeypatch):
    """DROP ... WITH (FORCE) is refused while an autovacuum worker the role may not end is in the
    database; the drop is tried again instead of failing the teardown, and a lasting refusal is raised."""
    from sqlalchemy.exc import DBAPIError

    from storage import db as storage_db

    refusals = {"left": 2, "drops": 0}

    class Connection:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, statement):
            refusals["drops"] += 1
            if refusals["left"]:
                refusals["left"] -= 1
                raise DBAPIError(str(statement), None, Exception("must be a member of the role whose process is being terminated"))

    class Admin:
        def connect(self):
            return Connection()

    storage_db._drop_database(Admin(), "rr_scratch", wait_s=0)
    assert refusals["drops"] == 3
    refusals.update(left=100, drops=0)
    with pytest.raises(DBAPIError):
        storage_db._drop_database(Admin(), "rr_scratch", tries=3, wait_s=0)
    assert refusals["drops"] == 3
