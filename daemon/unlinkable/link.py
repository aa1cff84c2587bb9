"""The token path's driver (daemon/unlinkable/__init__.py says the steps):
fetch the month's keys, have planned tokens signed, redeem each when its
time comes. The only part of the unlinkable room that talks to the network."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
from sqlite_utils import Database

from mecene import tokens, tokenwire
from mecene.diskspace import log_failure
from mecene.time import Clock, add_months, seconds_at, timestamp, timestamp_at
from mecene.waiting import wait_at_most

from ..errors import DomainError, HubRefused
from ..records import sql as records_sql
from ..store import Store, meta_get, meta_set
from . import policy, sql
from .anonymous import AnonymousPath
from .pool import GiftPool
from .spacing import Spacing

log = logging.getLogger("mecene.tokens")

# Tokens are redeemed at random times within this window after they are
# issued: hours by default, so that their arrivals at the hub do not line up
# with one person's month close (tests shorten it).
# Meta: months whose tokens the hub issued to another computer of the wallet.
ISSUED_ELSEWHERE = "tokens_issued_elsewhere"
REDEEM_WINDOW_SECONDS = float(os.environ.get("MECENE_REDEEM_WINDOW_SECONDS", str(12 * 3600)))


class KeysRefused(ValueError):
    """The hub's published keys for a month, or its answer, are malformed or do not check."""


class TwoDirectories(KeysRefused):
    """The hub showed two different key directories for one month: keys
    that could tell people's tokens apart. Nothing more is issued or
    redeemed for the month; the signed directories are the proof."""


def check_keys(month: str, data: Any, hub: str) -> tokenwire.KeyDirectory:
    """The month's keys, checked (mecene/tokenwire.py); KeysRefused if not."""
    try:
        return tokenwire.parse_directory(month, data, hub)
    except tokenwire.WireError as exc:
        raise KeysRefused(str(exc)) from None


class HubCalls(Protocol):
    """What the token path needs of the hub link (daemon/hublink.py's HubLink)."""

    base_url: str

    async def hub_key(self) -> str:
        """The hub's pinned Ed25519 key."""

    def account(self) -> str:
        """The wallet's account."""

    async def ok(self, method: str, path: str, body: Any = None, signed: bool = True) -> Any:
        """The answer's body, or HubRefused."""

    async def call(
        self, method: str, path: str, body: Any = None, *, signed: bool = True
    ) -> tuple[int, Any]:
        """The answer's status and body, or HubUnreachable."""


class TokenLink:
    """Issue and redeem a wallet's tokens through `link`, writing to `store`."""

    def __init__(
        self,
        link: HubCalls,
        store: Store,
        clock: Clock,
        window: float = REDEEM_WINDOW_SECONDS,
        spacing: Spacing | None = None,
        relay_url: str | None = None,
    ) -> None:
        self.link = link
        self.store = store
        self.clock = clock
        self.window = window
        self.spacing = spacing or Spacing()
        self.anonymous = AnonymousPath(link, relay_url)
        self.pool = GiftPool(self)
        self.wake = asyncio.Event()  # tokens were issued, or keys are wanted
        self._redeeming = asyncio.Lock()  # one round of redemptions at a time
        self._keys: dict[str, tokenwire.KeyDirectory] = {}
        # Called once blinded requests are written and before the hub is
        # asked to sign them: they are kept at the hub first (records).
        self.before_issue: Callable[[], Awaitable[None]] | None = None
        # Called when the hub says the month's tokens were issued to another
        # computer of the wallet: the records are fetched (records/link.py).
        self.issued_elsewhere: Callable[[], Awaitable[Any]] | None = None
        # What the person is told when the hub showed two key directories.
        self.refused: str | None = None

    def now(self) -> dt.datetime:
        return self.clock.now()

    async def keys(self, month: str) -> tokenwire.KeyDirectory:
        """The month's pinned key directory (`pin`); KeysRefused while it is
        not pinned yet (the redemption loop pins it, and the signed pass
        tries again). Never fetched on the account's own connection: what
        the hub shows the account is what its issuance receipts say, checked
        against the pin (`finish`)."""
        if month in self._keys:
            return self._keys[month]
        pinned = await self.store.read(lambda db: sql.directory(db, month))
        if pinned is None:
            self.wake.set()
            raise KeysRefused(f"{month}'s token keys are not pinned yet")
        directory = check_keys(month, json.loads(pinned["body"]), await self.link.hub_key())
        self._keys[month] = directory
        return directory

    async def pin(self, month: str) -> None:
        """Fetch the month's key directory as nobody in particular (the
        second path) and pin it for good: from then on the daemon uses no
        other key for the month. A hub that shows someone a key of their
        own must tell who asks, which through a relay it cannot."""
        if await self.store.read(lambda db: sql.directory(db, month)) is not None:
            return
        body = await self.second_path(f"/v1/token-keys/{month}")
        seen = check_keys(month, body, await self.link.hub_key())
        at = timestamp(self.now())
        text = json.dumps(body, sort_keys=True)
        kept = await self.store.write(lambda db: sql.pin(db, month, seen.sha256, text, at))
        if kept != seen.sha256:
            raise self._two(month, kept, seen.sha256)
        log.info("%s's token key directory pinned: %s", month, seen.sha256[:16])

    async def pin_due(self) -> None:
        """Pin the directories of the month just ended (its tokens are
        issued now), this month and next month (the hub publishes a month's
        from the month before), and of any month with tokens to issue."""
        month = self.now().strftime("%Y-%m")
        wanted = {add_months(month, m) for m in (-1, 0, 1)} | set(await self.months_to_issue())
        for m in sorted(wanted):
            try:
                await self.pin(m)
            except (KeysRefused, DomainError) as exc:
                log.info("%s's token keys not pinned yet: %s", m, exc)

    async def second_path(self, path: str) -> Any:
        """GET `path` from the hub as nobody in particular: a fresh
        connection with nothing of the account (through the relay, when one
        is set)."""
        try:
            status, data = await self.anonymous.request("GET", path)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise KeysRefused(f"the hub could not be reached a second way ({exc!r})") from None
        if status != 200:
            raise KeysRefused(f"the hub's second answer for {path} was {status}")
        return data

    def _two(self, month: str, one: str, other: str) -> TwoDirectories:
        self.refused = (
            f"the hub showed two different token keys for {month} ({one[:16]}…, "
            f"{other[:16]}…): keys that could tell your payments apart. Nothing is "
            "paid with tokens for that month; the hub's signed directories are the proof."
        )
        log.error("%s", self.refused)
        return TwoDirectories(self.refused)

    async def consistent(self, month: str) -> bool:
        """Before a month's first redemption: its pinned directory seen
        again through the second path (a hub that showed one person its own
        keys cannot show them to everyone). False while it cannot be checked,
        or if it differs (`refused` says so)."""
        pinned = await self.store.read(lambda db: sql.directory(db, month))
        if pinned is not None and pinned["checked_at"]:
            return True
        try:
            if pinned is None:
                # Tokens restored from the hub's records: pinned now, through
                # the second path, which is the check itself.
                await self.pin(month)
            else:
                hub = await self.link.hub_key()
                seen = check_keys(month, await self.second_path(f"/v1/token-keys/{month}"), hub)
                if seen.sha256 != pinned["sha256"]:
                    self._two(month, pinned["sha256"], seen.sha256)
                    return False
        except (KeysRefused, DomainError) as exc:
            log.info("%s's token keys not checked again yet: %s", month, exc)
            return False
        at = timestamp(self.now())
        await self.store.write(lambda db: sql.checked(db, month, at))
        return True

    async def of_pinned_key(self, row: dict[str, Any]) -> bool:
        """Whether a token was signed with a key of its month's pinned
        directory (by its id, or the id versions before RFC 9578 ids gave it). A
        token restored from the hub's records, or signed before pinning,
        under a key nobody else was shown would name its owner when
        redeemed: it is held, and the person told (`refused`)."""
        directory = await self.keys(row["month"])
        ids = {k.id for k in directory.keys} | {
            tokens.plain_key_id(k.public) for k in directory.keys
        }
        if tokenwire.key_bytes(row["key_id"]) in ids:
            return True
        self._two(row["month"], directory.sha256, f"a key of its own, {row['key_id']}")
        return False

    async def months_to_issue(self) -> list[str]:
        """Settled months whose tokens are not all issued yet."""

        return await self.store.read(sql.months_to_issue)

    async def issue(self, month: str) -> int:
        """Have the month's tokens signed; the number made ready."""
        keys = await self.keys(month)
        by_cents = keys.by_cents()
        elsewhere = month in await self.issued_elsewhere_months()

        def blind_planned(db: Database) -> None:
            for token_id, cents in sql.planned_of_month(db, month):
                sql.update(db, token_id, policy.blinded(by_cents[cents]))

        # Written before the hub is asked: the same request can be sent again.
        # A month issued to another computer is never blinded here: its
        # tokens come with the records, blinded or signed, as that computer
        # asked for them (another blinding would be another request).
        if not elsewhere:
            await self.store.write(blind_planned)
        rows = await self.store.read(lambda db: sql.blinded_of_month(db, month))
        if not rows:
            return 0
        if self.before_issue is not None:
            await self.before_issue()
        pending = [policy.pending(r) for r in rows]
        body = tokenwire.build_issue(month, pending)
        status, out = await self.link.call("POST", "/v1/tokens", body)
        if status == 409 and isinstance(out, dict) and out.get("error") == "tokens_issued":
            # Another computer of this wallet had the month's tokens signed
            # first (DESIGN.md, "Devices": issued once for the account). Ours
            # are never signed: dropped; its tokens come with the records,
            # and asking for them again as it did is answered again.
            ids = [r["id"] for r in rows]
            await self.store.write(lambda db: records_sql.drop_tokens(db, ids))
            months = await self.issued_elsewhere_months()
            await self.store.write(
                lambda db: meta_set(db, ISSUED_ELSEWHERE, json.dumps(sorted({*months, month})))
            )
            log.warning("%s: its tokens were issued to another computer of this wallet", month)
            if self.issued_elsewhere is not None:
                await self.issued_elsewhere()
            return 0
        if status >= 400:
            message = out.get("message") if isinstance(out, dict) else None
            code = out.get("error") if isinstance(out, dict) else None
            raise HubRefused(f"the hub refused: {message or code or status}", hub_error=code)
        count = await self.finish(rows, pending, keys, out, body, f"month:{month}")
        log.info("%s: %d tokens issued, redeemed over the next %.0f s", month, count, self.window)
        return count

    async def issued_elsewhere_months(self) -> set[str]:
        text = await self.store.read(lambda db: meta_get(db, ISSUED_ELSEWHERE))
        return set(json.loads(text)) if text else set()

    async def has_tokens(self, transfer_id: str) -> bool:
        return bool(await self.store.read(lambda db: sql.of_transfer(db, transfer_id)))

    async def send_transfer(self, row: dict[str, Any]) -> tuple[int | None, Any]:
        """Finish a gift whose tokens were blinded for it at the moment of
        giving (by a version before the gift pool, daemon/unlinkable/pool.py):
        its issuance request is sent again as it was until the hub answers
        (status and body; the hub debits the amount once)."""
        transfer_id = row["id"]
        rows = await self.store.read(lambda db: sql.of_transfer(db, transfer_id))
        if not rows or rows[0]["state"] != policy.TokenState.BLINDED:
            return 200, {"issued": "already"}  # only their redemptions remain
        month = rows[0]["month"]
        keys = await self.keys(month)
        if self.before_issue is not None:
            await self.before_issue()
        pending = [policy.pending(r) for r in rows]
        body = tokenwire.build_issue(month, pending, (transfer_id, int(row["cents"])))
        status, out = await self.link.call("POST", "/v1/tokens", body)
        if status in (200, 201):
            await self.finish(rows, pending, keys, out, body, f"transfer:{transfer_id}")
        elif policy.refused_for_good(status):
            code = out.get("error", "refused") if isinstance(out, dict) else "refused"
            await self.store.write(lambda db: sql.fail_transfer(db, transfer_id, str(code)))
        return status, out

    async def finish(
        self,
        rows: list[dict[str, Any]],
        pending: list[tokens.Pending],
        keys: tokenwire.KeyDirectory,
        out: Any,
        body: dict[str, Any],
        ref: str,
        *,
        pooled: bool = False,
    ) -> int:
        """Check the hub's signed receipt (this wallet's request, under the
        month's pinned directory), unblind and check its signatures; each
        token gets its time to be redeemed, at random within the window."""
        hub = await self.link.hub_key()
        try:
            answer = tokenwire.parse_issue_answer(out, len(pending))
            receipt = tokenwire.IssueReceipt.check(hub, answer.receipt, answer.signature)
        except tokenwire.WireError as exc:
            raise KeysRefused(str(exc)) from None
        expected = tokenwire.IssueReceipt(
            hub,
            self.link.account(),
            ref,
            keys.month,
            tokenwire.issue_sha256(body),
            len(pending),
            keys.sha256,
        )
        if receipt != expected:
            if receipt.token_keys != keys.sha256:
                raise self._two(keys.month, keys.sha256, receipt.token_keys)
            raise KeysRefused("the hub's issuance receipt is for another request")
        by_id = keys.by_id()
        now = self.now().timestamp()
        finished = []
        for row, p, sig in zip(rows, pending, answer.blind_signatures, strict=True):
            token = p.finish(by_id[p.key_id].public, sig)  # TokenError if the hub cheated
            at = policy.redeem_at(now, self.window, secrets.randbelow)
            finished.append((row["id"], token.authenticator.hex(), timestamp_at(at)))

        def ready(db: Database) -> None:  # by its name, a test crashes here
            if pooled:  # held for gifts: no creator, no moment yet
                sql.make_pooled(db, [(i, a) for i, a, _at in finished])
            else:
                sql.make_ready(db, finished)
            sql.keep_receipt(db, ref, keys.month, answer.receipt, answer.signature)

        await self.store.write(ready)
        return len(finished)

    async def redeem_due(self) -> float | None:
        async with self._redeeming:
            return await self._redeem_due()

    async def _redeem_due(self) -> float | None:
        """Redeem every token whose time has come; seconds until the next.
        Tokens long overdue (the daemon slept) get new moments in a fresh
        window instead (policy.overdue)."""
        now = timestamp(self.now())
        rows = await self.store.read(sql.ready)
        waits = []
        late: list[tuple[str, str]] = []
        held: set[str] = set()  # months whose directory could not be checked again
        for row in rows:
            if row["redeem_at"] > now:
                waits.append(max(0.0, seconds_at(row["redeem_at"]) - self.now().timestamp()))
                continue
            if policy.overdue(seconds_at(row["redeem_at"]), self.now().timestamp()):
                at = policy.redeem_at(self.now().timestamp(), self.window, secrets.randbelow)
                late.append((row["id"], timestamp_at(at)))
                waits.append(max(0.0, at - self.now().timestamp()))
                continue
            if row["month"] in held:
                continue
            async with self.spacing.turn:  # never during the hub link's pass
                gap = self.spacing.before_redemption()
                if gap > 0:  # a signed call a moment ago: later, at a moment of its own
                    waits.append(gap)
                    break
                if not await self.consistent(row["month"]):
                    held.add(row["month"])
                    waits.append(policy.CHECK_AGAIN_SECONDS)
                    continue
                if not await self.of_pinned_key(row):
                    held.add(row["month"])
                    continue
                await self.redeem(row)
                self.spacing.redeemed()
        if late:
            await self.store.write(lambda db: sql.reschedule(db, late))
            log.info("%d overdue tokens spread over the next %.0f s", len(late), self.window)
        return min(waits) if waits else None

    async def redeem(self, row: dict[str, Any]) -> str:
        """Redeem one token to its creator; its new state."""
        body = tokenwire.build_redemption(policy.redemption(row))
        attempts = int(row["attempts"]) + 1
        try:
            status, data = await self.anonymous.request("POST", "/v1/tokens/redeem", body)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            status, data = None, f"the hub is unreachable ({type(exc).__name__})"
        changes: dict[str, Any]
        meaning = policy.redemption_answer(status, data, attempts)
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

    async def run(self) -> None:
        """Forever, beside the hub link's pass and on a schedule of its own:
        pin the months' key directories and redeem each token at its moment
        (each kept apart from signed calls: daemon/unlinkable/spacing.py)."""
        while True:
            self.wake.clear()
            delay: float | None = None
            try:
                await self.pin_due()
                delay = await self.redeem_due()
            except Exception as exc:
                log_failure(log, "redeeming tokens failed", exc)
                delay = 60.0
            # At least hourly: next month's directory is pinned in advance.
            delay = 3600.0 if delay is None else min(max(delay, 0.05), 3600.0)
            await wait_at_most(self.wake, delay)
