"""Durable click throughput: the real daemon against a bare aiohttp handler.

Both servers run as separate processes on this machine, in the same run, and
receive the same JSON bodies with the same headers from 16 concurrent
clients. The bare handler parses the JSON and answers 201; the daemon checks
Host, Origin, content type and token, validates, and commits the click to
SQLite (WAL, synchronous=FULL) before answering. Afterwards every
acknowledged click id is looked up in the daemon's database file.

    .venv/bin/python bench/click_throughput.py [--seconds 8] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.procs import EXT, free_port, mecene, start  # noqa: E402

BARE_SERVER = """
import sys
from aiohttp import web

async def click(request):
    body = await request.json()
    return web.json_response({"click": body}, status=201)

app = web.Application()
app.router.add_post("/api/v1/clicks", click)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


async def load(
    port: int,
    token: str,
    seconds: float,
    clients: int,
    warmup: int,
) -> tuple[list[float], list[str], int]:
    """Send clicks from `clients` concurrent loops for `seconds`; return latencies and acked ids."""
    url = f"http://127.0.0.1:{port}/api/v1/clicks"
    headers = {"Host": f"127.0.0.1:{port}", "Origin": EXT, "Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    acked: list[str] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(n: int, i: int, record: bool) -> None:
            nonlocal errors
            cid = str(uuid.uuid4())
            body = {
                "id": cid,
                "url": f"https://site{n}.example/post/{i}",
                "creator": "flattr:bench",
                "title": "A post worth a flattr",
                "weight": 1,
            }
            t0 = time.perf_counter()
            async with session.post(url, json=body) as resp:
                await resp.read()
                ok = resp.status in (200, 201)
            if record:
                latencies.append(time.perf_counter() - t0)
                if ok:
                    acked.append(cid)
                else:
                    errors += 1

        await asyncio.gather(
            *(one(n, -1 - k, False) for n in range(clients) for k in range(warmup // clients))
        )
        deadline = time.perf_counter() + seconds

        async def client(n: int) -> None:
            i = 0
            while time.perf_counter() < deadline:
                await one(n, i, True)
                i += 1

        start_t = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - start_t
    # Requests per second over the measured window.
    latencies.append(elapsed)  # carried out-of-band: last item is the window
    return latencies, acked, errors


def summarise(name: str, latencies: list[float]) -> tuple[float, float, float]:
    elapsed = latencies.pop()
    rps = len(latencies) / elapsed
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    print(
        f"{name:<28} {rps:9.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"
        f"   ({len(latencies)} requests)"
    )
    return rps, p50, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mecene"
        init = mecene(data, "init", "--budget", "5")
        assert init.returncode == 0, init.stderr
        daemon = start(data)
        token = daemon.pair()
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)])
        try:
            time.sleep(1.0)
            print(
                f"{args.clients} concurrent clients, {args.seconds:.0f} s per server, "
                f"same JSON bodies and headers"
            )
            bare_lat, _, _ = asyncio.run(load(bare_port, token, args.seconds, args.clients, 200))
            daemon_lat, acked, errors = asyncio.run(
                load(daemon.port, token, args.seconds, args.clients, 200)
            )
            bare_rps, _, _ = summarise("bare aiohttp handler", bare_lat)
            daemon_rps, _, _ = summarise("daemon, durable clicks", daemon_lat)
        finally:
            bare.terminate()
            bare.wait(timeout=10)
            daemon.stop()
        conn = sqlite3.connect(data / "daemon.sqlite")
        on_disk = {r[0] for r in conn.execute("SELECT id FROM clicks")}
        conn.close()
        missing = [cid for cid in acked if cid not in on_disk]
        print(f"ratio daemon / bare          {daemon_rps / bare_rps:9.1%}   (target ≥ 50 %)")
        print(
            f"acknowledged clicks on disk  {len(acked) - len(missing)} of {len(acked)}"
            f"   (errors: {errors})"
        )
        return 0 if not missing and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
