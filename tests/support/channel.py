"""The browsers' channel from a test: frames as a browser writes them, to the
daemon's socket directly (`Channel`) or through a real native messaging host
process (`Host`), as the browser starts it."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from daemon.browsers.pairing import new_token

HEADER = struct.Struct("=I")


def frame(message: Any) -> bytes:
    body = json.dumps(message).encode()
    return HEADER.pack(len(body)) + body


def read_exactly(stream: Any, n: int, timeout: float = 30) -> bytes:
    """`n` bytes from a socket or a pipe; a test fails rather than hangs when
    nothing comes within `timeout` seconds."""
    out = b""
    while len(out) < n:
        if not hasattr(stream, "recv"):
            ready, _, _ = select.select([stream], [], [], timeout)
            if not ready:
                raise TimeoutError(f"nothing to read within {timeout} s")
            chunk = os.read(stream.fileno(), n - len(out))
        else:
            chunk = stream.recv(n - len(out))
        if not chunk:
            raise EOFError(f"the stream ended after {len(out)} of {n} bytes")
        out += chunk
    return out


def read_message(stream: Any) -> dict[str, Any]:
    (length,) = HEADER.unpack(read_exactly(stream, HEADER.size))
    return dict(json.loads(read_exactly(stream, length)))


class Framed:
    """One request at a time, as a browser frames it, and its answer."""

    check_id = False  # whether the answer must carry the request's id
    _next = 0

    def send_raw(self, raw: bytes) -> None:
        raise NotImplementedError

    def receive(self) -> dict[str, Any]:
        raise NotImplementedError

    def call(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> tuple[int, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "path": path}
        if body is not None:
            message["body"] = body
        if key is not None:
            message["key"] = key
        self.send_raw(frame(message))
        answer = self.receive()
        if self.check_id:
            assert answer["id"] == self._next, answer
        return int(answer["status"]), answer["body"]


class Channel(Framed):
    """A connection to a daemon's channel socket, speaking as the host does."""

    check_id = True

    def __init__(self, path: Path, timeout: float = 30) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))

    def send_raw(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def receive(self) -> dict[str, Any]:
        return read_message(self.sock)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Caller(Protocol):
    def call(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> tuple[int, Any]: ...


def pair_over(channel: Caller, approve: Any, client: str = "test browser") -> str:
    """Pair a new browser key over `channel`; `approve(code)` is the person."""
    return pair_with(channel, new_token(), approve, client)


def pair_with(channel: Caller, key: str, approve: Any, client: str = "test browser") -> str:
    """Pair `key` (a browser's own) over `channel`; `approve(code)` is the person."""
    status, started = channel.call("POST", "/pairing", {"client": client}, key)
    assert status == 201, started
    approve(started["code"])
    status, got = channel.call("GET", f"/pairing/{started['pairing_id']}", key=key)
    assert (status, got["status"]) == (200, "approved"), got
    return key


class Host(Framed):
    """The real native messaging host, started as a browser starts it: by the
    launcher `mecene browser install` wrote, with a browser's arguments."""

    def __init__(self, launcher: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [str(launcher), "chrome-extension://mbfbbhfcmjidcpjnofcedjfjhhlddkee/"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or dict(os.environ),
            cwd=str(launcher.parent),
        )

    def send_raw(self, raw: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(raw)
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        return read_message(self.proc.stdout)

    def close_port(self, timeout: float = 10) -> int:
        """What the browser does when the extension's port closes: stdin ends."""
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        return self.proc.wait(timeout)

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()


def wait_for(path: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.05)


PYTHON = sys.executable
