"""The local API's defences (DESIGN.md, "Security model").

Every web page the person opens can send requests to 127.0.0.1, so each
request must pass, in order: a JSON error envelope around everything, the
Host check (DNS rebinding), the Origin check (web pages), JSON-only bodies
(no cross-site "simple request"), and the bearer token. Each `setup_x(app)`
adds one of them and has its own test against a bare app; the four checks
run as plain functions inside one guard middleware, in the order added.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from mecene.errors import STATUS, envelope
from mecene.keys import is_text

from .diskspace import refusal as disk_full
from .errors import BadJson, DomainError, SlowBody

log = logging.getLogger("mecene.http")


class Authenticator(Protocol):
    def __call__(self, token: str) -> Any: ...


PRINCIPAL_KEY = web.RequestKey("principal", object)

EXTENSION_ORIGIN = re.compile(
    r"^(chrome-extension|moz-extension|safari-web-extension)://[A-Za-z0-9\-]{1,64}$"
)


# An attribute set on handlers: who may call them. Default: a paired browser
# (over the browsers' channel, daemon/channel.py) or the person (over HTTP).
# CHANNEL: any browser on the channel, paired or not (pairing); never HTTP.
AUTH_ATTR = "mecene_auth"
PUBLIC, BROWSER, ADMIN, CHANNEL = "public", "browser", "admin", "channel"


def error_response(
    code: str, message: str, status: int | None = None, **extra: Any
) -> web.Response:
    body = envelope(code, message, **extra)
    return web.json_response(body, status=status or STATUS.get(code, 400))


def access(level: str) -> Callable[[Handler], Handler]:
    """Mark who may call a handler: `@access(PUBLIC)`, `@access(ADMIN)`."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, AUTH_ATTR, level)
        return handler

    return mark


class Check(Protocol):
    """A request check: returns an error response to refuse, None to let through."""

    def __call__(self, request: web.Request) -> web.Response | None: ...


CHECKS_KEY = web.AppKey("checks", list[Check])


def _front(app: web.Application) -> list[Check]:
    """The one middleware every request goes through, installed once.

    It turns every failure into `{"error", "message"}` JSON and runs the
    request checks in the order they were added, as plain function calls: a
    middleware each would cost a coroutine layer on every click.
    """
    if CHECKS_KEY in app:
        return app[CHECKS_KEY]
    checks: list[Check] = []
    app[CHECKS_KEY] = checks

    @web.middleware
    async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            for check in checks:
                refused = check(request)
                if refused is not None:
                    return refused
            return await handler(request)
        except DomainError as exc:
            return web.json_response(exc.body(), status=exc.status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = {
                404: "not_found",
                405: "method_not_allowed",
                413: "too_large",
                415: "unsupported_media_type",
            }.get(exc.status, "http_error")
            return error_response(code, exc.reason, exc.status)
        except Exception as exc:
            full = disk_full(exc)
            if full is not None:
                return web.json_response(full.body(), status=full.status)
            log.exception("internal error on %s %s", request.method, redact_path(request.path))
            return error_response("internal", "internal error; see the daemon's log", 500)

    app.middlewares.append(front)
    return checks


def setup_errors(app: web.Application) -> None:
    """Every answer that is not a success is `{"error", "message"}` JSON."""
    _front(app)


def add_check(app: web.Application, check: Check) -> None:
    """Run `check` on every request, after the checks added before it."""
    _front(app).append(check)


def setup_host_check(app: web.Application, hosts: Iterable[str]) -> None:
    """Refuse any Host but 127.0.0.1:PORT and localhost:PORT (DNS rebinding)."""
    allowed = frozenset(h.lower() for h in hosts)

    def host_check(request: web.Request) -> web.Response | None:
        if request.headers.get("Host", "").lower() not in allowed:
            return error_response("bad_host", "this address is not the daemon's")
        return None

    add_check(app, host_check)


def origin_allowed(origin: str, own_origins: frozenset[str]) -> bool:
    return origin in own_origins or bool(EXTENSION_ORIGIN.match(origin))


def setup_origin_check(app: web.Application, own_origins: Iterable[str]) -> None:
    """Refuse an Origin that is neither a browser extension nor the dashboard's own.

    No Origin at all is a program (the CLI, curl) or a same-origin navigation;
    those still need a token for anything but pairing.
    """
    own = frozenset(own_origins)

    def origin_check(request: web.Request) -> web.Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and not origin_allowed(origin, own):
            return error_response("bad_origin", "requests from web pages are not accepted")
        return None

    add_check(app, origin_check)


EXACT_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})


def setup_json_only(app: web.Application) -> None:
    """A body must be JSON (415 otherwise), so no cross-site simple request gets through."""

    def json_only(request: web.Request) -> web.Response | None:
        if request.method in ("POST", "PUT", "PATCH") or (
            request.method == "DELETE" and request.can_read_body
        ):
            if request.headers.get("Content-Type") in EXACT_JSON_TYPES:
                return None  # what clients send; no need to parse the header
            if request.content_type != "application/json":
                return error_response(
                    "unsupported_media_type", "send the body as application/json", 415
                )
            charset = request.charset
            if charset is not None and charset.lower() not in ("utf-8", "utf8"):
                return error_response("unsupported_media_type", "JSON bodies are UTF-8", 415)
        return None

    add_check(app, json_only)


def setup_auth(
    app: web.Application,
    authenticate: Authenticator,
    session: Callable[[str, str], Any] | None = None,
    cookie: str = "",
    session_header: str = "",
) -> None:
    """Check the bearer token (or the dashboard's session cookie with its
    secret header, through `session`) against the handler's access level."""

    def auth(request: web.Request) -> web.Response | None:
        level = _access_level(request)
        if level == PUBLIC:
            return None
        if level == CHANNEL:
            return error_response("not_found", "browsers ask this over their channel only", 404)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        principal = None
        if scheme.lower() == "bearer" and 20 <= len(token.strip()) <= 200:
            principal = authenticate(token.strip())
        elif not header and session is not None:
            # The cookie reaches every server on 127.0.0.1 (cookies ignore the
            # port), so it counts only with the secret the page alone holds.
            value = request.cookies.get(cookie, "")
            secret = request.headers.get(session_header, "")
            if 20 <= len(value) <= 200 and 20 <= len(secret) <= 200:
                principal = session(value, secret)
        if principal is None:
            return error_response(
                "unauthorized",
                "the admin token or a dashboard session is needed (`mecene open`)",
                401,
            )
        if level == ADMIN and principal.kind != "admin":
            return error_response("forbidden", "only the dashboard and the CLI may do this", 403)
        request[PRINCIPAL_KEY] = principal
        return None

    add_check(app, auth)


def access_of(handler: Any) -> str:
    """The mark on a route's own handler; a paired browser by default."""
    return str(getattr(handler, AUTH_ATTR, BROWSER))


def _access_level(request: web.Request) -> str:
    return access_of(request.match_info.route.handler)


# A client that holds a connection without finishing its request: headers
# must arrive within HEADER_SECONDS of connecting (aiohttp's keep-alive timer,
# which runs from the connection's start and closes it while no complete
# request has come; it also closes idle keep-alive connections), and a body
# within BODY_SECONDS of its headers.
HEADER_SECONDS = 10.0
# After an answer to a request whose body was not read whole (408, 413), how
# long aiohttp keeps reading it so the client sees the answer (default 10 s).
LINGER_SECONDS = 2.0
BODY_SECONDS = 10.0


async def read_body(request: web.Request, seconds: float = BODY_SECONDS) -> bytes:
    """The request's body, or 408 `slow_body` (and the connection closed) if it
    has not all arrived within `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        request.protocol.close()  # once the 408 is written
        raise SlowBody(f"the body did not arrive within {seconds:.0f} s") from None


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; a clear 400 for anything that is not JSON."""
    raw = await read_body(request)
    if not raw:
        raise BadJson("the body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
        value = _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError covers JSONDecodeError and integers too long to convert.
        raise BadJson("the body is not valid JSON") from None
    # JSON can escape half of a surrogate pair ("\\ud800"), which is no text:
    # it could be neither stored nor sent on. Only such an escape can bring one.
    if _SURROGATE_ESCAPE.search(text) and not is_text(value):
        raise BadJson("the body holds an unpaired surrogate (\\ud800-\\udfff), which is not text")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder for every request (json.loads with options builds a new one each call).
_DECODER = json.JSONDecoder(parse_constant=_no_constants)


_SECRET_PATH = re.compile(r"(/pairing/)[^/]+")


def redact_path(path: str) -> str:
    """Paths that carry a secret (a pairing id) are logged without it."""
    return _SECRET_PATH.sub(r"\1…", path)


class AccessLogger(AbstractAccessLogger):
    """Method, path without secrets, status, time. Never headers or bodies.

    At DEBUG level (`mecene run --verbose`): a line per click costs more than
    it tells a person, and aiohttp skips disabled loggers entirely.
    """

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            "%s %s %s %.1fms",
            request.method,
            redact_path(request.path),
            response.status,
            time * 1000,
        )
