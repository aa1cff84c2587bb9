from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from daemon.files import DataDir
from daemon.security import AccessLogger
from daemon.wallet import TEST_KDF, Settings, Wallet
from mecene.time import FrozenClock

from .support.constants import PASSPHRASE
from .support.daemons import Api, MakeApi, daemon_app
from .support.hubs import fresh_pg_database

# The daemons the tests start buy gift tokens (daemon/unlinkable/pool.py)
# within a second or two of a gift, not within the hour; in-process
# daemons buy them in their next pass (tests/support/daemons.py).
os.environ.setdefault("MECENE_TOP_UP_SECONDS", "1")


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


@pytest.fixture
def make_api(aiohttp_client: Any, data_dir: DataDir, clock: FrozenClock, wallet: Wallet) -> MakeApi:
    """Start the daemon's app on the test data directory; call again to "restart" it."""

    async def make(*, locked: bool = False, pair: bool = True) -> Api:
        app, admin = daemon_app(data_dir, clock, locked=locked)
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


# The hub's engine: every hub test, and the daemon's tests against a hub, run on both.
@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        async for url in fresh_pg_database():
            yield url
