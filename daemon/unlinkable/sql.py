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


def summary(
    db: Database, month: str, joined: frozenset[str] | None = None
) -> dict[str, Any] | None:
    """A month's own tokens by state (count and cents), or None if it has
    none. With `joined` (the creators on Mécène), the redeemed tokens for
    creators not among them are also counted as `held_tokens`/`held_cents`:
    their money waits in escrow at the hub until they join."""
    rows = db.execute(
        "SELECT state, creator, count(*), sum(cents) FROM unlinkable_tokens "
        "WHERE month = ? AND transfer_id IS NULL GROUP BY state, creator",
        [month],
    ).fetchall()
    if not rows:
        return None
    out: dict[str, dict[str, int]] = {}
    for state, creator, n, cents in rows:
        got = out.setdefault(state, {"tokens": 0, "cents": 0})
        got["tokens"] += n
        got["cents"] += cents
        if state == "redeemed" and joined is not None and creator not in joined:
            got["held_tokens"] = got.get("held_tokens", 0) + n
            got["held_cents"] = got.get("held_cents", 0) + cents
    return out


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


def insert_all(db: Database, rows: Sequence[dict[str, Any]]) -> None:
    db.table("unlinkable_tokens").insert_all(rows)


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


def make_pooled(db: Database, finished: Sequence[tuple[str, str]]) -> None:
    """(id, authenticator hex) of tokens the hub signed for the gift pool."""
    db.conn.executemany(
        "UPDATE unlinkable_tokens SET state = ?, authenticator = ?, "
        "blinded = NULL, inv = NULL WHERE id = ? AND state = ?",
        [(TokenState.POOLED, a, i, TokenState.BLINDED) for i, a in finished],
    )


def pooled(db: Database, since_month: str) -> list[str]:
    """Ids of tokens held for gifts, of `since_month` or later, oldest month first."""
    rows = db.execute(
        "SELECT id FROM unlinkable_tokens WHERE state = ? AND month >= ? ORDER BY month, id",
        [TokenState.POOLED, since_month],
    ).fetchall()
    return [r[0] for r in rows]


def give_from_pool(db: Database, moments: Sequence[tuple[str, str, str, str]]) -> None:
    """(id, creator, transfer id, redeem_at): pooled tokens given to a gift."""
    db.conn.executemany(
        "UPDATE unlinkable_tokens SET state = ?, creator = ?, transfer_id = ?, redeem_at = ? "
        "WHERE id = ? AND state = ?",
        [(TokenState.READY, c, t, at, i, TokenState.POOLED) for i, c, t, at in moments],
    )


def pooled_cents(db: Database) -> int:
    """What the tokens held for gifts are worth."""
    row = db.execute(
        "SELECT coalesce(sum(cents), 0) FROM unlinkable_tokens WHERE state = ?",
        [TokenState.POOLED],
    ).fetchone()
    return int(row[0])


def gifts_waiting(db: Database) -> list[tuple[str, int]]:
    """(id, cents) of unlinkable gifts still to pay that have no token yet."""
    rows = db.execute(
        "SELECT t.id, t.cents FROM transfers t WHERE t.state = 'sending' AND t.unlinkable "
        "AND NOT EXISTS (SELECT 1 FROM unlinkable_tokens u WHERE u.transfer_id = t.id) "
        "ORDER BY t.created_at, t.id"
    ).fetchall()
    return [(r[0], int(r[1])) for r in rows]


def purchases_in_flight(db: Database) -> list[str]:
    """Pool purchases written but not yet answered by the hub."""
    rows = db.execute(
        "SELECT DISTINCT transfer_id FROM unlinkable_tokens "
        "WHERE state = ? AND transfer_id LIKE 'pool-%' ORDER BY transfer_id",
        [TokenState.BLINDED],
    ).fetchall()
    return [r[0] for r in rows]


def forget_purchase(db: Database, purchase: str) -> None:
    """A purchase the hub refused for good: its tokens were never signed."""
    db.execute(
        "DELETE FROM unlinkable_tokens WHERE transfer_id = ? AND state = ?",
        [purchase, TokenState.BLINDED],
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


# -- key consistency: the month's pinned directory, and issuance receipts -------------


def directory(db: Database, month: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM token_directories WHERE month = ?", [month]))
    return rows[0] if rows else None


def pin(db: Database, month: str, sha256: str, body: str, at: str) -> str:
    """Pin the month's directory unless one is pinned already; the pinned one's hash."""
    db.execute(
        "INSERT OR IGNORE INTO token_directories (month, sha256, body, pinned_at) "
        "VALUES (?, ?, ?, ?)",
        [month, sha256, body, at],
    )
    found = directory(db, month)
    assert found is not None
    return str(found["sha256"])


def checked(db: Database, month: str, at: str) -> None:
    db.execute("UPDATE token_directories SET checked_at = ? WHERE month = ?", [at, month])


def keep_receipt(db: Database, ref: str, month: str, receipt: str, signature: str) -> None:
    db.execute(
        "INSERT OR REPLACE INTO token_receipts (ref, month, receipt, signature) "
        "VALUES (?, ?, ?, ?)",
        [ref, month, receipt, signature],
    )
