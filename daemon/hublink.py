"""The daemon's side of the hub: signed calls, the balance, deposits, and
sending every closed month until the hub has it.

A month goes `closed → submitted → settled`: `submitted` is written before
the settlement leaves, so after a crash or a lost answer the daemon knows it
may have arrived and sends it again (the hub answers a repeat with the same
receipt). `settled` means the hub's receipt is stored, its signature checked
against the hub's key (pinned at first contact) and its content against the
document sent. While the hub is unreachable the daemon retries with
exponential back-off (5 s doubling to an hour); a refusal (not enough money)
is retried the same way, since a deposit can fix it; a conflicting
settlement is not retried and is shown to the person.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import random
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from mecene import signing
from mecene.settlement import Receipt, TransferReceipt
from mecene.time import timestamp

from .errors import DomainError
from .service import Joined, Service

log = logging.getLogger("mecene.hub")
RETRY_BASE_SECONDS = 5.0
RETRY_MAX_SECONDS = 3600.0
# How often the list of joined creators is downloaded again (tests shorten it).
JOINED_REFRESH_SECONDS = float(os.environ.get("MECENE_JOINED_REFRESH_SECONDS", "3600"))
MAX_JOINED_KEYS = 5_000_000
TIMEOUT = aiohttp.ClientTimeout(total=20)


# Refusals that sending again cannot change: the month stays closed, shown
# with its reason, until a person acts.
NEEDS_A_PERSON = frozenset({"settlement_conflict", "month_before_account"})


# What a settlement's money can have become at the hub, and how often a
# settled month whose money may still move is asked about again.
OUTCOME_STATES = ("credited", "withheld", "escrow", "returned")
OUTCOME_EVERY_SECONDS = 3600.0


class HubUnreachable(DomainError):
    code = "hub_unreachable"


class HubRefused(DomainError):
    code = "hub_refused"


def retry_delay(attempts: int, base: float = RETRY_BASE_SECONDS) -> float:
    """Seconds before the next attempt after `attempts` failures: `base`
    doubling to an hour, less up to 20 % of jitter so daemons do not march in step."""
    delay: float = min(RETRY_MAX_SECONDS, base * 2.0 ** max(0, attempts - 1))
    return delay * random.uniform(0.8, 1.0)


class HubLink:
    def __init__(self, service: Service, base_url: str, retry_base: float = RETRY_BASE_SECONDS):
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.prefix = urlsplit(self.base_url).path
        self.retry_base = retry_base
        self.wake = asyncio.Event()
        self.reachable: bool | None = None
        self.last_error: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pass = asyncio.Lock()
        self._joined_due = 0.0  # loop time when the joined list is next downloaded

    # -- calls -----------------------------------------------------------------------

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self, method: str, path: str, body: Any = None, *, signed: bool = True
    ) -> tuple[int, Any]:
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if signed:
            wallet = self.service.require_wallet()
            now = self.service.clock.now().timestamp()
            headers.update(
                signing.sign_request(
                    wallet.account, wallet.sign, method, self.prefix + path, raw, now
                )
            )
        session = await self._get_session()
        try:
            async with session.request(
                method, self.base_url + path, data=raw or None, headers=headers
            ) as resp:
                data = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            self.reachable = False
            self.last_error = f"the hub at {self.base_url} is unreachable ({type(exc).__name__})"
            raise HubUnreachable(self.last_error) from None
        self.reachable = True
        self.last_error = None
        return status, data

    async def _ok(self, method: str, path: str, body: Any = None, signed: bool = True) -> Any:
        status, data = await self.call(method, path, body, signed=signed)
        if status >= 400:
            code = data.get("error", "error") if isinstance(data, dict) else "error"
            message = data.get("message", "") if isinstance(data, dict) else ""
            raise HubRefused(f"the hub refused: {message or code}", hub_error=code)
        return data

    async def hub_key(self) -> str:
        """The hub's public key, pinned the first time it is seen."""
        pinned = await self.service.meta("hub_public_key")
        if pinned:
            return pinned
        info = await self._ok("GET", "/v1", signed=False)
        key = str(info["public_key"])
        signing.public_key(key)  # a real key, or SignatureError
        await self.service.set_meta("hub_public_key", key)
        return key

    async def refresh_balance(self) -> int | None:
        if self.service.locked:
            return None
        account = await self._ok("GET", "/v1/account")
        await self.service.set_balance(int(account["balance_cents"]))
        return int(account["balance_cents"])

    async def refresh_joined(self) -> None:
        """Download the hub's whole list of proved creator keys (DESIGN.md, "Who
        has joined"): the popup can then say whether a creator has joined
        without the hub learning which creator the person looked at."""
        data = await self._ok("GET", "/v1/creators/joined", signed=False)
        keys = data.get("keys") if isinstance(data, dict) else None
        months = data.get("escrow_months") if isinstance(data, dict) else None
        nonprofit = data.get("nonprofit", []) if isinstance(data, dict) else None
        if (
            not isinstance(keys, list)
            or len(keys) > MAX_JOINED_KEYS
            or not all(isinstance(k, str) for k in keys)
            or not isinstance(months, int)
            or not isinstance(nonprofit, list)
            or not all(isinstance(k, str) for k in nonprofit)
        ):
            raise HubRefused("the hub's list of joined creators is malformed")
        self.service.joined = Joined(
            frozenset(keys), months, self.service.clock.now(), frozenset(nonprofit) & set(keys)
        )
        self._joined_due = asyncio.get_running_loop().time() + JOINED_REFRESH_SECONDS

    async def state(self) -> dict[str, Any]:
        return {
            "url": self.base_url,
            "reachable": self.reachable,
            "error": self.last_error,
            "public_key": await self.service.meta("hub_public_key"),
        }

    async def creator_call(self, method: str, path: str, body: Any = None) -> Any:
        """A call the person makes at the hub as a creator (claims, withdrawals)."""
        return await self._ok(method, path, body)

    # -- deposits ------------------------------------------------------------------------

    async def quote(self, method: str, amount_cents: int) -> Any:
        return await self._ok(
            "POST",
            "/v1/deposits/quote",
            {"method": method, "amount_cents": amount_cents},
            signed=False,
        )

    async def deposit(self, body: dict[str, Any]) -> Any:
        out = await self._ok("POST", "/v1/deposits", body)
        await self.service.set_balance(int(out["balance_cents"]))
        self.wake.set()  # a month refused for want of money may go through now
        return out

    # -- months ----------------------------------------------------------------------------

    async def sync_once(self) -> float | None:
        """Send every closed month that is due; seconds until the next one is
        due, or None when nothing waits."""
        if self.service.locked:
            return None
        async with self._pass:
            rows = await self.service.unsent_months()
            now = self.service.clock.now()
            waits: list[float] = []
            for row in rows:
                if row["sync_error"] in NEEDS_A_PERSON:
                    continue  # shown in the month and the status
                if row["next_sync_at"] and row["next_sync_at"] > timestamp(now):
                    due = _parse(row["next_sync_at"]) - now.timestamp()
                    waits.append(max(0.0, due))
                    continue
                delay = await self._send(row)
                if delay is not None:
                    waits.append(delay)
                    if self.reachable is False:
                        break  # the hub is down: the other months wait too
            if self.reachable is not False:
                transfers_due = await self.send_due_transfers()
                if transfers_due is not None:
                    waits.append(transfers_due)
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
        before = timestamp(_from_ts(now.timestamp() - every))
        for month in await self.service.months_awaiting_outcome(before):
            data = await self._ok("GET", f"/v1/settlements/{month}")
            outcome = data.get("outcome") if isinstance(data, dict) else None
            if not isinstance(outcome, dict) or not all(
                isinstance(outcome.get(f"{s}_cents"), int) for s in OUTCOME_STATES
            ):
                raise HubRefused(f"the hub's outcome for {month} is malformed")
            await self.service.mark_month(
                month,
                outcome=json.dumps({f"{s}_cents": outcome[f"{s}_cents"] for s in OUTCOME_STATES}),
                outcome_at=timestamp(now),
            )

    async def _send(self, row: dict[str, Any]) -> float | None:
        month = row["month"]
        await self.service.mark_month(month, state="submitted")
        try:
            status, data = await self.call(
                "POST",
                "/v1/settlements",
                {"document": row["document"], "signature": row["signature"]},
            )
        except HubUnreachable as exc:
            return await self._failed(row, "hub_unreachable", str(exc), state="submitted")
        if status in (200, 201):
            try:
                receipt = await self._check_receipt(row, data)
            except (ValueError, KeyError, TypeError, signing.SignatureError) as exc:
                return await self._failed(row, "bad_receipt", str(exc), state="submitted")
            # The balance after this month's debit first, so that a month that
            # reads "settled" never shows the balance from before it.
            try:
                await self.refresh_balance()
            except DomainError as exc:
                log.info("balance not refreshed: %s", exc)
            await self.service.mark_month(
                month,
                state="settled",
                receipt=data["receipt"],
                receipt_signature=data["signature"],
                settled_at=timestamp(self.service.clock.now()),
                sync_error=None,
                next_sync_at=None,
            )
            log.info("%s settled with the hub: %s", month, receipt["spend_cents"])
            return None
        code = data.get("error", str(status)) if isinstance(data, dict) else str(status)
        message = data.get("message", "") if isinstance(data, dict) else ""
        if code in NEEDS_A_PERSON:
            await self.service.mark_month(month, state="closed", sync_error=code, next_sync_at=None)
            log.error("%s: the hub refused it for good: %s", month, message)
            return None
        if code == "month_not_ended" and isinstance(data.get("retry_after"), int):
            # Not an error: the month has not ended in every time zone yet.
            # Come back then, spread over a few minutes as every daemon will.
            wait = max(1, data["retry_after"]) + random.uniform(0, min(300.0, self.retry_base * 60))
            return await self._failed(row, code, message, state="closed", delay=wait)
        if code == "own_key" and isinstance(data.get("keys"), list):
            # A key of the person's own (claimed elsewhere since the month
            # closed): never sent anywhere yet, so the month is split again
            # without it and signed anew.
            for key in data["keys"]:
                if isinstance(key, str):
                    await self.service.add_own_creator(key)
            if await self.service.close_month(month, again=True) is not None:
                log.info("%s split again without the person's own keys", month)
                fresh = [r for r in await self.service.unsent_months() if r["month"] == month]
                return await self._send(fresh[0]) if fresh else None
        return await self._failed(row, code, message, state="closed")

    async def _failed(
        self, row: dict[str, Any], code: str, message: str, state: str, delay: float | None = None
    ) -> float:
        attempts = int(row["sync_attempts"] or 0) + 1
        if delay is None:
            delay = retry_delay(attempts, self.retry_base)
        at = self.service.clock.now().timestamp() + delay
        await self.service.mark_month(
            row["month"],
            state=state,
            sync_attempts=attempts,
            sync_error=code,
            next_sync_at=timestamp(_from_ts(at)),
        )
        log.info(
            "%s not settled (%s: %s); next attempt in %.0f s", row["month"], code, message, delay
        )
        return delay

    async def _check_receipt(self, row: dict[str, Any], data: Any) -> dict[str, Any]:
        key = await self.hub_key()
        text, signature = data["receipt"], data["signature"]
        Receipt.verify(key, text, signature)
        receipt = Receipt.parse(text)  # a DocumentError is a ValueError
        sha = hashlib.sha256(row["document"].encode()).hexdigest()
        wallet = self.service.require_wallet()
        if (receipt.hub, receipt.account, receipt.month, receipt.sha256) != (
            key,
            wallet.account,
            row["month"],
            sha,
        ):
            raise ValueError("the receipt is for another document")
        return dict(json.loads(text))

    # -- direct transfers -----------------------------------------------------------

    async def send_transfer(self, row: dict[str, Any]) -> dict[str, Any]:
        """Send a recorded transfer and record the hub's answer: `given` with its
        signed receipt, `refused` with its reason (final), or still `sending`
        with the next attempt's time (the hub is unreachable or failed). Sending
        again is harmless: the hub keeps one transfer per id and answers a
        repeat with the same receipt."""
        body = {"id": row["id"], "creator": row["creator"], "cents": row["cents"]}
        if row["url"]:
            body["url"] = row["url"]
        try:
            status, data = await self.call("POST", "/v1/transfers", body)
        except HubUnreachable as exc:
            return await self._transfer_later(row, "hub_unreachable", str(exc))
        if status in (200, 201):
            try:
                key = await self.hub_key()
                TransferReceipt.verify(key, data["receipt"], data["signature"])
                receipt = TransferReceipt.parse(data["receipt"])  # a DocumentError is a ValueError
                wallet = self.service.require_wallet()
                if (receipt.hub, receipt.account, receipt.transfer, receipt.creator) != (
                    key,
                    wallet.account,
                    row["id"],
                    row["creator"],
                ) or receipt.cents != row["cents"]:
                    raise ValueError("the receipt is for another transfer")
            except (ValueError, KeyError, TypeError, AttributeError, signing.SignatureError) as exc:
                return await self._transfer_later(row, "bad_receipt", str(exc))
            with contextlib.suppress(DomainError):
                await self.refresh_balance()
            log.info("transfer %s given: %s cents to %s", row["id"], row["cents"], row["creator"])
            return await self.service.mark_transfer(
                row["id"],
                state="given",
                receipt=data["receipt"],
                receipt_signature=data["signature"],
                given_at=timestamp(self.service.clock.now()),
                error=None,
                message=None,
                next_attempt_at=None,
            )
        code = data.get("error", str(status)) if isinstance(data, dict) else str(status)
        message = data.get("message", "") if isinstance(data, dict) else ""
        if status >= 500:
            return await self._transfer_later(row, code, message)
        log.info("transfer %s refused by the hub: %s (%s)", row["id"], code, message)
        if code == "insufficient_funds":
            with contextlib.suppress(DomainError):
                await self.refresh_balance()
        return await self.service.mark_transfer(
            row["id"], state="refused", error=code, message=message, next_attempt_at=None
        )

    async def _transfer_later(self, row: dict[str, Any], code: str, message: str) -> dict[str, Any]:
        attempts = int(row["attempts"] or 0) + 1
        at = self.service.clock.now().timestamp() + retry_delay(attempts, self.retry_base)
        log.info("transfer %s not sent yet (%s: %s)", row["id"], code, message)
        return await self.service.mark_transfer(
            row["id"],
            attempts=attempts,
            error=code,
            message=message,
            next_attempt_at=timestamp(_from_ts(at)),
        )

    async def send_due_transfers(self, *, now_too: bool = False) -> float | None:
        """Send every transfer still `sending` whose time has come (all of them
        with `now_too`); seconds until the next one is due, or None."""
        now = self.service.clock.now()
        waits: list[float] = []
        for row in await self.service.sending_transfers():
            due = row["next_attempt_at"]
            if due and due > timestamp(now) and not now_too:
                waits.append(max(0.0, _parse(due) - now.timestamp()))
                continue
            after = await self.send_transfer(row)
            if after["state"] == "sending":
                waits.append(max(0.0, _parse(after["next_attempt_at"]) - now.timestamp()))
                if self.reachable is False:
                    break
        return min(waits) if waits else None

    async def run(self) -> None:
        """Forever: send what is due, then sleep until the next is due or
        something wakes us (a month closed, a deposit, an unlock)."""
        try:
            await self.hub_key()
        except DomainError as exc:
            log.info("hub not reached yet: %s", exc)
        while True:
            self.wake.clear()
            try:
                delay = await self.sync_once()
            except Exception:
                log.exception("sending months to the hub failed; will try again")
                delay = RETRY_MAX_SECONDS / 60
            loop = asyncio.get_running_loop()
            if loop.time() >= self._joined_due:
                try:
                    await self.refresh_joined()
                except DomainError as exc:
                    log.info("the list of joined creators was not downloaded: %s", exc)
                    self._joined_due = loop.time() + RETRY_MAX_SECONDS / 60
            until_joined = max(1.0, self._joined_due - loop.time())
            delay = until_joined if delay is None else min(delay, until_joined)
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=delay)
            except TimeoutError:
                pass


def _parse(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.rstrip("Z")).replace(tzinfo=dt.UTC).timestamp()


def _from_ts(seconds: float) -> Any:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
