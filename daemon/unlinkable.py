"""Unlinkable contributions, the daemon's side (DESIGN.md, "Unlinkable
contributions"; the hub's side is hub/tokens.py, the format mecene/tokens.py).

A month closed with the `unlinkable` setting is settled as its spend alone.
Its split stays here: each creator's share is cut into tokens (`plan`, in
the transaction that closes the month). Once the hub has the settlement:

1. the month's keys are fetched and checked (`GET /v1/token-keys/{month}`);
2. every planned token is blinded, and everything needed to finish it is
   written down before the hub is asked (`blinded`);
3. the hub signs them blindly (`POST /v1/tokens`, signed as the account).
   The same request again gets the same answer, so a crash between the
   hub's answer and our write only means asking again;
4. each signature is unblinded and checked, and the token gets a time to be
   redeemed, at random within the window (`ready`);
5. when its time comes, each token is redeemed to its creator
   (`POST /v1/tokens/redeem`) with no account, no signature, no cookie, over
   a connection of its own, closed after it (`redeemed`). A token's creator
   is fixed when it is planned, so a retry after a crash sends it to the
   same creator, which the hub answers again; never to another.

A direct transfer's tokens carry its id (`transfer_id`) and the hub's month
of the moment it was made, so a gift in a month's last minute shares its
month with that month's own tokens: every query of a month's own tokens
says `transfer_id IS NULL`, and a gift's are issued by its own request.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp
from sqlite_utils import Database

from mecene import blindrsa, tokens, tokenwire
from mecene.time import Clock, seconds_at, timestamp, timestamp_at

from . import budget
from . import sendpolicy as policy
from .store import Store

log = logging.getLogger("mecene.tokens")

# Tokens are redeemed at random times within this window after they are
# issued: hours by default, so that their arrivals at the hub do not line up
# with one person's month close (tests shorten it).
REDEEM_WINDOW_SECONDS = float(os.environ.get("MECENE_REDEEM_WINDOW_SECONDS", str(12 * 3600)))
TIMEOUT = aiohttp.ClientTimeout(total=20)


def plan(db: Database, month: str, shares: Sequence[budget.Allocation]) -> int:
    """Plan the tokens of `month`'s shares (one per denomination of each
    creator's share), replacing a plan not yet sent; the number planned."""
    db.execute(
        "DELETE FROM unlinkable_tokens "
        "WHERE month = ? AND state = 'planned' AND transfer_id IS NULL",
        [month],
    )
    rows = [
        {
            "id": str(uuid.uuid4()),
            "month": month,
            "creator": share.creator,
            "cents": cents,
            "state": "planned",
            "attempts": 0,
        }
        for share in shares
        for cents in tokens.split(share.cents)
    ]
    if rows:
        db.table("unlinkable_tokens").insert_all(rows)
    return len(rows)


def summary(db: Database, month: str) -> dict[str, Any] | None:
    """A month's own tokens by state (count and cents), or None if it has none."""
    rows = db.execute(
        "SELECT state, count(*), sum(cents) FROM unlinkable_tokens "
        "WHERE month = ? AND transfer_id IS NULL GROUP BY state",
        [month],
    ).fetchall()
    if not rows:
        return None
    return {state: {"tokens": n, "cents": c} for state, n, c in rows}


def shares(db: Database, month: str) -> list[dict[str, Any]]:
    """A month's split by creator, as its tokens keep it (the hub was sent
    none)."""
    rows = db.execute(
        "SELECT creator, sum(cents) FROM unlinkable_tokens "
        "WHERE month = ? AND transfer_id IS NULL GROUP BY creator ORDER BY creator",
        [month],
    )
    return [{"creator": creator, "cents": cents} for creator, cents in rows]


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

    def now(self) -> dt.datetime:
        return self.clock.now()

    async def keys(self, month: str) -> tokenwire.KeyDirectory:
        if month not in self._keys:
            data = await self.link.ok("GET", f"/v1/token-keys/{month}", signed=False)
            self._keys[month] = check_keys(month, data)
        return self._keys[month]

    async def months_to_issue(self) -> list[str]:
        """Settled months whose tokens are not all issued yet."""

        def find(db: Database) -> list[str]:
            rows = db.execute(
                "SELECT DISTINCT t.month FROM unlinkable_tokens t "
                "JOIN months m ON m.month = t.month "
                "WHERE t.state IN ('planned', 'blinded') AND m.state = 'settled' "
                "AND t.transfer_id IS NULL "
                "ORDER BY t.month"
            ).fetchall()
            return [r[0] for r in rows]

        return await self.store.read(find)

    async def issue(self, month: str) -> int:
        """Have the month's tokens signed; the number made ready."""
        keys = await self.keys(month)
        by_cents = keys.by_cents()

        def blind_planned(db: Database) -> None:
            planned = db.execute(
                "SELECT id, cents FROM unlinkable_tokens "
                "WHERE month = ? AND state = 'planned' AND transfer_id IS NULL",
                [month],
            ).fetchall()
            for token_id, cents in planned:
                db.table("unlinkable_tokens").update(token_id, _blinded(by_cents[int(cents)]))

        # Written before the hub is asked: the same request can be sent again.
        await self.store.write(blind_planned)
        rows = await self.store.read(
            lambda db: list(
                db.query(
                    "SELECT * FROM unlinkable_tokens "
                    "WHERE month = ? AND state = 'blinded' AND transfer_id IS NULL ORDER BY id",
                    [month],
                )
            )
        )
        if not rows:
            return 0
        pending = [_pending(r) for r in rows]
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
            return list(
                db.query(
                    "SELECT * FROM unlinkable_tokens WHERE transfer_id = ? ORDER BY id",
                    [transfer_id],
                )
            )

        rows = await self.store.read(mine)
        if not rows:
            month = self.now().strftime("%Y-%m")  # the hub's month is UTC's
            by_cents = (await self.keys(month)).by_cents()

            def blind(db: Database) -> None:
                if mine(db):
                    return  # written meanwhile
                for cents in tokens.split(int(row["cents"])):
                    db.table("unlinkable_tokens").insert(
                        {
                            "id": str(uuid.uuid4()),
                            "month": month,
                            "creator": row["creator"],
                            "cents": cents,
                            "attempts": 0,
                            "transfer_id": transfer_id,
                            **_blinded(by_cents[cents]),
                        }
                    )

            await self.store.write(blind)
            rows = await self.store.read(mine)
        if rows[0]["state"] != "blinded":
            return 200, {"issued": "already"}  # only their redemptions remain
        month = rows[0]["month"]
        keys = await self.keys(month)
        pending = [_pending(r) for r in rows]
        body = tokenwire.build_issue(month, pending, (transfer_id, int(row["cents"])))
        status, out = await self.link.call("POST", "/v1/tokens", body)
        if status in (200, 201):
            await self._finish(rows, pending, keys, out)
        elif 400 <= status < 500 and status not in (408, 429):
            code = out.get("error", "refused") if isinstance(out, dict) else "refused"
            await self.store.write(
                lambda db: db.execute(
                    "UPDATE unlinkable_tokens SET state = 'failed', error = ? "
                    "WHERE transfer_id = ?",
                    [code, transfer_id],
                )
            )
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
            at = now + secrets.randbelow(max(1, int(self.window * 1000))) / 1000
            finished.append((row["id"], token.authenticator.hex(), timestamp_at(at)))

        def ready(db: Database) -> None:
            db.conn.executemany(
                "UPDATE unlinkable_tokens SET state = 'ready', authenticator = ?, redeem_at = ?, "
                "blinded = NULL, inv = NULL WHERE id = ? AND state = 'blinded'",
                [(auth, at, token_id) for token_id, auth, at in finished],
            )

        await self.store.write(ready)
        return len(finished)

    async def redeem_due(self) -> float | None:
        """Redeem every token whose time has come; seconds until the next."""
        now = timestamp(self.now())
        rows = await self.store.read(
            lambda db: list(
                db.query("SELECT * FROM unlinkable_tokens WHERE state = 'ready' ORDER BY redeem_at")
            )
        )
        waits = []
        for row in rows:
            if row["redeem_at"] > now:
                waits.append(max(0.0, seconds_at(row["redeem_at"]) - self.now().timestamp()))
                continue
            await self.redeem(row)
        return min(waits) if waits else None

    async def redeem(self, row: dict[str, Any]) -> str:
        """Redeem one token to its creator; its new state."""
        body = tokenwire.build_redemption(_redemption(row))
        attempts = int(row["attempts"]) + 1
        try:
            status, data = await anonymous_post(self.link.base_url + "/v1/tokens/redeem", body)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            status, data = None, f"the hub is unreachable ({type(exc).__name__})"
        changes: dict[str, Any]
        if status in (200, 201):
            changes = {"state": "redeemed", "redeemed_at": timestamp(self.now()), "error": None}
        elif status is not None and 400 <= status < 500 and status not in (408, 429):
            code = data.get("error", "refused") if isinstance(data, dict) else "refused"
            log.error("a token of %s was refused by the hub: %s", row["month"], code)
            changes = {"state": "failed", "error": code}
        else:
            retry = policy.retry_delay(attempts, policy.RETRY_BASE_SECONDS)
            at = self.now().timestamp() + retry
            changes = {"redeem_at": timestamp_at(at), "error": "hub_unreachable"}
        changes["attempts"] = attempts
        await self.store.write(lambda db: db.table("unlinkable_tokens").update(row["id"], changes))
        return str(changes.get("state", "ready"))

    async def step(self) -> float | None:
        """Issue what is due, redeem what is due; seconds until the next."""
        for month in await self.months_to_issue():
            await self.issue(month)
        return await self.redeem_due()


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


# -- the rows of `unlinkable_tokens` (hex columns) and the protocol's values -------------


def _blinded(key: tokenwire.DirectoryKey) -> dict[str, Any]:
    """A fresh token for the key, blinded: the columns that let it be
    finished from the same blinded message after a crash (`_pending`)."""
    pending = tokens.begin(key.public)
    return {
        "state": "blinded",
        "key_id": tokenwire.key_hex(key.id),
        "nonce": pending.nonce.hex(),
        "prefix": pending.prefix.hex(),
        "blinded": pending.blinded.blinded_msg.hex(),
        "inv": pending.blinded.inv.hex(),
    }


def _pending(row: dict[str, Any]) -> tokens.Pending:
    nonce, kid = bytes.fromhex(row["nonce"]), tokenwire.key_bytes(row["key_id"])
    prepared = bytes.fromhex(row["prefix"]) + tokens.token_input(nonce, kid)
    blinded = blindrsa.Blinded(
        blinded_msg=bytes.fromhex(row["blinded"]), inv=bytes.fromhex(row["inv"]), prepared=prepared
    )
    return tokens.Pending(nonce=nonce, key_id=kid, blinded=blinded)


def _redemption(row: dict[str, Any]) -> tokenwire.Redemption:
    token = tokens.Token(
        nonce=bytes.fromhex(row["nonce"]),
        key_id=tokenwire.key_bytes(row["key_id"]),
        authenticator=bytes.fromhex(row["authenticator"]),
    )
    return tokenwire.Redemption(token, bytes.fromhex(row["prefix"]), row["creator"])
