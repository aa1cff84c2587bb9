"""The real `mecene` command and daemon process: start, refuse, pair, stop, crash."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PASS = "a long enough passphrase"
EXT = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mecene(
    data: Path,
    *args: str,
    passphrase: str | None = PASS,
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
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1{path}", data=data, method=method
        )
        req.add_header("Origin", EXT)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

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
        out, _ = self.proc.communicate(timeout=30)
        self.log.append(out)
        return self.proc.returncode


def start(data: Path, port: int | None = None) -> Daemon:
    port = port or free_port()
    env = {**os.environ, "MECENE_PASSPHRASE": PASS}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daemon",
            "run",
            "--no-tray",
            "--port",
            str(port),
            "--data-dir",
            str(data),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    daemon = Daemon(data, port, proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited: {proc.communicate()[0]}")
        if (data / "daemon.json").exists():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return daemon
            except OSError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("daemon did not start")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "mecene"
    result = mecene(d, "init", "--budget", "5", "--time-zone", "Europe/Paris")
    assert result.returncode == 0, result.stderr
    return d


@pytest.fixture
def daemon(data: Path) -> Iterator[Daemon]:
    d = start(data)
    yield d
    if d.proc.poll() is None:
        d.stop()


def test_init_creates_a_private_encrypted_wallet(data: Path) -> None:
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    wallet = data / "wallet.mecene"
    assert stat.S_IMODE(os.stat(wallet).st_mode) == 0o600
    blob = wallet.read_bytes()
    assert blob.startswith(b"MECENEW\x00") and b"budget" not in blob
    again = mecene(data, "init")
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.mark.parametrize("passphrase", ["wrong passphrase!", ""])
def test_wrong_passphrase_is_one_line_and_exit_1(data: Path, passphrase: str) -> None:
    result = mecene(data, "run", "--no-tray", "--port", str(free_port()), passphrase=passphrase)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr and "passphrase" in result.stderr


def test_tampered_wallet_is_one_line_and_exit_1(data: Path) -> None:
    wallet = data / "wallet.mecene"
    blob = bytearray(wallet.read_bytes())
    blob[-5] ^= 0x40
    wallet.write_bytes(bytes(blob))
    result = mecene(data, "run", "--no-tray", "--port", str(free_port()))
    assert result.returncode == 1
    assert result.stderr.startswith("mecene: ") and result.stderr.strip().count("\n") == 0
    assert "authentication failed" in result.stderr


def test_init_without_passphrase_and_without_terminal_says_how(tmp_path: Path) -> None:
    result = mecene(tmp_path / "x", "init", passphrase=None)
    assert result.returncode == 1 and "MECENE_PASSPHRASE" in result.stderr


def test_second_daemon_on_the_same_directory_is_refused(daemon: Daemon) -> None:
    result = mecene(daemon.data, "run", "--no-tray", "--port", str(free_port()))
    assert result.returncode == 1
    assert "already running" in result.stderr and str(daemon.proc.pid) in result.stderr


def test_listens_on_loopback_only(daemon: Daemon) -> None:
    out = (
        subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        if shutil_which("ss")
        else ""
    )
    lines = [ln for ln in out.splitlines() if f":{daemon.port} " in ln]
    if lines:
        assert all("127.0.0.1:" in ln for ln in lines), lines
    # Whatever the tool, no other local address answers.
    for addr in _other_local_addresses():
        with pytest.raises(OSError):
            socket.create_connection((addr, daemon.port), timeout=1).close()


def test_pair_flattr_status_and_clean_stop(daemon: Daemon) -> None:
    token = daemon.pair()
    listed = mecene(daemon.data, "pair", "list")
    assert "test browser" in listed.stdout and "active" in listed.stdout
    status, _ = daemon.request(
        "POST",
        "/clicks",
        {"id": str(uuid.uuid4()), "url": "https://example.org/a", "creator": "flattr:a"},
        token,
    )
    assert status == 201
    shown = mecene(daemon.data, "status")
    assert shown.returncode == 0
    assert "flattrs   1" in shown.stdout and "5.00 €" in shown.stdout
    as_json = json.loads(mecene(daemon.data, "status", "--json").stdout)
    assert as_json["clicks"] == 1 and as_json["per_click_cents"] == 500
    budget = mecene(daemon.data, "budget", "7.50")
    assert budget.returncode == 0 and "7.50 €" in budget.stdout
    revoke = mecene(daemon.data, "pair", "revoke", "test browser")
    assert revoke.returncode == 0, revoke.stderr
    assert daemon.request("GET", "/status", token=token)[0] == 401
    assert daemon.stop() == 0
    assert not (daemon.data / "daemon.json").exists()
    assert not (daemon.data / "admin.token").exists()
    log = "".join(daemon.log)
    assert "Traceback" not in log and token not in log


def test_cli_says_when_the_daemon_is_not_running(data: Path) -> None:
    result = mecene(data, "status")
    assert result.returncode == 1 and "not running" in result.stderr


def test_acknowledged_clicks_survive_kill_9(data: Path) -> None:
    """Clicks from concurrent clients, SIGKILL in the middle: every 2xx is on disk, once."""
    d = start(data)
    token = d.pair()
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        for i in range(10_000):
            if stop.is_set():
                return
            cid = str(uuid.uuid4())
            try:
                status, _ = d.request(
                    "POST",
                    "/clicks",
                    {"id": cid, "url": f"https://site{n}.example/{i}", "creator": "flattr:a"},
                    token,
                )
            except OSError:
                return
            if status in (200, 201):
                with lock:
                    acked.append(cid)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acked) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    d.proc.kill()
    d.proc.communicate(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= 150
    conn = sqlite3.connect(data / "daemon.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = [r[0] for r in conn.execute("SELECT id FROM clicks")]
    conn.close()
    assert set(acked) <= set(ids)
    assert len(ids) == len(set(ids))
    # A restarted daemon serves them and accepts a retry of an acknowledged click as the same.
    again = start(data)
    try:
        status, out = again.request(
            "POST",
            "/clicks",
            {"id": acked[0], "url": "https://site0.example/0", "creator": "flattr:a"},
            token,
        )
        assert status == 200 and out["click"]["id"] == acked[0]
    finally:
        again.stop()


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def _other_local_addresses() -> list[str]:
    addrs = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            addrs.add(str(info[4][0]))
    except OSError:
        pass
    return sorted(a for a in addrs if not a.startswith("127."))
