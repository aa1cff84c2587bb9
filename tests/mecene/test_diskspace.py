"""A full disk is recognised however it surfaces, from real SQLite files made
to fill up (`max_page_count`), and said in one line by background loops."""

from __future__ import annotations

import asyncio
import errno
import logging
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from mecene.diskspace import disk_is_full, log_failure


def fill(conn: sqlite3.Connection) -> None:
    conn.execute("create table t (x blob)")
    conn.execute("pragma max_page_count = 4")
    while True:
        conn.execute("insert into t values (zeroblob(4000))")


def test_sqlite3_full(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as caught:
        fill(conn)
    conn.close()
    assert disk_is_full(caught.value)


def test_sqlalchemy_over_aiosqlite_full(tmp_path: Path) -> None:
    """The embedded hub's own path: SQLAlchemy wraps aiosqlite's error."""

    async def go() -> BaseException:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
        try:
            async with engine.begin() as conn:
                await conn.execute(text("create table t (x blob)"))
            async with engine.begin() as conn:
                await conn.execute(text("pragma max_page_count = 4"))
                for _ in range(20):
                    await conn.execute(text("insert into t values (zeroblob(4000))"))
        except Exception as exc:
            return exc
        finally:
            await engine.dispose()
        raise AssertionError("the database never filled up")

    exc = asyncio.run(go())
    assert type(exc).__module__.startswith("sqlalchemy")
    assert disk_is_full(exc)


def test_other_failures_are_not_a_full_disk(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "b.db")
    with pytest.raises(sqlite3.OperationalError) as caught:
        conn.execute("select * from missing")
    conn.close()
    assert not disk_is_full(caught.value)
    assert not disk_is_full(OSError(errno.EACCES, "denied"))
    assert not disk_is_full(ValueError("x"))


def test_file_writes_and_postgres() -> None:
    assert disk_is_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_is_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert disk_is_full(asyncpg.exceptions.DiskFullError("could not extend file"))
    try:
        try:
            raise OSError(errno.ENOSPC, "full")
        except OSError as inner:
            raise RuntimeError("writing the backup failed") from inner
    except RuntimeError as outer:
        assert disk_is_full(outer)


def test_log_failure_says_a_full_disk_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("mecene.test")
    with caplog.at_level(logging.INFO, "mecene.test"):
        log_failure(log, "hub upkeep failed", OSError(errno.ENOSPC, "full"))
        try:
            raise KeyError("a bug")
        except KeyError as exc:
            log_failure(log, "the payout run failed", exc)
    full, bug = caplog.records
    assert (full.levelno, full.getMessage()) == (
        logging.WARNING,
        "hub upkeep failed: the disk is full; will try again",
    )
    assert full.exc_info is None
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
    assert "Traceback" in caplog.text and "KeyError" in caplog.text
