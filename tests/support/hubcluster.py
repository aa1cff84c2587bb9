"""Several real `mecene-hub serve` processes on one PostgreSQL behind a real
HAProxy (deploy/haproxy.cfg), a world of funded accounts seeded in the
database, and a burst of settlements that resends what was not acknowledged.
The cluster test and bench/hub_scale.py share it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from mecene import signing
from mecene.time import month_ended_everywhere

from .hubkit import Person
from .procs import free_port

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"


def haproxy_path() -> str:
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(found).exists():
        raise RuntimeError("haproxy is not installed: run scripts/test, which installs it")
    return found


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} did not answer: {log.read_text(errors='replace')[-2000:]}")


@dataclass
class HubCluster:
    """Two hub processes (a, b) sharing `db` and one key file, and HAProxy."""

    db: str
    data: Path
    ports: list[int] = field(default_factory=lambda: [free_port(), free_port()])
    lb_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes] | None] = field(default_factory=lambda: [None, None])
    haproxy: subprocess.Popen[bytes] | None = None
    kills: int = 0
    kills_ordered: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def start_hub(self, i: int) -> None:
        log = self.data / f"hub-{i}.log"
        argv = [sys.executable, "-m", "hub", "serve", "--db", self.db]
        argv += ["--key-file", str(self.data / "hub.key"), "--port", str(self.ports[i])]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs[i] = proc
        _wait_http(f"http://127.0.0.1:{self.ports[i]}/v1", proc, f"hub {i}", log)

    def start(self) -> HubCluster:
        self.data.mkdir(parents=True, exist_ok=True)
        for i in range(len(self.ports)):
            self.start_hub(i)
        env = {
            **os.environ,
            "MECENE_LB_BIND": f"127.0.0.1:{self.lb_port}",
            "MECENE_HUB_A": f"127.0.0.1:{self.ports[0]}",
            "MECENE_HUB_B": f"127.0.0.1:{self.ports[1]}",
        }
        log = self.data / "haproxy.log"
        with log.open("ab") as out:
            self.haproxy = subprocess.Popen(
                [haproxy_path(), "-db", "-f", str(HAPROXY_CFG)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_http(f"{self.url}/v1", self.haproxy, "haproxy", log)
        return self

    def kill(self, i: int) -> None:
        """SIGKILL hub process `i`, in the middle of whatever it does."""
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            self.kills += 1
        self.procs[i] = None

    def stop(self) -> None:
        for proc in [self.haproxy, *self.procs]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub", *args, "--db", self.db],
            capture_output=True,
            text=True,
            timeout=300,
        )


@dataclass
class World:
    month: str
    people: list[Person]
    owners: list[Person]  # creators whose keys are proved (some gave that month)
    keys: list[str]  # owned keys first, then keys nobody has proved
    funded_cents: int


async def seed(
    db: str, *, people: int, owners: int = 8, unowned: int = 40, funded_cents: int = 2000
) -> World:
    """Accounts opened before last month ended, funded by one balanced
    deposit entry, and creators: half of the owners gave that month, so
    money is credited, withheld and put in escrow alike. Written straight
    into the migrated database (opening 100,000 accounts through the API
    would measure the seeding, not the burst)."""
    now = dt.datetime.now(dt.UTC)
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month = (first - dt.timedelta(days=1)).strftime("%Y-%m")
    assert month_ended_everywhere(month) < now, "run after the 1st, 12:00 UTC"
    opened = int((first - dt.timedelta(days=20)).timestamp())
    crowd = [Person.new() for _ in range(people)]
    makers = [Person.new() for _ in range(owners)]
    owned = [f"flattr:m{i:012x}" for i in range(owners)]
    keys = owned + [f"domain:site{i}.example" for i in range(unowned)]
    conn = await asyncpg.connect(db)
    try:
        async with conn.transaction():
            everyone = [p.account for p in crowd + makers]
            await conn.copy_records_to_table(
                "accounts",
                records=[(a, opened, False) for a in everyone],
                columns=["id", "created_at", "nonprofit"],
            )
            await conn.executemany(
                "INSERT INTO creator_keys (key, owner, verified_at, method) "
                "VALUES ($1, $2, $3, 'issued')",
                [(k, makers[i].account, opened) for i, k in enumerate(owned)],
            )
            await conn.executemany(
                "INSERT INTO giving (account, month, gave) VALUES ($1, $2, true)",
                [(m.account, month) for m in makers[: owners // 2]],
            )
            entry = await conn.fetchval(
                "INSERT INTO entries (kind, ref, created_at) VALUES ('deposit', 'seed', $1) "
                "RETURNING id",
                opened,
            )
            total = funded_cents * len(everyone)
            accounts_rows = [("provider:seed", -total, True)] + [
                (f"user:{a}", funded_cents, False) for a in everyone
            ]
            await conn.copy_records_to_table(
                "ledger_accounts",
                records=accounts_rows,
                columns=["name", "balance_cents", "may_go_negative"],
            )
            await conn.copy_records_to_table(
                "postings",
                records=[(entry, n, c) for n, c, _neg in accounts_rows],
                columns=["entry_id", "ledger_account", "amount_cents"],
            )
    finally:
        await conn.close()
    return World(month, crowd, makers, keys, funded_cents)


def settlement_of(person: Person, world: World, rng: random.Random, allocations: int = 20) -> str:
    """A settlement of `allocations` rows over the world's keys, spending
    200–400 cents: a body ready to send (signed per sending)."""
    keys = rng.sample(world.keys, allocations)
    cents = [rng.randint(10, 20) for _ in keys]
    rows = [
        {"creator": k, "url": f"https://things.example/{i}-{rng.randint(1, 10**6)}", "cents": c}
        for i, (k, c) in enumerate(zip(keys, cents, strict=True))
    ]
    return json.dumps(person.settlement(world.month, rows))


@dataclass
class BurstStats:
    sent: int = 0  # requests, resends included
    acknowledged: int = 0  # a 201 or a 200 (the receipt), once per settlement
    accepted: int = 0  # 201
    repeated: int = 0  # 200: it had been accepted before its answer was lost
    resent: int = 0  # sendings after a failure (a broken connection, a 5xx)
    latencies: list[float] = field(default_factory=list)  # first send → acknowledged
    elapsed: float = 0.0


async def burst(
    url: str,
    bodies: list[tuple[Person, str]],
    *,
    concurrency: int,
    on_tick: Callable[[BurstStats], None] | None = None,
) -> BurstStats:
    """Send every settlement, `concurrency` at a time, each signed anew at
    each sending; resend until the hub acknowledges it (a broken connection,
    a 502/503 from the load balancer, a 5xx)."""
    stats = BurstStats()
    queue = list(reversed(bodies))
    path = "/v1/settlements"

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            person, body = queue.pop()
            raw = body.encode()
            began = time.perf_counter()
            first = True
            while True:
                _raw, headers = signing.signed_request(
                    person.account, person.sign, "POST", path, raw, time.time()
                )
                stats.sent += 1
                if not first:
                    stats.resent += 1
                first = False
                try:
                    async with session.post(url + path, data=raw, headers=headers) as resp:
                        answer: Any = await resp.json(content_type=None)
                        status = resp.status
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                    await asyncio.sleep(0.05)
                    continue
                if status in (200, 201):
                    stats.acknowledged += 1
                    stats.accepted += status == 201
                    stats.repeated += status == 200
                    stats.latencies.append(time.perf_counter() - began)
                    break
                if status >= 500:
                    await asyncio.sleep(0.05)
                    continue
                raise AssertionError(f"refused: {status} {answer}")
            if on_tick is not None:
                on_tick(stats)

    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)
    start = time.perf_counter()
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    stats.elapsed = time.perf_counter() - start
    return stats


class Killer:
    """SIGKILLs hub processes at set points of the burst (a share of the
    settlements acknowledged), alternating between the two, and starts each
    again at once; the other one serves meanwhile."""

    def __init__(
        self, cluster: HubCluster, total: int, at: tuple[float, ...] = (0.1, 0.35, 0.6, 0.85)
    ) -> None:
        self.cluster = cluster
        self.marks = [int(total * share) for share in at]
        self.orders: queue.Queue[int | None] = queue.Queue()
        self.thread = threading.Thread(target=self.run)

    def tick(self, stats: BurstStats) -> None:  # on the burst's event loop: never blocks
        while self.marks and stats.acknowledged >= self.marks[0]:
            self.marks.pop(0)
            self.orders.put(self.cluster.kills_ordered % 2)
            self.cluster.kills_ordered += 1

    def run(self) -> None:
        while (i := self.orders.get()) is not None:
            self.cluster.kill(i)
            self.cluster.start_hub(i)

    def __enter__(self) -> Killer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.orders.put(None)
        self.thread.join()


async def books(db: str) -> dict[str, Any]:
    """What the database holds after a burst, counted straight from it."""
    conn = await asyncpg.connect(db)
    try:
        return {
            "settlements": await conn.fetchval("SELECT count(*) FROM settlements"),
            "settlement_entries": await conn.fetchval(
                "SELECT count(*) FROM entries WHERE kind = 'settlement'"
            ),
            "pending": await conn.fetchval(
                "SELECT count(*) FROM allocations WHERE state = 'pending'"
            ),
            "spent_cents": await conn.fetchval(
                "SELECT coalesce(sum(spend_cents), 0) FROM settlements"
            ),
            "states": dict(
                await conn.fetch(
                    "SELECT state, sum(cents) FROM allocations GROUP BY state ORDER BY state"
                )
            ),
        }
    finally:
        await conn.close()
