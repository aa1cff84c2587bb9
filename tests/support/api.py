"""The in-process client of the daemon's app, speaking like the extension."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from daemon.client import prepare
from mecene.time import FrozenClock

from .constants import EXTENSION_ORIGIN, HOST


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


MakeApi = Callable[..., Awaitable[Api]]
