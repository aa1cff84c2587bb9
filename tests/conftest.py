from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from daemon.client import prepare
from daemon.files import DataDir
from daemon.pairing import hash_token, new_token
from daemon.security import AccessLogger
from daemon.server import Config, create_app
from daemon.store import Store
from daemon.wallet import TEST_KDF, Settings, Wallet
from mecene.time import FrozenClock

PASSPHRASE = "correct horse battery"
PORT = 8737
HOST = f"127.0.0.1:{PORT}"
EXTENSION_ORIGIN = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 10, 14, 12, 0, tzinfo=dt.UTC))


@pytest.fixture
def data_dir(tmp_path: Path) -> DataDir:
    d = DataDir(tmp_path / "data")
    d.create()
    return d


@pytest.fixture
def settings() -> Settings:
    return Settings(budget_cents=500, time_zone="Europe/Paris")


@pytest.fixture
def wallet(data_dir: DataDir, settings: Settings) -> Wallet:
    return Wallet.create(data_dir.wallet, PASSPHRASE, settings, kdf=TEST_KDF)


class Api:
    """A test client that speaks like the extension (Host, Origin, JSON, token)."""

    def __init__(self, client: TestClient[Any, Any], admin_token: str, clock: FrozenClock) -> None:
        self.client = client
        self.clock = clock
        self.admin_token = admin_token
        self.token: str | None = None

    def headers(self, token: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Host": HOST, "Origin": EXTENSION_ORIGIN}
        if token:
            h["Authorization"] = f"Bearer {token}"
        h.update(extra or {})
        return h

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "browser",
        expect: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        tok = {"browser": self.token, "admin": self.admin_token}.get(token or "", token)
        # Made as the one client makes it (daemon/client.py), over the test client.
        p = prepare(path, body, token=tok, origin=EXTENSION_ORIGIN, host=HOST)
        resp = await self.client.request(
            method, p.path, data=p.data, headers={**p.headers, **(headers or {})}
        )
        data = json.loads(await resp.read())
        if expect is not None:
            assert resp.status == expect, (resp.status, data)
        return data

    async def pair(self, client_name: str = "Chromium on test") -> str:
        started = await self.call(
            "POST", "/pairing", {"client": client_name}, token=None, expect=201
        )
        await self.call(
            "POST", "/pairings/approve", {"code": started["code"]}, token="admin", expect=200
        )
        got = await self.call("GET", f"/pairing/{started['pairing_id']}", token=None, expect=200)
        assert got["status"] == "approved"
        self.token = got["token"]
        return str(got["token"])

    async def click(
        self, url: str, creator: str = "flattr:alice", expect: int = 201, **extra: Any
    ) -> Any:
        body = {"id": str(uuid.uuid4()), "url": url, "creator": creator, **extra}
        # Real clicks come at different times; the split breaks ties by time first.
        self.clock.advance(seconds=1)
        return await self.call("POST", "/clicks", body, expect=expect)


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
def make_api(aiohttp_client: Any, data_dir: DataDir, clock: FrozenClock, wallet: Wallet) -> MakeApi:
    """Start the daemon's app on the test data directory; call again to "restart" it."""

    async def make(*, locked: bool = False, pair: bool = True) -> Api:
        admin = new_token()
        config = Config(port=PORT, wallet_path=data_dir.wallet, admin_token_hash=hash_token(admin))
        w = None if locked else Wallet.open(data_dir.wallet, PASSPHRASE)
        app = create_app(config, Store(data_dir.database), w, clock)
        # The daemon's own access logger, as in production (it redacts secrets).
        server = TestServer(app, host="127.0.0.1")
        await server.start_server(access_log_class=AccessLogger)
        client = await aiohttp_client(server)
        api = Api(client, admin, clock)
        if pair:
            await api.pair()
        return api

    return make


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()


# The reliability batteries run small in the suite and large with
# MECENE_LARGE=1 (docs/RELIABILITY.md: `MECENE_LARGE=1 scripts/test -k battery`).
LARGE = os.environ.get("MECENE_LARGE") == "1"


def battery_size(small: int, large: int) -> int:
    return large if LARGE else small
