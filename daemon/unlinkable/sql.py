"""Every statement on `unlinkable_tokens` (schema: daemon/store.py). A
month's own tokens are always `transfer_id IS NULL`; a gift's carry its id."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

from .. import budget
from ..months.policy import MonthState
from .policy import TokenState, planned


def plan(db: Database, month: str, shares: Sequence[budget.Allocation]) -> int:
    """Plan the tokens of `month`'s shares (policy.planned: whole tokens,
    randomised rounding), replacing a plan not yet sent; the number planned."""
    db.execute(
        "DELETE FROM unlinkable_tokens WHERE month = ? AND state = ? AND transfer_id IS NULL",
        [month, TokenState.PLANNED],
    )
    rows = planned(month, shares, secrets.randbelow)
    if rows:
        db.table("unlinkable_tokens").insert_all(rows)
    return len(rows)


def summary(db: Database, month: str) -> dict[str, Any] | None:
    """A month's own tokens by state (count and cents), or None if it has none."""
    rows = db.execute(
        "SELECT state, count(*), sum(cents) FROM unlinkable_tokens "
        "WHERE month = ? AND transfer_id IS NULL GROUP BY state",
        [month],
    ).fetchall()
    if not rows:
        return None
    return {state: {"tokens": n, "cents": c} for state, n, c in rows}


def shares(db: Database, month: str) -> list[dict[str, Any]]:
    """A month's split by creator, as its tokens keep it (the hub was sent none)."""
    rows = db.execute(
        "SELECT creator, sum(cents) FROM unlinkable_tokens "
        "WHERE month = ? AND transfer_id IS NULL GROUP BY creator ORDER BY creator",
        [month],
    )
    return [{"creator": creator, "cents": cents} for creator, cents in rows]


def months_to_issue(db: Database) -> list[str]:
    """Settled months whose tokens are not all issued yet."""
    rows = db.execute(
        "SELECT DISTINCT t.month FROM unlinkable_tokens t "
        "JOIN months m ON m.month = t.month "
        "WHERE t.state IN (?, ?) AND m.state = ? AND t.transfer_id IS NULL "
        "ORDER BY t.month",
        [*(str(s) for s in (TokenState.PLANNED, TokenState.BLINDED)), MonthState.SETTLED],
    ).fetchall()
    return [r[0] for r in rows]


def planned_of_month(db: Database, month: str) -> list[tuple[str, int]]:
    """(id, cents) of a month's own tokens still to blind."""
    rows = db.execute(
        "SELECT id, cents FROM unlinkable_tokens "
        "WHERE month = ? AND state = ? AND transfer_id IS NULL",
        [month, TokenState.PLANNED],
    ).fetchall()
    return [(r[0], int(r[1])) for r in rows]


def blinded_of_month(db: Database, month: str) -> list[dict[str, Any]]:
    return list(
        db.query(
            "SELECT * FROM unlinkable_tokens "
            "WHERE month = ? AND state = ? AND transfer_id IS NULL ORDER BY id",
            [month, TokenState.BLINDED],
        )
    )


def of_transfer(db: Database, transfer_id: str) -> list[dict[str, Any]]:
    return list(
        db.query("SELECT * FROM unlinkable_tokens WHERE transfer_id = ? ORDER BY id", [transfer_id])
    )


def update(db: Database, token_id: str, changes: dict[str, Any]) -> None:
    db.table("unlinkable_tokens").update(token_id, changes)


def insert(db: Database, row: dict[str, Any]) -> None:
    db.table("unlinkable_tokens").insert(row)


def fail_transfer(db: Database, transfer_id: str, code: str) -> None:
    db.execute(
        "UPDATE unlinkable_tokens SET state = ?, error = ? WHERE transfer_id = ?",
        [TokenState.FAILED, code, transfer_id],
    )


def make_ready(db: Database, finished: Sequence[tuple[str, str, str]]) -> None:
    """(id, authenticator hex, redeem_at) of tokens the hub signed."""
    db.conn.executemany(
        "UPDATE unlinkable_tokens SET state = ?, authenticator = ?, redeem_at = ?, "
        "blinded = NULL, inv = NULL WHERE id = ? AND state = ?",
        [(TokenState.READY, a, at, i, TokenState.BLINDED) for i, a, at in finished],
    )


def reschedule(db: Database, moments: Sequence[tuple[str, str]]) -> None:
    """(id, redeem_at) of ready tokens given new moments."""
    db.conn.executemany(
        "UPDATE unlinkable_tokens SET redeem_at = ? WHERE id = ? AND state = ?",
        [(at, i, TokenState.READY) for i, at in moments],
    )


def ready(db: Database) -> list[dict[str, Any]]:
    return list(
        db.query(
            "SELECT * FROM unlinkable_tokens WHERE state = ? ORDER BY redeem_at",
            [TokenState.READY],
        )
    )
