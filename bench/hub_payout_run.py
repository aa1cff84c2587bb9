"""The month's payout run on PostgreSQL, against one bare scan of the same rows.

A month of accepted settlements is loaded straight into a fresh database: N
accounts with 20 pending allocations each (each to a URL of its own), over
10,000 creator keys (half of them proved, by owners of whom half gave that
month), their settlements (the run counts their givers from them), the
month's unrouted money in the ledger to match. Then one bare scan of the month's allocation
rows (the baseline: reading them once), and the hub's payout run over all of
them, chunk by chunk, as `mecene-hub serve` runs it (one process here).

    .venv/bin/python bench/hub_payout_run.py [--accounts 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import event  # noqa: E402

from hub.db import migrate, open_database  # noqa: E402
from hub.proofs import ProofFetcher  # noqa: E402
from hub.provider import SimulatedProvider  # noqa: E402
from hub.service import Hub  # noqa: E402
from mecene.time import SystemClock  # noqa: E402
from tests.support.hubs import PG_SERVER  # noqa: E402

MONTH = "2026-10"
ALLOCATIONS = 20
KEYS = 10_000


async def add_accounts(conn: asyncpg.Connection, ids: list[str]) -> None:
    await conn.copy_records_to_table(
        "accounts", records=[(i, 0, False) for i in ids], columns=["id", "created_at", "nonprofit"]
    )


async def load(db: str, accounts: int) -> int:
    """The month's pending allocations and their unrouted money; the cents."""
    rng = random.Random(3)
    owners = [f"owner{i:06d}" + "x" * 32 for i in range(KEYS // 2)]
    keys = [f"domain:site{i}.example" for i in range(KEYS)]
    conn = await asyncpg.connect(db)
    total = 0
    try:
        await add_accounts(conn, owners)
        await conn.copy_records_to_table(
            "creator_keys",
            records=[(k, owners[i], 0, "issued") for i, k in enumerate(keys[: KEYS // 2])],
            columns=["key", "owner", "verified_at", "method"],
        )
        await conn.copy_records_to_table(
            "giving",
            records=[(o, MONTH, True) for o in owners[: KEYS // 4]],
            columns=["account", "month", "gave"],
        )

        spends: dict[str, int] = {}

        def rows(first: int, count: int):  # type: ignore[no-untyped-def]
            nonlocal total
            for a in range(first, first + count):
                giver = f"giver{a:08d}" + "y" * 30
                for k in rng.sample(keys, ALLOCATIONS):
                    cents = rng.randint(10, 20)
                    total += cents
                    spends[giver] = spends.get(giver, 0) + cents
                    url = f"https://{k.removeprefix('domain:')}/posts/{a}"
                    yield (giver, MONTH, k, url, cents, "pending")

        step = 50_000
        for first in range(0, accounts, step):
            spends.clear()
            await conn.copy_records_to_table(
                "allocations",
                records=rows(first, min(step, accounts - first)),
                columns=["account", "month", "creator", "url", "cents", "state"],
            )
            # Their settlements (the payout run counts a settlement's givers
            # from its spend); the document itself is not read.
            await add_accounts(conn, list(spends))
            await conn.copy_records_to_table(
                "settlements",
                records=[
                    (g, MONTH, "{}", "s", "h", c, False, "r", "s", 0) for g, c in spends.items()
                ],
                columns=[
                    "account",
                    "month",
                    "document",
                    "signature",
                    "sha256",
                    "spend_cents",
                    "unlinkable",
                    "receipt",
                    "receipt_signature",
                    "received_at",
                ],
            )
        entry = await conn.fetchval(
            "INSERT INTO entries (kind, ref, created_at) VALUES ('seed', 'seed', 0) RETURNING id"
        )
        await conn.copy_records_to_table(
            "ledger_accounts",
            records=[("provider:seed", -total, True), (f"unrouted:{MONTH}:00", total, False)],
            columns=["name", "balance_cents", "may_go_negative"],
        )
        await conn.copy_records_to_table(
            "postings",
            records=[(entry, "provider:seed", -total), (entry, f"unrouted:{MONTH}:00", total)],
            columns=["entry_id", "ledger_account", "amount_cents"],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return total


async def bare_scan(db: str) -> float:
    conn = await asyncpg.connect(db)
    try:
        best = []
        for _ in range(3):
            start = time.perf_counter()
            await conn.fetchrow(
                "SELECT count(*), sum(cents) FROM allocations WHERE month = $1", MONTH
            )
            best.append(time.perf_counter() - start)
        return sorted(best)[1]
    finally:
        await conn.close()


def statement_timings(engine: Any) -> dict[str, list[float]]:
    """Wall time spent in each statement (its first 90 characters)."""
    timings: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        conn.info.setdefault("started", []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        spent = time.perf_counter() - conn.info["started"].pop()
        entry = timings[" ".join(statement.split())[:90]]
        entry[0] += 1
        entry[1] += spent

    return timings


async def main_async(accounts: int, profile: bool) -> None:
    name = f"mecene_payout_{random.getrandbits(40):010x}"
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = f"{PG_SERVER}/{name}"
    engine = open_database(db)
    try:
        await migrate(engine)
        start = time.perf_counter()
        total = await load(db, accounts)
        print(
            f"loaded {accounts * ALLOCATIONS:,} pending allocations ({accounts:,} accounts) "
            f"in {time.perf_counter() - start:.0f} s"
        )
        scan = await bare_scan(db)
        print(f"bare scan of the month's rows (baseline)   {scan:8.2f} s")
        timings = statement_timings(engine) if profile else None
        hub = Hub(
            engine, Ed25519PrivateKey.generate(), SystemClock(), SimulatedProvider(), ProofFetcher()
        )
        start = time.perf_counter()
        report = await hub.run_payouts()
        took = time.perf_counter() - start
        books = await hub.books()
        assert not any(books.values()), books
        assert report.routed_cents == total, (report.routed_cents, total)
        conn = await asyncpg.connect(db)
        try:
            counted = await conn.fetchval("SELECT count(*) FROM counter_people")
        finally:
            await conn.close()
        # Every giver counted once per creator and once per thing it paid.
        assert counted == 2 * ALLOCATIONS * accounts, counted
        print(
            f"payout run: {report.routed_allocations:,} allocations routed in {took:.1f} s "
            f"({report.routed_allocations / took:,.0f}/s, {report.chunks} chunks), "
            f"= {took / scan:.0f}x the bare scan; books clean; {counted:,} counter rows"
        )
        if timings is not None:
            print("where the payout run's time goes in PostgreSQL's answers (wall time):")
            for sql, (count, spent) in sorted(timings.items(), key=lambda kv: -kv[1][1])[:12]:
                print(f"  {spent:7.1f} s  {count:6d}x  {sql}")
        await hub.fetcher.close()
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument(
        "--profile", action="store_true", help="print the time spent in each statement"
    )
    args = parser.parse_args()
    asyncio.run(main_async(args.accounts, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
