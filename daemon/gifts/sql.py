"""Every statement on `transfers` (schema: daemon/store.py)."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from .policy import GiftState

# The columns the hub link may set on a gift still sending.
SEND_FIELDS = frozenset(
    {
        "state",
        "error",
        "message",
        "attempts",
        "next_attempt_at",
        "receipt",
        "receipt_signature",
        "given_at",
    }
)


def get(db: Database, transfer_id: str) -> Any:
    return db.execute("SELECT * FROM transfers WHERE id = ?", [transfer_id]).fetchone()


def sending_cents(db: Database) -> int:
    """What is recorded and not yet answered by the hub."""
    return int(
        db.execute(
            "SELECT coalesce(sum(cents), 0) FROM transfers WHERE state = ?", [GiftState.SENDING]
        ).fetchone()[0]
    )


def from_browsers_since(db: Database, since: str) -> int:
    """What browsers asked to give since `since` (refused gifts aside)."""
    return int(
        db.execute(
            "SELECT coalesce(sum(cents), 0) FROM transfers "
            "WHERE from_browser = 1 AND created_at >= ? AND state != ?",
            [since, GiftState.REFUSED],
        ).fetchone()[0]
    )


def insert(db: Database, row: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO transfers (id, month, creator, url, title, note, cents, state, "
        "attempts, created_at, unlinkable, from_browser) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
        [
            row["id"],
            row["month"],
            row["creator"],
            row["url"],
            row["title"],
            row["note"],
            row["cents"],
            row["state"],
            row["created_at"],
            row["unlinkable"],
            row["from_browser"],
        ],
    )


def confirm(db: Database, transfer_id: str) -> None:
    """A gift waiting for the person, confirmed: it goes out."""
    db.execute(
        "UPDATE transfers SET state = ? WHERE id = ? AND state = ?",
        [GiftState.SENDING, transfer_id, GiftState.WAITING],
    )


def cancel(db: Database, transfer_id: str) -> None:
    """A gift waiting for the person, declined: nothing is sent."""
    db.execute(
        "UPDATE transfers SET state = ?, error = 'cancelled', "
        "message = 'declined by the person' WHERE id = ? AND state = ?",
        [GiftState.REFUSED, transfer_id, GiftState.WAITING],
    )


def every(db: Database) -> list[Any]:
    return db.execute("SELECT * FROM transfers ORDER BY created_at, id").fetchall()


def of_month(db: Database, month: str) -> list[Any]:
    return db.execute(
        "SELECT * FROM transfers WHERE month = ? ORDER BY created_at, id", [month]
    ).fetchall()


def sending(db: Database) -> list[Any]:
    """Recorded and not yet answered by the hub, oldest first."""
    return db.execute(
        "SELECT * FROM transfers WHERE state = ? ORDER BY created_at, id", [GiftState.SENDING]
    ).fetchall()


def mark(db: Database, transfer_id: str, fields: dict[str, Any]) -> None:
    """Set fields of a gift still sending (given or refused is final)."""
    if not fields or not set(fields) <= SEND_FIELDS:
        raise ValueError(f"not transfer fields: {sorted(fields)}")
    sets = ", ".join(f"{name} = ?" for name in fields)
    db.execute(
        f"UPDATE transfers SET {sets} WHERE id = ? AND state = ?",  # noqa: S608
        [*fields.values(), transfer_id, GiftState.SENDING],
    )
