"""The store's promises: durable pragmas everywhere, group commit, isolated failures."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlite_utils import Database

from daemon.store import Store, migrations


@pytest.fixture
async def store(tmp_path: Path):
    s = Store(tmp_path / "d.sqlite")
    s.open()
    yield s
    await s.close()


def _insert_meta(key: str):
    def job(db: Database) -> str:
        db.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", [key])
        return key

    return job


async def test_every_connection_is_wal_and_synchronous_full(store: Store) -> None:
    def pragmas(db: Database) -> tuple[str, int]:
        return (
            db.execute("PRAGMA journal_mode").fetchone()[0],
            db.execute("PRAGMA synchronous").fetchone()[0],
        )

    assert await store.write(pragmas) == ("wal", 2)  # 2 = FULL
    assert await store.read(pragmas) == ("wal", 2)


async def test_concurrent_writes_share_transactions(store: Store) -> None:
    keys = await asyncio.gather(*(store.write(_insert_meta(f"k{i}")) for i in range(200)))
    assert keys == [f"k{i}" for i in range(200)]
    assert store.jobs == 200
    assert store.batches < 50  # grouped, not one commit each
    count = await store.read(lambda db: db.execute("SELECT count(*) FROM meta").fetchone()[0])
    assert count == 200


async def test_a_failing_job_undoes_only_itself(store: Store) -> None:
    def half_then_fail(db: Database) -> None:
        db.execute("INSERT INTO meta (key, value) VALUES ('half', 'x')")
        raise ValueError("refused")

    results = await asyncio.gather(
        store.write(_insert_meta("before")),
        store.write(half_then_fail),
        store.write(_insert_meta("after")),
        return_exceptions=True,
    )
    assert results[0] == "before" and results[2] == "after"
    assert isinstance(results[1], ValueError)
    keys = await store.read(lambda db: [r[0] for r in db.execute("SELECT key FROM meta")])
    assert sorted(keys) == ["after", "before"]


async def test_a_write_is_on_disk_when_it_returns(store: Store, tmp_path: Path) -> None:
    await store.write(_insert_meta("durable"))
    other = sqlite3.connect(tmp_path / "d.sqlite")  # another connection sees it committed
    assert other.execute("SELECT key FROM meta").fetchall() == [("durable",)]
    other.close()


async def test_close_finishes_pending_writes(tmp_path: Path) -> None:
    s = Store(tmp_path / "c.sqlite")
    s.open()
    tasks = [asyncio.create_task(s.write(_insert_meta(f"k{i}"))) for i in range(20)]
    await asyncio.sleep(0)
    await s.close()
    assert [t.result() for t in tasks] == [f"k{i}" for i in range(20)]


async def test_migrations_apply_once(tmp_path: Path) -> None:
    for _ in range(2):
        s = Store(tmp_path / "m.sqlite")
        s.open()
        await s.close()
    db = Database(tmp_path / "m.sqlite")
    assert migrations.pending(db) == []
    assert [m.name for m in migrations.applied(db)] == [
        "m001_initial",
        "m002_month_totals",
        "m003_month_sync",
        "m004_month_outcome",
        "m005_transfers",
        "m006_tokens",
        "m007_browser_channel",
        "m008_token_directories",
        "m009_subscription_weight",
        "m010_devices",
    ]
    db.close()


async def test_a_single_statement_job_without_savepoint_fails_alone(store: Store) -> None:
    await store.write(_insert_meta("taken"))

    def duplicate(db: Database) -> None:
        db.execute("INSERT INTO meta (key, value) VALUES ('taken', 'again')")  # unique key

    results = await asyncio.gather(
        store.write(_insert_meta("a")),
        store.write(duplicate, savepoint=False),
        store.write(_insert_meta("b")),
        return_exceptions=True,
    )
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], sqlite3.IntegrityError)
    rows = await store.read(lambda db: db.execute("SELECT key, value FROM meta").fetchall())
    assert sorted(tuple(r) for r in rows) == [("a", "x"), ("b", "x"), ("taken", "x")]


async def test_close_ends_the_commit_thread_when_the_last_commit_fails(tmp_path: Path) -> None:
    """A deferred foreign key makes SQLite refuse the COMMIT itself. A close
    waiting for that commit returns, and the commit thread (not a daemon
    thread: one left running keeps the process alive) is gone."""

    def dangling(db: Database) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE IF NOT EXISTS child (parent INTEGER REFERENCES parent (id))")
        db.execute("PRAGMA defer_foreign_keys=ON")
        db.execute("INSERT INTO child (parent) VALUES (42)")

    s = Store(tmp_path / "d.sqlite")
    s.open()
    failing = asyncio.ensure_future(s.write(dangling))
    await asyncio.sleep(0)  # its transaction starts; the COMMIT is under way
    await s.close()
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await failing
    assert not any(t.name == "mecene-commit" for t in threading.enumerate())
