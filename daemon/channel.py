"""The browsers' channel: the local API's routes, over a Unix socket that only
the person's user can open (DESIGN.md, "The browser's channel").

The native messaging host (daemon/nativehost.py) relays the extension's
messages here, framed as browsers frame them (daemon/frames.py). A message
is one of the local API's requests, and its answer is that route's answer:

    {"id": 7, "key": BROWSER_KEY, "method": "POST", "path": "/clicks", "body": {...}}
    → {"id": 7, "status": 201, "body": {"click": ..., "status": ...}}

The route is found by the app's own router and answered by the same handler
as over HTTP, so every check of a route holds on both. Only the routes a
browser may call are reachable here (not the person's: settings, deposits,
approving browsers), plus pairing, which is reachable nowhere else. The
browser is who holds `key`, a secret the extension made at install: the
person approved it once with the code (daemon/browsers/); a revoked key is
told so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Any, cast

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDictProxy
from yarl import URL

from . import frames
from .browsers.room import Browsers
from .diskspace import refusal as disk_full
from .errors import DomainError
from .files import private_dir
from .security import ADMIN, BROWSER, CHANNEL, PRINCIPAL_KEY, PUBLIC, access_of, error_response

log = logging.getLogger("mecene.channel")

API = "/api/v1"
METHODS = frozenset({"GET", "POST", "DELETE", "PATCH"})
MAX_CONNECTIONS = 64  # hosts at once: one per browser profile, and to spare
MAX_IN_FLIGHT = 32  # requests at once on one connection


class ChannelRequest:
    """What a route's handler reads of a request, made from a channel message:
    the handlers take it where they take an aiohttp request."""

    def __init__(
        self, app: web.Application, method: str, path: str, body: bytes, host: str, conn: int
    ) -> None:
        self.app = app
        self.method = method
        self.rel_url = URL(API + path)
        self.path = self.rel_url.path
        self.query: MultiDictProxy[str] = self.rel_url.query
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
        self.cookies: dict[str, str] = {}
        self.host = host
        self.can_read_body = bool(body)
        self.match_info: Any = None
        self.conn = conn  # which host connection asked (pairing holds one code per connection)
        self._body = body
        self._values: dict[Any, Any] = {}

    async def read(self) -> bytes:
        return self._body

    def __getitem__(self, key: Any) -> Any:
        return self._values[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._values[key] = value

    def get(self, key: Any, default: Any = None) -> Any:
        return self._values.get(key, default)


class Channel:
    def __init__(self, app: web.Application, browsers: Browsers, port: int) -> None:
        self.app = app
        self.browsers = browsers
        self.host = f"127.0.0.1:{port}"
        self.server: asyncio.Server | None = None
        self.path: Path | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._next_conn = 0

    # -- one message ---------------------------------------------------------------

    async def answer(self, message: dict[str, Any], conn: int = 0) -> dict[str, Any]:
        """The answer to one message (never raises: an error is an answer)."""
        mid = message.get("id")
        if not (isinstance(mid, int) and not isinstance(mid, bool)) and not (
            isinstance(mid, str) and len(mid) <= 64
        ):
            return frames.error(None, "bad_message", "a message has an id: a number or short text")
        method, path = message.get("method"), message.get("path")
        if not isinstance(method, str) or method not in METHODS or not isinstance(path, str):
            return frames.error(
                mid, "unknown_message", "a message names a method and a path of the local API"
            )
        if not path.startswith("/") or len(path) > 2048 or path.startswith("//"):
            return frames.error(mid, "unknown_message", "a path is the local API's, as /status")
        body = b""
        if "body" in message:
            body = json.dumps(message["body"], ensure_ascii=False).encode("utf-8")
        try:
            request = ChannelRequest(self.app, method, path, body, self.host, conn)
        except ValueError:
            return frames.error(mid, "unknown_message", "a path is the local API's, as /status")
        response = await self._route(request, message.get("key"))
        try:
            out: Any = json.loads(cast(bytes, response.body)) if response.body else None
        except ValueError:
            out = None
        return {"id": mid, "status": response.status, "body": out}

    async def _route(self, request: ChannelRequest, key: Any) -> web.Response:
        match = await self.app.router.resolve(cast(web.Request, request))
        if match.http_exception is not None:
            return error_response(
                "unknown_message", f"no such request: {request.method} {request.path}", 404
            )
        level = access_of(match.handler)
        if level in (ADMIN, PUBLIC):
            # The person's own routes (and the dashboard's files) are not a browser's.
            return error_response(
                "unknown_message", "a browser cannot ask this: use the dashboard or `mecene`", 404
            )
        request.match_info = match
        if level == BROWSER:
            refused, principal = self.browsers.on_channel(key)
            if refused is not None:
                return error_response(*refused, 401)
            request[PRINCIPAL_KEY] = principal
        elif level == CHANNEL:
            request[PRINCIPAL_KEY] = key
        try:
            response = await match.handler(cast(web.Request, request))
        except DomainError as exc:
            return web.json_response(exc.body(), status=exc.status)
        except web.HTTPException as exc:
            return error_response("http_error", exc.reason, exc.status)
        except Exception as exc:
            full = disk_full(exc)
            if full is not None:
                return web.json_response(full.body(), status=full.status)
            log.exception("internal error on the channel: %s %s", request.method, request.path)
            return error_response("internal", "internal error; see the daemon's log", 500)
        return cast(web.Response, response)

    # -- the socket ----------------------------------------------------------------

    async def start(self, path: Path) -> None:
        """Listen on `path` (0600, in a directory only this user can open)."""
        private_dir(path.parent)
        with contextlib.suppress(FileNotFoundError):
            if _answers(path):
                raise OSError(f"another daemon already listens on {path}")
            os.unlink(path)  # a crashed daemon's socket
        old = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(
                self._serve, str(path), limit=frames.MAX_MESSAGE
            )
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self.path = path

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self._connections):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)
            self.server = None
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not _same_user(writer) or len(self._connections) >= MAX_CONNECTIONS:
            writer.write(frames.encode(frames.error(None, "busy", "too many connections", 503)))
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()
            return
        self._next_conn += 1
        conn = self._next_conn
        self._connections.add(writer)
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()

        def send(message: dict[str, Any]) -> None:
            try:
                writer.write(frames.encode(message))
            except ValueError:
                writer.write(
                    frames.encode(
                        frames.error(message.get("id"), "too_large", "the answer is over 1 MiB")
                    )
                )

        async def one(message: dict[str, Any]) -> None:
            try:
                answer = await self.answer(message, conn)
            except Exception:  # a bug: still one answer, never silence
                log.exception("internal error on the channel")
                answer = frames.error(
                    message.get("id"), "internal", "internal error; see the log", status=500
                )
            finally:
                slots.release()
            send(answer)

        try:
            while True:
                try:
                    raw = await read_frame(reader)
                except frames.FrameError as exc:
                    send(frames.error(None, exc.code, str(exc)))
                    if exc.fatal:
                        break
                    continue
                if raw is None:
                    break
                try:
                    message = frames.decode(raw)
                except frames.FrameError as exc:
                    send(frames.error(None, exc.code, str(exc)))
                    continue
                await slots.acquire()
                task = asyncio.create_task(one(message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            for task in list(tasks):
                with contextlib.suppress(Exception):
                    await task
            self._connections.discard(writer)
            self.browsers.pairings.closed(conn)
            writer.close()


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame from a host (daemon/frames.py's rules); None at the end."""
    try:
        header = await reader.readexactly(frames.HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise frames.truncated() from None
    length, skip = frames.frame_length(header, frames.MAX_MESSAGE)
    try:
        if skip:
            left = length
            while left:
                left -= len(await reader.readexactly(min(left, frames.SKIP_CHUNK)))
            raise frames.too_large(frames.MAX_MESSAGE)
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise frames.truncated() from None


_PEERCRED = struct.Struct("3i")


def _same_user(writer: asyncio.StreamWriter) -> bool:
    """Whether the peer runs as this user (the socket's mode already says so;
    this holds even if the socket were opened up)."""
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return True
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    _pid, uid, _gid = _PEERCRED.unpack(raw)
    return bool(uid == os.getuid())


def _answers(path: Path) -> bool:
    """Whether a daemon listens on `path` already."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()
