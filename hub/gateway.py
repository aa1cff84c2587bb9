"""The hub as an Oblivious HTTP gateway (RFC 9458; mecene/ohttp.py): a daemon
sends its token redemptions and key-directory fetches, encapsulated, through
a relay that sees its address and not the request; the hub sees the request
and only the relay's address.

Only what needs no account goes this way: `GET /v1/token-keys/{month}` and
`POST /v1/tokens/redeem`. Anything else inside an encapsulated request is
answered, inside its encapsulated response, with 404: a signed request
through the relay would carry the account anyway.

The gateway's X25519 key is derived from the hub's Ed25519 key (HKDF with a
label of its own, then RFC 9180's DeriveKeyPair): every hub process has the
same one with nothing more to store, and it changes only if the hub's key
does. Its configuration is published signed by the hub's key
(`GET /v1/ohttp-keys`), so a relay cannot hand a daemon a key of its own,
and is the same for everyone (one key).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mecene import ohttp, tokenwire
from mecene.errors import envelope

from . import requests, tokens
from .errors import HubError

INNER_TYPE = "application/json"


def gateway_of(key: Ed25519PrivateKey) -> ohttp.Gateway:
    seed = HKDF(hashes.SHA256(), 32, None, b"mecene ohttp gateway v1").derive(
        key.private_bytes_raw()
    )
    return ohttp.Gateway.derived(seed, key_id=1)


def published_keys(
    gateway: ohttp.Gateway, hub: str, sign: Callable[[bytes], bytes]
) -> dict[str, Any]:
    return tokenwire.build_gateway_keys(gateway.config.encode(), hub, sign)


async def answer(gateway: ohttp.Gateway, hub: Any, message: bytes) -> bytes:
    """The encapsulated response to an encapsulated request (OhttpError if it
    does not open: the route answers a plain 400 then)."""
    inner, sealer = gateway.decapsulate(message)
    request = ohttp.Request.decode(inner)
    status, body = await _dispatch(hub, request)
    response = ohttp.Response(
        status,
        (("content-type", INNER_TYPE), ("cache-control", "no-store")),
        json.dumps(body, separators=(",", ":")).encode(),
    )
    return sealer.seal(response.encode())


async def _dispatch(hub: Any, request: ohttp.Request) -> tuple[int, Any]:
    path = request.path
    try:
        if request.method == "GET" and path.startswith("/v1/token-keys/"):
            month = requests.month(path.removeprefix("/v1/token-keys/"))
            return 200, await hub.tokens.published(month)
        if request.method == "POST" and path == "/v1/tokens/redeem":
            req = tokens.redeem_request(requests.json_object(request.content))
            created, out = await hub.tokens.redeem(req)
            return (201 if created else 200), out
    except HubError as exc:
        return exc.status, exc.body()
    return 404, envelope(
        "not_found", "only token redemptions and key directories go through the gateway"
    )
