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

(`fees:NN` are the hub's fees, in 16 shards; a direct transfer moves money as
a settlement does.)

Its guarantees, and what keeps each:
- Every entry sums to zero: `post` refuses an unbalanced one, and on
  PostgreSQL a deferred constraint trigger refuses, at commit, any entry
  whose postings do not (migration 0003); `mecene-hub check` sums them all.
- No balance goes negative but an outside world's (`provider:`): the UPDATE
  that moves balances refuses it, and a CHECK constraint backs it
  (`may_go_negative` is set when the account is first used, from its kind).
- An entry is never changed: corrections are new entries (`reverses`).
- One entry per (kind, ref): the idempotency of deposits, settlements,
  transfers and withdrawals (DuplicateEntry).
- A balance is the sum of its postings (`mecene-hub check`: no drift).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import BigInteger, String, column, func, insert, select, update, values
from sqlalchemy.dialects import postgresql, sqlite
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


def upsert(conn: AsyncConnection, table: Any) -> Any:
    """An INSERT that can take ON CONFLICT clauses, in the connection's own dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def insert_ignore(conn: AsyncConnection, table: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING."""
    return upsert(conn, table).on_conflict_do_nothing()


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
    entry_id = await conn.scalar(
        insert_ignore(conn, entries)
        .values(kind=kind, ref=ref, created_at=now, reverses=reverses)
        .returning(entries.c.id)
    )
    if entry_id is None:
        raise DuplicateEntry(f"{kind}:{ref}")
    if not moves:
        return int(entry_id)
    names = sorted(moves)
    await conn.execute(
        insert_ignore(conn, ledger_accounts),
        [{"name": n, "may_go_negative": n.startswith(OUTSIDE_PREFIXES)} for n in names],
    )
    # Lock the rows in one order everywhere (name order), so that concurrent
    # entries touching the same accounts queue instead of deadlocking; then
    # move every balance in one statement, refusing any that would go negative.
    await conn.execute(
        select(ledger_accounts.c.name)
        .where(ledger_accounts.c.name.in_(names))
        .order_by(ledger_accounts.c.name)
        .with_for_update()
    )
    deltas = (
        values(column("name", String), column("delta", BigInteger), name="deltas")
        .data([(n, moves[n]) for n in names])
        .cte("deltas")
    )
    done = await conn.execute(
        update(ledger_accounts)
        .where(ledger_accounts.c.name == deltas.c.name)
        .where(
            ledger_accounts.c.may_go_negative
            | (ledger_accounts.c.balance_cents + deltas.c.delta >= 0)
        )
        .values(balance_cents=ledger_accounts.c.balance_cents + deltas.c.delta)
        .returning(ledger_accounts.c.name)  # counted: rowcount is -1 after a WITH on SQLite
    )
    moved = len(done.all())
    if moved != len(names):
        for name in names:
            balance = await balance_cents(conn, name)
            if balance + moves[name] < 0 and not name.startswith(OUTSIDE_PREFIXES):
                raise InsufficientFunds(name, -(balance + moves[name]))
        raise AssertionError(f"entry {kind}:{ref} moved {moved} of {len(names)} balances")
    await conn.execute(
        insert(postings),
        [{"entry_id": entry_id, "ledger_account": n, "amount_cents": moves[n]} for n in names],
    )
    return int(entry_id)


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
