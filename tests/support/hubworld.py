"""A daemon (its aiohttp app in-process) and a hub application, talking
over HTTP on one frozen clock: the `world` of the daemon's tests against a
hub (tests/daemon/test_hublink.py, tests/daemon/test_unlinkable.py)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.browsers.pairing import hash_token, new_token
from daemon.files import DataDir
from daemon.server import HUB_LINK, Config, create_app
from daemon.store import Store
from daemon.wallet import TEST_KDF, Settings, Wallet
from hub.db import migrate, open_database
from hub.http import create_app as create_hub_app
from hub.proofs import ProofFetcher
from hub.provider import SimulatedProvider
from hub.service import Hub
from mecene import money
from mecene.time import FrozenClock
from tests.support.constants import PASSPHRASE, PORT
from tests.support.hubkit import HubClient, ProofSite
from tests.support.hubkit import Person as HubPerson

KIRITIMATI = "Pacific/Kiritimati"  # UTC+14: the first to leave a month


class Person:
    """A daemon (its aiohttp app in-process, talking to the hub over HTTP)."""

    def __init__(self, client: TestClient[Any, Any], admin: str) -> None:
        self.client, self.admin = client, admin

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        headers = {"Host": f"127.0.0.1:{PORT}", "Authorization": f"Bearer {self.admin}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        resp = await self.client.request(method, "/api/v1" + path, data=data, headers=headers)
        out = await resp.json()
        assert resp.status == expect, (method, path, resp.status, out)
        return out

    @property
    def link(self) -> Any:
        return self.client.server.app[HUB_LINK]


@pytest.fixture
async def world(tmp_path: Path, db_url: str) -> AsyncIterator[dict[str, Any]]:
    clock = FrozenClock(dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC))
    site = await ProofSite().start()
    engine = open_database(db_url)
    await migrate(engine)
    fetcher = ProofFetcher(via=site.url)
    hub = Hub(engine, Ed25519PrivateKey.generate(), clock, SimulatedProvider(), fetcher)
    hub_server = TestServer(create_hub_app(hub), host="127.0.0.1")
    hub_client: TestClient[Any, Any] = TestClient(hub_server)  # a creator's, and the server
    await hub_client.start_server()
    data = DataDir(tmp_path / "daemon")
    data.create()
    Wallet.create(data.wallet, PASSPHRASE, Settings(time_zone=KIRITIMATI), kdf=TEST_KDF)
    admin = new_token()
    config = Config(
        port=PORT,
        wallet_path=data.wallet,
        admin_token_hash=hash_token(admin),
        hub_url=str(hub_server.make_url("")).rstrip("/"),
        hub_retry_seconds=0.05,
    )
    app = create_app(config, Store(data.database), Wallet.open(data.wallet, PASSPHRASE), clock)
    world_servers: list[TestServer] = []
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield {
            "clock": clock,
            "hub": hub,
            "hub_server": hub_server,
            "late_servers": world_servers,
            "site": site,
            "person": Person(client, admin),
            "creator": HubClient(hub_client, HubPerson.new(), clock),
        }
    finally:
        await client.close()
        await hub_client.close()
        for late in world_servers:
            await late.close()
        books = await hub.books()
        await fetcher.close()
        await engine.dispose()
        await site.stop()
        assert books["sum_cents"] == 0 and books["negative_balances"] == 0, books
        assert books["unrouted_not_pending_cents"] == 0, books


async def funded_with_clicks(person: Person, creators: list[str]) -> None:
    fee = money.deposit_fee_cents("bank", 2000)
    deposit = {"id": str(uuid.uuid4()), "method": "bank", "amount_cents": 2000, "fee_cents": fee}
    await person.call("POST", "/deposits", deposit, 201)
    for n, creator in enumerate(creators):
        url = f"https://{creator.split(':', 1)[1]}/post-{n}"
        await person.call(
            "POST", "/clicks", {"id": str(uuid.uuid4()), "url": url, "creator": creator}, 201
        )
