"""The one Python client of the local API, with the admin token the daemon
leaves in its data directory: the CLI's and the tray's (the tests use it
too). Standard library only, so `mecene status` starts fast."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .files import DataDir


class ApiError(Exception):
    """The daemon is not running, cannot be reached, or refused: one sentence."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class LocalApi:
    def __init__(self, data_dir: DataDir) -> None:
        self.data_dir = data_dir
        try:
            runtime = json.loads(data_dir.runtime.read_text())
            self.port = int(runtime["port"])
            self.pid = int(runtime["pid"]) if "pid" in runtime else None
            self.token = data_dir.admin_token.read_text().strip()
        except (OSError, ValueError, KeyError):
            raise ApiError(
                f"the daemon is not running on {data_dir.root} (start it with `mecene run`)"
            ) from None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """`method` on /api/v1`path` as the person (admin); the JSON answer, or
        ApiError with the daemon's message."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1{path}", data=data, method=method
        )
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                answer = json.loads(exc.read())
                message, code = answer.get("message", exc.reason), answer.get("error")
            except (ValueError, AttributeError):
                message, code = exc.reason, None
            raise ApiError(str(message), exc.code, code) from None
        except OSError as exc:
            raise ApiError(f"cannot reach the daemon on port {self.port}: {exc}") from None
