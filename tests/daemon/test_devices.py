"""The one rule that merges a wallet's computers (daemon/records/merge.py),
as a table, and what a state record from another computer does to this one's
database (daemon/records/sql.py): the same thing flattred on two computers
is one flattr, the latest action wins, a closed month that takes in flattrs
is split again, a settled month's late flattrs move to the open month, a
month another computer settled is adopted, and subscriptions take the later
change."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from itertools import permutations
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlite_utils import Database

from daemon.backup import archive_key, wallet_archive_key
from daemon.devices import shared_secrets
from daemon.records import merge
from daemon.records import sql as records_sql
from daemon.records.link import record_keys
from daemon.records.seal import RecordKeys
from daemon.store import Store
from daemon.wallet import TEST_KDF, Wallet, WalletError
from mecene.encoding import b64u
from tests.support.constants import PASSPHRASE

T0 = "2026-11-10T10:00:00.000000Z"
T1 = "2026-11-10T11:00:00.000000Z"
T2 = "2026-11-10T12:00:00.000000Z"


def click(cid: str, at: str = T0, undone: str | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "month": "2026-11",
        "url": "https://a.example/1",
        "title": "A",
        "creator": "domain:a.example",
        "creators": "[]",
        "weight": 1,
        "auto": 0,
        "subscription_id": None,
        "created_at": at,
        "undone_at": undone,
        **kw,
    }


# -- the rule, as a table -------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "kept", "wins", "why"),
    [
        (click("b", T1), click("a", T0), True, "the later flattr stands for the thing"),
        (click("a", T0), click("b", T1), False, "an earlier flattr does not replace a later one"),
        (click("b", T0), click("a", T0), False, "at the same moment, the smaller id"),
        (click("a", T0), click("b", T0), True, "at the same moment, the smaller id"),
        (click("b", T0, undone=T2), click("a", T1), True, "an Undo after the other's flattr"),
        (click("b", T2), click("a", T0, undone=T1), True, "flattred again after an Undo"),
        (click("b", T0), click("a", T0, undone=T1), False, "an Undo after the other's flattr"),
        (click("a", T0, undone=T1), click("a", T0), True, "the same flattr: its Undo is final"),
        (click("a", T0), click("a", T0, undone=T1), False, "the same flattr: never un-undone"),
        (click("a", T0), click("a", T0), False, "the same flattr again changes nothing"),
    ],
)
def test_the_latest_action_wins(new: Any, kept: Any, wins: bool, why: str) -> None:
    assert merge.wins(new, kept) is wins, why


def test_every_order_of_the_same_flattrs_gives_the_same_month() -> None:
    rows = [click("c", T1), click("a", T0, undone=T2), click("b", T0), click("d", T1)]
    standing = {merge.newest(list(order))["id"] for order in permutations(rows)}  # type: ignore[index]
    assert standing == {"a"}


@pytest.mark.parametrize(
    ("new", "kept", "later", "why"),
    [
        ({"changed_at": T2, "v": 1}, {"changed_at": T1, "v": 2}, True, "changed later"),
        ({"changed_at": T0, "v": 1}, {"changed_at": T1, "v": 2}, False, "changed earlier"),
        ({"changed_at": T1, "v": 2}, {"changed_at": T1, "v": 1}, True, "same moment: by value"),
        ({"changed_at": T1, "v": 1}, {"changed_at": T1, "v": 2}, False, "same moment: by value"),
    ],
)
def test_the_later_change_wins(new: Any, kept: Any, later: bool, why: str) -> None:
    assert merge.changed_later(new, kept) is later, why


# -- a record merged into a database ------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Any:
    store = Store(tmp_path / "d.sqlite")
    store.open()
    asyncio.run(store.close())
    database = Database(tmp_path / "d.sqlite")
    database.conn.row_factory = sqlite3.Row  # as the daemon's connection (store.py)
    database.execute("INSERT INTO months (month, state) VALUES ('2026-11', 'open')")
    yield database
    database.close()


def live(db: Database, month: str = "2026-11") -> dict[str, str]:
    rows = db.execute(
        "SELECT id, url FROM clicks WHERE month = ? AND undone_at IS NULL", [month]
    ).fetchall()
    return {r[1]: r[0] for r in rows}


def totals(db: Database, month: str = "2026-11") -> tuple[int, int]:
    row = db.execute(
        "SELECT live_clicks, live_weight FROM months WHERE month = ?", [month]
    ).fetchone()
    return int(row[0]), int(row[1])


def merged(db: Database, clicks: list[dict[str, Any]], **kw: Any) -> Any:
    with db.conn:
        return records_sql.merge_state(db, {"clicks": clicks}, moved_at=T2, **kw)


def test_a_thing_flattred_on_two_computers_is_one_flattr(db: Database) -> None:
    records_sql._merge(db, "clicks", [click("a", T0)])
    merged(db, [click("b", T1)])
    assert live(db) == {"https://a.example/1": "b"} and totals(db) == (1, 1)
    # The other computer's record, which still has its own: nothing changes.
    merged(db, [click("a", T0)])
    assert live(db) == {"https://a.example/1": "b"} and totals(db) == (1, 1)


def test_an_undo_on_another_computer_undoes_it_here(db: Database) -> None:
    records_sql._merge(db, "clicks", [click("a", T0)])
    merged(db, [click("a", T0, undone=T1)])
    assert live(db) == {} and totals(db) == (0, 0)
    # Its old record, live, does not bring it back.
    merged(db, [click("a", T0)])
    assert live(db) == {}


def test_flattring_again_after_an_undo_elsewhere_stands(db: Database) -> None:
    records_sql._merge(db, "clicks", [click("a", T0, undone=T1)])
    merged(db, [click("b", T2)])
    assert live(db) == {"https://a.example/1": "b"}


def test_a_closed_month_that_takes_flattrs_is_split_again(db: Database) -> None:
    db.execute("UPDATE months SET state = 'closed', things = '[]'")
    out = merged(db, [click("a", T0)])
    assert out.reclose == {"2026-11"} and live(db) == {"https://a.example/1": "a"}


def test_a_late_flattr_of_a_settled_month_moves_to_the_open_month(db: Database) -> None:
    covered = merge.thing_digest("https://a.example/1", "domain:a.example")
    db.execute("UPDATE months SET state = 'settled', things = ?", [json.dumps([covered])])
    db.execute("INSERT INTO months (month, state) VALUES ('2026-12', 'open')")
    late = click("b", T1, url="https://b.example/2", creator="domain:b.example")
    out = merged(db, [click("a", T0), late])
    # The covered one was paid: left alone. The other goes to December, said.
    assert out.moved == ["b"] and live(db) == {}
    assert live(db, "2026-12") == {"https://b.example/2": "b"}
    moved = db.execute("SELECT from_month, to_month FROM moved_clicks").fetchall()
    assert [tuple(m) for m in moved] == [("2026-11", "2026-12")]
    # Again: once only.
    assert merged(db, [late]).moved == []


def test_a_month_settled_elsewhere_is_adopted_and_what_it_missed_moves(db: Database) -> None:
    records_sql._merge(
        db,
        "clicks",
        [click("a", T0), click("c", T0, url="https://c.example/3", creator="domain:c.example")],
    )
    db.execute("UPDATE months SET state = 'submitted', document = 'mine', signature = 's'")
    db.execute("INSERT INTO months (month, state) VALUES ('2026-12', 'open')")
    theirs = {
        "month": "2026-11",
        "state": "settled",
        "spend_cents": 500,
        "document": "theirs",
        "signature": "t",
        "receipt": "R",
        "receipt_signature": "RS",
        "settled_at": T2,
        "things": json.dumps([merge.thing_digest("https://a.example/1", "domain:a.example")]),
    }
    with db.conn:
        out = records_sql.merge_state(
            db, {"months": [theirs]}, adoptable=frozenset({"2026-11"}), moved_at=T2
        )
    assert out.adopted == ["2026-11"] and out.moved == ["c"]
    row = db.execute("SELECT state, document, receipt FROM months WHERE month = '2026-11'")
    assert tuple(row.fetchone()) == ("settled", "theirs", "R")
    assert live(db, "2026-12") == {"https://c.example/3": "c"}
    # A record's settled month is never adopted unless the caller checked its receipt.
    db.execute("UPDATE months SET state = 'submitted', document = 'mine' WHERE month = '2026-11'")
    with db.conn:
        out = records_sql.merge_state(db, {"months": [theirs]}, moved_at=T2)
    assert out.adopted == []


def subscription(**kw: Any) -> dict[str, Any]:
    return {
        "id": "s1",
        "url": "https://a.example/1",
        "creator": "domain:a.example",
        "title": "A",
        "months": 3,
        "first_month": "2026-11",
        "last_month": "2027-01",
        "created_at": T0,
        "cancelled_month": None,
        "weight": 1,
        "changed_at": T0,
        **kw,
    }


def test_a_cancel_after_an_extension_cancels_and_the_reverse_extends(db: Database) -> None:
    records_sql._merge(db, "subscriptions", [subscription(last_month="2027-03", changed_at=T1)])
    cancelled = subscription(cancelled_month="2026-12", changed_at=T2)
    with db.conn:
        records_sql.merge_state(db, {"subscriptions": [cancelled]})
    row = db.execute("SELECT cancelled_month, last_month FROM subscriptions").fetchone()
    assert tuple(row) == ("2026-12", "2027-01")
    # The extension made before the cancel (its record comes late) loses.
    with db.conn:
        records_sql.merge_state(
            db, {"subscriptions": [subscription(last_month="2027-03", changed_at=T1)]}
        )
    assert db.execute("SELECT cancelled_month FROM subscriptions").fetchone()[0] == "2026-12"
    # An extension after the cancel brings it back.
    extended = subscription(last_month="2027-06", changed_at="2026-11-11T00:00:00.000000Z")
    with db.conn:
        records_sql.merge_state(db, {"subscriptions": [extended]})
    row = db.execute("SELECT cancelled_month, last_month FROM subscriptions").fetchone()
    assert tuple(row) == (None, "2027-06")


def test_hostile_rows_in_a_record_change_nothing(db: Database) -> None:
    records_sql._merge(db, "clicks", [click("a", T0)])
    bad: list[Any] = [
        "x",
        {"id": 5},
        {**click("z", T1), "month": None},
        {**click("z", T1), "url": 7},
        {**click("z", T1), "created_at": ""},
    ]
    out = merged(db, bad)
    assert out.count == 0 and live(db) == {"https://a.example/1": "a"}


def test_a_new_computer_s_empty_month_gives_way_to_the_wallet_s(db: Database) -> None:
    """Joined with the phrase, a computer opens a month by its own default
    time zone before the record comes; with nothing in it, it takes the
    wallet's open month instead. With a flattr in it, it keeps it."""
    db.execute("UPDATE months SET month = '2026-12'")
    with db.conn:
        out = records_sql.merge_state(db, {"open_month": "2026-11"})
    assert out.reopened == "2026-11"
    assert [tuple(r) for r in db.execute("SELECT month, state FROM months")] == [
        ("2026-11", "open")
    ]
    db.execute("INSERT INTO months (month, state) VALUES ('2027-01', 'open')")
    records_sql._merge(db, "clicks", [click("a", T0, month="2027-01")])
    with db.conn:
        assert records_sql.merge_state(db, {"open_month": "2026-12"}).reopened is None
    for hostile in ("2026-13", "x", 7, None):
        with db.conn:
            assert records_sql.merge_state(db, {"open_month": hostile}).reopened is None


def token(tid: str, state: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "month": "2026-11",
        "creator": "domain:a.example",
        "cents": 10,
        "state": state,
        **kw,
    }


def test_tokens_dropped_on_one_computer_never_come_back(db: Database) -> None:
    """The tokens a computer planned for a month the hub issued to another
    are dropped for good: a record that still carries them (written by a
    computer that merged them before) does not bring them back, and the
    tombstones travel on. A token further along in the record (blinded or
    signed elsewhere) replaces a plan here; a signed one here never changes."""
    columns = set(db.table("unlinkable_tokens").columns_dict)
    assert {"id", "month", "cents", "state"} <= columns
    records_sql._merge(
        db, "unlinkable_tokens", [token("mine", "blinded"), token("theirs", "planned")]
    )
    with db.conn:
        records_sql.drop_tokens(db, ["mine"])
    with db.conn:
        records_sql.merge_tokens(
            db, {"tokens": [token("mine", "blinded"), token("theirs", "blinded")]}
        )
    rows = dict(db.execute("SELECT id, state FROM unlinkable_tokens").fetchall())
    assert rows == {"theirs": "blinded"}
    record, _fp, _urgent = records_sql.tokens(db, "2026-01")
    assert record["dropped"] == ["mine"]
    # Another computer's tombstone drops it here too; a signed token stays.
    db.execute("UPDATE unlinkable_tokens SET state = 'ready'")
    with db.conn:
        records_sql.merge_tokens(db, {"tokens": [token("theirs", "blinded")], "dropped": ["other"]})
    assert dict(db.execute("SELECT id, state FROM unlinkable_tokens").fetchall()) == {
        "theirs": "ready"
    }
    assert records_sql.dropped_tokens(db) == {"mine", "other"}


def test_a_computer_joined_with_a_code_holds_the_secrets_not_the_seed(tmp_path: Path) -> None:
    """What the code hands over opens the same records and backups as the
    seed does, and the wallet written with it holds no seed: the phrase
    cannot be shown there, and removed, that computer has nothing the hub
    takes."""
    first = Wallet.create(tmp_path / "first.mecene", PASSPHRASE, kdf=TEST_KDF)
    device = Ed25519PrivateKey.generate()
    Wallet.create(
        tmp_path / "joined.mecene",
        PASSPHRASE,
        kdf=TEST_KDF,
        device=(device, "laptop"),
        joined=(first.account, shared_secrets(first.data)),
    )
    again = Wallet.open(tmp_path / "joined.mecene", PASSPHRASE)
    assert (again.account, again.data.holds_seed) == (first.account, False)
    assert b64_seed(first) not in (tmp_path / "joined.mecene").read_bytes()
    with pytest.raises(WalletError, match="does not hold its recovery phrase"):
        _ = again.data.seed
    # The same records: sealed with the seed's keys, opened with the shared ones.
    [(slot, sealed)] = RecordKeys(first.data.seed, first.account).seal("state", 1, {"a": 1})
    assert record_keys(again.data).open(slot, sealed).version == 1
    keys = RecordKeys(first.data.seed, first.account)
    assert record_keys(again.data).slot("state", 1, 0) == keys.slot("state", 1, 0)
    assert wallet_archive_key(again) == archive_key(first.data.seed)
    # It signs as its device, never as the account.
    assert again.sign(b"x") == again.data.sign_as_device(b"x")


def b64_seed(wallet: Any) -> bytes:
    return b64u(wallet.data.seed).encode()
