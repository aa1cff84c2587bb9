"""The daemon's side of the hub, the thin part: signed calls, the balance,
deposits, and sending every closed month and every transfer until the hub
has it. When to send and what an answer means is decided in
daemon/sendpolicy.py, without sockets; this module calls and records.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import io
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from mecene import messages, signing
from mecene.diskspace import log_failure
from mecene.time import seconds_at, timestamp, timestamp_at
from mecene.waiting import wait_at_most

from . import sendpolicy as policy
from .devices import DeviceLink
from .errors import DomainError, HubRefused, HubUnreachable
from .gifts.sending import GiftSender
from .joinedlist import JoinedList
from .months.policy import OUTCOME_STATES
from .monthsend import MonthSender
from .records.link import RecordLink
from .service import Service
from .unlinkable import sql as tokens_sql
from .unlinkable.link import TokenLink
from .unlinkable.pool import PurchaseRefused
from .unlinkable.spacing import Spacing

log = logging.getLogger("mecene.hub")
TIMEOUT = aiohttp.ClientTimeout(total=20)


# What a settlement's money can have become at the hub, and how often a
# settled month whose money may still move is asked about again.
OUTCOME_EVERY_SECONDS = 3600.0
# The pass's own schedule when nothing else is due (the balance, outcomes,
# records): at a random moment between half and one and a half times this,
# drawn afresh each time, never tied to a redemption's (issue 27, point 1).
PASS_EVERY_SECONDS = float(os.environ.get("MECENE_PASS_EVERY_SECONDS", "3600"))


__all__ = ["HubLink", "HubRefused", "HubUnreachable"]
LARGE_BODY = 512 * 1024


class HubLink:
    def __init__(
        self,
        service: Service,
        base_url: str,
        retry_base: float = policy.RETRY_BASE_SECONDS,
        records_marker: Path | None = None,
        relay_url: str | None = None,
    ):
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.prefix = urlsplit(self.base_url).path
        self.retry_base = retry_base
        self.wake = asyncio.Event()
        self.reachable: bool | None = None
        self.last_error: str | None = None
        # Set once the hub said this device was removed: nothing signed goes.
        self.removed: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pass = asyncio.Lock()
        self.joined = JoinedList(self)  # who has joined: its own loop
        self._balance_told = 0  # balances the hub gave with a deposit's answer
        self.spacing = Spacing()
        # The redemptions' own loop (`TokenLink.run`); in-process tests that
        # move a frozen clock by hand drive it themselves (`passes`).
        self.redeem_alone = True
        self.tokens = TokenLink(
            self, service.store, service.clock, spacing=self.spacing, relay_url=relay_url
        )
        self.records = RecordLink(self, service, records_marker)
        self.devices = DeviceLink(self)
        self.records.devices = self.devices
        self.tokens.before_issue = self.records.before_issue
        self.tokens.issued_elsewhere = self.records.fetch
        self.records.on_merged = self.wake.set
        self.gifts = GiftSender(self, service.gifts, self.tokens)
        self.months_out = MonthSender(self)

    # -- calls -----------------------------------------------------------------------

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        signed: bool = True,
        headers_in: dict[str, str] | None = None,
        headers_out: dict[str, str] | None = None,
        as_account: bool = False,
    ) -> tuple[int, Any]:
        """(status, JSON body; None for a 304). `headers_in`: more request
        headers; `headers_out`: filled with the answer's (names in lower case).
        A computer that is one of the account's devices signs with its device
        key, unless `as_account` (adding its own key)."""
        if signed:
            self.spacing.signed()  # the next redemption keeps apart from it
            wallet = self.service.session.require_wallet()
            if self.removed is not None:
                raise HubRefused(self.removed, hub_error="device_removed")
            now = self.service.clock.now().timestamp()
            device = None if as_account else wallet.data.device
            raw, headers = signing.signed_request(
                wallet.account,
                wallet.sign if device is None else wallet.data.sign_as_device,
                method,
                self.prefix + path,
                body,
                now,
                device=device,
            )
        else:
            raw = signing.encode_body(body)
            headers = {"Content-Type": "application/json"} if raw else {}
        headers.update(headers_in or {})
        session = await self._get_session()
        try:
            # Past 1 MB (a large record), aiohttp wants a stream, not bytes.
            data: bytes | io.BytesIO | None = raw or None
            if raw and len(raw) > LARGE_BODY:
                data = io.BytesIO(raw)
            async with session.request(
                method, self.base_url + path, data=data, headers=headers
            ) as resp:
                data = None if resp.status == 304 else await resp.json(content_type=None)
                status = resp.status
                hub_date = resp.headers.get("Date")
                if headers_out is not None:
                    headers_out.update((k.lower(), v) for k, v in resp.headers.items())
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            self.reachable = False
            self.last_error = f"the hub at {self.base_url} is unreachable ({type(exc).__name__})"
            raise HubUnreachable(self.last_error) from None
        finally:
            if signed:
                self.spacing.signed()
        self.reachable = True
        self.last_error = None
        self._hub_time(hub_date)
        if status == 403 and isinstance(data, dict) and data.get("error") == "device_removed":
            # Another computer removed this one: it no longer acts for the
            # account (DESIGN.md, "Devices"); said wherever the hub's state is.
            self.removed = "this computer was removed from the wallet's devices"
            self.last_error = self.removed
            log.error("%s: it no longer sends anything to the hub", self.removed)
        return status, data

    def _hub_time(self, header: str | None) -> None:
        """The hub's clock, from its answer's `Date`: whether ours may close a
        month (months/clockwatch.py). Unsigned: a liar can only hold closes."""
        if not header:
            return
        try:
            at = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        if at.tzinfo is None:
            return
        self.service.months.hub_time(at)

    async def ok(
        self,
        method: str,
        path: str,
        body: Any = None,
        signed: bool = True,
        *,
        as_account: bool = False,
    ) -> Any:
        """The answer's body, or HubRefused. `as_account`: signed with the
        account's own key (adding this computer's), not the device's."""
        status, data = await self.call(method, path, body, signed=signed, as_account=as_account)
        if status >= 400:
            code = data.get("error", "error") if isinstance(data, dict) else "error"
            message = data.get("message", "") if isinstance(data, dict) else ""
            raise HubRefused(f"the hub refused: {message or code}", hub_error=code)
        return data

    async def hub_key(self) -> str:
        """The hub's public key, pinned the first time it is seen."""
        pinned = await self.service.session.meta("hub_public_key")
        if pinned:
            return pinned
        info = await self.ok("GET", "/v1", signed=False)
        key = str(info["public_key"])
        signing.public_key(key)  # a real key, or SignatureError
        await self.service.session.set_meta("hub_public_key", key)
        return key

    def account(self) -> str:
        return self.service.session.require_wallet().account

    async def refresh_balance(self) -> int | None:
        if self.service.session.locked:
            return None
        seen = self._balance_told
        account = await self.ok("GET", "/v1/account")
        if self._balance_told != seen:
            # A deposit's own answer came while this one was on its way: it
            # is newer than this one, which must not overwrite it.
            return None
        await self.service.session.set_balance(int(account["balance_cents"]))
        return int(account["balance_cents"])

    async def refresh_joined(self) -> None:
        """The hub's list of who has joined, now (daemon/joinedlist.py)."""
        await self.joined.refresh()

    def joined_changed(self) -> None:
        """The person proved a key or got a Flattr ID: the list is fetched now."""
        self.joined.wake.set()

    async def state(self) -> dict[str, Any]:
        return {
            "url": self.base_url,
            "reachable": self.reachable,
            "error": self.last_error,
            "public_key": await self.service.session.meta("hub_public_key"),
            "records": await self.records.view(),
            "device": self.service.session.require_wallet().data.device
            if not self.service.session.locked
            else None,
            "removed": self.removed,
            "tokens_refused": self.tokens.refused,
            "relay": self.tokens.anonymous.relay_url,
            # Bought for gifts and not given yet (daemon/unlinkable/pool.py).
            "gift_tokens_cents": await self.service.store.read(tokens_sql.pooled_cents),
        }

    async def creator_call(self, method: str, path: str, body: Any = None) -> Any:
        """A call the person makes at the hub as a creator (claims, withdrawals)."""
        return await self.ok(method, path, body)

    # -- deposits ------------------------------------------------------------------------

    async def quote(self, method: str, amount_cents: int) -> Any:
        return await self.ok(
            "POST",
            "/v1/deposits/quote",
            messages.build_quote(method, amount_cents),
            signed=False,
        )

    async def deposit(self, body: dict[str, Any]) -> Any:
        out = await self.ok("POST", "/v1/deposits", body)
        self._balance_told += 1
        await self.service.session.set_balance(int(out["balance_cents"]))
        self.wake.set()  # a month refused for want of money may go through now
        return out

    # -- months ----------------------------------------------------------------------------

    async def sync_once(self, *, asked: bool = False) -> float | None:
        """One pass of signed calls: send every closed month that is due,
        the transfers, have settled months' tokens signed, keep the records,
        refresh the balance and outcomes; seconds until something is due
        again, or None when nothing waits. Never within the spacing of a
        redemption (daemon/unlinkable/spacing.py): redemptions run on their
        own schedule (`TokenLink.run`). `asked`: the person asked for it
        (`POST /hub/sync`): it goes now, as a deposit does, and the next
        redemption keeps apart from it instead."""
        if self.service.session.locked:
            return None
        async with self._pass:
            while not asked and (wait := self.spacing.before_signed_pass()) > 0:
                await asyncio.sleep(wait)
            async with self.spacing.turn:
                return await self._pass_calls()

    async def _pass_calls(self) -> float | None:
        rows = await self.service.months.unsent()
        now = self.service.clock.now()
        waits: list[float] = []
        for row in rows:
            due = seconds_at(row["next_sync_at"]) if row["next_sync_at"] else None
            step = policy.next_step(row["sync_error"], due, now.timestamp())
            if isinstance(step, policy.Hold):
                continue  # shown in the month and the status
            if isinstance(step, policy.Wait):
                waits.append(step.seconds)
                continue
            delay = await self.months_out.send(row)
            if delay is not None:
                waits.append(delay)
                if self.reachable is False:
                    break  # the hub is down: the other months wait too
        if self.reachable is not False:
            try:  # the gift pool's purchases, at moments of their own
                top_up = await self.tokens.pool.top_up_due()
            except PurchaseRefused as exc:
                await self.gifts.refuse_waiting(exc.code, str(exc))
            except (DomainError, ValueError) as exc:  # KeysRefused is a ValueError
                log.info("gift tokens not bought yet: %s", exc)
                waits.append(policy.RETRY_MAX_SECONDS / 60)
            else:
                if top_up is not None:
                    waits.append(top_up)
        if self.reachable is not False:
            transfers_due = await self.gifts.send_due()
            if transfers_due is not None:
                waits.append(transfers_due)
        if self.reachable is not False:
            try:
                await self.tokens.issue_due()
            except (DomainError, ValueError) as exc:
                # Kept as they are (planned or blinded): tried again.
                log.warning("unlinkable tokens not issued yet: %s", exc)
                waits.append(policy.RETRY_MAX_SECONDS / 60)
            self.tokens.wake.set()  # new tokens have their moments
        if self.reachable is not False:
            records_due = await self.records.step()
            if records_due is not None:
                waits.append(records_due)
        if self.reachable is not False:
            try:
                await self.refresh_balance()
                await self.refresh_outcomes()
            except DomainError as exc:
                log.info("balance or outcomes not refreshed: %s", exc)
        return min(waits) if waits else None

    async def refresh_outcomes(self, *, every: float = OUTCOME_EVERY_SECONDS) -> None:
        """Ask the hub what became of settled months whose money may still move
        (withheld until a creator gives, in escrow until a key is proved), at
        most every `every` seconds per month: a receipt says "held" for money
        that may be credited a moment later."""
        now = self.service.clock.now()
        before = timestamp_at(now.timestamp() - every)
        for month in await self.service.months.awaiting_outcome(before):
            data = await self.ok("GET", f"/v1/settlements/{month}")
            outcome = data.get("outcome") if isinstance(data, dict) else None
            if not isinstance(outcome, dict) or not all(
                isinstance(outcome.get(f"{s}_cents"), int) for s in OUTCOME_STATES
            ):
                raise HubRefused(f"the hub's outcome for {month} is malformed")
            await self.service.months.mark(
                month,
                outcome=json.dumps({f"{s}_cents": outcome[f"{s}_cents"] for s in OUTCOME_STATES}),
                outcome_at=timestamp(now),
            )

    async def run(self) -> None:
        """Forever: send what is due, then sleep until the next is due, the
        pass's own random moment, or something wakes us (a month closed, a
        deposit, an unlock). Redemptions run beside it, on their own."""
        redemptions = asyncio.create_task(self.tokens.run()) if self.redeem_alone else None
        joined = asyncio.create_task(self.joined.run())
        try:
            await self._run_passes()
        finally:
            for task in (redemptions, joined):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _run_passes(self) -> None:
        try:
            await self.hub_key()
            # Its time, at once: months that ended while the daemon was
            # stopped close once the clock is known to be right.
            await self.call("GET", "/v1", signed=False)
            if not self.service.session.locked:
                await self.service.months.roll()
        except DomainError as exc:
            log.info("hub not reached yet: %s", exc)
        while True:
            self.wake.clear()
            try:
                delay = await self.sync_once()
            except Exception as exc:
                log_failure(log, "sending months to the hub failed", exc)
                delay = policy.RETRY_MAX_SECONDS / 60
            own = PASS_EVERY_SECONDS * (0.5 + secrets.randbelow(1000) / 1000)
            delay = min(own, own if delay is None else delay)
            await wait_at_most(self.wake, delay)
