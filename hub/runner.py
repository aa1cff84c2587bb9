"""Running a hub: its key, its database, its HTTP site and its hourly upkeep.

Used by `mecene-hub serve` and by the daemon's embedded hub alike. The hub
keeps nothing between requests but the database: several processes with the
same database URL and key file serve one hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from mecene.amounts import euros
from mecene.diskspace import log_failure
from mecene.encoding import b64u, unb64u
from mecene.time import Clock, SystemClock
from mecene.waiting import wait_at_most

from .db import DatabaseRefused as DatabaseRefused  # the embedded hub says why it refused
from .db import migrate, open_database
from .http import HEADER_SECONDS, LINGER_SECONDS, create_app
from .proofs import ProofFetcher
from .provider import SimulatedProvider
from .service import Hub, HubConfig

log = logging.getLogger("mecene.hub")
UPKEEP_SECONDS = 3600.0
# The payout run: soon after settlements are accepted here (gathering those
# of the next second into the same run), and at least every minute, for the
# ones other hub processes accepted.
PAYOUT_SECONDS = 60.0
PAYOUT_GATHER_SECONDS = 1.0


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The hub's signing key (receipts): 32 raw bytes, base64url, in a 0600 file.

    Several hub processes may start at once on one key file: the first to
    link its new file into place wins (a hard link fails if the name exists),
    and the others read the winner's key."""
    try:
        raw = unb64u(path.read_text().strip())
        return Ed25519PrivateKey.from_private_bytes(raw)
    except FileNotFoundError:
        pass
    except ValueError as exc:
        raise ValueError(f"{path} does not hold a hub key: {exc}") from None
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b64u(raw).encode())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return load_or_create_key(path)  # another process made it first
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return key


@dataclass
class HubSettings:
    database_url: str
    key_file: Path
    host: str = "127.0.0.1"
    port: int = 8740
    proof_via: str | None = None
    config: HubConfig = field(default_factory=HubConfig)


async def open_hub(
    settings: HubSettings, clock: Clock | None = None, *, create: bool = True
) -> Hub:
    """The hub of `settings`. `create=False` (the operator's commands) writes
    no key file: without one, the hub gets a key for this run only (those
    commands sign nothing)."""
    engine = open_database(settings.database_url)
    await migrate(engine)
    if create or settings.key_file.exists():
        key = load_or_create_key(settings.key_file)
    else:
        key = Ed25519PrivateKey.generate()
    return Hub(
        engine,
        key,
        clock or SystemClock(),
        SimulatedProvider(),
        ProofFetcher(via=settings.proof_via),
        settings.config,
    )


async def close_hub(hub: Hub) -> None:
    await hub.fetcher.close()
    await hub.engine.dispose()


SHUTDOWN_SECONDS = 10.0


async def upkeep(hub: Hub) -> None:
    """Hourly: make this and next month's token keys (published in
    advance), forget spent nonces and expired months' token answers, give
    back escrow older than the period."""
    while True:
        try:
            await hub.tokens.prepare()
            await hub.forget_nonces()
            await hub.tokens.forget_answers()
            returned = await hub.expire_escrow()
            if returned:
                log.info("returned %s of expired escrow to givers", euros(returned))
        except Exception as exc:
            log_failure(log, "hub upkeep failed", exc)
        await asyncio.sleep(UPKEEP_SECONDS)


async def pay_out(hub: Hub) -> None:
    """Forever: run the payouts when settlements were accepted, or every minute."""
    while True:
        await wait_at_most(hub.payouts_wanted, PAYOUT_SECONDS)
        await asyncio.sleep(PAYOUT_GATHER_SECONDS)
        hub.payouts_wanted.clear()
        try:
            report = await hub.run_payouts()
            if report.chunks:
                log.info(
                    "payout run: %d allocations routed (%s), %s of withheld money released",
                    report.routed_allocations,
                    euros(report.routed_cents),
                    euros(report.released_cents),
                )
        except Exception as exc:
            log_failure(log, "the payout run failed", exc)


class RunningHub:
    """A hub listening on a socket, with its upkeep task; `await stop()`."""

    def __init__(self, hub: Hub, runner: web.AppRunner, port: int, tasks: list[asyncio.Task[None]]):
        self.hub = hub
        self.runner = runner
        self.port = port
        self.tasks = tasks

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.runner.cleanup()
        await close_hub(self.hub)


async def start_hub(settings: HubSettings, clock: Clock | None = None) -> RunningHub:
    hub = await open_hub(settings, clock)
    runner = web.AppRunner(
        create_app(hub),
        access_log=None,
        handle_signals=False,
        keepalive_timeout=HEADER_SECONDS,
        lingering_time=LINGER_SECONDS,
        # Requests still being answered at a stop get this long, not
        # aiohttp's minute: an unanswered one is sent again by its client.
        shutdown_timeout=SHUTDOWN_SECONDS,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        await close_hub(hub)
        raise
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    tasks = [asyncio.create_task(upkeep(hub)), asyncio.create_task(pay_out(hub))]
    return RunningHub(hub, runner, int(port), tasks)


def default_data_dir() -> Path:
    env = os.environ.get("MECENE_HUB_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mecene-hub"
