"""Who has joined, kept fresh (issue 28, point 6): what the joined list costs
a daemon and the hub now that a daemon asks every five minutes instead of
every hour.

A hub (SQLite, as embedded; its own HTTP app on a local port) with N proved
creator keys. Measured in one run:
1. the bytes of one full answer and of one "unchanged" answer (304: the
   daemon sends the ETag of the list it holds), as the daemon's aiohttp
   client receives them (headers and body);
2. the hub's time per request: a full answer built from the database on
   every request (the old handler) against a 304 from the process's copy
   (JOINED_CACHE_SECONDS);
3. per daemon and per hour: the old hourly full download against twelve
   304s (the list unchanged) — and how late a new creator is seen.

    .venv/bin/python bench/joined.py [--keys 20000] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from daemon import joinedlist  # noqa: E402
from hub import bulk  # noqa: E402
from hub import creators as hub_creators  # noqa: E402
from hub.db import migrate, open_database, transaction  # noqa: E402
from hub.http import create_app  # noqa: E402
from hub.proofs import ProofFetcher  # noqa: E402
from hub.provider import SimulatedProvider  # noqa: E402
from hub.schema import accounts, creator_keys  # noqa: E402
from hub.service import Hub  # noqa: E402
from mecene.time import FrozenClock  # noqa: E402


def wire_bytes(resp: aiohttp.ClientResponse, body: bytes) -> int:
    """The answer's size on the wire: status line, headers, body."""
    head = len(f"HTTP/1.1 {resp.status} {resp.reason}\r\n")
    head += sum(len(k) + len(v) + 4 for k, v in resp.raw_headers)
    return head + 2 + len(body)


async def timed(session: aiohttp.ClientSession, url: str, n: int, etag: str | None) -> list[float]:
    headers = {"If-None-Match": etag} if etag else {}
    out = []
    for _ in range(n):
        started = time.perf_counter()
        async with session.get(url, headers=headers) as resp:
            await resp.read()
        out.append(time.perf_counter() - started)
    return out


async def main(keys: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_database(f"sqlite+aiosqlite:///{tmp}/hub.db")
        await migrate(engine)
        clock = FrozenClock(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC))
        hub = Hub(engine, Ed25519PrivateKey.generate(), clock, SimulatedProvider(), ProofFetcher())
        owners = [{"id": secrets.token_hex(16), "created_at": 0} for _ in range(keys)]
        rows = [
            {"key": f"flattr:{secrets.token_hex(6)}", "owner": o["id"], "verified_at": 0}
            for o in owners
        ]
        async with transaction(engine) as conn:
            await bulk.insert_many(conn, accounts, owners)
            await bulk.insert_many(conn, creator_keys, rows)
        runner = web.AppRunner(create_app(hub))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}/v1/creators/joined"
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(url) as resp:
                    body = await resp.read()
                    full = wire_bytes(resp, body)
                    etag = resp.headers["ETag"]
                async with session.get(url, headers={"If-None-Match": etag}) as resp:
                    unchanged = wire_bytes(resp, await resp.read())
                    assert resp.status == 304
                # The old handler: the list read and built at every request.
                hub_creators.JOINED_CACHE_SECONDS = 0.0
                built = await timed(session, url, requests, None)
                built_304 = await timed(session, url, requests, etag)
                hub_creators.JOINED_CACHE_SECONDS = 10.0
                cached_304 = await timed(session, url, requests, etag)
        finally:
            await runner.cleanup()
            await hub.fetcher.close()
            await engine.dispose()

    every = joinedlist.JOINED_REFRESH_SECONDS
    per_hour_now = 3600 / every * unchanged
    print(f"joined list of {keys:,} keys, hub on SQLite, {requests} requests each")
    print(f"  one full answer:      {full:>9,} bytes")
    print(f"  one 304 (unchanged):  {unchanged:>9,} bytes  = {unchanged / full:.4f} of a full one")
    med = statistics.median
    print(
        f"  hub, full answer built each time (before): {med(built) * 1000:7.2f} ms median"
        f" (baseline)"
    )
    print(
        f"  hub, 304 but the list read each time:      {med(built_304) * 1000:7.2f} ms median"
        f" = {med(built_304) / med(built):.2f}x"
    )
    print(
        f"  hub, 304 from the process's copy (now):    {med(cached_304) * 1000:7.2f} ms median"
        f" = {med(cached_304) / med(built):.3f}x"
    )
    print(
        f"  per daemon per hour: before 1 full = {full:,} B; now {3600 / every:.0f} x 304 ="
        f" {per_hour_now:,.0f} B = {per_hour_now / full:.3f}x (the list unchanged)"
    )
    print(
        f"  a new creator is seen within {every / 60 * 1.2:.0f} min (+10 s of the hub's copy);"
        " before: within 60 min. The person's own key: at once."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.keys, args.requests))
