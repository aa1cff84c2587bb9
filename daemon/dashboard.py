"""The dashboard: a local page served by the daemon, entered by a one-time link.

`mecene open` asks the daemon (admin token) for a login link:
`http://127.0.0.1:PORT/dashboard/login#CODE`. The code is in the fragment,
so it never reaches a log or a Referer; the login page posts it once to
`POST /api/v1/dashboard/session`, which answers with a session cookie
(HttpOnly, SameSite=Strict, Path=/) and, in the body, the session's secret,
and forgets the code. Codes live two minutes; sessions twelve hours, and
none survives a restart of the daemon.

Cookies are not scoped by port: every other server on 127.0.0.1 the browser
visits (a dev server, any local app) receives the dashboard's cookie. So the
cookie alone authorises nothing. Each dashboard request also carries the
secret in the `X-Mecene-Session` header; the page keeps it in its
`sessionStorage`, which is scoped to this origin (port included) and to the
tab, so no other server ever sees it.

With both, the dashboard calls the same local API as the CLI, as the person
(admin). It is safe from web pages for the reasons the API is: the Host
check (DNS rebinding), the Origin check (only the dashboard's own origin or
an extension), JSON-only bodies, and a SameSite=Strict cookie a cross-site
request never carries.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from .browsers.pairing import hash_token

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "mecene_dashboard"
SESSION_HEADER = "X-Mecene-Session"
LINK_TTL = dt.timedelta(minutes=2)
SESSION_TTL = dt.timedelta(hours=12)
MAX_PENDING_LINKS = 20

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Sessions:
    """One-time login codes and the sessions they open, in memory, hashed."""

    def __init__(self) -> None:
        self._codes: dict[str, dt.datetime] = {}
        # hash of the cookie's token -> (expiry, hash of the header's secret)
        self._sessions: dict[str, tuple[dt.datetime, str]] = {}

    def new_link_code(self, now: dt.datetime) -> str:
        self._expire(now)
        if len(self._codes) >= MAX_PENDING_LINKS:
            oldest = min(self._codes, key=self._codes.__getitem__)
            del self._codes[oldest]
        code = secrets.token_urlsafe(32)
        self._codes[hash_token(code)] = now + LINK_TTL
        return code

    def open_session(self, code: object, now: dt.datetime) -> tuple[str, str] | None:
        """The cookie's token and the header's secret of a new session, for a
        valid, unused code (which is then spent)."""
        self._expire(now)
        if not isinstance(code, str) or not 20 <= len(code) <= 100:
            return None
        if self._codes.pop(hash_token(code), None) is None:
            return None
        token, secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._sessions[hash_token(token)] = (now + SESSION_TTL, hash_token(secret))
        return token, secret

    def valid(self, token: str, secret: str, now: dt.datetime) -> bool:
        """Whether the cookie's `token` and the header's `secret` are one live session."""
        found = self._sessions.get(hash_token(token))
        if found is None:
            return False
        expires, secret_hash = found
        if expires <= now:
            del self._sessions[hash_token(token)]
            return False
        return secrets.compare_digest(secret_hash, hash_token(secret))

    def close(self, token: str) -> None:
        self._sessions.pop(hash_token(token), None)

    def _expire(self, now: dt.datetime) -> None:
        for code in [c for c, expires in self._codes.items() if expires <= now]:
            del self._codes[code]
        for token in [t for t, (expires, _) in self._sessions.items() if expires <= now]:
            del self._sessions[token]
