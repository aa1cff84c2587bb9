"""Durable click throughput: the real daemon against a bare aiohttp handler.

Both servers run as separate processes on this machine, in the same run, on
the same event loop implementation, and receive the same JSON bodies with the
same headers from 16 concurrent clients. The bare handler parses the JSON and
answers 201; the daemon checks Host, Origin, content type and token,
validates, records the click and commits it to SQLite (WAL,
synchronous=FULL) before answering. Afterwards every acknowledged click id is
looked up in the daemon's database file.

The machine is shared and noisy, so the two servers are measured in
alternating windows (bare, daemon, bare, daemon, …) and the medians compared.

    .venv/bin/python bench/click_throughput.py [--rounds 5] [--seconds 3] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
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
try:
    import uvloop  # the same loop as the daemon's (daemon/runner.py)
    loop = uvloop.new_event_loop()
except ImportError:
    loop = None
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=loop)
"""


@dataclass
class Window:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    errors: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


async def load(port: int, token: str, seconds: float, clients: int, tag: str) -> Window:
    """Send clicks from `clients` concurrent loops for `seconds`."""
    url = f"http://127.0.0.1:{port}/api/v1/clicks"
    headers = {"Host": f"127.0.0.1:{port}", "Origin": EXT, "Authorization": f"Bearer {token}"}
    window = Window()
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(n: int, i: int, record: bool) -> None:
            cid = str(uuid.uuid4())
            body = {
                "id": cid,
                "url": f"https://site{n}.example/{tag}/{i}",
                "creator": "flattr:bench",
                "title": "A post worth a flattr",
                "weight": 1,
            }
            t0 = time.perf_counter()
            async with session.post(url, json=body) as resp:
                await resp.read()
                ok = resp.status in (200, 201)
            if record:
                window.latencies.append(time.perf_counter() - t0)
                window.requests += 1
                if ok:
                    window.acked.append(cid)
                else:
                    window.errors += 1

        # Warm up: open the connections.
        await asyncio.gather(*(one(n, -1, False) for n in range(clients)))
        deadline = time.perf_counter() + seconds

        async def client(n: int) -> None:
            i = 0
            while time.perf_counter() < deadline:
                await one(n, i, True)
                i += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        window.seconds = time.perf_counter() - t0
    return window


def describe(name: str, windows: list[Window]) -> float:
    rps = statistics.median(w.rps for w in windows)
    lat = sorted(x for w in windows for x in w.latencies)
    p50 = lat[len(lat) // 2] * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    each = " ".join(f"{w.rps:.0f}" for w in windows)
    print(f"{name:<24} median {rps:6.0f} req/s  p50 {p50:5.2f} ms  p99 {p99:5.2f} ms  [{each}]")
    return rps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    loop_name = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mecene"
        init = mecene(data, "init", "--budget", "5")
        assert init.returncode == 0, init.stderr
        daemon = start(data)
        token = daemon.pair()
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)])
        bare_windows: list[Window] = []
        daemon_windows: list[Window] = []
        try:
            time.sleep(1.0)
            print(
                f"{args.clients} concurrent clients, {args.rounds} alternating windows of "
                f"{args.seconds:.0f} s per server, both on {loop_name}, {os.cpu_count()} cores"
            )
            for r in range(args.rounds):
                bare_windows.append(
                    asyncio.run(load(bare_port, token, args.seconds, args.clients, f"b{r}"))
                )
                daemon_windows.append(
                    asyncio.run(load(daemon.port, token, args.seconds, args.clients, f"d{r}"))
                )
        finally:
            bare.terminate()
            bare.wait(timeout=10)
            daemon.stop()
        bare_rps = describe("bare aiohttp handler", bare_windows)
        daemon_rps = describe("daemon, durable clicks", daemon_windows)
        conn = sqlite3.connect(data / "daemon.sqlite")
        on_disk = {r[0] for r in conn.execute("SELECT id FROM clicks")}
        conn.close()
        acked = [cid for w in daemon_windows for cid in w.acked]
        errors = sum(w.errors for w in daemon_windows)
        missing = [cid for cid in acked if cid not in on_disk]
        print(f"ratio of medians daemon / bare   {daemon_rps / bare_rps:6.1%}   (target ≥ 50 %)")
        print(
            f"acknowledged clicks on disk      {len(acked) - len(missing)} of {len(acked)}"
            f"   (refused: {errors})"
        )
        return 0 if not missing and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
