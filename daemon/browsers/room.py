"""Browsers and pairing, the driver; and who is calling (a paired browser on
the browsers' channel, or the person through the dashboard or the CLI)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from mecene.time import timestamp

from ..dashboard import Sessions
from ..errors import Invalid, NotFound, PairedAlready, Revoked
from ..session import Session
from . import sql
from .pairing import Pairing, Pairings, browser_key, hash_token

# How often a browser's "last used" reaches the database (it is kept in
# memory at every message).
TOUCH_EVERY = dt.timedelta(minutes=1)
REVOKED = (
    "revoked",
    "This browser was disconnected from Mécène (in the dashboard or with `mecene pair "
    "revoke`): pair it again to flattr from it.",
)
NOT_PAIRED = ("unauthorized", "This browser is not paired with Mécène yet: pair it first.")

log = logging.getLogger("mecene")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a paired browser, or the person (dashboard and CLI)."""

    kind: str  # "browser" | "admin"
    token_id: str | None = None
    name: str | None = None


class Browsers:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.pairings = Pairings()
        self.sessions = Sessions()
        self.admin_token_hash: str | None = None
        self._keys: dict[str, Principal] = {}  # paired browsers, by their key's hash
        self._revoked: set[str] = set()
        self._authenticated: dict[str, Principal] = {}  # valid keys seen, by key
        self._touched: dict[str, dt.datetime] = {}  # last message, by browser id
        self._stored_touch: dict[str, dt.datetime] = {}
        self._touching: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        """The paired browsers, into memory."""
        rows = await self.session.store.read(sql.live)
        self._keys = {r[2]: Principal("browser", r[0], r[1]) for r in rows}
        self._revoked = {r[0] for r in await self.session.store.read(sql.revoked)}

    def dashboard_session(self, token: str, secret: str) -> Principal | None:
        """The person, when the cookie's `token` and the header's `secret` are
        one live dashboard session (the cookie alone is not: see dashboard.py)."""
        if self.sessions.valid(token, secret, self.session.now()):
            return Principal("admin", None, "dashboard")
        return None

    def authenticate(self, token: str) -> Principal | None:
        """The person, when `token` is the admin token (over HTTP, the only
        bearer token: a browser's key never travels over TCP)."""
        if self.admin_token_hash is not None and secrets.compare_digest(
            hash_token(token), self.admin_token_hash
        ):
            return Principal("admin", None, "admin")
        return None

    def on_channel(self, key: object) -> tuple[tuple[str, str] | None, Principal | None]:
        """The paired browser that holds `key`, or why it is refused: not
        paired, or revoked (its popup says it was disconnected). Valid keys
        are remembered so that each click does not hash the key again."""
        principal = self._authenticated.get(key) if isinstance(key, str) else None
        if principal is None:
            valid = browser_key(key)
            if valid is None:
                return NOT_PAIRED, None
            digest = hash_token(valid)
            principal = self._keys.get(digest)
            if principal is None:
                return (REVOKED if digest in self._revoked else NOT_PAIRED), None
            self._authenticated[valid] = principal
        self._touch(principal)
        return None, principal

    def _touch(self, principal: Principal) -> None:
        """Remember when the browser was last used; write it down once a minute."""
        assert principal.token_id is not None
        now = self.session.now()
        self._touched[principal.token_id] = now
        stored = self._stored_touch.get(principal.token_id)
        if stored is not None and now - stored < TOUCH_EVERY:
            return
        self._stored_touch[principal.token_id] = now
        token_id, at = principal.token_id, timestamp(now)
        task = asyncio.ensure_future(
            self.session.store.write(lambda db: sql.touch(db, token_id, at))
        )
        self._touching.add(task)
        task.add_done_callback(self._touching.discard)

    def request_pairing(self, client: str, key: object, conn: int) -> Pairing:
        valid = browser_key(key)
        if valid is None:
            raise Invalid("a browser pairs with its key: 256 random bits, URL-safe base64")
        digest = hash_token(valid)
        if digest in self._keys:
            raise PairedAlready("this browser is paired already")
        if digest in self._revoked:
            raise Revoked(REVOKED[1])
        pairing = self.pairings.request(client, digest, conn, self.session.now())
        log.info(
            "pairing request from %r: code %s (approve it with `mecene pair approve %s`)",
            client,
            pairing.code,
            pairing.code,
        )
        return pairing

    def poll_pairing(self, pairing_id: str, key: object) -> dict[str, Any]:
        valid = browser_key(key)
        if valid is None:
            raise NotFound("no such pairing")
        return self.pairings.poll(pairing_id, hash_token(valid), self.session.now())

    def pending_pairings(self) -> list[dict[str, Any]]:
        now = self.session.now()
        return [
            {
                "code": p.code,
                "client": p.client,
                "created_at": timestamp(p.created),
                "expires_in": p.expires_in(now),
            }
            for p in self.pairings.pending(now)
        ]

    async def approve_pairing(self, code: object) -> dict[str, str]:
        pairing = self.pairings.find_pending(code, self.session.now())
        token_id = str(uuid.uuid4())
        digest = pairing.key_hash
        at = timestamp(self.session.now())
        await self.session.store.write(
            lambda db: sql.insert(db, token_id, pairing.client, digest, at)
        )
        self._keys[digest] = Principal("browser", token_id, pairing.client)
        self.pairings.approve(pairing)
        log.info("pairing approved for %r", pairing.client)
        return {"id": token_id, "name": pairing.client, "fingerprint": digest[:8]}

    def deny_pairing(self, code: object) -> None:
        self.pairings.deny(self.pairings.find_pending(code, self.session.now()))

    async def listed(self) -> list[dict[str, Any]]:
        """Every browser paired: its name, when it was paired and last used, a
        fingerprint of its key (a reinstalled extension is a new key), and
        when it was revoked."""
        out = []
        for row in await self.session.store.read(sql.every):
            item = {k: row[k] for k in ("id", "name", "created_at", "revoked_at")}
            touched = self._touched.get(row["id"])
            item["last_used_at"] = timestamp(touched) if touched else row["last_used_at"]
            item["fingerprint"] = row["token_hash"][:8]
            out.append(item)
        return out

    async def revoke(self, token_id: str) -> dict[str, Any]:
        at = timestamp(self.session.now())

        def revoke(db: Database) -> Any:
            if sql.get(db, token_id) is None:
                raise NotFound("no such paired browser")
            sql.revoke(db, token_id, at)
            return sql.get(db, token_id)

        row = await self.session.store.write(revoke)
        self._keys.pop(row["token_hash"], None)
        self._revoked.add(row["token_hash"])
        self._authenticated.clear()
        log.info("browser %r revoked", row["name"])
        return {k: row[k] for k in ("id", "name", "created_at", "revoked_at")}
