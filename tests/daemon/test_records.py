"""Encrypted records at the hub (daemon/records/): sealed so that only the
wallet's seed opens them and the hub sees slots and sizes only; sent when
they change; fetched and merged by a wallet restored from its phrase."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import uuid
import zlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from daemon.files import DataDir
from daemon.records import seal
from daemon.records.link import META, Book
from daemon.wallet import Settings, Wallet
from hub.schema import records
from hub.service import Hub
from mecene import recordwire
from mecene.encoding import unb64u
from mecene.time import FrozenClock
from tests.support.daemons import (
    PASSPHRASE,
    TEST_KDF,
    Person,
    daemon_app,
    funded_with_clicks,
)
from tests.support.hubs import HubClient

SEED = bytes(range(32))
ACCOUNT = "A" * 43


# -- sealing (pure) ----------------------------------------------------------------------------


def test_a_record_opens_only_with_its_seed_account_and_slot() -> None:
    keys = seal.RecordKeys(SEED, ACCOUNT)
    record = {"settings": {"budget_cents": 700}, "months": [{"month": "2026-11"}]}
    [(slot, sealed)] = keys.seal("state", 3, record)
    assert len(sealed) == recordwire.SIZES[0] and recordwire.SLOT_RE.match(slot)
    part = keys.open(slot, sealed)
    assert (part.version, part.index, part.parts) == (3, 0, 1)
    assert seal.join([part]) == record
    for other in (
        seal.RecordKeys(bytes(32), ACCOUNT),  # another wallet
        seal.RecordKeys(SEED, "B" * 43),  # moved to another account
    ):
        with pytest.raises(seal.RecordDamaged):
            other.open(slot, sealed)
    with pytest.raises(seal.RecordDamaged):  # moved to another slot
        keys.open(keys.slot("tokens", 1, 0), sealed)
    flipped = sealed[:100] + bytes([sealed[100] ^ 1]) + sealed[101:]
    with pytest.raises(seal.RecordDamaged):
        keys.open(slot, flipped)


def test_slots_differ_by_name_generation_and_part_and_say_nothing() -> None:
    keys = seal.RecordKeys(SEED, ACCOUNT)
    slots = {keys.slot(n, g, i) for n in ("state", "tokens") for g in (0, 1) for i in range(4)}
    assert len(slots) == 16 and not any("state" in s or "tokens" in s for s in slots)
    assert keys.slot("state", 0, 0) != seal.RecordKeys(bytes(32), ACCOUNT).slot("state", 0, 0)


def test_sizes_are_padded_and_a_large_record_takes_parts_first_part_last() -> None:
    keys = seal.RecordKeys(SEED, ACCOUNT)
    # Random hex compresses to about half: 2.4 MB of it takes two parts.
    big = {"tokens": [os.urandom(1024).hex() for _ in range(1200)]}
    packed = len(zlib.compress(json.dumps(big, sort_keys=True, separators=(",", ":")).encode(), 9))
    sealed = keys.seal("tokens", 8, big)
    assert len(sealed) == -(-packed // seal.PART_MAX) == 2
    parts = [keys.open(slot, s) for slot, s in sealed]
    # The first part goes last: a reader that finds it finds the others.
    assert [p.index for p in parts] == [1, 0] and {p.parts for p in parts} == {2}
    for (_slot, s), part in zip(sealed, parts, strict=True):
        # The smallest size that holds the part.
        need = seal.NONCE + seal.TAG + seal.HEADER.size + len(part.data)
        assert len(s) == min(size for size in recordwire.SIZES if size >= need)
    assert seal.join(parts) == big
    # Two records of different content but similar size look the same.
    a = keys.seal("state", 1, {"x": "a" * 10})
    b = keys.seal("state", 1, {"x": os.urandom(900).hex()})
    assert len(a[0][1]) == len(b[0][1]) == recordwire.SIZES[0]
    huge = {"x": [os.urandom(1024).hex() for _ in range(5000)]}
    with pytest.raises(seal.RecordTooLarge, match="at most"):
        keys.seal("state", 1, huge)


# -- at a real hub ---------------------------------------------------------------------------


async def _second_daemon(
    world: dict[str, Any], data: DataDir, seed: bytes, *, marker: bool = True
) -> tuple[Person, TestClient[Any, Any]]:
    data.create()
    Wallet.create(data.wallet, PASSPHRASE, Settings(), kdf=TEST_KDF, seed=seed)
    if marker:
        data.records_marker.write_bytes(b"")
    hub_url = str(world["hub_server"].make_url("")).rstrip("/")
    app, admin = daemon_app(data, world["clock"], hub_url=hub_url, hub_retry_seconds=0.05)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return Person(client, admin), client


async def test_a_wallet_restored_from_its_seed_gets_its_records_back(
    world: dict[str, Any], tmp_path: Any
) -> None:
    """Settings, a subscription, a settled month with its receipt and a gift
    with its receipt, kept at the hub by one daemon, come back in a new data
    directory holding only the same seed; the hub held ciphertext only."""
    person: Person = world["person"]
    clock: FrozenClock = world["clock"]
    hub: Hub = world["hub"]
    cleo: HubClient = world["creator"]
    key = str((await cleo.call("POST", "/v1/flattr-ids", {}, 201))["key"])
    await funded_with_clicks(person, ["domain:example.org", key])
    await person.call("PATCH", "/settings", {"budget_cents": 700, "browser_gift_limit_cents": 900})
    sub = {"url": "https://example.org/post-0", "creator": "domain:example.org", "months": 3}
    subscribed = (await person.call("POST", "/subscriptions", sub, 201))["subscription"]
    gift = {"id": str(uuid.uuid4()), "creator": key, "cents": 300, "note": "thanks"}
    given = (await person.call("POST", "/transfers", gift, 201))["transfer"]
    clock.set(dt.datetime(2026, 12, 1, 12, 30, tzinfo=dt.UTC))
    await person.call("POST", "/hub/sync", {})
    settled = await person.call("GET", "/months/2026-11")
    assert settled["state"] == "settled"
    kept = (await person.call("GET", "/hub"))["hub"]["records"]
    assert kept["kept_at"] is not None and kept["error"] is None

    # What the hub holds: opaque slots, padded sizes, nothing readable.
    async with hub.engine.connect() as conn:
        rows = (await conn.execute(select(records))).all()
    account = (await person.call("GET", "/hub/account"))["account"]
    assert rows and {r.account for r in rows} == {account}
    for row in rows:
        raw = unb64u(row.data)
        assert len(raw) in recordwire.SIZES
        assert b"example.org" not in raw and b"thanks" not in raw

    wallet = Wallet.open(DataDir(world["data"]).wallet, PASSPHRASE) if "data" in world else None
    seed = wallet.data.seed if wallet else person.link.service.session.require_wallet().data.seed
    restored, client = await _second_daemon(world, DataDir(tmp_path / "restored"), seed)
    try:
        assert (await restored.call("GET", "/hub"))["hub"]["records"]["restoring"] is True
        await restored.link.sync_once()
        assert (await restored.call("GET", "/hub"))["hub"]["records"]["restoring"] is False
        settings = (await restored.call("GET", "/settings"))["settings"]
        assert (settings["budget_cents"], settings["browser_gift_limit_cents"]) == (700, 900)
        assert settings["time_zone"] == "Pacific/Kiritimati"
        subs = (await restored.call("GET", "/subscriptions"))["subscriptions"]
        assert [(s["id"], s["state"]) for s in subs] == [(subscribed["id"], "active")]
        month = await restored.call("GET", "/months/2026-11")
        assert (month["state"], month["receipt"]) == ("settled", settled["receipt"])
        transfers = (await restored.call("GET", "/transfers"))["transfers"]
        assert [(t["id"], t["note"], t["receipt"]) for t in transfers] == [
            (given["id"], "thanks", given["receipt"])
        ]
        # The subscription placed its click in the open month.
        clicks = (await restored.call("GET", "/clicks"))["clicks"]
        assert [(c["url"], c["auto"]) for c in clicks] == [(sub["url"], True)]
    finally:
        await client.close()


async def test_an_older_copy_never_overwrites_a_newer_record(
    world: dict[str, Any], tmp_path: Any
) -> None:
    """A second copy of the wallet (no restore marker) writes its record: the
    hub says it is stale, the copy merges what the hub has, then writes above."""
    person: Person = world["person"]
    await funded_with_clicks(person, ["domain:example.org"])
    sub = {"creator": "domain:example.org", "months": 3}
    first = (await person.call("POST", "/subscriptions", sub, 201))["subscription"]
    # The state record goes at most hourly: the first may have gone already.
    clock: FrozenClock = world["clock"]
    clock.set(clock.now() + dt.timedelta(minutes=61))
    await person.link.sync_once()
    kept = Book.parse(await person.link.service.session.meta(META)).of("state").version
    seed = person.link.service.session.require_wallet().data.seed
    copy, client = await _second_daemon(world, DataDir(tmp_path / "copy"), seed, marker=False)
    try:
        other = {"creator": "domain:other.example", "months": 6}
        second = (await copy.call("POST", "/subscriptions", other, 201))["subscription"]
        await copy.link.sync_once()  # stale: merged the hub's, not written
        assert "newer" in (await copy.call("GET", "/hub"))["hub"]["records"]["error"]
        subs = {s["id"] for s in (await copy.call("GET", "/subscriptions"))["subscriptions"]}
        assert subs == {first["id"], second["id"]}
        await copy.link.sync_once()
        assert (await copy.call("GET", "/hub"))["hub"]["records"]["error"] is None
        book = Book.parse(await copy.link.service.session.meta(META))
        assert book.of("state").version == kept + 1
    finally:
        await client.close()


async def test_a_closed_month_the_hub_has_not_taken_yet_survives_the_disk(
    world: dict[str, Any], tmp_path: Any
) -> None:
    """Issue 26, point 2: the month closed in UTC+14 and the hub said to wait;
    the disk died meanwhile. Its signed document was kept at the hub, so the
    restored daemon sends it when the hub takes it, and it is settled."""
    person: Person = world["person"]
    clock: FrozenClock = world["clock"]
    await funded_with_clicks(person, ["domain:example.org"])
    clock.set(dt.datetime(2026, 11, 30, 10, 0, 5, tzinfo=dt.UTC))
    assert (await person.call("GET", "/status"))["month"] == "2026-12"
    await person.link.sync_once()
    month = await person.call("GET", "/months/2026-11")
    assert (month["state"], month["sync"]["error"]) == ("closed", "month_not_ended")
    seed = person.link.service.session.require_wallet().data.seed
    await person.client.close()  # the disk dies
    restored, client = await _second_daemon(world, DataDir(tmp_path / "restored"), seed)
    try:
        await restored.link.sync_once()  # fetched; the hub still says wait
        kept = await restored.call("GET", "/months/2026-11")
        # As signed before the disk died (being sent again, maybe, by the
        # pass the merge woke).
        assert kept["settlement"] == month["settlement"]
        assert kept["state"] in ("closed", "submitted")
        # Moved between two passes: a pass that asked at the old time and
        # heard back at the new one would wait the old answer's 26 hours.
        async with restored.link._pass:
            clock.set(dt.datetime(2026, 12, 1, 12, 7, tzinfo=dt.UTC))
        for _ in range(20):  # the link's own passes run beside these
            await restored.link.sync_once()
            settled = await restored.call("GET", "/months/2026-11")
            if settled["state"] == "settled":
                break
            await asyncio.sleep(0.05)
        assert settled["state"] == "settled", settled["sync"]
        assert settled["receipt"]["spend_cents"] == 500
    finally:
        await client.close()


async def test_a_setting_changed_on_two_computers_takes_the_later_change(
    world: dict[str, Any], tmp_path: Any
) -> None:
    """Two computers of one wallet change the budget while apart; the later
    change wins on both, whichever merges first, and a setting only one of
    them changed is taken by the other (daemon/records/merge.py's rule)."""
    person: Person = world["person"]
    clock: FrozenClock = world["clock"]
    await funded_with_clicks(person, ["domain:example.org"])
    await person.call("PATCH", "/settings", {"budget_cents": 700})
    await person.link.sync_once()
    seed = person.link.service.session.require_wallet().data.seed
    copy, client = await _second_daemon(world, DataDir(tmp_path / "copy"), seed, marker=False)
    try:
        clock.set(clock.now() + dt.timedelta(minutes=1))
        await copy.call("PATCH", "/settings", {"budget_cents": 900})  # later than 700
        clock.set(clock.now() + dt.timedelta(minutes=1))
        await person.call("PATCH", "/settings", {"private": True})  # only here
        await copy.link.sync_once()  # stale: takes the first's record
        clock.set(clock.now() + dt.timedelta(minutes=61))
        await copy.link.sync_once()  # writes its own above
        await person.link.sync_once()  # stale: takes the copy's
        clock.set(clock.now() + dt.timedelta(minutes=61))
        await person.link.sync_once()
        await copy.link.records.fetch()  # the first's newer record (a device looks each pass)
        for daemon in (person, copy):
            settings = (await daemon.call("GET", "/settings"))["settings"]
            assert (settings["budget_cents"], settings["private"]) == (900, True)
    finally:
        await client.close()
