"""Running the daemon as a process: lock, admin token, listening socket, signals.

The daemon does not poll: it sleeps until the next month boundary (at most an
hour at a time, so a suspended laptop or a changed clock is noticed) and
otherwise only wakes for requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from hub.runner import DatabaseRefused, HubSettings, RunningHub, start_hub
from mecene.diskspace import log_failure
from mecene.time import Clock, SystemClock, seconds_to_next_month

from . import practicehub
from .browsers.pairing import hash_token, new_token
from .files import DaemonLock, DataDir, NotPrivate, has_display, write_atomic
from .security import HEADER_SECONDS, LINGER_SECONDS, AccessLogger
from .server import SERVICE, Config, create_app
from .service import Service
from .store import FileRefused, Store
from .wallet import Wallet

log = logging.getLogger("mecene")
MAX_SLEEP_SECONDS = 3600.0
# A stop that takes longer than this writes every thread's stack to the log:
# a daemon that does not exit is otherwise a silent process holding the lock.
STOP_REPORT_SECONDS = 20.0
_SLOW_STOP: set[asyncio.Task[None]] = set()
SHUTDOWN_SECONDS = 5.0


def report_a_slow_stop() -> None:
    """From now on, if the process is still here after STOP_REPORT_SECONDS,
    dump every thread's stack to stderr (the log); the process goes on."""
    faulthandler.dump_traceback_later(STOP_REPORT_SECONDS, exit=False)


async def report_slow_tasks(after: float = STOP_REPORT_SECONDS / 2) -> None:
    """The event loop's side of a slow stop: every task still there after
    `after` seconds, with where it waits (the threads' dump cannot show it)."""
    await asyncio.sleep(after)
    me = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is not me:
            out = io.StringIO()
            task.print_stack(file=out)
            log.warning("still running while stopping: %s", out.getvalue().strip())


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run the daemon on uvloop where it is installed (Linux, macOS), else asyncio.

    uvloop's faster loop and transports are most of what lets durable clicks
    keep up with a bare handler (bench/click_throughput.py); the daemon's
    code is the same on either loop, and the tests run it on asyncio's.

    The GIL switch interval drops from 5 ms to 0.5 ms: when a COMMIT's fsync
    returns, the commit thread must take the GIL back from a busy loop before
    it can acknowledge the clicks, and Python only forces the hand-over after
    the interval (measured: +10 % durable clicks, p99 11 → 9 ms).
    """
    sys.setswitchinterval(0.0005)
    try:
        import uvloop  # noqa: PLC0415 - optional: not on every platform
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


class StartError(Exception):
    """The daemon cannot start; the message says why in one line."""


async def month_timer(service: Service, clock: Clock) -> None:
    """Close each month as it ends, even if no request arrives; take the
    automatic backup when one is due (at start too)."""
    while True:
        if service.session.wallet is not None:
            try:
                await service.backups.run_due()
            except Exception as exc:
                log_failure(log, "the automatic backup failed", exc)
        delay = MAX_SLEEP_SECONDS
        if service.session.wallet is not None:
            tz = service.session.settings.time_zone
            delay = min(delay, seconds_to_next_month(clock.now(), tz) + 1.0)
        await asyncio.sleep(delay)
        if service.session.wallet is not None:
            try:
                await service.months.roll()
            except Exception as exc:
                log_failure(log, "closing the month failed", exc)


async def serve(
    data_dir: DataDir,
    port: int,
    wallet: Wallet | None,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    hub_url: str | None = None,
    tray: bool = False,
    hub_port: int = 0,
    relay_url: str | None = None,
) -> None:
    """Serve the local API until SIGINT/SIGTERM (or `stop` is set).

    With no `hub_url`, an embedded hub runs in this process on a loopback port
    (`hub_port`, 0: any free one) with its own SQLite file (DATA_DIR/hub/), so
    one machine has the whole cycle."""
    clock = clock or SystemClock()
    lock = DaemonLock(data_dir.lock)
    try:
        lock.acquire()
    except Exception as exc:
        raise StartError(str(exc)) from None
    embedded = None
    try:
        if hub_url is None:
            embedded = await _start_embedded_hub(data_dir, clock, hub_port)
            hub_url = embedded.url
        await _serve_locked(
            data_dir,
            port,
            wallet,
            clock,
            stop or asyncio.Event(),
            hub_url,
            tray,
            hub_embedded=embedded is not None,
            relay_url=relay_url,
        )
    finally:
        if embedded is not None:
            await embedded.stop()
        lock.release()
        faulthandler.cancel_dump_traceback_later()


def start_tray(data_dir: DataDir) -> subprocess.Popen[bytes] | None:
    """The tray icon, as its own process (daemon/tray.py); None, said once, without a display."""
    if not has_display():
        log.info("no display: running without a tray icon (the dashboard: `mecene open`)")
        return None
    return subprocess.Popen(  # noqa: S603 - our own module, no shell
        [sys.executable, "-m", "daemon.tray", "--data-dir", str(data_dir.root)],
        stdin=subprocess.DEVNULL,
    )


def stop_tray(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def _start_embedded_hub(data_dir: DataDir, clock: Clock, port: int = 0) -> RunningHub:
    hub_dir = data_dir.root / "hub"
    hub_dir.mkdir(mode=0o700, exist_ok=True)
    try:
        practicehub.check(hub_dir, data_dir.root)
    except practicehub.CopiedLedger as exc:
        raise StartError(str(exc)) from None
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = HubSettings(
        database_url=f"sqlite:///{hub_dir / 'hub.db'}",
        key_file=hub_dir / "hub.key",
        port=port,
    )
    try:
        running = await start_hub(settings, clock)
    except OSError as exc:
        raise StartError(f"cannot start the embedded hub: {exc}") from None
    except DatabaseRefused as exc:
        raise StartError(str(exc)) from None
    log.debug("embedded hub on %s (its data in %s)", running.url, hub_dir)
    return running


async def _serve_locked(
    data_dir: DataDir,
    port: int,
    wallet: Wallet | None,
    clock: Clock,
    stop: asyncio.Event,
    hub_url: str,
    tray: bool = False,
    hub_embedded: bool = False,
    relay_url: str | None = None,
) -> None:
    admin_token = new_token()
    config = Config(
        port=port,
        wallet_path=data_dir.wallet,
        admin_token_hash=hash_token(admin_token),
        hub_url=hub_url,
        channel_path=data_dir.channel,
        hub_embedded=hub_embedded,
        records_marker=data_dir.records_marker,
        relay_url=relay_url,
    )
    app = create_app(config, Store(data_dir.database), wallet, clock)
    runner = web.AppRunner(
        app,
        access_log_class=AccessLogger,
        handle_signals=False,
        keepalive_timeout=HEADER_SECONDS,
        lingering_time=LINGER_SECONDS,
        # A request still being answered when the daemon stops gets this long
        # (what was acknowledged is on disk already), not aiohttp's minute.
        shutdown_timeout=SHUTDOWN_SECONDS,
    )
    try:
        await runner.setup()
    except FileRefused as exc:
        await runner.cleanup()
        raise StartError(str(exc)) from None
    except (OSError, NotPrivate) as exc:
        await runner.cleanup()
        raise StartError(
            f"cannot open the browsers' channel at {data_dir.channel}: {exc}"
        ) from None
    site = web.TCPSite(runner, "127.0.0.1", port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise StartError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Only a daemon that listens tells the CLI where it is and how to get in.
    write_atomic(data_dir.admin_token, admin_token.encode(), mode=0o600)
    runtime = {"pid": os.getpid(), "port": port}
    write_atomic(data_dir.runtime, json.dumps(runtime).encode(), mode=0o600)
    service = app[SERVICE]
    timer = asyncio.create_task(month_timer(service, clock))
    state = "locked (unlock with `mecene unlock`)" if wallet is None else "unlocked"
    log.info(
        "Mécène daemon listening on http://127.0.0.1:%d, wallet %s, hub %s", port, state, hub_url
    )
    log.info("browsers' channel on %s", data_dir.channel)
    tray_process = start_tray(data_dir) if tray else None
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        report_a_slow_stop()
        # Left to run to the end of the process (asyncio.run cancels it): the
        # embedded hub stops after this function returns.
        _SLOW_STOP.add(asyncio.create_task(report_slow_tasks()))
        if tray_process is not None:
            await asyncio.to_thread(stop_tray, tray_process)
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        for path in (data_dir.runtime, data_dir.admin_token):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
