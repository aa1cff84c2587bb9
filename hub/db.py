"""The hub's database: one code path for SQLite (embedded default) and PostgreSQL.

`open_database(url)` takes `sqlite:///PATH` or `postgresql://USER@HOST/DB` and
returns an async engine on aiosqlite or asyncpg; `migrate(engine)` brings the
schema to the newest Alembic revision, safely when several hub processes
start at once. Every write runs in `transaction(engine)`: on SQLite that is
`BEGIN IMMEDIATE` (one writer at a time, no upgrade deadlocks); on PostgreSQL
rows that decide money are locked with `SELECT … FOR UPDATE` by the callers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from . import counting

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Alembic narrates every start-up at INFO (plugins, "Context impl"); the hub
# and the daemon log at INFO, and that narration is noise to a person.
logging.getLogger("alembic").setLevel(logging.WARNING)
_MIGRATION_LOCK = 0x6D656365  # "mece": the advisory lock id on PostgreSQL


class DatabaseUrlError(ValueError):
    pass


class DatabaseRefused(Exception):
    """The hub's database is damaged, or a newer version wrote it: one line
    saying which and what to do. Nothing was changed in it."""


def async_url(url: str) -> str:
    """The SQLAlchemy async URL for a plain database URL.

    >>> async_url("sqlite:////tmp/hub.db")
    'sqlite+aiosqlite:////tmp/hub.db'
    >>> async_url("postgresql://postgres@127.0.0.1/test")
    'postgresql+asyncpg://postgres@127.0.0.1/test'
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DatabaseUrlError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise DatabaseUrlError("SQLite needs a file: sqlite:///PATH")
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise DatabaseUrlError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def open_database(url: str, *, pool_size: int = 5) -> AsyncEngine:
    full = async_url(url)
    if full.startswith("sqlite"):
        engine = create_async_engine(full, connect_args={"timeout": 30})
        _sqlite_setup(engine)
    else:
        engine = create_async_engine(full, pool_size=pool_size, max_overflow=pool_size)
    return engine


def _sqlite_setup(engine: AsyncEngine) -> None:
    """WAL, full sync, foreign keys; and SQLAlchemy, not the driver, says BEGIN
    (the SQLAlchemy documentation's recipe for aiosqlite), as BEGIN IMMEDIATE."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=30000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()
        # The counters' keys in SQL (hub/counting.py); PostgreSQL computes them itself.
        dbapi_connection.create_function(
            counting.SubjectKey.name, 2, counting.subject_of, deterministic=True
        )
        dbapi_connection.create_function(
            counting.PersonKey.name, 1, counting.person_key, deterministic=True
        )

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.begin() as conn:
        yield conn


def _alembic_config(conn: Connection) -> Any:
    # Late, as the two below: Alembic logs as it loads, and only migrations need it.
    from alembic.config import Config  # noqa: PLC0415

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def _upgrade(conn: Connection, target: str = "head") -> None:
    if conn.dialect.name == "postgresql":
        # Several hub processes may start together: one migrates, the others wait.
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
    from alembic import command  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415
    from alembic.util.exc import CommandError  # noqa: PLC0415

    where = conn.engine.url.render_as_string(hide_password=True)
    if conn.dialect.name == "sqlite":
        # The embedded hub's file: a torn or half-copied one is refused before
        # anything is served from it or written into it.
        try:
            problems = [
                phrase
                for row in conn.exec_driver_sql("PRAGMA integrity_check(5)")
                if (phrase := " ".join(str(row[0]).replace("*** in database main ***", "").split()))
            ]
        except exc.DatabaseError as error:  # "file is not a database" and kin
            problems = [str(error.orig)]
        if problems != ["ok"]:
            raise DatabaseRefused(
                f"the hub's database {where} is damaged ({'; '.join(problems[:2])}); nothing was "
                "changed. Restore it from a backup (`mecene restore --from FILE`)"
            )
    cfg = _alembic_config(conn)
    current = _current(conn)
    if current is not None:
        try:
            ScriptDirectory.from_config(cfg).get_revision(current)
        except CommandError:
            raise DatabaseRefused(
                f"the hub's database {where} was written by a newer version (schema {current}); "
                "this version would misread it: run the newer version"
            ) from None
    command.upgrade(cfg, target)


def _current(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

    return MigrationContext.configure(conn).get_current_revision()


async def migrate(engine: AsyncEngine, target: str = "head") -> None:
    """Apply every migration not yet applied (up to `target`), in one transaction."""
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, target)
    except exc.DatabaseError as error:
        # SQLite says so on the first statement (the connection's pragmas).
        if engine.dialect.name != "sqlite":
            raise
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseRefused(
            f"the hub's database {where} is damaged ({error.orig}); nothing was changed. "
            "Restore it from a backup (`mecene restore --from FILE`)"
        ) from None


async def revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)
