"""Gifts paid from tokens already held (issue 27, point 3; DESIGN.md, "Gifts
too"): a gift paid as tokens tells the hub neither its amount nor its
moment.

A gift issued as tokens at the moment of giving, for its amount, told the
hub both; the same amount then arrived for one creator within hours (82 %
of gifts matched in simulation). Now:

- The daemon holds a **pool** of the month's tokens, signed but with no
  creator (state `pooled`). It buys them in **batches of one fixed size**
  (`BATCH_TOKENS`, 5 €) on the account's own signed calls, as a direct
  transfer into the month's tokens (`POST /v1/tokens` with `transfer`,
  whose id says only `pool-…`). Every purchase of every person is the same.
- A gift takes its tokens from the pool at once, in one write, and gives
  each a random moment in the redemption window: the hub sees nothing then.
- When the pool is short, the gift waits and the batches it needs are bought
  at a random moment between half and one and a half `TOP_UP_SECONDS` later
  (an hour by default), in a signed pass: the hub sees some batches bought
  by an account at a moment of the pass's choosing, not the gift's, and for
  a whole number of batches, not the gift's amount. What a batch leaves over
  stays in the pool for the next gift, oldest month first.

What the hub still learns: that an account bought k batches at a moment
within about an hour and a half after something needed them, so that its
gifts since the last purchase came to at most k × 5 €. Tokens of a month
stay redeemable for the hub's escrow period (a year by default); the pool
uses only those of this month and the two before it.
"""

from __future__ import annotations

import logging
import os
import secrets
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from mecene import tokens, tokenwire
from mecene.time import add_months, timestamp_at

from . import policy, sql

if TYPE_CHECKING:
    from .link import TokenLink

log = logging.getLogger("mecene.tokens")

BATCH_TOKENS = 50  # 5 €: every purchase of every person is this
TOP_UP_SECONDS = float(os.environ.get("MECENE_TOP_UP_SECONDS", "3600"))
# Pooled tokens older than this many months are not given to a new gift.
POOL_MONTHS = 2
WAITING = "buying_tokens"
WAITING_MESSAGE = (
    "paid from tokens bought at a moment of their own, so that the hub learns "
    "neither this gift's amount nor its moment; within about an hour and a half"
)


class PurchaseRefused(Exception):
    """The hub refused a purchase for good (insufficient_funds, …): the
    gifts waiting for it cannot be paid."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class GiftPool:
    def __init__(
        self, link: TokenLink, randbelow: Callable[[int], int] = secrets.randbelow
    ) -> None:
        self.link = link
        self.randbelow = randbelow
        self.every = TOP_UP_SECONDS  # tests shorten it
        self.top_up_at: float | None = None  # when the batches wanted are bought (clock seconds)

    def _now(self) -> float:
        return self.link.now().timestamp()

    def _schedule(self) -> float:
        if self.top_up_at is None:
            self.top_up_at = self._now() + self.every * (0.5 + self.randbelow(1000) / 1000)
        return max(0.0, self.top_up_at - self._now())

    async def pay(self, gift: dict[str, Any]) -> float | None:
        """Give the gift its tokens from the pool: None once it has them, else
        seconds until the batches it needs are bought."""
        need = policy.gift_tokens(int(gift["cents"]))
        now = self._now()
        since = add_months(self.link.now().strftime("%Y-%m"), -POOL_MONTHS)

        def take(db: Database) -> bool:
            if sql.of_transfer(db, gift["id"]):
                return True  # given meanwhile
            ids = sql.pooled(db, since)
            if len(ids) < need:
                return False
            moments = [policy.redeem_at(now, self.link.window, self.randbelow) for _ in range(need)]
            sql.give_from_pool(
                db,
                [
                    (i, gift["creator"], gift["id"], timestamp_at(at))
                    for i, at in zip(ids[:need], moments, strict=True)
                ],
            )
            return True

        if await self.link.store.write(take):
            self.link.wake.set()  # its tokens have their moments
            return None
        return self._schedule()

    async def top_up_due(self) -> float | None:
        """In the hub link's signed pass: finish purchases in flight, then, once
        their moment has come, buy the batches the waiting gifts need. Seconds
        until that moment, or None when nothing is wanted. KeysRefused while
        the month's keys are not pinned; HubUnreachable as any signed call."""
        for purchase in await self.link.store.read(sql.purchases_in_flight):
            await self._send(purchase)
        since = add_months(self.link.now().strftime("%Y-%m"), -POOL_MONTHS)

        def wanted(db: Database) -> int:
            need = sum(policy.gift_tokens(c) for _i, c in sql.gifts_waiting(db))
            return need - len(sql.pooled(db, since))

        deficit = await self.link.store.read(wanted)
        if deficit <= 0:
            self.top_up_at = None
            return None
        wait = self._schedule()
        if wait > 0:
            return wait
        batches = -(-deficit // BATCH_TOKENS)
        for _ in range(batches):
            await self._buy()
        self.top_up_at = None
        log.info("%d batches of gift tokens bought", batches)
        return None

    async def _buy(self) -> None:
        month = self.link.now().strftime("%Y-%m")  # the hub's month is UTC's
        keys = await self.link.keys(month)
        key = keys.by_cents()[tokens.DENOMINATION]
        purchase = f"pool-{uuid.uuid4().hex}"
        rows = [
            {
                "id": str(uuid.uuid4()),
                "month": month,
                "creator": "",  # given to a gift later
                "cents": tokens.DENOMINATION,
                "attempts": 0,
                "transfer_id": purchase,
                **policy.blinded(key),
            }
            for _ in range(BATCH_TOKENS)
        ]
        # Written before the hub is asked: the same request can be sent again.
        await self.link.store.write(lambda db: sql.insert_all(db, rows))
        await self._send(purchase)

    async def _send(self, purchase: str) -> None:
        rows = await self.link.store.read(lambda db: sql.of_transfer(db, purchase))
        rows = [r for r in rows if r["state"] == policy.TokenState.BLINDED]
        if not rows:
            return
        month = rows[0]["month"]
        keys = await self.link.keys(month)
        if self.link.before_issue is not None:
            await self.link.before_issue()
        pending = [policy.pending(r) for r in rows]
        cents = len(rows) * tokens.DENOMINATION
        body = tokenwire.build_issue(month, pending, (purchase, cents))
        status, out = await self.link.link.call("POST", "/v1/tokens", body)
        if status in (200, 201):
            ref = f"transfer:{purchase}"
            await self.link.finish(rows, pending, keys, out, body, ref, pooled=True)
        elif policy.refused_for_good(status):
            code = out.get("error", "refused") if isinstance(out, dict) else "refused"
            message = out.get("message", "") if isinstance(out, dict) else str(out)
            log.warning("a purchase of gift tokens was refused: %s (%s)", code, message)
            await self.link.store.write(lambda db: sql.forget_purchase(db, purchase))
            raise PurchaseRefused(code, message)
