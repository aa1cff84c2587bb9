"""Battery: hostile requests to the local API of a real daemon process.

Each row is one request a web page, another local program or a confused
client could send. Every one must be refused with a 4xx and must leave the
database and the wallet byte for byte as they were (their SHA-256 before
and after). docs/RELIABILITY.md reports the count.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.channel import Channel, frame
from tests.support.constants import EXTENSION_ORIGIN
from tests.support.daemons import Daemon, mecene, start


@dataclass
class Attack:
    name: str
    method: str
    path: str
    body: Any = None  # bytes as they are, or a JSON value
    headers: dict[str, str] = field(default_factory=dict)
    host: str | None = None  # default: the daemon's own 127.0.0.1:PORT
    # admin | browser (its key, sent as a bearer token: never a credential over
    # HTTP) | revoked | None | a literal header
    auth: str | None = "admin"
    code: str | None = None  # the error code expected, when it is one


def json_body(value: Any) -> bytes:
    return json.dumps(value).encode()


CLICK = {
    "id": "00000000-0000-4000-8000-000000000001",
    "url": "https://a.example/",
    "creator": "flattr:a",
}


def click(**changes: Any) -> bytes:
    return json_body({**CLICK, **changes})


ATTACKS: list[Attack] = [
    # -- DNS rebinding: a web page's own name, resolving to 127.0.0.1 --
    *[
        Attack(f"host {host}", "GET", "/api/v1/status", host=host, code="bad_host")
        for host in (
            "evil.example:{port}",
            "127.0.0.1.nip.io:{port}",
            "localhost.evil.example:{port}",
            "127.0.0.1:{port}.evil.example",
            "127.0.0.1",
            "127.0.0.1:1",
            "localhost",
            "",
        )
    ],
    # -- IP literals that also mean this machine --
    *[
        Attack(f"ip literal {host}", "POST", "/api/v1/clicks", click(), host=host, code="bad_host")
        for host in (
            "2130706433:{port}",
            "0x7f000001:{port}",
            "127.1:{port}",
            "0177.0.0.1:{port}",
            "[::1]:{port}",
            "[::ffff:127.0.0.1]:{port}",
            "0.0.0.0:{port}",
        )
    ],
    # -- Origins that are not an extension nor the dashboard --
    *[
        Attack(
            f"origin {origin}",
            "POST",
            "/api/v1/clicks",
            click(),
            headers={"Origin": origin},
            code="bad_origin",
        )
        for origin in (
            "https://evil.example",
            "null",
            "http://127.0.0.1:{port}.evil.example",
            "http://localhost:1",
            "file://",
            "http://127.0.0.1",
        )
    ],
    # -- bodies a form or a "simple" cross-site request can send --
    *[
        Attack(
            f"content type {ctype or 'none'}",
            "POST",
            "/api/v1/clicks",
            click(),
            headers={"Content-Type": ctype},
            code="unsupported_media_type",
        )
        for ctype in (
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
            "application/json; charset=latin-1",
        )
    ],
    Attack("form body", "POST", "/api/v1/clicks", b"id=1&url=x", code="bad_json"),
    # -- sizes and shapes --
    Attack("70 KiB body", "POST", "/api/v1/clicks", click(title="x" * 70_000), code="too_large"),
    Attack("nested 10,000 deep", "POST", "/api/v1/clicks", b"[" * 10_000 + b"]" * 10_000),
    Attack("a JSON list", "POST", "/api/v1/clicks", json_body([CLICK]), code="invalid"),
    Attack("NaN weight", "POST", "/api/v1/clicks", click().replace(b"}", b', "weight": NaN}')),
    Attack("unknown field", "POST", "/api/v1/clicks", click(admin=True), code="invalid"),
    Attack("empty body", "POST", "/api/v1/clicks", b"", code="bad_json"),
    Attack("not UTF-8", "POST", "/api/v1/clicks", b'{"id": "\xff\xfe"}', code="bad_json"),
    # -- tokens --
    Attack("no token", "POST", "/api/v1/clicks", click(), auth=None, code="unauthorized"),
    Attack("wrong token", "POST", "/api/v1/clicks", click(), auth="Bearer " + "x" * 43),
    Attack("revoked token", "POST", "/api/v1/clicks", click(), auth="revoked", code="unauthorized"),
    Attack("token as Basic", "POST", "/api/v1/clicks", click(), auth="Basic dXNlcjpwYXNz"),
    Attack("token in the query", "GET", "/api/v1/status?token={token}", auth=None),
    Attack("token too short", "GET", "/api/v1/status", auth="Bearer abc", code="unauthorized"),
    # -- a browser's key over TCP (a program that stole one): nothing --
    Attack("browser key flattrs over http", "POST", "/api/v1/clicks", click(), auth="browser"),
    Attack("browser on admin route", "GET", "/api/v1/settings", auth="browser"),
    Attack(
        "browser changes settings",
        "PATCH",
        "/api/v1/settings",
        json_body({"budget_cents": 1}),
        auth="browser",
        code="unauthorized",
    ),
    Attack(
        "browser revokes itself",
        "DELETE",
        "/api/v1/browsers/{browser_id}",
        auth="browser",
        code="unauthorized",
    ),
    Attack(
        "browser unlocks",
        "POST",
        "/api/v1/wallet/lock",
        json_body({}),
        auth="browser",
        code="unauthorized",
    ),
    Attack(
        "browser deposits",
        "POST",
        "/api/v1/deposits",
        json_body(
            {"id": str(uuid.uuid4()), "method": "card", "amount_cents": 100000, "fee_cents": 2030}
        ),
        auth="browser",
        code="unauthorized",
    ),
    # -- pairing --
    Attack("guess a pairing id", "GET", "/api/v1/pairing/" + "A" * 24, auth=None, code="not_found"),
    Attack(
        "approve a code without the admin token",
        "POST",
        "/api/v1/pairings/approve",
        json_body({"code": "123456"}),
        auth=None,
        code="unauthorized",
    ),
    Attack(
        "approve with a browser token",
        "POST",
        "/api/v1/pairings/approve",
        json_body({"code": "123456"}),
        auth="browser",
        code="unauthorized",
    ),
    Attack(
        "pairing over http",
        "POST",
        "/api/v1/pairing",
        json_body({"client": "Chromium on Linux"}),
        auth=None,
        code="not_found",
    ),
    Attack(
        "approve a wrong code",
        "POST",
        "/api/v1/pairings/approve",
        json_body({"code": "000000"}),
        auth="admin",
    ),
    Attack(
        "a pairing with a huge name",
        "POST",
        "/api/v1/pairing",
        json_body({"client": "x" * 70_000}),
        auth=None,
        code="not_found",
    ),
    # -- path tricks --
    Attack("dot-dot to settings", "GET", "/api/v1/clicks/../settings"),
    Attack("encoded dot-dot", "GET", "/api/v1/clicks/%2e%2e/settings"),
    Attack("double slash", "GET", "//api/v1/settings"),
    Attack("NUL in the path", "GET", "/api/v1/settings%00"),
    Attack("upper case", "GET", "/API/V1/STATUS", code="not_found"),
    Attack("a click id that is a path", "DELETE", "/api/v1/clicks/..%2F..%2Fetc%2Fpasswd"),
    Attack("a month that is not one", "GET", "/api/v1/months/2026-13", code="invalid"),
    Attack("GET that would change state", "GET", "/api/v1/wallet/lock"),
    # -- money and weights that are not whole, positive, sane cents --
    *[
        Attack(f"weight {w!r}", "POST", "/api/v1/clicks", click(weight=w), code="invalid")
        for w in (0, 6, -1, 2.5, "3", True, None, 10**30)
    ],
    *[
        Attack(
            f"budget {v!r}",
            "PATCH",
            "/api/v1/settings",
            json_body({"budget_cents": v}),
            auth="admin",
            code="invalid",
        )
        for v in (-500, 0, 199, 500.5, "500", True, None, 10**20)
    ],
    Attack(
        "budget Infinity",
        "PATCH",
        "/api/v1/settings",
        b'{"budget_cents": Infinity}',
        auth="admin",
        code="bad_json",
    ),
    *[
        Attack(
            f"minimum per click {v!r}",
            "PATCH",
            "/api/v1/settings",
            json_body({"min_click_cents": v}),
            auth="admin",
            code="invalid",
        )
        for v in (-1, 0.5, "1")
    ],
    *[
        Attack(
            f"deposit {v!r}",
            "POST",
            "/api/v1/deposits/quote",
            json_body({"method": "card", "amount_cents": v}),
            auth="admin",
            code="invalid",
        )
        for v in (-2000, 0, 20.5, "2000", 10**12)
    ],
    Attack(
        "subscription for 2 months",
        "POST",
        "/api/v1/subscriptions",
        json_body({"creator": "flattr:a", "months": 2}),
        code="invalid",
    ),
    Attack(
        "a javascript: thing",
        "POST",
        "/api/v1/clicks",
        click(url="javascript:alert(1)"),
        code="invalid",
    ),
    Attack(
        "a data: creator",
        "POST",
        "/api/v1/clicks",
        click(creator="payment:data:text/html,x"),
        code="invalid",
    ),
]


def _fingerprint(data: Path) -> dict[str, str]:
    """SHA-256 of every file that holds the person's state."""
    out = {}
    for name in (
        "daemon.sqlite",
        "daemon.sqlite-wal",
        "wallet.mecene",
        "hub/hub.db",
        "hub/hub.db-wal",
    ):
        path = data / name
        out[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"
    return out


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("attack") / "mecene"
    assert mecene(data, "init").returncode == 0
    daemon = start(data, deposit_cents=2000)
    try:
        browser = daemon.pair()
        revoked = daemon.pair()
        browsers = daemon.admin("GET", "/browsers")[1]["browsers"]
        mecene(data, "pair", "revoke", browsers[1]["id"])
        body = {**CLICK, "id": str(uuid.uuid4())}
        assert daemon.request("POST", "/clicks", body, browser)[0] == 201
        admin = (data / "admin.token").read_text()
        yield {
            "daemon": daemon,
            "tokens": {"browser": browser, "revoked": revoked, "admin": admin},
            "browser_id": browsers[0]["id"],
        }
    finally:
        daemon.stop()


def send(target: dict[str, Any], attack: Attack) -> tuple[int, Any]:
    daemon: Daemon = target["daemon"]
    tokens = target["tokens"]

    def fill(text: str) -> str:
        return (
            text.replace("{port}", str(daemon.port))
            .replace("{token}", tokens["browser"])
            .replace("{browser_id}", target["browser_id"])
        )

    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    conn.putrequest(attack.method, fill(attack.path), skip_host=True, skip_accept_encoding=True)
    conn.putheader(
        "Host", fill(attack.host) if attack.host is not None else f"127.0.0.1:{daemon.port}"
    )
    headers = {"Origin": EXTENSION_ORIGIN, **{k: fill(v) for k, v in attack.headers.items()}}
    body = (
        attack.body
        if isinstance(attack.body, bytes) or attack.body is None
        else json_body(attack.body)
    )
    if (
        body is not None
        and "Content-Type" not in attack.headers
        and not any(a.lower() == "content-type" for a in attack.headers)
    ):
        headers["Content-Type"] = "application/json"
    if attack.auth in tokens:
        headers["Authorization"] = f"Bearer {tokens[attack.auth]}"
    elif attack.auth:
        headers["Authorization"] = attack.auth
    for k, v in headers.items():
        if v != "":
            conn.putheader(k, v)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw


def test_there_are_at_least_60_hostile_shapes() -> None:
    assert len(ATTACKS) >= 60
    assert len({a.name for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_a_hostile_request_is_refused_and_changes_nothing(
    target: dict[str, Any], attack: Attack
) -> None:
    data = target["daemon"].data
    before = _fingerprint(data)
    status, body = send(target, attack)
    assert 400 <= status < 500, (status, body)
    if attack.code is not None:
        assert isinstance(body, dict) and body.get("error") == attack.code, body
    assert _fingerprint(data) == before
    # The daemon is still well: its own client still gets its answer.
    assert target["daemon"].request("GET", "/status", token=target["tokens"]["browser"])[0] == 200


# -- the same, on the browsers' channel (as the host relays them) ---------------------
# What a compromised or confused extension could send with a valid browser key.
CHANNEL_ATTACKS: list[tuple[str, dict[str, Any], str]] = [
    ("an admin route", {"method": "GET", "path": "/settings"}, "unknown_message"),
    (
        "approve its own code",
        {"method": "POST", "path": "/pairings/approve", "body": {"code": "123456"}},
        "unknown_message",
    ),
    ("revoke a browser", {"method": "DELETE", "path": "/browsers/{browser_id}"}, "unknown_message"),
    (
        "unlock",
        {"method": "POST", "path": "/wallet/unlock", "body": {"passphrase": "x"}},
        "unknown_message",
    ),
    ("deposit", {"method": "POST", "path": "/deposits", "body": {}}, "unknown_message"),
    (
        "confirm a waiting gift",
        {"method": "POST", "path": "/transfers/{click_id}/confirm", "body": {}},
        "unknown_message",
    ),
    (
        "the dashboard's session",
        {"method": "POST", "path": "/dashboard/session", "body": {"code": "x" * 30}},
        "unknown_message",
    ),
    ("a path outside the API", {"method": "GET", "path": "/../dashboard/"}, "unknown_message"),
    ("a method of its own", {"method": "TRACE", "path": "/status"}, "unknown_message"),
    ("no path", {"method": "GET"}, "unknown_message"),
    *[
        (
            f"weight {w!r}",
            {
                "method": "POST",
                "path": "/clicks",
                "body": {**CLICK, "id": str(uuid.uuid4()), "weight": w},
            },
            "invalid",
        )
        for w in (0, 6, 2.5, "3", True, 10**30)
    ],
    (
        "a javascript: thing",
        {"method": "POST", "path": "/clicks", "body": {**CLICK, "url": "javascript:alert(1)"}},
        "invalid",
    ),
    ("a list for a body", {"method": "POST", "path": "/clicks", "body": [CLICK]}, "invalid"),
    (
        "an unpaired half surrogate",
        {"method": "POST", "path": "/clicks", "body": {**CLICK, "title": "\ud800"}},
        "bad_json",
    ),
    (
        "a gift of 1,000 €",
        {
            "method": "POST",
            "path": "/transfers/quote",
            "body": {"creator": "flattr:a", "cents": 10**9},
        },
        "invalid",
    ),
    ("another key", {"method": "GET", "path": "/status", "key": "y" * 43}, "unauthorized"),
    ("the revoked key", {"method": "GET", "path": "/status", "key": "{revoked}"}, "revoked"),
    (
        "the admin token as a key",
        {"method": "GET", "path": "/status", "key": "{admin}"},
        "unauthorized",
    ),
]


@pytest.mark.parametrize(
    ("name", "message", "code"), CHANNEL_ATTACKS, ids=[a[0] for a in CHANNEL_ATTACKS]
)
def test_a_hostile_message_on_the_channel_is_refused_and_changes_nothing(
    target: dict[str, Any], name: str, message: dict[str, Any], code: str
) -> None:
    daemon: Daemon = target["daemon"]
    tokens = target["tokens"]
    filled = json.loads(
        json.dumps({"id": 1, "key": tokens["browser"], **message})
        .replace("{browser_id}", target["browser_id"])
        .replace("{click_id}", CLICK["id"])
        .replace("{revoked}", tokens["revoked"])
        .replace("{admin}", tokens["admin"])
    )
    before = _fingerprint(daemon.data)
    with Channel(daemon.channel_path) as channel:
        channel.send_raw(frame(filled))
        answer = channel.receive()
    assert 400 <= answer["status"] < 500, answer
    assert answer["body"]["error"] == code, answer
    assert _fingerprint(daemon.data) == before
