"""A machine's life, with real processes and real files (issue 26): damaged
and half-copied files, files from another version, a full disk, a new
passphrase under `kill -9`, and a wallet brought back from its recovery
phrase on a new machine.

Every refusal at start is one line on stderr (no traceback), the process
ends (no hang), and the refused file is left exactly as it was."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from daemon import backup, recovery
from daemon.files import DataDir
from daemon.records import sql as records_sql
from daemon.records.link import META, TOKEN_MONTHS, Book
from daemon.wallet import TEST_KDF, Wallet
from mecene.time import add_months
from tests.support.channel import Channel
from tests.support.constants import PASSPHRASE
from tests.support.daemons import Daemon, free_port, mecene, start
from tests.support.hubs import (
    TIME_ZONE,
    HubProcess,
    Person,
    faketime,
    movable_clock,
    offset_to_month_end,
    wait_for,
)


def refused_start(data: Path) -> str:
    """`mecene run` on `data`, which must refuse: its one line."""
    port = free_port()
    done = mecene(data, "run", "--no-tray", "--port", str(port), timeout=60)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("mecene: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flattr(daemon: Daemon, key: str, i: int, channel: Channel | None = None) -> int:
    body = {
        "id": str(uuid.uuid4()),
        "url": f"https://blog.example.org/post/{i}",
        "creator": f"domain:creator{i % 17}.example",
        "weight": 1,
    }
    if channel is not None:
        return channel.call("POST", "/clicks", body, key)[0]
    return daemon.request("POST", "/clicks", body, key)[0]


@pytest.fixture
def used(tmp_path: Path) -> Any:
    """A data directory a daemon has used: a wallet, 60 flattrs, a deposit."""
    data = tmp_path / "mecene"
    assert mecene(data, "init", "--budget", "5", "--time-zone", "UTC").returncode == 0
    daemon = start(data, deposit_cents=2000)
    try:
        key = daemon.pair()
        with Channel(daemon.channel_path) as channel:
            for i in range(60):
                assert flattr(daemon, key, i, channel) == 201
    finally:
        daemon.stop()
    return data


# -- damaged files ------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["a page overwritten", "cut in half", "not a database"])
def test_a_damaged_daemon_database_stops_the_daemon_with_one_line(used: Path, damage: str) -> None:
    db = DataDir(used).database
    blob = bytearray(db.read_bytes())
    assert len(blob) >= 4 * 4096, len(blob)
    if damage == "a page overwritten":
        blob[2 * 4096 : 3 * 4096] = random.Random(1).randbytes(4096)
    elif damage == "cut in half":
        blob = blob[: len(blob) // 2]
    else:
        blob = bytearray(b"this is a letter, not a database\n" * 200)
    db.write_bytes(bytes(blob))
    before = digest(db)
    line = refused_start(used)
    assert str(db) in line and "is damaged" in line and "mecene restore" in line, line
    assert digest(db) == before  # nothing was written into it


def test_a_damaged_embedded_hub_stops_the_daemon_with_one_line(used: Path) -> None:
    hub_db = used / "hub" / "hub.db"
    blob = bytearray(hub_db.read_bytes())
    blob[len(blob) // 2 :] = bytes(len(blob) - len(blob) // 2)  # zeroed from the middle on
    hub_db.write_bytes(bytes(blob))
    line = refused_start(used)
    assert "hub's database" in line and "is damaged" in line, line


def test_a_truncated_wallet_is_damaged_not_a_wrong_passphrase(used: Path) -> None:
    wallet = DataDir(used).wallet
    wallet.write_bytes(wallet.read_bytes()[: wallet.stat().st_size // 2])
    line = refused_start(used)
    assert "is damaged" in line and "passphrase" not in line, line


# -- a backup tool copying a running daemon, file by file --------------------------------


def whole(directory: Path) -> bool:
    """Whether SQLite finds both databases of a copied data directory whole
    (on a scratch copy: opening one may apply its WAL)."""
    scratch = directory.parent / f"{directory.name}-scratch"
    shutil.copytree(directory, scratch)
    try:
        for db in (scratch / "daemon.sqlite", scratch / "hub" / "hub.db"):
            try:
                conn = sqlite3.connect(db)
                try:
                    if conn.execute("PRAGMA integrity_check").fetchall() != [("ok",)]:
                        return False
                finally:
                    conn.close()
            except sqlite3.DatabaseError:
                return False
        return True
    finally:
        shutil.rmtree(scratch)


def copy_file_by_file(data: Path, into: Path) -> None:
    """As rsync or a backup tool does: one file after another, while they change."""
    for path in sorted(data.rglob("*")):
        if path.is_file() and path.name not in (
            "channel.sock",
            "daemon.lock",
            "admin.token",
            "daemon.json",
        ):
            target = into / path.relative_to(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError), path.open("rb") as src:
                with target.open("wb") as out:
                    # In pieces, as a backup tool reads a busy disk: the
                    # daemon goes on writing (and checkpointing) meanwhile.
                    while piece := src.read(32768):
                        out.write(piece)
                        time.sleep(0.002)


def test_file_copies_of_a_running_daemon_are_used_only_when_whole(used: Path) -> None:
    """During a flood of flattrs, the data directory is copied file by file
    several times. SQLite itself (on a scratch copy) says which copies are
    whole; the daemon must start on exactly those, and refuse every other
    one in one line, naming the damaged file."""
    daemon = start(used)
    copies: list[Path] = []
    stop = threading.Event()
    try:
        key = daemon.pair()

        def flood() -> None:
            with Channel(daemon.channel_path) as channel:
                i = 1000
                while not stop.is_set():
                    flattr(daemon, key, i, channel)
                    i += 1

        threads = [threading.Thread(target=flood) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for n in range(6):
                copy = used.parent / f"copy-{n}"
                copy_file_by_file(used, copy)
                copies.append(copy)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
    finally:
        daemon.stop()
    outcomes = []
    for copy in copies:
        expected = whole(copy)
        # Each copy lives in another folder: its practice hub waits to be adopted.
        assert "is a copy" in refused_start(copy)
        assert mecene(copy, "hub", "adopt").returncode == 0
        if expected:
            running = start(copy)
            try:
                assert running.admin("GET", "/clicks")[0] == 200
            finally:
                running.stop()
        else:
            line = refused_start(copy)
            assert "is damaged" in line, line
        outcomes.append(expected)
    print("copies whole:", outcomes)


def test_a_copy_torn_by_a_checkpoint_is_refused_at_start(used: Path) -> None:
    """What a backup tool does to a running daemon, made certain: the first
    half of `daemon.sqlite` is read, SQLite checkpoints its WAL into the file
    and empties it (another process may, as the daemon does itself), then the
    rest is read. (A checkpoint that leaves the WAL in place is harmless: the
    copied WAL brings the first half up to date.)
    The copy mixes two states of the file: the daemon refuses it in one line."""
    daemon = start(used)
    torn = used.parent / "torn"
    try:
        key = daemon.pair()
        with Channel(daemon.channel_path) as channel:
            for i in range(1000, 1400):  # pages in the WAL, not yet in the file
                assert flattr(daemon, key, i, channel) == 201
        db = DataDir(used).database
        torn.mkdir()
        shutil.copytree(used / "hub", torn / "hub")
        shutil.copyfile(DataDir(used).wallet, DataDir(torn).wallet)
        size = db.stat().st_size
        with db.open("rb") as src, (torn / db.name).open("wb") as out:
            out.write(src.read(size // 2))
            conn = sqlite3.connect(db)
            try:
                (busy, _log, _done) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                assert busy == 0
            finally:
                conn.close()
            src.seek(size // 2)
            out.write(src.read())
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(f"{db}{suffix}", torn / f"{db.name}{suffix}")
    finally:
        daemon.stop()
    assert not whole(torn)  # SQLite itself says so
    # Made in another folder, the copy's practice hub waits to be adopted first.
    assert mecene(torn, "hub", "adopt").returncode == 0
    line = refused_start(torn)
    assert "daemon.sqlite is damaged" in line, line


# -- another version's files ---------------------------------------------------------------


def test_files_from_a_newer_version_are_refused_in_one_line(used: Path) -> None:
    db = DataDir(used).database
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('mecene-daemon', 'm099_devices', '2027-06-01 00:00:00')"
        )
    conn.close()
    line = refused_start(used)
    assert "newer version" in line and "m099_devices" in line and str(db) in line, line
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm099_devices'")
    conn.close()

    hub_db = used / "hub" / "hub.db"
    conn = sqlite3.connect(hub_db)
    with conn:
        (was,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        conn.execute("UPDATE alembic_version SET version_num = '0099_future'")
    conn.close()
    line = refused_start(used)
    assert "hub's database" in line and "newer version" in line and "0099_future" in line, line
    conn = sqlite3.connect(hub_db)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", [was])
    conn.close()

    wallet = DataDir(used).wallet
    blob = bytearray(wallet.read_bytes())
    blob[8] = 7
    wallet.write_bytes(bytes(blob))
    line = refused_start(used)
    assert "newer version" in line and "format 7" in line, line


# -- a full disk ----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A real file system of 24 MiB (tmpfs), mounted for the test; it needs
    root, which the project's test machines have."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    # Unbuffered: a buffered file keeps what did not fit and raises ENOSPC
    # again when it is closed.
    with filler.open("wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    return filler


def test_a_full_disk_refuses_writes_with_507_and_keeps_reading(small_disk: Path) -> None:
    data = small_disk / "mecene"
    assert mecene(data, "init", "--budget", "5", "--time-zone", "UTC").returncode == 0
    daemon = start(data, deposit_cents=2000)
    try:
        key = daemon.pair()
        for i in range(5):
            assert flattr(daemon, key, i) == 201
        filler = fill(small_disk)
        refused = []
        for i in range(5, 40):  # until SQLite's own free pages are used up too
            status = flattr(daemon, key, i)
            if status != 201:
                refused.append(status)
        assert refused and set(refused) == {507}, refused
        body = {
            "id": str(uuid.uuid4()),
            "url": "https://blog.example.org/x",
            "creator": "domain:x.example",
            "weight": 1,
        }
        status, out = daemon.request("POST", "/clicks", body, key)
        assert (status, out["error"]) == (507, "disk_full") and "disk is full" in out["message"]
        # Reads keep working: the month, the clicks, the dashboard's status.
        for path in ("/status", "/clicks", "/months"):
            status, _ = daemon.admin("GET", path)
            assert status == 200, path
        assert daemon.request("GET", "/status", token=key)[0] == 200
        status, out = daemon.admin("PATCH", "/settings", {"budget_cents": 700})
        assert (status, out.get("error")) == (507, "disk_full"), out
        filler.unlink()
        assert daemon.request("POST", "/clicks", body, key)[0] == 201
        clicks = daemon.admin("GET", "/clicks")[1]["clicks"]
        urls = {c["url"] for c in clicks}
        assert "https://blog.example.org/x" in urls
        assert {f"https://blog.example.org/post/{i}" for i in range(5)} <= urls
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log


# -- a new passphrase, killed at any moment ------------------------------------------------

CHANGER = """
import sys
from daemon.wallet import Wallet, TEST_KDF
path, old, new = sys.argv[1:]
wallet = Wallet.open(__import__("pathlib").Path(path), old)
while True:
    wallet.change_passphrase(new, kdf=TEST_KDF)
    wallet.change_passphrase(old, kdf=TEST_KDF)
"""


def test_a_passphrase_change_killed_at_any_moment_leaves_one_that_works(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "mecene")
    data.create()
    first = Wallet.create(data.wallet, PASSPHRASE, kdf=TEST_KDF)
    rng = random.Random(26)
    for _ in range(25):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHANGER, str(data.wallet), PASSPHRASE, "the new passphrase"],
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        opened = []
        for passphrase in (PASSPHRASE, "the new passphrase"):
            with contextlib.suppress(Exception):
                opened.append(Wallet.open(data.wallet, passphrase).account)
        assert opened == [first.account], opened  # exactly one of the two opens it
    leftovers = [p.name for p in data.root.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 1  # a temp file the kill left is never read


def test_mecene_passwd_goes_through_the_running_daemon(used: Path) -> None:
    """The daemon holds the wallet: the change is made by it, so a later
    save of its own (a new budget) keeps the new passphrase."""
    daemon = start(used)
    try:
        env_new = {"MECENE_NEW_PASSPHRASE": "a new passphrase for it"}
        done = mecene(used, "passwd", env_extra=env_new)
        assert done.returncode == 0, done.stderr
        assert daemon.admin("PATCH", "/settings", {"budget_cents": 800})[0] == 200
        wrong = mecene(used, "passwd", passphrase="not it at all", env_extra=env_new)
        assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    finally:
        daemon.stop()
    wallet = Wallet.open(DataDir(used).wallet, "a new passphrase for it")
    assert wallet.settings.budget_cents == 800
    line = refused_start(used)  # the old passphrase no longer opens it
    assert "wrong passphrase" in line, line


# -- a dead disk: the recovery phrase --------------------------------------------------------


def test_a_hub_on_a_full_disk_answers_507_and_keeps_reading(small_disk: Path) -> None:
    """The hub (the same code embedded in every daemon) on a disk that fills
    up: each write is refused with 507 `disk_full` and a Retry-After, which
    daemons take as "try again"; reads go on; nothing half-written stays;
    its log says it in one line, no traceback; once there is space, it
    writes again."""
    hub = HubProcess(small_disk / "hub", free_port(), []).start()
    person = Person.new()

    def deposit() -> tuple[int, Any]:
        body = {"id": uuid.uuid4().hex, "method": "bank", "amount_cents": 500, "fee_cents": 32}
        return hub.call(person, "POST", "/v1/deposits", body, 0)

    try:
        assert deposit()[0] == 201
        filler = fill(small_disk)
        answers = [deposit() for _ in range(40)]  # until SQLite's free pages are used up
        refused = [(status, out) for status, out in answers if status != 201]
        assert refused, "the hub never ran out of space"
        assert {(s, out["error"]) for s, out in refused} == {(507, "disk_full")}, refused
        assert "disk is full" in refused[0][1]["message"]
        accepted = 1 + len(answers) - len(refused)
        status, account = hub.call(person, "GET", "/v1/account", None, 0)
        if status == 200:  # a signed read spends a nonce: it may be refused too
            assert account["balance_cents"] == accepted * 500
        else:
            assert status == 507
        with urllib.request.urlopen(hub.url + "/v1", timeout=10) as resp:
            assert resp.status == 200
        filler.unlink()
        assert deposit()[0] == 201
        status, account = hub.call(person, "GET", "/v1/account", None, 0)
        assert (status, account["balance_cents"]) == (200, (accepted + 1) * 500)
    finally:
        hub.stop()
    log = hub.log.read_text()
    assert "Traceback" not in log, log
    assert "the disk is full" in log


def test_the_recovery_phrase_brings_the_account_back_on_a_new_machine(tmp_path: Path) -> None:
    """A wallet at a real hub, with a balance and a creator account; its disk
    is lost. On a new data directory, `mecene restore` with the phrase shown
    by `mecene recovery show` is the same account: the balance is back."""
    hub = HubProcess(tmp_path / "hub", free_port(), []).start()
    try:
        old = tmp_path / "old"
        init = mecene(old, "init", "--budget", "5", "--time-zone", "UTC")
        assert init.returncode == 0 and "recovery show" in init.stdout  # not shown: no terminal
        daemon = start(old, args=["--hub", hub.url], deposit_cents=1500)
        try:
            status, me = daemon.admin("GET", "/status")
            assert status == 200
            assert me["balance_cents"] == 1500
        finally:
            daemon.stop()
        shown = mecene(old, "recovery", "show")
        assert shown.returncode == 0, shown.stderr
        # As the person copies it: the numbered words.
        phrase = " ".join(re.findall(r"\b\d+\. ([a-z]+)", shown.stdout))
        assert recovery.seed_of(phrase) == Wallet.open(DataDir(old).wallet, PASSPHRASE).data.seed
        shutil.rmtree(old)  # the dead disk

        new = tmp_path / "new"
        short = " ".join(phrase.split()[:-1])
        bad = mecene(new, "restore", env_extra={"MECENE_RECOVERY_PHRASE": short})
        assert bad.returncode == 1 and "24 words" in bad.stderr and not DataDir(new).wallet.exists()
        done = mecene(
            new,
            "restore",
            passphrase="another passphrase",
            env_extra={"MECENE_RECOVERY_PHRASE": phrase.upper()},
        )
        assert done.returncode == 0, done.stderr
        restored = Wallet.open(DataDir(new).wallet, "another passphrase")
        assert restored.account in done.stdout
        daemon = start(new, args=["--hub", hub.url], passphrase="another passphrase")
        try:
            # The balance is the hub's: it comes with the daemon's first call there.
            wait_for(
                lambda: daemon.admin("GET", "/status")[1]["balance_cents"] == 1500,
                "the balance back from the hub",
            )
        finally:
            daemon.stop()
    finally:
        hub.stop()


def _records_kept(data: Path, name: str) -> bool:
    """Whether `data`'s daemon has kept its `name` record at the hub as its
    database holds it now (the fingerprint it last sent is today's)."""

    conn = sqlite3.connect(f"file:{DataDir(data).database}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        db = Database(conn)
        row = conn.execute("SELECT value FROM meta WHERE key = ?", [META]).fetchone()
        book = Book.parse(row[0] if row else None)
        open_month = conn.execute("SELECT max(month) FROM months").fetchone()[0]
        _record, fingerprint, _urgent = records_sql.tokens(
            db, add_months(open_month, -TOKEN_MONTHS)
        )
    finally:
        conn.close()
    return name in book.kept and book.of(name).fingerprint == fingerprint


def test_a_restore_from_the_phrase_brings_back_a_month_of_money_and_its_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A month with flattrs, a subscription, a gift, a flattr id, changed
    settings, and its unlinkable tokens signed and waiting to be redeemed.
    The disk dies (kill -9, the directory gone). On a new data directory,
    the recovery phrase brings it all back from the hub's encrypted records:
    balance, receipts, subscription, settings, the flattr id, and every
    token, which the new daemon redeems. Every cent at the hub is accounted
    for, and each token was spent once."""
    monkeypatch.setenv("MECENE_REDEEM_WINDOW_SECONDS", "25")
    monkeypatch.setenv("MECENE_TOKEN_GAP_SECONDS", "0.5")  # apart from signed calls, briefly
    offset, month = offset_to_month_end(14)
    boundary_at = time.monotonic() + 14
    prefix = faketime(offset)
    hub = HubProcess(tmp_path / "hub", free_port(), prefix).start()
    old, new = tmp_path / "old", tmp_path / "new"
    try:
        init = mecene(old, "init", "--budget", "7", "--time-zone", TIME_ZONE)
        assert init.returncode == 0, init.stderr
        args = ["--hub", hub.url]
        daemon = start(old, args=args, prefix=prefix, deposit_cents=2000)
        try:
            changes = {"unlinkable": True, "browser_gift_limit_cents": 900}
            status, out = daemon.admin("PATCH", "/settings", changes)
            assert status == 200, out
            key = daemon.pair()
            for n, creator in enumerate(["domain:one.example", "domain:two.example"]):
                body = {
                    "id": str(uuid.uuid4()),
                    "url": f"https://{creator[7:]}/{n}",
                    "creator": creator,
                }
                assert daemon.request("POST", "/clicks", body, key)[0] == 201
            sub = {"url": "https://one.example/0", "creator": "domain:one.example", "months": 3}
            status, subscribed = daemon.admin("POST", "/subscriptions", sub)
            assert status in (200, 201), subscribed
            gift = {"id": str(uuid.uuid4()), "creator": "domain:three.example", "cents": 300}
            status, given = daemon.admin("POST", "/transfers", gift)
            assert status in (201, 202), given
            status, flattr_id = daemon.admin("POST", "/hub/flattr-ids", {})
            assert status == 201, flattr_id
            assert boundary_at - time.monotonic() > 1, "too slow to set up before the month ends"

            def tokens_of_month() -> dict[str, Any]:
                status, view = daemon.admin("GET", f"/months/{month}")
                assert status == 200, view
                return dict(view.get("tokens") or {})

            # Settled and signed; some tokens may be spent already, most wait.
            wait_for(
                lambda: set(tokens_of_month()) and set(tokens_of_month()) <= {"ready", "redeemed"},
                "the month's tokens signed",
                timeout=90,
            )
            wait_for(lambda: _records_kept(old, "tokens"), "the tokens kept at the hub")
            status, before = daemon.admin("GET", f"/months/{month}")
            assert "ready" in before["tokens"], "the window passed before the disk died"
            shown = mecene(old, "recovery", "show")
            assert shown.returncode == 0, shown.stderr
        finally:
            daemon.kill()  # the disk dies under a running daemon
        phrase = " ".join(re.findall(r"\b\d+\. ([a-z]+)", shown.stdout))
        shutil.rmtree(old)

        done = mecene(new, "restore", env_extra={"MECENE_RECOVERY_PHRASE": phrase})
        assert done.returncode == 0, done.stderr
        daemon = start(new, args=args, prefix=prefix)
        try:
            wait_for(
                lambda: daemon.admin("GET", "/hub")[1]["hub"]["records"]["restoring"] is False,
                "the records fetched",
            )
            settings = daemon.admin("GET", "/settings")[1]["settings"]
            assert (settings["unlinkable"], settings["browser_gift_limit_cents"]) == (True, 900)
            assert (settings["budget_cents"], settings["time_zone"]) == (700, TIME_ZONE)
            subs = daemon.admin("GET", "/subscriptions")[1]["subscriptions"]
            assert [(s["id"], s["state"]) for s in subs] == [
                (subscribed["subscription"]["id"], "active")
            ]
            transfers = daemon.admin("GET", "/transfers")[1]["transfers"]
            assert [(t["id"], t["state"]) for t in transfers] == [(gift["id"], "given")]
            status, again = daemon.admin("POST", "/hub/flattr-ids", {})
            assert (status, again["key"]) == (200, flattr_id["key"])
            after = daemon.admin("GET", f"/months/{month}")[1]
            assert (after["state"], after["receipt"]) == ("settled", before["receipt"])
            hub_balance = daemon.admin("GET", "/hub/account")[1]["balance_cents"]
            wait_for(
                lambda: daemon.admin("GET", "/status")[1]["balance_cents"] == hub_balance,
                "the balance back from the hub",
            )
            # Every token comes back and is spent, by whichever daemon got there.
            wait_for(
                lambda: set(daemon.admin("GET", f"/months/{month}")[1]["tokens"]) == {"redeemed"},
                "every token of the month redeemed",
                timeout=90,
            )
            tokens = daemon.admin("GET", f"/months/{month}")[1]["tokens"]
            assert tokens["redeemed"]["cents"] == before["spend_cents"]
            # What the gift's batch left came back too, held for the next gift.
            held = daemon.admin("GET", "/hub")[1]["hub"]["gift_tokens_cents"]
        finally:
            daemon.stop()
        conn = sqlite3.connect(tmp_path / "hub" / "hub.db")
        try:
            spent = conn.execute("SELECT count(*), sum(cents) FROM spent_tokens").fetchone()
            issued = conn.execute("SELECT sum(tokens), sum(cents) FROM token_issues").fetchone()
        finally:
            conn.close()
        # The month's tokens and the gift's batch (5 €): each issued once; the
        # month's and the gift's spent once each; the rest held, none lost.
        assert issued[1] == before["spend_cents"] + 500
        assert spent[1] == before["spend_cents"] + gift["cents"]
        assert (issued[0] - spent[0], issued[1] - spent[1]) == (held // 10, held)
        check = hub.cli("check")
        assert check.returncode == 0, check.stderr
        assert json.loads(check.stdout)["sum_cents"] == 0
    finally:
        hub.stop()


# -- backups that restore ----------------------------------------------------------------------


def test_mecene_backup_taken_during_a_flood_restores_intact_20_times(used: Path) -> None:
    """`mecene backup` while three browsers' worth of flattrs pour in: each
    of 20 backups opens, every database in it is whole, and it holds every
    flattr acknowledged before it began. One is restored with `mecene
    restore --from` and a daemon runs on it."""
    daemon = start(used)
    stop = threading.Event()
    acknowledged: list[str] = []
    taken: list[tuple[Path, int]] = []
    try:
        key = daemon.pair()

        def flood(n: int) -> None:
            with Channel(daemon.channel_path) as channel:
                i = 10_000 * (n + 1)
                while not stop.is_set():
                    url = f"https://blog.example.org/flood/{i}"
                    body = {
                        "id": str(uuid.uuid4()),
                        "url": url,
                        "creator": "domain:a.example",
                        "weight": 1,
                    }
                    if channel.call("POST", "/clicks", body, key)[0] == 201:
                        acknowledged.append(url)
                    i += 1

        threads = [threading.Thread(target=flood, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        try:
            for n in range(20):
                before = len(acknowledged)
                target = used.parent / f"backup-{n}.mecene-backup"
                done = mecene(used, "backup", str(target))
                assert done.returncode == 0, done.stderr
                taken.append((target, before))
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        balance = daemon.admin("GET", "/status")[1]["balance_cents"]
    finally:
        daemon.stop()
    assert len(acknowledged) > taken[-1][1] > taken[0][1]  # flattrs came in all along
    for n, (target, before) in enumerate(taken):
        opened = backup.open_backup(target, passphrase=PASSPHRASE)
        scratch = used.parent / f"check-{n}"
        scratch.mkdir()
        backup.check_databases(opened, scratch)
        conn = sqlite3.connect(scratch / "daemon.sqlite")
        try:
            urls = {row[0] for row in conn.execute("SELECT url FROM clicks")}
        finally:
            conn.close()
        assert set(acknowledged[:before]) <= urls, n
        assert urls <= set(acknowledged) | {f"https://blog.example.org/post/{i}" for i in range(60)}
    restored = used.parent / "restored"
    done = mecene(restored, "restore", "--from", str(taken[-1][0]))
    assert done.returncode == 0, done.stderr
    assert "mecene hub adopt" in done.stdout  # restored elsewhere: the person chooses
    assert mecene(restored, "hub", "adopt").returncode == 0
    again = start(restored)
    try:
        clicks = again.admin("GET", "/clicks")[1]["clicks"]
        assert {c["url"] for c in clicks} >= set(acknowledged[: taken[-1][1]])
        assert again.admin("GET", "/status")[1]["balance_cents"] == balance
    finally:
        again.stop()


def test_a_damaged_backup_is_refused_before_anything_is_replaced(used: Path) -> None:
    target = used.parent / "one.mecene-backup"
    assert mecene(used, "backup", str(target)).returncode == 0

    def files() -> dict[str, str]:  # the lock file holds the pid of its last holder
        return {p.name: digest(p) for p in used.iterdir() if p.is_file() and p.suffix != ".lock"}

    before = files()
    blob = bytearray(target.read_bytes())
    for where in (len(blob) - 100, len(blob) // 2, 12):
        changed = bytearray(blob)
        changed[where] ^= 0x01
        bad = used.parent / f"bad-{where}"
        bad.write_bytes(bytes(changed))
        done = mecene(used, "restore", "--from", str(bad), "--replace")
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert "damaged" in done.stderr or "wrong passphrase" in done.stderr, done.stderr
    cut = used.parent / "cut"
    cut.write_bytes(bytes(blob[: len(blob) // 3]))
    done = mecene(used, "restore", "--from", str(cut), "--replace")
    assert done.returncode == 1 and "damaged" in done.stderr, done.stderr
    assert files() == before
    assert not [p for p in used.iterdir() if p.name.startswith("replaced-")]
    # Without --replace, a data directory with a wallet is never overwritten.
    done = mecene(used, "restore", "--from", str(target))
    assert done.returncode == 1 and "--replace" in done.stderr


def test_a_backup_restores_with_the_recovery_phrase_and_replaces_what_was_there(
    used: Path,
) -> None:
    target = used.parent / "one.mecene-backup"
    assert mecene(used, "backup", str(target)).returncode == 0
    account = Wallet.open(DataDir(used).wallet, PASSPHRASE).account
    phrase = recovery.phrase_of(Wallet.open(DataDir(used).wallet, PASSPHRASE).data.seed)
    other = used.parent / "other"
    assert mecene(other, "init", "--budget", "5").returncode == 0
    done = mecene(
        other,
        *("restore", "--from", str(target), "--replace"),
        passphrase="brand new one",
        env_extra={"MECENE_RECOVERY_PHRASE": phrase},
    )
    assert done.returncode == 0, done.stderr
    assert Wallet.open(DataDir(other).wallet, "brand new one").account == account
    (aside,) = [p for p in other.iterdir() if p.name.startswith("replaced-")]
    assert (aside / "wallet.mecene").exists()  # the wallet it replaced, kept
    assert mecene(other, "hub", "adopt").returncode == 0
    daemon = start(other, passphrase="brand new one")
    try:
        assert len(daemon.admin("GET", "/clicks")[1]["clicks"]) == 60
    finally:
        daemon.stop()


# -- one ledger, never two -------------------------------------------------------------------


def test_a_copied_data_directory_cannot_spend_one_deposit_twice(used: Path) -> None:
    """The data directory (a 20 € deposit at its practice hub) copied to a
    laptop, and restored from a backup elsewhere: neither copy serves until
    the person adopts it; the original goes on."""
    laptop = used.parent / "laptop"
    shutil.copytree(used, laptop)
    target = used.parent / "one.mecene-backup"
    assert mecene(used, "backup", str(target)).returncode == 0
    restored = used.parent / "restored"
    assert mecene(restored, "restore", "--from", str(target)).returncode == 0
    for copy in (laptop, restored):
        line = refused_start(copy)
        assert "is a copy" in line and f"mecene hub adopt --data-dir {copy}" in line, line
    original = start(used)
    try:
        assert original.admin("GET", "/status")[1]["balance_cents"] == 2000
    finally:
        original.stop()
    # The person chose the laptop: it serves, with the same balance.
    adopted = mecene(laptop, "hub", "adopt")
    assert adopted.returncode == 0 and "live one" in adopted.stdout, adopted.stderr
    copy = start(laptop)
    try:
        assert copy.admin("GET", "/status")[1]["balance_cents"] == 2000
    finally:
        copy.stop()


def test_a_practice_hub_from_before_identities_is_adopted_where_it_is(used: Path) -> None:
    hub_db = used / "hub" / "hub.db"

    def ledger_in_db() -> int:
        conn = sqlite3.connect(hub_db)
        try:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()

    # Its ledger.json lost, while hub.db names a ledger: it cannot tell, so it asks.
    (used / "hub" / "ledger.json").unlink()
    assert "ledger.json is missing" in refused_start(used)
    # As an earlier version left it: no identity anywhere.
    conn = sqlite3.connect(hub_db)
    with conn:
        conn.execute("PRAGMA user_version = 0")
    conn.close()
    daemon = start(used)
    daemon.stop()
    ledger = json.loads((used / "hub" / "ledger.json").read_text())
    assert ledger["path"] == os.path.realpath(used / "hub")
    assert ledger["ledger"] == ledger_in_db() != 0


# -- a clock that jumps ------------------------------------------------------------------------

NINETY_DAYS = 90 * 24 * 3600


def month_states(daemon: Daemon) -> dict[str, str]:
    return {m["month"]: m["state"] for m in daemon.admin("GET", "/months")[1]["months"]}


def test_a_clock_moved_ahead_and_back_while_running_closes_nothing(used: Path) -> None:
    """With the embedded hub: +90 days while the daemon runs settled December
    ten days early, then January and February, each with a subscription's
    charge. Now: nothing closes, the status says why, flattrs go on; set
    back, nothing was closed and, after a restart, no flattr is refused."""
    control = used.parent / "faketime"
    daemon = start(used, prefix=movable_clock(control))
    try:
        key = daemon.pair()
        before = month_states(daemon)
        (month,) = [m for m, state in before.items() if state == "open"]
        control.write_text("+90d\n")
        status = wait_for(
            lambda: (s := daemon.admin("GET", "/status")[1])["clock"]["state"] == "held" and s,
            "the hold",
        )
        assert "jumped" in status["clock"]["message"]
        assert flattr(daemon, key, 500) == 201
        assert month_states(daemon) == before  # nothing closed
        control.write_text("+0\n")
        wait_for(
            lambda: daemon.admin("GET", "/status")[1]["clock"]["state"] == "ok", "the clock right"
        )
        assert month_states(daemon) == before
    finally:
        daemon.stop()
    daemon = start(used, prefix=movable_clock(control))
    try:
        assert flattr(daemon, key, 501) == 201  # never refused
        clicks = daemon.admin("GET", "/clicks")[1]
        assert clicks["month"] == month and len(clicks["clicks"]) == 62
    finally:
        daemon.stop()


def test_a_clock_ahead_of_the_hub_across_a_restart_holds_the_months(tmp_path: Path) -> None:
    """A remote hub on the right time; the daemon restarted with its clock
    90 days ahead (a bad battery, a wrong setting): it closes nothing, says
    so, and closes the months once the person confirms the date."""
    hub = HubProcess(tmp_path / "hub", free_port(), []).start()
    data = tmp_path / "mecene"
    try:
        assert mecene(data, "init", "--budget", "5", "--time-zone", "UTC").returncode == 0
        daemon = start(data, args=["--hub", hub.url], deposit_cents=2000)
        try:
            key = daemon.pair()
            assert flattr(daemon, key, 1) == 201
            before = month_states(daemon)
        finally:
            daemon.stop()
        daemon = start(data, args=["--hub", hub.url], prefix=faketime(NINETY_DAYS))
        try:
            status = wait_for(
                lambda: (
                    (s := daemon.admin("GET", "/status")[1])["clock"]["state"] == "held"
                    and "ahead of the hub" in s["clock"]["message"]
                    and s
                ),
                "the hold",
            )
            assert "90 days ahead" in status["clock"]["message"]
            assert month_states(daemon) == before  # nothing closed, nothing sent
            shown = mecene(data, "status")
            assert "mecene clock confirm" in shown.stdout, shown.stdout
            confirmed = mecene(data, "clock", "confirm")
            assert confirmed.returncode == 0, confirmed.stderr
            closed = month_states(daemon)
            assert [closed[m] for m in before] != ["open"] * len(before)
        finally:
            daemon.stop()
    finally:
        hub.stop()


# -- an older version's files --------------------------------------------------------------

# The last version before the browsers' channel, the wallet's format 2 and
# the checks at start (issue 24's end): its files, made by its own processes.
OLDER = "8d5ad6d"
OLDER_SCRIPT = """
import json, sys, uuid
from pathlib import Path
from tests.support.daemons import mecene, start
data = Path(sys.argv[1])
assert mecene(data, "init", "--budget", "7.50", "--time-zone", "UTC").returncode == 0
daemon = start(data, deposit_cents=3000)
try:
    token = daemon.pair()
    ids = []
    for i in range(12):
        body = {"id": str(uuid.uuid4()), "url": f"https://old.example.org/{i}",
                "creator": f"domain:creator{i % 3}.example", "weight": 1 + i % 3}
        status, out = daemon.request("POST", "/clicks", body, token)
        assert status == 201, out
        ids.append(body["id"])
    gift = mecene(data, "give", "domain:creator0.example", "2.50", "--yes", "--note", "old")
    assert gift.returncode == 0, gift.stderr
    print(json.dumps({"ids": ids}))
finally:
    daemon.stop()
"""


def test_an_older_versions_files_migrate_intact_and_it_refuses_the_new_ones(
    tmp_path: Path,
) -> None:
    """Files made by the version of `OLDER` (checked out from this
    repository's history, run as its own processes): this version starts on
    them with every flattr, gift, setting and the balance intact, field by
    field, and writes its wallet as format 2, which the older version then
    refuses in one line."""
    root = Path(__file__).resolve().parents[2]
    older = tmp_path / "older"
    added = subprocess.run(
        ["git", "-C", str(root), "worktree", "add", "--detach", str(older), OLDER],
        capture_output=True,
        text=True,
    )
    if added.returncode != 0:
        pytest.skip(f"this checkout has no history to take {OLDER} from: {added.stderr.strip()}")
    data = tmp_path / "mecene"
    try:
        env = {**os.environ, "PYTHONPATH": str(older)}
        made = subprocess.run(
            [sys.executable, "-c", OLDER_SCRIPT, str(data)],
            cwd=str(older),
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert made.returncode == 0, made.stderr[-3000:]
        ids = json.loads(made.stdout.strip().splitlines()[-1])["ids"]

        def rows(sql: str) -> list[tuple[Any, ...]]:
            conn = sqlite3.connect(DataDir(data).database)
            try:
                return conn.execute(sql).fetchall()
            finally:
                conn.close()

        clicks_before = rows(
            "SELECT id, month, url, creator, weight, created_at FROM clicks ORDER BY id"
        )
        months_before = rows("SELECT month, state, live_clicks, live_weight FROM months")
        gifts_before = rows("SELECT id, creator, cents, state, note FROM transfers")
        assert DataDir(data).wallet.read_bytes()[8] == 1  # the older format
        assert sorted(c[0] for c in clicks_before) == sorted(ids)

        daemon = start(data)
        try:
            status = daemon.admin("GET", "/status")[1]
            assert (status["budget_cents"], status["balance_cents"]) == (750, 2750)
            settings = daemon.admin("GET", "/settings")[1]["settings"]
            assert (settings["budget_cents"], settings["time_zone"]) == (750, "UTC")
            clicks = {c["id"]: c for c in daemon.admin("GET", "/clicks")[1]["clicks"]}
            assert set(clicks) == set(ids)
        finally:
            daemon.stop()
        assert (
            rows("SELECT id, month, url, creator, weight, created_at FROM clicks ORDER BY id")
            == clicks_before
        )
        assert rows("SELECT month, state, live_clicks, live_weight FROM months") == months_before
        assert rows("SELECT id, creator, cents, state, note FROM transfers") == gifts_before
        # The older browser's token travelled over TCP: revoked (m007).
        assert rows("SELECT count(*) FROM tokens WHERE revoked_at IS NULL") == [(0,)]
        assert DataDir(data).wallet.read_bytes()[8] == 2

        # The older version, started on what this one wrote: refused, in one line.
        port = free_port()
        argv = ["run", "--no-tray", "--port", str(port), "--data-dir", str(data)]
        old_run = subprocess.run(
            [sys.executable, "-m", "daemon", *argv],
            cwd=str(older),
            env={**env, "MECENE_PASSPHRASE": PASSPHRASE},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert old_run.returncode == 1, old_run.stderr
        assert "unsupported wallet format version 2" in old_run.stderr
        assert "Traceback" not in old_run.stderr
    finally:
        subprocess.run(
            ["git", "-C", str(root), "worktree", "remove", "--force", str(older)],
            capture_output=True,
        )
