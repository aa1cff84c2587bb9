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
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlite_utils import Database

from mecene import blindrsa, tokens
from mecene.encoding import b64u, unb64u
from mecene.time import seconds_at, timestamp, timestamp_at

from . import budget
from . import sendpolicy as policy

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
    """The hub's published keys for a month are malformed or do not check."""


def check_keys(month: str, data: Any) -> dict[str, tuple[int, rsa.RSAPublicKey]]:
    """The month's keys by id (hex): each id the SHA-256 of its key, one key
    per denomination, all of them, in the month asked for."""
    if not isinstance(data, dict) or data.get("month") != month:
        raise KeysRefused("the hub's token keys are for another month")
    if data.get("token_type") != tokens.TOKEN_TYPE or data.get("variant") != tokens.VARIANT.name:
        raise KeysRefused("the hub's token keys are of another kind")
    out: dict[str, tuple[int, rsa.RSAPublicKey]] = {}
    rows = data.get("keys")
    if not isinstance(rows, list):
        raise KeysRefused("the hub's token keys are malformed")
    for row in rows:
        try:
            public = tokens.load_public(unb64u(row["public_key"]))
            kid, cents = str(row["id"]), int(row["denomination_cents"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KeysRefused(f"a token key is malformed: {exc}") from None
        if tokens.key_id(public).hex() != kid:
            raise KeysRefused("a token key's id is not its key's")
        out[kid] = (cents, public)
    if sorted(c for c, _k in out.values()) != sorted(tokens.DENOMINATIONS):
        raise KeysRefused("the hub does not publish one key per denomination")
    return out


class TokenLink:
    """Issue and redeem a wallet's tokens through `link` (daemon/hublink.py)."""

    def __init__(self, link: Any, window: float = REDEEM_WINDOW_SECONDS) -> None:
        self.link = link
        self.window = window
        self._keys: dict[str, dict[str, tuple[int, rsa.RSAPublicKey]]] = {}

    @property
    def store(self) -> Any:
        return self.link.service.store

    def now(self) -> dt.datetime:
        return self.link.service.clock.now()  # type: ignore[no-any-return]

    async def keys(self, month: str) -> dict[str, tuple[int, rsa.RSAPublicKey]]:
        if month not in self._keys:
            data = await self.link._ok("GET", f"/v1/token-keys/{month}", signed=False)
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

        return await self.store.read(find)  # type: ignore[no-any-return]

    async def issue(self, month: str) -> int:
        """Have the month's tokens signed; the number made ready."""
        keys = await self.keys(month)
        by_cents = {cents: (kid, public) for kid, (cents, public) in keys.items()}

        def blind_planned(db: Database) -> None:
            planned = db.execute(
                "SELECT id, cents FROM unlinkable_tokens "
                "WHERE month = ? AND state = 'planned' AND transfer_id IS NULL",
                [month],
            ).fetchall()
            for token_id, cents in planned:
                db.table("unlinkable_tokens").update(token_id, _blinded(*by_cents[int(cents)]))

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
        body = {
            "month": month,
            "tokens": [{"key": p.key_id.hex(), "request": b64u(p.request())} for p in pending],
        }
        out = await self.link._ok("POST", "/v1/tokens", body)
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
            keys = await self.keys(month)
            by_cents = {cents: (kid, public) for kid, (cents, public) in keys.items()}

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
                            **_blinded(*by_cents[cents]),
                        }
                    )

            await self.store.write(blind)
            rows = await self.store.read(mine)
        if rows[0]["state"] != "blinded":
            return 200, {"issued": "already"}  # only their redemptions remain
        month = rows[0]["month"]
        keys = await self.keys(month)
        pending = [_pending(r) for r in rows]
        body = {
            "month": month,
            "tokens": [{"key": p.key_id.hex(), "request": b64u(p.request())} for p in pending],
            "transfer": {"id": transfer_id, "cents": int(row["cents"])},
        }
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
        keys: dict[str, tuple[int, rsa.RSAPublicKey]],
        out: Any,
    ) -> int:
        """Unblind and check the hub's signatures; each token gets its time
        to be redeemed, at random within the window."""
        sigs = out.get("blind_signatures") if isinstance(out, dict) else None
        if not isinstance(sigs, list) or len(sigs) != len(pending):
            raise KeysRefused("the hub's answer does not hold one signature per token")
        now = self.now().timestamp()
        finished = []
        for row, p, sig in zip(rows, pending, sigs, strict=True):
            _cents, public = keys[row["key_id"]]
            token = p.finish(public, unb64u(sig))  # TokenError if the hub cheated
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
        token = tokens.Token(
            nonce=bytes.fromhex(row["nonce"]),
            key_id=bytes.fromhex(row["key_id"]),
            authenticator=bytes.fromhex(row["authenticator"]),
        )
        body = {
            "token": b64u(token.serialise()),
            "prefix": b64u(bytes.fromhex(row["prefix"])),
            "creator": row["creator"],
        }
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


def _blinded(kid: str, public: rsa.RSAPublicKey) -> dict[str, Any]:
    """A fresh token for the key, blinded: the columns that let it be
    finished from the same blinded message after a crash (`_pending`)."""
    pending = tokens.begin(public)
    return {
        "state": "blinded",
        "key_id": kid,
        "nonce": pending.nonce.hex(),
        "prefix": pending.prefix.hex(),
        "blinded": pending.blinded.blinded_msg.hex(),
        "inv": pending.blinded.inv.hex(),
    }


def _pending(row: dict[str, Any]) -> tokens.Pending:
    nonce, kid = bytes.fromhex(row["nonce"]), bytes.fromhex(row["key_id"])
    prepared = bytes.fromhex(row["prefix"]) + tokens.token_input(nonce, kid)
    blinded = blindrsa.Blinded(
        blinded_msg=bytes.fromhex(row["blinded"]), inv=bytes.fromhex(row["inv"]), prepared=prepared
    )
    return tokens.Pending(nonce=nonce, key_id=kid, blinded=blinded)
