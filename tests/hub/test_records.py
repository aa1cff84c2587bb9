"""Encrypted records at the hub (hub/records.py), on both engines: the hub
keeps what an account wrote, gives it back to that account only, refuses a
stale version, sizes it does not pad to, and accounts that hold nothing here."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy import select

from hub.schema import records
from hub.service import Hub
from mecene import recordwire
from mecene.encoding import b64u

SLOT = "ab" * 32


def sealed(size: int = recordwire.SIZES[0]) -> str:
    return b64u(os.urandom(size))


async def test_a_record_is_kept_and_given_back_to_its_account_only(connect: Any, hub: Hub) -> None:
    alice, mallory = connect(), connect()
    await alice.deposit(2000)
    await mallory.deposit(2000)
    data = sealed()
    out = await alice.call("PUT", f"/v1/records/{SLOT}", {"version": 1, "data": data}, 200)
    assert out == {"slot": SLOT, "version": 1}
    assert await alice.call("GET", f"/v1/records/{SLOT}", expect=200) == {
        "slot": SLOT,
        "version": 1,
        "data": data,
    }
    # Another account's slot of the same name is its own, and empty.
    missing = await mallory.call("GET", f"/v1/records/{SLOT}", expect=404)
    assert missing["error"] == "not_found"
    # Only ciphertext and its version are kept: no time, nothing readable.
    async with hub.engine.connect() as conn:
        row = (await conn.execute(select(records))).one()
    assert set(row._mapping) == {"account", "slot", "version", "data"}


async def test_a_newer_version_replaces_and_an_older_one_is_refused(connect: Any) -> None:
    alice = connect()
    await alice.deposit(2000)
    first, second = sealed(), sealed(recordwire.SIZES[1])
    await alice.call("PUT", f"/v1/records/{SLOT}", {"version": 1, "data": first}, 200)
    # The same write again (an answer lost on the way): answered again.
    await alice.call("PUT", f"/v1/records/{SLOT}", {"version": 1, "data": first}, 200)
    await alice.call("PUT", f"/v1/records/{SLOT}", {"version": 3, "data": second}, 200)
    for version in (2, 3):  # an old copy of the wallet writing what it had
        stale = await alice.call(
            "PUT", f"/v1/records/{SLOT}", {"version": version, "data": first}, 409
        )
        assert stale["error"] == "stale_record" and stale["version"] == 3
    kept = await alice.call("GET", f"/v1/records/{SLOT}", expect=200)
    assert kept["version"] == 3 and kept["data"] == second


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (f"/v1/records/{SLOT.upper()}", {"version": 1, "data": sealed()}, "64 lowercase hex"),
        ("/v1/records/notes", {"version": 1, "data": sealed()}, "64 lowercase hex"),
        (f"/v1/records/{SLOT}", {"version": 0, "data": sealed()}, "whole number from 1"),
        (f"/v1/records/{SLOT}", {"version": 1.0, "data": sealed()}, "whole number from 1"),
        (f"/v1/records/{SLOT}", {"version": True, "data": sealed()}, "whole number from 1"),
        (f"/v1/records/{SLOT}", {"version": 1, "data": sealed(4095)}, "exactly one of"),
        (f"/v1/records/{SLOT}", {"version": 1, "data": sealed(5000)}, "exactly one of"),
        (f"/v1/records/{SLOT}", {"version": 1, "data": "a+b/"}, "base64url"),
        (f"/v1/records/{SLOT}", {"version": 1}, "{version, data}"),
        (f"/v1/records/{SLOT}", {"version": 1, "data": sealed(), "at": 5}, "{version, data}"),
    ],
)
async def test_what_is_not_a_padded_record_is_refused(
    connect: Any, path: str, body: dict[str, Any], message: str
) -> None:
    alice = connect()
    await alice.deposit(2000)
    out = await alice.call("PUT", path, body, 400)
    assert out["error"] == "invalid" and message in out["message"]


async def test_records_need_an_account_that_holds_something_here(connect: Any) -> None:
    """Anyone can make a key: an account with neither a deposit nor a creator
    key gets no storage. A flattr id (a creator key) is enough."""
    nobody, creator = connect(), connect()
    body = {"version": 1, "data": sealed()}
    refused = await nobody.call("PUT", f"/v1/records/{SLOT}", body, 403)
    assert refused["error"] == "forbidden" and "deposit or a creator key" in refused["message"]
    await creator.call("POST", "/v1/flattr-ids", {}, 201)
    await creator.call("PUT", f"/v1/records/{SLOT}", body, 200)


async def test_an_account_keeps_a_bounded_number_of_records(connect: Any) -> None:
    alice = connect()
    await alice.deposit(2000)
    body = {"version": 1, "data": sealed()}
    for n in range(recordwire.MAX_SLOTS):
        await alice.call("PUT", f"/v1/records/{n:064x}", body, 200)
    full = await alice.call("PUT", f"/v1/records/{SLOT}", body, 409)
    assert full["error"] == "too_many_records"
    # A slot it has may still change.
    await alice.call("PUT", f"/v1/records/{0:064x}", {**body, "version": 2}, 200)


async def test_records_are_signed_requests(connect: Any) -> None:
    alice = connect()
    await alice.deposit(2000)
    body = {"version": 1, "data": sealed()}
    out = await alice.call("PUT", f"/v1/records/{SLOT}", body, 401, sign=False)
    assert out["error"] == "unsigned"
    out = await alice.call("GET", f"/v1/records/{SLOT}", expect=401, sign=False)
    assert out["error"] == "unsigned"
