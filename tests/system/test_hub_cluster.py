"""The hub at scale, for real: two `mecene-hub serve` processes on one
PostgreSQL behind Debian's HAProxy (deploy/haproxy.cfg), a burst of
settlements, and one process killed with SIGKILL every second or so. Nothing
acknowledged is lost, nothing is accepted twice, and the books balance.

Small here; large in bench/hub_scale.py (`--kill`).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support.constants import battery_size
from tests.support.hubs import (
    PG_SERVER,
    HubCluster,
    Killer,
    World,
    books,
    burst,
    seed,
    settlement_of,
)


@pytest.fixture
def pg_db() -> Iterator[str]:
    name = f"mecene_cluster_{random.getrandbits(40):010x}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_burst_through_the_load_balancer_survives_killed_processes(
    tmp_path: Path, pg_db: str
) -> None:
    cluster = HubCluster(pg_db, tmp_path / "hub")
    migrated = cluster.cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    world: World = asyncio.run(seed(pg_db, people=battery_size(600, 20_000)))
    rng = random.Random(1)
    bodies = [(p, settlement_of(p, world, rng)) for p in world.people]
    spends = {p.account: json.loads(json.loads(b)["document"])["spend_cents"] for p, b in bodies}
    cluster.start()
    try:
        with Killer(cluster, len(bodies)) as killer:
            stats = asyncio.run(burst(cluster.url, bodies, concurrency=16, on_tick=killer.tick))
        assert cluster.kills == 4
        # Every settlement acknowledged once; some were sent again after a
        # kill, and those the hub had accepted before dying came back as 200.
        assert stats.acknowledged == len(bodies) == stats.accepted + stats.repeated
        # The processes run the payouts by themselves; a run by hand skips the
        # chunks one of them holds, so ask until none is left.
        deadline = time.monotonic() + 60
        while (held := asyncio.run(books(pg_db)))["pending"]:
            assert time.monotonic() < deadline, held
            done = cluster.cli("run-payouts")
            assert done.returncode == 0, done.stderr
            time.sleep(0.2)
        # None lost, none twice:
        assert held["settlements"] == held["settlement_entries"] == len(bodies)
        assert held["spent_cents"] == sum(spends.values())
        assert set(held["states"]) == {"credited", "withheld", "escrow"}
        check = cluster.cli("check")
        assert check.returncode == 0, check.stdout + check.stderr
        assert not any(json.loads(check.stdout).values())

        async def balances() -> dict[str, int]:
            conn = await asyncpg.connect(pg_db)
            try:
                rows = await conn.fetch(
                    "SELECT name, balance_cents FROM ledger_accounts WHERE name LIKE 'user:%'"
                )
            finally:
                await conn.close()
            return {r["name"][5:]: r["balance_cents"] for r in rows}

        left = asyncio.run(balances())
        assert {a: world.funded_cents - s for a, s in spends.items()} == {
            a: left[a] for a in spends
        }  # each paid exactly once
        print(
            f"\n{len(bodies)} settlements, {cluster.kills} kills: {stats.sent} sendings, "
            f"{stats.resent} resent, {stats.accepted} accepted, {stats.repeated} answered "
            "again with their receipt, 0 lost, 0 twice"
        )
    finally:
        cluster.stop()
