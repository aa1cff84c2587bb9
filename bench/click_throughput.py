"""Durable click throughput: the real daemon against a bare aiohttp handler.

Both servers run as separate processes on this machine, in the same run, on
the same event loop implementation, and receive the same JSON bodies with the
same headers. The bare handler parses the JSON and answers 201; the daemon
checks Host, Origin, content type and token, validates, records the click and
commits it to SQLite (WAL, synchronous=FULL) before answering.

A third server shows the floor: a handler that only parses the JSON, makes
one INSERT through the daemon's own group-commit store (same pragmas, same
commit thread) and answers 201 — what durability alone costs, before any of
the checks, validation and bookkeeping a real click needs.

Two phases:

1. Throughput and latency with `wrk` (C, 16 connections): a load generator
   written in Python saturates its own core near 5,500 requests/s and would
   hide the bare handler's real rate. The servers are measured in alternating
   windows (bare, daemon, …) and the medians compared, because the machine is
   shared and noisy.
2. Durability: 16 Python clients send clicks, each remembering the ids that
   got a 2xx; every one of them must be in the daemon's database file.

    scripts/bench                      # installs wrk if missing, runs every benchmark
    .venv/bin/python bench/click_throughput.py [--rounds 5] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.constants import EXTENSION_ORIGIN  # noqa: E402
from tests.support.daemons import free_port, mecene, start  # noqa: E402

CLIENTS = 16

# How both comparison servers start: on the daemon's loop (daemon/runner.py).
RUN_TAIL = """
try:
    import uvloop
    loop = uvloop.new_event_loop()
except ImportError:
    loop = None
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=loop)
"""

BARE_SERVER = (
    """
import sys
from aiohttp import web

async def click(request):
    body = await request.json()
    return web.json_response({"click": body}, status=201)

app = web.Application()
app.router.add_post("/api/v1/clicks", click)
"""
    + RUN_TAIL
)

FLOOR_SERVER = (
    """
import json, sys, tempfile
from pathlib import Path
from aiohttp import web
sys.path.insert(0, sys.argv[2])
from daemon.store import Store

sys.setswitchinterval(0.0005)  # as daemon/runner.py
store = Store(Path(tempfile.mkdtemp()) / "floor.sqlite")

async def lifetime(app):
    store.open()
    await store.write(lambda db: db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, body TEXT)"))
    yield
    await store.close()

async def click(request):
    raw = await request.read()
    body = json.loads(raw)
    await store.write(lambda db: db.execute("INSERT INTO t VALUES (?, ?)",
                                            [body["id"], raw.decode()]), savepoint=False)
    return web.json_response({"click": body}, status=201)

app = web.Application()
app.cleanup_ctx.append(lifetime)
app.router.add_post("/api/v1/clicks", click)
"""
    + RUN_TAIL
)

# Each request a new client id and a new thing, as real flattrs are.
WRK_SCRIPT = """
local counter = 0
math.randomseed(os.time() + SEED)
local function uuid4()
  return (string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v) end))
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"id":"%s","url":"https://site.example/TAG/%d/%d","creator":"flattr:bench",'
    .. '"title":"A post worth a flattr","weight":1}', uuid4(), counter, math.random(1, 1e9))
  return wrk.format("POST", "/api/v1/clicks", {
    ["Content-Type"] = "application/json", ["Host"] = "HOST",
    ["Origin"] = "ORIGIN", ["Authorization"] = "Bearer TOKEN"}, body)
end
"""


@dataclass
class Window:
    rps: float
    p50_ms: float
    p99_ms: float
    refused: int


def wrk_window(port: int, token: str, seconds: float, tag: str, workdir: Path) -> Window:
    script = workdir / f"{tag}.lua"
    text = WRK_SCRIPT
    for key, value in {
        "SEED": str(abs(hash(tag)) % 100_000),
        "TAG": tag,
        "HOST": f"127.0.0.1:{port}",
        "ORIGIN": EXTENSION_ORIGIN,
        "TOKEN": token,
    }.items():
        text = text.replace(key, value)
    script.write_text(text)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{CLIENTS}",
            f"-d{seconds:g}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    refused = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    assert rps, out
    return Window(float(rps.group(1)), ms("50"), ms("99"), int(refused.group(1)) if refused else 0)


async def durable_clicks(port: int, token: str, seconds: float) -> tuple[list[str], int]:
    """16 Python clients for `seconds`; the ids that got a 2xx, and refusals."""
    url = f"http://127.0.0.1:{port}/api/v1/clicks"
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Origin": EXTENSION_ORIGIN,
        "Authorization": f"Bearer {token}",
    }
    acked: list[str] = []
    refused = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def client(n: int) -> None:
            nonlocal refused
            i = 0
            while time.perf_counter() < deadline:
                cid = str(uuid.uuid4())
                body = {
                    "id": cid,
                    "url": f"https://durable{n}.example/{i}",
                    "creator": "flattr:bench",
                }
                async with session.post(url, json=body) as resp:
                    await resp.read()
                    if resp.status in (200, 201):
                        acked.append(cid)
                    else:
                        refused += 1
                i += 1

        await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    return acked, refused


def describe(name: str, windows: list[Window]) -> float:
    rps = statistics.median(w.rps for w in windows)
    p50 = statistics.median(w.p50_ms for w in windows)
    p99 = statistics.median(w.p99_ms for w in windows)
    each = " ".join(f"{w.rps:.0f}" for w in windows)
    print(f"{name:<24} median {rps:6.0f} req/s  p50 {p50:5.2f} ms  p99 {p99:5.2f} ms  [{each}]")
    return rps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: run scripts/bench, or apt-get install wrk", file=sys.stderr)
        return 2
    loop_name = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "mecene"
        init = mecene(data, "init", "--budget", "5")
        assert init.returncode == 0, init.stderr
        daemon = start(data)
        token = daemon.pair()
        bare_port, floor_port = free_port(), free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)])
        floor = subprocess.Popen([sys.executable, "-c", FLOOR_SERVER, str(floor_port), str(ROOT)])
        bare_w: list[Window] = []
        floor_w: list[Window] = []
        daemon_w: list[Window] = []
        try:
            time.sleep(1.0)
            print(
                f"wrk, {CLIENTS} connections, {args.rounds} alternating windows of "
                f"{args.seconds:g} s per server, both on {loop_name}, {os.cpu_count()} cores"
            )
            for r in range(args.rounds):
                bare_w.append(wrk_window(bare_port, token, args.seconds, f"b{r}", work))
                floor_w.append(wrk_window(floor_port, token, args.seconds, f"f{r}", work))
                daemon_w.append(wrk_window(daemon.port, token, args.seconds, f"d{r}", work))
            acked, refused = asyncio.run(durable_clicks(daemon.port, token, args.seconds))
        finally:
            for server in (bare, floor):
                server.terminate()
                server.wait(timeout=10)
            daemon.stop()
        bare_rps = describe("bare aiohttp handler", bare_w)
        floor_rps = describe("floor: parse + 1 INSERT", floor_w)
        daemon_rps = describe("daemon, durable clicks", daemon_w)
        print(f"ratio of medians floor / bare    {floor_rps / bare_rps:6.1%}   (durability alone)")
        print(f"ratio of medians daemon / bare   {daemon_rps / bare_rps:6.1%}   (target ≥ 50 %)")
        conn = sqlite3.connect(data / "daemon.sqlite")
        on_disk = {r[0] for r in conn.execute("SELECT id FROM clicks")}
        conn.close()
        missing = [cid for cid in acked if cid not in on_disk]
        refused += sum(w.refused for w in daemon_w)
        print(
            f"acknowledged clicks on disk      {len(acked) - len(missing)} of {len(acked)}"
            f" (16 Python clients, ids checked one by one); refused: {refused}"
        )
        return 0 if not missing and refused == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
