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
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from mecene import money, signing  # noqa: E402
from tests.hubkit import PG_SERVER, Person  # noqa: E402
from tests.procs import free_port  # noqa: E402

CONCURRENCY = 16
ALLOCATIONS = 20


def verify_rate(seconds: float = 2.0) -> float:
    """Ed25519 verifications per second, one core, the hub's own code path."""
    person = Person.new()
    message = b"x" * 600
    signature = person.sign(message)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            signing.verify(person.account, message, signature)
        count += 200
    return count / (time.perf_counter() - start)


def start_hub(db: str, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, "-m", "hub", "serve", "--db", db, "--data-dir", str(data)]
    proc = subprocess.Popen(
        [*argv, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/v1", timeout=1).close()  # noqa: S310
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the hub did not start")


async def run_load(url: str, count: int) -> tuple[float, int]:
    import aiohttp

    people = [Person(Ed25519PrivateKey.generate()) for _ in range(count)]
    owners = [Person(Ed25519PrivateKey.generate()) for _ in range(50)]
    async with aiohttp.ClientSession() as session:

        async def post(person: Person, path: str, body: dict[str, object]) -> int:
            raw = json.dumps(body).encode()
            headers = signing.sign_request(
                person.account, person.sign, "POST", path, raw, time.time()
            )
            headers["Content-Type"] = "application/json"
            async with session.post(url + path, data=raw, headers=headers) as resp:
                await resp.read()
                return resp.status

        # Fund every account first (not timed).
        fee = money.deposit_fee_cents("bank", 1000)
        sem = asyncio.Semaphore(CONCURRENCY)

        async def fund(p: Person) -> None:
            async with sem:
                body = {"id": uuid.uuid4().hex, "method": "bank", "amount_cents": 1000}
                status = await post(p, "/v1/deposits", {**body, "fee_cents": fee})
                assert status == 201, status

        await asyncio.gather(*(fund(p) for p in [*people, *owners]))
        # Half the keys belong to creators who gave this month (credited, with
        # the fee and the locks that decide it), half to nobody yet (escrow).
        creators = [f"flattr:nobody{i:03d}" for i in range(50)]
        for o in owners:
            raw = b"{}"
            headers = signing.sign_request(
                o.account, o.sign, "POST", "/v1/flattr-ids", raw, time.time()
            )
            headers["Content-Type"] = "application/json"
            async with session.post(url + "/v1/flattr-ids", data=raw, headers=headers) as resp:
                creators.append((await resp.json())["key"])
            giving = o.settlement("2026-10", [{"creator": "domain:example.org", "cents": 200}])
            assert await post(o, "/v1/settlements", giving) == 201
        # Pre-sign every settlement: the timed part is the hub's work.
        bodies = []
        for i, p in enumerate(people):
            rows = [
                {
                    "creator": creators[(i + j) % len(creators)],
                    "url": f"https://site{j}.example/{i}",
                    "cents": 25,
                }
                for j in range(ALLOCATIONS)
            ]
            bodies.append((p, p.settlement("2026-10", rows)))
        statuses: list[int] = []
        start = time.perf_counter()

        async def settle(p: Person, body: dict[str, str]) -> None:
            async with sem:
                statuses.append(await post(p, "/v1/settlements", body))

        await asyncio.gather(*(settle(p, b) for p, b in bodies))
        elapsed = time.perf_counter() - start
    bad = sum(1 for s in statuses if s != 201)
    return count / elapsed, bad


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
            proc, url = start_hub(db, data)
            try:
                per_second, bad = asyncio.run(run_load(url, args.settlements))
            finally:
                proc.terminate()
                proc.wait(30)
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
