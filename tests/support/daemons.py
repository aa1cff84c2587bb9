"""The one daemon harness: everything the tests and benches need to run a daemon.

- its aiohttp app in-process with a client that speaks like the extension
  (`Api`), or on an event loop of its own for synchronous code (`App`);
- real `mecene` processes (`start`, `Daemon`, `mecene`), ended with their
  process group;
- a daemon and a hub together on one frozen clock (`world`), the hub from
  tests/support/hubs.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from daemon.browsers.pairing import hash_token, new_token
from daemon.client import LocalApi, prepare
from daemon.files import DataDir
from daemon.hublink import HubLink
from daemon.server import CHANNEL_KEY, HUB_LINK, SERVICE, Config, create_app
from daemon.store import Store
from daemon.wallet import TEST_KDF, Settings, Wallet
from hub.http import create_app as create_hub_app
from mecene import money
from mecene.time import FrozenClock

from .channel import Channel, pair_over, pair_with
from .constants import EXTENSION_ORIGIN, HOST, PASSPHRASE, PORT, free_port
from .hubs import HubClient, ProofSite, running_hub
from .hubs import Person as HubPerson

# == building a daemon's app =================================================================


def new_wallet(data: DataDir, settings: Settings | None = None) -> Wallet:
    """A test wallet (cheap key derivation) in a fresh data directory."""
    data.create()
    return Wallet.create(data.wallet, PASSPHRASE, settings or Settings(), kdf=TEST_KDF)


def daemon_app(
    data: DataDir,
    clock: FrozenClock,
    *,
    locked: bool = False,
    hub_url: str | None = None,
    hub_retry_seconds: float | None = None,
) -> tuple[web.Application, str]:
    """The daemon's app on `data`, as `mecene run` builds it (embedded hub
    aside), and the admin token it accepts."""
    admin = new_token()
    extra: dict[str, Any] = {}
    if hub_url is not None:
        extra["hub_url"] = hub_url
    if hub_retry_seconds is not None:
        extra["hub_retry_seconds"] = hub_retry_seconds
    config = Config(
        port=PORT,
        wallet_path=data.wallet,
        admin_token_hash=hash_token(admin),
        records_marker=data.records_marker,
        **extra,
    )
    wallet = None if locked else Wallet.open(data.wallet, PASSPHRASE)
    app = create_app(config, Store(data.database), wallet, clock)
    if HUB_LINK in app:
        # In-process tests drive the pass and the redemptions by hand
        # (`passes`), on a frozen clock: no spacing between them in real
        # time. Spacing has its own tests, and the system tests keep it.
        app[HUB_LINK].spacing.gap = 0.0
        app[HUB_LINK].redeem_alone = False  # `passes` runs its round
        app[HUB_LINK].tokens.pool.every = 0.0  # gift tokens bought in the next pass
    return app, admin


async def passes(link: HubLink) -> None:
    """What the daemon's two schedules do, one round each: the signed pass
    (months, transfers, issuance, records, balance), then the anonymous
    one (pin the months' key directories, redeem the tokens due)."""
    await link.tokens.pin_due()
    await link.sync_once()
    await link.tokens.pin_due()
    await link.tokens.redeem_due()


# == the daemon's app in-process, spoken to as the extension ===============================
# The in-process client of the daemon's app, speaking like the extension.


class Api:
    """A test client that speaks like the extension over its channel (the
    channel's own answer, in-process: daemon/channel.py), or like the dashboard
    and the CLI over HTTP (Host, Origin, JSON, the admin token)."""

    def __init__(self, client: TestClient[Any, Any], admin_token: str, clock: FrozenClock) -> None:
        self.client = client
        self.clock = clock
        self.admin_token = admin_token
        self.token: str | None = None

    def headers(self, token: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Host": HOST, "Origin": EXTENSION_ORIGIN}
        if token:
            h["Authorization"] = f"Bearer {token}"
        h.update(extra or {})
        return h

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "browser",
        expect: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        if token == "browser" or (token is not None and token == self.token):
            status, data = await self.channel(method, path, body, self.token)
        else:
            tok = {"admin": self.admin_token}.get(token or "", token)
            # Made as the one client makes it (daemon/client.py), over the test client.
            p = prepare(path, body, token=tok, origin=EXTENSION_ORIGIN, host=HOST)
            resp = await self.client.request(
                method, p.path, data=p.data, headers={**p.headers, **(headers or {})}
            )
            status, data = resp.status, json.loads(await resp.read())
        if expect is not None:
            assert status == expect, (status, data)
        return data

    async def channel(
        self, method: str, path: str, body: Any = None, key: str | None = None, conn: int = 1
    ) -> tuple[int, Any]:
        """One message on the browsers' channel, answered in-process."""
        message: dict[str, Any] = {"id": 1, "method": method, "path": path}
        if body is not None:
            message["body"] = body
        if key is not None:
            message["key"] = key
        answer = await self.client.server.app[CHANNEL_KEY].answer(message, conn)
        return int(answer["status"]), answer["body"]

    async def pair(self, client_name: str = "Chromium on test") -> str:
        key = new_token()
        status, started = await self.channel("POST", "/pairing", {"client": client_name}, key)
        assert status == 201, started
        await self.call(
            "POST", "/pairings/approve", {"code": started["code"]}, token="admin", expect=200
        )
        status, got = await self.channel("GET", f"/pairing/{started['pairing_id']}", key=key)
        assert (status, got["status"]) == (200, "approved"), got
        self.token = key
        return key

    async def click(
        self, url: str, creator: str = "flattr:alice", expect: int = 201, **extra: Any
    ) -> Any:
        body = {"id": str(uuid.uuid4()), "url": url, "creator": creator, **extra}
        # Real clicks come at different times; the split breaks ties by time first.
        self.clock.advance(seconds=1)
        return await self.call("POST", "/clicks", body, expect=expect)


MakeApi = Callable[..., Awaitable[Api]]


MakeApi = Callable[..., Awaitable[Api]]


# == the app on an event loop of its own ===================================================
# The daemon's app in-process, on an event loop of its own, so that
# synchronous code (Hypothesis tests and state machines) can call it and
# restart it on the same files.


class App:
    """The daemon's app on its own loop, restartable on the same files."""

    def __init__(self, root: Path, clock: FrozenClock) -> None:
        self.data = DataDir(root)
        new_wallet(self.data, Settings(time_zone="UTC"))
        self.clock = clock
        self.loop = asyncio.new_event_loop()
        self.client: TestClient[Any, Any] | None = None
        self.start()

    def start(self) -> None:
        self.app, self.admin = daemon_app(self.data, self.clock)
        self.client = TestClient(TestServer(self.app, host="127.0.0.1"), loop=self.loop)
        self.loop.run_until_complete(self.client.start_server())

    def restart(self) -> None:
        assert self.client is not None
        self.loop.run_until_complete(self.client.close())
        self.start()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.client is not None
        client = self.client

        async def go() -> tuple[int, Any]:
            # Made as the one client makes it (daemon/client.py), over the test client.
            p = prepare(path, body, token=self.admin, host=f"127.0.0.1:{PORT}")
            resp = await client.request(method, p.path, data=p.data, headers=p.headers)
            return resp.status, json.loads(await resp.read())

        return self.loop.run_until_complete(go())

    def send(self, method: str, path: str, raw: bytes) -> int:
        """`raw` as the body, as JSON, with the admin token; the status."""
        assert self.client is not None
        client = self.client

        async def go() -> int:
            headers = {
                "Host": f"127.0.0.1:{PORT}",
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.admin}",
            }
            resp = await client.request(method, path, data=raw, headers=headers)
            await resp.read()
            return resp.status

        return self.loop.run_until_complete(go())

    def set_balance(self, cents: int) -> None:
        self.loop.run_until_complete(self.app[SERVICE].session.set_balance(cents))

    def close(self) -> None:
        if self.client is not None:
            self.loop.run_until_complete(self.client.close())
        self.loop.close()


# == real `mecene` processes ===============================================================
# Starting and talking to real `mecene` processes (tests and benchmarks share this).


def mecene(
    data: Path,
    *args: str,
    passphrase: str | None = PASSPHRASE,
    timeout: float = 60,
    home: Path | None = None,
    env_extra: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """`mecene ARGS --data-dir DATA`; `home`: with that HOME (`browser install`);
    `env_extra`: more of the environment (`MECENE_RECOVERY_PHRASE`…);
    `prefix`: under another command (`faketime`, the hub's clock)."""
    env = {k: v for k, v in os.environ.items() if k != "MECENE_PASSPHRASE"}
    env.update(env_extra or {})
    if home is not None:
        env["HOME"] = str(home)
        env.pop("XDG_CONFIG_HOME", None)
    if passphrase is not None:
        env["MECENE_PASSPHRASE"] = passphrase
    return subprocess.run(
        [*prefix, sys.executable, "-m", "daemon", *args, "--data-dir", str(data)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class Daemon:
    data: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def api(self) -> LocalApi:
        """The one client of the local API (daemon/client.py), as the person."""
        return LocalApi(DataDir(self.data), port=self.port)

    @property
    def channel_path(self) -> Path:
        return DataDir(self.data).channel

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        """A call as the extension makes it: over the browsers' channel with a
        browser's key; without one, over HTTP with no token (refused)."""
        if token is None:
            return self.api.answer(method, path, body, token=None, origin=EXTENSION_ORIGIN)
        with Channel(self.channel_path) as channel:
            return channel.call(method, path, body, token)

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A call with the admin token, as the CLI and the dashboard make them."""
        return self.api.answer(method, path, body)

    def deposit(self, cents: int, method: str = "bank") -> int:
        """Put money on the hub account (the embedded hub's simulated provider);
        the new balance."""
        body = {"method": method, "amount_cents": cents}
        status, quote = self.admin("POST", "/deposits/quote", body)
        assert status == 200, quote
        body = {**body, "id": str(uuid.uuid4()), "fee_cents": quote["fee_cents"]}
        status, out = self.admin("POST", "/deposits", body)
        assert status == 201, out
        return int(out["balance_cents"])

    def pair(self) -> str:
        """A browser's key, paired over the channel and approved with `mecene pair approve`."""

        def approve(code: str) -> None:
            approved = mecene(self.data, "pair", "approve", code)
            assert approved.returncode == 0, approved.stderr

        with Channel(self.channel_path) as channel:
            return pair_over(channel, approve)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # Past runner.STOP_REPORT_SECONDS the daemon has written every
            # thread's stack to its log: that is what the failure shows.
            end_group(self.proc.pid)
            self.proc.wait(timeout=30)
            tail = self.log[-20_000:]
            raise AssertionError(f"the daemon did not stop in 30 s:\n{tail}") from None
        end_group(self.proc.pid)
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        end_group(self.proc.pid)


def _runtime_port(data: Path) -> int | None:
    """The port in the data directory's runtime file: a crashed daemon's
    stays there until the next one has started listening and replaced it."""
    try:
        return int(json.loads((data / "daemon.json").read_text())["port"])
    except (OSError, ValueError, KeyError):
        return None


def group_members(pgid: int) -> list[tuple[int, str]]:
    """The live processes (not zombies) of process group `pgid`: (pid, name)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append((int(stat.parent.name), name))
    return found


def end_group(pgid: int) -> None:
    """End what a daemon started and left behind (dbus-run-session's bus, the
    accessibility bus GTK starts): each daemon runs in a process group of its
    own, and the tests end every process they start."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not group_members(pgid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + 5
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)


def start(
    data: Path,
    port: int | None = None,
    *,
    deposit_cents: int = 0,
    args: Sequence[str] = (),
    prefix: Sequence[str] = (),
    passphrase: str = PASSPHRASE,
) -> Daemon:
    """A real `mecene run` on `data`, with its embedded hub unless `args` has
    `--hub`; `deposit_cents` puts that much on the account first (a budget is
    only spent from a balance); `prefix` runs it under another command
    (`faketime`)."""
    port = port or free_port()
    env = {**os.environ, "MECENE_PASSPHRASE": passphrase}
    # The log goes to a file beside the data directory: a pipe nobody reads
    # would fill up and block the daemon.
    log_path = data.parent / f"daemon-{port}.log"
    tray = [] if "--tray" in args else ["--no-tray"]
    argv = [*prefix, sys.executable, "-m", "daemon", "run", *tray, "--port", str(port)]
    argv += [a for a in args if a != "--tray"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*argv, "--data-dir", str(data)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a process group to end whole (end_group)
        )
    daemon = Daemon(data, port, proc, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited: {daemon.log}")
        if _runtime_port(data) == port:  # written once it listens, after its token
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                if deposit_cents:
                    daemon.deposit(deposit_cents)
                return daemon
            except OSError:
                pass
        time.sleep(0.05)
    daemon.kill()
    raise AssertionError(f"daemon did not start: {daemon.log}")


def pair_extension(worker: Callable[[str], Any], daemon: Daemon, client: str) -> str:
    """Pair the extension's own key (`worker` evaluates in its worker), approved
    as the person approves it (`mecene pair approve`), not in the popup; the
    key, which the extension then keeps as its credential."""
    key = str(worker("MeceneStorage.identityKey()"))

    def approve(code: str) -> None:
        assert mecene(daemon.data, "pair", "approve", code).returncode == 0

    with Channel(daemon.channel_path) as channel:
        pair_with(channel, key, approve, client)
    worker(f"chrome.storage.local.set({{token: '{key}'}}).then(() => true)")
    return key


# == a daemon and a hub together ===========================================================
# A daemon (its aiohttp app in-process) and a hub application, talking
# over HTTP on one frozen clock: the `world` of the daemon's tests against a
# hub (tests/daemon/test_hublink.py, tests/daemon/test_unlinkable.py).

KIRITIMATI = "Pacific/Kiritimati"  # UTC+14: the first to leave a month


class Person:
    """A daemon (its aiohttp app in-process, talking to the hub over HTTP)."""

    def __init__(self, client: TestClient[Any, Any], admin: str) -> None:
        self.client, self.admin = client, admin

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        headers = {"Host": f"127.0.0.1:{PORT}", "Authorization": f"Bearer {self.admin}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        resp = await self.client.request(method, "/api/v1" + path, data=data, headers=headers)
        out = await resp.json()
        assert resp.status == expect, (method, path, resp.status, out)
        return out

    @property
    def link(self) -> Any:
        return self.client.server.app[HUB_LINK]

    async def pair(self, client: str = "Chromium on Linux") -> str:
        """A browser key, paired over the channel and approved by the person."""
        channel = self.client.server.app[CHANNEL_KEY]
        key = new_token()
        ask = {"id": 1, "method": "POST", "path": "/pairing", "body": {"client": client}}
        started = (await channel.answer({**ask, "key": key}))["body"]
        await self.call("POST", "/pairings/approve", {"code": started["code"]})
        poll = {"id": 2, "method": "GET", "path": f"/pairing/{started['pairing_id']}", "key": key}
        assert (await channel.answer(poll))["body"] == {"status": "approved"}
        return key

    async def browser(
        self, key: str, method: str, path: str, body: Any = None, expect: int = 200
    ) -> Any:
        """A call as that browser makes it, on its channel."""
        message: dict[str, Any] = {"id": 1, "method": method, "path": path, "key": key}
        if body is not None:
            message["body"] = body
        answer = await self.client.server.app[CHANNEL_KEY].answer(message)
        assert answer["status"] == expect, (method, path, answer)
        return answer["body"]


@pytest.fixture
async def world(tmp_path: Path, db_url: str) -> AsyncIterator[dict[str, Any]]:
    clock = FrozenClock(dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC))
    site = await ProofSite().start()
    world_servers: list[TestServer] = []
    try:
        async with running_hub(db_url, clock, site) as hub:
            hub_server = TestServer(create_hub_app(hub), host="127.0.0.1")
            hub_client: TestClient[Any, Any] = TestClient(hub_server)  # a creator's
            await hub_client.start_server()
            data = DataDir(tmp_path / "daemon")
            new_wallet(data, Settings(time_zone=KIRITIMATI))
            app, admin = daemon_app(
                data,
                clock,
                hub_url=str(hub_server.make_url("")).rstrip("/"),
                hub_retry_seconds=0.05,
            )
            client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
            await client.start_server()
            try:
                yield {
                    "clock": clock,
                    "hub": hub,
                    "hub_server": hub_server,
                    "late_servers": world_servers,
                    "site": site,
                    "person": Person(client, admin),
                    "creator": HubClient(hub_client, HubPerson.new(), clock),
                }
            finally:
                await client.close()
                await hub_client.close()
                for late in world_servers:
                    await late.close()
    finally:
        await site.stop()


async def funded_with_clicks(person: Person, creators: list[str]) -> None:
    fee = money.deposit_fee_cents("bank", 2000)
    deposit = {"id": str(uuid.uuid4()), "method": "bank", "amount_cents": 2000, "fee_cents": fee}
    await person.call("POST", "/deposits", deposit, 201)
    for n, creator in enumerate(creators):
        url = f"https://{creator.split(':', 1)[1]}/post-{n}"
        await person.call(
            "POST", "/clicks", {"id": str(uuid.uuid4()), "url": url, "creator": creator}, 201
        )
