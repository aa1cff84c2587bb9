"""The daemon's SQLite file: schema migrations, one writer thread, group commit.

Every connection runs in WAL mode with `synchronous=FULL`, so a committed
transaction is on disk before `write()` returns: a click acknowledged with a
2xx survives `kill -9` and power loss. Committing each click alone would cap
throughput near the disk's fsync rate, so the writer thread takes every job
waiting in its queue and runs them in one transaction (each job inside its own
savepoint, so one failing job does not undo the others), then commits once
and only then resolves the jobs' futures (Datasette's write thread, plus
group commit).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database, Migrations

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BATCH = 512

migrations = Migrations("mecene-daemon")


@migrations()
def m001_initial(db: Database) -> None:
    db.table("months").create(
        {
            "month": str,  # YYYY-MM, the person's time zone
            "state": str,  # open | closed | submitted | settled
            "spend_cents": int,
            "document": str,  # canonical settlement JSON, once closed
            "signature": str,
            "closed_at": str,
            "receipt": str,  # the hub's signed receipt, once settled
        },
        pk="month",
        not_null={"state"},
    )
    db.table("subscriptions").create(
        {
            "id": str,
            "url": str,  # the thing, or NULL for a creator subscription
            "creator": str,
            "title": str,
            "months": int,
            "first_month": str,
            "last_month": str,
            "created_at": str,
            "cancelled_month": str,  # NULL while active
        },
        pk="id",
        not_null={"creator", "months", "first_month", "last_month", "created_at"},
    )
    db.table("clicks").create(
        {
            "id": str,  # the client's UUID
            "month": str,
            "url": str,
            "title": str,
            "creator": str,
            "creators": str,  # JSON list of the page's other creators
            "weight": int,
            "auto": int,
            "subscription_id": str,
            "created_at": str,
            "undone_at": str,
        },
        pk="id",
        not_null={"month", "creator", "weight", "auto", "created_at"},
        foreign_keys=[("month", "months", "month")],
    )
    # flattr_once: one live click per thing per month; a creator subscription
    # (no URL) places one click per creator per month.
    db.execute(
        "CREATE UNIQUE INDEX clicks_once_url ON clicks(month, url) "
        "WHERE undone_at IS NULL AND url IS NOT NULL"
    )
    db.execute(
        "CREATE UNIQUE INDEX clicks_once_creator ON clicks(month, creator) "
        "WHERE undone_at IS NULL AND url IS NULL"
    )
    db.execute(
        "CREATE UNIQUE INDEX clicks_subscription_month ON clicks(subscription_id, month) "
        "WHERE subscription_id IS NOT NULL"
    )
    db.table("clicks").create_index(["month", "created_at"])
    db.table("tokens").create(
        {
            "id": str,
            "name": str,
            "token_hash": str,  # sha256 of the bearer token; the token itself is never stored
            "created_at": str,
            "revoked_at": str,
        },
        pk="id",
        not_null={"name", "token_hash", "created_at"},
    )
    db.table("tokens").create_index(["token_hash"], unique=True)
    db.table("meta").create({"key": str, "value": str}, pk="key")


@migrations()
def m002_month_totals(db: Database) -> None:
    """Live click count and weight per month, kept by triggers.

    Counting a month's clicks on every flattr is O(clicks) and made the
    throughput fall as the month filled up; the triggers keep the totals
    right on every path (manual clicks, undo, subscription clicks).
    """
    db.table("months").add_column("live_clicks", int, not_null_default=0)
    db.table("months").add_column("live_weight", int, not_null_default=0)
    db.execute(
        "UPDATE months SET live_clicks = (SELECT count(*) FROM clicks c WHERE c.month = "
        "months.month AND c.undone_at IS NULL), live_weight = (SELECT coalesce(sum(weight), 0) "
        "FROM clicks c WHERE c.month = months.month AND c.undone_at IS NULL)"
    )
    db.execute(
        "CREATE TRIGGER clicks_live_insert AFTER INSERT ON clicks WHEN NEW.undone_at IS NULL "
        "BEGIN UPDATE months SET live_clicks = live_clicks + 1, "
        "live_weight = live_weight + NEW.weight WHERE month = NEW.month; END"
    )
    db.execute(
        "CREATE TRIGGER clicks_live_undo AFTER UPDATE OF undone_at ON clicks "
        "WHEN OLD.undone_at IS NULL AND NEW.undone_at IS NOT NULL "
        "BEGIN UPDATE months SET live_clicks = live_clicks - 1, "
        "live_weight = live_weight - OLD.weight WHERE month = OLD.month; END"
    )
    db.execute(
        "CREATE TRIGGER clicks_live_delete AFTER DELETE ON clicks WHEN OLD.undone_at IS NULL "
        "BEGIN UPDATE months SET live_clicks = live_clicks - 1, "
        "live_weight = live_weight - OLD.weight WHERE month = OLD.month; END"
    )


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the pragmas every connection must have."""
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


class _Job:
    __slots__ = ("fn", "future", "loop")

    def __init__(
        self,
        fn: Callable[[Database], Any],
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop


_STOP = object()


class Store:
    """Owns the database file. `await store.write(fn)` runs `fn(db)` in the
    writer thread and returns once its transaction is committed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mecene-read")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._read_lock = threading.Lock()
        self.batches = 0  # how many transactions the writer committed (for tests, benchmarks)

    def open(self) -> None:
        db = Database(connect(self.path), execute_plugins=False)
        migrations.apply(db)
        self._thread = threading.Thread(
            target=self._writer, args=(db,), name="mecene-write", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        self._readers.shutdown(wait=True)
        with self._read_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()

    async def write(self, fn: Callable[[Database], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, future, loop))
        return await future

    async def read(self, fn: Callable[[Database], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    def _run_read(self, fn: Callable[[Database], T]) -> T:
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            conn = connect(self.path)
            with self._read_lock:
                self._read_conns.append(conn)
            db = Database(conn, execute_plugins=False)
            self._local.db = db
        return fn(db)

    def _writer(self, db: Database) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[_Job] = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(db, batch)
        db.close()

    def _run_batch(self, db: Database, batch: list[_Job]) -> None:
        conn = db.conn
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                # A savepoint per job: a failing job undoes only itself. (Plain
                # SQL rather than db.atomic(), which draws a random savepoint
                # name from os.urandom for every job.)
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((True, job.fn(db)))
                except Exception as exc:  # handed to the job's awaiting coroutine
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((False, exc))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
            self.batches += 1
        except Exception as exc:  # the commit itself failed: nothing in the batch is durable
            log.error("database commit failed: %s", exc)
            if conn.in_transaction:
                conn.rollback()
            outcomes = [(False, exc)] * len(batch)
        # Wake each waiting event loop once per batch, not once per job.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(_settle_all, settled)


def _settle_all(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
