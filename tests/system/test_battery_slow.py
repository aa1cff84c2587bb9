"""Slow clients, a battery (issue 13, point 7): connections that send their request a
byte at a time, or their headers and then only part of the body, must not
stay open. Against a real `mecene run` and the hub embedded in it: hundreds
of such connections are held open by this test; each must be closed by the
server (headers: 10 s after connecting; body: 10 s on the daemon, 30 s on the
hub, after the headers), while a normal request is still answered."""

from __future__ import annotations

import json
import selectors
import socket
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.security import BODY_SECONDS as DAEMON_BODY
from daemon.security import HEADER_SECONDS as DAEMON_HEADERS
from hub.http import BODY_SECONDS as HUB_BODY
from hub.http import HEADER_SECONDS as HUB_HEADERS
from tests.support.constants import battery_size
from tests.support.daemons import Daemon, mecene, start

# The bound each connection is held to, with room for a loaded machine; a
# connection still open after it is a failure.
SLACK = 20.0


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    data = tmp_path / "mecene"
    assert mecene(data, "init", "--budget", "5", "--time-zone", "UTC").returncode == 0
    d = start(data)
    yield d
    d.stop()


def _slow(port: int, host: str, path: str, kind: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n"
    )
    if kind == "headers":
        s.sendall(head.encode())  # and never the blank line that ends them
    else:
        s.sendall((head + "\r\n" + '{"client": "').encode())  # 13 of 1,000 bytes
    s.setblocking(False)
    return s


def _hold(sockets: list[tuple[socket.socket, str]], bound: float) -> dict[str, float]:
    """Wait until the server has closed every socket; how long the longest of
    each kind stayed open. Fails if one outlives `bound`."""
    started = time.monotonic()
    longest: dict[str, float] = {}
    sel = selectors.DefaultSelector()
    for s, kind in sockets:
        sel.register(s, selectors.EVENT_READ, kind)
    answers: dict[str, set[int]] = {}
    while sel.get_map():
        waited = time.monotonic() - started
        assert waited < bound, f"{len(sel.get_map())} slow connections still open after {bound} s"
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                data = b""
            if data.startswith(b"HTTP/1.1 "):
                answers.setdefault(key.data, set()).add(int(data[9:12]))
            if not data:
                longest[key.data] = max(longest.get(key.data, 0.0), waited)
                sel.unregister(s)
                s.close()
    return {**longest, **{f"{k} answered": min(v) for k, v in answers.items()}}


def _served(port: int, host: str, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return int(s.recv(64)[9:12])


@pytest.mark.parametrize("server", ["daemon", "hub"])
def test_slow_clients_cannot_hold_connections(daemon: Daemon, server: str) -> None:
    if server == "daemon":
        port, path, status_path = daemon.port, "/api/v1/dashboard/session", "/api/v1/status"
        headers, body = DAEMON_HEADERS, DAEMON_BODY
    else:
        hub_url = daemon.admin("GET", "/hub")[1]["hub"]["url"]
        port = urllib.parse.urlsplit(hub_url).port
        assert port is not None
        path, status_path = "/v1/deposits", "/v1"
        headers, body = HUB_HEADERS, HUB_BODY
    host = f"127.0.0.1:{port}"
    count = battery_size(100, 400)
    sockets = [(_slow(port, host, path, "headers"), "headers") for _ in range(count // 2)]
    sockets += [(_slow(port, host, path, "body"), "body") for _ in range(count - count // 2)]
    # Held open, the server still answers others.
    expected = 401 if server == "daemon" else 200
    assert _served(port, host, status_path) == expected
    held = _hold(sockets, max(headers, body) + SLACK)
    print(json.dumps({"server": server, "connections": count, "longest_open_s": held}))
    # Unfinished bodies are told why before the connection closes.
    assert held.get("body answered") == 408
