"""The local API as the extension uses it: pairing, flattrs, months, subscriptions."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from daemon.browsers.pairing import new_token
from daemon.files import DataDir
from daemon.wallet import Wallet, unb64u
from mecene.keys import thing_url
from mecene.time import FrozenClock
from tests.mecene.test_keys import DIFFERENT_THINGS, SAME_THING
from tests.support.constants import PASSPHRASE
from tests.support.daemons import Api, MakeApi

# -- pairing ---------------------------------------------------------------------


async def pairing(api: Api, client: str = "Firefox", conn: int = 1) -> tuple[str, dict[str, Any]]:
    """A new browser key and its pairing request over the channel."""
    key = new_token()
    status, started = await api.channel("POST", "/pairing", {"client": client}, key, conn)
    assert status == 201, started
    return key, started


async def test_a_browser_pairs_with_its_own_key(make_api: MakeApi) -> None:
    api = await make_api(pair=False)
    key, started = await pairing(api)
    assert len(started["code"]) == 6 and started["code"].isdigit()
    pid = started["pairing_id"]
    assert (await api.channel("GET", f"/pairing/{pid}", key=key))[1]["status"] == "pending"
    # The same key asking again (a popup opened again) gets the same code.
    again = (await api.channel("POST", "/pairing", {"client": "Firefox"}, key))[1]
    assert (again["pairing_id"], again["code"]) == (pid, started["code"])
    # Another key cannot read this pairing.
    assert (await api.channel("GET", f"/pairing/{pid}", key=new_token()))[0] == 404
    pending = await api.call("GET", "/pairings", token="admin", expect=200)
    assert [p["code"] for p in pending["pending"]] == [started["code"]]
    await api.call(
        "POST", "/pairings/approve", {"code": started["code"]}, token="admin", expect=200
    )
    # Approved: no token is handed out; the key is the browser's credential.
    assert await api.channel("GET", f"/pairing/{pid}", key=key) == (200, {"status": "approved"})
    assert (await api.channel("GET", f"/pairing/{pid}", key=key))[0] == 404
    status, out = await api.channel("GET", "/status", key=key)
    assert status == 200 and out["locked"] is False
    # Paired, the key asks to pair again: told so (its lost answer is not a new browser).
    status, out = await api.channel("POST", "/pairing", {"client": "Firefox"}, key)
    assert (status, out["error"]) == (409, "paired_already")


async def test_pairing_is_the_channel_s_only(api: Api) -> None:
    """Pairing over HTTP is gone: a program on the machine cannot start one there."""
    out = await api.call("POST", "/pairing", {"client": "Firefox"}, token=None, expect=404)
    assert out["error"] == "not_found"
    await api.call("GET", "/pairing/abc", token=None, expect=404)
    # Nor does the browser's key count over HTTP: only the admin token does.
    refused = await api.call("GET", "/status", token=f"x{api.token}", expect=401)
    assert refused["error"] == "unauthorized"
    over_http = await api.call(
        "GET", "/status", token=None, headers={"Authorization": f"Bearer {api.token}"}, expect=401
    )
    assert over_http["error"] == "unauthorized"


async def test_denied_and_expired_pairings(make_api: MakeApi, clock: FrozenClock) -> None:
    api = await make_api(pair=False)
    ka, a = await pairing(api, "A", conn=1)
    await api.call("POST", "/pairings/deny", {"code": a["code"]}, token="admin", expect=200)
    got = await api.channel("GET", f"/pairing/{a['pairing_id']}", key=ka)
    assert got == (200, {"status": "denied"})
    kb, b = await pairing(api, "B", conn=2)
    clock.advance(minutes=6)
    got = await api.channel("GET", f"/pairing/{b['pairing_id']}", key=kb)
    assert got == (200, {"status": "expired"})
    await api.call("POST", "/pairings/approve", {"code": b["code"]}, token="admin", expect=404)


@pytest.mark.parametrize(
    "client",
    [
        "Chromium\u202e xunil no",  # a right-to-left override
        "Firefox\u2066 on Linux\u2069",  # a bidi isolate
        "Fire\u200bfox",  # a zero-width space
        "Chromium\ufeff",  # a zero-width no-break space
        "Chromium (code 123456)",  # passes for the code shown beside it
        "12 34 56 Chromium",  # the same code, spaced as it is read out
        "Chromium 1-2-3-4-5-6",
        "\uff23\uff48\uff52\uff4f\uff4d\uff49\uff55\uff4d",  # fullwidth: reads as another
        "Fire\ufb00ox",  # a ligature
        "\ue000 private use",
        "x" * 81,
    ],
)
async def test_a_browser_cannot_disguise_its_name(api: Api, client: str) -> None:
    """Names are shown next to the code in the tray and on the dashboard: one
    that reorders itself, hides characters or carries a code is refused
    (issue 13, point 6; issue 25)."""
    status, refused = await api.channel("POST", "/pairing", {"client": client}, new_token())
    assert (status, refused["error"]) == (400, "invalid")
    assert await api.call("GET", "/pairings", token="admin", expect=200) == {"pending": []}


async def test_ordinary_browser_names_are_kept(api: Api) -> None:
    sent = ["Firefox on Linux", "Chromium 156 on Linux", "Firefox für Lé", "火狐\u2028on  Linux"]
    for n, client in enumerate(sent):
        await pairing(api, client, conn=10 + n)
    pending = await api.call("GET", "/pairings", token="admin", expect=200)
    # Runs of white space, line separators included, are one space.
    assert sorted(p["client"] for p in pending["pending"]) == sorted(
        ["Firefox on Linux", "Chromium 156 on Linux", "Firefox für Lé", "火狐 on Linux"]
    )


async def test_a_flood_of_pairing_requests_cannot_keep_the_browser_out(make_api: MakeApi) -> None:
    """Issue 13, point 6, and issue 25: a local process floods pairing requests
    without pause, each with a new key, over its connections, before and
    after the person's browser asks. The browser's code stays, is approved,
    and the flooder holds one pending code per open connection at most."""
    from daemon.server import CHANNEL_KEY

    api = await make_api(pair=False)
    channel = api.client.server.app[CHANNEL_KEY]
    for i in range(200):
        await pairing(api, f"Firefox {i % 7}", conn=100 + i % 3)
    mine_key, mine = await pairing(api, "Chromium on laptop", conn=1)
    for i in range(200):
        await pairing(api, f"Firefox {i % 7}", conn=100 + i % 3)
    # The flooder closes connections and opens new ones: what it leaves behind yields first.
    for conn in range(1000, 1100):
        await pairing(api, "Firefox 1", conn=conn)
        channel.browsers.pairings.closed(conn)
    pending = (await api.call("GET", "/pairings", token="admin"))["pending"]
    assert "Chromium on laptop" in [p["client"] for p in pending]
    assert len(pending) <= 3 + 1 + 5
    await api.call("POST", "/pairings/approve", {"code": mine["code"]}, token="admin", expect=200)
    done = await api.channel("GET", f"/pairing/{mine['pairing_id']}", key=mine_key)
    assert done == (200, {"status": "approved"})
    assert (await api.channel("GET", "/status", key=mine_key))[0] == 200


async def test_a_browser_key_cannot_approve_or_manage(api: Api) -> None:
    _key, started = await pairing(api, "evil", conn=5)
    for method, path, body in [
        ("POST", "/pairings/approve", {"code": started["code"]}),
        ("GET", "/browsers", None),
        ("PATCH", "/settings", {"budget_cents": 10000}),
        ("POST", "/deposits", {}),
        ("POST", "/wallet/lock", {}),
    ]:
        status, out = await api.channel(method, path, body, api.token)
        assert (status, out["error"]) == (404, "unknown_message"), (path, out)


async def test_a_revoked_browser_is_told_so_at_once(api: Api) -> None:
    await api.call("GET", "/status", expect=200)  # the key is known (and remembered) first
    browsers = (await api.call("GET", "/browsers", token="admin", expect=200))["browsers"]
    assert browsers[0]["last_used_at"] is not None
    await api.call("DELETE", f"/browsers/{browsers[0]['id']}", token="admin", expect=200)
    refused = await api.call("GET", "/status", expect=401)
    assert refused["error"] == "revoked"
    assert "disconnected" in refused["message"]
    # The same key cannot pair again: a reinstalled extension is a new key.
    status, out = await api.channel("POST", "/pairing", {"client": "x"}, api.token)
    assert (status, out["error"]) == (401, "revoked")


async def test_browsers_are_listed_apart(make_api: MakeApi, clock: FrozenClock) -> None:
    """Two pairings of the same browser name (the extension reinstalled): told
    apart by when each was paired and last used, and by their keys' fingerprints."""
    api = await make_api(pair=False)
    first = await api.pair("Chromium on Linux")
    await api.channel("GET", "/status", key=first)
    clock.advance(days=3)
    second = await api.pair("Chromium on Linux")
    clock.advance(minutes=5)
    await api.channel("GET", "/status", key=second)
    browsers = (await api.call("GET", "/browsers", token="admin"))["browsers"]
    assert [b["name"] for b in browsers] == ["Chromium on Linux"] * 2
    assert browsers[0]["created_at"] < browsers[1]["created_at"]
    assert browsers[0]["last_used_at"] < browsers[1]["last_used_at"]
    assert browsers[0]["fingerprint"] != browsers[1]["fingerprint"]
    assert all(len(b["fingerprint"]) == 8 for b in browsers)


async def test_revocation_survives_a_restart(api: Api, make_api: MakeApi) -> None:
    token = api.token
    browsers = (await api.call("GET", "/browsers", token="admin"))["browsers"]
    await api.call("DELETE", f"/browsers/{browsers[0]['id']}", token="admin", expect=200)
    again = await make_api(pair=False)
    status, out = await again.channel("GET", "/status", key=token)
    assert (status, out["error"]) == (401, "revoked")


# -- clicks ------------------------------------------------------------------------


async def test_a_click_is_recorded_and_the_status_follows(api: Api) -> None:
    out = await api.click("https://EXAMPLE.org/post", title="  A  post ")
    click = out["click"]
    assert click["url"] == "https://example.org/post"
    assert click["title"] == "A post"
    assert click["month"] == "2026-10"
    assert out["status"] == {
        "locked": False,
        "month": "2026-10",
        "state": "open",
        "currency": "EUR",
        "budget_cents": 500,
        "balance_cents": None,
        "practice_hub": False,  # no hub at all in this test, so not the embedded one
        "clicks": 1,
        "spend_cents": 500,
        "per_click_cents": 500,
        "given_cents": 0,
    }
    listed = await api.call("GET", "/clicks?month=2026-10", expect=200)
    assert [c["id"] for c in listed["clicks"]] == [click["id"]]


async def test_same_client_id_returns_the_same_click(api: Api) -> None:
    body = {"id": str(uuid.uuid4()), "url": "https://example.org/a", "creator": "flattr:a"}
    first = await api.call("POST", "/clicks", body, expect=201)
    second = await api.call("POST", "/clicks", body, expect=200)
    assert first["click"] == second["click"]
    assert second["status"]["clicks"] == 1
    conflict = await api.call(
        "POST", "/clicks", {**body, "url": "https://example.org/b"}, expect=409
    )
    assert conflict["error"] == "id_conflict"


async def test_one_flattr_per_thing_per_month(api: Api, clock: FrozenClock) -> None:
    first = await api.click("https://example.org/a")
    refused = await api.click("https://EXAMPLE.org:443/a", expect=409)
    assert refused["error"] == "flattr_once"
    assert refused["click"]["id"] == first["click"]["id"]
    clock.set(dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC))
    await api.click("https://example.org/a")  # a new month: allowed again


@pytest.mark.parametrize(("first", "same"), SAME_THING)
async def test_addresses_of_one_article_are_one_thing_through_the_api(
    api: Api, first: str, same: str
) -> None:
    """A raw API client and the extension agree (DESIGN.md, "A thing's URL")."""
    made = await api.click(first)
    refused = await api.click(same, expect=409)
    assert refused["error"] == "flattr_once"
    assert refused["click"]["url"] == made["click"]["url"] == thing_url(same)


@pytest.mark.parametrize(("first", "other"), DIFFERENT_THINGS)
async def test_different_things_stay_different_through_the_api(
    api: Api, first: str, other: str
) -> None:
    await api.click(first)
    await api.click(other, expect=201)


async def test_a_part_of_a_page_is_a_thing_of_its_own(api: Api) -> None:
    """A commenter is flattred for their comment (the page's URL with its
    anchor): not a second flattr of the page, and once like any thing."""
    await api.click("https://example.org/post", creator="flattr:author")
    comment = await api.click("https://example.org/post#comment-7", creator="kofi:dan")
    assert comment["click"]["url"] == "https://example.org/post#comment-7"
    assert comment["status"]["clicks"] == 2
    again = await api.click("https://example.org/post#comment-7", creator="kofi:dan", expect=409)
    assert again["error"] == "flattr_once"
    # An empty fragment is no fragment: that is the page.
    page = await api.click("https://example.org/post#", expect=409)
    assert page["click"]["creator"] == "flattr:author"


async def test_own_creator_keys_cannot_be_flattred(api: Api) -> None:
    await api.call("PATCH", "/settings", {"own_creators": ["github:me"]}, token="admin", expect=200)
    refused = await api.click("https://github.com/me", creator="github:me", expect=409)
    assert refused["error"] == "flattr_owner"


async def test_undo_while_open_then_reflattr(api: Api) -> None:
    out = await api.click("https://example.org/a", weight=3)
    undone = await api.call("DELETE", f"/clicks/{out['click']['id']}", expect=200)
    assert undone["click"]["undone"] is True
    assert undone["status"]["clicks"] == 0
    # The same id again (a late retry of the undone flattr) does not bring it back.
    retry = await api.call(
        "POST",
        "/clicks",
        {"id": out["click"]["id"], "url": "https://example.org/a", "creator": "flattr:alice"},
        expect=200,
    )
    assert retry["click"]["undone"] is True and retry["status"]["clicks"] == 0
    await api.click("https://example.org/a")  # a fresh flattr is allowed
    await api.call("DELETE", f"/clicks/{uuid.uuid4()}", expect=404)


async def test_undo_after_the_month_closed_is_refused(api: Api, clock: FrozenClock) -> None:
    out = await api.click("https://example.org/a")
    clock.set(dt.datetime(2026, 11, 1, 0, 30, tzinfo=dt.UTC))  # 01:30 in Paris: November
    refused = await api.call("DELETE", f"/clicks/{out['click']['id']}", expect=409)
    assert refused["error"] == "month_closed"


async def test_a_clock_moved_back_after_a_month_closed_never_refuses_a_flattr(
    api: Api, clock: FrozenClock, make_api: MakeApi
) -> None:
    """Issue 13: after October closed, the clock went back to October (and the
    daemon started again, as after a reboot): every flattr failed. Issue 26:
    a clock set back must never leave flattrs refused (for months, after a
    clock that had jumped ahead): they go into the open month, and the
    status says what happened and what to do."""
    await api.click("https://example.org/a")
    clock.set(dt.datetime(2026, 11, 1, 0, 30, tzinfo=dt.UTC))  # November in Paris: October closes
    await api.call("GET", "/status")
    clock.jump(dt.datetime(2026, 10, 31, 20, 0, tzinfo=dt.UTC))  # the clock is set back
    api = await make_api()
    taken = await api.click("https://example.org/b")
    assert taken["click"]["month"] == "2026-11"
    status = await api.call("GET", "/status", expect=200)
    assert status["month"] == "2026-11" and status["clicks"] == 1
    assert status["clock"]["state"] == "behind"
    assert status["clock"]["message"].startswith(
        "the computer's clock reads 2026-10, but 2026-11 is open"
    )
    assert "Set the clock right" in status["clock"]["message"]
    clock.set(dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC))  # set right
    assert (await api.click("https://example.org/c"))["click"]["month"] == "2026-11"
    assert (await api.call("GET", "/status", expect=200))["clock"]["state"] == "ok"


async def test_weights_shape_the_split(api: Api) -> None:
    await api.click("https://a.example/1", creator="flattr:a", weight=1)
    await api.click("https://b.example/1", creator="flattr:b", weight=4)
    month = await api.call("GET", "/months/2026-10", expect=200)
    assert month["state"] == "open"
    assert [(a["creator"], a["cents"]) for a in month["allocations"]] == [
        ("flattr:a", 100),
        ("flattr:b", 400),
    ]
    for bad in (0, 6, 2.0, "3", True):
        r = await api.click("https://c.example/1", weight=bad, expect=400)
        assert r["error"] == "invalid"


async def test_invalid_click_bodies_get_clear_errors(api: Api) -> None:
    good = {"id": str(uuid.uuid4()), "url": "https://example.org/", "creator": "flattr:a"}
    cases = [
        {**good, "id": "not-a-uuid"},
        {**good, "url": "javascript:alert(1)"},
        {**good, "creator": "bitcoin:abc"},
        {**good, "creators": ["flattr:ok", "bad key"]},
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "url"},
        [good],
    ]
    for body in cases:
        r = await api.call("POST", "/clicks", body, expect=400)
        assert r["error"] == "invalid" and r["message"]
    assert (await api.call("GET", "/status"))["clicks"] == 0


async def test_a_deposit_method_of_another_type_is_invalid_not_a_crash(api: Api) -> None:
    """Found by the fuzz battery: a list as the method made the membership
    test raise (500) before the type was checked."""
    for method in ([], {"card": 1}, None, 5):
        body = {"method": method, "amount_cents": 2000}
        r = await api.call("POST", "/deposits/quote", body, token="admin", expect=400)
        assert r["error"] == "invalid" and "method is one of" in r["message"]


# -- months ---------------------------------------------------------------------------


def _verify(document: str, signature: str, account: str) -> dict:
    Ed25519PublicKey.from_public_bytes(unb64u(account)).verify(unb64u(signature), document.encode())
    return json.loads(document)


async def test_month_closes_with_a_signed_settlement(
    api: Api, clock: FrozenClock, wallet: Wallet
) -> None:
    await api.click("https://a.example/1", creator="flattr:a")
    await api.click("https://b.example/1", creator="wm:https://wallet.example/b")
    await api.click("https://c.example/1", creator="flattr:a", weight=2)
    clock.set(dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC))
    status = await api.call("GET", "/status", expect=200)
    assert status["month"] == "2026-11" and status["clicks"] == 0
    month = await api.call("GET", "/months/2026-10", expect=200)
    assert month["state"] == "closed" and month["spend_cents"] == 500
    assert [a["cents"] for a in month["allocations"]] == [125, 125, 250]
    doc = _verify(month["settlement"]["document"], month["settlement"]["signature"], wallet.account)
    assert doc == {
        "v": 1,
        "account": wallet.account,
        "month": "2026-10",
        "currency": "EUR",
        "spend_cents": 500,
        "private": False,
        "allocations": [
            {"creator": "flattr:a", "url": "https://a.example/1", "cents": 125},
            {"creator": "wm:https://wallet.example/b", "url": "https://b.example/1", "cents": 125},
            {"creator": "flattr:a", "url": "https://c.example/1", "cents": 250},
        ],
    }
    # Canonical JSON: sorted keys, no spaces.
    assert month["settlement"]["document"] == json.dumps(doc, sort_keys=True, separators=(",", ":"))


async def test_months_are_closed_in_order_even_months_later(
    api: Api, clock: FrozenClock, make_api: MakeApi
) -> None:
    await api.click("https://a.example/1")
    sub = {"creator": "flattr:sub", "url": "https://sub.example/", "months": 3}
    await api.call("POST", "/subscriptions", sub, expect=201)
    # The daemon is off until February: a restart then closes Oct, Nov, Dec, Jan in order.
    clock.set(dt.datetime(2027, 2, 10, 8, 0, tzinfo=dt.UTC))
    later = await make_api()
    months = (await later.call("GET", "/months", expect=200))["months"]
    assert [(m["month"], m["state"]) for m in months] == [
        ("2027-02", "open"),
        ("2027-01", "closed"),
        ("2026-12", "closed"),
        ("2026-11", "closed"),
        ("2026-10", "closed"),
    ]
    closed_at = [m["closed_at"] for m in reversed(months[1:])]
    assert closed_at == sorted(closed_at)
    spends = {m["month"]: m["spend_cents"] for m in months}
    # Oct: the click and the subscription; Nov and Dec: the subscription alone; Jan: nothing.
    assert spends == {"2026-10": 500, "2026-11": 500, "2026-12": 500, "2027-01": 0, "2027-02": None}
    dec = await later.call("GET", "/months/2026-12", expect=200)
    assert dec["allocations"] == [
        {"creator": "flattr:sub", "url": "https://sub.example/", "cents": 500}
    ]


async def test_month_boundary_follows_the_persons_time_zone(api: Api, clock: FrozenClock) -> None:
    clock.set(dt.datetime(2026, 10, 31, 22, 30, tzinfo=dt.UTC))  # 23:30 in Paris (CET)
    assert (await api.click("https://a.example/1"))["click"]["month"] == "2026-10"
    clock.set(dt.datetime(2026, 10, 31, 23, 30, tzinfo=dt.UTC))  # 00:30 on 1 November in Paris
    assert (await api.click("https://a.example/2"))["click"]["month"] == "2026-11"
    assert (await api.call("GET", "/months/2026-10"))["state"] == "closed"


async def test_private_settlement_names_creators_only(
    api: Api, clock: FrozenClock, wallet: Wallet
) -> None:
    await api.call("PATCH", "/settings", {"private": True}, token="admin", expect=200)
    await api.click("https://a.example/1", creator="flattr:a")
    await api.click("https://a.example/2", creator="flattr:a")
    await api.click("https://b.example/1", creator="flattr:b")
    clock.set(dt.datetime(2026, 11, 5, tzinfo=dt.UTC))
    month = await api.call("GET", "/months/2026-10", expect=200)
    doc = _verify(month["settlement"]["document"], month["settlement"]["signature"], wallet.account)
    assert doc["private"] is True
    # 500 / 3 = 166 r 2: the two extra cents go to the two earliest clicks, both flattr:a's.
    assert doc["allocations"] == [
        {"creator": "flattr:a", "cents": 334},
        {"creator": "flattr:b", "cents": 166},
    ]
    assert "example" not in month["settlement"]["document"]


async def test_empty_month_spends_nothing_or_goes_to_charity(api: Api, clock: FrozenClock) -> None:
    clock.set(dt.datetime(2026, 11, 5, tzinfo=dt.UTC))
    await api.call("GET", "/status", expect=200)
    assert (await api.call("GET", "/months/2026-10"))["spend_cents"] == 0
    await api.call("PATCH", "/settings", {"charity": "liberapay:good"}, token="admin", expect=200)
    clock.set(dt.datetime(2026, 12, 5, tzinfo=dt.UTC))
    nov = await api.call("GET", "/months/2026-11", expect=200)
    assert nov["allocations"] == [{"creator": "liberapay:good", "url": None, "cents": 500}]


async def test_minimum_per_click_and_cap_through_the_api(api: Api) -> None:
    await api.call(
        "PATCH", "/settings", {"min_click_cents": 100, "cap_cents": 800}, token="admin", expect=200
    )
    for i in range(7):
        await api.click(f"https://a.example/{i}")
    status = await api.call("GET", "/status")
    assert status["spend_cents"] == 700 and status["per_click_cents"] == 100
    for i in range(7, 10):
        status = (await api.click(f"https://a.example/{i}"))["status"]
    assert status["spend_cents"] == 800 and status["per_click_cents"] == 80


async def test_unknown_month_and_bad_month_syntax(api: Api) -> None:
    assert (await api.call("GET", "/months/2020-01", expect=404))["error"] == "not_found"
    await api.call("GET", "/months/2026-13", expect=400)
    await api.call("GET", "/clicks?month=last", expect=400)


# -- subscriptions ----------------------------------------------------------------------


async def test_subscription_places_a_click_each_month_until_cancelled(
    api: Api, clock: FrozenClock
) -> None:
    out = await api.call(
        "POST",
        "/subscriptions",
        {"creator": "fediverse:@alice@example.social", "months": 6},
        expect=201,
    )
    sub = out["subscription"]
    assert (sub["first_month"], sub["last_month"], sub["state"]) == ("2026-10", "2027-03", "active")
    clicks = (await api.call("GET", "/clicks"))["clicks"]
    assert [(c["creator"], c["auto"]) for c in clicks] == [
        ("fediverse:@alice@example.social", True)
    ]
    clock.set(dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
    assert len((await api.call("GET", "/clicks"))["clicks"]) == 1
    await api.call("DELETE", f"/subscriptions/{sub['id']}", expect=200)
    clock.set(dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    assert (await api.call("GET", "/clicks"))["clicks"] == []
    subs = (await api.call("GET", "/subscriptions"))["subscriptions"]
    assert subs[0]["state"] == "cancelled"


async def test_paused_subscriptions_place_no_clicks_until_resumed(
    api: Api, clock: FrozenClock
) -> None:
    """Pause (the tray's and the dashboard's): no automatic click while it
    lasts, the month's click placed on resume."""
    await api.call("PATCH", "/settings", {"subscriptions_paused": True}, token="admin", expect=200)
    await api.call("POST", "/subscriptions", {"creator": "flattr:a", "months": 3}, expect=201)
    assert (await api.call("GET", "/clicks"))["clicks"] == []
    clock.set(dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
    assert (await api.call("GET", "/clicks"))["clicks"] == []
    october = await api.call("GET", "/months/2026-10")
    assert october["allocations"] == []  # closed while paused: no automatic click
    await api.call("PATCH", "/settings", {"subscriptions_paused": False}, token="admin", expect=200)
    clicks = (await api.call("GET", "/clicks"))["clicks"]
    assert [(c["creator"], c["auto"], c["month"]) for c in clicks] == [
        ("flattr:a", True, "2026-11")
    ]
    bad = await api.call("PATCH", "/settings", {"subscriptions_paused": "yes"}, token="admin")
    assert bad["error"] == "invalid"


async def test_subscription_does_not_double_a_manual_flattr(api: Api) -> None:
    await api.click("https://blog.example/", creator="domain:blog.example")
    await api.call(
        "POST",
        "/subscriptions",
        {"creator": "domain:blog.example", "url": "https://blog.example/", "months": 3},
        expect=201,
    )
    assert len((await api.call("GET", "/clicks"))["clicks"]) == 1


async def test_a_subscription_keeps_its_weight_across_a_month_end(
    api: Api, clock: FrozenClock
) -> None:
    """December's things flattred at weight 3 and 2, then subscribed: their
    automatic flattrs in January are at 3 and 2 (they came out at 1), and the
    split counts them so. A weight given when subscribing wins; a changed
    weight holds from the next month's flattr."""
    await api.click("https://a.example/x", creator="flattr:a", weight=3)
    await api.click("https://b.example/y", creator="flattr:b", weight=2)
    subs = []
    for creator, url in (("flattr:a", "https://a.example/x"), ("flattr:b", "https://b.example/y")):
        body = {"creator": creator, "url": url, "months": 3}
        subs.append((await api.call("POST", "/subscriptions", body, expect=201))["subscription"])
    assert [s["weight"] for s in subs] == [3, 2]  # the thing's weight this month
    told = await api.call(
        "POST", "/subscriptions", {"creator": "flattr:c", "months": 3, "weight": 5}, expect=201
    )
    assert told["subscription"]["weight"] == 5
    await api.call("PATCH", f"/subscriptions/{subs[1]['id']}", {"weight": 4}, expect=200)
    clock.set(dt.datetime(2026, 11, 2, tzinfo=dt.UTC))  # October closed, November open
    clicks = (await api.call("GET", "/clicks"))["clicks"]
    assert sorted((c["creator"], c["weight"], c["auto"]) for c in clicks) == [
        ("flattr:a", 3, True),
        ("flattr:b", 4, True),
        ("flattr:c", 5, True),
    ]
    october = await api.call("GET", "/months/2026-10")
    shares = {a["creator"]: a["cents"] for a in october["allocations"]}
    assert shares["flattr:a"] > shares["flattr:b"]  # 3 against 2: what was flattred
    status = await api.call("GET", "/status")
    assert status["per_click_cents"] == 500 // 12  # weights 3 + 4 + 5


async def test_the_month_close_log_counts_what_was_paid_even_as_tokens(
    api: Api, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An unlinkable month that paid 3 things of 2 creators was logged as
    "split between 0 creators' things": its document names none."""
    await api.call("PATCH", "/settings", {"unlinkable": True}, token="admin", expect=200)
    await api.click("https://a.example/1", creator="flattr:a")
    await api.click("https://a.example/2", creator="flattr:a")
    await api.click("https://b.example/1", creator="flattr:b")
    with caplog.at_level(logging.INFO, "mecene"):
        clock.set(dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
        await api.call("GET", "/status")
    said = [r.getMessage() for r in caplog.records if "closed:" in r.getMessage()]
    assert said == [
        "month 2026-10 closed: 5.00 € split between 3 things of 2 creators (unlinkable: as tokens)"
    ]


async def test_one_subscription_per_thing_extended_not_doubled(api: Api) -> None:
    """A second Subscribe for the same thing is the first one, not a second;
    Extend adds months after its last; a cancelled one cannot be extended,
    and subscribing again makes a new one."""
    body = {"creator": "flattr:a", "url": "https://a.example/x", "months": 3}
    first = (await api.call("POST", "/subscriptions", body, expect=201))["subscription"]
    again = await api.call("POST", "/subscriptions", {**body, "months": 12}, expect=200)
    assert again["subscription"] == first
    creator_only = {"creator": "flattr:a", "months": 3}  # the creator, not this thing: another
    await api.call("POST", "/subscriptions", creator_only, expect=201)
    await api.call("POST", "/subscriptions", creator_only, expect=200)
    assert len((await api.call("GET", "/subscriptions"))["subscriptions"]) == 2
    path = f"/subscriptions/{first['id']}"
    longer = (await api.call("PATCH", path, {"extend": 6}, expect=200))["subscription"]
    assert (longer["first_month"], longer["last_month"]) == ("2026-10", "2027-06")
    for bad in ({}, {"extend": 4}, {"extend": "3"}, {"weight": 0}, {"weight": 6}, {"x": 1}):
        assert (await api.call("PATCH", path, bad, expect=400))["error"] == "invalid"
    await api.call("PATCH", f"/subscriptions/{uuid.uuid4()}", {"extend": 3}, expect=404)
    await api.call("DELETE", path, expect=200)
    over = await api.call("PATCH", path, {"extend": 3}, expect=409)
    assert over["error"] == "subscription_over" and "subscribe again" in over["message"]
    new = (await api.call("POST", "/subscriptions", body, expect=201))["subscription"]
    assert new["id"] != first["id"] and new["weight"] == 1
    clicks = (await api.call("GET", "/clicks"))["clicks"]
    assert len([c for c in clicks if c["url"] == "https://a.example/x"]) == 1


async def test_subscription_months_must_be_3_6_or_12(api: Api) -> None:
    for months in (1, 4, 24, "3", 3.0):
        await api.call(
            "POST", "/subscriptions", {"creator": "flattr:a", "months": months}, expect=400
        )


async def test_an_undone_automatic_click_is_not_placed_again(api: Api, make_api: MakeApi) -> None:
    await api.call("POST", "/subscriptions", {"creator": "flattr:a", "months": 3}, expect=201)
    click = (await api.call("GET", "/clicks"))["clicks"][0]
    await api.call("DELETE", f"/clicks/{click['id']}", expect=200)
    again = await make_api()
    assert (await again.call("GET", "/clicks"))["clicks"] == []


# -- locked wallet ---------------------------------------------------------------------


async def test_locked_daemon_refuses_flattrs_until_unlocked(
    make_api: MakeApi, data_dir: DataDir
) -> None:
    api = await make_api(locked=True)
    status = await api.call("GET", "/status", expect=200)
    assert status["locked"] is True
    assert (await api.click("https://a.example/", expect=423))["error"] == "locked"
    wrong = await api.call(
        "POST", "/wallet/unlock", {"passphrase": "nope nope"}, token="admin", expect=401
    )
    assert wrong["error"] == "wrong_passphrase"
    await api.call("POST", "/wallet/unlock", {"passphrase": PASSPHRASE}, token="admin", expect=200)
    await api.click("https://a.example/")
    await api.call("POST", "/wallet/lock", {}, token="admin", expect=200)
    assert (await api.call("GET", "/status"))["locked"] is True


async def test_settings_round_trip_and_validation(api: Api, data_dir: DataDir) -> None:
    got = await api.call("GET", "/settings", token="admin", expect=200)
    assert got["settings"]["budget_cents"] == 500
    await api.call("PATCH", "/settings", {"budget_cents": 1200}, token="admin", expect=200)
    assert Wallet.open(data_dir.wallet, PASSPHRASE).settings.budget_cents == 1200
    for bad in (
        {"budget_cents": 150},
        {"budget_cents": 2.5},
        {"budget_cents": -5},
        {"budget_cents": "500"},
        {"cap_cents": 100},
        {"time_zone": "Nowhere/City"},
        {},
        {"budget_cents": 10**12},
    ):
        await api.call("PATCH", "/settings", bad, token="admin", expect=400)
    assert (await api.call("GET", "/status"))["budget_cents"] == 1200


async def test_subscription_can_be_cancelled_with_the_id_in_the_body(api: Api) -> None:
    sub = (
        await api.call("POST", "/subscriptions", {"creator": "flattr:a", "months": 3}, expect=201)
    )["subscription"]
    out = await api.call("DELETE", "/subscriptions", {"id": sub["id"]}, expect=200)
    assert out["subscription"]["state"] == "cancelled"
    await api.call("DELETE", "/subscriptions", {"id": "nope"}, expect=400)


async def test_pairing_says_how_long_its_code_stays_valid(api: Api) -> None:
    key, started = await pairing(api, "Firefox on Linux")
    assert started["expires_in"] == 300
    api.clock.advance(seconds=100)
    polled = await api.channel("GET", f"/pairing/{started['pairing_id']}", key=key)
    assert polled == (200, {"status": "pending", "expires_in": 200})
    pending = await api.call("GET", "/pairings", token="admin", expect=200)
    assert [(p["client"], p["expires_in"]) for p in pending["pending"]] == [
        ("Firefox on Linux", 200)
    ]


async def test_whether_creators_have_joined_comes_from_the_hub_s_whole_list(api: Api) -> None:
    from daemon.creators.policy import Joined
    from daemon.server import SERVICE

    unknown = await api.call("GET", "/creators?key=flattr:alice&key=domain:example.org", expect=200)
    assert unknown == {
        "creators": [
            {"key": "flattr:alice", "joined": None},
            {"key": "domain:example.org", "joined": None},
        ],
        "escrow_months": None,
        "list_at": None,
        "unlinkable": False,
    }
    # With the setting on, the popup is told so: held money then waits for good.
    await api.call("PATCH", "/settings", {"unlinkable": True}, token="admin", expect=200)
    on = await api.call("GET", "/creators?key=flattr:alice", expect=200)
    assert on["unlinkable"] is True
    service = api.client.server.app[SERVICE]
    service.creators.joined = Joined(frozenset({"flattr:alice"}), 12, api.clock.now())
    known = await api.call("GET", "/creators?key=flattr:alice&key=domain:example.org", expect=200)
    assert [c["joined"] for c in known["creators"]] == [True, False]
    assert known["escrow_months"] == 12
    for bad in ("", "?key=nonsense", "?" + "&".join(["key=flattr:a"] * 65)):
        out = await api.call("GET", f"/creators{bad}", expect=400)
        assert out["error"] == "invalid"
    await api.call("GET", "/creators?key=flattr:alice", token=None, expect=401)
