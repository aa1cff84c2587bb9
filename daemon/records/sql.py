"""Reading a record from the daemon's database and merging one back (SQL only).

A merge only adds: a row this database already has (by its key) is kept as
it is, so a record older than the database loses nothing, and one newer
brings what the database lacks. Columns are matched by name, so a record
written by another version merges what both know.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlite_utils import Database

from ..months.policy import UNSENT, MonthState
from ..unlinkable.policy import TO_ISSUE, TokenState

STATE_FORMAT = 1
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
    return {
        "format": STATE_FORMAT,
        "subscriptions": _rows(db, "SELECT * FROM subscriptions ORDER BY created_at, id"),
        "months": months,
        "transfers": transfers,
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
    return {"format": TOKENS_FORMAT, "tokens": unspent}, fingerprint, urgent


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


def merge_state(db: Database, record: dict[str, Any]) -> dict[str, int]:
    """Add what the state record has and this database lacks. Gifts go in
    before months: a month's `given_cents` comes with it, and the trigger
    that adds a new gift to its month must not count it twice."""
    transfers = _merge(db, "transfers", record.get("transfers"))
    # A month this daemon opened before the record came (a new daemon starts
    # with the default time zone, whose month may still be one the record
    # closed) gives way to the record's closed one, if nothing was flattred
    # in it here: the record's is signed, and may be at the hub already.
    replaced = 0
    for month in record.get("months") or []:
        if not isinstance(month, dict) or month.get("state") == MonthState.OPEN:
            continue
        cursor = db.execute(
            "DELETE FROM months WHERE month = ? AND state = ? AND live_clicks = 0 "
            "AND NOT EXISTS (SELECT 1 FROM clicks WHERE clicks.month = months.month)",
            [month.get("month"), MonthState.OPEN],
        )
        replaced += cursor.rowcount
    months = _merge(db, "months", record.get("months"))
    return {
        "transfers": transfers,
        "months": months,
        "subscriptions": _merge(db, "subscriptions", record.get("subscriptions")),
    }


def merge_tokens(db: Database, record: dict[str, Any]) -> int:
    return _merge(db, "unlinkable_tokens", record.get("tokens"))


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
