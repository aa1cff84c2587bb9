"""The one Python client of the local API: the CLI's, the tray's and the tests'.

How a request is made (path prefix, token, JSON body, headers) and how an
answer is read (the shared error envelope, mecene/errors.py) are defined once
here, as `prepare` and `read_answer`; `LocalApi` sends them over a socket
with the standard library, so `mecene status` starts fast. The tests' clients
of an app running in their own event loop send the same `prepare`d requests
through aiohttp's test client and read them with `read_answer`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from .files import DataDir

API = "/api/v1"


class ApiError(Exception):
    """The daemon is not running, cannot be reached, or refused: one sentence."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Prepared:
    path: str  # with the /api/v1 prefix
    headers: dict[str, str]
    data: bytes | None


def prepare(
    path: str,
    body: Any = None,
    *,
    token: str | None,
    origin: str | None = None,
    host: str | None = None,
) -> Prepared:
    """A request to /api/v1`path`: the bearer `token` (none for the pairing
    routes), a JSON body, and the Origin a browser extension sends, if any."""
    headers: dict[str, str] = {}
    if host:
        headers["Host"] = host
    if origin:
        headers["Origin"] = origin
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    return Prepared(API + path, headers, data)


def read_answer(status: int, raw: bytes, reason: str = "") -> Any:
    """The JSON of a success; ApiError with the daemon's sentence and code
    for a refusal."""
    if status < 400:
        return json.loads(raw) if raw else None
    try:
        answer = json.loads(raw)
        message, code = answer.get("message", reason), answer.get("error")
    except (ValueError, AttributeError):
        message, code = reason or f"HTTP {status}", None
    raise ApiError(str(message), status, code)


class LocalApi:
    """The running daemon of a data directory, as the person (the admin token
    it leaves there) unless another `token` is given."""

    def __init__(
        self, data_dir: DataDir, *, token: str | None = None, port: int | None = None
    ) -> None:
        self.data_dir = data_dir
        try:
            runtime = json.loads(data_dir.runtime.read_text())
            # The caller may know the port better: a daemon it has just
            # started, before it has replaced a runtime file left by a crash.
            self.port = port or int(runtime["port"])
            self.pid = int(runtime["pid"]) if "pid" in runtime else None
            self.token = token or data_dir.admin_token.read_text().strip()
        except (OSError, ValueError, KeyError):
            raise ApiError(
                f"the daemon is not running on {data_dir.root} (start it with `mecene run`)"
            ) from None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | bool | None = True,
        origin: str | None = None,
    ) -> tuple[int, bytes, str]:
        """(status, body, reason) of `method` on /api/v1`path`; `token` True
        for this client's own, a string for another, None for none."""
        bearer = self.token if token is True else (token or None)
        p = prepare(path, body, token=bearer if isinstance(bearer, str) else None, origin=origin)
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{p.path}", data=p.data, method=method, headers=p.headers
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
                return resp.status, resp.read(), resp.reason
        except urllib.error.HTTPError as exc:
            with exc:  # its response holds the connection: closed here, not by the GC
                return exc.code, exc.read(), str(exc.reason)
        except OSError as exc:
            raise ApiError(f"cannot reach the daemon on port {self.port}: {exc}") from None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """`method` on /api/v1`path`; the JSON answer, or ApiError with the
        daemon's message."""
        status, raw, reason = self.request(method, path, body)
        return read_answer(status, raw, reason)

    def answer(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | bool | None = True,
        origin: str | None = None,
    ) -> tuple[int, Any]:
        """(status, JSON) whatever the status: for callers that look at both."""
        status, raw, reason = self.request(method, path, body, token=token, origin=origin)
        try:
            return status, read_answer(status, raw, reason)
        except ApiError:
            return status, json.loads(raw)
