"""Unpaired surrogates and other broken Unicode, on every route of the daemon
and the hub: a 4xx with a clear error, never a 5xx, nothing stored.

JSON can carry half of a surrogate pair ("\\ud800"); Python decodes it into a
string that cannot be encoded, stored in SQLite or sent on. Such a string
reached the store and gave a 500 on POST /clicks.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.server import ROUTES
from hub.db import migrate, open_database
from hub.http import ROUTES as HUB_ROUTES
from hub.http import create_app as create_hub_app
from hub.proofs import ProofFetcher
from hub.provider import SimulatedProvider
from hub.service import Hub
from mecene.time import FrozenClock
from tests.support.constants import battery_size
from tests.support.daemons import App
from tests.support.hubs import HubClient, Person

LONE = ["\ud800", "\udfff", "a\udc00b", "\ud83d"]  # the last: a pair's first half alone
# Text with lone surrogates among ordinary characters.
BROKEN = st.text(
    alphabet=st.characters(categories=["Cs", "Ll", "Nd", "Po", "Sm"]), min_size=1, max_size=12
).filter(lambda s: _unpaired(json.loads(json.dumps(s))))


def _unpaired(s: str) -> bool:
    """A high then a low surrogate travel in JSON as one pair, which is text."""
    return any(0xD800 <= ord(c) <= 0xDFFF for c in s)


# A valid body for each route that takes one, so that a broken string gets
# past the shape checks and reaches the code that would store or send it.
VALID: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/clicks"): {
        "id": "ID",
        "url": "https://example.org/post",
        "title": "A post",
        "creator": "flattr:alice",
        "creators": ["kofi:bob", "domain:example.org"],
        "weight": 1,
    },
    ("POST", "/api/v1/subscriptions"): {
        "id": "ID",
        "url": "https://example.org/",
        "title": "A site",
        "creator": "liberapay:carol",
        "months": 3,
    },
    ("PATCH", "/api/v1/settings"): {"time_zone": "Europe/Paris", "charity": "flattr:dora"},
    ("POST", "/api/v1/pairing"): {"client": "Chromium on Linux"},
    ("POST", "/api/v1/pairings/approve"): {"code": "ABCD-EFGH"},
    ("POST", "/api/v1/pairings/deny"): {"code": "ABCD-EFGH"},
    ("POST", "/api/v1/wallet/unlock"): {"passphrase": "a passphrase"},
    ("POST", "/api/v1/hub/claims"): {"key": "github:alice"},
    ("DELETE", "/api/v1/subscriptions"): {"id": "ID"},
}
ROUTE_LIST = sorted(
    {(r.method, r.path) for r in ROUTES if r.path.startswith("/api/v1")}  # type: ignore[attr-defined]
)


def _strings(body: Any) -> list[tuple[Any, ...]]:
    """Paths to every string in `body`: (key,) or (key, index)."""
    out: list[tuple[Any, ...]] = []
    for k, v in body.items():
        if isinstance(v, str):
            out.append((k,))
        elif isinstance(v, list):
            out.extend((k, i) for i, item in enumerate(v) if isinstance(item, str))
    return out


def _splice(body: dict[str, Any], where: tuple[Any, ...], broken: str, at: int) -> dict[str, Any]:
    out = json.loads(json.dumps(body))
    if len(where) == 1:
        s = out[where[0]]
        out[where[0]] = s[: at % (len(s) + 1)] + broken + s[at % (len(s) + 1) :]
    else:
        s = out[where[0]][where[1]]
        out[where[0]][where[1]] = s[: at % (len(s) + 1)] + broken + s[at % (len(s) + 1) :]
    return out


def _fill(template: str, segment: str) -> str:
    for name in ("click_id", "sub_id", "token_id", "pairing_id", "month", "claim_id"):
        template = template.replace("{" + name + "}", segment)
    return template


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    app = App(
        tmp_path_factory.mktemp("unicode") / "mecene",
        FrozenClock(dt.datetime(2026, 10, 15, tzinfo=dt.UTC)),
    )
    yield app
    app.close()


@pytest.mark.parametrize("route", ROUTE_LIST, ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize("lone", LONE)
def test_every_route_refuses_a_lone_surrogate_in_its_strings(
    daemon: App, route: tuple[str, str], lone: str
) -> None:
    method, template = route
    if template.endswith("/wallet/lock"):
        return  # it takes no strings, and locking would make every later call 423
    base = VALID.get(route, {"id": "ID", "key": "flattr:x", "code": "x"})
    for where in _strings(base) if method != "GET" else []:  # a GET reads no body
        body = _splice({**base, "id": str(uuid.uuid4())} if "id" in base else base, where, lone, 3)
        status = daemon.send(method, _fill(template, "x"), json.dumps(body).encode())
        assert 400 <= status < 500, (method, template, where, status)
    # In a path segment and in the query, percent-encoded as CESU-8 bytes.
    encoded = quote(lone.encode("utf-8", "surrogatepass"), safe="")
    status = daemon.send(
        method, _fill(template, encoded) + f"?key={encoded}&month={encoded}", b"{}"
    )
    assert status < 500, (method, template, status)


@settings(
    max_examples=battery_size(150, 5000),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(sorted(VALID)),
    broken=BROKEN,
    at=st.integers(min_value=0, max_value=40),
    pick=st.integers(min_value=0, max_value=20),
)
def test_broken_unicode_anywhere_gets_a_4xx(
    daemon: App, route: tuple[str, str], broken: str, at: int, pick: int
) -> None:
    base = {**VALID[route]}
    if "id" in base:
        base["id"] = str(uuid.uuid4())
    places = _strings(base)
    body = _splice(base, places[pick % len(places)], broken, at)
    status = daemon.send(route[0], route[1], json.dumps(body).encode())
    assert 400 <= status < 500, (route, body, status)


def test_nothing_broken_was_stored(daemon: App) -> None:
    status, clicks = daemon.call("GET", "/clicks")
    assert status == 200
    assert json.dumps(clicks, ensure_ascii=False).encode("utf-8")  # every string is text


# -- the hub -----------------------------------------------------------------------------


@pytest.fixture
async def hub_client(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[HubClient]:
    clock = FrozenClock(dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC))
    engine = open_database(f"sqlite:///{tmp_path / 'hub.db'}")
    await migrate(engine)
    fetcher = ProofFetcher()
    hub = Hub(engine, Ed25519PrivateKey.generate(), clock, SimulatedProvider(), fetcher)
    client = await aiohttp_client(create_hub_app(hub))
    yield HubClient(client, Person.new(), clock)
    await fetcher.close()
    await engine.dispose()


async def _status(hc: HubClient, method: str, path: str, raw: bytes) -> int:
    headers = {"Content-Type": "application/json", **hc.headers(method, path, raw)}
    resp = await hc.client.request(method, path, data=raw, headers=headers)
    await resp.read()
    return int(resp.status)


@pytest.mark.parametrize("lone", LONE[:2])
async def test_the_hub_refuses_lone_surrogates(hub_client: HubClient, lone: str) -> None:
    hc = hub_client
    await hc.deposit(1000)
    # In a settlement's document: the signed text itself carries the escape.
    doc = {
        "v": 1,
        "account": hc.person.account,
        "month": "2026-11",
        "currency": "EUR",
        "spend_cents": 500,
        "private": False,
        "allocations": [{"creator": "flattr:alice", "cents": 500, "url": "https://x.org/" + lone}],
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))  # \\ud800 stays escaped
    body = {"document": text, "signature": hc.person.sign(text.encode())}
    assert await _status(hc, "POST", "/v1/settlements", json.dumps(body).encode()) == 400
    claim = {"key": "github:al" + lone}
    assert await _status(hc, "POST", "/v1/claims", json.dumps(claim).encode()) == 400
    # In every body's strings, and in every path and query.
    for method, template, _handler in HUB_ROUTES:
        path = (
            template.replace("{month}", "2026-11").replace("{id}", "x").replace("{kind}", "thing")
        )
        if method == "POST":
            body = {"key": "flattr:" + lone, "id": lone, "method": lone, "document": lone}
            status = await _status(hc, method, path, json.dumps(body).encode())
            assert status < 500, (method, template, status)  # some routes take no strings
        encoded = quote(lone.encode("utf-8", "surrogatepass"), safe="")
        resp = await hc.client.request("GET", f"{path}?url={encoded}&key={encoded}")
        await resp.read()
        assert resp.status < 500, (template, resp.status)
    account = await hc.call("GET", "/v1/account", expect=200)
    assert json.dumps(account, ensure_ascii=False).encode("utf-8")
