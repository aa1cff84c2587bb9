"""The payout run: where accepted settlements' money goes, in batches.

A settlement is accepted as an append (hub/accept.py): its allocations wait
in state `pending` and its money in the month's `Unrouted` ledger accounts.
A payout run takes the pending allocations in chunks of whole settlements,
oldest first, and routes each chunk as set operations inside the database
(hub/routeset.py, the SQL of the one routing rule, hub/routing.py): to the
key's owner less the fee, withheld for an owner who has not given in that
month, or in escrow for a key nobody has proved. Then it releases what was
withheld for owners who have given since.

Each chunk is one transaction and one balanced ledger entry, so the books
sum to zero after every chunk, and a run stopped at any point (a process
killed) leaves the rest pending for the next run. One hub process routes
pending rows at a time (`take_turn`); releases are claimed with `FOR UPDATE
SKIP LOCKED`, as a gift may release the same rows. Creators' balance rows
are touched once per chunk, not once per settlement: no popular creator's
row is a lock every settlement queues on.

Locks, in the order every path takes them: the payout turn, allocation rows
(a release's claim), then `creator_keys` rows (shared, in key order; a proof
takes its key's row exclusively, so it waits for a chunk routing that key
and then sees its escrow), then the rows the chunk writes, then ledger rows
in name order (hub/ledger.py).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from mecene.settlement import MAX_ALLOCATIONS

from . import bulk, counting, ledger, routeset
from .ledger import LedgerAccount, Tokens, Unrouted
from .routing import Piece, Routed
from .schema import accounts, allocations, creator_keys, giving, ledger_accounts

# Allocations per chunk: at least a settlement's largest number of rows, and
# large, because a chunk moves each creator's balance once, whatever the
# number of its rows (docs/SCALE.md, "Larger chunks"). The balances it moves
# are locked only for its last statements, the creator keys (shared) for all
# of it, about 1.3 s here.
CHUNK = 5 * MAX_ALLOCATIONS
# PostgreSQL's memory for each sort of a chunk (see `route_pending_chunk`).
CHUNK_WORK_MEM = "64MB"


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
    first, inside the database (hub/routeset.py); an empty report when none
    is left (or every one is being routed by another process).

    A chunk holds whole settlements: its last (giver, month) is left for the
    next chunk when the limit cut it, so a unit of payment's fee is rounded
    once. A run goes on from the last chunk's last id (`PayoutReport.last_id`)
    rather than from the start: the pending index keeps an entry for every
    row routed until VACUUM removes it, and reading from the start skipped
    all of them again at every chunk (272 ms for a chunk's first row after
    4.9 million routed rows, and growing). Rows left behind a cursor (a
    process that died holding them, an id committed late) wait for the next
    run, a minute at most."""
    if not await take_turn(conn):
        return PayoutReport()
    claimed = (
        await conn.execute(
            select(allocations.c.id, allocations.c.account, allocations.c.month)
            .where(allocations.c.state == "pending", allocations.c.id > after)
            .order_by(allocations.c.id)
            .limit(limit)
        )
    ).all()
    if not claimed:
        return PayoutReport()
    kept = whole_settlements(claimed, full=len(claimed) == limit)
    first, last = int(kept[0].id), int(kept[-1].id)
    # Every pending row in the range, read again by the statements below: a
    # settlement committed meanwhile with ids inside it is whole (its rows
    # commit together), and `fill` computes it with the rest in one snapshot,
    # all but its rows to a (key, month) the chunk did not resolve (and so
    # did not lock), which stay pending for the next run, as a unit of
    # payment is one key's rows and no unit is cut.
    chosen = and_(allocations.c.state == "pending", allocations.c.id.between(first, last))
    if conn.dialect.name == "postgresql":
        # The chunk's sorts (the fee's windows, the counters' keys) in
        # memory: with the default 4 MB they spilled to disk (docs/SCALE.md).
        # One chunk runs at a time (`take_turn`), so this much is bounded.
        await conn.execute(text(f"SET LOCAL work_mem = '{CHUNK_WORK_MEM}'"))
    pairs = (
        await conn.execute(
            select(allocations.c.creator, allocations.c.month).where(chosen).distinct()
        )
    ).all()
    await resolve_keys(conn, [(k, m) for k, m in pairs])
    count = await routeset.fill(conn, routeset.pending(chosen, must_give=must_give))
    await counting.count_routed(conn)
    await conn.execute(routeset.write(now))
    rows = (await conn.execute(routeset.totals())).all()
    legs, tokens = routeset.legs_of(rows, (await conn.execute(routeset.fees_by_giver())).all())
    gross: defaultdict[str, int] = defaultdict(int)
    for row in rows:
        gross[row[3]] += int(row[6])
    for month in sorted(gross):
        # A redeemed token's cents come from the month's tokens; the rest
        # from the month's unrouted money, where acceptance put it.
        if tokens.get(month):
            legs[Tokens(month)] -= tokens[month]
        await take_unrouted(conn, month, gross[month] - tokens.get(month, 0), legs)
    await ledger.post(conn, "payout", f"{first}-{last}:{secrets.token_hex(4)}", legs, now)
    return PayoutReport(
        routed_allocations=count, routed_cents=sum(gross.values()), chunks=1, last_id=last
    )


def whole_settlements(claimed: Sequence[Any], *, full: bool) -> Sequence[Any]:
    """The claimed rows without the last (giver, month)'s when the limit may
    have cut it (`full`), unless that would leave nothing: CHUNK is at least
    a settlement's largest size (settlement.MAX_ALLOCATIONS), so a chunk made
    of one (giver, month) holds the whole settlement."""
    if not full:
        return claimed
    last = (claimed[-1].account, claimed[-1].month)
    kept = len(claimed)
    while kept and (claimed[kept - 1].account, claimed[kept - 1].month) == last:
        kept -= 1
    return claimed[:kept] if kept else claimed


# The advisory lock a payout chunk holds on PostgreSQL (an arbitrary constant).
PAYOUT_LOCK = 0x6D656365  # "mece"


async def take_turn(conn: AsyncConnection) -> bool:
    """Whether this transaction may route pending allocations now: one hub
    process at a time does. Routing is one set of statements inside the
    database, not per-row Python, so a second process would only queue on the
    same rows; one at a time, a chunk is a range of ids with no holes (no
    rows skipped because another process holds them), so no settlement is
    ever cut between two chunks (its fees are rounded once), and no row is
    locked before it is written (a `FOR UPDATE` dirtied every claimed row's
    page once more). On SQLite, `BEGIN IMMEDIATE` already makes the chunk's
    transaction the only writer."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(await conn.scalar(select(func.pg_try_advisory_xact_lock(PAYOUT_LOCK))))


async def release_withheld_chunk(
    conn: AsyncConnection, *, now: int, limit: int = CHUNK, after: int = 0
) -> PayoutReport:
    """Release up to `limit` withheld allocations after the id `after` whose
    owner has given in the month they wait for (their money goes to the
    owner less the fee), inside the database (hub/routeset.py); a run goes
    on from the last chunk's last id, as `route_pending_chunk` does."""
    gave = exists().where(
        and_(
            giving.c.account == allocations.c.recipient,
            giving.c.month == allocations.c.withheld_month,
            giving.c.gave.is_(True),
        )
    )
    claimed = (
        await conn.execute(
            select(allocations.c.id)
            .where(allocations.c.state == "withheld", allocations.c.id > after, gave)
            .order_by(allocations.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not claimed:
        return PayoutReport()
    ids = [int(r.id) for r in claimed]
    # Exactly the claimed rows, on both engines: withheld rows between two
    # claimed ids may wait for an owner who has not given.
    chosen = and_(allocations.c.state == "withheld", bulk.one_of(conn, allocations.c.id, ids))
    await routeset.fill(conn, routeset.released(chosen))
    await conn.execute(routeset.write(now))
    rows = (await conn.execute(routeset.totals())).all()
    fee_rows = (await conn.execute(routeset.fees_by_giver())).all()
    legs, _tokens = routeset.legs_of(rows, fee_rows, release=True)
    released = sum(int(row[6]) for row in rows)
    await ledger.post(conn, "release", f"{ids[0]}-{ids[-1]}:{secrets.token_hex(4)}", legs, now)
    return PayoutReport(released_cents=released, chunks=1, last_id=ids[-1])


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


async def resolve_keys(conn: AsyncConnection, pairs: Sequence[tuple[str, str]]) -> None:
    """A chunk's (key, month) pairs into `routeset.resolve`'s table: each
    key's owner (the keys locked, `lock_keys`), whether the owner is a
    non-profit and gave in the month. Looked up by the keys and people
    themselves, so a chunk reads what its rows name, whatever the tables hold."""
    owners = await lock_keys(conn, sorted({k for k, _m in pairs}))
    people = sorted({o for o in owners.values() if o is not None})
    nonprofit = await nonprofits(conn, people)
    gave: set[tuple[str, str]] = set()
    if people:
        rows = await conn.execute(
            select(giving.c.account, giving.c.month).where(
                bulk.one_of(conn, giving.c.account, people),
                bulk.one_of(conn, giving.c.month, sorted({m for _k, m in pairs})),
                giving.c.gave.is_(True),
            )
        )
        gave = {(a, m) for a, m in rows}
    out = []
    for key, month in pairs:
        owner = owners[key]
        out.append(
            {
                "key": key,
                "month": month,
                "owner": owner,
                "nonprofit": owner is not None and nonprofit[owner],
                "gave": (owner, month) in gave,
            }
        )
    await routeset.resolve(conn, out)


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
