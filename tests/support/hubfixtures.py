"""Fixtures shared by the hub's tests and the hub's battery (tests/system):
a hub on each engine (`db_url`, tests/conftest.py; its books checked after
every test), a proof site, and clients that sign as a person."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.db import migrate, open_database
from hub.http import create_app
from hub.proofs import ProofFetcher
from hub.provider import SimulatedProvider
from hub.service import Hub
from mecene.time import FrozenClock
from tests.support.hubkit import JOINED, HubClient, Person, ProofSite


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC))


@pytest.fixture
async def proof_site() -> AsyncIterator[ProofSite]:
    site = await ProofSite().start()
    yield site
    await site.stop()


@pytest.fixture
async def hub(db_url: str, clock: FrozenClock, proof_site: ProofSite) -> AsyncIterator[Hub]:
    engine = open_database(db_url)
    await migrate(engine)
    fetcher = ProofFetcher(via=proof_site.url)
    h = Hub(engine, Ed25519PrivateKey.generate(), clock, SimulatedProvider(), fetcher)
    yield h
    books = await h.books()
    await fetcher.close()
    await engine.dispose()
    assert books == {
        "sum_cents": 0,
        "unbalanced_entries": 0,
        "drifted_balances": 0,
        "unrouted_not_pending_cents": 0,
        "negative_balances": 0,
    }


@pytest.fixture
async def connect(hub: Hub, clock: FrozenClock, aiohttp_client: Any) -> Any:
    client = await aiohttp_client(create_app(hub))

    def make(person: Person | None = None, joined: dt.datetime | None = JOINED) -> HubClient:
        return HubClient(client, person or Person.new(), clock, joined)

    return make
