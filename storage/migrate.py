"""Schema migrations, configured in code (no alembic.ini): the app calls upgrade_to_head() on start."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from storage.db import is_sqlite, make_engine, writer_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in one write transaction for running migrations.

    On SQLite, foreign keys are off while it runs: Alembic's batch mode rebuilds a table by copying
    it and dropping the old one, and with foreign keys on, that drop cascades (rebuilding `sessions`
    deleted every round). SQLite's own procedure for table rebuilds is followed: keys off outside the
    transaction, `PRAGMA foreign_key_check` before commit (a violation rolls everything back), keys on
    again. The whole migration holds the write lock, so two processes starting at once do not both
    migrate."""
    sqlite = is_sqlite(engine)
    with writer_engine(engine).connect() as connection:
        raw = connection.connection.driver_connection if sqlite else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction, so before BEGIN
        try:
            with connection.begin():
                yield connection
                if raw is not None:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left {len(broken)} broken foreign key(s), first: {broken[0]}")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def _run(engine_or_url: Engine | str | None, step, revision: str) -> None:
    engine = engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url)
    try:
        with migration_connection(engine) as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            step(config, revision)
    finally:
        if engine is not engine_or_url:
            engine.dispose()


def upgrade(engine_or_url: Engine | str | None, revision: str = "head") -> None:
    """Upgrade the database to `revision`."""
    _run(engine_or_url, command.upgrade, revision)


def downgrade(engine_or_url: Engine | str | None, revision: str) -> None:
    """Downgrade the database to `revision`; rows are kept as each revision's downgrade says."""
    _run(engine_or_url, command.downgrade, revision)


def upgrade_to_head(engine_or_url: Engine | str | None = None) -> None:
    """Bring the schema to the newest revision (default database: storage.db.database_url())."""
    upgrade(engine_or_url, "head")


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
