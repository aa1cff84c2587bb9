"""The payout run's set-based routing (hub/routeset.py) against the
specification, hub/routing.py, on both engines, to the cent.

Months of pending allocations — settlements of several rows per key, redeemed
tokens, owners who gave or not, non-profits, keys nobody proved — are stored
in a real hub database; the payout run routes them in SQL; every row's state,
recipient, fee and month, and every ledger balance, must be what
`routing.route` says for the same pieces. Then the owners who gave nothing
give, and the release step must be what `routing.release` says.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import insert, select

from hub import ledger, payout, routeset, routing
from hub.ledger import LedgerAccount, Provider, Tokens, Unrouted, Withheld
from hub.routing import NO_GIVER, Piece
from hub.schema import accounts, allocations, creator_keys, giving, ledger_accounts
from hub.service import Hub

MONTHS = ("2026-10", "2026-11")
OWNERS = {"owner-gave": False, "owner-nonprofit": True, "owner-late": False}
KEYS = {
    "domain:a.example": "owner-gave",
    "domain:b.example": "owner-gave",
    "domain:c.example": "owner-nonprofit",
    "domain:d.example": "owner-late",
    "domain:e.example": None,
    "domain:f.example": None,
}
# Who gave in which month; "owner-late" gives in 2026-10 only after the run.
GAVE = {("owner-gave", m): True for m in MONTHS} | {("owner-nonprofit", "2026-10"): True}
NOW = 1_790_000_000


def scenario(seed: int) -> list[Piece]:
    """Settlements in id order: per (giver, month) 1–12 rows over the keys
    (a key often twice: one unit of several rows), some of 0 cents, and
    redeemed tokens (no giver; each its own unit)."""
    rng = random.Random(seed)
    pieces: list[Piece] = []
    for g in range(rng.randint(3, 8)):
        for month in MONTHS:
            if rng.random() < 0.2:
                continue
            for i in range(rng.randint(1, 12)):
                key = rng.choice(list(KEYS))
                cents = rng.choice([0, 1, 3, 7, rng.randint(1, 999)])
                pieces.append(Piece(f"giver-{g}", month, key, cents, url=f"https://x/{g}/{i}"))
        for t in range(rng.randint(0, 4)):
            key, month = rng.choice(list(KEYS)), rng.choice(MONTHS)
            pieces.append(Piece(NO_GIVER, month, key, 10, transfer_id=f"token-{g}-{t}"))
    return pieces


async def store(hub: Hub, pieces: list[Piece]) -> list[Piece]:
    """The owners, keys, giving, the pending rows and their money (unrouted,
    or the month's tokens); the pieces with their row ids."""
    unrouted: defaultdict[str, int] = defaultdict(int)
    tokens: defaultdict[str, int] = defaultdict(int)
    stored: list[Piece] = []
    async with hub.engine.begin() as conn:
        for owner, nonprofit in OWNERS.items():
            await conn.execute(insert(accounts).values(id=owner, created_at=0, nonprofit=nonprofit))
        for key, owner in KEYS.items():
            await conn.execute(insert(creator_keys).values(key=key, owner=owner))
        for (owner, month), gave in GAVE.items():
            await conn.execute(insert(giving).values(account=owner, month=month, gave=gave))
        for p in pieces:
            row_id = await conn.scalar(
                insert(allocations)
                .values(
                    account=p.giver,
                    month=p.month,
                    creator=p.creator,
                    url=p.url,
                    cents=p.cents,
                    transfer_id=p.transfer_id,
                    state="pending",
                )
                .returning(allocations.c.id)
            )
            stored.append(Piece(p.giver, p.month, p.creator, p.cents, p.url, p.transfer_id, row_id))
            (tokens if p.giver == NO_GIVER else unrouted)[p.month] += p.cents
        legs: dict[LedgerAccount, int] = {Provider("seed"): -sum(p.cents for p in pieces)}
        legs |= {Unrouted(m, "00"): c for m, c in unrouted.items()}
        legs |= {Tokens(m): c for m, c in tokens.items()}
        await ledger.post(conn, "seed", "seed", legs, 0)
    return stored


async def rows_and_balances(hub: Hub) -> tuple[dict[int, tuple[Any, ...]], dict[str, int]]:
    async with hub.engine.connect() as conn:
        rows = {
            int(r.id): (r.state, r.recipient, r.fee_cents, r.withheld_month)
            for r in await conn.execute(
                select(
                    allocations.c.id,
                    allocations.c.state,
                    allocations.c.recipient,
                    allocations.c.fee_cents,
                    allocations.c.withheld_month,
                )
            )
        }
        balances = {
            str(name): int(cents)
            for name, cents in await conn.execute(
                select(ledger_accounts.c.name, ledger_accounts.c.balance_cents)
            )
        }
    kept = ("creator:", "fees:", "withheld:", "escrow:")
    return rows, {name: c for name, c in balances.items() if name.startswith(kept) and c}


def routed_by_the_rule(pieces: list[Piece]) -> tuple[dict[int, tuple[Any, ...]], dict[str, int]]:
    rows: dict[int, tuple[Any, ...]] = {}
    legs: defaultdict[str, int] = defaultdict(int)
    for month in MONTHS:
        out = routing.route(
            [p for p in pieces if p.month == month],
            owners=KEYS,
            gave={o: GAVE.get((o, month), False) for o in OWNERS},
            nonprofit=OWNERS,
            must_give=True,
            now=NOW,
        )
        for row_id, v in out.updates:
            rows[row_id] = (v["state"], v["recipient"], v["fee_cents"], v["withheld_month"])
        for account, cents in out.legs.items():
            legs[account.name] += cents
    return rows, {name: c for name, c in legs.items() if c}


@pytest.mark.parametrize("seed", range(6))
async def test_the_set_based_payout_routes_as_the_routing_rule_says(hub: Hub, seed: int) -> None:
    pieces = await store(hub, scenario(seed))
    if seed % 2:  # small chunks: settlements must not be cut between two
        async with hub.engine.begin() as conn:
            done = await payout.route_pending_chunk(conn, must_give=True, now=NOW, limit=5)
        assert done.routed_allocations > 0
    await hub.run_payouts()
    rows, balances = await rows_and_balances(hub)
    want_rows, want_legs = routed_by_the_rule(pieces)
    assert rows == want_rows
    assert balances == want_legs

    # "owner-late" gives in 2026-10: what was withheld for it then is released.
    async with hub.engine.begin() as conn:
        await conn.execute(insert(giving).values(account="owner-late", month="2026-10", gave=True))
    await hub.run_payouts()
    rows, balances = await rows_and_balances(hub)
    waiting = [
        p for p in pieces if want_rows[p.id or 0][:2] == ("withheld", "owner-late")
        and p.month == "2026-10"
    ]  # fmt: skip
    released = routing.release(
        waiting,
        source=Withheld("owner-late", "2026-10"),
        owner="owner-late",
        gave=True,
        nonprofit=False,
        must_give=True,
        month="2026-10",
        now=NOW,
    )
    for row_id, v in released.updates:
        want_rows[row_id] = (v["state"], v["recipient"], v["fee_cents"], "2026-10")
    for account, cents in released.legs.items():
        want_legs[account.name] = want_legs.get(account.name, 0) + cents
    assert rows == want_rows
    assert balances == {name: c for name, c in want_legs.items() if c}


async def test_a_settlement_is_not_cut_between_two_chunks(hub: Hub) -> None:
    """Three rows for one key, chunks of two: the first chunk leaves the
    settlement whole for the next, so its fee is rounded once (4 cents, not
    1 + 1 + 1 + 1 = 4 by luck: 3 × 13 = 39 cents, a fee of 4 spread 2, 1, 1)."""
    pieces = [Piece("giver-0", "2026-10", "domain:a.example", 13) for _ in range(3)]
    pieces.append(Piece("giver-1", "2026-10", "domain:a.example", 13))
    await store(hub, pieces)
    async with hub.engine.begin() as conn:
        first = await payout.route_pending_chunk(conn, must_give=True, now=NOW, limit=4)
    assert first.routed_allocations == 3  # giver-1's row waits: the limit may have cut it
    async with hub.engine.begin() as conn:
        again = await payout.route_pending_chunk(
            conn, must_give=True, now=NOW, limit=2, after=first.last_id
        )
    assert again.routed_allocations == 1
    rows, _ = await rows_and_balances(hub)
    assert [rows[i][2] for i in sorted(rows)] == [2, 1, 1, 1]


async def test_a_row_whose_key_the_chunk_did_not_resolve_stays_pending(hub: Hub) -> None:
    """A settlement committed between the chunk's look-up of its keys and its
    routing has rows in the range whose (key, month) the chunk neither
    resolved nor locked: they are left out, whole units, for the next run,
    rather than routed as if nobody owned the key."""
    await store(
        hub,
        [
            Piece("giver-0", "2026-10", "domain:a.example", 13),
            Piece("giver-0", "2026-10", "domain:e.example", 7),
            Piece("giver-0", "2026-10", "domain:e.example", 8),
        ],
    )
    async with hub.engine.begin() as conn:
        await payout.resolve_keys(conn, [("domain:a.example", "2026-10")])
        chosen = allocations.c.state == "pending"
        count = await routeset.fill(conn, routeset.pending(chosen, must_give=True))
        routed = (await conn.execute(select(routeset.routed.c.creator))).scalars().all()
        await conn.rollback()
    assert (count, routed) == (1, ["domain:a.example"])
    async with hub.engine.begin() as conn:
        report = await payout.route_pending_chunk(conn, must_give=True, now=NOW)
    assert report.routed_allocations == 3
