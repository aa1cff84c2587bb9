"""What the hub publishes and its operator reads: the hub's terms, the
counters, a month's payouts, the books' invariants, any ledger balance."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import func, select

from mecene import money

from . import counting, ledger
from .core import HubCore, Room
from .ledger import Fees, LedgerAccount, Unrouted
from .routing import NO_GIVER
from .schema import allocations, counter_people, spent_tokens


class Reports(Room):
    def __init__(self, core: HubCore) -> None:
        super().__init__(core)
        self.public_key = core.public_key

    def info(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "public_key": self.public_key,
            "currency": money.CURRENCY,
            "creator_fee_percent": money.CREATOR_FEE_PERCENT,
            "deposit_methods": {
                m.name: {
                    "label": m.label,
                    "fixed_cents": m.fixed_cents,
                    "parts": m.parts,
                    "per": m.per,
                }
                for m in money.METHODS.values()
            },
            "min_deposit_cents": money.MIN_DEPOSIT_CENTS,
            "max_deposit_cents": money.MAX_DEPOSIT_CENTS,
            "min_withdrawal_cents": money.MIN_WITHDRAWAL_CENTS,
            "escrow_months": self.config.escrow_months,
            "must_give": self.config.must_give,
            "min_giving_cents": money.MIN_GIVING_CENTS,
        }

    async def count(self, kind: str, subject: str) -> int:
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(func.count())
                .select_from(counter_people)
                .where(counter_people.c.subject == counting.subject_key(kind, subject))
            )
        return int(value or 0)

    async def redemptions_cents(self, creator: str) -> int:
        """What unlinkable tokens brought `creator`, in cents (an amount, not
        a count of people: the hub cannot tell whose they were)."""
        h = hashlib.sha256(creator.encode()).hexdigest()
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(func.coalesce(func.sum(spent_tokens.c.cents), 0)).where(
                    spent_tokens.c.creator_hash == h
                )
            )
        return int(value or 0)

    async def payouts(self, month: str) -> dict[str, Any]:
        """What each creator account received from `month`'s settlements, and
        what is held (escrow, withheld) or was returned."""
        async with self.engine.connect() as conn:
            per = await conn.execute(
                select(
                    allocations.c.recipient,
                    func.count(),
                    func.sum(allocations.c.cents),
                    func.sum(allocations.c.fee_cents),
                )
                .where(allocations.c.month == month, allocations.c.state == "credited")
                .group_by(allocations.c.recipient)
                .order_by(allocations.c.recipient)
            )
            creators = [
                {
                    "account": r,
                    "allocations": int(n),
                    "gross_cents": int(g),
                    "fee_cents": int(f or 0),
                    "net_cents": int(g) - int(f or 0),
                }
                for r, n, g, f in per
            ]
            states = await conn.execute(
                select(allocations.c.state, func.sum(allocations.c.cents))
                .where(allocations.c.month == month)
                .group_by(allocations.c.state)
            )
            totals = {s: int(c) for s, c in states}
        return {"month": month, "creators": creators, "totals_cents": totals}

    async def books(self) -> dict[str, int]:
        """The ledger's invariants (hub/ledger.py, `check_books`), and one of
        the hub's: the unrouted money is exactly the pending allocations' (a
        redeemed token's waits in its month's tokens until it is routed)."""
        async with self.engine.connect() as conn:
            books = await ledger.check_books(conn)
            unrouted = sum((await ledger.balances(conn, Unrouted)).values())
            pending = await conn.scalar(
                select(func.coalesce(func.sum(allocations.c.cents), 0)).where(
                    allocations.c.state == "pending", allocations.c.account != NO_GIVER
                )
            )
        return {**books, "unrouted_not_pending_cents": unrouted - int(pending or 0)}

    async def fees_cents(self) -> int:
        async with self.engine.connect() as conn:
            return sum((await ledger.balances(conn, Fees)).values())

    async def balance_of(self, account: LedgerAccount | str) -> int:
        """A ledger account's balance, typed or by its stored name."""
        if isinstance(account, str):
            account = ledger.parse_account(account)
        async with self.engine.connect() as conn:
            return await ledger.balance_cents(conn, account)
