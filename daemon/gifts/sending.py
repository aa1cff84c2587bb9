"""Gifts on their way to the hub: send each recorded gift until the hub
answers, check its receipt, record the answer (daemon/sendpolicy.py says
what each answer means). As tokens when the gift is unlinkable."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from mecene import messages, signing
from mecene.settlement import TransferReceipt
from mecene.time import seconds_at, timestamp, timestamp_at

from .. import sendpolicy as policy
from ..errors import DomainError, HubUnreachable
from ..unlinkable.link import TokenLink
from .room import Gifts

if TYPE_CHECKING:
    from ..hublink import HubLink

log = logging.getLogger("mecene.hub")


class GiftSender:
    def __init__(self, link: HubLink, gifts: Gifts, tokens: TokenLink) -> None:
        self.link = link
        self.gifts = gifts
        self.tokens = tokens

    async def send(self, row: dict[str, Any]) -> dict[str, Any]:
        """Send a recorded transfer and record the hub's answer: `given` with its
        signed receipt, `refused` with its reason (final), or still `sending`
        with the next attempt's time (the hub is unreachable or failed). Sending
        again is harmless: the hub keeps one transfer per id and answers a
        repeat with the same receipt."""
        body = messages.build_transfer(row["id"], row["creator"], row["cents"], row["url"])
        attempts = int(row["attempts"] or 0) + 1
        try:
            if row["unlinkable"]:
                # As tokens (daemon/unlinkable/link.py): the hub debits the amount
                # and signs them, and never hears of the creator.
                status, data = await self.tokens.send_transfer(row)
            else:
                status, data = await self.link.call("POST", "/v1/transfers", body)
        except HubUnreachable as exc:
            status, data = None, str(exc)
        meaning = policy.transfer_answer(
            status, data, attempts=attempts, retry_base=self.link.retry_base
        )
        if isinstance(meaning, policy.Given) and row["unlinkable"]:
            with contextlib.suppress(DomainError):
                await self.link.refresh_balance()
            log.info("transfer %s given as tokens: %s", row["id"], row["cents"])
            self.link.wake.set()  # its tokens are redeemed over the window
            return await self.gifts.mark(
                row["id"],
                state="given",
                given_at=timestamp(self.link.service.clock.now()),
                error=None,
                message=None,
                next_attempt_at=None,
            )
        if isinstance(meaning, policy.Given):
            try:
                await self._check_transfer_receipt(row, data)
            except (ValueError, KeyError, TypeError, signing.SignatureError) as exc:
                meaning = policy.failed(
                    "bad_receipt", str(exc), attempts, "sending", self.link.retry_base
                )
            else:
                with contextlib.suppress(DomainError):
                    await self.link.refresh_balance()
                log.info("transfer %s given: %s to %s", row["id"], row["cents"], row["creator"])
                return await self.gifts.mark(
                    row["id"],
                    state="given",
                    receipt=data["receipt"],
                    receipt_signature=data["signature"],
                    given_at=timestamp(self.link.service.clock.now()),
                    error=None,
                    message=None,
                    next_attempt_at=None,
                )
        if isinstance(meaning, policy.Refused):
            log.info(
                "transfer %s refused by the hub: %s (%s)", row["id"], meaning.code, meaning.message
            )
            if meaning.code == "insufficient_funds":
                with contextlib.suppress(DomainError):
                    await self.link.refresh_balance()
            return await self.gifts.mark(
                row["id"],
                state="refused",
                error=meaning.code,
                message=meaning.message,
                next_attempt_at=None,
            )
        at = self.link.service.clock.now().timestamp() + meaning.seconds
        log.info("transfer %s not sent yet (%s: %s)", row["id"], meaning.code, meaning.message)
        return await self.gifts.mark(
            row["id"],
            attempts=attempts,
            error=meaning.code,
            message=meaning.message,
            next_attempt_at=timestamp_at(at),
        )

    async def _check_transfer_receipt(self, row: dict[str, Any], data: Any) -> TransferReceipt:
        key = await self.link.hub_key()
        if not isinstance(data, dict):
            raise TypeError("the hub's answer is not an object")
        TransferReceipt.verify(key, data["receipt"], data["signature"])
        receipt = TransferReceipt.parse(data["receipt"])  # a DocumentError is a ValueError
        wallet = self.link.service.session.require_wallet()
        if (receipt.hub, receipt.account, receipt.transfer, receipt.creator, receipt.cents) != (
            key,
            wallet.account,
            row["id"],
            row["creator"],
            row["cents"],
        ):
            raise ValueError("the receipt is for another transfer")
        return receipt

    async def send_due(self, *, now_too: bool = False) -> float | None:
        """Send every transfer still `sending` whose time has come (all of them
        with `now_too`); seconds until the next one is due, or None."""
        now = self.link.service.clock.now()
        waits: list[float] = []
        for row in await self.gifts.sending():
            due = row["next_attempt_at"]
            if due and due > timestamp(now) and not now_too:
                waits.append(max(0.0, seconds_at(due) - now.timestamp()))
                continue
            after = await self.send(row)
            if after["state"] == "sending":
                waits.append(max(0.0, seconds_at(after["next_attempt_at"]) - now.timestamp()))
                if self.link.reachable is False:
                    break
        return min(waits) if waits else None
