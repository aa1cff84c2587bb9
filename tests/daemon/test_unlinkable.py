"""Unlinkable contributions, the daemon against a real hub application
(issue 17; daemon/unlinkable/): a month closed with the setting on is
settled as its spend alone, its tokens issued, written down and redeemed to
each creator over the window; and the hub then holds no row that ties the
person's account to a creator they paid."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa

import hub.tokens as hub_tokens
from daemon.hublink import HubUnreachable
from daemon.unlinkable import link as unlinkable
from hub.ledger import Escrow, Tokens
from hub.service import Hub
from mecene import tokens
from mecene.time import FrozenClock
from tests.support.daemons import Person, funded_with_clicks
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
    await link.sync_once()
    month = await person.call("GET", f"/months/{NOV}")
    assert (month["state"], month["unlinkable"]) == ("settled", True), month
    shares = {a["creator"]: a["cents"] for a in month["allocations"]}
    assert sorted(shares) == sorted(CREATORS) and sum(shares.values()) == month["spend_cents"]
    # Whole tokens of one value; each creator's share is its tokens'.
    assert month["spend_cents"] % tokens.DENOMINATION == 0
    count = month["spend_cents"] // tokens.DENOMINATION
    assert all(c % tokens.DENOMINATION == 0 for c in shares.values())
    assert month["tokens"] == {"redeemed": {"tokens": count, "cents": month["spend_cents"]}}
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


async def test_tokens_are_redeemed_over_the_window_not_at_once(world: dict[str, Any]) -> None:
    person, _hub, link = await unlinkable_month(world, window=600.0)
    clock: FrozenClock = world["clock"]
    await link.sync_once()
    month = await person.call("GET", f"/months/{NOV}")
    ready = month["tokens"].get("ready", {"tokens": 0})["tokens"]
    total = sum(v["tokens"] for v in month["tokens"].values())
    assert ready >= total - 1  # a token may draw a time of 0 s; not all of them
    times = await link.service.store.read(
        lambda db: [r[0] for r in db.execute("SELECT redeem_at FROM unlinkable_tokens")]
    )
    assert len(set(times)) == len(times)  # each its own moment
    horizon = AFTER_NOVEMBER + dt.timedelta(seconds=600)
    assert all(t <= horizon.isoformat().replace("+00:00", "") + "Z" for t in times)
    # A daemon that runs through the window redeems each in its turn.
    at = AFTER_NOVEMBER
    while at <= horizon:
        at += dt.timedelta(seconds=30)
        clock.set(at)
        await link.sync_once()
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
    await link.sync_once()
    woke = AFTER_NOVEMBER + dt.timedelta(hours=5)
    clock.set(woke)
    await link.sync_once()
    month = await person.call("GET", f"/months/{NOV}")
    redeemed = month["tokens"].get("redeemed", {"tokens": 0})["tokens"]
    assert redeemed <= 1  # at most one whose first moment was 0 s
    times = await link.service.store.read(
        lambda db: [
            r[0]
            for r in db.execute("SELECT redeem_at FROM unlinkable_tokens WHERE state = 'ready'")
        ]
    )
    stamp = lambda d: d.isoformat().replace("+00:00", "") + "Z"  # noqa: E731
    assert times and all(stamp(woke) <= t <= stamp(woke + dt.timedelta(seconds=600)) for t in times)
    assert len(set(times)) == len(times)
    at = woke
    while at <= woke + dt.timedelta(seconds=600):
        at += dt.timedelta(seconds=30)
        clock.set(at)
        await link.sync_once()
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

    real_post = unlinkable.anonymous_post
    lost: set[str] = set()

    async def answer_lost(url: str, body: Any) -> tuple[int, Any]:
        out = await real_post(url, body)
        if body["token"] not in lost:
            lost.add(body["token"])
            raise TimeoutError("the answer never came")
        return out

    monkeypatch.setattr(store, "write", dying_write)
    monkeypatch.setattr(link, "call", counted_call)
    monkeypatch.setattr(unlinkable, "anonymous_post", answer_lost)
    # The hub link's own task may meet the crash first: either way it happens once.
    await unlinkable_month(world, window=0.0)
    for _ in range(3):
        with contextlib.suppress(RuntimeError):
            await link.sync_once()
    assert crashes["ready"] == 0
    assert issuances == [201, 200]  # asked again after the crash: the same answer
    month = await person.call("GET", f"/months/{NOV}")
    assert set(month["tokens"]) == {"ready"}  # every redemption's answer was lost once
    world["clock"].set(AFTER_NOVEMBER + dt.timedelta(hours=2))
    await link.sync_once()  # overdue by then: spread over a fresh window (of 0 s here)
    await link.sync_once()
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
    out = (await person.call("POST", "/transfers", body, 201))["transfer"]
    assert (out["state"], out["unlinkable"], out["url"]) == ("given", True, None)
    await person.link.sync_once()  # its tokens, redeemed (a window of 0 s here)
    month = hub.month()
    async with hub.engine.connect() as conn:
        spent = (
            await conn.execute(
                sa.select(hub_tokens.spent_tokens.c.creator, hub_tokens.spent_tokens.c.cents)
            )
        ).all()
    assert [c for _k, c in spent] == [tokens.DENOMINATION] * 73
    assert {k for k, _c in spent} == {"domain:gift.example"}
    await hub.run_payouts()
    assert await hub.balance_of(Escrow("domain:gift.example")) == 730
    assert await hub.balance_of(Tokens(month)) == 0
    status = await person.call("GET", "/status")
    assert status["balance_cents"] == 2000 - 730
    wallet_account = person.link.service.session.require_wallet().account
    assert await rows_tying(hub.engine, wallet_account, ["gift.example"]) == []


async def test_a_transfer_caught_by_the_month_end_keeps_its_tokens_apart_from_the_month_s(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gift made in November's last minute (UTC) while the hub cannot be
    reached: its tokens are blinded with November's keys and wait. The month
    then ends and is settled as tokens too. Each goes to the hub as its own
    request (the month's spend, the gift's amount), both are redeemed, and
    the month's view shows the month's shares alone."""
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
    gift = {"id": str(uuid.uuid4()), "creator": "domain:gift.example", "cents": 730}
    out = (await person.call("POST", "/transfers", gift, 202))["transfer"]  # accepted, waiting
    assert out["state"] == "sending", out
    blinded = await link.service.store.read(
        lambda db: db.execute(
            "SELECT month, count(*) FROM unlinkable_tokens WHERE transfer_id = ? "
            "AND state = 'blinded' GROUP BY month",
            [gift["id"]],
        ).fetchall()
    )
    assert [tuple(r) for r in blinded] == [(NOV, 73)]

    clock.set(AFTER_NOVEMBER)
    await link.sync_once()  # November settles and its tokens go; the gift still cannot
    month = await person.call("GET", f"/months/{NOV}")
    assert (month["state"], month["unlinkable"]) == ("settled", True), month
    assert set(month["tokens"]) == {"redeemed"}, month["tokens"]
    assert month["tokens"]["redeemed"]["cents"] == month["spend_cents"]
    assert sorted(a["creator"] for a in month["allocations"]) == sorted(CREATORS)

    down["on"] = False
    clock.set(AFTER_NOVEMBER + dt.timedelta(minutes=5))  # the gift's retry is due
    await link.sync_once()
    await link.sync_once()  # its tokens' redemptions (a window of 0 s here)
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
                sa.select(hub_tokens.token_issues.c.ref, hub_tokens.token_issues.c.cents)
            )
        ).all()
    paid = dict(spent)
    assert paid.pop("domain:gift.example") == 730
    assert sum(paid.values()) == month["spend_cents"]
    assert sorted(issues) == sorted(
        [(f"month:{NOV}", month["spend_cents"]), (f"transfer:{gift['id']}", 730)]
    )
    month = await person.call("GET", f"/months/{NOV}")
    assert month["tokens"]["redeemed"]["cents"] == month["spend_cents"]  # not the gift's
    await hub.run_payouts()
    assert await hub.balance_of(Tokens(NOV)) == 0
