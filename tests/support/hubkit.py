"""Hub test support: databases for both engines, a hub app, signed clients.

`MECENE_TEST_PG` names the PostgreSQL server (default: the local one, trust
auth); each test gets a fresh database on it, dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hub.http import HUB
from hub.schema import metadata
from mecene import signing
from mecene.encoding import b64u, canonical
from mecene.time import FrozenClock

PG_SERVER = os.environ.get("MECENE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


async def fresh_pg_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test; its URL."""
    name = f"mecene_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{PG_SERVER}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# When the people of the hub's tests opened their accounts: before the months they settle.
JOINED = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


@dataclass
class Person:
    """A wallet's key, as a daemon holds it."""

    key: Ed25519PrivateKey

    @classmethod
    def new(cls) -> Person:
        return cls(Ed25519PrivateKey.generate())

    @property
    def account(self) -> str:
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return b64u(raw)

    def sign(self, message: bytes) -> str:
        return b64u(self.key.sign(message))

    def settlement(
        self,
        month: str,
        allocations: list[dict[str, Any]],
        *,
        private: bool = False,
        unlinkable_spend: int | None = None,
    ) -> dict[str, str]:
        """A signed settlement; `unlinkable_spend`: an unlinkable month's,
        which carries its spend and no allocation."""
        doc: dict[str, Any] = {
            "v": 1,
            "account": self.account,
            "month": month,
            "currency": "EUR",
            "spend_cents": sum(a["cents"] for a in allocations),
            "private": private,
            "allocations": allocations,
        }
        if unlinkable_spend is not None:
            doc.update(spend_cents=unlinkable_spend, private=True, unlinkable=True)
        text = canonical(doc)
        return {"document": text.decode(), "signature": self.sign(text)}


async def rows_tying(engine: Any, account: str, keys: Iterable[str]) -> list[tuple[str, Any]]:
    """Every row, in every table of the hub, that holds `account` together
    with one of `keys` (unlinkable contributions promise there is none)."""
    keys = list(keys)
    found = []
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in await conn.execute(sa.select(table)):
                text = " ".join(str(v) for v in row)
                if account in text and any(k in text for k in keys):
                    found.append((table.name, tuple(row)))
    return found


def verify_rate(seconds: float = 2.0) -> float:
    """Ed25519 verifications per second, one core, the hub's own code path:
    the baseline the hub's benchmarks compare with."""
    person = Person.new()
    message = b"x" * 600
    signature = person.sign(message)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            signing.verify(person.account, message, signature)
        count += 200
    return count / (time.perf_counter() - start)


class HubClient:
    """Calls the hub as `person`, every request signed."""

    def __init__(
        self, client: Any, person: Person, clock: FrozenClock, joined: dt.datetime | None = None
    ) -> None:
        """`joined`: when the account first spoke to the hub (its first signed
        request is then made at that time), so that it may settle the months
        since; None: at its first call."""
        self.client = client
        self.person = person
        self.clock = clock
        self.joined = joined

    def signed(self, method: str, path: str, body: Any) -> tuple[bytes, dict[str, str]]:
        return signing.signed_request(
            self.person.account, self.person.sign, method, path, body, self.clock.now().timestamp()
        )

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        """The headers alone, for a test that tampers with the request after."""
        return self.signed(method, path, body)[1]

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        expect: int | None = None,
        *,
        headers: dict[str, str] | None = None,
        sign: bool = True,
    ) -> Any:
        if sign and self.joined is not None:
            joined, self.joined = self.joined, None
            now = self.clock.now()
            self.clock.set(joined)
            try:
                await self.call("GET", "/v1/account", expect=200)
            finally:
                self.clock.set(now)
        if sign:
            raw, hdrs = self.signed(method, path, body)
        else:
            raw = signing.encode_body(body)
            hdrs = {"Content-Type": "application/json"} if raw else {}
        hdrs.update(headers or {})
        resp = await self.client.request(method, path, data=raw or None, headers=hdrs)
        text = await resp.text()
        data = json.loads(text) if resp.content_type == "application/json" else text
        if expect is not None:
            assert resp.status == expect, (resp.status, data)
        return data

    async def deposit(self, cents: int, method: str = "bank") -> Any:
        quote = await self.call(
            "POST", "/v1/deposits/quote", {"method": method, "amount_cents": cents}, 200
        )
        return await self.call(
            "POST",
            "/v1/deposits",
            {
                "id": str(uuid.uuid4()),
                "method": method,
                "amount_cents": cents,
                "fee_cents": quote["fee_cents"],
            },
            201,
        )

    async def settle(
        self,
        month: str,
        allocations: list[dict[str, Any]],
        expect: int = 201,
        *,
        pay_out: bool = True,
        **kw: Any,
    ) -> Any:
        """Send a settlement; then, as a running hub's payout task does soon
        after, route its money (`pay_out=False` leaves it pending)."""
        out = await self.call(
            "POST", "/v1/settlements", self.person.settlement(month, allocations, **kw), expect
        )
        if pay_out:
            await self.client.server.app[HUB].run_payouts()
        return out


class ProofSite:
    """A web server standing for creators' sites: `pages[(host, path)] = text`."""

    def __init__(self) -> None:
        self.pages: dict[tuple[str, str], tuple[str, str]] = {}
        self.runner: web.AppRunner | None = None
        self.url = ""

    def put(self, host: str, path: str, text: str, content_type: str = "text/plain") -> None:
        self.pages[(host, path)] = (text, content_type)

    async def _serve(self, request: web.Request) -> web.Response:
        host = request.host.rsplit(":", 1)[0] if ":" in request.host else request.host
        found = self.pages.get((host, request.path_qs)) or self.pages.get((host, request.path))
        if found is None:
            raise web.HTTPNotFound()
        text, content_type = found
        return web.Response(text=text, content_type=content_type)

    async def start(self) -> ProofSite:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
