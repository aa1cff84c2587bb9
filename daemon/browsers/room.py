"""Browsers and pairing, the driver; and who is calling (a paired browser,
or the person through the dashboard or the CLI)."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from mecene.time import timestamp

from ..dashboard import Sessions
from ..errors import NotFound
from ..session import Session
from . import sql
from .pairing import Pairing, Pairings, hash_token, new_token

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
        self._tokens: dict[str, Principal] = {}
        self._authenticated: dict[str, Principal] = {}  # valid tokens seen, by token

    async def load(self) -> None:
        """The paired browsers, into memory."""
        rows = await self.session.store.read(sql.live)
        self._tokens = {r[2]: Principal("browser", r[0], r[1]) for r in rows}

    def dashboard_session(self, token: str, secret: str) -> Principal | None:
        """The person, when the cookie's `token` and the header's `secret` are
        one live dashboard session (the cookie alone is not: see dashboard.py)."""
        if self.sessions.valid(token, secret, self.session.now()):
            return Principal("admin", None, "dashboard")
        return None

    def authenticate(self, token: str) -> Principal | None:
        """Who holds `token`, or None. Valid tokens are remembered so that a
        browser's clicks do not hash the same token again; revoking forgets."""
        known = self._authenticated.get(token)
        if known is not None:
            return known
        digest = hash_token(token)
        principal: Principal | None
        if self.admin_token_hash is not None and secrets.compare_digest(
            digest, self.admin_token_hash
        ):
            principal = Principal("admin", None, "admin")
        else:
            principal = self._tokens.get(digest)
        if principal is not None:
            self._authenticated[token] = principal
        return principal

    def request_pairing(self, client: str) -> Pairing:
        pairing = self.pairings.request(client, self.session.now())
        log.info(
            "pairing request from %r: code %s (approve it with `mecene pair approve %s`)",
            client,
            pairing.code,
            pairing.code,
        )
        return pairing

    def poll_pairing(self, pairing_id: str) -> dict[str, Any]:
        return self.pairings.poll(pairing_id, self.session.now())

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
        token = new_token()
        token_id = str(uuid.uuid4())
        digest = hash_token(token)
        at = timestamp(self.session.now())
        await self.session.store.write(
            lambda db: sql.insert(db, token_id, pairing.client, digest, at)
        )
        self._tokens[digest] = Principal("browser", token_id, pairing.client)
        self.pairings.approve(pairing, token)
        log.info("pairing approved for %r", pairing.client)
        return {"id": token_id, "name": pairing.client}

    def deny_pairing(self, code: object) -> None:
        self.pairings.deny(self.pairings.find_pending(code, self.session.now()))

    async def listed(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.session.store.read(sql.every)]

    async def revoke(self, token_id: str) -> dict[str, Any]:
        at = timestamp(self.session.now())

        def revoke(db: Database) -> Any:
            if sql.get(db, token_id) is None:
                raise NotFound("no such paired browser")
            sql.revoke(db, token_id, at)
            return sql.get(db, token_id)

        row = await self.session.store.write(revoke)
        self._tokens.pop(row["token_hash"], None)
        self._authenticated.clear()
        log.info("browser %r revoked", row["name"])
        return {k: row[k] for k in ("id", "name", "created_at", "revoked_at")}
