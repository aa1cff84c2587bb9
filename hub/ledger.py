"""The double-entry ledger: balanced entries, never changed, balances never negative.

Ledger account names say whose money it is:

    user:ACCOUNT             a person's balance, spent by their settlements
    creator:ACCOUNT          what a creator has received, withdrawable
    withheld:ACCOUNT:MONTH   received in a month the creator gave nothing in
    escrow:KEY               given to a creator key nobody has proved yet
    fees                     the hub's 10 %
    provider:METHOD          the outside world paying in (may go negative)
    provider-fees:METHOD     what the payment provider kept
    payouts                  paid out to creators' banks
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import entries, ledger_accounts, postings

OUTSIDE_PREFIXES = ("provider:",)


class InsufficientFunds(Exception):
    def __init__(self, account: str, short_cents: int) -> None:
        super().__init__(f"{account} is short of {short_cents} cents")
        self.account = account
        self.short_cents = short_cents


class DuplicateEntry(Exception):
    """An entry of this kind and reference exists already (idempotency)."""


def insert_ignore(conn: AsyncConnection, table: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING, in the connection's own dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


async def post(
    conn: AsyncConnection,
    kind: str,
    ref: str,
    legs: Mapping[str, int],
    now: int,
    *,
    reverses: int | None = None,
) -> int:
    """Record one balanced movement; returns the entry id.

    Raises InsufficientFunds (and the caller's transaction must roll back) if a
    balance would go below zero, DuplicateEntry if (kind, ref) was posted."""
    moves = {name: cents for name, cents in legs.items() if cents != 0}
    if sum(moves.values()) != 0:
        raise ValueError(f"unbalanced entry {kind}:{ref}: {dict(moves)}")
    try:
        async with conn.begin_nested():
            result = await conn.execute(
                insert(entries).values(kind=kind, ref=ref, created_at=now, reverses=reverses)
            )
    except IntegrityError:
        raise DuplicateEntry(f"{kind}:{ref}") from None
    entry_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    if not moves:
        return entry_id
    names = sorted(moves)  # one order everywhere: no lock-order deadlocks
    await conn.execute(
        insert_ignore(conn, ledger_accounts),
        [{"name": n, "may_go_negative": n.startswith(OUTSIDE_PREFIXES)} for n in names],
    )
    for name in names:
        cents = moves[name]
        done = await conn.execute(
            update(ledger_accounts)
            .where(ledger_accounts.c.name == name)
            .where(
                ledger_accounts.c.may_go_negative | (ledger_accounts.c.balance_cents + cents >= 0)
            )
            .values(balance_cents=ledger_accounts.c.balance_cents + cents)
        )
        if done.rowcount != 1:
            balance = await balance_cents(conn, name)
            raise InsufficientFunds(name, -(balance + cents))
    await conn.execute(
        insert(postings),
        [{"entry_id": entry_id, "ledger_account": n, "amount_cents": moves[n]} for n in names],
    )
    return entry_id


async def balance_cents(conn: AsyncConnection, name: str) -> int:
    value = await conn.scalar(
        select(ledger_accounts.c.balance_cents).where(ledger_accounts.c.name == name)
    )
    return int(value or 0)


async def balances(conn: AsyncConnection, prefix: str) -> dict[str, int]:
    rows = await conn.execute(
        select(ledger_accounts.c.name, ledger_accounts.c.balance_cents).where(
            ledger_accounts.c.name.startswith(prefix, autoescape=True)
        )
    )
    return {name: int(cents) for name, cents in rows}


async def check_books(conn: AsyncConnection) -> dict[str, int]:
    """The invariants, for tests and `mecene-hub check`: postings sum to zero,
    every entry is balanced, and every balance equals the sum of its postings."""
    total = await conn.scalar(select(func.coalesce(func.sum(postings.c.amount_cents), 0)))
    unbalanced = await conn.scalar(
        select(func.count()).select_from(
            select(postings.c.entry_id)
            .group_by(postings.c.entry_id)
            .having(func.sum(postings.c.amount_cents) != 0)
            .subquery()
        )
    )
    sums = (
        select(
            postings.c.ledger_account.label("name"),
            func.sum(postings.c.amount_cents).label("cents"),
        )
        .group_by(postings.c.ledger_account)
        .subquery()
    )
    drifted = await conn.scalar(
        select(func.count())
        .select_from(ledger_accounts.outerjoin(sums, sums.c.name == ledger_accounts.c.name))
        .where(ledger_accounts.c.balance_cents != func.coalesce(sums.c.cents, 0))
    )
    negative = await conn.scalar(
        select(func.count())
        .select_from(ledger_accounts)
        .where(~ledger_accounts.c.may_go_negative & (ledger_accounts.c.balance_cents < 0))
    )
    return {
        "sum_cents": int(total or 0),
        "unbalanced_entries": int(unbalanced or 0),
        "drifted_balances": int(drifted or 0),
        "negative_balances": int(negative or 0),
    }
