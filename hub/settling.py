"""Settlements: a month's document accepted once (hub/accept.py, many in
one commit), its money routed later by the payout run (hub/payout.py), and
what became of it since (the outcome a daemon asks about)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mecene import signing, tokens
from mecene.amounts import euros
from mecene.settlement import Settlement
from mecene.time import month_ended_everywhere, timestamp

from . import payout
from .accept import Acceptor, Auth
from .core import HubCore, Room
from .errors import HubError
from .payout import PayoutReport
from .requests import SettlementRequest
from .schema import allocations, settlements
from .tokens import TokenDesk

# What a settlement's money can have become (its outcome).
OUTCOME_STATES = ("pending", "credited", "withheld", "escrow", "returned")


async def _from(
    step: Callable[[AsyncConnection, int], Awaitable[PayoutReport]],
    after: int,
    conn: AsyncConnection,
) -> PayoutReport:
    return await step(conn, after)


class Settlements(Room):
    def __init__(self, core: HubCore, acceptor: Acceptor, tokens: TokenDesk) -> None:
        super().__init__(core)
        self.acceptor = acceptor
        self.tokens = tokens

    async def settle(self, auth: Auth, req: SettlementRequest) -> tuple[bool, dict[str, Any]]:
        """(created, {receipt, signature}), accepted with the settlements
        arriving at the same moment in one commit (hub/accept.py). The same
        document again gives the same receipt; a different one for a settled
        month is refused. The request's nonce is spent in the same commit."""
        doc = req.document
        if doc.account != auth.account:
            raise HubError("forbidden", "the settlement names another account than the signer")
        try:
            signing.verify(doc.account, req.text.encode(), req.signature)
        except signing.SignatureError as exc:
            # Or by the device that sends it (a computer that joined the
            # account with a code signs with its own key: hub/devices.py; the
            # front door checked that it is the account's).
            if auth.device is None:
                raise HubError("bad_signature", f"settlement: {exc}") from None
            try:
                signing.verify(auth.device, req.text.encode(), req.signature)
            except signing.SignatureError:
                raise HubError("bad_signature", f"settlement: {exc}") from None
        ended = month_ended_everywhere(doc.month)
        now = self.clock.now()
        if now < ended:
            wait = int((ended - now).total_seconds()) + 1
            raise HubError(
                "month_not_ended",
                f"{doc.month} has not ended in every time zone yet; it is settled from "
                f"{timestamp(ended)}",
                settle_from=timestamp(ended),
                retry_after=wait,
            )
        whole = (
            doc.spend_cents % tokens.DENOMINATION == 0
            and doc.spend_cents <= tokens.MAX_TOKENS * tokens.DENOMINATION
        )
        if doc.unlinkable and not whole and not await self._settled(doc):
            # Refused before anything is debited: no tokens could be issued.
            raise HubError(
                "invalid",
                f"an unlinkable month's spend is a whole number of "
                f"{euros(tokens.DENOMINATION)} tokens, at most "
                f"{euros(tokens.MAX_TOKENS * tokens.DENOMINATION)}",
            )
        if doc.unlinkable and self.tokens.expired(doc.month) and not await self._settled(doc):
            # Its money could never become tokens: the giver is not debited.
            raise HubError(
                "token_expired",
                f"{doc.month}'s tokens are no longer issued: settle it with allocations",
            )
        return await self.acceptor.accept(auth, req)

    async def _settled(self, doc: Settlement) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                select(settlements.c.month).where(
                    settlements.c.account == doc.account, settlements.c.month == doc.month
                )
            )
        return found is not None

    async def run_payouts(self) -> PayoutReport:
        """Route every pending allocation, then release what was withheld for
        owners who have given since: chunk after chunk, each one transaction
        (hub/payout.py). Several processes may run it at once."""
        report = PayoutReport()
        steps: list[Callable[[AsyncConnection, int], Awaitable[PayoutReport]]] = [
            lambda conn, after: payout.route_pending_chunk(
                conn, must_give=self.config.must_give, now=self.now(), after=after
            ),
            lambda conn, after: payout.release_withheld_chunk(conn, now=self.now(), after=after),
        ]
        for step in steps:
            after = 0  # each chunk goes on from the last one's last id
            while True:
                done = await self._retrying(functools.partial(_from, step, after))
                if not done.chunks:
                    break
                report.add(done)
                after = done.last_id
        return report

    async def settlement(self, account: str, month: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(settlements.c.receipt, settlements.c.receipt_signature).where(
                        settlements.c.account == account, settlements.c.month == month
                    )
                )
            ).first()
            if row is None:
                raise HubError("not_found", f"no settlement for {month}")
            states = await conn.execute(
                select(allocations.c.state, func.sum(allocations.c.cents))
                .where(
                    allocations.c.account == account,
                    allocations.c.month == month,
                    allocations.c.transfer_id.is_(None),
                )
                .group_by(allocations.c.state)
            )
            now = {str(state): int(cents) for state, cents in states}
        # The receipt says what happened when the settlement was accepted; the
        # outcome, what has happened to its money since (withheld money is
        # credited once its creator gives, escrow once a key is proved or
        # returned after the escrow period).
        outcome = {f"{s}_cents": now.get(s, 0) for s in OUTCOME_STATES}
        return {"receipt": row.receipt, "signature": row.receipt_signature, "outcome": outcome}
