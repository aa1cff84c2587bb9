"""The local API: `create_app` and a row of thin handlers.

Each handler parses its input (daemon/validate.py), calls one Service method
and shapes the answer. PROTOCOL.md documents every route listed in `ROUTES`;
a test checks that it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from mecene import messages
from mecene.amounts import euros
from mecene.time import Clock

from . import dashboard, validate
from .browsers.pairing import client_name
from .channel import Channel
from .errors import DomainError, Invalid, Unauthorized
from .hublink import HubLink
from .security import (
    ADMIN,
    CHANNEL,
    PRINCIPAL_KEY,
    PUBLIC,
    access,
    error_response,
    read_json,
    setup_auth,
    setup_errors,
    setup_host_check,
    setup_json_only,
    setup_origin_check,
)
from .service import Service
from .store import Store
from .unlinkable import sql as tokens_sql
from .wallet import Wallet

API = "/api/v1"
MAX_BODY_BYTES = 64 * 1024

SERVICE = web.AppKey("service", Service)
HUB_LINK = web.AppKey("hub_link", HubLink)
STORE = web.AppKey("store", Store)
CHANNEL_KEY = web.AppKey("channel", Channel)
STOPPING = web.AppKey("stopping", asyncio.Event)


@dataclass(frozen=True)
class Config:
    port: int
    wallet_path: Path
    admin_token_hash: str | None = None
    hub_url: str | None = None  # where settlements go; None: no hub (tests)
    hub_retry_seconds: float = 5.0
    channel_path: Path | None = None  # the browsers' socket; None: answered in-process only
    hub_embedded: bool = False  # the practice hub in this process: its clock is ours
    records_marker: Path | None = None  # DataDir.records_marker: fetch the records first
    relay_url: str | None = None  # an Oblivious HTTP relay for redemptions and key fetches


def create_app(
    config: Config, store: Store, wallet: Wallet | None, clock: Clock
) -> web.Application:
    """The daemon's web application. The store is opened and closed with the app."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    service = Service(store, clock, config.wallet_path, wallet)
    service.browsers.admin_token_hash = config.admin_token_hash
    app[SERVICE] = service
    app[STORE] = store
    hosts = [f"127.0.0.1:{config.port}", f"localhost:{config.port}"]
    setup_errors(app)
    setup_host_check(app, hosts)
    setup_origin_check(app, [f"http://{h}" for h in hosts])
    setup_json_only(app)
    setup_auth(
        app,
        service.browsers.authenticate,
        service.browsers.dashboard_session,
        dashboard.COOKIE,
        dashboard.SESSION_HEADER,
    )
    app[CHANNEL_KEY] = Channel(app, service.browsers, config.port)
    app.cleanup_ctx.append(_store_lifetime)
    if config.channel_path is not None:
        path = config.channel_path

        async def channel_lifetime(app: web.Application) -> AsyncIterator[None]:
            await app[CHANNEL_KEY].start(path)
            yield
            await app[CHANNEL_KEY].stop()

        app.cleanup_ctx.append(channel_lifetime)
    if config.hub_url:
        # Another hub's time tells whether this computer's clock may close a
        # month (months/clockwatch.py); the embedded hub's is the same clock.
        service.months.watch.needs_hub = not config.hub_embedded
        service.session.practice_hub = config.hub_embedded
        link = HubLink(
            service,
            config.hub_url,
            retry_base=config.hub_retry_seconds,
            records_marker=config.records_marker,
            relay_url=config.relay_url,
        )
        app[HUB_LINK] = link
        service.months.on_months_closed = link.wake.set
        app.cleanup_ctx.append(_hub_link_lifetime)
    app[STOPPING] = asyncio.Event()

    async def stopping(app: web.Application) -> None:
        app[STOPPING].set()  # a dashboard's wait for changes ends now, not in 25 s

    app.on_shutdown.append(stopping)
    app.router.add_routes(ROUTES)
    return app


async def _hub_link_lifetime(app: web.Application) -> AsyncIterator[None]:
    """Send closed months to the hub in the background, for as long as the app runs."""
    link = app[HUB_LINK]
    task = asyncio.create_task(link.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await link.close()


def _link(request: web.Request) -> HubLink:
    link = request.app.get(HUB_LINK)
    if link is None:
        raise Invalid("this daemon has no hub")
    return link


async def _store_lifetime(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    store.open()
    try:
        await app[SERVICE].start()
    except BaseException:
        # A start that fails must not leave the commit thread running: the
        # process would never exit.
        await store.close()
        raise
    yield
    await store.close()


def _service(request: web.Request) -> Service:
    return request.app[SERVICE]


log = logging.getLogger("mecene")
routes = web.RouteTableDef()


@routes.post(f"{API}/pairing")
@access(CHANNEL)
async def request_pairing(request: web.Request) -> web.Response:
    """A browser asks to pair with its key (the browsers' channel only)."""
    body = validate.obj(await read_json(request), {"client"})
    service = _service(request)
    pairing = service.browsers.request_pairing(
        client_name(body.get("client")), request[PRINCIPAL_KEY], getattr(request, "conn", 0)
    )
    return web.json_response(
        {
            "pairing_id": pairing.id,
            "code": pairing.code,
            "expires_in": pairing.expires_in(service.clock.now()),
        },
        status=201,
    )


@routes.get(f"{API}/pairing/{{pairing_id}}")
@access(CHANNEL)
async def poll_pairing(request: web.Request) -> web.Response:
    return web.json_response(
        _service(request).browsers.poll_pairing(
            request.match_info["pairing_id"], request[PRINCIPAL_KEY]
        )
    )


@routes.get(f"{API}/status")
async def status(request: web.Request) -> web.Response:
    service = _service(request)
    out = await service.months.status()
    if not out.get("locked"):
        # Tokens bought for gifts and not given yet: gone from the balance,
        # still the person's to give (daemon/unlinkable/pool.py).
        out["gift_tokens_cents"] = await service.store.read(tokens_sql.pooled_cents)
    return web.json_response(out)


@routes.get(f"{API}/creators")
async def creators_joined(request: web.Request) -> web.Response:
    """Whether creators have joined, from the hub's whole published list."""
    keys = validate.creator_keys_query(request.query.getall("key", []))
    return web.json_response(_service(request).creators.creators_joined(keys))


@routes.post(f"{API}/clicks")
async def record_click(request: web.Request) -> web.Response:
    req = validate.click(await read_json(request))
    click, created, status = await _service(request).flattrs.record_click(req)
    return web.json_response({"click": click, "status": status}, status=201 if created else 200)


@routes.get(f"{API}/clicks")
async def list_clicks(request: web.Request) -> web.Response:
    month = request.query.get("month")
    return web.json_response(
        await _service(request).flattrs.clicks(validate.month(month) if month is not None else None)
    )


@routes.delete(f"{API}/clicks/{{click_id}}")
async def undo_click(request: web.Request) -> web.Response:
    click_id = validate.client_id(request.match_info["click_id"])
    click, status = await _service(request).flattrs.undo_click(click_id)
    return web.json_response({"click": click, "status": status})


# -- direct transfers -------------------------------------------------------------


@routes.post(f"{API}/transfers/quote")
async def transfer_quote(request: web.Request) -> web.Response:
    body = validate.obj(await read_json(request), {"creator", "cents"})
    creator = validate.creator(body.get("creator"))
    cents = validate.transfer_cents(body.get("cents"))
    return web.json_response(_service(request).gifts.quote(creator, cents))


@routes.post(f"{API}/transfers")
async def give(request: web.Request) -> web.Response:
    """Record a direct transfer (durably: a 2xx means it survives a crash),
    then send it to the hub at once. 201 given, with the hub's receipt; 202
    recorded and still on its way (the hub is unreachable: it is sent again
    until the hub answers); 200 the same id again, as it stands; a refusal by
    the hub with its reason."""
    req = validate.transfer(await read_json(request))
    principal = request.get(PRINCIPAL_KEY)
    from_browser = getattr(principal, "kind", None) == "browser"
    row, created = await _service(request).gifts.record(req, from_browser=from_browser)
    if row["state"] == "waiting":
        limit = _service(request).session.require_wallet().settings.browser_gift_limit_cents
        return web.json_response(
            {
                "transfer": row,
                "confirm": True,
                "limit_cents": limit,
                "message": f"Gifts from a browser are limited to {euros(limit)} a day: this "
                "one waits for your confirmation in the tray menu or on the dashboard "
                "(`mecene open`).",
            },
            status=202,
        )
    return await _send_gift(request, row, created)


async def _send_gift(request: web.Request, row: dict[str, Any], created: bool) -> web.Response:
    """Send a recorded gift to the hub at once, and answer as `give` does."""
    link = request.app.get(HUB_LINK)
    if row["state"] == "sending" and link is not None:
        row = await link.gifts.send(row)
    if row["state"] == "refused":
        code = row["error"] or "hub_refused"
        status = {"insufficient_funds": 402, "own_key": 409, "invalid": 400}.get(code, 502)
        extra: dict[str, Any] = {"transfer": row}
        if code == "insufficient_funds":
            extra["balance_cents"] = _service(request).session.balance_cents
        return error_response(code, row["message"] or code, status, **extra)
    status = (201 if row["state"] == "given" else 202) if created else 200
    return web.json_response({"transfer": row}, status=status)


@routes.post(f"{API}/transfers/{{transfer_id}}/confirm")
@access(ADMIN)
async def confirm_transfer(request: web.Request) -> web.Response:
    """The person confirms a gift a browser asked for past its daily limit."""
    validate.obj(await read_json(request), set())
    transfer_id = validate.client_id(request.match_info["transfer_id"])
    row = await _service(request).gifts.confirm(transfer_id)
    return await _send_gift(request, row, True)


@routes.delete(f"{API}/transfers/{{transfer_id}}")
@access(ADMIN)
async def cancel_transfer(request: web.Request) -> web.Response:
    """The person declines a gift that waited for them: nothing is sent."""
    transfer_id = validate.client_id(request.match_info["transfer_id"])
    return web.json_response({"transfer": await _service(request).gifts.cancel(transfer_id)})


@routes.get(f"{API}/transfers")
async def list_transfers(request: web.Request) -> web.Response:
    raw = request.query.get("month")
    month = None if raw is None else validate.month(raw)
    return web.json_response({"transfers": await _service(request).gifts.listed(month)})


@routes.get(f"{API}/months")
async def list_months(request: web.Request) -> web.Response:
    return web.json_response({"months": await _service(request).months.listed()})


@routes.get(f"{API}/months/{{month}}")
async def show_month(request: web.Request) -> web.Response:
    month = validate.month(request.match_info["month"])
    return web.json_response(await _service(request).months.view(month))


CHANGES_WAIT_SECONDS = 25.0


@routes.get(f"{API}/changes")
@access(ADMIN)
async def changes(request: web.Request) -> web.Response:
    """The dashboard's live view: answered once the daemon's records have
    changed since `since` (the version it last saw), or after 25 s."""
    since = validate.version(request.query.get("since"))
    version = await request.app[STORE].changed_since(
        since, CHANGES_WAIT_SECONDS, request.app[STOPPING]
    )
    return web.json_response({"version": version})


@routes.get(f"{API}/subscriptions")
async def list_subscriptions(request: web.Request) -> web.Response:
    return web.json_response({"subscriptions": await _service(request).flattrs.subscriptions()})


@routes.post(f"{API}/subscriptions")
async def subscribe(request: web.Request) -> web.Response:
    req = validate.subscription(await read_json(request))
    sub, created = await _service(request).flattrs.subscribe(req)
    return web.json_response({"subscription": sub}, status=201 if created else 200)


@routes.patch(f"{API}/subscriptions/{{sub_id}}")
async def change_subscription(request: web.Request) -> web.Response:
    sub_id = validate.client_id(request.match_info["sub_id"])
    change = validate.subscription_change(await read_json(request))
    return web.json_response(
        {"subscription": await _service(request).flattrs.change_subscription(sub_id, change)}
    )


@routes.delete(f"{API}/subscriptions/{{sub_id}}")
async def cancel_subscription(request: web.Request) -> web.Response:
    sub_id = validate.client_id(request.match_info["sub_id"])
    return web.json_response(
        {"subscription": await _service(request).flattrs.cancel_subscription(sub_id)}
    )


@routes.delete(f"{API}/subscriptions")
async def cancel_subscription_by_body(request: web.Request) -> web.Response:
    """DESIGN.md's `DELETE /subscriptions` form: the id in a JSON body."""
    body = validate.obj(await read_json(request), {"id"})
    sub_id = validate.client_id(body.get("id"))
    return web.json_response(
        {"subscription": await _service(request).flattrs.cancel_subscription(sub_id)}
    )


@routes.get(f"{API}/pairings")
@access(ADMIN)
async def list_pairings(request: web.Request) -> web.Response:
    return web.json_response({"pending": _service(request).browsers.pending_pairings()})


@routes.post(f"{API}/pairings/approve")
@access(ADMIN)
async def approve_pairing(request: web.Request) -> web.Response:
    body = validate.obj(await read_json(request), {"code"})
    return web.json_response(
        {"browser": await _service(request).browsers.approve_pairing(body.get("code"))}
    )


@routes.post(f"{API}/pairings/deny")
@access(ADMIN)
async def deny_pairing(request: web.Request) -> web.Response:
    body = validate.obj(await read_json(request), {"code"})
    _service(request).browsers.deny_pairing(body.get("code"))
    return web.json_response({"denied": True})


@routes.get(f"{API}/browsers")
@access(ADMIN)
async def list_browsers(request: web.Request) -> web.Response:
    return web.json_response({"browsers": await _service(request).browsers.listed()})


@routes.delete(f"{API}/browsers/{{token_id}}")
@access(ADMIN)
async def revoke_browser(request: web.Request) -> web.Response:
    token_id = validate.client_id(request.match_info["token_id"])
    return web.json_response({"browser": await _service(request).browsers.revoke(token_id)})


@routes.get(f"{API}/settings")
@access(ADMIN)
async def show_settings(request: web.Request) -> web.Response:
    service = _service(request)
    return web.json_response(
        {"settings": service.session.settings.to_json(), "backups": service.backups.view()}
    )


@routes.patch(f"{API}/settings")
@access(ADMIN)
async def change_settings(request: web.Request) -> web.Response:
    changes = validate.settings_patch(await read_json(request))
    if not changes:
        raise Invalid("nothing to change")
    service = _service(request)
    before = service.session.settings.backup_dir if not service.session.locked else None
    settings = await service.months.update_settings(changes)
    if changes.get("backup_dir") and changes["backup_dir"] != before:
        # The first backup at once: the person sees that the folder works.
        await service.backups.take()
    return web.json_response({"settings": settings.to_json(), "backups": service.backups.view()})


@routes.post(f"{API}/wallet/unlock")
@access(ADMIN)
async def unlock(request: web.Request) -> web.Response:
    body = validate.obj(await read_json(request), {"passphrase"})
    passphrase: Any = body.get("passphrase")
    if not isinstance(passphrase, str) or not 1 <= len(passphrase) <= 1024:
        raise Invalid("passphrase must be text")
    await _service(request).unlock(passphrase)
    return web.json_response({"locked": False})


@routes.post(f"{API}/wallet/passphrase")
@access(ADMIN)
async def change_passphrase(request: web.Request) -> web.Response:
    """A new passphrase: the current one proves it is the person."""
    body = validate.obj(await read_json(request), {"passphrase", "new_passphrase"})
    old, new = body.get("passphrase"), body.get("new_passphrase")
    for value in (old, new):
        if not isinstance(value, str) or not 1 <= len(value) <= 1024:
            raise Invalid("passphrase and new_passphrase must be text")
    assert isinstance(old, str) and isinstance(new, str)
    await _service(request).session.change_passphrase(old, new)
    return web.json_response({"changed": True})


@routes.post(f"{API}/wallet/lock")
@access(ADMIN)
async def lock(request: web.Request) -> web.Response:
    validate.obj(await read_json(request), set())
    _service(request).lock()
    return web.json_response({"locked": True})


@routes.post(f"{API}/clock/confirm")
@access(ADMIN)
async def confirm_clock(request: web.Request) -> web.Response:
    """The person says the computer's date is right: months held by a clock
    that jumped, or ran ahead of the hub's, close now."""
    validate.obj(await read_json(request), set())
    return web.json_response({"clock": await _service(request).months.confirm_clock()})


@routes.get(f"{API}/hub")
@access(ADMIN)
async def hub_state(request: web.Request) -> web.Response:
    return web.json_response({"hub": await _link(request).state()})


@routes.post(f"{API}/hub/sync")
@access(ADMIN)
async def hub_sync(request: web.Request) -> web.Response:
    """Send every closed month now (not waiting for the back-off), then show them."""
    validate.obj(await read_json(request), set())
    link = _link(request)
    if not _service(request).session.locked:
        await _service(request).months.roll()  # a month that has just ended goes too
    for month in await _service(request).months.unsent():
        await _service(request).months.mark(month["month"], next_sync_at=None)
    await link.sync_once(asked=True)
    await link.gifts.send_due(now_too=True)
    try:
        await link.refresh_outcomes(every=0)
    except DomainError as exc:
        log.info("outcomes not refreshed: %s", exc)
    return web.json_response(
        {"hub": await link.state(), "months": await _service(request).months.listed()}
    )


@routes.post(f"{API}/deposits/quote")
@access(ADMIN)
async def deposit_quote(request: web.Request) -> web.Response:
    body = validate.obj(await read_json(request), {"method", "amount_cents"})
    method, amount = validate.deposit(body)
    return web.json_response(await _link(request).quote(method, amount))


@routes.post(f"{API}/deposits")
@access(ADMIN)
async def deposit(request: web.Request) -> web.Response:
    body = validate.obj(await read_json(request), {"id", "method", "amount_cents", "fee_cents"})
    method, amount = validate.deposit(body)
    fee = body.get("fee_cents")
    if not isinstance(fee, int) or isinstance(fee, bool) or fee < 0:
        raise Invalid("fee_cents is the fee shown to the person, in cents")
    out = await _link(request).deposit(
        messages.build_deposit(validate.client_id(body.get("id")), method, amount, fee)
    )
    return web.json_response(out, status=201)


# -- the wallet's computers (daemon/devices.py) -----------------------------------------


@routes.get(f"{API}/devices")
@access(ADMIN)
async def devices_list(request: web.Request) -> web.Response:
    return web.json_response(await _link(request).devices.listed())


@routes.post(f"{API}/devices/invite")
@access(ADMIN)
async def devices_invite(request: web.Request) -> web.Response:
    body = validate.obj(await read_json(request), {"name"})
    name = body.get("name")
    return web.json_response(await _link(request).devices.invite(name), status=201)


@routes.delete(f"{API}/devices/{{device}}")
@access(ADMIN)
async def devices_remove(request: web.Request) -> web.Response:
    ref = request.match_info["device"]
    if not 0 < len(ref) <= 64:
        raise Invalid("a device is named by its name or its key")
    return web.json_response(await _link(request).devices.remove(ref))


# -- the person as a creator, at the hub (signed with the wallet's key) ----------------


@routes.get(f"{API}/hub/account")
@access(ADMIN)
async def hub_account(request: web.Request) -> web.Response:
    return web.json_response(await _link(request).creator_call("GET", "/v1/account"))


@routes.post(f"{API}/hub/claims")
@access(ADMIN)
async def hub_claim(request: web.Request) -> web.Response:
    body = validate.obj(await read_json(request), {"key"})
    key = validate.creator(body.get("key"), "key")
    return web.json_response(
        await _link(request).creator_call("POST", "/v1/claims", messages.build_claim(key)),
        status=201,
    )


@routes.post(f"{API}/hub/claims/{{claim_id}}/verify")
@access(ADMIN)
async def hub_verify_claim(request: web.Request) -> web.Response:
    validate.obj(await read_json(request), set())
    claim_id = request.match_info["claim_id"]
    if not claim_id.replace("-", "").replace("_", "").isalnum() or len(claim_id) > 64:
        raise Invalid("not a claim id")
    out = await _link(request).creator_call("POST", f"/v1/claims/{claim_id}/verify", {})
    if out.get("claim", {}).get("state") == "verified":
        # The key, and those the same page proved with it (a YouTube handle's
        # channel id): the person's own, never paid by their own months.
        also = out.get("also_proved") or []
        for key in [out["claim"]["key"], *(also if isinstance(also, list) else [])]:
            await _service(request).creators.add_own_creator(validate.creator(key, "key"))
        _link(request).joined_changed()
    return web.json_response(out)


@routes.post(f"{API}/hub/flattr-ids")
@access(ADMIN)
async def hub_flattr_id(request: web.Request) -> web.Response:
    validate.obj(await read_json(request), set())
    out = await _link(request).creator_call("POST", "/v1/flattr-ids", {})
    await _service(request).creators.add_own_creator(out["key"])
    _link(request).joined_changed()
    return web.json_response(out, status=201 if out.get("new") else 200)


@routes.post(f"{API}/hub/withdrawals")
@access(ADMIN)
async def hub_withdraw(request: web.Request) -> web.Response:
    body = validate.obj(await read_json(request), {"id", "amount_cents"})
    amount = body.get("amount_cents")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise Invalid("amount_cents is a whole number of cents")
    request_id = validate.client_id(body.get("id"))
    out = await _link(request).creator_call(
        "POST", "/v1/withdrawals", messages.build_withdrawal(request_id, amount)
    )
    return web.json_response(out, status=201)


# -- the dashboard ----------------------------------------------------------------------


@routes.post(f"{API}/dashboard/links")
async def dashboard_link(request: web.Request) -> web.Response:
    """A one-time login link for the dashboard (`mecene open`, and the popup's
    Dashboard link over the browsers' channel)."""
    validate.obj(await read_json(request), set())
    code = _service(request).browsers.sessions.new_link_code(_service(request).clock.now())
    url = f"http://{request.host}/dashboard/login#{code}"
    return web.json_response({"url": url, "expires_in": int(dashboard.LINK_TTL.total_seconds())})


@routes.post(f"{API}/dashboard/session")
@access(PUBLIC)
async def dashboard_session(request: web.Request) -> web.Response:
    body = validate.obj(await read_json(request), {"code"})
    service = _service(request)
    opened = service.browsers.sessions.open_session(body.get("code"), service.clock.now())
    if opened is None:
        raise Unauthorized("this login link is not valid (any more): run `mecene open` again")
    token, secret = opened
    # The secret goes in the body, for the page to send back in a header;
    # the cookie alone authorises nothing (see dashboard.py).
    response = web.json_response({"ok": True, "secret": secret, "header": dashboard.SESSION_HEADER})
    response.set_cookie(
        dashboard.COOKIE,
        token,
        max_age=int(dashboard.SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
    )
    return response


@routes.post(f"{API}/dashboard/logout")
@access(ADMIN)
async def dashboard_logout(request: web.Request) -> web.Response:
    validate.obj(await read_json(request), set())
    token = request.cookies.get(dashboard.COOKIE)
    if token:
        _service(request).browsers.sessions.close(token)
    response = web.json_response({"ok": True})
    response.del_cookie(dashboard.COOKIE, path="/")
    return response


DASHBOARD_FILES = {
    "": ("index.html", "text/html"),
    "login": ("login.html", "text/html"),
    "app.js": ("app.js", "text/javascript"),
    "amounts.js": ("amounts.js", "text/javascript"),
    "keys.js": ("keys.js", "text/javascript"),
    "platforms.js": ("platforms.js", "text/javascript"),
    "login.js": ("login.js", "text/javascript"),
    "app.css": ("app.css", "text/css"),
}


@routes.get("/")
@access(PUBLIC)
async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/dashboard/")


@routes.get("/dashboard/{name:[a-z.]*}")
@access(PUBLIC)
async def dashboard_file(request: web.Request) -> web.Response:
    """The dashboard's own files: they hold no data (that comes from the API)."""
    found = DASHBOARD_FILES.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    name, content_type = found
    body = (dashboard.STATIC / name).read_bytes()
    return web.Response(
        body=body, content_type=content_type, charset="utf-8", headers=dashboard.SECURITY_HEADERS
    )


ROUTES = routes
