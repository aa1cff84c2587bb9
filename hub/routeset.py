"""Routing as set operations: `routing.route` and `routing.release` in SQL.

A payout run routes a chunk of stored allocations at once inside the
database instead of row by row in Python: where each one goes (the key's
owner, withheld, escrow) and its fee, rounded once per unit of payment
(giver, month, creator key, transfer id) and spread over the unit's rows by
largest remainder — ties to the earlier row (the lower id), as
`money.largest_remainder` gives them to the earlier entry. hub/routing.py
stays the specification: tests/hub/test_routeset.py runs its cases against
this SQL on both engines, to the cent.

The statements below are built once per shape (they take the chunk's rows
through `chosen`, a condition on `allocations`), and run on SQLite (3.33 or
later: window functions and UPDATE … FROM) and PostgreSQL alike.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    not_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql import Select

from mecene.money import CREATOR_FEE_PERCENT

from . import bulk
from .accounts import Creator, Escrow, Fees, LedgerAccount, Withheld
from .routing import NO_GIVER
from .schema import accounts, allocations

A = allocations


def _fees(base: Select[Any], unit: list[str]) -> Select[Any]:
    """The routed rows of `base` (columns id, giver, month, creator, cents,
    owner, state, nonprofit, withheld_month and those named in `unit`), with
    each row's share of its unit's fee: `fee_cents` (NULL unless credited)."""
    b = base.subquery("b")
    part = [b.c[name] for name in unit]
    unit_cents = cast(func.sum(b.c.cents).over(partition_by=part), BigInteger)
    s1 = select(b, unit_cents.label("unit_cents")).subquery("s1")
    charged = and_(s1.c.state == "credited", not_(s1.c.nonprofit), s1.c.unit_cents > 0)
    # money.round_half_up(unit_cents × percent, 100), in integers.
    unit_fee = case(
        (charged, (2 * s1.c.unit_cents * CREATOR_FEE_PERCENT + 100) // 200), else_=0
    ).label("unit_fee")
    s2 = select(s1, unit_fee).subquery("s2")
    spread = s2.c.unit_fee > 0
    floor = case((spread, s2.c.unit_fee * s2.c.cents // s2.c.unit_cents), else_=0)
    remainder = case((spread, s2.c.unit_fee * s2.c.cents % s2.c.unit_cents), else_=0)
    s3 = select(s2, floor.label("floor"), remainder.label("remainder")).subquery("s3")
    part3 = [s3.c[name] for name in unit]
    handed = cast(func.sum(s3.c.floor).over(partition_by=part3), BigInteger)
    rank = func.row_number().over(partition_by=part3, order_by=[s3.c.remainder.desc(), s3.c.id])
    s4 = select(s3, (s3.c.unit_fee - handed).label("leftover"), rank.label("rank")).subquery("s4")
    fee = case(
        (s4.c.state != "credited", None),
        else_=s4.c.floor + case((s4.c.rank <= s4.c.leftover, 1), else_=0),
    )
    return select(
        s4.c.id,
        s4.c.giver,
        s4.c.month,
        s4.c.creator,
        s4.c.url,
        s4.c.cents,
        s4.c.transfer_id,
        s4.c.state,
        s4.c.owner.label("recipient"),
        fee.label("fee_cents"),
        s4.c.withheld_month,
    )


# A chunk's creator keys, resolved once per (key, month) before its rows are
# routed (`resolve`): who owns the key, whether that owner is a non-profit
# and gave in the month. Joining every row to `creator_keys`, `accounts` and
# `giving` instead let the planner hash whole tables for each chunk: at
# 1,000,000 accounts, 210 ms of a chunk's 513 ms went to reading all of
# `accounts` (docs/SCALE.md, "A chunk costs its rows").
keys = Table(
    "payout_keys",
    MetaData(),
    Column("key", String(600), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("owner", String(64)),
    Column("nonprofit", Boolean, nullable=False),
    Column("gave", Boolean, nullable=False),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)
K = keys


async def emptied(conn: AsyncConnection, table: Table) -> None:
    """This connection's temporary `table`, made if missing, emptied: what a
    chunk's statements read holds this chunk's rows only."""
    await conn.execute(CreateTable(table, if_not_exists=True))
    await conn.execute(delete(table))


async def resolve(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """This connection's `payout_keys`, made of `rows` alone."""
    await emptied(conn, K)
    await bulk.insert_many(conn, K, rows)


def pending(chosen: Any, *, must_give: bool) -> Select[Any]:
    """`routing.route` of the pending allocations `chosen` picks, each key as
    `resolve` found it; a row whose (key, month) it did not resolve (its
    settlement committed since) is left pending for the next chunk."""
    whens: list[Any] = [(K.c.owner.is_(None), "escrow")]
    if must_give:
        whens.append((not_(K.c.gave), "withheld"))
    state = case(*whens, else_="credited")
    base = (
        select(
            A.c.id,
            A.c.account.label("giver"),
            A.c.month,
            A.c.creator,
            A.c.url,
            A.c.cents,
            A.c.transfer_id,
            K.c.owner.label("owner"),
            state.label("state"),
            K.c.nonprofit.label("nonprofit"),
            case((state == "withheld", A.c.month), else_=None).label("withheld_month"),
        )
        .select_from(A.join(K, and_(K.c.key == A.c.creator, K.c.month == A.c.month)))
        .where(chosen)
    )
    return _fees(base, ["giver", "month", "creator", "transfer_id"])


def released(chosen: Any) -> Select[Any]:
    """`routing.release` of withheld allocations `chosen` picks, whose owner
    has given: each (owner, month of release) group credited, its fee rounded
    per unit of payment within the group. `withheld_month` stays as it was
    (the month whose giving released it)."""
    base = (
        select(
            A.c.id,
            A.c.account.label("giver"),
            A.c.month,
            A.c.creator,
            A.c.url,
            A.c.cents,
            A.c.transfer_id,
            A.c.recipient.label("owner"),
            literal("credited").label("state"),
            func.coalesce(accounts.c.nonprofit, false()).label("nonprofit"),
            A.c.withheld_month,
        )
        .select_from(A.outerjoin(accounts, accounts.c.id == A.c.recipient))
        .where(chosen)
    )
    return _fees(base, ["owner", "withheld_month", "giver", "month", "creator", "transfer_id"])


# A chunk's routed rows, computed once (one snapshot: what is written and
# what the ledger moves cannot differ), then written onto the allocations
# and summed into ledger legs. Each connection has its own, emptied by `fill`
# and, on PostgreSQL, at every commit: rows deleted from a temporary table
# stay as dead tuples (no autovacuum reaches it), and every statement of a
# run's later chunks scanned all of its earlier ones (bench/hub_payout_run.py,
# 100,000 accounts: the run took 278 s with them, 139 s without; the UPDATE
# that writes the rows, 155 s and 33 s).
routed = Table(
    "payout_routed",
    MetaData(),
    Column("id", BigInteger, primary_key=True),
    Column("giver", String(64)),
    Column("month", String(7)),
    Column("creator", String(600)),
    Column("url", String(2048)),
    Column("cents", BigInteger),
    Column("transfer_id", String(64)),
    Column("state", String(16)),
    Column("recipient", String(64)),
    Column("fee_cents", BigInteger),
    Column("withheld_month", String(7)),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)
R = routed
COLUMNS = [c.name for c in R.columns]


async def fill(conn: AsyncConnection, rows: Select[Any]) -> int:
    """Compute `rows` (from `pending` or `released`) into this connection's
    `payout_routed`, emptied first; how many."""
    await emptied(conn, R)
    done = await conn.execute(insert(R).from_select(COLUMNS, rows))
    return int(done.rowcount)


def write(now: int) -> Any:
    """The UPDATE that writes the routed rows' values onto their allocations."""
    return (
        update(A)
        .where(A.c.id == R.c.id)
        .values(
            state=R.c.state,
            recipient=R.c.recipient,
            fee_cents=R.c.fee_cents,
            settled_at=case((R.c.state == "credited", literal(now, BigInteger)), else_=None),
            withheld_month=R.c.withheld_month,
        )
    )


def totals() -> Select[Any]:
    """What `routed` moves, grouped by where it goes: (state, recipient,
    escrow key, month, withheld month, token, cents, fee)."""
    escrow_key = case((R.c.state == "escrow", R.c.creator), else_=None)
    token = case((R.c.giver == NO_GIVER, 1), else_=0)
    keys = [
        R.c.state,
        R.c.recipient,
        escrow_key,
        R.c.month,
        R.c.withheld_month,
        token,
    ]
    return select(
        *keys,
        cast(func.sum(R.c.cents), BigInteger),
        cast(func.coalesce(func.sum(R.c.fee_cents), 0), BigInteger),
    ).group_by(*keys)


def fees_by_giver() -> Select[Any]:
    return (
        select(R.c.giver, cast(func.sum(R.c.fee_cents), BigInteger))
        .where(R.c.fee_cents > 0)
        .group_by(R.c.giver)
    )


def legs_of(
    rows: Any, fee_rows: Any, *, release: bool = False
) -> tuple[defaultdict[LedgerAccount, int], dict[str, int]]:
    """Ledger legs from `totals` and `fees_by_giver` rows, and each month's
    cents from redeemed tokens (NO_GIVER): (legs, {month: cents}). Routing
    pending rows, the caller adds where the money comes from; releasing, the
    legs take it from each (owner, month)'s withheld money."""
    legs: defaultdict[LedgerAccount, int] = defaultdict(int)
    tokens: defaultdict[str, int] = defaultdict(int)
    for state, recipient, escrow_key, month, withheld_month, token, cents, fee in rows:
        cents, fee = int(cents), int(fee)
        if release:
            legs[Withheld(recipient, withheld_month)] -= cents
        if state == "escrow":
            legs[Escrow(escrow_key)] += cents
        elif state == "withheld":
            legs[Withheld(recipient, withheld_month)] += cents
        else:
            legs[Creator(recipient)] += cents - fee
        if token:
            tokens[month] += cents
    for giver, fee in fee_rows:
        legs[Fees.of(giver)] += int(fee)
    return legs, dict(tokens)
