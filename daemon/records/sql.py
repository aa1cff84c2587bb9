"""Reading a record from the daemon's database and merging one back (SQL only).

A merge only adds: a row this database already has (by its key) is kept as
it is, so a record older than the database loses nothing, and one newer
brings what the database lacks. Columns are matched by name, so a record
written by another version merges what both know.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from ..months.policy import UNSENT, MonthState
from ..store import meta_get, meta_set
from ..unlinkable.policy import TO_ISSUE, TokenState
from . import merge
from .merge import thing_digest

MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
STATE_FORMAT = 1
# Months whose flattrs the state record carries even once settled.
RECENT_MONTHS = 3
TOKENS_FORMAT = 1
# Columns that change with each try to reach the hub: kept out of the record,
# so that an unreachable hub does not make a new record every hour.
_RETRY_NOISE = {
    "months": {"sync_attempts", "sync_error", "next_sync_at", "outcome_at"},
    "transfers": {"attempts", "next_attempt_at"},
}


def _rows(db: Database, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    return [dict(r) for r in db.query(sql, params or [])]


def state(db: Database) -> dict[str, Any]:
    """Subscriptions, months past the open one with their signed documents
    and receipts, and gifts (settings are the wallet's: the link adds them)."""
    months = [
        {k: v for k, v in row.items() if k not in _RETRY_NOISE["months"]}
        for row in _rows(
            db, "SELECT * FROM months WHERE state != ? ORDER BY month", [MonthState.OPEN]
        )
    ]
    transfers = [
        {k: v for k, v in row.items() if k not in _RETRY_NOISE["transfers"]}
        for row in _rows(db, "SELECT * FROM transfers ORDER BY created_at, id")
    ]
    # The flattrs of every month not settled yet and of the last few, Undos
    # too: what the wallet's other computers take in (daemon/records/merge.py).
    # A settled month's stay a while, so that a computer that was offline
    # when it was settled still learns of an Undo made elsewhere before it.
    clicks = _rows(
        db,
        "SELECT clicks.* FROM clicks JOIN months USING (month) WHERE months.state != ? "
        "OR months.month IN (SELECT month FROM months ORDER BY month DESC LIMIT ?) "
        "ORDER BY clicks.month, clicks.created_at, clicks.id",
        [MonthState.SETTLED, RECENT_MONTHS],
    )
    return {
        "format": STATE_FORMAT,
        "subscriptions": _rows(db, "SELECT * FROM subscriptions ORDER BY created_at, id"),
        "months": months,
        "transfers": transfers,
        "clicks": clicks,
        "open_month": _open_month(db),
    }


def tokens(db: Database, since_month: str) -> tuple[dict[str, Any], str, str]:
    """Tokens of `since_month` and after not yet redeemed (those held for
    gifts too), the record's fingerprint, and the fingerprint of what goes at
    once. The first changes when tokens are planned, blinded or signed, or
    given to a gift from the pool, and never when one is redeemed, so the
    record is not sent again at that moment (that would tell the hub whose
    token was just spent). The second leaves out what a gift from the pool
    changes (a token's creator and gift): that goes within the hour, or the
    record's moment would tell the hub the gift's (daemon/unlinkable/pool.py)."""
    rows = _rows(
        db, "SELECT * FROM unlinkable_tokens WHERE month >= ? ORDER BY month, id", [since_month]
    )
    seen = [
        [
            r["id"],
            r["month"],
            r["creator"],
            r["cents"],
            r["key_id"],
            r["transfer_id"],
            r["state"] if r["state"] in TO_ISSUE else "issued",
        ]
        for r in rows
    ]
    fingerprint = hashlib.sha256(json.dumps(seen).encode()).hexdigest()
    issued = [[r[0], r[1], r[3], r[4], r[6]] for r in seen]
    urgent = hashlib.sha256(json.dumps(issued).encode()).hexdigest()
    held = (*TO_ISSUE, TokenState.READY, TokenState.POOLED)
    unspent = [r for r in rows if r["state"] in held]
    dropped = dropped_tokens(db)
    record = {"format": TOKENS_FORMAT, "tokens": unspent, "dropped": sorted(dropped)}
    return record, fingerprint, urgent


# Meta: tokens the hub will never sign (another computer of the wallet had
# their month's signed: daemon/unlinkable/link.py), kept so that no record
# brings them back; they travel in the tokens record to every computer.
TOKENS_DROPPED = "tokens_dropped"


def dropped_tokens(db: Database) -> set[str]:
    text = meta_get(db, TOKENS_DROPPED)
    return set(json.loads(text)) if text else set()


def drop_tokens(db: Database, ids: Iterable[str]) -> None:
    """Forget tokens the hub will never sign, for good: only while they are
    still planned or blinded."""
    dropped = dropped_tokens(db) | set(ids)
    for token_id in dropped:
        db.execute(
            "DELETE FROM unlinkable_tokens WHERE id = ? AND state IN (?, ?)",
            [token_id, *TO_ISSUE],
        )
    meta_set(db, TOKENS_DROPPED, json.dumps(sorted(dropped)))


def _merge(db: Database, table: str, rows: Any) -> int:
    """INSERT OR IGNORE each row's known columns; the number added."""
    if not isinstance(rows, list):
        return 0
    columns = set(db.table(table).columns_dict)
    added = 0
    for row in rows:
        if not isinstance(row, dict):
            continue
        known = {k: v for k, v in row.items() if k in columns}
        if not known:
            continue
        names = ", ".join(f'"{k}"' for k in known)
        marks = ", ".join("?" for _ in known)
        cursor = db.execute(
            f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})",  # noqa: S608 - names are the table's own
            list(known.values()),
        )
        added += cursor.rowcount
    return added


@dataclass
class Merged:
    """What a state record brought: rows added per table, closed months that
    took in flattrs (split again before they are sent), months settled by
    another computer that this one takes as its own, and flattrs moved to the
    open month because their month was settled without them."""

    added: dict[str, int] = field(default_factory=dict)
    reclose: set[str] = field(default_factory=set)
    adopted: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    reopened: str | None = None  # the open month this computer took from the record

    @property
    def count(self) -> int:
        return sum(self.added.values()) + len(self.adopted) + len(self.moved)


def merge_state(
    db: Database,
    record: dict[str, Any],
    *,
    adoptable: frozenset[str] = frozenset(),
    moved_at: str = "",
) -> Merged:
    """Take in what the state record has: gifts, months, subscriptions and
    flattrs (daemon/records/merge.py's rule). Gifts go in before months: a
    month's `given_cents` comes with it, and the trigger that adds a new gift
    to its month must not count it twice. `adoptable`: months the record
    holds settled, with a receipt the caller checked, that this computer
    closed with another document: the hub kept the record's, so it becomes
    this computer's too, and what it did not cover moves to the open month."""
    merged = Merged()
    merged.reopened = _take_open_month(db, record.get("open_month"))
    merged.added["transfers"] = _merge(db, "transfers", record.get("transfers"))
    # A month this daemon opened before the record came (a new daemon starts
    # with the default time zone, whose month may still be one the record
    # closed) gives way to the record's closed one, if nothing was flattred
    # in it here: the record's is signed, and may be at the hub already.
    months = [m for m in record.get("months") or [] if isinstance(m, dict)]
    for month in months:
        if month.get("state") == MonthState.OPEN:
            continue
        db.execute(
            "DELETE FROM months WHERE month = ? AND state = ? AND live_clicks = 0 "
            "AND NOT EXISTS (SELECT 1 FROM clicks WHERE clicks.month = months.month)",
            [month.get("month"), MonthState.OPEN],
        )
    clicks = [c for c in record.get("clicks") or [] if isinstance(c, dict) and _valid_click(c)]
    # A month to adopt first takes the Undos the record knows of its flattrs
    # (made elsewhere while this computer was away): an undone flattr is not
    # one the settlement left out.
    undone = 0
    for click in clicks:
        if click["month"] in adoptable and click.get("undone_at"):
            undone += db.execute(
                "UPDATE clicks SET undone_at = ? WHERE id = ? AND month = ? AND undone_at IS NULL",
                [click["undone_at"], click["id"], click["month"]],
            ).rowcount
    for month in months:
        if month.get("month") in adoptable and _adopt(db, month):
            merged.adopted.append(str(month["month"]))
    merged.added["months"] = _merge(
        db, "months", [m for m in months if m.get("state") != MonthState.OPEN]
    )
    merged.added["subscriptions"] = _merge_subscriptions(db, record.get("subscriptions"))
    for adopted in merged.adopted:
        merged.moved += _move_uncovered(db, adopted, moved_at)
    merged.added["clicks"] = undone + sum(
        _merge_click(db, click, merged, moved_at) for click in clicks
    )
    return merged


def _take_open_month(db: Database, theirs: Any) -> str | None:
    """A computer new to the wallet (joined with the phrase, or restored)
    opened its month by its own default time zone, before the record came: a
    month later than the one the wallet's other computers fill. If nothing
    happened in it here, it gives way to theirs."""
    if not isinstance(theirs, str) or not MONTH_RE.match(theirs):
        return None
    mine = _open_month(db)
    if mine is None or mine <= theirs or _state(db, theirs) is not None:
        return None
    used = db.execute(
        "SELECT EXISTS (SELECT 1 FROM clicks WHERE month = ?) "
        "OR EXISTS (SELECT 1 FROM transfers WHERE month = ?)",
        [mine, mine],
    ).fetchone()[0]
    if used:
        return None
    db.execute("DELETE FROM months WHERE month = ? AND state = ?", [mine, MonthState.OPEN])
    db.execute("INSERT INTO months (month, state) VALUES (?, ?)", [theirs, MonthState.OPEN])
    return theirs


_ADOPTED = (
    "state",
    "spend_cents",
    "document",
    "signature",
    "closed_at",
    "receipt",
    "receipt_signature",
    "settled_at",
    "things",
)


def _adopt(db: Database, month: dict[str, Any]) -> bool:
    """Make another computer's settled month this one's (its own unsent
    document was never accepted: the hub keeps one per account and month)."""
    if month.get("state") != MonthState.SETTLED or not month.get("receipt"):
        return False
    values = [month.get(k) for k in _ADOPTED]
    cursor = db.execute(
        f"UPDATE months SET {', '.join(f'{k} = ?' for k in _ADOPTED)}, "  # noqa: S608 - fixed names
        "sync_error = NULL, next_sync_at = NULL WHERE month = ? AND state IN (?, ?)",
        [*values, month["month"], *UNSENT],
    )
    if cursor.rowcount:
        # Tokens this computer planned for its own split are never issued:
        # the month's tokens are the settling computer's (the tokens record).
        db.execute(
            "DELETE FROM unlinkable_tokens WHERE month = ? AND state IN (?, ?)",
            [month["month"], *TO_ISSUE],
        )
    return bool(cursor.rowcount)


def _covered(db: Database, month: str) -> set[str] | None:
    """The things a month not open covered (None: a month closed before
    they were kept; its flattrs are taken as covered)."""
    row = db.execute("SELECT things FROM months WHERE month = ?", [month]).fetchone()
    if row is None or row[0] is None:
        return None
    try:
        return set(json.loads(row[0]))
    except ValueError:
        return None


def _move_uncovered(db: Database, month: str, at: str) -> list[str]:
    """Move the live flattrs of `month` (settled) that its document did not
    cover to the open month."""
    things = _covered(db, month)
    if things is None:
        return []
    rows = _rows(
        db, "SELECT * FROM clicks WHERE month = ? AND undone_at IS NULL ORDER BY id", [month]
    )
    moved = []
    for row in rows:
        if thing_digest(row["url"], row["creator"]) not in things:
            db.execute("DELETE FROM clicks WHERE id = ?", [row["id"]])
            _move(db, row, at)
            moved.append(str(row["id"]))
    return moved


def _open_month(db: Database) -> str | None:
    row = db.execute("SELECT max(month) FROM months WHERE state = ?", [MonthState.OPEN]).fetchone()
    return None if row[0] is None else str(row[0])


def _move(db: Database, click: dict[str, Any], at: str) -> None:
    """A flattr of a month settled without it goes to the open month (unless
    its thing is flattred there already), and the person is told."""
    target = _open_month(db)
    to_month = None
    if target is not None:
        row = {**click, "month": target}
        if _place(db, row):
            to_month = target
    db.execute(
        "INSERT OR IGNORE INTO moved_clicks (id, url, title, creator, from_month, to_month, "
        "moved_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            click["id"],
            click.get("url"),
            click.get("title"),
            click["creator"],
            click["month"],
            to_month,
            at,
        ],
    )


_CLICK_KEYS = ("id", "month", "creator", "created_at")


def _valid_click(click: dict[str, Any]) -> bool:
    return all(isinstance(click.get(k), str) and click[k] for k in _CLICK_KEYS) and (
        click.get("url") is None or isinstance(click["url"], str)
    )


def _same_thing(db: Database, month: str, url: str | None, creator: str) -> list[dict[str, Any]]:
    if url:
        return _rows(db, "SELECT * FROM clicks WHERE month = ? AND url = ?", [month, url])
    return _rows(
        db,
        "SELECT * FROM clicks WHERE month = ? AND url IS NULL AND creator = ?",
        [month, creator],
    )


def _place(db: Database, click: dict[str, Any]) -> bool:
    """Put `click` in its (open or closed) month if it wins over what the
    month has of its thing (merge.wins); True if the month changed."""
    kept = merge.newest(_same_thing(db, click["month"], click.get("url"), click["creator"]))
    if kept is not None and not merge.wins(click, kept):
        return False
    if kept is not None and not kept.get("undone_at"):
        # The live one it replaces (the unique index allows one live flattr
        # of a thing a month); undone ones stay as they are.
        db.execute("DELETE FROM clicks WHERE id = ?", [kept["id"]])
    _merge(db, "clicks", [click])
    return True


def _merge_click(db: Database, click: dict[str, Any], merged: Merged, at: str) -> int:
    """Take in one flattr of another computer's record; 1 if it changed ours."""
    mine = db.execute("SELECT * FROM clicks WHERE id = ?", [click["id"]]).fetchone()
    if mine is not None:
        mine = dict(mine)
        # The same flattr: only its Undo can be new, and only where it still counts.
        if not click.get("undone_at") or mine["undone_at"]:
            return 0
        state = _state(db, mine["month"])
        if state not in (MonthState.OPEN, MonthState.CLOSED):
            return 0
        db.execute(
            "UPDATE clicks SET undone_at = ? WHERE id = ? AND undone_at IS NULL",
            [click["undone_at"], click["id"]],
        )
        if state == MonthState.CLOSED:
            merged.reclose.add(mine["month"])
        return 1
    if db.execute("SELECT 1 FROM moved_clicks WHERE id = ?", [click["id"]]).fetchone():
        return 0  # moved here already (and maybe lost to a flattr of the open month)
    state = _state(db, click["month"])
    if state in (MonthState.OPEN, MonthState.CLOSED):
        if not _place(db, click):
            return 0
        if state == MonthState.CLOSED:
            merged.reclose.add(click["month"])
        return 1
    if state in (MonthState.SUBMITTED, MonthState.SETTLED) and not click.get("undone_at"):
        things = _covered(db, click["month"])
        if things is None or thing_digest(click.get("url"), click["creator"]) in things:
            return 0  # the month paid it (or cannot say: taken as paid)
        _move(db, click, at)
        merged.moved.append(click["id"])
        return 1
    # No such month here (not seen yet, or long gone): when it is open here,
    # the record still has it.
    return 0


def _state(db: Database, month: str) -> str | None:
    row = db.execute("SELECT state FROM months WHERE month = ?", [month]).fetchone()
    return None if row is None else str(row[0])


def _merge_subscriptions(db: Database, rows: Any) -> int:
    """New subscriptions go in; one both sides have takes the later change
    (merge.changed_later): a cancel after an extension cancels it."""
    if not isinstance(rows, list):
        return 0
    columns = set(db.table("subscriptions").columns_dict)
    changed = 0
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            continue
        mine = db.execute("SELECT * FROM subscriptions WHERE id = ?", [row["id"]]).fetchone()
        if mine is None:
            changed += _merge(db, "subscriptions", [row])
            continue
        known = {k: v for k, v in row.items() if k in columns and k != "id"}
        if dict(mine) == {**dict(mine), **known} or not merge.changed_later(row, dict(mine)):
            continue
        sets = ", ".join(f'"{k}" = ?' for k in known)
        db.execute(
            f"UPDATE subscriptions SET {sets} WHERE id = ?",  # noqa: S608 - the table's own names
            [*known.values(), row["id"]],
        )
        changed += 1
    return changed


# How far a token has gone: a record's copy further along than ours (another
# computer of the wallet had it blinded or signed) replaces ours while ours
# is still to be issued; one that is signed here is never changed by a record.
_TOKEN_STEPS: dict[str, int] = {TokenState.PLANNED: 0, TokenState.BLINDED: 1}


def merge_tokens(db: Database, record: dict[str, Any]) -> int:
    theirs = record.get("dropped")
    if isinstance(theirs, list):
        drop_tokens(db, [t for t in theirs if isinstance(t, str)])
    dropped = dropped_tokens(db)
    rows = [
        r for r in record.get("tokens") or [] if isinstance(r, dict) and r.get("id") not in dropped
    ]
    added = _merge(db, "unlinkable_tokens", rows)
    columns = set(db.table("unlinkable_tokens").columns_dict)
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            continue
        mine = db.execute(
            "SELECT state FROM unlinkable_tokens WHERE id = ?", [row["id"]]
        ).fetchone()
        theirs = row.get("state")
        if mine is None or mine[0] not in _TOKEN_STEPS or not isinstance(theirs, str):
            continue
        if _TOKEN_STEPS.get(theirs, 2) <= _TOKEN_STEPS[mine[0]]:
            continue
        known = {k: v for k, v in row.items() if k in columns and k != "id"}
        sets = ", ".join(f'"{k}" = ?' for k in known)
        db.execute(
            f"UPDATE unlinkable_tokens SET {sets} WHERE id = ?",  # noqa: S608 - the table's names
            [*known.values(), row["id"]],
        )
        added += 1
    return added


def without_settled_documents(record: dict[str, Any]) -> dict[str, Any]:
    """The state record with settled months' documents left out (their
    receipts stay): what is kept when the whole would be too large. A month
    not yet acknowledged keeps its document: it is still to be sent."""
    months = [
        m if m.get("state") in UNSENT else {**m, "document": None, "signature": None}
        for m in record.get("months", [])
    ]
    return {**record, "months": months}


def money_moves(record: dict[str, Any]) -> dict[str, Any]:
    """What in the state record changes with the hub's knowledge: months'
    states and receipts, gifts' states and receipts. Not a gift as tokens:
    paid from the pool, the hub does not see it (daemon/unlinkable/pool.py),
    and a record sent at once would tell it the moment."""
    return {
        "months": [(m.get("month"), m.get("state"), m.get("receipt")) for m in record["months"]],
        "transfers": [
            (t.get("id"), t.get("state"), t.get("receipt"))
            for t in record["transfers"]
            if not t.get("unlinkable")
        ],
    }
