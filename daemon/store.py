"""The daemon's SQLite file: schema migrations, one write connection, group commit.

Every connection runs in WAL mode with `synchronous=FULL`, so a committed
transaction is on disk before `write()` returns: a click acknowledged with a
2xx survives `kill -9` and power loss.

Committing each click alone would cap throughput near the disk's fsync rate,
so writes are grouped: every job waiting when a transaction starts runs in
it (each inside its own savepoint, so a failing job undoes only itself), one
COMMIT makes them all durable, and only then are their futures resolved.

Where the work happens was decided by measurement (bench/click_throughput.py):
with a dedicated writer thread running the jobs, the thread and the event
loop fought over the GIL on every SQLite call and the loop sat idle during
each fsync (about 40 % of the bare-handler rate). Now the jobs, which are
short in-memory SQLite work, run on the event loop, and only the COMMIT —
the fsync, during which the GIL is free — runs in a thread, while the loop
goes on parsing the next requests; those join the next transaction. The one
write connection is still used by one party at a time: never by the loop
while a COMMIT is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database, Migrations

from .diskspace import refusal as disk_full

log = logging.getLogger(__name__)
T = TypeVar("T")
_Job = tuple[Callable[[Database], Any], "asyncio.Future[Any]", bool]  # fn, future, savepoint

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


@migrations()
def m003_month_sync(db: Database) -> None:
    """Sending each closed month to the hub: attempts, the last error, when to
    try again, and the hub's signed receipt with its signature."""
    months = db.table("months")
    months.add_column("sync_attempts", int, not_null_default=0)
    months.add_column("sync_error", str)
    months.add_column("next_sync_at", str)
    months.add_column("receipt_signature", str)
    months.add_column("settled_at", str)


@migrations()
def m004_month_outcome(db: Database) -> None:
    """What happened to a settled month's money since its receipt (credited,
    withheld, escrow, returned), as the hub last said, and when it said so."""
    months = db.table("months")
    months.add_column("outcome", str)
    months.add_column("outcome_at", str)


@migrations()
def m005_transfers(db: Database) -> None:
    """Direct transfers: a one-off amount to one creator, outside the month's
    split. Recorded before they are sent (`sending`), then `given` with the
    hub's signed receipt, or `refused` with the hub's reason."""
    db.table("transfers").create(
        {
            "id": str,  # the client's UUID, also the hub's transfer id
            "month": str,  # the person's month when it was asked for
            "creator": str,
            "url": str,  # NULL with private settlements
            "title": str,
            "note": str,  # a note to self, never sent
            "cents": int,
            "state": str,  # sending | given | refused
            "error": str,
            "message": str,
            "attempts": int,
            "next_attempt_at": str,
            "receipt": str,
            "receipt_signature": str,
            "created_at": str,
            "given_at": str,
        },
        pk="id",
        not_null={"month", "creator", "cents", "state", "attempts", "created_at"},
        defaults={"attempts": 0},
    )
    db.execute("CREATE INDEX transfers_month ON transfers(month)")
    # What a month's transfers give, kept beside its live clicks (m002).
    db.table("months").add_column("given_cents", int, not_null_default=0)
    db.execute(
        "CREATE TRIGGER transfers_given_insert AFTER INSERT ON transfers "
        "WHEN NEW.state != 'refused' "
        "BEGIN UPDATE months SET given_cents = given_cents + NEW.cents "
        "WHERE month = NEW.month; END"
    )
    db.execute(
        "CREATE TRIGGER transfers_given_refused AFTER UPDATE OF state ON transfers "
        "WHEN NEW.state = 'refused' AND OLD.state != 'refused' "
        "BEGIN UPDATE months SET given_cents = given_cents - NEW.cents "
        "WHERE month = NEW.month; END"
    )
    db.execute("CREATE INDEX transfers_sending ON transfers(state) WHERE state = 'sending'")


@migrations()
def m006_tokens(db: Database) -> None:
    """Unlinkable contributions (daemon/unlinkable/): one row per token of a
    month's spend, from its plan at the month's close to its redemption.
    Everything needed to finish a token from the same blinded message is
    written before the hub is asked, so a crash never loses one."""
    db.table("unlinkable_tokens").create(
        {
            "id": str,  # a UUID: the order of the issuance request, and nothing else
            "month": str,
            "creator": str,  # where it will be redeemed; never changes
            "cents": int,  # its denomination
            "state": str,  # planned | blinded | ready | redeemed | failed
            "key_id": str,  # hex, once blinded
            "nonce": str,
            "prefix": str,
            "blinded": str,
            "inv": str,
            "authenticator": str,  # hex, once ready
            "redeem_at": str,  # when it is redeemed (random in the window)
            "attempts": int,
            "error": str,
            "redeemed_at": str,
            "transfer_id": str,  # a direct transfer's tokens; NULL for a month's
        },
        pk="id",
        not_null={"month", "creator", "cents", "state", "attempts"},
        defaults={"attempts": 0},
    )
    # A direct transfer made while the setting is on goes as tokens too.
    db.table("transfers").add_column("unlinkable", int, not_null_default=0)
    db.execute("CREATE INDEX unlinkable_month_state ON unlinkable_tokens(month, state)")
    db.execute(
        "CREATE INDEX unlinkable_ready ON unlinkable_tokens(redeem_at) WHERE state = 'ready'"
    )


@migrations()
def m007_browser_channel(db: Database) -> None:
    """Browsers pair over their channel with a key of their own (daemon/channel.py):
    when each was last used, so the person can tell them apart. A token
    handed out by the HTTP pairing of earlier versions travelled over TCP:
    it is revoked (its browser pairs again, over the channel)."""
    db.table("tokens").add_column("last_used_at", str)
    # Gifts a browser asked for, and those waiting for the person's
    # confirmation (beyond the browsers' daily limit): not given until then.
    db.table("transfers").add_column("from_browser", int, not_null_default=0)
    db.execute("DROP TRIGGER transfers_given_insert")
    db.execute("DROP TRIGGER transfers_given_refused")
    db.execute(
        "CREATE TRIGGER transfers_given_insert AFTER INSERT ON transfers "
        "WHEN NEW.state NOT IN ('refused', 'waiting') "
        "BEGIN UPDATE months SET given_cents = given_cents + NEW.cents "
        "WHERE month = NEW.month; END"
    )
    db.execute(
        "CREATE TRIGGER transfers_given_confirmed AFTER UPDATE OF state ON transfers "
        "WHEN OLD.state = 'waiting' AND NEW.state = 'sending' "
        "BEGIN UPDATE months SET given_cents = given_cents + NEW.cents "
        "WHERE month = NEW.month; END"
    )
    db.execute(
        "CREATE TRIGGER transfers_given_refused AFTER UPDATE OF state ON transfers "
        "WHEN NEW.state = 'refused' AND OLD.state NOT IN ('refused', 'waiting') "
        "BEGIN UPDATE months SET given_cents = given_cents - NEW.cents "
        "WHERE month = NEW.month; END"
    )
    db.execute(
        "UPDATE tokens SET revoked_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') "
        "WHERE revoked_at IS NULL"
    )


@migrations()
def m008_token_directories(db: Database) -> None:
    """Key consistency (issue 27): each month's token key directory as the
    hub signed it, pinned the first time it was seen the same by two paths;
    any other directory for the month is refused. `checked_at`: when it was
    seen again through the second path, before the month's first
    redemption. And each issuance's receipt, the hub's signed word that it
    signed this wallet's tokens under that directory."""
    db.table("token_directories").create(
        {"month": str, "sha256": str, "body": str, "pinned_at": str, "checked_at": str},
        pk="month",
        not_null={"sha256", "body", "pinned_at"},
    )
    db.table("token_receipts").create(
        {"ref": str, "month": str, "receipt": str, "signature": str},
        pk="ref",
        not_null={"month", "receipt", "signature"},
    )


@migrations()
def m009_subscription_weight(db: Database) -> None:
    """A subscription carries a weight (issue 28): its automatic flattrs were
    all placed at weight 1, whatever the thing was flattred at. Existing
    subscriptions keep 1, what they placed until now."""
    db.execute("ALTER TABLE subscriptions ADD COLUMN weight INTEGER NOT NULL DEFAULT 1")


@migrations()
def m010_devices(db: Database) -> None:
    """One wallet on several computers (issue 30). `things`: what a closed
    month's split covered (daemon/records/merge.py, `thing_digest`), so a
    computer that takes in another's settled month knows which of its own
    flattrs it paid. `moved_clicks`: flattrs that reached a month after its
    settlement and went to the open month instead, kept to tell the person."""
    db.table("months").add_column("things", str)
    # When a subscription last changed (made, changed, cancelled): the later
    # change wins between computers.
    db.table("subscriptions").add_column("changed_at", str)
    db.execute("UPDATE subscriptions SET changed_at = created_at")
    db.table("moved_clicks").create(
        {
            "id": str,  # the click's id
            "url": str,
            "title": str,
            "creator": str,
            "from_month": str,
            "to_month": str,  # NULL: already flattred in the open month
            "moved_at": str,
        },
        pk="id",
        not_null={"creator", "from_month", "moved_at"},
    )


# Every migration this version knows: the file's format. A file with any other
# was written by a newer version (its features this one would drop).
KNOWN_MIGRATIONS = frozenset(m.name for m in migrations.pending(Database(memory=True)))


class FileRefused(Exception):
    """A database the daemon must not use: damaged, or written by a newer
    version. The message is one line for a person: which file, why, what to do."""


def one_line(problems: Iterable[str]) -> list[str]:
    """SQLite's integrity report, as phrases for one line ("ok" when whole)."""
    out = []
    for problem in problems:
        text = " ".join(str(problem).replace("*** in database main ***", "").split())
        if text:
            out.append(text)
    return out


def damaged(path: Path, detail: str) -> str:
    return (
        f"{path} is damaged ({detail}); nothing was changed. Restore it from a "
        "backup (`mecene restore --from FILE`) or from the recovery phrase (`mecene restore`)"
    )


def checked_connection(path: Path) -> sqlite3.Connection:
    """A connection to the daemon's database once it is known whole and ours
    to read: SQLite's integrity_check (every page, every index against its table) finds
    a torn or half-copied file before anything is served from it or written
    into it; a migration this version does not know means a newer version
    wrote it."""
    try:
        conn = connect(path)
    except sqlite3.DatabaseError as exc:
        raise FileRefused(damaged(path, str(exc))) from None
    try:
        problems = one_line(row[0] for row in conn.execute("PRAGMA integrity_check(5)"))
        if problems != ["ok"]:
            raise FileRefused(damaged(path, "; ".join(problems[:2])))
        unknown = [
            m.name
            for m in migrations.applied(Database(conn, execute_plugins=False))
            if m.name not in KNOWN_MIGRATIONS
        ]
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise FileRefused(damaged(path, str(exc))) from None
    except FileRefused:
        conn.close()
        raise
    if unknown:
        conn.close()
        raise FileRefused(
            f"{path} was written by a newer version of Mécène (it has {', '.join(unknown)}); "
            "this version would misread it: run the newer version, or restore a backup "
            "this version made"
        )
    return conn


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the pragmas every connection must have."""
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


class Store:
    """Owns the database file. `await store.write(fn)` runs `fn(db)` in a
    transaction and returns once that transaction is committed.

    `fn` runs on the event loop: keep it to SQL work (no network, no sleep).
    Reads go to their own connections in a small thread pool.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: Database | None = None
        self._pending: list[_Job] = []
        self._flush_scheduled = False
        self._inflight: asyncio.Future[None] | None = None  # the COMMIT under way
        # The commit thread takes futures to complete from this queue. A plain
        # queue and call_soon_threadsafe cost the loop a third less than
        # run_in_executor's future chaining, once per transaction.
        self._commits: queue.SimpleQueue[asyncio.Future[None] | None] = queue.SimpleQueue()
        self._committer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mecene-read")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._read_lock = threading.Lock()
        self.batches = 0  # transactions committed: the store's version (GET /changes)
        self.jobs = 0  # jobs committed in them
        self._changed = asyncio.Event()  # set, and replaced, at each commit

    def open(self) -> None:
        """Check the file, bring its schema up to date and start the commit
        thread. A damaged file, or one a newer version wrote, raises
        FileRefused (one line) and leaves the file as it was."""
        conn = checked_connection(self.path)
        db = Database(conn, execute_plugins=False)
        # A larger page cache for the write connection: with SQLite's 2 MB
        # default, the indexes of a busy month no longer fit and every click
        # reads index pages back through the OS.
        db.execute("PRAGMA cache_size=-32768")
        try:
            migrations.apply(db)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise FileRefused(damaged(self.path, str(exc))) from None
        self._db = db
        self._committer = threading.Thread(target=self._commit_loop, name="mecene-commit")
        self._committer.start()

    async def close(self) -> None:
        """Finish every write already asked for, then close the connections.

        A commit that fails on the way (its jobs are told, and the error is
        logged by `_committed`) does not stop the close: the commit thread is
        not a daemon thread, and one left running keeps the process alive."""
        try:
            while self._inflight is not None or self._pending:
                if self._inflight is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(self._inflight)
                else:
                    self._flush()
        finally:
            if self._committer is not None:
                self._commits.put(None)
                self._committer.join()
                self._committer = None
        if self.batches:
            log.debug("%d writes committed in %d transactions", self.jobs, self.batches)
        self._readers.shutdown(wait=True)
        with self._read_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()
        if self._db is not None:
            self._db.close()
            self._db = None

    async def write(self, fn: Callable[[Database], T], *, savepoint: bool = True) -> T:
        """Run `fn(db)` in the next transaction; return once it is committed.

        Each job runs inside its own savepoint, so a job that fails undoes
        only its own writes. A job that makes at most one writing statement
        may pass `savepoint=False`: SQLite undoes a failed statement by
        itself, and the two savepoint statements are a measurable part of a
        click's cost.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, future, savepoint))
        if self._inflight is None and not self._flush_scheduled:
            # Start the transaction once the callbacks already due have run:
            # the requests parsed in this turn of the loop share it.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    async def changed_since(self, version: int, seconds: float, stop: asyncio.Event) -> int:
        """The store's version (its count of committed transactions) once it
        is not `version`, or after `seconds`, or when `stop` is set."""
        if self.batches == version and not stop.is_set():
            changed = self._changed
            waits = [asyncio.ensure_future(e.wait()) for e in (changed, stop)]
            try:
                await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        return self.batches

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

    def _flush(self) -> None:
        """Run every pending job in one transaction and start its COMMIT."""
        self._flush_scheduled = False
        if self._inflight is not None or not self._pending:
            return
        assert self._db is not None, "Store.open() first"
        db, conn = self._db, self._db.conn
        batch, self._pending = self._pending, []
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, _future, savepoint in batch:
                if not savepoint:
                    try:
                        outcomes.append((True, fn(db)))
                    except Exception as exc:  # its one statement was undone by SQLite
                        outcomes.append((False, disk_full(exc) or exc))
                    continue
                # Plain SQL savepoints: sqlite-utils' atomic() draws a random
                # name from os.urandom for each one.
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((True, fn(db)))
                except Exception as exc:  # handed to the job's awaiting coroutine
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((False, disk_full(exc) or exc))
                conn.execute("RELEASE job")
        except Exception as exc:  # the transaction itself failed: nothing is written
            log.error("database write failed: %s", exc)
            if conn.in_transaction:
                conn.rollback()
            _settle(batch, [(False, disk_full(exc) or exc)] * len(batch))
            return
        self._inflight = asyncio.get_running_loop().create_future()
        self._inflight.add_done_callback(lambda done: self._committed(done, batch, outcomes))
        self._commits.put(self._inflight)

    def _commit_loop(self) -> None:
        """The commit thread: COMMIT (the fsync) with the GIL free, then tell the loop."""
        while (done := self._commits.get()) is not None:
            assert self._db is not None
            conn = self._db.conn
            error: BaseException | None = None
            try:
                conn.execute("COMMIT")
            except Exception as exc:
                error = exc
                if conn.in_transaction:
                    conn.rollback()
            done.get_loop().call_soon_threadsafe(_resolve, done, error)

    def _committed(
        self,
        done: asyncio.Future[None],
        batch: list[_Job],
        outcomes: list[tuple[bool, Any]],
    ) -> None:
        self._inflight = None
        exc = done.exception()
        if exc is not None:  # nothing in the batch is durable
            log.error("database commit failed: %s", exc)
            outcomes = [(False, disk_full(exc) or exc)] * len(batch)
        else:
            self.batches += 1
            self.jobs += len(batch)
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()  # GET /api/v1/changes: the dashboard refreshes
        _settle(batch, outcomes)
        if self._pending and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _settle(
    batch: list[_Job],
    outcomes: list[tuple[bool, Any]],
) -> None:
    for (_fn, future, _savepoint), (ok, value) in zip(batch, outcomes, strict=True):
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


# -- meta: the session's own few values (the balance, the hub's pinned key) -------------


def meta_get(db: Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def meta_set(db: Database, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
