"""Settlements the hub accepts per second, on SQLite and on PostgreSQL, against
the raw Ed25519 verification rate measured in the same run.

A real `mecene-hub serve` process per engine; a separate load process posts
pre-signed settlements of 20 allocations each (one per account, the accounts
funded beforehand), 16 at a time, and every answer must be 201. Each
settlement costs the hub two signature checks (the request's, the
document's) and one signature (the receipt), plus one transaction.

    .venv/bin/python bench/hub_settlements.py [--settlements 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from mecene import money, signing  # noqa: E402
from mecene import time as clock  # noqa: E402
from tests.support.daemons import free_port  # noqa: E402
from tests.support.hubs import (  # noqa: E402
    PG_SERVER,
    Person,
    faketime,
    verify_rate,
)

CONCURRENCY = 16
ALLOCATIONS = 20


def start_hub(db: str, data: Path, offset: int) -> tuple[subprocess.Popen[bytes], str]:
    """A `mecene-hub serve` whose clock is `offset` seconds from the real one."""
    port = free_port()
    argv = [*faketime(offset), sys.executable, "-m", "hub", "serve"]
    argv += ["--db", db, "--data-dir", str(data), "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/v1", timeout=1).close()  # noqa: S310
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the hub did not start")


def offsets() -> tuple[str, int, int]:
    """(the month settled, the clock offset while it runs, the offset once it
    has ended everywhere), from the real clock."""
    now = dt.datetime.now(dt.UTC)
    month = clock.month_of(now - dt.timedelta(days=40), "UTC")
    during = clock.month_start(month, "UTC") + dt.timedelta(days=10)
    after = clock.month_ended_everywhere(month) + dt.timedelta(hours=1)
    return month, int((during - now).total_seconds()), int((after - now).total_seconds())


class Load:
    """The people, the creators, and signed calls on the hub's clock."""

    def __init__(self, count: int) -> None:
        self.people = [Person(Ed25519PrivateKey.generate()) for _ in range(count)]
        self.owners = [Person(Ed25519PrivateKey.generate()) for _ in range(50)]
        self.creators = [f"flattr:nobody{i:03d}" for i in range(50)]

    async def post(
        self, session: Any, url: str, offset: int, person: Person, path: str, body: Any
    ) -> tuple[int, Any]:
        raw, headers = signing.signed_request(
            person.account, person.sign, "POST", path, body, time.time() + offset
        )
        async with session.post(url + path, data=raw, headers=headers) as resp:
            return resp.status, await resp.json()


async def open_accounts(load: Load, url: str, offset: int) -> None:
    """While the month runs: fund every account, issue the creators' ids (not timed)."""
    async with aiohttp.ClientSession() as session:
        fee = money.deposit_fee_cents("bank", 1000)
        sem = asyncio.Semaphore(CONCURRENCY)

        async def fund(p: Person) -> None:
            async with sem:
                body = {"id": uuid.uuid4().hex, "method": "bank", "amount_cents": 1000}
                status, _ = await load.post(
                    session, url, offset, p, "/v1/deposits", {**body, "fee_cents": fee}
                )
                assert status == 201, status

        await asyncio.gather(*(fund(p) for p in [*load.people, *load.owners]))
        for o in load.owners:
            status, out = await load.post(session, url, offset, o, "/v1/flattr-ids", {})
            assert status == 201, out
            load.creators.append(out["key"])


async def run_load(load: Load, url: str, offset: int, month: str) -> tuple[float, int]:
    """Once the month has ended: half the keys' owners give in it (credited,
    with the fee and the locks that decide it), half are nobody's (escrow);
    then every person's settlement, pre-signed: the timed part is the hub's."""
    async with aiohttp.ClientSession() as session:
        for o in load.owners:
            giving = o.settlement(month, [{"creator": "domain:example.org", "cents": 200}])
            status, out = await load.post(session, url, offset, o, "/v1/settlements", giving)
            assert status == 201, out
        bodies = []
        for i, p in enumerate(load.people):
            rows = [
                {
                    "creator": load.creators[(i + j) % len(load.creators)],
                    "url": f"https://site{j}.example/{i}",
                    "cents": 25,
                }
                for j in range(ALLOCATIONS)
            ]
            raw, headers = signing.signed_request(
                p.account,
                p.sign,
                "POST",
                "/v1/settlements",
                p.settlement(month, rows),
                time.time() + offset,
            )
            bodies.append((raw, headers))
        sem = asyncio.Semaphore(CONCURRENCY)
        statuses: list[int] = []
        start = time.perf_counter()

        async def settle(raw: bytes, headers: dict[str, str]) -> None:
            async with sem, session.post(url + "/v1/settlements", data=raw, headers=headers) as r:
                await r.read()
                statuses.append(r.status)

        await asyncio.gather(*(settle(raw, headers) for raw, headers in bodies))
        elapsed = time.perf_counter() - start
    bad = sum(1 for s in statuses if s != 201)
    return len(bodies) / elapsed, bad


async def fresh_pg() -> str:
    name = f"mecene_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return name


async def drop_pg(name: str) -> None:
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settlements", type=int, default=1500)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    rate = verify_rate()
    print(f"raw Ed25519 verifications          {rate:9.0f} /s   (one core, baseline)")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for engine in ("sqlite", "postgresql"):
            data = Path(tmp) / engine
            data.mkdir()
            pg_name = asyncio.run(fresh_pg()) if engine == "postgresql" else None
            db = f"{PG_SERVER}/{pg_name}" if pg_name else f"sqlite:///{data / 'hub.db'}"
            month, during, after = offsets()
            load = Load(args.settlements)
            try:
                proc, url = start_hub(db, data, during)
                try:
                    asyncio.run(open_accounts(load, url, during))
                finally:
                    proc.terminate()
                    proc.wait(30)
                proc, url = start_hub(db, data, after)
                try:
                    per_second, bad = asyncio.run(run_load(load, url, after, month))
                finally:
                    proc.terminate()
                    proc.wait(30)
            finally:
                if pg_name:
                    asyncio.run(drop_pg(pg_name))
            results[engine] = per_second
            print(
                f"settlements accepted, {engine:<10}   {per_second:9.0f} /s   "
                f"({per_second / rate:.1%} of the raw verification rate; "
                f"{ALLOCATIONS} allocations each, {args.settlements} settlements, "
                f"{bad} not 201)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
