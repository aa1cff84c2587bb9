"""The daemon's app in-process, on an event loop of its own, so that
synchronous code (Hypothesis tests and state machines) can call it and
restart it on the same files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from daemon.browsers.pairing import hash_token, new_token
from daemon.client import prepare
from daemon.files import DataDir
from daemon.server import SERVICE, Config, create_app
from daemon.store import Store
from daemon.wallet import TEST_KDF, Settings, Wallet
from mecene.time import FrozenClock

from .constants import PASSPHRASE, PORT


class App:
    """The daemon's app on its own loop, restartable on the same files."""

    def __init__(self, root: Path, clock: FrozenClock) -> None:
        self.data = DataDir(root)
        self.data.create()
        Wallet.create(self.data.wallet, PASSPHRASE, Settings(time_zone="UTC"), kdf=TEST_KDF)
        self.clock = clock
        self.loop = asyncio.new_event_loop()
        self.client: TestClient[Any, Any] | None = None
        self.start()

    def start(self) -> None:
        self.admin = new_token()
        config = Config(
            port=PORT, wallet_path=self.data.wallet, admin_token_hash=hash_token(self.admin)
        )
        wallet = Wallet.open(self.data.wallet, PASSPHRASE)
        self.app = create_app(config, Store(self.data.database), wallet, self.clock)
        self.client = TestClient(TestServer(self.app, host="127.0.0.1"), loop=self.loop)
        self.loop.run_until_complete(self.client.start_server())

    def restart(self) -> None:
        assert self.client is not None
        self.loop.run_until_complete(self.client.close())
        self.start()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.client is not None
        client = self.client

        async def go() -> tuple[int, Any]:
            # Made as the one client makes it (daemon/client.py), over the test client.
            p = prepare(path, body, token=self.admin, host=f"127.0.0.1:{PORT}")
            resp = await client.request(method, p.path, data=p.data, headers=p.headers)
            return resp.status, json.loads(await resp.read())

        return self.loop.run_until_complete(go())

    def send(self, method: str, path: str, raw: bytes) -> int:
        """`raw` as the body, as JSON, with the admin token; the status."""
        assert self.client is not None
        client = self.client

        async def go() -> int:
            headers = {
                "Host": f"127.0.0.1:{PORT}",
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.admin}",
            }
            resp = await client.request(method, path, data=raw, headers=headers)
            await resp.read()
            return resp.status

        return self.loop.run_until_complete(go())

    def set_balance(self, cents: int) -> None:
        self.loop.run_until_complete(self.app[SERVICE].session.set_balance(cents))

    def close(self) -> None:
        if self.client is not None:
            self.loop.run_until_complete(self.client.close())
        self.loop.close()
