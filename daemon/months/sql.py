"""Every statement on the `months` table (schema: daemon/store.py). Each
function takes the open `Database` inside the caller's read or write."""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from mecene.time import add_months

from ..records.merge import thing_digest
from .policy import UNSENT, MonthState, still_moving, to_open

# The columns the hub link may set on a closed month.
SYNC_FIELDS = frozenset(
    {
        "state",
        "sync_attempts",
        "sync_error",
        "next_sync_at",
        "receipt",
        "receipt_signature",
        "settled_at",
        "outcome",
        "outcome_at",
    }
)


def state(db: Database, month: str) -> str | None:
    row = db.execute("SELECT state FROM months WHERE month = ?", [month]).fetchone()
    return None if row is None else str(row[0])


def closed_at(db: Database, month: str) -> str | None:
    row = db.execute("SELECT closed_at FROM months WHERE month = ?", [month]).fetchone()
    return None if row is None else str(row[0] or "")


def totals(db: Database, month: str) -> tuple[int, int, int]:
    """The month's live click count, total weight and what its direct
    transfers give (kept by triggers, see store.py)."""
    row = db.execute(
        "SELECT live_clicks, live_weight, given_cents FROM months WHERE month = ?", [month]
    ).fetchone()
    return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))


def open_until(db: Database, current: str) -> list[str]:
    """Make sure every month from the last one seen to `current` has a row;
    return the past months still open, oldest first."""
    latest = db.execute("SELECT max(month) FROM months").fetchone()[0]
    for month in to_open(latest, current):
        db.execute(
            "INSERT OR IGNORE INTO months (month, state) VALUES (?, ?)", [month, MonthState.OPEN]
        )
    rows = db.execute(
        "SELECT month FROM months WHERE state = ? AND month < ? ORDER BY month",
        [MonthState.OPEN, current],
    ).fetchall()
    return [r[0] for r in rows]


def latest_open(db: Database) -> str | None:
    """The latest month that takes flattrs."""
    row = db.execute("SELECT max(month) FROM months WHERE state = ?", [MonthState.OPEN]).fetchone()
    return None if row[0] is None else str(row[0])


def open_first(db: Database, month: str) -> str:
    """The month to take flattrs in when none is open and none may close: the
    current one on a new daemon, else the month after the last one (never a
    row for the months between, which would then have to close)."""
    last = db.execute("SELECT max(month) FROM months").fetchone()[0]
    wanted = month if last is None else add_months(str(last), 1)
    db.execute(
        "INSERT OR IGNORE INTO months (month, state) VALUES (?, ?)", [wanted, MonthState.OPEN]
    )
    return wanted


def close(db: Database, month: str, spend_cents: int, text: str, signature: str, at: str) -> None:
    """Freeze the month with its signed document, and what it covered: the
    digest of every thing flattred in it (daemon/records/merge.py)."""
    live = db.execute(
        "SELECT url, creator FROM clicks WHERE month = ? AND undone_at IS NULL", [month]
    ).fetchall()
    things = json.dumps(sorted({thing_digest(url, creator) for url, creator in live}))
    db.execute(
        "UPDATE months SET state = ?, spend_cents = ?, document = ?, "
        "signature = ?, closed_at = ?, sync_error = NULL, next_sync_at = NULL, things = ? "
        "WHERE month = ?",
        [MonthState.CLOSED, spend_cents, text, signature, at, things, month],
    )


def row(db: Database, month: str) -> Any:
    return db.execute("SELECT * FROM months WHERE month = ?", [month]).fetchone()


def awaiting_outcome(db: Database, before: str) -> list[str]:
    """Settled months whose money may still move, last asked about before `before`."""
    rows = db.execute(
        "SELECT month, outcome FROM months WHERE state = ? "
        "AND (outcome_at IS NULL OR outcome_at < ?) ORDER BY month",
        [MonthState.SETTLED, before],
    ).fetchall()
    return [str(m) for m, outcome in rows if still_moving(json.loads(outcome) if outcome else None)]


def unsent(db: Database) -> list[dict[str, Any]]:
    """Closed months the hub has not acknowledged yet, oldest first."""
    rows = db.execute(
        "SELECT month, state, document, signature, sync_attempts, sync_error, "
        "next_sync_at FROM months WHERE state IN (?, ?) ORDER BY month",
        list(UNSENT),
    ).fetchall()
    return [dict(r) for r in rows]


def mark(db: Database, month: str, fields: dict[str, Any]) -> None:
    """Set sync fields of a month that is not open (the caller checked the move)."""
    if not fields or not set(fields) <= SYNC_FIELDS:
        raise ValueError(f"not month sync fields: {sorted(fields)}")
    sets = ", ".join(f"{name} = ?" for name in fields)
    db.execute(
        f"UPDATE months SET {sets} WHERE month = ? AND state != 'open'",  # noqa: S608
        [*fields.values(), month],
    )


def listed(db: Database) -> list[Any]:
    """Every month, newest first, as the months list shows it."""
    return db.execute(
        "SELECT month, state, spend_cents, given_cents, closed_at, settled_at, "
        "sync_error FROM months ORDER BY month DESC"
    ).fetchall()


def moved(db: Database, month: str) -> list[dict[str, Any]]:
    """The flattrs moved out of `month` (settled without them) or into it,
    oldest first (daemon/records/sql.py)."""
    rows = db.execute(
        "SELECT id, url, title, creator, from_month, to_month, moved_at FROM moved_clicks "
        "WHERE from_month = ? OR to_month = ? ORDER BY moved_at, id",
        [month, month],
    ).fetchall()
    return [dict(r) for r in rows]
