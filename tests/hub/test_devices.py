"""Devices at the hub (hub/devices.py, mecene/devicewire.py), on both
engines: a device key acts for its account only while it is the account's;
a removed one is refused at once, on every route, and never comes back; an
invitation is taken once, within its time, by whoever has the code; and the
hub keeps no name and no time of day."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from hub.schema import devices, invites
from hub.service import Hub
from mecene import devicewire
from mecene.encoding import b64u, unb64u
from mecene.time import FrozenClock
from tests.support.hubs import Person


def proof(account: str, device: Person) -> dict[str, str]:
    message = devicewire.device_message(account, device.account)
    return {"device": device.account, "proof": device.sign(message)}


async def test_a_device_acts_for_its_account_until_it_is_removed(connect: Any, hub: Hub) -> None:
    alice = connect()
    await alice.deposit(2000)
    laptop = Person.new()
    as_laptop = alice.as_device(laptop)
    # Not added yet: its signature alone makes it nothing.
    unknown = await as_laptop.call("GET", "/v1/account", expect=403)
    assert unknown["error"] == "device_unknown"
    added = await alice.call("POST", "/v1/devices", proof(alice.person.account, laptop), 201)
    assert added["device"] == laptop.account
    account = await as_laptop.call("GET", "/v1/account", expect=200)
    assert account["balance_cents"] == 2000
    # A device adds another; both are listed, by key and day only.
    desktop = Person.new()
    await as_laptop.call("POST", "/v1/devices", proof(alice.person.account, desktop), 201)
    listed = await alice.call("GET", "/v1/devices", expect=200)
    assert {d["device"] for d in listed["devices"]} == {laptop.account, desktop.account}
    assert all(d["removed"] is None for d in listed["devices"])
    # Removed by the other device: refused at once, on every route.
    out = await alice.as_device(desktop).call("DELETE", f"/v1/devices/{laptop.account}", expect=200)
    assert out["removed"] == hub.clock.now().strftime("%Y-%m-%d")
    for method, path in [("GET", "/v1/account"), ("GET", "/v1/devices"), ("GET", "/v1/records")]:
        refused = await as_laptop.call(method, path, expect=403)
        assert refused["error"] == "device_removed"
    # Its records are no longer taken either.
    slot = "cd" * 32
    body = {"version": 1, "data": b64u(bytes(4096))}
    refused = await as_laptop.call("PUT", f"/v1/records/{slot}", body, 403)
    assert refused["error"] == "device_removed"
    # A removed key never comes back, whoever asks.
    again = await alice.call("POST", "/v1/devices", proof(alice.person.account, laptop), 403)
    assert again["error"] == "device_removed"
    async with hub.engine.connect() as conn:
        rows = (await conn.execute(select(devices))).all()
    assert {tuple(r._mapping) for r in rows} == {("device", "account", "added_day", "removed_day")}


async def test_a_device_key_is_one_account_s_and_must_be_held(connect: Any) -> None:
    alice, mallory = connect(), connect()
    laptop = Person.new()
    await alice.call("POST", "/v1/devices", proof(alice.person.account, laptop), 201)
    # Mallory cannot take Alice's device, nor sign as her with it.
    taken = await mallory.call("POST", "/v1/devices", proof(mallory.person.account, laptop), 409)
    assert taken["error"] == "device_taken"
    as_mallory = mallory.as_device(laptop)
    assert (await as_mallory.call("GET", "/v1/account", expect=403))["error"] == "device_unknown"
    # A key added without its holder's proof is refused.
    stranger = Person.new()
    forged = {"device": stranger.account, "proof": mallory.person.sign(b"anything")}
    bad = await mallory.call("POST", "/v1/devices", forged, 401)
    assert bad["error"] == "bad_signature"
    # Nor can a device's signature be moved to the account it does not serve.
    _raw, headers = alice.as_device(laptop).signed("GET", "/v1/account", None)
    headers["Mecene-Account"] = mallory.person.account
    resp = await alice.client.request("GET", "/v1/account", headers=headers)
    assert (resp.status, (await resp.json())["error"]) == (401, "bad_signature")


async def test_an_invitation_is_taken_once_within_its_time(
    connect: Any, hub: Hub, clock: FrozenClock
) -> None:
    alice, anyone = connect(), connect()
    await alice.deposit(2000)
    code = devicewire.new_code()
    ident = devicewire.invite_id(code)
    sealed = devicewire.seal_invite(code, {"seed": "secret"})
    await alice.call("PUT", f"/v1/invites/{ident}", {"data": b64u(sealed)}, 201)
    # The hub holds ciphertext under an id it cannot turn back into the code.
    async with hub.engine.connect() as conn:
        kept = (await conn.execute(select(invites))).one()
    assert "secret" not in kept.data and code.replace("-", "") not in kept.data

    new = Person.new()
    accept = {
        "device": new.account,
        "proof": new.sign(devicewire.accept_message(ident, new.account)),
    }
    # Another's proof does not take it.
    wrong = {"device": new.account, "proof": Person.new().sign(b"x")}
    assert (await anyone.call("POST", f"/v1/invites/{ident}/accept", wrong, 401, sign=False))[
        "error"
    ] == "bad_signature"
    out = await anyone.call("POST", f"/v1/invites/{ident}/accept", accept, 200, sign=False)
    assert out["account"] == alice.person.account
    assert devicewire.open_invite(code, unb64u(out["data"])) == {"seed": "secret"}
    joined = await alice.as_device(new).call("GET", "/v1/account", expect=200)
    assert joined["balance_cents"] == 2000
    # Once only.
    other = Person.new()
    again = {
        "device": other.account,
        "proof": other.sign(devicewire.accept_message(ident, other.account)),
    }
    gone = await anyone.call("POST", f"/v1/invites/{ident}/accept", again, 404, sign=False)
    assert gone["error"] == "not_found"
    # And within 15 minutes.
    code2 = devicewire.new_code()
    ident2 = devicewire.invite_id(code2)
    await alice.call(
        "PUT", f"/v1/invites/{ident2}", {"data": b64u(devicewire.seal_invite(code2, {}))}, 201
    )
    clock.set(clock.now() + dt.timedelta(seconds=devicewire.INVITE_SECONDS + 1))
    late = {
        "device": other.account,
        "proof": other.sign(devicewire.accept_message(ident2, other.account)),
    }
    assert (await anyone.call("POST", f"/v1/invites/{ident2}/accept", late, 404, sign=False))[
        "error"
    ] == "not_found"


async def test_the_records_list_says_versions_only(connect: Any) -> None:
    alice = connect()
    await alice.deposit(2000)
    for slot, version in [("ab" * 32, 3), ("cd" * 32, 1)]:
        body = {"version": version, "data": b64u(bytes(4096))}
        await alice.call("PUT", f"/v1/records/{slot}", body, 200)
    listed = await alice.call("GET", "/v1/records", expect=200)
    assert listed == {
        "records": [{"slot": "ab" * 32, "version": 3}, {"slot": "cd" * 32, "version": 1}]
    }


async def test_a_device_without_the_seed_signs_the_month_and_a_removed_one_cannot(
    connect: Any, hub: Hub
) -> None:
    """A computer that joined with a code signs its settlement with its own
    key: the hub takes it while the device is the account's; the same
    document signed by another key, or sent once the device is removed, is
    refused."""
    alice = connect()
    await alice.deposit(2000)
    laptop, stranger = Person.new(), Person.new()
    await alice.call("POST", "/v1/devices", proof(alice.person.account, laptop), 201)
    as_laptop = alice.as_device(laptop)
    month = "2026-10"
    rows = [{"creator": "domain:a.example", "url": "https://a.example/1", "cents": 300}]
    body = alice.person.settlement(month, rows)
    by_laptop = {**body, "signature": laptop.sign(body["document"].encode())}
    by_stranger = {**body, "signature": stranger.sign(body["document"].encode())}
    refused = await as_laptop.call("POST", "/v1/settlements", by_stranger, 401)
    assert refused["error"] == "bad_signature"
    await as_laptop.call("POST", "/v1/settlements", by_laptop, 201)
    # The same document from the account's own key: the same receipt.
    again = await alice.call("POST", "/v1/settlements", body, 200)
    assert again["receipt"]
    await alice.call("DELETE", f"/v1/devices/{laptop.account}", expect=200)
    gone = await as_laptop.call("POST", "/v1/settlements", by_laptop, 403)
    assert gone["error"] == "device_removed"
