"""Money coming into a creator's hands at once (a direct transfer, a key's
escrow released): the keys' owners and the people's giving read under lock,
then routed by the pure `routing.route` / `routing.release`, and counted.

Locks (PostgreSQL; SQLite runs one writer at a time): `creator_keys` rows
first, in key order, then `giving` rows, in account order, then ledger rows in
name order, so no two paths can deadlock (the payout run takes the same order).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from . import admit, counting, ledger, payout, routing
from .core import Room
from .core import pieces as stored_pieces
from .ledger import LedgerAccount, User, Withheld
from .routing import Piece, Routed
from .schema import allocations, counter_people, giving


class Admission(Room):
    async def accept(
        self,
        conn: AsyncConnection,
        giver: str,
        month: str,
        pieces: Sequence[Piece],
        given_cents: int,
        now: int,
    ) -> Routed:
        """What the database says about the pieces' keys and people, read under
        lock, then `routing.route`; the same for a settlement and a direct
        transfer. Giving at least MIN_GIVING_CENTS marks `giver` as having given
        in `month` and releases what was withheld for that (`routing.release`)."""
        owners = await payout.lock_keys(conn, sorted({p.creator for p in pieces}))
        refused = admit.own_key(owners, (k for k, o in owners.items() if o == giver))
        if refused is not None:
            raise refused
        people = sorted({giver} | {o for o in owners.values() if o is not None})
        gave = await self.lock_giving(conn, people, month, own=giver)
        nonprofit = await payout.nonprofits(conn, people)
        legs: defaultdict[LedgerAccount, int] = defaultdict(int)
        if admit.gives(given_cents) and not gave[giver]:
            await conn.execute(
                update(giving)
                .where(giving.c.account == giver, giving.c.month == month)
                .values(gave=True)
            )
            gave[giver] = True
            withheld = await stored_pieces(
                conn,
                allocations.c.recipient == giver,
                allocations.c.state == "withheld",
                allocations.c.withheld_month == month,
            )
            if withheld:
                released = routing.release(
                    withheld,
                    source=Withheld(giver, month),
                    owner=giver,
                    gave=True,
                    nonprofit=nonprofit[giver],
                    must_give=self.config.must_give,
                    month=month,
                    now=now,
                )
                await payout.apply(conn, released)
                for name, cents in released.legs.items():
                    legs[name] += cents
        routed = routing.route(
            pieces,
            owners=owners,
            gave=gave,
            nonprofit=nonprofit,
            must_give=self.config.must_give,
            now=now,
        )
        await payout.apply(conn, routed)
        for name, cents in routed.legs.items():
            legs[name] += cents
        legs[User(giver)] -= given_cents
        routed.legs = legs
        return routed

    async def lock_giving(
        self, conn: AsyncConnection, people: list[str], month: str, *, own: str | None = None
    ) -> dict[str, bool]:
        """Whether each of `people` gave in `month`, the rows locked in account
        order: `own` (the settler, whose row may change) exclusively, the
        others shared. Taking every lock in one order, each in its final mode,
        is what keeps two settlements from deadlocking."""
        if not people:
            return {}
        await conn.execute(
            ledger.insert_ignore(conn, giving), [{"account": p, "month": month} for p in people]
        )
        gave: dict[str, bool] = {}
        ordered = sorted(people)
        cut = ordered.index(own) if own in ordered else len(ordered)
        parts = [(ordered[:cut], True), (ordered[cut : cut + 1], False), (ordered[cut + 1 :], True)]
        for group, shared in parts:
            if not group:
                continue
            rows = await conn.execute(
                select(giving.c.account, giving.c.gave)
                .where(giving.c.month == month, giving.c.account.in_(group))
                .order_by(giving.c.account)
                .with_for_update(read=shared)
            )
            gave.update({a: bool(g) for a, g in rows})
        return gave

    async def count(
        self,
        conn: AsyncConnection,
        account: str,
        pieces: Sequence[Piece],
    ) -> None:
        """Count `account` once per creator and thing it paid. Counters are
        counted when read (an index range of `counter_people`), so no
        popular thing's counter row is a lock every settlement queues on."""
        subjects = {("creator", p.creator) for p in pieces} | {
            ("thing", p.url) for p in pieces if p.url is not None
        }
        if not subjects:
            return
        await conn.execute(
            ledger.insert_ignore(conn, counter_people).values(
                counting.rows((kind, subject, account) for kind, subject in subjects)
            )
        )
