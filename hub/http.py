"""The hub's HTTP API: thin handlers over the rooms of hub.service.Hub (PROTOCOL.md, "The hub").

Every route under /v1 that concerns an account needs a signed request
(mecene/signing.py); counters and buttons are public and cacheable.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from mecene import devicewire, ohttp, recordwire
from mecene import keys as key_rules
from mecene.diskspace import disk_is_full
from mecene.errors import envelope

from . import gateway, requests, tokens
from .accept import Auth
from .errors import HubError
from .service import Hub

log = logging.getLogger("mecene.hub")

DISK_FULL = "the hub's disk is full: nothing was written; send it again later"
DISK_FULL_RETRY_SECONDS = 60
HUB = web.AppKey("hub", Hub)
RAW_BODY = web.RequestKey("raw_body", bytes)
ACCOUNT = web.RequestKey("account", str)
MAX_BODY = 2 * 1024 * 1024  # a settlement of 10,000 allocations fits
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIGNED = "signed"
BODY_TYPE = "body_type"  # a route whose body is not JSON says its type
BEFORE, WITH_WRITES = "before", "with_writes"
AUTH = web.RequestKey("auth", Auth)


def _json(data: Any, status: int = 200, **headers: str) -> web.Response:
    return web.json_response(data, status=status, headers=headers or None)


# Slow clients: headers within HEADER_SECONDS of connecting (aiohttp's
# keep-alive timer runs from the connection's start and closes it while no
# complete request has come), the body within BODY_SECONDS of the headers.
# Settlements come over the internet and may be 2 MiB: the body gets longer.
HEADER_SECONDS = 10.0
# After an answer to a request whose body was not read whole (408, 413), how
# long aiohttp keeps reading it so the client sees the answer (default 10 s).
LINGER_SECONDS = 2.0
BODY_SECONDS = 30.0


async def read_body(request: web.Request) -> bytes:
    try:
        async with asyncio.timeout(BODY_SECONDS):
            return await request.read()
    except TimeoutError:
        request.protocol.close()  # once the 408 is written
        raise HubError(
            "slow_body", f"the body did not arrive within {BODY_SECONDS:.0f} s"
        ) from None


async def _body(request: web.Request) -> dict[str, Any]:
    raw = request.get(RAW_BODY)
    if raw is None:
        raw = await read_body(request)
    if not raw:
        return {}
    return requests.json_object(raw)


@web.middleware
async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The error envelope, JSON-only bodies, and signatures where a route asks."""
    try:
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.can_read_body:
            if request.content_type != getattr(
                request.match_info.route.handler, BODY_TYPE, "application/json"
            ):
                raise HubError("unsupported_media_type", "send JSON (application/json)")
        route = request.match_info.route
        signed_as = getattr(route.handler, SIGNED, None)
        if signed_as:
            raw = await read_body(request)
            request[RAW_BODY] = raw
            hub = request.app[HUB]
            auth = hub.check_signature(request.headers, request.method, request.raw_path, raw)
            await hub.devices.check(auth)
            if signed_as != WITH_WRITES:
                await hub.spend_nonce(auth)
            request[AUTH] = auth
            request[ACCOUNT] = auth.account
        return await handler(request)
    except HubError as exc:
        response = _json(exc.body(), exc.status)
        if "retry_after" in exc.extra:
            response.headers["Retry-After"] = str(exc.extra["retry_after"])
        return response
    except web.HTTPRequestEntityTooLarge:
        return _json(envelope("too_large", "the body is too large"), 413)
    except web.HTTPException as exc:
        if exc.status >= 400:
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "error")
            return _json(envelope(code, exc.reason), exc.status)
        raise
    except Exception as exc:
        if not disk_is_full(exc):
            raise
        # Each write is one transaction: it left nothing behind. Said in one
        # line, and the sender tries again (a 5xx is never final).
        log.warning("%s %s: the disk is full; nothing was written", request.method, request.path)
        response = _json(envelope("disk_full", DISK_FULL), 507)
        response.headers["Retry-After"] = str(DISK_FULL_RETRY_SECONDS)
        return response


def signed(handler: Handler) -> Handler:
    """A route that needs a signed request; its nonce is spent before it runs."""
    setattr(handler, SIGNED, BEFORE)
    return handler


def signed_with_writes(handler: Handler) -> Handler:
    """A signed route whose handler spends the nonce in its own commit."""
    setattr(handler, SIGNED, WITH_WRITES)
    return handler


async def info(request: web.Request) -> web.Response:
    return _json(request.app[HUB].reports.info())


@signed
async def account(request: web.Request) -> web.Response:
    return _json(await request.app[HUB].deposits.account_view(request[ACCOUNT]))


async def quote(request: web.Request) -> web.Response:
    return _json(requests.quote(await _body(request)).view())


@signed
async def deposit(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    created, out = await hub.deposit(request[ACCOUNT], requests.deposit(await _body(request)))
    view = await hub.account_view(request[ACCOUNT])
    return _json({"deposit": out, "balance_cents": view["balance_cents"]}, 201 if created else 200)


@signed_with_writes
async def settle(request: web.Request) -> web.Response:
    req = requests.settlement(await _body(request))
    created, receipt = await request.app[HUB].settlements.settle(request[AUTH], req)
    return _json(receipt, 201 if created else 200)


@signed
async def settlement(request: web.Request) -> web.Response:
    month = requests.month(request.match_info["month"])
    return _json(await request.app[HUB].settlements.settlement(request[ACCOUNT], month))


@signed
async def claim(request: web.Request) -> web.Response:
    key = requests.claim(await _body(request))
    return _json(await request.app[HUB].creators.claim(request[ACCOUNT], key), 201)


@signed
async def verify_claim(request: web.Request) -> web.Response:
    claim_id = request.match_info["id"]
    return _json(await request.app[HUB].creators.verify_claim(request[ACCOUNT], claim_id))


@signed
async def flattr_id(request: web.Request) -> web.Response:
    out = await request.app[HUB].creators.issue_flattr_id(request[ACCOUNT])
    return _json(out, 201 if out["new"] else 200)


@signed
async def transfer(request: web.Request) -> web.Response:
    req = requests.transfer(await _body(request))
    created, out = await request.app[HUB].transfers.transfer(request[ACCOUNT], req)
    return _json(out, 201 if created else 200)


@signed
async def issue_tokens(request: web.Request) -> web.Response:
    req = tokens.issue_request(await _body(request))
    created, out = await request.app[HUB].tokens.issue(request[ACCOUNT], req)
    return _json(out, 201 if created else 200)


@signed
async def put_record(request: web.Request) -> web.Response:
    try:
        slot = recordwire.slot(request.match_info["slot"])
        req = recordwire.put(await _body(request))
    except recordwire.RecordError as exc:
        raise HubError(exc.code, str(exc)) from None
    return _json(await request.app[HUB].records.put(request[ACCOUNT], slot, req))


@signed
async def get_record(request: web.Request) -> web.Response:
    try:
        slot = recordwire.slot(request.match_info["slot"])
    except recordwire.RecordError as exc:
        raise HubError(exc.code, str(exc)) from None
    return _json(await request.app[HUB].records.get(request[ACCOUNT], slot))


@signed
async def list_records(request: web.Request) -> web.Response:
    return _json(await request.app[HUB].records.listed(request[ACCOUNT]))


def _device_error(exc: devicewire.DeviceError) -> HubError:
    return HubError(exc.code, str(exc))


@signed
async def add_device(request: web.Request) -> web.Response:
    try:
        req = devicewire.proof_body(await _body(request))
    except devicewire.DeviceError as exc:
        raise _device_error(exc) from None
    return _json(await request.app[HUB].devices.add(request[ACCOUNT], req), 201)


@signed
async def list_devices(request: web.Request) -> web.Response:
    return _json(await request.app[HUB].devices.listed(request[ACCOUNT]))


@signed
async def remove_device(request: web.Request) -> web.Response:
    try:
        device = devicewire.device_key(request.match_info["device"])
    except devicewire.DeviceError as exc:
        raise _device_error(exc) from None
    return _json(await request.app[HUB].devices.remove(request[ACCOUNT], device))


@signed
async def put_invite(request: web.Request) -> web.Response:
    try:
        ident = devicewire.invite_ident(request.match_info["id"])
        data = devicewire.invite_body(await _body(request))
    except devicewire.DeviceError as exc:
        raise _device_error(exc) from None
    return _json(await request.app[HUB].devices.invite(request[ACCOUNT], ident, data), 201)


async def accept_invite(request: web.Request) -> web.Response:
    try:
        ident = devicewire.invite_ident(request.match_info["id"])
        req = devicewire.proof_body(await _body(request))
    except devicewire.DeviceError as exc:
        raise _device_error(exc) from None
    return _json(await request.app[HUB].devices.accept(ident, req))


async def ohttp_keys(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    body = gateway.published_keys(hub.gateway, hub.public_key, hub.key.sign)
    etag = '"ohttp-' + hashlib.sha256(body["keys"].encode()).hexdigest()[:32] + '"'
    return _cached(request, etag, lambda: _json(body), cache="public, max-age=86400")


async def ohttp_request(request: web.Request) -> web.Response:
    """An encapsulated request from a relay (hub/gateway.py). One that does
    not open gets a plain 400 (RFC 9458 section 5.2); what is inside gets
    its answer, encapsulated, always with 200 outside."""
    raw = await read_body(request)
    try:
        sealed = await gateway.answer(request.app[HUB].gateway, request.app[HUB], raw)
    except ohttp.OhttpError as exc:
        raise HubError("invalid", f"an encapsulated request: {exc}") from None
    return web.Response(
        body=sealed,
        content_type=ohttp.RESPONSE_TYPE,
        headers={"Cache-Control": "no-store"},
    )


setattr(ohttp_request, BODY_TYPE, ohttp.REQUEST_TYPE)


async def redeem_token(request: web.Request) -> web.Response:
    """No account and no signature: whoever holds a token may spend it."""
    req = tokens.redeem_request(await _body(request))
    created, out = await request.app[HUB].tokens.redeem(req)
    return _json(out, 201 if created else 200)


async def token_keys(request: web.Request) -> web.Response:
    month = requests.month(request.match_info["month"])
    body = await request.app[HUB].tokens.published(month)
    etag = (
        '"keys-' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32] + '"'
    )
    # A month's keys never change: a day in every cache.
    return _cached(request, etag, lambda: _json(body), cache="public, max-age=86400")


@signed
async def withdraw(request: web.Request) -> web.Response:
    req = requests.withdrawal(await _body(request))
    created, out = await request.app[HUB].deposits.withdraw(request[ACCOUNT], req)
    return _json({"withdrawal": out}, 201 if created else 200)


# -- public counters ---------------------------------------------------------------

CACHE = "public, max-age=300"


async def _counter(request: web.Request) -> tuple[str, str, int]:
    kind = request.match_info["kind"]
    try:
        if kind == "thing":
            subject = key_rules.thing_url(request.query.get("url"))
        elif kind == "creator":
            subject = key_rules.creator_key(request.query.get("key"))
        else:
            raise web.HTTPNotFound()
    except ValueError as exc:
        raise HubError("invalid", str(exc)) from None
    return kind, subject, await request.app[HUB].reports.count(kind, subject)


def _cached(
    request: web.Request, etag: str, make: Callable[[], web.Response], cache: str = CACHE
) -> web.Response:
    headers = {"Cache-Control": cache, "ETag": etag, "Access-Control-Allow-Origin": "*"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    response = make()
    response.headers.update(headers)
    return response


async def counter(request: web.Request) -> web.Response:
    kind, subject, count = await _counter(request)
    if kind == "thing":
        body: dict[str, Any] = {"url": subject, "flattrs": count}
        return _cached(request, f'"{kind}-{count}"', lambda: _json(body))
    tokens_cents = await request.app[HUB].reports.redemptions_cents(subject)
    body = {
        "creator": subject,
        "flattrers": count,
        # Not a count: the hub cannot tell whose tokens they were, and one
        # person's own tokens redeemed to themselves must not raise a counter.
        "tokens_cents": tokens_cents,
    }
    return _cached(request, f'"{kind}-{count}-{tokens_cents}"', lambda: _json(body))


async def joined(request: web.Request) -> web.Response:
    """The set of proved creator keys, whole (DESIGN.md, "Who has joined")."""
    etag, body = await request.app[HUB].creators.joined()
    return _cached(request, etag, lambda: _json(body))


def button_svg(count: int) -> str:
    """A small "Flattr | N" button, like the original's, as SVG."""
    text = escape(f"{count:,}".replace(",", "\u202f"))
    right = 14 + 7 * len(text)
    width = 50 + right
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="Flattr: {text}"><title>Flattr: {text}</title>'
        f'<rect width="50" height="20" rx="3" fill="#6b3fa0"/>'
        f'<rect x="47" width="{right + 3}" height="20" rx="3" fill="#ececec"/>'
        f'<rect x="47" width="4" height="20" fill="#ececec"/>'
        f'<g font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="25" y="14" fill="#fff" text-anchor="middle">Flattr</text>'
        f'<text x="{50 + right / 2:.1f}" y="14" fill="#333" text-anchor="middle">{text}</text>'
        f"</g></svg>"
    )


async def button(request: web.Request) -> web.Response:
    # People who flattred: where the hub knows them (linkable settlements).
    # Tokens are money from nobody the hub knows: never counted as people.
    kind, _subject, count = await _counter(request)
    return _cached(
        request,
        f'"{kind}-{count}-svg"',
        lambda: web.Response(text=button_svg(count), content_type="image/svg+xml"),
    )


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v1", info),
    ("GET", "/v1/account", account),
    ("POST", "/v1/deposits/quote", quote),
    ("POST", "/v1/deposits", deposit),
    ("POST", "/v1/settlements", settle),
    ("GET", "/v1/settlements/{month}", settlement),
    ("POST", "/v1/claims", claim),
    ("POST", "/v1/claims/{id}/verify", verify_claim),
    ("POST", "/v1/flattr-ids", flattr_id),
    ("POST", "/v1/withdrawals", withdraw),
    ("POST", "/v1/transfers", transfer),
    ("GET", "/v1/token-keys/{month}", token_keys),
    ("POST", "/v1/tokens", issue_tokens),
    ("POST", "/v1/tokens/redeem", redeem_token),
    ("GET", "/v1/ohttp-keys", ohttp_keys),
    ("POST", "/v1/ohttp", ohttp_request),
    ("GET", "/v1/records", list_records),
    ("PUT", "/v1/records/{slot}", put_record),
    ("GET", "/v1/records/{slot}", get_record),
    ("POST", "/v1/devices", add_device),
    ("GET", "/v1/devices", list_devices),
    ("DELETE", "/v1/devices/{device}", remove_device),
    ("PUT", "/v1/invites/{id}", put_invite),
    ("POST", "/v1/invites/{id}/accept", accept_invite),
    ("GET", "/v1/counters/{kind}", counter),
    ("GET", "/v1/creators/joined", joined),
    ("GET", "/v1/buttons/{kind}.svg", button),
]


def create_app(hub: Hub) -> web.Application:
    app = web.Application(middlewares=[front], client_max_size=MAX_BODY)
    app[HUB] = hub
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    return app
