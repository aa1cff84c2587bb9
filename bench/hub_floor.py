"""What a settlement costs the hub's stack with no database at all: the floor
under issue 31's goal of 1.0 ms of CPU per settlement in all.

The same burst as bench/hub_scale.py (two processes behind Debian's HAProxy,
64 clients, 20 allocations a settlement), sent first to two "floor"
processes that do everything the hub does for a settlement except the
database — aiohttp, the request's signature and freshness
(`signing.check_signed`), the document's parse, canonical checks and
signature (`requests.settlement`), the receipt signed, the JSON answer —
and then, in the same run, to two real `mecene-hub serve` processes on
PostgreSQL, whose CPU is read once the payout runs have routed every
allocation (as hub_scale.py reads it). The floor is the least any change to
the database side can bring a settlement to with this stack.

    .venv/bin/python bench/hub_floor.py [--accounts 10000] [--clients 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402

from bench.hub_scale import admin, cpu_seconds, pids_of  # noqa: E402
from hub import requests  # noqa: E402
from hub.http import read_body  # noqa: E402
from mecene import signing  # noqa: E402
from mecene.encoding import b64u  # noqa: E402
from mecene.settlement import Receipt  # noqa: E402
from tests.support.hubs import (  # noqa: E402
    PG_SERVER,
    HubCluster,
    Person,
    books,
    burst,
    seed,
    settlement_of,
    verify_rate,
    wait_http,
)


def floor_app() -> web.Application:
    key = Ed25519PrivateKey.generate()
    hub_key = b64u(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    async def info(_request: web.Request) -> web.Response:
        return web.json_response({"name": "floor"})

    async def settle(request: web.Request) -> web.Response:
        raw = await read_body(request)
        now = int(time.time())
        signing.check_signed(request.headers, request.method, request.path_qs, raw, now)
        req = requests.settlement(requests.json_object(raw))
        doc = req.document
        text, signature = Receipt(
            hub=hub_key,
            account=doc.account,
            month=doc.month,
            sha256=req.sha256,
            spend_cents=doc.spend_cents,
            received_at=now,
        ).sign(key.sign)
        return web.json_response({"receipt": text, "signature": signature}, status=201)

    app = web.Application()
    app.router.add_get("/v1", info)
    app.router.add_post("/v1/settlements", settle)
    return app


@dataclass
class FloorCluster(HubCluster):
    """HubCluster's HAProxy in front of two floor processes instead of hubs."""

    def start_hub(self, i: int) -> None:
        log = self.data / f"floor-{i}.log"
        argv = [sys.executable, str(Path(__file__)), "--serve", str(self.ports[i])]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs[i] = proc
        wait_http(f"http://127.0.0.1:{self.ports[i]}/v1", proc, f"floor {i}", log)


def measure(
    cluster: HubCluster, bodies: list[tuple[Person, str]], clients: int, db: str | None
) -> dict[str, float]:
    """CPU per settlement (ms) by process group, for one burst through `cluster`."""
    groups = {
        "hubs": [p.pid for p in cluster.procs if p is not None],
        "postgres": pids_of("postgres") if db else [],
        "haproxy": [cluster.haproxy.pid] if cluster.haproxy is not None else [],
    }
    before = {k: cpu_seconds(v) for k, v in groups.items()}
    load_before = time.process_time()
    stats = asyncio.run(burst(cluster.url, bodies, concurrency=clients))
    load = time.process_time()
    if db is not None:
        deadline = time.perf_counter() + 600
        while asyncio.run(books(db))["pending"] and time.perf_counter() < deadline:
            time.sleep(0.5)
    spent = {k: cpu_seconds(v) for k, v in groups.items()}
    per = {k: 1000 * (spent[k] - before[k]) / stats.acknowledged for k in groups}
    per["load"] = 1000 * (load - load_before) / stats.acknowledged
    per["rate"] = stats.acknowledged / stats.elapsed
    return per


def show(name: str, per: dict[str, float]) -> float:
    total = sum(v for k, v in per.items() if k != "rate")
    parts = ", ".join(f"{k} {v:.2f} ms" for k, v in per.items() if k != "rate")
    print(f"{name}: {parts}; {total:.2f} ms in all ({per['rate']:.0f} settlements/s)")
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        web.run_app(floor_app(), host="127.0.0.1", port=args.serve, access_log=None, print=None)
        return 0

    raw = verify_rate()
    print(f"raw Ed25519 verifications    {raw:8.0f} /s   (one core)")
    name = f"mecene_floor_{random.getrandbits(40):010x}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    db = f"{PG_SERVER}/{name}"
    tmp = Path(tempfile.mkdtemp(prefix="mecene-floor-"))
    floor = FloorCluster(db, tmp / "floor")
    real = HubCluster(db, tmp / "real")
    try:
        real.data.mkdir(parents=True)
        assert real.cli("migrate").returncode == 0
        world = asyncio.run(seed(db, people=args.accounts))
        rng = random.Random(1)
        bodies = [(p, settlement_of(p, world, rng)) for p in world.people]
        floor.start()
        low = show("floor, no database (baseline)", measure(floor, bodies, args.clients, None))
        floor.stop()
        real.start()
        full = show("the hub on postgresql", measure(real, bodies, args.clients, db))
        print(
            f"the floor is {low / full:.2f} of the hub's CPU per settlement; "
            f"issue 31's goal, 1.0 ms in all, is {1.0 / low:.2f} of the floor"
        )
    finally:
        floor.stop()
        real.stop()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
