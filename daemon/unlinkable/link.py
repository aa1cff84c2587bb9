"""The token path's driver (daemon/unlinkable/__init__.py says the steps):
fetch the month's keys, have planned tokens signed, redeem each when its
time comes. The only part of the unlinkable room that talks to the network."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
from sqlite_utils import Database

from mecene import tokens, tokenwire
from mecene.time import Clock, seconds_at, timestamp, timestamp_at

from ..store import Store
from . import policy, sql

log = logging.getLogger("mecene.tokens")

# Tokens are redeemed at random times within this window after they are
# issued: hours by default, so that their arrivals at the hub do not line up
# with one person's month close (tests shorten it).
REDEEM_WINDOW_SECONDS = float(os.environ.get("MECENE_REDEEM_WINDOW_SECONDS", str(12 * 3600)))
TIMEOUT = aiohttp.ClientTimeout(total=20)


class KeysRefused(ValueError):
    """The hub's published keys for a month, or its answer, are malformed or do not check."""


def check_keys(month: str, data: Any) -> tokenwire.KeyDirectory:
    """The month's keys, checked (mecene/tokenwire.py); KeysRefused if not."""
    try:
        return tokenwire.parse_directory(month, data)
    except tokenwire.WireError as exc:
        raise KeysRefused(str(exc)) from None


class HubCalls(Protocol):
    """What the token path needs of the hub link (daemon/hublink.py's HubLink)."""

    base_url: str

    async def ok(self, method: str, path: str, body: Any = None, signed: bool = True) -> Any:
        """The answer's body, or HubRefused."""

    async def call(
        self, method: str, path: str, body: Any = None, *, signed: bool = True
    ) -> tuple[int, Any]:
        """The answer's status and body, or HubUnreachable."""


class TokenLink:
    """Issue and redeem a wallet's tokens through `link`, writing to `store`."""

    def __init__(
        self, link: HubCalls, store: Store, clock: Clock, window: float = REDEEM_WINDOW_SECONDS
    ) -> None:
        self.link = link
        self.store = store
        self.clock = clock
        self.window = window
        self._keys: dict[str, tokenwire.KeyDirectory] = {}
        # Tokens redeemed so far: the hub link sends no signed record in a
        # pass that redeemed one (daemon/records/link.py).
        self.redeemed = 0
        # Called once blinded requests are written and before the hub is
        # asked to sign them: they are kept at the hub first (records).
        self.before_issue: Callable[[], Awaitable[None]] | None = None

    def now(self) -> dt.datetime:
        return self.clock.now()

    async def keys(self, month: str) -> tokenwire.KeyDirectory:
        if month not in self._keys:
            data = await self.link.ok("GET", f"/v1/token-keys/{month}", signed=False)
            self._keys[month] = check_keys(month, data)
        return self._keys[month]

    async def months_to_issue(self) -> list[str]:
        """Settled months whose tokens are not all issued yet."""

        return await self.store.read(sql.months_to_issue)

    async def issue(self, month: str) -> int:
        """Have the month's tokens signed; the number made ready."""
        keys = await self.keys(month)
        by_cents = keys.by_cents()

        def blind_planned(db: Database) -> None:
            for token_id, cents in sql.planned_of_month(db, month):
                sql.update(db, token_id, policy.blinded(by_cents[cents]))

        # Written before the hub is asked: the same request can be sent again.
        await self.store.write(blind_planned)
        rows = await self.store.read(lambda db: sql.blinded_of_month(db, month))
        if not rows:
            return 0
        if self.before_issue is not None:
            await self.before_issue()
        pending = [policy.pending(r) for r in rows]
        out = await self.link.ok("POST", "/v1/tokens", tokenwire.build_issue(month, pending))
        count = await self._finish(rows, pending, keys, out)
        log.info("%s: %d tokens issued, redeemed over the next %.0f s", month, count, self.window)
        return count

    async def send_transfer(self, row: dict[str, Any]) -> tuple[int | None, Any]:
        """Have a direct transfer's tokens signed: the hub debits the amount
        and signs them (its answer: status and body, or None and a reason when
        it could not be reached). Its tokens are blinded with the keys of the
        hub's month and written down the first time, then sent again as they
        are until the hub answers."""
        transfer_id = row["id"]

        def mine(db: Database) -> list[dict[str, Any]]:
            return sql.of_transfer(db, transfer_id)

        rows = await self.store.read(mine)
        if not rows:
            month = self.now().strftime("%Y-%m")  # the hub's month is UTC's
            by_cents = (await self.keys(month)).by_cents()

            def blind(db: Database) -> None:
                if mine(db):
                    return  # written meanwhile
                for _ in range(policy.gift_tokens(int(row["cents"]))):
                    sql.insert(
                        db,
                        {
                            "id": str(uuid.uuid4()),
                            "month": month,
                            "creator": row["creator"],
                            "cents": tokens.DENOMINATION,
                            "attempts": 0,
                            "transfer_id": transfer_id,
                            **policy.blinded(by_cents[tokens.DENOMINATION]),
                        },
                    )

            await self.store.write(blind)
            rows = await self.store.read(mine)
        if rows[0]["state"] != policy.TokenState.BLINDED:
            return 200, {"issued": "already"}  # only their redemptions remain
        month = rows[0]["month"]
        keys = await self.keys(month)
        if self.before_issue is not None:
            await self.before_issue()
        pending = [policy.pending(r) for r in rows]
        body = tokenwire.build_issue(month, pending, (transfer_id, int(row["cents"])))
        status, out = await self.link.call("POST", "/v1/tokens", body)
        if status in (200, 201):
            await self._finish(rows, pending, keys, out)
        elif policy.refused_for_good(status):
            code = out.get("error", "refused") if isinstance(out, dict) else "refused"
            await self.store.write(lambda db: sql.fail_transfer(db, transfer_id, str(code)))
        return status, out

    async def _finish(
        self,
        rows: list[dict[str, Any]],
        pending: list[tokens.Pending],
        keys: tokenwire.KeyDirectory,
        out: Any,
    ) -> int:
        """Unblind and check the hub's signatures; each token gets its time
        to be redeemed, at random within the window."""
        try:
            answer = tokenwire.parse_issue_answer(out, len(pending))
        except tokenwire.WireError as exc:
            raise KeysRefused(str(exc)) from None
        by_id = keys.by_id()
        now = self.now().timestamp()
        finished = []
        for row, p, sig in zip(rows, pending, answer.blind_signatures, strict=True):
            token = p.finish(by_id[p.key_id].public, sig)  # TokenError if the hub cheated
            at = policy.redeem_at(now, self.window, secrets.randbelow)
            finished.append((row["id"], token.authenticator.hex(), timestamp_at(at)))

        def ready(db: Database) -> None:  # by its name, a test crashes here
            sql.make_ready(db, finished)

        await self.store.write(ready)
        return len(finished)

    async def redeem_due(self) -> float | None:
        """Redeem every token whose time has come; seconds until the next.
        Tokens long overdue (the daemon slept) get new moments in a fresh
        window instead (policy.overdue)."""
        now = timestamp(self.now())
        rows = await self.store.read(sql.ready)
        waits = []
        late: list[tuple[str, str]] = []
        for row in rows:
            if row["redeem_at"] > now:
                waits.append(max(0.0, seconds_at(row["redeem_at"]) - self.now().timestamp()))
                continue
            if policy.overdue(seconds_at(row["redeem_at"]), self.now().timestamp()):
                at = policy.redeem_at(self.now().timestamp(), self.window, secrets.randbelow)
                late.append((row["id"], timestamp_at(at)))
                waits.append(max(0.0, at - self.now().timestamp()))
                continue
            await self.redeem(row)
        if late:
            await self.store.write(lambda db: sql.reschedule(db, late))
            log.info("%d overdue tokens spread over the next %.0f s", len(late), self.window)
        return min(waits) if waits else None

    async def redeem(self, row: dict[str, Any]) -> str:
        """Redeem one token to its creator; its new state."""
        body = tokenwire.build_redemption(policy.redemption(row))
        attempts = int(row["attempts"]) + 1
        try:
            status, data = await anonymous_post(self.link.base_url + "/v1/tokens/redeem", body)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            status, data = None, f"the hub is unreachable ({type(exc).__name__})"
        changes: dict[str, Any]
        meaning = policy.redemption_answer(status, data, attempts)
        self.redeemed += 1
        if isinstance(meaning, policy.Redeemed):
            changes = {
                "state": policy.TokenState.REDEEMED.value,
                "redeemed_at": timestamp(self.now()),
                "error": None,
            }
        elif isinstance(meaning, policy.RedeemFailed):
            log.error("a token of %s was refused by the hub: %s", row["month"], meaning.code)
            changes = {"state": policy.TokenState.FAILED.value, "error": meaning.code}
        else:
            at = self.now().timestamp() + meaning.seconds
            changes = {"redeem_at": timestamp_at(at), "error": "hub_unreachable"}
        changes["attempts"] = attempts
        await self.store.write(lambda db: sql.update(db, row["id"], changes))
        return str(changes.get("state", policy.TokenState.READY.value))

    async def issue_due(self) -> None:
        """Have every settled month's tokens signed (signed calls)."""
        for month in await self.months_to_issue():
            await self.issue(month)


async def anonymous_post(url: str, body: Any) -> tuple[int, Any]:
    """POST with nothing that says who asks: a connection of its own, closed
    after the answer, no cookie, no account header, no signature."""
    connector = aiohttp.TCPConnector(force_close=True, limit=1)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), timeout=TIMEOUT
    ) as session:
        async with session.post(
            url,
            data=json.dumps(body, separators=(",", ":")),
            headers={"Content-Type": "application/json"},
        ) as resp:
            return resp.status, await resp.json(content_type=None)
