"""Every statement on `clicks` and `subscriptions` (schema: daemon/store.py)."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlite_utils import Database

from .. import budget
from ..months.policy import MonthState
from .policy import subscription_click_id

CLICK_COLUMNS = (
    "id",
    "month",
    "url",
    "title",
    "creator",
    "creators",
    "weight",
    "auto",
    "subscription_id",
    "created_at",
    "undone_at",
)


def insert_click(db: Database, row: dict[str, Any]) -> bool:
    """Insert a flattr if its month is open: True if it went in, False if the
    month is not open; sqlite3.IntegrityError if a unique index refused it
    (the same id, or the same thing this month)."""
    return (
        db.execute(
            "INSERT INTO clicks (id, month, url, title, creator, creators, weight, auto, "
            "created_at) SELECT ?, ?, ?, ?, ?, ?, ?, 0, ? "
            "WHERE EXISTS (SELECT 1 FROM months WHERE month = ? AND state = ?)",
            [
                row["id"],
                row["month"],
                row["url"],
                row["title"],
                row["creator"],
                row["creators"],
                row["weight"],
                row["created_at"],
                row["month"],
                MonthState.OPEN,
            ],
        ).rowcount
        == 1
    )


IntegrityError = sqlite3.IntegrityError


def click(db: Database, click_id: str) -> Any:
    return db.execute("SELECT * FROM clicks WHERE id = ?", [click_id]).fetchone()


def live_click_for(db: Database, month: str, url: str | None) -> Any:
    """The month's live flattr of a thing."""
    return db.execute(
        "SELECT * FROM clicks WHERE month = ? AND url = ? AND undone_at IS NULL", [month, url]
    ).fetchone()


def undo(db: Database, click_id: str, at: str) -> None:
    db.execute("UPDATE clicks SET undone_at = ? WHERE id = ? AND undone_at IS NULL", [at, click_id])


def live_clicks(db: Database, month: str) -> list[Any]:
    return db.execute(
        "SELECT * FROM clicks WHERE month = ? AND undone_at IS NULL ORDER BY created_at, id",
        [month],
    ).fetchall()


def click_weights(db: Database, month: str) -> list[budget.ClickWeight]:
    """The month's live flattrs as the split reads them."""
    rows = db.execute(
        "SELECT id, created_at, creator, url, weight FROM clicks "
        "WHERE month = ? AND undone_at IS NULL",
        [month],
    ).fetchall()
    return [budget.ClickWeight(r[0], r[1], r[2], r[3], r[4]) for r in rows]


# -- subscriptions ---------------------------------------------------------------------


def subscription(db: Database, sub_id: str) -> Any:
    return db.execute("SELECT * FROM subscriptions WHERE id = ?", [sub_id]).fetchone()


def subscriptions(db: Database) -> list[Any]:
    return db.execute("SELECT * FROM subscriptions ORDER BY created_at, id").fetchall()


def insert_subscription(db: Database, row: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO subscriptions (id, url, creator, title, months, first_month, "
        "last_month, created_at, weight, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            row["id"],
            row["url"],
            row["creator"],
            row["title"],
            row["months"],
            row["first_month"],
            row["last_month"],
            row["created_at"],
            row["weight"],
            row["created_at"],
        ],
    )


def covering(db: Database, url: str | None, creator: str, month: str) -> Any:
    """The subscription to this thing (a creator subscription: `url` None)
    that still places flattrs from `month` on, if any: there is at most one."""
    return db.execute(
        "SELECT * FROM subscriptions WHERE url IS ? AND creator = ? AND last_month >= ? "
        "AND cancelled_month IS NULL ORDER BY created_at, id LIMIT 1",
        [url, creator, month],
    ).fetchone()


def change_subscription(db: Database, sub_id: str, weight: int, last_month: str, at: str) -> None:
    db.execute(
        "UPDATE subscriptions SET weight = ?, last_month = ?, changed_at = ? WHERE id = ?",
        [weight, last_month, at, sub_id],
    )


def cancel_subscription(db: Database, sub_id: str, from_month: str, at: str) -> None:
    db.execute(
        "UPDATE subscriptions SET cancelled_month = ?, changed_at = ? "
        "WHERE id = ? AND cancelled_month IS NULL",
        [from_month, at, sub_id],
    )


def place_subscription_clicks(db: Database, month: str, at: str) -> int:
    """Place the automatic click of every subscription due in `month`.

    Idempotent: a click already placed (even undone) for a subscription and a
    month, or a thing already flattred by hand that month, is left as it is.
    """
    subs = db.execute(
        "SELECT id, url, creator, title, weight FROM subscriptions "
        "WHERE first_month <= ? AND last_month >= ? "
        "AND (cancelled_month IS NULL OR cancelled_month > ?)",
        [month, month, month],
    ).fetchall()
    placed = 0
    for sub_id, url, creator, title, weight in subs:
        cur = db.execute(
            "INSERT OR IGNORE INTO clicks (id, month, url, title, creator, creators, weight, "
            "auto, subscription_id, created_at) VALUES (?, ?, ?, ?, ?, '[]', ?, 1, ?, ?)",
            [subscription_click_id(sub_id, month), month, url, title, creator, weight, sub_id, at],
        )
        placed += cur.rowcount
    return placed
