"""The one place that makes engines and sessions.

The database URL is RR_DATABASE_URL, else a SQLite file under rr_core.paths.data_dir(). PostgreSQL
works through the same setting (postgresql+psycopg://user:pass@host/db).

SQLite is set up for several writers at once: WAL (readers never block the writer), foreign keys on,
a busy timeout, and transactions begun by us rather than by the pysqlite driver (the SQLAlchemy docs'
"serializable isolation / savepoints" recipe). Read transactions begin DEFERRED; `write_transaction`
begins IMMEDIATE, taking the write lock up front so that two writers queue on the busy timeout instead
of one failing with "database is locked" when it upgrades a read lock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from rr_core.paths import data_dir

DATABASE_FILE = "studio.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 60_000
_BEGIN_OPTION = "rr_sqlite_begin"


def database_url() -> str:
    """RR_DATABASE_URL, else sqlite:///<data_dir>/studio.sqlite3."""
    url = os.environ.get("RR_DATABASE_URL", "").strip()
    if url:
        return url
    return f"sqlite:///{(data_dir() / DATABASE_FILE).resolve()}"


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for `url` (default: database_url()), with the SQLite settings described above."""
    url = url or database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() not in ("psycopg", "psycopg_async"):
        raise ValueError(f"use the psycopg 3 driver for PostgreSQL: postgresql+psycopg://..., got {url!r}")
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    connect_args.update(kwargs.pop("connect_args", {}))
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Driver-level autocommit: pysqlite no longer emits its own BEGIN; `_on_begin` does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (the app shows them after writing)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def writer_engine(engine: Engine) -> Engine:
    """`engine` with write transactions: BEGIN IMMEDIATE on SQLite, unchanged elsewhere."""
    if is_sqlite(engine):
        return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
    return engine


@contextmanager
def write_transaction(engine_or_factory: Engine | sessionmaker[Session]) -> Iterator[Session]:
    """A session in one write transaction: committed when the block ends, rolled back on error.

    On SQLite the transaction begins IMMEDIATE, so concurrent writers wait for each other (up to the
    busy timeout) rather than failing. Repository functions never commit; this is where it happens.
    """
    if isinstance(engine_or_factory, Engine):
        factory = make_session_factory(engine_or_factory)
        engine = engine_or_factory
    else:
        factory = engine_or_factory
        engine = factory.kw["bind"]
    with factory(bind=writer_engine(engine)) as session, session.begin():
        yield session


@contextmanager
def scratch_postgres_database(base_url: str, prefix: str) -> Iterator[str]:
    """A new empty PostgreSQL database beside the one `base_url` names, dropped on exit; yields its URL.

    For tests and benchmarks that must not touch real data (the role needs CREATEDB).
    """
    from sqlalchemy import text

    base = make_url(base_url)
    name = f"{prefix}_{os.urandom(4).hex()}".lower()
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            _drop_database(admin, name)
        finally:
            admin.dispose()


def _drop_database(admin: Engine, name: str, tries: int = 20, wait_s: float = 0.5) -> None:
    """DROP ... WITH (FORCE), retried: FORCE must also end an autovacuum worker that happens to be in
    the database, which a role without pg_signal_backend may not do ("must be a member of the role
    whose process is being terminated"); the worker is gone a moment later."""
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    for attempt in range(tries):
        try:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except DBAPIError:
            if attempt == tries - 1:
                raise
            time.sleep(wait_s)
