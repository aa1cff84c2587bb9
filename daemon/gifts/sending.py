"""Gifts on their way to the hub: send each recorded gift until the hub
answers, check its receipt, record the answer (daemon/sendpolicy.py says
what each answer means). As tokens when the gift is unlinkable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from mecene import messages, signing
from mecene.settlement import TransferReceipt
from mecene.time import seconds_at, timestamp, timestamp_at

from .. import sendpolicy as policy
from ..errors import DomainError, HubUnreachable
from ..unlinkable import pool
from ..unlinkable.link import KeysRefused, TokenLink
from .room import Gifts

if TYPE_CHECKING:
    from ..hublink import HubLink

log = logging.getLogger("mecene.hub")


class GiftSender:
    def __init__(self, link: HubLink, gifts: Gifts, tokens: TokenLink) -> None:
        self.link = link
        self.gifts = gifts
        self.tokens = tokens
        self._sending: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    async def send(self, row: dict[str, Any]) -> dict[str, Any]:
        """Send a recorded transfer and record the hub's answer: `given` with its
        signed receipt, `refused` with its reason (final), or still `sending`
        with the next attempt's time (the hub is unreachable or failed). Sending
        again is harmless: the hub keeps one transfer per id and answers a
        repeat with the same receipt. Still, a gift is on its way once at a
        time: when the request that made it and the background pass both send
        it, the second waits for the first and takes its answer."""
        lock, users = self._sending.setdefault(row["id"], (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                fresh = await self.gifts.get(row["id"])
                if fresh["state"] != "sending" or fresh["attempts"] != row["attempts"]:
                    return fresh  # answered while this caller waited
                return await self._send(fresh)
        finally:
            users[0] -= 1
            if not users[0]:
                del self._sending[row["id"]]

    async def _send(self, row: dict[str, Any]) -> dict[str, Any]:
        body = messages.build_transfer(row["id"], row["creator"], row["cents"], row["url"])
        attempts = int(row["attempts"] or 0) + 1
        try:
            if row["unlinkable"] and await self.tokens.has_tokens(row["id"]):
                # Blinded for it when it was given (before the gift pool).
                status, data = await self.tokens.send_transfer(row)
            elif row["unlinkable"]:
                # From the tokens the daemon holds (daemon/unlinkable/pool.py):
                # the hub hears nothing now, neither the amount nor the creator.
                wait = await self.tokens.pool.pay(row)
                if wait is not None:
                    self.link.wake.set()  # the pass sleeps until the batches' moment
                    at = self.link.service.clock.now().timestamp() + wait
                    return await self.gifts.mark(
                        row["id"],
                        error=pool.WAITING,
                        message=pool.WAITING_MESSAGE,
                        next_attempt_at=timestamp_at(at),
                    )
                status, data = 200, {"paid": "from tokens held"}
            else:
                status, data = await self.link.call("POST", "/v1/transfers", body)
        except (HubUnreachable, KeysRefused) as exc:
            # KeysRefused: the month's token keys are not pinned yet (or the
            # hub showed two): the gift waits and is tried again.
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

    async def refuse_waiting(self, code: str, message: str) -> None:
        """The hub refused to sell the tokens the waiting unlinkable gifts
        need (insufficient_funds, …): they are refused with its reason."""
        for row in await self.gifts.sending():
            if row["unlinkable"] and not await self.tokens.has_tokens(row["id"]):
                log.info(
                    "transfer %s refused: its tokens could not be bought (%s)", row["id"], code
                )
                await self.gifts.mark(
                    row["id"], state="refused", error=code, message=message, next_attempt_at=None
                )
        if code == "insufficient_funds":
            with contextlib.suppress(DomainError):
                await self.link.refresh_balance()

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
