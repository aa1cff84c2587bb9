"""How the token path reaches the hub as nobody in particular: key
directories and redemptions, never with anything of the account.

With a relay (`mecene run --relay URL`), each goes as an Oblivious HTTP
request (RFC 9458; mecene/ohttp.py) through it: the relay sees this
computer's address and not the request, the hub (the gateway) the request
and only the relay's address. The gateway's key configuration is fetched
through the relay too and must be signed by the hub's pinned key, so a
relay cannot hand this daemon a key of its own.

Without one, each goes straight to the hub on a connection of its own,
closed after the answer, with no cookie, no account header and no
signature: the hub cannot tie it to the account by anything it carries,
but it sees this computer's address. The daemon says so once, in its log,
at its first redemption.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from mecene import ohttp, tokenwire

if TYPE_CHECKING:
    from .link import HubCalls

log = logging.getLogger("mecene.tokens")
TIMEOUT = aiohttp.ClientTimeout(total=20)
WITHOUT_A_RELAY = (
    "no Oblivious HTTP relay is set (mecene run --relay URL): the hub sees this "
    "computer's network address with each token redemption, though nothing of the account"
)


class RelayRefused(ValueError):
    """The relay or the gateway refused an encapsulated request outright."""


class AnonymousPath:
    def __init__(self, link: HubCalls, relay_url: str | None) -> None:
        self.link = link
        self.relay_url = relay_url.rstrip("/") if relay_url else None
        self._config: ohttp.KeyConfig | None = None
        self._told = False

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The hub's answer (status, JSON) to `method path` sent as nobody in
        particular. aiohttp.ClientError, OSError, TimeoutError or ValueError
        when it could not be had."""
        if self.relay_url is None:
            if not self._told and path == "/v1/tokens/redeem":  # said at the first redemption
                self._told = True
                log.warning("%s", WITHOUT_A_RELAY)
            return await fresh_request(method, self.link.base_url + path, body)
        config = await self.gateway_config()
        content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = (("content-type", "application/json"),) if body is not None else ()
        authority = urlsplit(self.link.base_url).netloc
        inner = ohttp.Request(method, "https", authority, path, headers, content)
        sealed, context = ohttp.encapsulate_request(config, inner.encode())
        status, raw = await fresh_exchange(
            "POST", self.relay_url + "/v1/ohttp", sealed, ohttp.REQUEST_TYPE
        )
        if status != 200:
            raise RelayRefused(f"the relay answered {status}")
        answer = ohttp.Response.decode(ohttp.decapsulate_response(context, raw))
        return answer.status, json.loads(answer.content)

    async def gateway_config(self) -> ohttp.KeyConfig:
        if self._config is None:
            assert self.relay_url is not None
            status, raw = await fresh_exchange("GET", self.relay_url + "/v1/ohttp-keys")
            if status != 200:
                raise RelayRefused(f"the relay answered {status} for the gateway's keys")
            try:
                data = json.loads(raw)
                keys = tokenwire.parse_gateway_keys(data, await self.link.hub_key())
            except tokenwire.WireError as exc:
                raise RelayRefused(str(exc)) from None
            self._config = ohttp.KeyConfig.decode(keys)
        return self._config


async def fresh_request(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """A JSON request on a connection of its own, with nothing that says who asks."""
    data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
    status, raw = await fresh_exchange(method, url, data, "application/json")
    return status, json.loads(raw) if raw else None


async def fresh_exchange(
    method: str, url: str, data: bytes | None = None, content_type: str | None = None
) -> tuple[int, bytes]:
    """One request on a connection of its own, closed after the answer: no
    cookie, no account header, no signature."""
    connector = aiohttp.TCPConnector(force_close=True, limit=1)
    headers = {"Content-Type": content_type} if data is not None and content_type else {}
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), timeout=TIMEOUT
    ) as session:
        async with session.request(method, url, data=data, headers=headers) as resp:
            return resp.status, await resp.read()
