"""Each defence of the local API, alone on a bare app, then together on the real one."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web

from daemon.browsers.pairing import new_token
from daemon.browsers.room import Principal
from daemon.security import (
    ADMIN,
    PUBLIC,
    access,
    redact_path,
    setup_auth,
    setup_errors,
    setup_host_check,
    setup_json_only,
    setup_origin_check,
)
from tests.support.constants import EXTENSION_ORIGIN, HOST
from tests.support.daemons import Api, MakeApi


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def bare_app(setup: Any, *args: Any) -> web.Application:
    app = web.Application()
    setup_errors(app)
    setup(app, *args)
    app.router.add_get("/x", _ok)
    app.router.add_post("/x", _ok)
    return app


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:8737", 200),
        ("localhost:8737", 200),
        ("LOCALHOST:8737", 200),
        ("evil.example:8737", 403),
        ("127.0.0.1", 403),
        ("127.0.0.1:80", 403),
        ("[::1]:8737", 403),
        ("2130706433:8737", 403),
        ("127.1:8737", 403),
        ("0x7f.0.0.1:8737", 403),
        ("localhost.:8737", 403),
        ("", 403),
        ("127.0.0.1:8737.evil.example", 403),
    ],
)
async def test_host_check(aiohttp_client: Any, host: str, status: int) -> None:
    client = await aiohttp_client(bare_app(setup_host_check, ["127.0.0.1:8737", "localhost:8737"]))
    resp = await client.get("/x", headers={"Host": host})
    assert resp.status == status
    if status == 403:
        assert (await resp.json())["error"] == "bad_host"


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 200),
        (EXTENSION_ORIGIN, 200),
        ("moz-extension://0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", 200),
        ("http://127.0.0.1:8737", 200),
        ("https://evil.example", 403),
        ("null", 403),
        ("http://127.0.0.1:9999", 403),
        ("http://localhost:8737.evil.example", 403),
        ("chrome-extension://abc/../../evil", 403),
        ("file://", 403),
        ("", 403),
    ],
)
async def test_origin_check(aiohttp_client: Any, origin: str | None, status: int) -> None:
    client = await aiohttp_client(bare_app(setup_origin_check, ["http://127.0.0.1:8737"]))
    headers = {} if origin is None else {"Origin": origin}
    resp = await client.post("/x", headers=headers, json={})
    assert resp.status == status


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        ("application/json; charset=latin-1", 415),
    ],
)
async def test_json_only(aiohttp_client: Any, content_type: str, status: int) -> None:
    client = await aiohttp_client(bare_app(setup_json_only))
    resp = await client.post("/x", data=b"{}", headers={"Content-Type": content_type})
    assert resp.status == status


async def test_auth_levels(aiohttp_client: Any) -> None:
    principals = {"b" * 40: Principal("browser", "1", "b"), "a" * 40: Principal("admin")}
    app = web.Application()
    setup_errors(app)
    setup_auth(app, principals.get)

    @access(PUBLIC)
    async def public(request: web.Request) -> web.Response:
        return web.json_response({})

    @access(ADMIN)
    async def admin(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/public", public)
    app.router.add_get("/browser", _ok)
    app.router.add_get("/admin", admin)
    client = await aiohttp_client(app)

    async def status(path: str, token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return (await client.get(path, headers=headers)).status

    assert await status("/public", None) == 200
    assert await status("/browser", None) == 401
    assert await status("/browser", "c" * 40) == 401
    assert await status("/browser", "b" * 40) == 200
    assert await status("/admin", "b" * 40) == 403
    assert await status("/admin", "a" * 40) == 200
    assert (
        await client.get("/browser", headers={"Authorization": "Basic " + "b" * 40})
    ).status == 401


async def test_errors_are_json_and_never_leak(aiohttp_client: Any) -> None:
    app = web.Application()
    setup_errors(app)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret detail")

    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    resp = await client.get("/boom")
    assert resp.status == 500
    body = await resp.json()
    assert body["error"] == "internal" and "secret" not in body["message"]
    resp = await client.get("/nowhere")
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"


def test_pairing_ids_are_redacted_from_logs() -> None:
    assert redact_path("/api/v1/pairing/SECRETID") == "/api/v1/pairing/…"
    assert redact_path("/api/v1/status") == "/api/v1/status"


# -- the whole app -----------------------------------------------------------------


async def test_body_limit_and_bad_json(api: Api) -> None:
    h = api.headers(api.admin_token, {"Content-Type": "application/json"})
    resp = await api.client.post("/api/v1/clicks", data=b"[" * 70_000, headers=h)
    assert resp.status == 413
    for raw in (
        b"[" * 30_000 + b"]" * 30_000,
        b"{",
        b"NaN",
        b'{"weight": Infinity}',
        b"\xff\xfe",
        b"",
        b"1" * 5000,
    ):
        resp = await api.client.post("/api/v1/clicks", data=raw, headers=h)
        assert resp.status == 400, raw[:20]
        assert (await resp.json())["error"] in ("bad_json", "invalid")


async def test_get_changes_nothing(api: Api) -> None:
    for path in ("/status", "/clicks", "/months", "/subscriptions", "/months/2026-10"):
        await api.call("GET", path, expect=200)
    # The mutating routes do not answer GET.
    resp = await api.client.get(
        "/api/v1/clicks/00000000-0000-4000-8000-000000000000",
        headers=api.headers(api.admin_token),
    )
    assert resp.status == 405
    # Nor on the browsers' channel.
    status, out = await api.channel(
        "GET", "/clicks/00000000-0000-4000-8000-000000000000", key=api.token
    )
    assert (status, out["error"]) == (404, "unknown_message")
    assert (await api.call("GET", "/clicks"))["clicks"] == []


async def test_a_web_page_cannot_flattr_even_with_a_stolen_token(api: Api) -> None:
    body = {
        "id": "00000000-0000-4000-8000-000000000001",
        "url": "https://a.example/",
        "creator": "flattr:a",
    }
    resp = await api.client.post(
        "/api/v1/clicks",
        json=body,
        headers={
            "Host": HOST,
            "Origin": "https://evil.example",
            "Authorization": f"Bearer {api.token}",
        },
    )
    assert resp.status == 403
    resp = await api.client.post(
        "/api/v1/clicks",
        data=b'{"id":"x"}',
        headers={
            "Host": HOST,
            "Content-Type": "text/plain",
            "Authorization": f"Bearer {api.token}",
        },
    )
    assert resp.status == 415
    assert (await api.call("GET", "/clicks"))["clicks"] == []


async def test_no_secret_reaches_the_log(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # before the daemon starts: loggers are checked per connection
    api = await make_api()
    key = new_token()
    status, started = await api.channel("POST", "/pairing", {"client": "x"}, key)
    assert status == 201
    await api.call("POST", "/pairings/approve", {"code": started["code"]}, token="admin")
    await api.channel("GET", f"/pairing/{started['pairing_id']}", key=key)
    await api.channel("GET", "/status", key=key)
    await api.channel("GET", "/status", key=new_token())  # refused, and not logged
    await api.call("GET", "/status", token="admin")
    text = caplog.text
    assert "GET /api/v1/status 200" in text  # the access log is there
    for secret in (key, api.token, api.admin_token, started["pairing_id"]):
        assert secret and secret not in text
