"""The one hub harness: everything the tests and benches need to run a hub.

- databases for both engines (`MECENE_TEST_PG` names the PostgreSQL server;
  each test gets a fresh database, dropped afterwards), people who sign, the
  hub's app in-process with signed clients, and the privacy scan;
- the fixtures of the hub's tests (a hub on each engine, its books checked
  after every test; a proof site; `connect`);
- a real `mecene-hub serve` process, under a faked clock when asked;
- several such processes on one PostgreSQL behind a real HAProxy, a seeded
  world and a burst of settlements (the cluster test, bench/hub_scale.py).

Every signed request goes through `mecene.signing.signed_request`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import queue
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import sqlalchemy as sa
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hub import counting
from hub.db import migrate, open_database
from hub.http import HUB, create_app
from hub.proofs import ProofFetcher
from hub.provider import SimulatedProvider
from hub.schema import metadata
from hub.service import Hub
from mecene import signing
from mecene import time as mtime
from mecene.encoding import b64u, canonical
from mecene.time import FrozenClock, month_ended_everywhere

from .constants import free_port

# == databases, people, the hub in-process, signed clients =================================
# Hub test support: databases for both engines, a hub app, signed clients.
#
# `MECENE_TEST_PG` names the PostgreSQL server (default: the local one, trust
# auth); each test gets a fresh database on it, dropped afterwards.

PG_SERVER = os.environ.get("MECENE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


async def fresh_pg_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test; its URL."""
    name = f"mecene_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{PG_SERVER}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# When the people of the hub's tests opened their accounts: before the months they settle.
JOINED = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


@dataclass
class Person:
    """A wallet's key, as a daemon holds it."""

    key: Ed25519PrivateKey

    @classmethod
    def new(cls) -> Person:
        return cls(Ed25519PrivateKey.generate())

    @property
    def account(self) -> str:
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return b64u(raw)

    def sign(self, message: bytes) -> str:
        return b64u(self.key.sign(message))

    def settlement(
        self,
        month: str,
        allocations: list[dict[str, Any]],
        *,
        private: bool = False,
        unlinkable_spend: int | None = None,
    ) -> dict[str, str]:
        """A signed settlement; `unlinkable_spend`: an unlinkable month's,
        which carries its spend and no allocation."""
        doc: dict[str, Any] = {
            "v": 1,
            "account": self.account,
            "month": month,
            "currency": "EUR",
            "spend_cents": sum(a["cents"] for a in allocations),
            "private": private,
            "allocations": allocations,
        }
        if unlinkable_spend is not None:
            doc.update(spend_cents=unlinkable_spend, private=True, unlinkable=True)
        text = canonical(doc)
        return {"document": text.decode(), "signature": self.sign(text)}


async def rows_tying(engine: Any, account: str, keys: Iterable[str]) -> list[tuple[str, Any]]:
    """Every row, in every table of the hub, that holds `account` together
    with one of `keys` (unlinkable contributions promise there is none):
    in plain text, or as the counters' hashes of them (hub/counting.py)."""
    keys = list(keys)
    person = counting.person_key(account)
    subjects = {counting.subject_key(kind, k) for kind in counting.KINDS for k in keys}
    found = []
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in await conn.execute(sa.select(table)):
                text = " ".join(str(v) for v in row)
                values = set(row)
                holds_account = account in text or person in values
                holds_key = any(k in text for k in keys) or bool(subjects & values)
                if holds_account and holds_key:
                    found.append((table.name, tuple(row)))
    return found


def verify_rate(seconds: float = 2.0) -> float:
    """Ed25519 verifications per second, one core, the hub's own code path:
    the baseline the hub's benchmarks compare with."""
    person = Person.new()
    message = b"x" * 600
    signature = person.sign(message)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            signing.verify(person.account, message, signature)
        count += 200
    return count / (time.perf_counter() - start)


class HubClient:
    """Calls the hub as `person`, every request signed."""

    def __init__(
        self, client: Any, person: Person, clock: FrozenClock, joined: dt.datetime | None = None
    ) -> None:
        """`joined`: when the account first spoke to the hub (its first signed
        request is then made at that time), so that it may settle the months
        since; None: at its first call."""
        self.client = client
        self.person = person
        self.clock = clock
        self.joined = joined
        self.device: Person | None = None  # set: requests are signed by this device's key

    def as_device(self, device: Person) -> HubClient:
        """The same account, its requests signed by `device` (mecene/devicewire.py)."""
        other = HubClient(self.client, self.person, self.clock)
        other.device = device
        return other

    def signed(self, method: str, path: str, body: Any) -> tuple[bytes, dict[str, str]]:
        now = self.clock.now().timestamp()
        if self.device is not None:
            return signing.signed_request(
                self.person.account,
                self.device.sign,
                method,
                path,
                body,
                now,
                device=self.device.account,
            )
        return signing.signed_request(
            self.person.account, self.person.sign, method, path, body, now
        )

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        """The headers alone, for a test that tampers with the request after."""
        return self.signed(method, path, body)[1]

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        expect: int | None = None,
        *,
        headers: dict[str, str] | None = None,
        sign: bool = True,
    ) -> Any:
        if sign and self.joined is not None:
            joined, self.joined = self.joined, None
            now = self.clock.now()
            self.clock.set(joined)
            try:
                await self.call("GET", "/v1/account", expect=200)
            finally:
                self.clock.set(now)
        if sign:
            raw, hdrs = self.signed(method, path, body)
        else:
            raw = signing.encode_body(body)
            hdrs = {"Content-Type": "application/json"} if raw else {}
        hdrs.update(headers or {})
        resp = await self.client.request(method, path, data=raw or None, headers=hdrs)
        text = await resp.text()
        data = json.loads(text) if resp.content_type == "application/json" else text
        if expect is not None:
            assert resp.status == expect, (resp.status, data)
        return data

    async def deposit(self, cents: int, method: str = "bank") -> Any:
        quote = await self.call(
            "POST", "/v1/deposits/quote", {"method": method, "amount_cents": cents}, 200
        )
        return await self.call(
            "POST",
            "/v1/deposits",
            {
                "id": str(uuid.uuid4()),
                "method": method,
                "amount_cents": cents,
                "fee_cents": quote["fee_cents"],
            },
            201,
        )

    async def settle(
        self,
        month: str,
        allocations: list[dict[str, Any]],
        expect: int = 201,
        *,
        pay_out: bool = True,
        **kw: Any,
    ) -> Any:
        """Send a settlement; then, as a running hub's payout task does soon
        after, route its money (`pay_out=False` leaves it pending)."""
        out = await self.call(
            "POST", "/v1/settlements", self.person.settlement(month, allocations, **kw), expect
        )
        if pay_out:
            await self.client.server.app[HUB].run_payouts()
        return out


class ProofSite:
    """A web server standing for creators' sites: `pages[(host, path)] = text`."""

    def __init__(self) -> None:
        self.pages: dict[tuple[str, str], tuple[str, str]] = {}
        self.runner: web.AppRunner | None = None
        self.url = ""

    def put(self, host: str, path: str, text: str, content_type: str = "text/plain") -> None:
        self.pages[(host, path)] = (text, content_type)

    async def _serve(self, request: web.Request) -> web.Response:
        host = request.host.rsplit(":", 1)[0] if ":" in request.host else request.host
        found = self.pages.get((host, request.path_qs)) or self.pages.get((host, request.path))
        if found is None:
            raise web.HTTPNotFound()
        text, content_type = found
        return web.Response(text=text, content_type=content_type)

    async def start(self) -> ProofSite:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


# == the fixtures of the hub's tests =======================================================
# Fixtures shared by the hub's tests and the hub's battery (tests/system):
# a hub on each engine (`db_url`, tests/conftest.py; its books checked after
# every test), a proof site, and clients that sign as a person.


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC))


@pytest.fixture
async def proof_site() -> AsyncIterator[ProofSite]:
    site = await ProofSite().start()
    yield site
    await site.stop()


# What every test's hub must hold when it closes (hub/ledger.py's guarantees).
CLEAN_BOOKS = {
    "sum_cents": 0,
    "unbalanced_entries": 0,
    "drifted_balances": 0,
    "unrouted_not_pending_cents": 0,
    "negative_balances": 0,
}


@contextlib.asynccontextmanager
async def running_hub(db_url: str, clock: FrozenClock, site: ProofSite) -> AsyncIterator[Hub]:
    """A hub on `db_url`, migrated and built as `mecene-hub serve` builds it;
    its books are checked when it closes (after a test that passed)."""
    engine = open_database(db_url)
    await migrate(engine)
    fetcher = ProofFetcher(via=site.url)
    h = Hub(engine, Ed25519PrivateKey.generate(), clock, SimulatedProvider(), fetcher)
    try:
        yield h
    finally:
        books = await h.books()
        await fetcher.close()
        await engine.dispose()
    assert books == CLEAN_BOOKS


@pytest.fixture
async def hub(db_url: str, clock: FrozenClock, proof_site: ProofSite) -> AsyncIterator[Hub]:
    async with running_hub(db_url, clock, proof_site) as h:
        yield h


@pytest.fixture
async def connect(hub: Hub, clock: FrozenClock, aiohttp_client: Any) -> Any:
    client = await aiohttp_client(create_app(hub))

    def make(person: Person | None = None, joined: dt.datetime | None = JOINED) -> HubClient:
        return HubClient(client, person or Person.new(), clock, joined)

    return make


# == a real hub process, and faked clocks ==================================================
# A real `mecene-hub serve` process, and running processes under a faked clock.

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def faketime(offset: int) -> list[str]:
    """A command prefix that runs a program `offset` seconds ahead. `env`
    replaces itself with the program (the `faketime` wrapper would stay its
    parent, and a signal to the wrapper would not reach the program)."""
    if shutil.which("faketime") is None or not LIBFAKETIME.exists():
        raise RuntimeError("faketime is not installed: run scripts/test, which installs it")
    return ["env", f"LD_PRELOAD={LIBFAKETIME}", f"FAKETIME={offset:+d}", "FAKETIME_NO_CACHE=1"]


def movable_clock(control: Path) -> list[str]:
    """A command prefix whose clock is `control`'s offset ("+0", "+90d"),
    read again at each look: the date set while the program runs. The time
    since boot (/proc/uptime) is not faked, as setting the date leaves it."""
    control.write_text("+0\n")
    return [
        "env",
        f"LD_PRELOAD={LIBFAKETIME}",
        f"FAKETIME_TIMESTAMP_FILE={control}",
        "FAKETIME_NO_CACHE=1",
    ]


class HubProcess:
    def __init__(self, data: Path, port: int, prefix: list[str], db: str | None = None) -> None:
        """`db`: a PostgreSQL URL (else SQLite in `data`)."""
        self.data, self.port, self.prefix = data, port, prefix
        self.db = ["--db", db.replace("postgresql://", "postgresql+asyncpg://", 1)] if db else []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data.parent / "hub.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HubProcess:
        argv = [*self.prefix, sys.executable, "-m", "hub", "serve"]
        argv += ["--data-dir", str(self.data), "--port", str(self.port), *self.db]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/v1", timeout=2):
                    return self
            except OSError:
                assert self.proc.poll() is None, self.log.read_text()
                time.sleep(0.1)
        raise AssertionError(f"the hub did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub", *args, "--data-dir", str(self.data), *self.db],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def call(
        self, person: Person, method: str, path: str, body: Any, offset: int
    ) -> tuple[int, Any]:
        now = time.time() + offset  # the hub's (faked) clock
        raw, headers = signing.signed_request(person.account, person.sign, method, path, body, now)
        req = urllib.request.Request(
            self.url + path, data=raw or None, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:  # its response holds the connection: closed here, not by the GC
                return exc.code, json.loads(exc.read())


# The daemons of these tests live in the last time zone to leave a month,
# UTC−12: their month ends when the hub starts to accept its settlements (a
# month is settled once it has ended in every time zone).
TIME_ZONE = mtime.LAST_TIME_ZONE


def offset_to_month_end(after: int) -> tuple[int, str]:
    """(seconds to add to the real clock so that this month, in TIME_ZONE, ends
    `after` seconds from now; this month). The faked time is always ahead of
    the real one."""
    now = dt.datetime.now(dt.UTC)
    month = mtime.month_of(now + dt.timedelta(days=1), TIME_ZONE)  # never a day from its end
    boundary = mtime.month_ended_everywhere(month)
    offset = int((boundary - dt.datetime.now(dt.UTC)).total_seconds()) - after
    return offset, month


def wait_for(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


# == a cluster: several hub processes behind HAProxy =======================================
# Several real `mecene-hub serve` processes on one PostgreSQL behind a real
# HAProxy (deploy/haproxy.cfg), a world of funded accounts seeded in the
# database, and a burst of settlements that resends what was not acknowledged.
# The cluster test and bench/hub_scale.py share it.

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"


def haproxy_path() -> str:
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(found).exists():
        raise RuntimeError("haproxy is not installed: run scripts/test, which installs it")
    return found


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
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
        wait_http(f"http://127.0.0.1:{self.ports[i]}/v1", proc, f"hub {i}", log)

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
        wait_http(f"{self.url}/v1", self.haproxy, "haproxy", log)
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
            if proc is not None:
                stop_process(proc)

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
