"""The double-entry ledger: balanced entries, never changed, balances never negative.

A ledger account is a typed value, one class per kind (hub/accounts.py,
pure), each with its overdraft rule declared: only `Provider`, the outside
world, may go below zero.

Its guarantees, and what keeps each:
- Every entry sums to zero: `post` refuses an unbalanced one, and on
  PostgreSQL a statement-level trigger refuses any entry whose postings do
  not (migration 0005; an entry's postings are written by one statement);
  `mecene-hub check` sums them all.
- No balance goes below zero unless its kind says it may: the UPDATE that
  moves balances refuses it, and a CHECK constraint backs it
  (`may_go_negative` is stored when the account is first used, from its kind).
- An entry is never changed: corrections are new entries (`reverses`).
- One entry per (kind, ref): the idempotency of deposits, settlements,
  transfers and withdrawals (DuplicateEntry).
- A balance is the sum of its postings (`mecene-hub check`: no drift).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, String, column, func, select, text, update, values
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from . import bulk
from .accounts import (
    KINDS,
    Creator,
    Escrow,
    Fees,
    LedgerAccount,
    Payouts,
    Provider,
    ProviderFees,
    Tokens,
    Unrouted,
    User,
    Withheld,
    parse_account,
)
from .schema import entries, ledger_accounts, postings

__all__ = [
    "KINDS",
    "Creator",
    "DuplicateEntry",
    "Escrow",
    "Fees",
    "InsufficientFunds",
    "LedgerAccount",
    "Payouts",
    "Provider",
    "ProviderFees",
    "Tokens",
    "Unrouted",
    "User",
    "Withheld",
    "parse_account",
]


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
    legs: Mapping[LedgerAccount, int],
    now: int,
    *,
    reverses: int | None = None,
) -> int:
    """Record one balanced movement; returns the entry id.

    Raises InsufficientFunds (and the caller's transaction must roll back) if a
    balance would go below zero, DuplicateEntry if (kind, ref) was posted."""
    moves = {account.name: cents for account, cents in legs.items() if cents != 0}
    if len(moves) != len({a for a, c in legs.items() if c != 0}):
        raise ValueError(f"entry {kind}:{ref} names one account twice")
    if sum(moves.values()) != 0:
        raise ValueError(f"unbalanced entry {kind}:{ref}: {dict(moves)}")
    overdraft = {a.name: a.may_go_negative for a in legs}
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
    await bulk.insert_many(
        conn,
        ledger_accounts,
        [{"name": n, "may_go_negative": overdraft[n]} for n in names],
        ignore=True,
    )
    await _move(conn, moves, overdraft, f"entry {kind}:{ref}")
    # All the legs in one statement: PostgreSQL checks each entry's sum when
    # the statement that wrote it ends (migration 0005).
    await bulk.insert_many(
        conn,
        postings,
        [{"entry_id": entry_id, "ledger_account": n, "amount_cents": moves[n]} for n in names],
    )
    return int(entry_id)


async def _move(
    conn: AsyncConnection, moves: Mapping[str, int], overdraft: Mapping[str, bool], what: str
) -> None:
    """Move balances by `moves`, refusing any that would go negative where its
    kind forbids it. The rows are locked in one order everywhere (name order),
    so that concurrent entries touching the same accounts queue instead of
    deadlocking; then every balance moves in one statement."""
    names = sorted(moves)
    await conn.execute(
        select(ledger_accounts.c.name)
        .where(bulk.one_of(conn, ledger_accounts.c.name, names))
        .order_by(ledger_accounts.c.name)
        .with_for_update()
    )
    if conn.dialect.name == "postgresql":
        # Arrays, one statement text whatever the number of accounts: a
        # VALUES list of a payout chunk's thousand accounts cost more to
        # build than to run.
        done = await conn.execute(
            text(
                "UPDATE ledger_accounts SET balance_cents = balance_cents + v.delta "
                "FROM unnest(CAST(:names AS text[]), CAST(:deltas AS bigint[])) AS v(name, delta) "
                "WHERE ledger_accounts.name = v.name AND (ledger_accounts.may_go_negative "
                "OR ledger_accounts.balance_cents + v.delta >= 0) "
                "RETURNING ledger_accounts.name"
            ),
            {"names": names, "deltas": [moves[n] for n in names]},
        )
    else:
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
            balance = await _balance(conn, name)
            if balance + moves[name] < 0 and not overdraft[name]:
                raise InsufficientFunds(name, -(balance + moves[name]))
        raise AssertionError(f"{what} moved {moved} of {len(names)} balances")


async def lock(conn: AsyncConnection, wanted: Sequence[LedgerAccount]) -> dict[LedgerAccount, int]:
    """Lock the rows of `wanted` (created if new) in name order, the order every
    path takes them, and return their balances."""
    by_name = {a.name: a for a in wanted}
    names = sorted(by_name)
    if not names:
        return {}
    await bulk.insert_many(
        conn,
        ledger_accounts,
        [{"name": n, "may_go_negative": by_name[n].may_go_negative} for n in names],
        ignore=True,
    )
    rows = await conn.execute(
        select(ledger_accounts.c.name, ledger_accounts.c.balance_cents)
        .where(bulk.one_of(conn, ledger_accounts.c.name, names))
        .order_by(ledger_accounts.c.name)
        .with_for_update()
    )
    return {by_name[n]: int(b) for n, b in rows}


async def post_many(
    conn: AsyncConnection,
    many: Sequence[tuple[str, str, Mapping[LedgerAccount, int]]],
    now: int,
) -> list[int]:
    """Record many balanced movements (kind, ref, legs) at once: one statement
    for the entries, one for every balance they move, one for the postings.
    The same guarantees as `post`, for a batch (group commit)."""
    if not many:
        return []
    moves: list[dict[str, int]] = []
    overdraft: dict[str, bool] = {}
    for kind, ref, legs in many:
        entry = {a.name: c for a, c in legs.items() if c != 0}
        if sum(entry.values()) != 0:
            raise ValueError(f"unbalanced entry {kind}:{ref}: {entry}")
        moves.append(entry)
        overdraft.update({a.name: a.may_go_negative for a in legs})
    if len({(k, r) for k, r, _l in many}) != len(many):
        raise DuplicateEntry("the same entry twice in one batch")
    ids = {
        (k, r): int(i)
        for k, r, i in await bulk.insert_many(
            conn,
            entries,
            [{"kind": k, "ref": r, "created_at": now} for k, r, _l in many],
            ignore=True,
            returning=("kind", "ref", "id"),
        )
    }
    if len(ids) != len(many):
        missing = [f"{k}:{r}" for k, r, _l in many if (k, r) not in ids]
        raise DuplicateEntry(", ".join(missing[:3]))
    total: dict[str, int] = {}
    for entry in moves:
        for name, cents in entry.items():
            total[name] = total.get(name, 0) + cents
    names = sorted(total)
    if names:  # entries of no money (a free settlement) move nothing
        await bulk.insert_many(
            conn,
            ledger_accounts,
            [{"name": n, "may_go_negative": overdraft[n]} for n in names],
            ignore=True,
        )
        await _move(conn, total, overdraft, "a batch")
        await bulk.insert_many(
            conn,
            postings,
            [
                {"entry_id": ids[(k, r)], "ledger_account": n, "amount_cents": c}
                for (k, r, _l), entry in zip(many, moves, strict=True)
                for n, c in sorted(entry.items())
            ],
        )
    return [ids[(k, r)] for k, r, _l in many]


async def _balance(conn: AsyncConnection, name: str) -> int:
    value = await conn.scalar(
        select(ledger_accounts.c.balance_cents).where(ledger_accounts.c.name == name)
    )
    return int(value or 0)


async def balance_cents(conn: AsyncConnection, account: LedgerAccount) -> int:
    return await _balance(conn, account.name)


async def balances(
    conn: AsyncConnection, kind: type[LedgerAccount], *first: str
) -> dict[LedgerAccount, int]:
    """The balances of every account of `kind` whose first parts are `first`
    (e.g. `balances(conn, Withheld, account)`: one creator's withheld months)."""
    prefix = ":".join([kind.prefix, *first, ""])
    rows = await conn.execute(
        select(ledger_accounts.c.name, ledger_accounts.c.balance_cents).where(
            ledger_accounts.c.name.startswith(prefix, autoescape=True)
        )
    )
    return {parse_account(name): int(cents) for name, cents in rows}


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
