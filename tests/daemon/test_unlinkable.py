"""Unlinkable contributions, the daemon against a real hub application
(issue 17; daemon/unlinkable/): a month closed with the setting on is
settled as its spend alone, its tokens issued, written down and redeemed to
each creator over the window; and the hub then holds no row that ties the
person's account to a creator they paid."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import uuid
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

import hub.tokens as hub_tokens
from daemon.hublink import HubUnreachable
from daemon.unlinkable.anonymous import WITHOUT_A_RELAY
from hub.ledger import Escrow, Tokens
from hub.service import Hub
from mecene import tokens, tokenwire
from mecene.encoding import b64u
from mecene.time import FrozenClock, timestamp
from tests.support.daemons import Person, funded_with_clicks, passes
from tests.support.hubs import rows_tying

NOV = "2026-11"
AFTER_NOVEMBER = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
CREATORS = ["domain:example.org", "domain:other.example", "domain:third.example"]


@pytest.fixture(scope="module")
def key_pool() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(9)]


@pytest.fixture(autouse=True)
def pooled_keys(monkeypatch: pytest.MonkeyPatch, key_pool: list[rsa.RSAPrivateKey]) -> None:
    """The hub's nine keys a month, made once for the module."""
    pool = itertools.cycle(key_pool)
    monkeypatch.setattr(hub_tokens, "_make_key", lambda: next(pool))


async def unlinkable_month(world: dict[str, Any], window: float) -> tuple[Person, Hub, Any]:
    person: Person = world["person"]
    settings = await person.call("PATCH", "/settings", {"unlinkable": True})
    assert settings["settings"]["unlinkable"] is True
    await funded_with_clicks(person, CREATORS)
    person.link.tokens.window = window
    world["clock"].set(AFTER_NOVEMBER)
    assert (await person.call("GET", "/status"))["month"] == "2026-12"  # November closes
    return person, world["hub"], person.link


async def test_an_unlinkable_month_reaches_its_creators_and_no_row_ties_them_to_the_person(
    world: dict[str, Any],
) -> None:
    person, hub, link = await unlinkable_month(world, window=0.0)
    await passes(link)
    month = await person.call("GET", f"/months/{NOV}")
    assert (month["state"], month["unlinkable"]) == ("settled", True), month
    shares = {a["creator"]: a["cents"] for a in month["allocations"]}
    assert sorted(shares) == sorted(CREATORS) and sum(shares.values()) == month["spend_cents"]
    # Whole tokens of one value; each creator's share is its tokens'.
    assert month["spend_cents"] % tokens.DENOMINATION == 0
    count = month["spend_cents"] // tokens.DENOMINATION
    assert all(c % tokens.DENOMINATION == 0 for c in shares.values())
    # Said where the money is: the hub's list of who has joined names none
    # of them, so the tokens are held for creators not on Mécène yet (they
    # read "delivered").
    spend = month["spend_cents"]
    assert month["tokens"] == {
        "redeemed": {"tokens": count, "cents": spend, "held_tokens": count, "held_cents": spend}
    }
    # What the hub was sent: the spend, and no allocation.
    sent = month["settlement"]["document"]
    assert '"allocations":[]' in sent and '"unlinkable":true' in sent
    assert not any(c in sent for c in CREATORS)

    await hub.run_payouts()
    assert await hub.balance_of(Tokens(NOV)) == 0
    for creator, cents in shares.items():
        assert await hub.balance_of(Escrow(creator)) == cents  # nobody proved these keys

    wallet_account = link.service.session.require_wallet().account
    assert await rows_tying(hub.engine, wallet_account, CREATORS) == []


async def test_without_a_relay_the_daemon_says_once_what_the_hub_sees(
    world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    person, _hub, link = await unlinkable_month(world, window=0.0)
    with caplog.at_level(logging.WARNING, logger="mecene.tokens"):
        await passes(link)
        await passes(link)
    month = await person.call("GET", f"/months/{NOV}")
    assert set(month["tokens"]) == {"redeemed"}
    said = [r.getMessage() for r in caplog.records if r.getMessage() == WITHOUT_A_RELAY]
    assert len(said) == 1
    assert (await person.call("GET", "/hub"))["hub"]["relay"] is None


async def test_tokens_are_redeemed_over_the_window_not_at_once(world: dict[str, Any]) -> None:
    person, _hub, link = await unlinkable_month(world, window=600.0)
    clock: FrozenClock = world["clock"]
    await passes(link)
    month = await person.call("GET", f"/months/{NOV}")
    ready = month["tokens"].get("ready", {"tokens": 0})["tokens"]
    total = sum(v["tokens"] for v in month["tokens"].values())
    assert ready >= total - 1  # a token may draw a time of 0 s; not all of them
    times = await link.service.store.read(
        lambda db: [r[0] for r in db.execute("SELECT redeem_at FROM unlinkable_tokens")]
    )
    assert len(set(times)) == len(times)  # each its own moment
    horizon = AFTER_NOVEMBER + dt.timedelta(seconds=600)
    assert all(t <= timestamp(horizon) for t in times)
    # A daemon that runs through the window redeems each in its turn.
    at = AFTER_NOVEMBER
    while at <= horizon:
        at += dt.timedelta(seconds=30)
        clock.set(at)
        await passes(link)
    month = await person.call("GET", f"/months/{NOV}")
    assert set(month["tokens"]) == {"redeemed"}


async def test_a_daemon_that_slept_spreads_its_overdue_tokens_over_a_fresh_window(
    world: dict[str, Any],
) -> None:
    """Issue 27, point 4: stopped or asleep through the window, the daemon
    does not send every overdue token at once: each gets a new moment in a
    fresh window, and they go one by one from there."""
    person, _hub, link = await unlinkable_month(world, window=600.0)
    clock: FrozenClock = world["clock"]
    await passes(link)
    woke = AFTER_NOVEMBER + dt.timedelta(hours=5)
    clock.set(woke)
    await passes(link)
    month = await person.call("GET", f"/months/{NOV}")
    redeemed = month["tokens"].get("redeemed", {"tokens": 0})["tokens"]
    assert redeemed <= 1  # at most one whose first moment was 0 s
    times = await link.service.store.read(
        lambda db: [
            r[0]
            for r in db.execute("SELECT redeem_at FROM unlinkable_tokens WHERE state = 'ready'")
        ]
    )
    stamp = timestamp  # with its microseconds, as the rows have them: compared as text
    outside = [t for t in times if not stamp(woke) <= t <= stamp(woke + dt.timedelta(seconds=600))]
    assert times and not outside, (stamp(woke), outside)
    assert len(set(times)) == len(times)
    at = woke
    while at <= woke + dt.timedelta(seconds=600):
        at += dt.timedelta(seconds=30)
        clock.set(at)
        await passes(link)
    month = await person.call("GET", f"/months/{NOV}")
    assert set(month["tokens"]) == {"redeemed"}


async def test_an_answer_lost_after_issuance_or_redemption_loses_no_token_and_spends_none_twice(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon dies right after the hub signed (before it wrote the
    signatures down), and every redemption's answer is lost once (the hub
    took the token; the daemon never heard): asking again gets the same
    signatures, and the same token to the same creator is answered again,
    not counted twice."""
    person: Person = world["person"]
    hub: Hub = world["hub"]
    link = person.link
    store = link.service.store
    original_write = store.write
    crashes = {"ready": 1}

    async def dying_write(fn: Any, **kw: Any) -> Any:
        if crashes.get(getattr(fn, "__name__", ""), 0) > 0:
            crashes[fn.__name__] -= 1
            raise RuntimeError("the daemon died here")
        return await original_write(fn, **kw)

    issuances: list[int] = []
    original_call = link.call

    async def counted_call(method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, data = await original_call(method, path, body, **kw)
        if path == "/v1/tokens":
            issuances.append(status)
        return status, data

    real_request = link.tokens.anonymous.request
    lost: set[str] = set()

    async def answer_lost(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        out = await real_request(method, path, body)
        if path == "/v1/tokens/redeem" and body["token"] not in lost:
            lost.add(body["token"])
            raise TimeoutError("the answer never came")
        return out

    monkeypatch.setattr(store, "write", dying_write)
    monkeypatch.setattr(link, "call", counted_call)
    monkeypatch.setattr(link.tokens.anonymous, "request", answer_lost)
    # The hub link's own task may meet the crash first: either way it happens once.
    await unlinkable_month(world, window=0.0)
    for _ in range(3):
        with contextlib.suppress(RuntimeError):
            await passes(link)
    assert crashes["ready"] == 0
    assert issuances == [201, 200]  # asked again after the crash: the same answer
    month = await person.call("GET", f"/months/{NOV}")
    assert set(month["tokens"]) == {"ready"}  # every redemption's answer was lost once
    world["clock"].set(AFTER_NOVEMBER + dt.timedelta(hours=2))
    await passes(link)  # overdue by then: spread over a fresh window (of 0 s here)
    await passes(link)
    month = await person.call("GET", f"/months/{NOV}")
    assert set(month["tokens"]) == {"redeemed"}
    count = month["tokens"]["redeemed"]["tokens"]
    assert len(lost) == count
    async with hub.engine.connect() as conn:
        spent = await conn.scalar(sa.select(sa.func.count()).select_from(hub_tokens.spent_tokens))
        issued = await conn.scalar(sa.select(hub_tokens.token_issues.c.tokens))
    assert spent == issued == count  # each token once: none lost, none twice
    await hub.run_payouts()
    assert await hub.balance_of(Tokens(NOV)) == 0


async def test_a_direct_transfer_goes_as_tokens_too(world: dict[str, Any]) -> None:
    person: Person = world["person"]
    hub: Hub = world["hub"]
    await person.call("PATCH", "/settings", {"unlinkable": True})
    await funded_with_clicks(person, [])
    person.link.tokens.window = 0.0
    body = {
        "id": str(uuid.uuid4()),
        "creator": "domain:gift.example",
        "cents": 735,
        "url": "https://gift.example/film",
    }
    # Not a whole number of tokens: said before anything is recorded.
    for path in ("/transfers/quote", "/transfers"):
        out = await person.call(
            "POST",
            path,
            body if path == "/transfers" else {"creator": body["creator"], "cents": 735},
            400,
        )
        assert "a whole number of 0.10 € tokens" in out["message"], out
    quote = await person.call(
        "POST", "/transfers/quote", {"creator": body["creator"], "cents": 730}
    )
    assert quote["fee_cents"] == 73  # a cent a token
    body["cents"] = 730
    await person.link.tokens.pin_due()  # as the daemon's hourly round does
    # The daemon holds no tokens yet: the gift waits for tokens bought at a
    # moment of their own (a pass; at once here), never asked for now.
    out = (await person.call("POST", "/transfers", body, 202))["transfer"]
    assert (out["state"], out["error"], out["url"]) == ("sending", "buying_tokens", None)
    async with hub.engine.connect() as conn:
        assert (
            await conn.scalar(sa.select(sa.func.count()).select_from(hub_tokens.token_issues)) == 0
        )
    await passes(person.link)  # two batches bought, the gift paid, its tokens redeemed
    given = (await person.call("GET", "/transfers"))["transfers"]
    assert [(t["id"], t["state"]) for t in given] == [(body["id"], "given")]
    month = hub.month()
    async with hub.engine.connect() as conn:
        spent = (
            await conn.execute(
                sa.select(hub_tokens.spent_tokens.c.creator, hub_tokens.spent_tokens.c.cents)
            )
        ).all()
        issues = (
            await conn.execute(
                sa.select(hub_tokens.token_issues.c.ref, hub_tokens.token_issues.c.cents)
            )
        ).all()
    # What the hub was asked: two batches of 5 €, named after nothing; not 7.30 €.
    assert sorted(c for _r, c in issues) == [500, 500]
    assert all(r.startswith("transfer:pool-") and body["id"] not in r for r, _c in issues)
    assert [c for _k, c in spent] == [tokens.DENOMINATION] * 73
    assert {k for k, _c in spent} == {"domain:gift.example"}
    hub_view = (await person.call("GET", "/hub"))["hub"]
    assert hub_view["gift_tokens_cents"] == 270  # what the batches left, for the next gift

    # The next gift is paid from them at once: the hub hears nothing of it.
    async def records() -> list[tuple[str, int]]:
        async with hub.engine.connect() as conn:
            return sorted(
                map(tuple, await conn.execute(sa.text("SELECT slot, version FROM records")))
            )

    before = await records()
    second = {"id": str(uuid.uuid4()), "creator": "domain:other.example", "cents": 200}
    out = (await person.call("POST", "/transfers", second, 201))["transfer"]
    assert out["state"] == "given"
    await passes(person.link)
    # Not even a record is written then: its moment would be the gift's.
    assert await records() == before
    world["clock"].advance(minutes=61)
    await passes(person.link)  # within the hour, with whatever else changed
    assert await records() != before
    async with hub.engine.connect() as conn:
        assert (
            await conn.scalar(sa.select(sa.func.count()).select_from(hub_tokens.token_issues)) == 2
        )
        to_other = await conn.scalar(
            sa.select(sa.func.sum(hub_tokens.spent_tokens.c.cents)).where(
                hub_tokens.spent_tokens.c.creator == "domain:other.example"
            )
        )
    assert to_other == 200
    await hub.run_payouts()
    assert await hub.balance_of(Escrow("domain:gift.example")) == 730
    assert await hub.balance_of(Tokens(month)) == 70  # the pool's 7 tokens, held
    status = await person.call("GET", "/status")
    assert status["balance_cents"] == 2000 - 1000
    assert (await person.call("GET", "/hub"))["hub"]["gift_tokens_cents"] == 70
    wallet_account = person.link.service.session.require_wallet().account
    assert await rows_tying(hub.engine, wallet_account, ["gift.example", "other.example"]) == []


async def test_a_transfer_caught_by_the_month_end_keeps_its_tokens_apart_from_the_month_s(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gift made in November's last minute (UTC) while the hub cannot be
    reached for tokens: the batch bought for it is blinded with November's
    keys and waits. The month then ends and is settled as tokens too. The
    month's spend and each batch go to the hub as requests of their own;
    everything is redeemed, and the month's view shows the month's shares
    alone."""
    person: Person = world["person"]
    hub: Hub = world["hub"]
    clock: FrozenClock = world["clock"]
    link = person.link
    link.tokens.window = 0.0
    await person.call("PATCH", "/settings", {"unlinkable": True})
    await funded_with_clicks(person, CREATORS)
    original_call = link.call
    down = {"on": True}

    async def unreachable_for_gifts(method: str, path: str, body: Any = None, **kw: Any) -> Any:
        if down["on"] and path == "/v1/tokens" and "transfer" in (body or {}):
            raise HubUnreachable("the hub at … is unreachable (ClientConnectorError)")
        return await original_call(method, path, body, **kw)

    monkeypatch.setattr(link, "call", unreachable_for_gifts)
    clock.set(dt.datetime(2026, 11, 30, 23, 59, 30, tzinfo=dt.UTC))
    await link.tokens.pin_due()  # as its hourly round did in November
    gift = {"id": str(uuid.uuid4()), "creator": "domain:gift.example", "cents": 730}
    out = (await person.call("POST", "/transfers", gift, 202))["transfer"]  # accepted, waiting
    assert out["state"] == "sending", out
    # A pass buys a batch for it (and, the person's November having ended in
    # their time zone, sends the month, which the hub asks back once November
    # has ended everywhere; done before the clock moves, so that the hub's
    # wait counts from now). The hub cannot be reached for the batch.
    await link.sync_once()
    blinded = await link.service.store.read(
        lambda db: db.execute(
            "SELECT month, count(*) FROM unlinkable_tokens WHERE transfer_id LIKE 'pool-%' "
            "AND state = 'blinded' GROUP BY month"
        ).fetchall()
    )
    assert [tuple(r) for r in blinded] == [(NOV, 50)]

    clock.set(AFTER_NOVEMBER)
    assert (await person.call("GET", "/status"))["month"] == "2026-12"  # November closes
    await passes(link)  # November settles and its tokens go; the batch still cannot
    month = await person.call("GET", f"/months/{NOV}")
    assert (month["state"], month["unlinkable"]) == ("settled", True), month
    assert set(month["tokens"]) == {"redeemed"}, month["tokens"]
    assert month["tokens"]["redeemed"]["cents"] == month["spend_cents"]
    assert sorted(a["creator"] for a in month["allocations"]) == sorted(CREATORS)

    down["on"] = False
    clock.set(AFTER_NOVEMBER + dt.timedelta(minutes=5))
    await passes(link)  # November's batch, then December's; the gift paid
    await passes(link)  # its tokens' redemptions (a window of 0 s here)
    given = await person.call("GET", "/transfers")
    assert [(t["id"], t["state"]) for t in given["transfers"]] == [(gift["id"], "given")]
    async with hub.engine.connect() as conn:
        spent = (
            await conn.execute(
                sa.select(
                    hub_tokens.spent_tokens.c.creator, sa.func.sum(hub_tokens.spent_tokens.c.cents)
                ).group_by(hub_tokens.spent_tokens.c.creator)
            )
        ).all()
        issues = (
            await conn.execute(
                sa.select(
                    hub_tokens.token_issues.c.month,
                    hub_tokens.token_issues.c.ref,
                    hub_tokens.token_issues.c.cents,
                )
            )
        ).all()
    paid = dict(spent)
    assert paid.pop("domain:gift.example") == 730
    assert sum(paid.values()) == month["spend_cents"]
    assert sorted((m, r.split("-")[0], c) for m, r, c in issues) == [
        (NOV, "month:2026", month["spend_cents"]),
        (NOV, "transfer:pool", 500),
        ("2026-12", "transfer:pool", 500),
    ]
    month = await person.call("GET", f"/months/{NOV}")
    assert month["tokens"]["redeemed"]["cents"] == month["spend_cents"]  # not the gift's
    await hub.run_payouts()
    assert await hub.balance_of(Tokens(NOV)) == 0  # November's batch went first
    assert await hub.balance_of(Tokens("2026-12")) == 270  # held for the next gift


class TwoFacedHub:
    """A hub that would tell people's tokens apart by their keys, in front of
    the real one: it answers a month's key directory with a key of the
    person's own (signed with the hub's real key, as a dishonest operator
    could) on the connections the person's daemon keeps open for its signed
    calls, and the honest directory on a connection that closes after one
    answer (an operator's guess at which requests are not the account's).
    With `forged_everywhere`, every path gets the forged one; with
    `lying_receipts`, issuance receipts name the forged directory."""

    def __init__(self, hub: Hub, upstream: str) -> None:
        self.hub, self.upstream = hub, upstream.rstrip("/")
        self.forged_everywhere = False
        self.lying_receipts = False
        self.forged_served = 0
        self._own = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.session: aiohttp.ClientSession | None = None

    async def forged(self, month: str) -> dict[str, Any]:
        honest = await self.hub.tokens.published(month)
        public = self._own.public_key()
        body = {k: v for k, v in honest.items() if k != "signature"}
        body["keys"] = [
            {
                "id": tokens.key_id(public).hex(),
                "denomination_cents": tokens.DENOMINATION,
                "public_key": b64u(tokens.pss_spki(public)),
            }
        ]
        return tokenwire.sign_directory(body, self.hub.key.sign)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.path
        keep_alive = request.headers.get("Connection", "").lower() != "close"
        if path.startswith("/v1/token-keys/") and (keep_alive or self.forged_everywhere):
            self.forged_served += 1
            return web.json_response(await self.forged(path.rsplit("/", 1)[1]))
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self.session.request(
            request.method,
            self.upstream + str(request.rel_url),
            data=await request.read(),
            headers=headers,
        ) as resp:
            status, raw = resp.status, await resp.read()
            kept = {k: v for k, v in resp.headers.items() if k.lower() in ("content-type", "date")}
        if path == "/v1/tokens" and status in (200, 201) and self.lying_receipts:
            out = json.loads(raw)
            doc = json.loads(out["receipt"])
            forged = tokenwire.directory_sha256(await self.forged(doc["month"]))
            fields = {n: doc[n] for n in tokenwire.IssueReceipt.FIELDS}
            receipt = tokenwire.IssueReceipt(**{**fields, "token_keys": forged})
            out["receipt"], out["signature"] = receipt.sign(self.hub.key.sign)
            raw = json.dumps(out).encode()
        return web.Response(status=status, body=raw, headers=kept)


async def two_faced(world: dict[str, Any], link: Any) -> TwoFacedHub:
    front = TwoFacedHub(world["hub"], str(world["hub_server"].make_url("")))
    front.session = aiohttp.ClientSession()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", front.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    world["late_servers"].append(server)
    link.base_url = str(server.make_url("")).rstrip("/")
    return front


async def test_a_hub_that_would_show_a_person_their_own_keys_is_never_asked_by_them(
    world: dict[str, Any],
) -> None:
    """Issue 27, point 2: the daemon never asks for a month's keys on its
    account's connection. It pins the directory it is shown as nobody in
    particular (a fresh connection; a relay when one is set), asks for its
    tokens under that key, and checks the hub's signed receipt names the
    same directory: the forged one is never served to it."""
    person, hub, link = await unlinkable_month(world, window=0.0)
    front = await two_faced(world, link)
    try:
        await passes(link)
        assert front.forged_served == 0
        month = await person.call("GET", f"/months/{NOV}")
        assert set(month["tokens"]) == {"redeemed"}, month["tokens"]
        receipts = await link.service.store.read(
            lambda db: [r["receipt"] for r in db.query("SELECT receipt FROM token_receipts")]
        )
        pinned = await link.service.store.read(
            lambda db: db.execute(
                "SELECT sha256 FROM token_directories WHERE month = ?", [NOV]
            ).fetchone()[0]
        )
        honest = tokenwire.directory_sha256(await hub.tokens.published(NOV))
        assert [json.loads(r)["token_keys"] for r in receipts] == [pinned] == [honest]
    finally:
        assert front.session is not None
        await front.session.close()


async def test_an_issuance_receipt_naming_another_directory_is_refused_and_nothing_redeemed(
    world: dict[str, Any],
) -> None:
    """The hub's signed receipt says which directory it signed this
    account's tokens under: one naming another than the pinned directory
    (a hub that signed for this person with a key of their own) stops the
    month's tokens before any is redeemed, and the person is told."""
    person, hub, link = await unlinkable_month(world, window=0.0)
    front = await two_faced(world, link)
    front.lying_receipts = True
    try:
        await passes(link)
        month = await person.call("GET", f"/months/{NOV}")
        assert "redeemed" not in month["tokens"] and "ready" not in month["tokens"], month
        status = await person.call("GET", "/hub")
        assert "two different token keys" in status["hub"]["tokens_refused"]
        async with hub.engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT count(*) FROM spent_tokens")) == 0
    finally:
        assert front.session is not None
        await front.session.close()


async def test_a_directory_that_changes_after_it_was_pinned_holds_every_redemption(
    world: dict[str, Any],
) -> None:
    """The pinned directory is seen again through the second path before
    the month's first redemption: a hub that shows everyone another key
    from then on (to tell the redemptions of those it showed the first one
    apart) gets none of them; the tokens wait and the person is told."""
    person, hub, link = await unlinkable_month(world, window=600.0)
    await passes(link)  # pinned and issued honestly
    month = await person.call("GET", f"/months/{NOV}")
    assert "ready" in month["tokens"], month["tokens"]
    front = await two_faced(world, link)
    front.forged_everywhere = True
    try:
        world["clock"].set(AFTER_NOVEMBER + dt.timedelta(seconds=601))
        await passes(link)
        month = await person.call("GET", f"/months/{NOV}")
        assert "redeemed" not in month["tokens"], month["tokens"]
        assert (
            "two different token keys"
            in (await person.call("GET", "/hub"))["hub"]["tokens_refused"]
        )
        async with hub.engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT count(*) FROM spent_tokens")) == 0
    finally:
        assert front.session is not None
        await front.session.close()


async def _forget_pins(link: Any) -> None:
    """As a daemon restored from the hub's records finds itself: its tokens
    are back, the directories it had pinned are not (they are not kept in
    the records)."""
    await link.service.store.write(lambda db: db.execute("DELETE FROM token_directories"))
    link.tokens._keys.clear()


async def test_tokens_restored_without_their_pinned_directory_pin_it_and_are_redeemed(
    world: dict[str, Any],
) -> None:
    person, _hub, link = await unlinkable_month(world, window=600.0)
    await passes(link)
    assert "ready" in (await person.call("GET", f"/months/{NOV}"))["tokens"]
    await _forget_pins(link)
    for _ in range(12):  # the window, a minute at a time; no hourly round pins it again
        world["clock"].advance(minutes=1)
        await link.tokens.redeem_due()
    month = await person.call("GET", f"/months/{NOV}")
    assert set(month["tokens"]) == {"redeemed"}, month["tokens"]
    assert (await person.call("GET", "/hub"))["hub"]["tokens_refused"] is None


async def test_a_token_under_a_key_nobody_else_was_shown_is_never_redeemed(
    world: dict[str, Any],
) -> None:
    """Tokens that come back from the records (or from a version that did
    not pin) signed with a key that is not in the month's directory as
    everyone sees it: redeeming them would tell the hub whose they are. They
    wait, and the person is told."""
    person, hub, link = await unlinkable_month(world, window=600.0)
    await passes(link)
    assert "ready" in (await person.call("GET", f"/months/{NOV}"))["tokens"]
    await _forget_pins(link)
    own = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    await link.service.store.write(
        lambda db: db.execute("UPDATE unlinkable_tokens SET key_id = ?", [tokens.key_id(own).hex()])
    )
    for _ in range(12):  # the window, a minute at a time
        world["clock"].advance(minutes=1)
        await passes(link)
    month = await person.call("GET", f"/months/{NOV}")
    assert "redeemed" not in month["tokens"], month["tokens"]
    assert "a key of its own" in (await person.call("GET", "/hub"))["hub"]["tokens_refused"]
    async with hub.engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM spent_tokens")) == 0


async def test_a_batch_the_hub_refuses_refuses_the_gifts_waiting_for_it(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The balance the daemon knew was stale: the hub refuses the batch for
    good. The gift that waited for it is refused with the hub's reason and
    nothing of it stays planned; the next gift buys its own."""
    person: Person = world["person"]
    link = person.link
    await person.call("PATCH", "/settings", {"unlinkable": True})
    await funded_with_clicks(person, [])
    await link.tokens.pin_due()
    original_call = link.call
    refusing = {"on": True}

    async def broke(method: str, path: str, body: Any = None, **kw: Any) -> Any:
        if refusing["on"] and path == "/v1/tokens" and "transfer" in (body or {}):
            return 402, {"error": "insufficient_funds", "message": "the balance is 0.00 €"}
        return await original_call(method, path, body, **kw)

    monkeypatch.setattr(link, "call", broke)
    gift = {"id": str(uuid.uuid4()), "creator": "domain:gift.example", "cents": 300}
    assert (await person.call("POST", "/transfers", gift, 202))["transfer"]["state"] == "sending"
    await passes(link)
    (out,) = (await person.call("GET", "/transfers"))["transfers"]
    assert (out["state"], out["error"], out["message"]) == (
        "refused",
        "insufficient_funds",
        "the balance is 0.00 €",
    )
    left = await link.service.store.read(
        lambda db: db.execute("SELECT count(*) FROM unlinkable_tokens").fetchone()[0]
    )
    assert left == 0  # the refused batch's requests are gone
    refusing["on"] = False
    again = {"id": str(uuid.uuid4()), "creator": "domain:gift.example", "cents": 300}
    await person.call("POST", "/transfers", again, 202)
    await passes(link)
    states = {t["id"]: t["state"] for t in (await person.call("GET", "/transfers"))["transfers"]}
    assert states == {gift["id"]: "refused", again["id"]: "given"}
