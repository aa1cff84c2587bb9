"""One wallet on two computers (issue 30): how soon a flattr made on one
reaches the month on the other, and what it costs on the wire.

A real hub process (SQLite) and two real `mecene run` daemons, the second
joined with a one-time code. The first reaches the hub through a byte-
counting TCP relay in this process, so every byte it sends and receives is
counted.

1. Latency: a flattr is made on the first computer (`POST /clicks`, admin
   API); the clock runs until it is in the second's month (`GET /clicks`,
   polled every 20 ms). p50 and p99 over N flattrs made at random moments,
   with the records' period `MECENE_SYNC_SECONDS` (the default is 300 s;
   the bench runs with a short one so that it ends: latency scales with it,
   about one period at p50). Baseline: the same flattr on one computer is in
   its own month when its answer comes (the time of `POST /clicks`).
2. Bytes: what the first computer sends to the hub per flattr, as a device
   (records written within a period of a change, and one small look at the
   others' each period), against the same flattrs on a single computer over
   the same time (its records go at most hourly).

    .venv/bin/python bench/devices.py [--flattrs 40] [--sync 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.daemons import Daemon, free_port, mecene, start
from tests.support.hubs import HubProcess


class CountingRelay:
    """127.0.0.1:port → the hub, counting bytes each way."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.sent = 0  # daemon → hub
        self.received = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port)
        )
        self._loop.run_forever()
        server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            try:
                while data := await src.read(65536):
                    if up:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    def start(self) -> CountingRelay:
        self._thread.start()
        time.sleep(0.2)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def thing(n: int) -> dict[str, str]:
    return {
        "id": str(uuid.uuid4()),
        "url": f"https://bench{n}.example.org/post/{n}",
        "creator": f"domain:bench{n}.example.org",
    }


def live(daemon: Daemon) -> set[str]:
    return {c["url"] for c in daemon.admin("GET", "/clicks")[1]["clicks"]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_devices(root: Path, hub: HubProcess, flattrs: int, sync: float) -> dict[str, float]:
    relay = CountingRelay(hub.port).start()
    desk, laptop = root / "desk", root / "laptop"
    assert mecene(desk, "init", "--budget", "5", "--time-zone", "UTC").returncode == 0
    daemons = []
    try:
        first = start(desk, args=["--hub", relay.url], deposit_cents=2000)
        daemons.append(first)
        made = mecene(desk, "devices", "add", "--name", "desk", "--json")
        assert made.returncode == 0, made.stderr
        code = json.loads(made.stdout)["code"]
        joined = mecene(laptop, "devices", "join", code, "--hub", hub.url, "--name", "laptop")
        assert joined.returncode == 0, joined.stderr
        second = start(laptop, args=["--hub", hub.url])
        daemons.append(second)
        time.sleep(sync * 2)  # both settled into their periods
        sent_before, began = relay.sent + relay.received, time.monotonic()
        lags, local = [], []
        for n in range(flattrs):
            time.sleep(random.uniform(0, sync))  # a random moment in the period
            body = thing(n)
            t0 = time.perf_counter()
            status, _ = first.admin("POST", "/clicks", body)
            local.append(time.perf_counter() - t0)
            assert status == 201
            while body["url"] not in live(second):
                time.sleep(0.02)
            lags.append(time.perf_counter() - t0)
        elapsed = time.monotonic() - began
        wire = relay.sent + relay.received - sent_before
        return {
            "p50": statistics.median(lags),
            "p99": pct(lags, 0.99),
            "local_p50": statistics.median(local),
            "bytes_per_flattr": wire / flattrs,
            "sent_per_flattr": 0.0,
            "elapsed": elapsed,
        }
    finally:
        for d in daemons:
            d.stop()
        relay.stop()


def measure_single(root: Path, hub: HubProcess, flattrs: int, elapsed: float) -> float:
    """Bytes per flattr to the hub from a single computer making the same
    flattrs over the same time."""
    relay = CountingRelay(hub.port).start()
    data = root / "single"
    assert mecene(data, "init", "--budget", "5", "--time-zone", "UTC").returncode == 0
    daemon = start(data, args=["--hub", relay.url], deposit_cents=2000)
    try:
        time.sleep(2)
        before = relay.sent + relay.received
        for n in range(flattrs):
            time.sleep(elapsed / flattrs)
            assert daemon.admin("POST", "/clicks", thing(1000 + n))[0] == 201
        return (relay.sent + relay.received - before) / flattrs
    finally:
        daemon.stop()
        relay.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flattrs", type=int, default=40)
    parser.add_argument("--sync", type=float, default=2.0, help="MECENE_SYNC_SECONDS")
    args = parser.parse_args()
    os.environ["MECENE_SYNC_SECONDS"] = str(args.sync)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        hub = HubProcess(root / "hub", free_port(), []).start()
        try:
            dev = measure_devices(root, hub, args.flattrs, args.sync)
            single = measure_single(root, hub, args.flattrs, dev["elapsed"])
        finally:
            hub.stop()
    print(f"flattrs: {args.flattrs}, records' period MECENE_SYNC_SECONDS = {args.sync:g} s")
    print(
        f"flattr on one computer -> in the month on the other: p50 {dev['p50']:.2f} s, "
        f"p99 {dev['p99']:.2f} s = {dev['p50'] / args.sync:.2f} / {dev['p99'] / args.sync:.2f} "
        "periods"
    )
    print(f"baseline: the flattr in its own computer's month: p50 {dev['local_p50'] * 1000:.1f} ms")
    print(
        f"bytes to and from the hub per flattr: {dev['bytes_per_flattr']:,.0f} as a device, "
        f"against {single:,.0f} on a single computer over the same {dev['elapsed']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
