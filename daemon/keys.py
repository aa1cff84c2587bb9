"""Creator keys and things: checking and canonicalising what a browser sends.

A creator key is `scheme:value` (DESIGN.md, "Creator keys"); a thing is its
canonical URL. Both arrive from the browser, which takes them from web pages,
so everything here is treated as hostile: bad values raise ValueError.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

MAX_KEY_LENGTH = 512
MAX_URL_LENGTH = 2048

PLATFORM_SCHEMES = frozenset(
    {"youtube", "github", "liberapay", "opencollective", "kofi", "patreon"}
)
URL_SCHEMES = frozenset({"wm", "payment"})
KEY_SCHEMES = frozenset({"flattr", "fediverse", "domain"}) | PLATFORM_SCHEMES | URL_SCHEMES

_ID_RE = re.compile(r"^[A-Za-z0-9._~\-]{1,200}$")
_FEDI_RE = re.compile(r"^@([A-Za-z0-9_.\-]{1,100})@([A-Za-z0-9.\-]{1,253})$")
_HOST_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?)*$"
)
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f<>\"'`]")


def canonical_url(
    raw: object,
    *,
    schemes: frozenset[str] = frozenset({"http", "https"}),
    keep_fragment: bool = False,
) -> str:
    """The canonical form of a web address: lower-case scheme and host, no
    default port, no credentials, and no fragment unless `keep_fragment`.

    >>> canonical_url("HTTPS://Example.ORG:443/a?b=1#top")
    'https://example.org/a?b=1'
    """
    if not isinstance(raw, str) or not raw:
        raise ValueError("a URL must be a non-empty string")
    if len(raw) > MAX_URL_LENGTH:
        raise ValueError(f"a URL must be at most {MAX_URL_LENGTH} characters")
    if _BAD_CHARS.search(raw):
        raise ValueError("a URL must not contain spaces, quotes or control characters")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ValueError("not a valid URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise ValueError(f"only {', '.join(sorted(schemes))} URLs are accepted")
    host = parts.hostname or ""
    if not host or not (_HOST_RE.match(host) or _is_ip_literal(host)):
        raise ValueError("the URL has no valid host")
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port in (None, default_port) else f"{host}:{port}"
    path = parts.path or "/"
    fragment = parts.fragment if keep_fragment else ""
    return urlunsplit((scheme, netloc, path, parts.query, fragment))


def thing_url(raw: object) -> str:
    """The canonical URL of a thing. A page is its URL without fragment (the
    extension sends it so); a fragment, when sent, names a part of a page with
    a creator of its own — a comment's anchor — and is kept, so that flattring
    a commenter is not flattring the page twice.

    >>> thing_url("https://Example.org/post#comment-7")
    'https://example.org/post#comment-7'
    >>> thing_url("https://example.org/post#")
    'https://example.org/post'
    """
    return canonical_url(raw, keep_fragment=True)


def creator_key(raw: object) -> str:
    """Check a creator key and return its canonical form.

    >>> creator_key("fediverse:@Alice@Example.Social")
    'fediverse:@Alice@example.social'
    """
    if not isinstance(raw, str) or not raw:
        raise ValueError("a creator key must be a non-empty string")
    if len(raw) > MAX_KEY_LENGTH:
        raise ValueError(f"a creator key must be at most {MAX_KEY_LENGTH} characters")
    scheme, sep, value = raw.partition(":")
    if not sep or scheme not in KEY_SCHEMES:
        raise ValueError(f"unknown creator key kind {scheme!r}")
    if not value or _BAD_CHARS.search(value):
        raise ValueError("a creator key's value must be non-empty, without spaces or markup")
    if scheme in URL_SCHEMES:
        schemes = frozenset({"https"}) if scheme == "wm" else frozenset({"http", "https"})
        return f"{scheme}:{canonical_url(value, schemes=schemes)}"
    if scheme == "fediverse":
        m = _FEDI_RE.match(value if value.startswith("@") else "@" + value)
        if not m:
            raise ValueError("a fediverse key is @user@host")
        return f"fediverse:@{m.group(1)}@{m.group(2).lower()}"
    if scheme == "domain":
        host = value.lower()
        if not _HOST_RE.match(host) or "." not in host:
            raise ValueError("a domain key is a site's registrable domain")
        return f"domain:{host}"
    if not _ID_RE.match(value):
        raise ValueError(f"a {scheme} key must be a plain identifier")
    return f"{scheme}:{value}"


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
