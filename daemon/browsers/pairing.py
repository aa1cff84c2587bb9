"""Pairing a browser (pure): a code the person sees and approves, once per
browser profile.

Each browser profile holds a key its extension made at install and sends
with every message on the browsers' channel (daemon/channel.py); the daemon
keeps only the key's hash. The key's first request makes a pending pairing
with a 6-digit code; the person approves the code (tray, dashboard, `mecene
pair approve`), and from then on the key is that browser.

Pending pairings live in memory only: they expire within minutes, and a
daemon restart simply asks the browser to pair again. The same key asking
again gets the same pairing (the same code, the time left), so a popup
opened again shows what it showed. A program flooding pairing requests
cannot push a browser's code out: each channel connection holds at most one
pending pairing (a new key on it replaces its last), the connections are
few (daemon/channel.py), and only pairings whose connection has closed are
dropped, oldest first, when too many wait.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from ..errors import Invalid, NotFound

CODE_TTL = dt.timedelta(minutes=5)
MAX_ORPHANS = 5  # pending pairings whose connection has closed
MAX_KEPT = 1000  # pairings remembered (pending, or answered and not yet polled)
MAX_CLIENT_NAME = 80


@dataclass
class Pairing:
    id: str
    code: str
    client: str
    created: dt.datetime
    key_hash: str
    conn: int | None  # the channel connection that asked; None once it has closed
    status: str = "pending"  # pending | approved | denied | expired

    def expired(self, now: dt.datetime) -> bool:
        return now - self.created > CODE_TTL

    def expires_in(self, now: dt.datetime) -> int:
        """Whole seconds the code stays valid (the popup shows them)."""
        return max(0, int((self.created + CODE_TTL - now).total_seconds()))


def hash_token(token: str) -> str:
    """Tokens and browser keys are 256-bit random strings, so a plain SHA-256
    is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


def browser_key(raw: object) -> str | None:
    """A browser's key as its extension sends it (43 or more URL-safe
    characters: 256 random bits), or None."""
    if isinstance(raw, str) and 43 <= len(raw) <= 128 and _KEY.fullmatch(raw):
        return raw
    return None


_KEY = re.compile(r"[A-Za-z0-9_\-]+")


def new_token() -> str:
    return secrets.token_urlsafe(32)


# Characters that change how the text around them is shown, or show nothing:
# controls, bidi overrides and isolates, zero-width characters (Unicode
# "format"), line and paragraph separators, private-use, surrogates, unassigned.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
# A pairing code is 6 digits: a name must not carry one to pass for it.
# Five digits or more, alone or spaced as a code is read out ("123456",
# "123 456", "12 34 56", "1-2-3-4-5"); a version's dots do not count.
_CODE_LIKE = re.compile(r"\d(?:[\s\-\u2010-\u2015]*\d){4,}")


def client_name(raw: object) -> str:
    """The name a browser gives itself, as the tray, the dashboard and `mecene
    pair list` show it beside its code: printable, at most 80 characters, and
    unable to disguise itself (no bidi or zero-width characters, no run of
    digits that could pass for a code)."""
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid("client must be a non-empty name, such as 'Chromium on laptop'")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("client must be text") from None
    name = unicodedata.normalize("NFC", " ".join(raw.split()))
    if len(name) > MAX_CLIENT_NAME:
        raise Invalid(f"client must be at most {MAX_CLIENT_NAME} characters")
    if any(unicodedata.category(c) in _HIDDEN_CATEGORIES for c in name):
        raise Invalid("client must be printable text: no control, bidi or zero-width characters")
    if unicodedata.normalize("NFKC", name) != name:
        # Fullwidth letters, ligatures, superscripts: another way to write a
        # name that reads as another browser's.
        raise Invalid("client must be plain text: no fullwidth or other compatibility characters")
    if _CODE_LIKE.search(name):
        raise Invalid(
            "client must not hold 5 or more digits in a row, even spaced, which could pass "
            "for a code"
        )
    return name


class Pairings:
    def __init__(self) -> None:
        self._by_id: dict[str, Pairing] = {}

    def _sweep(self, now: dt.datetime) -> None:
        for pid in [p.id for p in self._by_id.values() if p.expired(now)]:
            del self._by_id[pid]

    def _pending(self) -> list[Pairing]:
        return sorted(
            (p for p in self._by_id.values() if p.status == "pending"), key=lambda p: p.created
        )

    def _drop_orphans(self) -> None:
        orphans = [p for p in self._pending() if p.conn is None]
        for old in orphans[: max(0, len(orphans) - MAX_ORPHANS)]:
            old.status = "expired"

    def request(self, client: str, key_hash: str, conn: int, now: dt.datetime) -> Pairing:
        """The pending pairing of `key_hash`: the one waiting already, or a new one."""
        self._sweep(now)
        for p in self._pending():
            if p.key_hash == key_hash:
                p.conn, p.client = conn, client
                return p
        for p in self._pending():
            if p.conn == conn:
                p.status = "expired"  # a connection holds one pairing at a time
        if len(self._by_id) > MAX_KEPT:  # answers kept for polling browsers
            for stale in [p.id for p in self._by_id.values() if p.status != "pending"]:
                del self._by_id[stale]
        used = {p.code for p in self._pending()}
        code = f"{secrets.randbelow(1_000_000):06d}"
        while code in used:
            code = f"{secrets.randbelow(1_000_000):06d}"
        pairing = Pairing(secrets.token_urlsafe(18), code, client, now, key_hash, conn)
        self._by_id[pairing.id] = pairing
        return pairing

    def closed(self, conn: int) -> None:
        """A channel connection has closed: its pairing may be asked for again
        by its key, and yields first when too many wait."""
        for p in self._by_id.values():
            if p.conn == conn:
                p.conn = None
        self._drop_orphans()

    def poll(self, pairing_id: str, key_hash: str, now: dt.datetime) -> dict[str, Any]:
        """What the browser holding `key_hash` sees of its pairing."""
        pairing = self._by_id.get(pairing_id)
        if pairing is None or not secrets.compare_digest(pairing.key_hash, key_hash):
            raise NotFound("no such pairing")
        if pairing.expired(now) or pairing.status == "expired":
            del self._by_id[pairing_id]
            return {"status": "expired"}
        if pairing.status == "pending":
            return {"status": "pending", "expires_in": pairing.expires_in(now)}
        del self._by_id[pairing_id]
        return {"status": pairing.status}

    def pending(self, now: dt.datetime) -> list[Pairing]:
        self._sweep(now)
        return self._pending()

    def find_pending(self, code: object, now: dt.datetime) -> Pairing:
        if not isinstance(code, str) or len(code) != 6 or not code.isdigit():
            raise Invalid("a pairing code is 6 digits")
        for p in self.pending(now):
            if secrets.compare_digest(p.code, code):
                return p
        raise NotFound("no pending pairing with that code (codes expire after 5 minutes)")

    def approve(self, pairing: Pairing) -> None:
        pairing.status = "approved"

    def deny(self, pairing: Pairing) -> None:
        pairing.status = "denied"
