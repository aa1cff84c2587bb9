"""Battery: attacks on the hub, on SQLite and on PostgreSQL.

Each row is an attempt to take money or inflate a count; each must be
refused (or, for counters, count the account once), and after every row the
books still hold: postings sum to zero, every entry balanced, no balance
drifted or below zero (checked by the `hub` fixture after each test).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hub.service import Hub
from mecene import signing
from tests.hub.test_hub import OCT
from tests.support.hubs import JOINED, HubClient, Person, clock, connect, hub, proof_site  # noqa: F401 - fixtures

Setup = dict[str, Any]


async def _world(connect: Any) -> Setup:  # noqa: F811 - the fixture, passed in
    alice, mallory = connect(), connect()
    await alice.deposit(1000)
    await mallory.deposit(300)
    return {"alice": alice, "mallory": mallory}


async def forged_signature(w: Setup) -> Any:
    doc = w["alice"].person.settlement(OCT, [{"creator": "flattr:m", "cents": 500}])
    doc["signature"] = w["mallory"].person.sign(doc["document"].encode())
    return await w["alice"].call("POST", "/v1/settlements", doc, expect=401)


async def request_signed_by_another_key(w: Setup) -> Any:
    headers = w["mallory"].headers("GET", "/v1/account", b"")
    headers["Mecene-Account"] = w["alice"].person.account
    return await w["alice"].call("GET", "/v1/account", headers=headers, sign=False, expect=401)


async def replayed_deposit(w: Setup) -> Any:
    body = {"id": uuid.uuid4().hex, "method": "bank", "amount_cents": 500, "fee_cents": 32}
    raw, headers = w["alice"].signed("POST", "/v1/deposits", body)
    await w["alice"].call("POST", "/v1/deposits", raw, headers=headers, sign=False, expect=201)
    return await w["alice"].call(
        "POST", "/v1/deposits", raw, headers=headers, sign=False, expect=401
    )


async def replayed_settlement_body_by_someone_else(w: Setup) -> Any:
    doc = w["alice"].person.settlement(OCT, [{"creator": "flattr:m", "cents": 500}])
    return await w["mallory"].call("POST", "/v1/settlements", doc, expect=403)


async def settlement_over_the_balance(w: Setup) -> Any:
    return await w["mallory"].settle(OCT, [{"creator": "flattr:m", "cents": 301}], expect=402)


async def two_settlements_for_one_month(w: Setup) -> Any:
    await w["alice"].settle(OCT, [{"creator": "flattr:a", "cents": 100}])
    return await w["alice"].settle(OCT, [{"creator": "flattr:m", "cents": 900}], expect=409)


async def negative_allocation_to_take_money(w: Setup) -> Any:
    rows = [{"creator": "flattr:m", "cents": 700}, {"creator": "flattr:a", "cents": -700}]
    return await w["mallory"].settle(OCT, rows, expect=400)


async def claim_without_proof(w: Setup) -> Any:
    claim = await w["mallory"].call("POST", "/v1/claims", {"key": "domain:alice.example"}, 201)
    return await w["mallory"].call("POST", f"/v1/claims/{claim['id']}/verify", {}, 422)


async def claim_of_a_flattr_id_not_issued_to_you(w: Setup) -> Any:
    issued = await w["alice"].call("POST", "/v1/flattr-ids", {}, 201)
    return await w["mallory"].call("POST", "/v1/claims", {"key": issued["key"]}, 422)


async def withdraw_what_was_deposited(w: Setup) -> Any:
    body = {"id": uuid.uuid4().hex, "amount_cents": 1000}
    return await w["alice"].call("POST", "/v1/withdrawals", body, 402)


async def deposit_with_a_smaller_fee(w: Setup) -> Any:
    body = {"id": uuid.uuid4().hex, "method": "card", "amount_cents": 2000, "fee_cents": 0}
    return await w["mallory"].call("POST", "/v1/deposits", body, 400)


async def deposit_of_negative_money(w: Setup) -> Any:
    body = {"id": uuid.uuid4().hex, "method": "bank", "amount_cents": -5000, "fee_cents": 15}
    return await w["mallory"].call("POST", "/v1/deposits", body, 400)


async def settlement_for_a_month_not_ended(w: Setup) -> Any:
    out = await w["alice"].settle("2026-12", [{"creator": "flattr:m", "cents": 10}], expect=409)
    assert out["error"] == "month_not_ended"
    return out


async def settlement_for_a_month_before_the_account(w: Setup) -> Any:
    out = await w["alice"].settle("1999-01", [{"creator": "flattr:m", "cents": 10}], expect=409)
    assert out["error"] == "month_before_account"
    return out


async def settlement_paying_ones_own_flattr_id(w: Setup) -> Any:
    mine = (await w["mallory"].call("POST", "/v1/flattr-ids", {}, 201))["key"]
    rows = [{"creator": mine, "cents": 300}]
    out = await w["mallory"].settle(OCT, rows, expect=409)
    assert out["error"] == "own_key"
    return out


async def transfer_of_negative_money(w: Setup) -> Any:
    body = {"id": str(uuid.uuid4()), "creator": "flattr:m", "cents": -5000}
    return await w["mallory"].call("POST", "/v1/transfers", body, 400)


async def transfer_over_the_balance(w: Setup) -> Any:
    body = {"id": str(uuid.uuid4()), "creator": "flattr:m", "cents": 100_000}
    out = await w["mallory"].call("POST", "/v1/transfers", body, 402)
    assert out["error"] == "insufficient_funds"
    return out


async def transfer_id_reused_for_more_money(w: Setup) -> Any:
    body = {"id": str(uuid.uuid4()), "creator": "domain:example.org", "cents": 100}
    await w["alice"].call("POST", "/v1/transfers", body, 201)
    return await w["alice"].call("POST", "/v1/transfers", {**body, "cents": 900}, 409)


async def unsigned_settlement(w: Setup) -> Any:
    doc = w["alice"].person.settlement(OCT, [{"creator": "flattr:m", "cents": 10}])
    return await w["alice"].call("POST", "/v1/settlements", doc, sign=False, expect=401)


async def stale_request(w: Setup) -> Any:
    alice: HubClient = w["alice"]
    _raw, headers = signing.signed_request(
        alice.person.account,
        alice.person.sign,
        "GET",
        "/v1/account",
        None,
        alice.clock.now().timestamp() - 3600,
    )
    return await alice.call("GET", "/v1/account", headers=headers, sign=False, expect=401)


ATTACKS: dict[str, Callable[[Setup], Awaitable[Any]]] = {
    f.__name__: f
    for f in (
        forged_signature,
        request_signed_by_another_key,
        replayed_deposit,
        replayed_settlement_body_by_someone_else,
        settlement_over_the_balance,
        two_settlements_for_one_month,
        negative_allocation_to_take_money,
        claim_without_proof,
        claim_of_a_flattr_id_not_issued_to_you,
        withdraw_what_was_deposited,
        deposit_with_a_smaller_fee,
        deposit_of_negative_money,
        settlement_for_a_month_not_ended,
        settlement_for_a_month_before_the_account,
        settlement_paying_ones_own_flattr_id,
        transfer_of_negative_money,
        transfer_over_the_balance,
        transfer_id_reused_for_more_money,
        unsigned_settlement,
        stale_request,
    )
}


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_an_attack_on_the_hub_is_refused(name: str, connect: Any, hub: Hub) -> None:  # noqa: F811
    world = await _world(connect)
    before = {p: await hub.balance_of(f"user:{w.person.account}") for p, w in world.items()}
    refused = await ATTACKS[name](world)
    assert isinstance(refused, dict) and "error" in refused, refused
    # Nobody's money moved but by what the scenario did legitimately.
    after = {p: await hub.balance_of(f"user:{w.person.account}") for p, w in world.items()}
    assert after["mallory"] <= before["mallory"]
    assert await hub.balance_of(f"creator:{world['mallory'].person.account}") == 0


async def test_one_account_cannot_inflate_a_counter(connect: Any, hub: Hub) -> None:  # noqa: F811
    mallory = connect()
    await mallory.deposit(5000)
    thing = "https://mallory.example/"
    for month in ("2026-07", "2026-08", "2026-09", "2026-10"):
        rows = [{"creator": "flattr:m", "url": thing, "cents": 10} for _ in range(20)]
        await mallory.settle(month, rows)
    assert await hub.count("thing", thing) == 1
    assert await hub.count("creator", "flattr:m") == 1
    # Another account is another person: two.
    other = HubClient(mallory.client, Person.new(), mallory.clock, JOINED)
    await other.deposit(1000)
    await other.settle(OCT, [{"creator": "flattr:m", "url": thing, "cents": 200}])
    assert await hub.count("thing", thing) == 2


async def test_people_who_paid_nothing_cannot_inflate_counters(connect: Any, hub: Hub) -> None:  # noqa: F811
    """25 new keys, no deposit, each signing a 0-cent settlement with one 0-cent
    allocation (issue 13, point 2); 25 more paying 1 € (under the 2 € a month
    gives); and a paying person's 0-cent row: none of them counts."""
    thing, key = "https://inflated.example/", "flattr:inflated"
    for _ in range(25):
        free = connect()
        await free.settle(OCT, [{"creator": key, "url": thing, "cents": 0}])
    for _ in range(25):
        cheap = connect()
        await cheap.deposit(200)
        await cheap.settle(OCT, [{"creator": key, "url": thing, "cents": 100}])
    payer = connect()
    await payer.deposit(1000)
    await payer.settle(
        OCT,
        [
            {"creator": key, "url": thing, "cents": 0},
            {"creator": "flattr:real", "url": "https://real.example/", "cents": 300},
        ],
    )
    assert await hub.count("thing", thing) == 0
    assert await hub.count("creator", key) == 0
    assert await hub.count("creator", "flattr:real") == 1
    assert await hub.count("thing", "https://real.example/") == 1
