"""The payout run: where accepted settlements' money goes, in batches.

A settlement is accepted as an append (hub/accept.py): its allocations wait
in state `pending` and its money in the month's `Unrouted` ledger accounts.
A payout run takes the pending allocations in chunks, oldest first, and
routes each chunk with the one routing function (hub/routing.py): to the
key's owner less the fee, withheld for an owner who has not given in that
month, or in escrow for a key nobody has proved. Then it releases what was
withheld for owners who have given since.

Each chunk is one transaction and one balanced ledger entry, so the books
sum to zero after every chunk, and a run stopped at any point (a process
killed) leaves the rest pending for the next run. Chunks are claimed with
`FOR UPDATE SKIP LOCKED` on PostgreSQL, so runs in several hub processes
share the work instead of queueing; SQLite has one writer at a time anyway.
Creators' balance rows are touched once per chunk, not once per settlement:
no popular creator's row is a lock every settlement queues on.

Locks, in the order every path takes them: allocation rows, then
`creator_keys` rows (shared, in key order; a proof takes its key's row
exclusively, so it waits for a chunk routing that key and then sees its
escrow), then ledger rows in name order (hub/ledger.py).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from . import bulk, ledger, routing
from .ledger import LedgerAccount, Tokens, Unrouted, Withheld
from .routing import NO_GIVER, Piece, Routed
from .schema import accounts, allocations, creator_keys, giving, ledger_accounts

CHUNK = 2000


@dataclass
class PayoutReport:
    routed_allocations: int = 0
    routed_cents: int = 0
    released_cents: int = 0
    chunks: int = 0
    last_id: int = 0  # the chunk's last allocation: where the next chunk starts

    def add(self, other: PayoutReport) -> None:
        self.routed_allocations += other.routed_allocations
        self.routed_cents += other.routed_cents
        self.released_cents += other.released_cents
        self.chunks += other.chunks


def select_pieces(*extra: Any) -> Any:
    """The stored allocation rows to make pieces of (`piece_of`), oldest first."""
    return select(
        allocations.c.id,
        allocations.c.account,
        allocations.c.month,
        allocations.c.creator,
        allocations.c.url,
        allocations.c.cents,
        allocations.c.transfer_id,
        *extra,
    ).order_by(allocations.c.id)


def piece_of(row: Any) -> Piece:
    return Piece(
        giver=row.account,
        month=row.month,
        creator=row.creator,
        cents=int(row.cents),
        url=row.url,
        transfer_id=row.transfer_id,
        id=int(row.id),
    )


async def route_pending_chunk(
    conn: AsyncConnection, *, must_give: bool, now: int, limit: int = CHUNK, after: int = 0
) -> PayoutReport:
    """Route up to `limit` pending allocations after the id `after`, oldest
    first; an empty report when none is left (or every one is being routed
    by another process).

    A run goes on from the last chunk's last id (`PayoutReport.last_id`)
    rather than from the start: the pending index keeps an entry for every
    row routed until VACUUM removes it, and reading from the start skipped
    all of them again at every chunk (272 ms for a chunk's first row after
    4.9 million routed rows, and growing). Rows left behind a cursor (a
    process that died holding them, an id committed late) wait for the next
    run, a minute at most."""
    rows = (
        await conn.execute(
            select_pieces()
            .where(allocations.c.state == "pending", allocations.c.id > after)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return PayoutReport()
    pieces = [piece_of(r) for r in rows]
    owners = await lock_keys(conn, sorted({p.creator for p in pieces}))
    months = sorted({p.month for p in pieces})
    people = sorted({o for o in owners.values() if o is not None})
    gave = await gave_in(conn, people, months)
    nonprofit = await nonprofits(conn, people)
    legs: defaultdict[LedgerAccount, int] = defaultdict(int)
    updates: list[tuple[int, dict[str, Any]]] = []
    for month in months:
        routed = routing.route(
            [p for p in pieces if p.month == month],
            owners=owners,
            gave={o: gave.get((o, month), False) for o in people},
            nonprofit=nonprofit,
            must_give=must_give,
            now=now,
        )
        for account, cents in routed.legs.items():
            legs[account] += cents
        # A redeemed token's cents come from the month's tokens; the rest
        # from the month's unrouted money, where acceptance put it.
        tokens_cents = sum(p.cents for p in pieces if p.month == month and p.giver == NO_GIVER)
        if tokens_cents:
            legs[Tokens(month)] -= tokens_cents
        await take_unrouted(conn, month, routed.gross_cents - tokens_cents, legs)
        updates += routed.updates
    await apply_updates(conn, updates)
    first, last = pieces[0].id, pieces[-1].id
    await ledger.post(conn, "payout", f"{first}-{last}:{secrets.token_hex(4)}", legs, now)
    return PayoutReport(
        routed_allocations=len(pieces),
        routed_cents=sum(p.cents for p in pieces),
        chunks=1,
        last_id=int(last or 0),
    )


async def release_withheld_chunk(
    conn: AsyncConnection, *, now: int, limit: int = CHUNK, after: int = 0
) -> PayoutReport:
    """Release up to `limit` withheld allocations after the id `after` whose
    owner has given in the month they wait for (their money goes to the
    owner less the fee); a run goes on from the last chunk's last id, as
    `route_pending_chunk` does."""
    gave = exists().where(
        and_(
            giving.c.account == allocations.c.recipient,
            giving.c.month == allocations.c.withheld_month,
            giving.c.gave.is_(True),
        )
    )
    rows = (
        await conn.execute(
            select_pieces(allocations.c.recipient, allocations.c.withheld_month)
            .where(allocations.c.state == "withheld", allocations.c.id > after, gave)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return PayoutReport()
    by_owner: defaultdict[tuple[str, str], list[Piece]] = defaultdict(list)
    for r in rows:
        by_owner[(r.recipient, r.withheld_month)].append(piece_of(r))
    nonprofit = await nonprofits(conn, sorted({owner for owner, _m in by_owner}))
    legs: defaultdict[LedgerAccount, int] = defaultdict(int)
    updates: list[tuple[int, dict[str, Any]]] = []
    released = 0
    for (owner, month), group in sorted(by_owner.items()):
        routed = routing.release(
            group,
            source=Withheld(owner, month),
            owner=owner,
            gave=True,
            nonprofit=nonprofit[owner],
            must_give=True,
            month=month,
            now=now,
        )
        for account, cents in routed.legs.items():
            legs[account] += cents
        updates += routed.updates
        released += routed.gross_cents
    await apply_updates(conn, updates)
    first, last = rows[0].id, rows[-1].id
    await ledger.post(conn, "release", f"{first}-{last}:{secrets.token_hex(4)}", legs, now)
    return PayoutReport(released_cents=released, chunks=1, last_id=int(last))


async def lock_keys(
    conn: AsyncConnection, keys: Sequence[str], *, exclusive: bool = False
) -> dict[str, str | None]:
    """Each key's owner, the rows locked in key order: shared to route money
    to a key (many may at once), exclusive to change its owner or its escrow."""
    if not keys:
        return {}
    await bulk.insert_many(conn, creator_keys, [{"key": k} for k in keys], ignore=True)
    rows = await conn.execute(
        select(creator_keys.c.key, creator_keys.c.owner)
        .where(bulk.one_of(conn, creator_keys.c.key, keys))
        .order_by(creator_keys.c.key)
        .with_for_update(read=not exclusive)
    )
    return {k: o for k, o in rows}


async def gave_in(
    conn: AsyncConnection, people: Sequence[str], months: Sequence[str]
) -> dict[tuple[str, str], bool]:
    """Whether each of `people` gave in each of `months` (read, not locked:
    an owner who gives meanwhile has their withheld money released by the
    next run's release step)."""
    if not people:
        return {}
    rows = await conn.execute(
        select(giving.c.account, giving.c.month, giving.c.gave).where(
            bulk.one_of(conn, giving.c.account, people),
            bulk.one_of(conn, giving.c.month, months),
        )
    )
    return {(a, m): bool(g) for a, m, g in rows}


async def nonprofits(conn: AsyncConnection, people: Sequence[str]) -> dict[str, bool]:
    if not people:
        return {}
    rows = await conn.execute(
        select(accounts.c.id, accounts.c.nonprofit).where(bulk.one_of(conn, accounts.c.id, people))
    )
    found = {a: bool(n) for a, n in rows}
    return {p: found.get(p, False) for p in people}


async def take_unrouted(
    conn: AsyncConnection, month: str, cents: int, legs: defaultdict[LedgerAccount, int]
) -> None:
    """Debit `cents` of `month`'s unrouted money from its shards (one pool;
    acceptance spreads over them so that concurrent commits do not queue on
    one row). Each shard is read under its row lock, one at a time, skipping
    those another transaction holds while unlocked ones have money: two
    payout chunks never plan on the same cents."""
    left = cents
    taken: list[str] = []
    prefix = f"{Unrouted.prefix}:{month}:"
    for skip_locked in (True, False):
        while left > 0:
            row = (
                await conn.execute(
                    select(ledger_accounts.c.name, ledger_accounts.c.balance_cents)
                    .where(
                        ledger_accounts.c.name.startswith(prefix, autoescape=True),
                        ledger_accounts.c.balance_cents > 0,
                        ledger_accounts.c.name.not_in(taken),
                    )
                    .order_by(ledger_accounts.c.name)
                    .limit(1)
                    .with_for_update(skip_locked=skip_locked)
                )
            ).first()
            if row is None:
                break
            taken.append(row.name)
            shard = ledger.parse_account(row.name)
            take = min(left, int(row.balance_cents) + legs[shard])
            legs[shard] -= take
            left -= take
    if left > 0:
        raise ledger.InsufficientFunds(f"unrouted:{month}", left)


async def apply(conn: AsyncConnection, routed: Routed) -> None:
    """Write a routing's allocation rows: new ones inserted, stored ones updated."""
    await bulk.insert_many(conn, allocations, routed.rows)
    await apply_updates(conn, routed.updates)


async def apply_updates(
    conn: AsyncConnection, updates: Sequence[tuple[int, dict[str, Any]]]
) -> None:
    """Write routed values onto stored allocation rows (one statement per
    shape of values: credited rows differ from withheld ones)."""
    await bulk.update_many(conn, allocations, "id", updates)
