"""Starting and talking to real `mecene` processes (tests and benchmarks share this)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.client import LocalApi
from daemon.files import DataDir

from .constants import EXTENSION_ORIGIN, PASSPHRASE


def _ephemeral_range() -> range:
    """The kernel's range for outgoing connections' local ports."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, for a process to bind next.

    Not one the kernel picks (`bind(0)`): those come from the ephemeral range,
    where any outgoing connection (the browser's, a client's) may take the
    same port before the process binds it ("address already in use"). Ports
    outside that range (from 20000 up) are only ever bound on purpose, and
    this process never hands the same one out twice.
    """
    ephemeral = _ephemeral_range()
    candidates = [p for p in range(20000, 65536) if p not in ephemeral and p not in _HANDED_OUT]
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for port in rng.sample(candidates, min(len(candidates), 200)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port on 127.0.0.1 outside the ephemeral range")


def mecene(
    data: Path,
    *args: str,
    passphrase: str | None = PASSPHRASE,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MECENE_PASSPHRASE"}
    if passphrase is not None:
        env["MECENE_PASSPHRASE"] = passphrase
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args, "--data-dir", str(data)],
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

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        """A call as the extension makes it: its Origin, a browser's token or none."""
        return self.api.answer(method, path, body, token=token, origin=EXTENSION_ORIGIN)

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
        status, started = self.request("POST", "/pairing", {"client": "test browser"})
        assert status == 201
        approved = mecene(self.data, "pair", "approve", started["code"])
        assert approved.returncode == 0, approved.stderr
        status, got = self.request("GET", f"/pairing/{started['pairing_id']}")
        assert got["status"] == "approved"
        return str(got["token"])

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
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
) -> Daemon:
    """A real `mecene run` on `data`, with its embedded hub unless `args` has
    `--hub`; `deposit_cents` puts that much on the account first (a budget is
    only spent from a balance); `prefix` runs it under another command
    (`faketime`)."""
    port = port or free_port()
    env = {**os.environ, "MECENE_PASSPHRASE": PASSPHRASE}
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
