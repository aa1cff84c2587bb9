"""Sending one closed month to the hub and recording what the answer means
(the hub link's part for months: daemon/hublink.py calls `send` in its pass;
daemon/sendpolicy.py and daemon/months/policy.py decide, without sockets).
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from mecene import messages, signing
from mecene.settlement import DocumentError, Receipt, Settlement

from . import sendpolicy as policy
from .errors import DomainError, HubUnreachable
from .months import policy as month_policy
from .months.policy import MonthState

if TYPE_CHECKING:
    from .hublink import HubLink

log = logging.getLogger("mecene.hub")


class MonthSender:
    def __init__(self, link: HubLink) -> None:
        self.link = link

    async def send(self, row: dict[str, Any], *, resplit: bool = True) -> float | None:
        """Send one month and record what the answer means; seconds until it
        is due again, or None when it is done (settled, or waiting for a person)."""
        month = row["month"]
        try:
            Settlement.parse(row["document"])
        except DocumentError as exc:
            # Signed by an older version under rules the hub enforces (more
            # than 10,000 allocations): the hub can only refuse it. Split and
            # sign it again, as for a refused own key; never accepted, so
            # nothing was paid from it.
            if resplit and await self.link.service.months.close(month, again=True) is not None:
                log.warning("%s split again: its settlement broke a rule (%s)", month, exc)
                fresh = [r for r in await self.link.service.months.unsent() if r["month"] == month]
                return await self.send(fresh[0], resplit=False) if fresh else None
        attempts = int(row["sync_attempts"] or 0) + 1
        await self.link.service.months.mark(month, state=MonthState.SUBMITTED)
        body = messages.build_settlement(row["document"], row["signature"])
        try:
            status, data = await self.link.call("POST", "/v1/settlements", body)
        except HubUnreachable as exc:
            status, data = None, str(exc)
        meaning = policy.month_answer(
            status, data, attempts=attempts, retry_base=self.link.retry_base
        )
        receipt: Receipt | None = None
        if isinstance(meaning, policy.Accepted):
            try:
                receipt = await self._check_receipt(row, data)
            except (ValueError, KeyError, TypeError, signing.SignatureError) as exc:
                meaning = policy.failed(
                    "bad_receipt", str(exc), attempts, "submitted", self.link.retry_base
                )
        step = month_policy.answered(
            MonthState.SUBMITTED,
            meaning,
            attempts=attempts,
            now=self.link.service.clock.now().timestamp(),
            receipt=None if receipt is None else (data["receipt"], data["signature"]),
        )
        if step.refresh_balance:
            try:
                await self.link.refresh_balance()
            except DomainError as exc:
                log.info("balance not refreshed: %s", exc)
        if step.split_again:
            for key in step.own_keys:
                await self.link.service.creators.add_own_creator(key)
            if await self.link.service.months.close(month, again=True) is not None:
                log.info("%s split again without the person's own keys", month)
                fresh = [r for r in await self.link.service.months.unsent() if r["month"] == month]
                return await self.send(fresh[0]) if fresh else None
            retry = policy.failed("own_key", "", attempts, "closed", self.link.retry_base)
            step = month_policy.answered(
                MonthState.SUBMITTED,
                retry,
                attempts=attempts,
                now=self.link.service.clock.now().timestamp(),
            )
        await self.link.service.months.mark(month, **step.record)
        if step.fetch_records:
            # Another computer of this wallet settled it: its month (and what
            # it did not cover, moved to the open month) comes with the records.
            try:
                await self.link.records.fetch()
            except (DomainError, ValueError) as exc:
                log.info("%s: the records were not fetched: %s", month, exc)
            if await self.link.service.months.state_of(month) == MonthState.SETTLED:
                log.info("%s settled by another computer of this wallet", month)
                return None
        if receipt is not None:
            log.info("%s settled with the hub: %s", month, receipt.spend_cents)
        elif isinstance(meaning, policy.NeedsPerson):
            log.error("%s: the hub refused it for good: %s", month, meaning.message)
        elif isinstance(meaning, policy.Retry):
            log.info(
                "%s not settled (%s: %s); next attempt in %.0f s",
                month,
                meaning.code,
                meaning.message,
                meaning.seconds,
            )
        return step.wait

    async def _check_receipt(self, row: dict[str, Any], data: Any) -> Receipt:
        key = await self.link.hub_key()
        text, signature = data["receipt"], data["signature"]
        Receipt.verify(key, text, signature)
        receipt = Receipt.parse(text)  # a DocumentError is a ValueError
        sha = hashlib.sha256(row["document"].encode()).hexdigest()
        wallet = self.link.service.session.require_wallet()
        if (receipt.hub, receipt.account, receipt.month, receipt.sha256) != (
            key,
            wallet.account,
            row["month"],
            sha,
        ):
            raise ValueError("the receipt is for another document")
        return receipt
