"""Time to compute a month's payouts for 100,000 accounts on PostgreSQL.

A fresh database on the local PostgreSQL gets, through COPY, the allocations
of 100,000 giving accounts × 20 allocations each (2,000,000 rows, credited to
10,000 creator accounts) for the month measured, and 500,000 rows of the
month before. `Hub.payouts(month)` — what each creator account received,
its fee and net, and the month's totals by state — is timed against the
baseline of one bare scan of the same month's rows (count and sum), in the
same run; medians of 3.

    .venv/bin/python bench/hub_payouts.py [--accounts 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from hub.db import migrate, open_database  # noqa: E402
from hub.proofs import ProofFetcher  # noqa: E402
from hub.provider import SimulatedProvider  # noqa: E402
from hub.service import Hub  # noqa: E402
from mecene.time import FrozenClock  # noqa: E402
from tests.support.hubs import PG_SERVER  # noqa: E402

MONTH, BEFORE = "2026-10", "2026-09"
COLUMNS = [
    "account",
    "month",
    "creator",
    "url",
    "cents",
    "state",
    "recipient",
    "fee_cents",
    "settled_at",
]


def rows(accounts: int, month: str, per: int, creators: int) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for a in range(accounts):
        giver = f"giver{a:06d}{month}"
        for j in range(per):
            c = (a * 7 + j * 13) % creators
            cents = 20 + (a + j) % 17
            out.append(
                (
                    giver,
                    month,
                    f"flattr:c{c:05d}",
                    f"https://site{c}.example/{a}/{j}",
                    cents,
                    "credited",
                    f"creator{c:05d}",
                    (cents + 5) // 10,
                    1793000000,
                )
            )
    return out


async def timed(fn: object, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def main_async(accounts: int) -> None:
    name = f"mecene_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    engine = open_database(f"{PG_SERVER}/{name}")
    try:
        await migrate(engine)
        conn = await asyncpg.connect(f"{PG_SERVER}/{name}")
        load_start = time.perf_counter()
        for month, count in ((MONTH, accounts), (BEFORE, accounts // 4)):
            for chunk in range(0, count, 10_000):
                batch = rows(min(10_000, count - chunk), month, 20, 10_000)
                await conn.copy_records_to_table("allocations", records=batch, columns=COLUMNS)
        await conn.execute("ANALYZE allocations")
        total = await conn.fetchval("SELECT count(*) FROM allocations")
        print(f"loaded {total:,} allocations in {time.perf_counter() - load_start:.1f} s")
        clock = FrozenClock(dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
        hub = Hub(engine, Ed25519PrivateKey.generate(), clock, SimulatedProvider(), ProofFetcher())
        report = await hub.payouts(MONTH)
        assert len(report["creators"]) == 10_000
        assert (
            sum(c["gross_cents"] for c in report["creators"]) == report["totals_cents"]["credited"]
        )

        async def scan() -> None:
            await conn.fetchrow(
                "SELECT count(*), sum(cents) FROM allocations WHERE month = $1", MONTH
            )

        payouts_s = await timed(lambda: hub.payouts(MONTH))
        scan_s = await timed(scan)
        await conn.close()
        print(f"bare scan of the month's rows (baseline)   {scan_s * 1000:8.0f} ms")
        print(
            f"payouts for {accounts:,} accounts            {payouts_s * 1000:8.0f} ms   "
            f"({payouts_s / scan_s:.1f}× the bare scan; 10,000 creators, "
            f"{accounts * 20:,} allocations)"
        )
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(main_async(args.accounts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
